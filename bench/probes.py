"""The benchmark's plain requests, not timed: one GET, the sanity check, settling.

Before any run, one medium page goes through the proxy and must come back named as the
alias file says (``sanity_check``); between runs, the daemon's ``/metrics`` in-flight gauge
says when the last run's requests are over (``settle``). ``BenchError``, which every part of
the benchmark raises when its numbers would be meaningless, lives here, at the bottom.
"""

from __future__ import annotations

import http.client
import json
import re
import time
from urllib.parse import urlsplit

import pages

AUTH = "Authorization: Bearer sk-admin-bench"  # the fake upstream accepts any key
PATH = "/v1/organization/usage/completions"
DEFAULT_QUERY = "start_time=1730419200&group_by=api_key_id"


class BenchError(Exception):
    """Something that makes the numbers meaningless: reported, exit status 1."""


def get(base: str, target: str, timeout: float = 60.0) -> tuple[int, dict[str, str], bytes]:
    parts = urlsplit(base)
    if parts.scheme != "http" or not parts.hostname:
        raise BenchError(f"only http:// URLs can be measured, not {base!r}")
    connection = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
    try:
        connection.request("GET", target, headers={"Authorization": AUTH.split(": ", 1)[1]})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    except (OSError, http.client.HTTPException) as e:
        raise BenchError(f"GET {base}{target}: {e!r}") from None
    finally:
        connection.close()


def page_target(size: str, query: str) -> str:
    return f"{PATH}?{query}&size={size}"


def sanity_check(proxy: str, strict: bool) -> str:
    """One medium page through the proxy: every row gets api_key_name, and the named ones
    the alias file's name. Returns a one-line summary; raises BenchError otherwise."""
    status, headers, body = get(proxy, page_target("medium", DEFAULT_QUERY))
    if status != 200:
        raise BenchError(f"sanity check: the medium page through {proxy} answered {status}: {body[:300]!r}")
    try:
        document = json.loads(body)
        rows = [row for bucket in document["data"] for row in bucket["results"]]
    except (ValueError, KeyError, TypeError) as e:
        raise BenchError(f"sanity check: the medium page through {proxy} is not a usage page: {e!r}") from None
    expected = pages.aliases()
    wanted_rows = pages.SIZES["medium"][0] * pages.SIZES["medium"][1]
    if len(rows) != wanted_rows:
        raise BenchError(f"sanity check: {len(rows)} rows through {proxy}, the page has {wanted_rows}")
    missing = [row.get("api_key_id") for row in rows if "api_key_name" not in row]
    if missing:
        raise BenchError(f"sanity check: {len(missing)} of {len(rows)} rows came back without api_key_name"
                         f" (first: {missing[0]!r}); is {proxy} an orgproxy?")
    wrong = [(row["api_key_id"], row["api_key_name"]) for row in rows
             if row["api_key_id"] in expected and row["api_key_name"] != expected[row["api_key_id"]]]
    named = sum(1 for row in rows if row["api_key_id"] in expected)
    unknown = sum(1 for row in rows if row["api_key_id"] not in expected and row["api_key_name"] == "unknown")
    if wrong:
        message = (f"sanity check: {len(wrong)} of the {named} rows named in the alias file came back"
                   f" with another name (first: {wrong[0][0]} -> {wrong[0][1]!r},"
                   f" expected {expected[wrong[0][0]]!r})")
        if strict:
            raise BenchError(message)
        return f"WARNING: {message}; is the proxy using bench/fakeupstream.py --write-aliases' file?"
    return (f"medium page through orgproxy: {len(rows)} rows, all with api_key_name;"
            f" {named} named as the alias file says, {unknown} \"unknown\"")


def in_flight(proxy: str) -> int | None:
    try:
        status, _, body = get(proxy, "/metrics", timeout=10)
    except BenchError:
        return None
    match = re.search(rb"^orgproxy_requests_in_flight\s+([0-9.eE+]+)\s*$", body, re.MULTILINE)
    return int(float(match.group(1))) if status == 200 and match else None


def settle(proxy: str, timeout: float = 60.0) -> None:
    """Wait (bounded) until the daemon has no request in flight, so runs do not overlap."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        count = in_flight(proxy)
        if count is None:  # no /metrics: a fixed pause instead
            time.sleep(1.0)
            return
        if count == 0:
            time.sleep(0.2)
            return
        time.sleep(0.2)
    raise BenchError(f"{proxy} still had requests in flight {timeout:g} s after a run")

