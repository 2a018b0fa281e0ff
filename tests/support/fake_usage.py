"""A month (or any range) of deterministic costs and completions usage, served by the
FakeUpstream exactly as OpenAI's Admin API serves them.

The data is held at its finest grain (one row per day, key, project and line item or model)
in ``FakeUsage.costs_rows`` and ``FakeUsage.usage_rows``; a request is answered by summing
those rows over the dimensions it groups by (the others are ``null``, as OpenAI leaves a
dimension you did not group by), one daily bucket per UTC day in [start_time, end_time),
``limit`` buckets a page (never more than ``page_size``), with an opaque base64 ``next_page``
cursor (it holds ``+``, ``/`` and ``=``: a client must URL-encode it) and ``has_more``.
Empty days come back as ``"results": []``. Malformed queries get OpenAI's 400 error body, a
wrong admin key its 401.

Tests compute what a report should say straight from ``costs_rows``/``usage_rows`` and
``name_of`` (never through the code under test), and look at ``served`` (every answered
request: path, window, cursor, buckets) to see how the client walked the API.

    fake = FakeUsage(token=TOKEN).install(upstream)
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import random
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs

from tests.support.tcp_upstream import FakeUpstream, Handler, Received, Reply

COSTS = "/v1/organization/costs"
COMPLETIONS = "/v1/organization/usage/completions"
DAY = 86400

# The alias file the daemon is started with: two keys of "checkout" (rotated mid-month, both
# in use for three days), a name with "&" (XML, HTML) and one with a non-ASCII letter.
ALIASES_TOML = """\
# orgproxy-report tests: key ids -> names
[api_keys]
key_3f9a1c0d7e2b4a01 = "checkout"
key_8b2e6f4a1d9c3e02 = "checkout"
key_c4d1a7e93b0f5803 = "mobile-app"
key_5e0b9d2c8a7f1604 = "R&D notebooks"
key_a91f3e6b2c4d0705 = "Zürich analytics"
key_7d2c5a8e1f3b9606 = "batch-jobs"

