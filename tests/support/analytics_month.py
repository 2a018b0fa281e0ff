"""A month (October 2026) of Anthropic's analytics costs and usage, as ledger entries of the
pure fake (``fake_analytics.AnalyticsApi``), served on the socket fake behind a stand-in for
orgproxy's naming: what ``orgproxy-report --provider anthropic`` (or ``all``) reads.

The month has two keys of one name (``billing-batch``, rotated mid-month, both in use for
three days), a key nobody named, a key in the Default Workspace (``workspace_id: null``),
the Console's usage (``api_key_id: null``), and amounts in fractional cents with a list
amount beside most of them. Tests compute what a report should say straight from
``MONTH.costs`` / ``MONTH.usage`` and ``NAMES`` (never through the code under test).

``AnalyticsNamesBesideIds`` plays orgproxy as far as the report needs it: ``group_by[]``
by a name is sent as the id, and each row's ``group`` gets the name beside each id
(``unknown`` for an id nobody named; for a null grouped id, the Console's and the Default
Workspace's names). It deliberately merges nothing: rows of two keys that share a name
arrive apart, and the report must add them up itself.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from urllib.parse import parse_qsl

from tests.support.fake_analytics import COST, USAGE, AnalyticsApi, Entry
from tests.support.tcp_upstream import FakeUpstream, Handler, Received, Reply

ME = "/v1/organizations/me"
ORGANIZATION = {"id": "5f3c2a10-7d4e-4b8a-9c21-0e6f1a2b3c4d", "name": "Example Corp", "type": "organization"}
SINCE, UNTIL = date(2026, 10, 1), date(2026, 11, 1)
NOW = datetime(2026, 11, 5, 8, 0, tzinfo=UTC)
RESEARCH, PLATFORM = "wrkspc_01JwQvzr7rXLA5AGx3HKfFUJ", "wrkspc_01Kq7TnB4vXe9RpL2sMcYdWz"
NAMES = {
    "apikey_01Rj2N8SVvo6BePZj99NhmiT": "billing-batch",
    "apikey_01Hq9XcV3bT7nYpL5wRkAeJs": "billing-batch",
    "apikey_01Zr5MnW8cQ2vBtH6gKdLfPx": "ci-deploy-bot",
    "apikey_01Dw4KpS9eJ1xNmR7tVbQyGc": "legacy-default-workspace-key",
    RESEARCH: "Research",
    PLATFORM: "Platform",
}
UNKNOWN_KEY = "apikey_01Uu0NoBodyNamedThisKey00"
NULL_NAMES = {"api_key_id": "Console", "workspace_id": "Default"}
MODELS = ("claude-sonnet-4-5", "claude-haiku-4-5")
TOKEN_TYPES = ("uncached_input_tokens", "output_tokens", "cache_read_input_tokens")


@dataclass(frozen=True)
class Key:
    id: str | None  # None: the Console's usage, which no key made
    workspace: str | None  # None: the Default Workspace
    cents_a_day: int
    first_day: int = 0
    last_day: int = 30


KEYS = (
    Key("apikey_01Rj2N8SVvo6BePZj99NhmiT", RESEARCH, 90_000, last_day=15),
    Key("apikey_01Hq9XcV3bT7nYpL5wRkAeJs", RESEARCH, 110_000, first_day=13),
    Key("apikey_01Zr5MnW8cQ2vBtH6gKdLfPx", PLATFORM, 40_000),
    Key("apikey_01Dw4KpS9eJ1xNmR7tVbQyGc", None, 25_000),
    Key(UNKNOWN_KEY, PLATFORM, 3_000),
    Key(None, None, 1_500),
)


def name_of(id_: str | None, field: str) -> str:
    """What orgproxy puts beside ``id_`` when the answer is grouped by ``field``."""
    return NULL_NAMES[field] if id_ is None else NAMES.get(id_, "unknown")


def _active() -> Iterator[tuple[date, Key]]:
    for offset in range((UNTIL - SINCE).days):
        for key in KEYS:
            if key.first_day <= offset <= key.last_day:
                yield SINCE + timedelta(days=offset), key


def _costs() -> list[Entry]:
    entries = []
    for day, key in _active():
        rng = random.Random(f"anthropic-costs:{day}:{key.id}")
        for model in MODELS:
            for token_type in TOKEN_TYPES:
                # Fractional cents ("1520.4417"), a list price above most (a negotiated discount).
                cents = Decimal(rng.randint(1, key.cents_a_day * 100)).scaleb(-4)
                listed = (cents * Decimal("1.25")).quantize(Decimal("0.000001")) if rng.random() < 0.8 else None
                entries.append(Entry(day.isoformat(), {"api_key_id": key.id, "workspace_id": key.workspace,
                                                       "model": model, "cost_type": "tokens", "token_type": token_type,
                                                       "service_tier": "standard", "context_window": "0-200k"},
                                     str(cents), None if listed is None else str(listed), rng.randint(1, 400)))
        if key.id is not None and rng.random() < 0.5:
            entries.append(Entry(day.isoformat(), {"api_key_id": key.id, "workspace_id": key.workspace,
                                                   "cost_type": "web_search"}, "25", None, 25))
    return entries


def _usage() -> list[Entry]:
    entries = []
    for day, key in _active():
        rng = random.Random(f"anthropic-usage:{day}:{key.id}")
        for model in MODELS:
            tokens = {name: rng.randint(0, 2_000_000) for name in
                      ("uncached_input_tokens", "output_tokens", "cache_read_input_tokens",
                       "ephemeral_5m_input_tokens", "ephemeral_1h_input_tokens")}
            tokens["web_search_requests"] = rng.randint(0, 30)
            entries.append(Entry(day.isoformat(), {"api_key_id": key.id, "workspace_id": key.workspace,
                                                   "model": model}, requests=rng.randint(1, 900), tokens=tokens))
    return entries


MONTH = AnalyticsApi(costs=_costs(), usage=_usage(), now=NOW)


class AnalyticsNamesBesideIds:
    """orgproxy's naming, as far as the report needs it, in front of ``api``'s ledgers; and
    ``/v1/organizations/me``. ``asked`` holds every query it answered, by path."""

    def __init__(self, api: AnalyticsApi = MONTH, page_size: int | None = 1000) -> None:
        self.api = api
        self.page_size = page_size  # rows a page where the query sets no limit (None: the API's default)
        self.asked: list[tuple[str, list[tuple[str, str]], dict[str, str]]] = []

    def install(self, upstream: FakeUpstream) -> AnalyticsNamesBesideIds:
        upstream.on(COST, self.answer)
        upstream.on(USAGE, self.answer)
        upstream.on(ME, self.me)
        return self

    def me(self, handler: Handler, received: Received) -> None:
        handler.send_reply(Reply(body=json.dumps(ORGANIZATION).encode()))

    def answer(self, handler: Handler, received: Received) -> None:
        path, _, query = received.target.decode("latin-1").partition("?")
        pairs = [(k, v.replace("_name", "_id") if k == "group_by[]" else v)
                 for k, v in parse_qsl(query, keep_blank_values=True)]
        if self.page_size is not None and not any(k == "limit" for k, _ in pairs):
            pairs.append(("limit", str(self.page_size)))
        headers = {name.lower(): value for name, value in received.headers}
        self.asked.append((path, pairs, headers))
        status, body = self.api.answer(path, pairs, headers)
        if status == 200:
            grouped = {v for k, v in pairs if k == "group_by[]"}
            for row in body["data"]:
                group = row["group"]
                for field in ("api_key_id", "workspace_id"):
                    if field in grouped:
                        group[field.replace("_id", "_name")] = name_of(group[field], field)
        handler.send_reply(Reply(status, body=json.dumps(body).encode()))

    def pages(self, path: str) -> int:
        return sum(1 for asked, _, _ in self.asked if asked == path)


def cost_cents(by: tuple[str, ...]) -> dict[tuple[object, ...], Decimal]:
    """The month's cents per group over ``by`` (``date``, ``api_key_name``, ``workspace_name``,
    any dimension), the unknown key apart by its id, as the report keeps it."""
    sums: dict[tuple[object, ...], Decimal] = {}
    for entry in MONTH.costs:
        group = tuple(_value(entry, field) for field in by)
        sums[group] = sums.get(group, Decimal(0)) + Decimal(entry.amount)
    return sums


def usage_sums(by: tuple[str, ...], measure: str) -> dict[tuple[object, ...], int]:
    sums: dict[tuple[object, ...], int] = {}
    for entry in MONTH.usage:
        group = tuple(_value(entry, field) for field in by)
        value = entry.requests if measure == "requests" else entry.tokens.get(measure, 0)
        sums[group] = sums.get(group, 0) + value
    return sums


def _value(entry: Entry, field: str) -> object:
    if field == "date":
        return entry.day
    if field.endswith("_name"):
        id_field = field.replace("_name", "_id")
        return name_of(entry.dimensions.get(id_field), id_field)
    return entry.dimensions.get(field)