[projects]
proj_shop = "shop"
"""

# key id -> the name the alias file gives it (the keys it does not name are "unknown").
ALIASES: dict[str, str] = {
    "key_3f9a1c0d7e2b4a01": "checkout",
    "key_8b2e6f4a1d9c3e02": "checkout",
    "key_c4d1a7e93b0f5803": "mobile-app",
    "key_5e0b9d2c8a7f1604": "R&D notebooks",
    "key_a91f3e6b2c4d0705": "Zürich analytics",
    "key_7d2c5a8e1f3b9606": "batch-jobs",
}
UNKNOWN_KEYS = ("key_9f8e7d6c5b4a3210", "key_0badc0ffee000042")


@dataclass(frozen=True)
class Key:
    id: str
    project: str
    dollars_a_day: float  # roughly; every day's value is scattered around it
    tokens_a_day: int
    line_items: tuple[str, ...]
    models: tuple[str, ...]
    batch: bool = False
    first_day: int = 0  # offsets in the data's range, in days; last_day inclusive
    last_day: int | None = None
    weekdays_only: bool = False

    def active(self, offset: int, day: date) -> bool:
        if offset < self.first_day or (self.last_day is not None and offset > self.last_day):
            return False
        return not (self.weekdays_only and day.weekday() >= 5)


# Real line items contain commas ("gpt-4o-2024-08-06, input"): CSV output must quote them.
KEYS: tuple[Key, ...] = (
    Key("key_3f9a1c0d7e2b4a01", "proj_shop", 30.0, 4_000_000,
        ("gpt-4o-2024-08-06, input", "gpt-4o-2024-08-06, output", "web search tool calls"),
        ("gpt-4o-2024-08-06", "gpt-4o-mini-2024-07-18"), last_day=15),
    Key("key_8b2e6f4a1d9c3e02", "proj_shop", 35.0, 4_500_000,
        ("gpt-4o-2024-08-06, input", "gpt-4o-2024-08-06, output", "web search tool calls"),
        ("gpt-4o-2024-08-06", "gpt-4o-mini-2024-07-18"), first_day=13),
    Key("key_c4d1a7e93b0f5803", "proj_mobile", 20.0, 2_500_000,
        ("gpt-4o-mini-2024-07-18, input", "gpt-4o-mini-2024-07-18, output"),
        ("gpt-4o-mini-2024-07-18",)),
    Key("key_5e0b9d2c8a7f1604", "proj_research", 12.0, 1_500_000,
        ("o3-mini-2025-01-31, input", "o3-mini-2025-01-31, output", "gpt-4o-2024-08-06, input"),
        ("o3-mini-2025-01-31", "gpt-4o-2024-08-06")),
    Key("key_a91f3e6b2c4d0705", "proj_research", 9.0, 1_000_000,
        ("gpt-4o-mini-2024-07-18, input", "gpt-4o-mini-2024-07-18, output"),
        ("gpt-4o-mini-2024-07-18",), weekdays_only=True),
    Key("key_7d2c5a8e1f3b9606", "proj_batch", 4.0, 600_000,
        ("gpt-4o-mini-2024-07-18, input | batch", "gpt-4o-mini-2024-07-18, output | batch"),
        ("gpt-4o-mini-2024-07-18",), batch=True),
    # Keys nobody named: a deleted key, and one created this morning.
    Key("key_9f8e7d6c5b4a3210", "proj_shop", 0.5, 60_000, ("gpt-4o-2024-08-06, input",),
        ("gpt-4o-2024-08-06",)),
    Key("key_0badc0ffee000042", "proj_mobile", 0.3, 40_000, ("gpt-4o-mini-2024-07-18, input",),
        ("gpt-4o-mini-2024-07-18",), weekdays_only=True),
)

# The numeric fields of a completions usage row, in OpenAI's order (the spec's example).
USAGE_NUMBERS = ("input_tokens", "input_cached_tokens", "input_cache_write_tokens", "input_uncached_tokens",
                 "output_tokens", "input_text_tokens", "output_text_tokens", "input_cached_text_tokens",
                 "input_audio_tokens", "input_cached_audio_tokens", "output_audio_tokens",
                 "input_image_tokens", "input_cached_image_tokens", "output_image_tokens",
                 "num_model_requests")
COST_DIMENSIONS = ("project_id", "line_item", "api_key_id")
USAGE_DIMENSIONS = ("project_id", "user_id", "api_key_id", "model", "batch", "service_tier")
MAX_LIMIT = {COSTS: 180, COMPLETIONS: 31}  # bucket_width=1d


def name_of(key_id: str) -> str:
    """The name the daemon gives ``key_id`` with ALIASES_TOML."""
    return ALIASES.get(key_id, "unknown")


def day_start(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=timezone.utc).timestamp())


def day_of(unix: int) -> date:
    return datetime.fromtimestamp(unix, timezone.utc).date()


@dataclass(frozen=True)
class CostRow:
    day: date
    api_key_id: str
    project_id: str
    line_item: str
    value: float  # dollars

    @property
    def name(self) -> str:
        return name_of(self.api_key_id)


@dataclass(frozen=True)
class UsageRow:
    day: date
    api_key_id: str
    project_id: str
    user_id: str
    model: str
    batch: bool
    service_tier: str
    numbers: dict[str, int]

    @property
    def name(self) -> str:
        return name_of(self.api_key_id)


@dataclass
class Served:
    """One answered request."""
    path: str
    start_time: int
    end_time: int
    limit: int | None
    page: str | None  # the cursor it was asked for, decoded from the query
    group_by: tuple[str, ...]
    buckets: list[int]  # start_time of every bucket in the answer
    has_more: bool
    next_page: str | None


def _active(since: date, until: date, keys: tuple[Key, ...]) -> Iterator[tuple[date, Key]]:
    """Every (day, key) with traffic, in order."""
    for offset in range((until - since).days):
        day = since + timedelta(days=offset)
        for key in keys:
            if key.active(offset, day):
                yield day, key


@functools.cache  # the same month for every test that asks for it: made once per process
def _cost_rows(since: date, until: date, keys: tuple[Key, ...]) -> tuple[CostRow, ...]:
    rows = []
    for day, key in _active(since, until, keys):
        rng = random.Random(f"costs:{day.isoformat()}:{key.id}")
        weights = [rng.uniform(0.2, 1.0) for _ in key.line_items]
        total = key.dollars_a_day * rng.uniform(0.85, 1.15)
        for item, weight in zip(key.line_items, weights):
            # Dollars with OpenAI's many decimals (e.g. 1.2345678901).
            value = round(total * weight / sum(weights), 10)
            rows.append(CostRow(day, key.id, key.project, item, value))
    return tuple(rows)


@functools.cache
def _usage_rows(since: date, until: date, keys: tuple[Key, ...]) -> tuple[UsageRow, ...]:
    rows = []
    for day, key in _active(since, until, keys):
        for position, model in enumerate(key.models):
            rng = random.Random(f"usage:{day.isoformat()}:{key.id}:{model}")
            share = 0.7 if position == 0 and len(key.models) > 1 else 0.3 if len(key.models) > 1 else 1.0
            input_tokens = int(key.tokens_a_day * share * rng.uniform(0.8, 1.2))
            cached = input_tokens * rng.randint(0, 40) // 100
            cache_write = cached // 4
            audio = input_tokens // 50 if model.startswith("gpt-4o-2024") else 0
            image = input_tokens // 40 if model.startswith("gpt-4o-2024") else 0
            output_tokens = input_tokens * rng.randint(10, 35) // 100
            output_audio = output_tokens // 60 if audio else 0
            output_image = 0
            numbers = {
                "input_tokens": input_tokens,
                "input_cached_tokens": cached,
                "input_cache_write_tokens": cache_write,
                "input_uncached_tokens": input_tokens - cached,
                "output_tokens": output_tokens,
                "input_text_tokens": input_tokens - audio - image,
                "output_text_tokens": output_tokens - output_audio - output_image,
                "input_cached_text_tokens": cached - cached // 10 if audio else cached,
                "input_audio_tokens": audio,
                "input_cached_audio_tokens": cached // 20 if audio else 0,
                "output_audio_tokens": output_audio,
                "input_image_tokens": image,
                "input_cached_image_tokens": cached // 10 - cached // 20 if audio else 0,
                "output_image_tokens": output_image,
                "num_model_requests": max(1, input_tokens // rng.randint(900, 2500)),
            }
            rows.append(UsageRow(day, key.id, key.project, f"user-{key.project.removeprefix('proj_')}",
                                 model, key.batch, "default" if not key.batch else "flex", numbers))
    return tuple(rows)


def cursor_for(bucket_start: int) -> str:
    """An opaque cursor like OpenAI's ("page_AAAAAGdGxdEiJdKOAAAAAGcqsYA="), always holding
    ``+``, ``/`` and ``=``."""
    payload = b"\xfb\xff" + struct.pack(">q", bucket_start)
    cursor = "page_" + base64.b64encode(payload).decode("ascii")
    assert "+" in cursor and "/" in cursor and "=" in cursor, cursor
    return cursor


def bucket_of_cursor(cursor: str) -> int | None:
    if not cursor.startswith("page_"):
        return None
    try:
        payload = base64.b64decode(cursor.removeprefix("page_"), validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(payload) != 10 or payload[:2] != b"\xfb\xff":
        return None
    return struct.unpack(">q", payload[2:])[0]


class BadRequest(Exception):
    def __init__(self, message: str, param: str | None) -> None:
        super().__init__(message)
        self.message, self.param = message, param


def error_body(message: str, type: str, param: str | None, code: str | None) -> bytes:
    return json.dumps({"error": {"message": message, "type": type, "param": param, "code": code}},
                      indent=2).encode()


# What OpenAI answers a wrong admin key.
UNAUTHORIZED = error_body(
    "Incorrect API key provided: sk-admin-****. You can find your API key at "
    "https://platform.openai.com/account/api-keys.", "invalid_request_error", None, "invalid_api_key")


@dataclass
class FakeUsage:
    """Costs and completions usage for every UTC day in [since, until)."""
    since: date = date(2026, 10, 1)
    until: date = date(2026, 11, 1)
    token: str | None = None  # the admin key that is accepted; None accepts any Bearer
    page_size: int = 7  # the most buckets a page holds, whatever ``limit`` asks
    keys: tuple[Key, ...] = KEYS  # whose traffic it is (the demo's organization has its own)
    costs_rows: list[CostRow] = field(init=False)
    usage_rows: list[UsageRow] = field(init=False)
    served: list[Served] = field(init=False, default_factory=list)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.costs_rows = list(_cost_rows(self.since, self.until, self.keys))
        self.usage_rows = list(_usage_rows(self.since, self.until, self.keys))

    def install(self, upstream: FakeUpstream) -> FakeUsage:
        upstream.on(COSTS, self.answer)
        upstream.on(COMPLETIONS, self.answer)
        return self

    # What was served.

    def served_for(self, path: str) -> list[Served]:
        with self._lock:
            return [s for s in self.served if s.path == path]

    def windows(self, path: str) -> set[tuple[int, int]]:
        """The distinct (start_time, end_time) the client asked for."""
        return {(s.start_time, s.end_time) for s in self.served_for(path)}

    def buckets_served(self, path: str) -> list[int]:
        return [start for s in self.served_for(path) for start in s.buckets]

    # Answering.

    def answer(self, handler: Handler, received: Received) -> None:
        if received.method != "GET":
            handler.send_reply(Reply(405, body=error_body(
                f"Method {received.method} not allowed", "invalid_request_error", None, None)))
            return
        authorization = received.header("Authorization") or ""
        if not authorization.startswith("Bearer ") or (
                self.token is not None and authorization != f"Bearer {self.token}"):
            handler.send_reply(Reply(401, body=UNAUTHORIZED))
            return
        path, _, query = received.target.decode("latin-1").partition("?")
        try:
            page, served = self._page(path, query)
        except BadRequest as bad:
            handler.send_reply(Reply(400, body=error_body(bad.message, "invalid_request_error", bad.param, None)))
            return
        with self._lock:
            self.served.append(served)
        handler.send_reply(Reply(200, body=json.dumps(page, indent=2).encode()))

    def _page(self, path: str, query: str) -> tuple[dict[str, Any], Served]:
        params = parse_qs(query, keep_blank_values=True, strict_parsing=False, encoding="utf-8",
                          errors="strict")
        start_time = _integer(params, "start_time", required=True)
        end_time = _integer(params, "end_time", required=False)
        assert start_time is not None
        if end_time is None:
            end_time = max(day_start(self.until), start_time + DAY)
        if end_time <= start_time:
            raise BadRequest("end_time must be after start_time", "end_time")
        bucket_width = _single(params, "bucket_width") or "1d"
        if path == COSTS and bucket_width != "1d":
            raise BadRequest(f"Invalid value for bucket_width: {bucket_width!r}; costs support only '1d'.",
                             "bucket_width")
        if bucket_width not in ("1m", "1h", "1d"):
            raise BadRequest(f"Invalid value for bucket_width: {bucket_width!r}.", "bucket_width")
        if bucket_width != "1d":
            raise BadRequest(f"this fake serves only bucket_width=1d, not {bucket_width!r}", "bucket_width")
        limit = _integer(params, "limit", required=False)
        if limit is not None and not 1 <= limit <= MAX_LIMIT[path]:
            raise BadRequest(f"limit must be between 1 and {MAX_LIMIT[path]} for bucket_width=1d, "
                             f"got {limit}", "limit")
        dimensions = COST_DIMENSIONS if path == COSTS else USAGE_DIMENSIONS
        group_by = _array(params, "group_by")
        for value in group_by:
            if value not in dimensions:
                raise BadRequest(f"Invalid value for group_by: {value!r}. Supported values are "
                                 f"{', '.join(dimensions)}.", "group_by")
        cursor = _single(params, "page")
        first = day_start(day_of(start_time))  # buckets are whole UTC days
        if cursor is not None:
            resume = bucket_of_cursor(cursor)
            if resume is None or not first <= resume < end_time or (resume - first) % DAY:
                raise BadRequest(f"Invalid page cursor: {cursor!r}", "page")
            first = resume
        starts = list(range(first, end_time, DAY))
        size = min(limit or 7, self.page_size)
        shown, rest = starts[:size], starts[size:]
        data = [{"object": "bucket", "start_time": start, "end_time": start + DAY,
                 "results": self._results(path, day_of(start), group_by)} for start in shown]
        next_page = cursor_for(rest[0]) if rest else None
        page = {"object": "page", "data": data, "has_more": bool(rest), "next_page": next_page}
        return page, Served(path, start_time, end_time, limit, cursor, tuple(group_by), shown, bool(rest),
                            next_page)

    def _results(self, path: str, day: date, group_by: list[str]) -> list[dict[str, Any]]:
        if path == COSTS:
            return self._cost_results(day, set(group_by))
        return self._usage_results(day, set(group_by))

    def _cost_results(self, day: date, grouped: set[str]) -> list[dict[str, Any]]:
        groups: dict[tuple[Any, ...], dict[str, Any]] = {}
        for row in self.costs_rows:
            if row.day != day:
                continue
            values = {"project_id": row.project_id, "line_item": row.line_item, "api_key_id": row.api_key_id}
            key = tuple(values[d] if d in grouped else None for d in COST_DIMENSIONS)
            result = groups.get(key)
            if result is None:
                groups[key] = {
                    "object": "organization.costs.result",
                    "amount": {"value": row.value, "currency": "usd"},
                    "line_item": key[1], "project_id": key[0], "api_key_id": key[2],
                    "quantity": None, "quantity_unit": None}
            else:
                result["amount"]["value"] += row.value
        return list(groups.values())

    def _usage_results(self, day: date, grouped: set[str]) -> list[dict[str, Any]]:
        groups: dict[tuple[Any, ...], dict[str, Any]] = {}
        for row in self.usage_rows:
            if row.day != day:
                continue
            values = {"project_id": row.project_id, "user_id": row.user_id, "api_key_id": row.api_key_id,
                      "model": row.model, "batch": row.batch, "service_tier": row.service_tier}
            key = tuple(values[d] if d in grouped else None for d in USAGE_DIMENSIONS)
            result = groups.get(key)
            if result is None:
                groups[key] = {"object": "organization.usage.completions.result", **row.numbers,
                               **dict(zip(USAGE_DIMENSIONS, key))}
            else:
                for number, value in row.numbers.items():
                    result[number] += value
        return list(groups.values())


def _values(params: dict[str, list[str]], name: str) -> list[str]:
    return params.get(name, []) + params.get(name + "[]", [])


def _single(params: dict[str, list[str]], name: str) -> str | None:
    values = _values(params, name)
    if len(values) > 1:
        raise BadRequest(f"{name} given {len(values)} times", name)
    return values[0] if values else None


def _integer(params: dict[str, list[str]], name: str, required: bool) -> int | None:
    value = _single(params, name)
    if value is None:
        if required:
            raise BadRequest(f"Missing required parameter: '{name}'.", name)
        return None
    try:
        return int(value)
    except ValueError:
        raise BadRequest(f"Invalid value for {name}: {value!r}, expected an integer.", name) from None


def _array(params: dict[str, list[str]], name: str) -> list[str]:
    """An array parameter in any of its spellings: a[]=x&a[]=y, a=x&a=y, a=x,y."""
    return [part for value in _values(params, name) for part in value.split(",") if part]
