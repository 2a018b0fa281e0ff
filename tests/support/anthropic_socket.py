"""The fake Anthropic (``fake_anthropic.FakeAnthropic``) and its analytics API
(``fake_analytics.AnalyticsApi``) served on a real socket, by ``FakeUpstream``'s threads: for
the tests that run the real daemon (``tests/process/``, the README's blocks) and for ``make
demo``. Their paths (``/v1/organizations/...``) never meet OpenAI's, so one ``FakeUpstream``
can serve every fake. ``AnthropicOnASocket`` serves the analytics API over its organization's
usage (``analytics_of``), and ``/v1/organizations/me``."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

from tests.support.fake_analytics import COST, USAGE, AnalyticsApi, Entry
from tests.support.fake_anthropic import (
    API_KEYS,
    COSTS,
    MESSAGES,
    USERS,
    WORKSPACES,
    AnthropicOrg,
    BadRequest,
    FakeAnthropic,
    anthropic_error,
)
from tests.support.tcp_upstream import FakeUpstream, Handler, Received, Reply


class AnthropicOnASocket:
    """The fake Anthropic's organization and ledgers, served by FakeUpstream's threads."""

    def __init__(self, org: AnthropicOrg | None = None) -> None:
        self.fake = FakeAnthropic(org)
        self.analytics = AnalyticsOnASocket(analytics_of(self.fake.org.usage))

    def install(self, upstream: FakeUpstream) -> AnthropicOnASocket:
        routes = {API_KEYS: self.fake.list_api_keys, WORKSPACES: self.fake.list_workspaces,
                  USERS: self.fake.list_users, MESSAGES: self.fake.messages_report, COSTS: self.fake.cost_report,
                  ME: lambda pairs: self.fake.example_for("GET", ME)[1]}
        for path, route in routes.items():
            upstream.on(path, self.answering(route))
        self.analytics.install(upstream)
        return self

    @staticmethod
    def answering(route: Callable[[list[tuple[str, str]]], Any]) -> Callable[[Handler, Received], None]:
        def answer(handler: Handler, received: Received) -> None:
            pairs = parse_qsl(received.target.decode("latin-1").partition("?")[2], keep_blank_values=True)
            try:
                status, body = 200, route(pairs)
            except BadRequest as e:
                status, body = 400, anthropic_error(400, str(e))
            handler.send_reply(Reply(status, body=json.dumps(body, indent=2).encode()))
        return answer


class AnalyticsOnASocket:
    """The analytics API over ``api``'s ledgers, served by FakeUpstream's threads; ``now``,
    where given, is asked for the time at each request (a long-running demo's today moves)."""

    def __init__(self, api: AnalyticsApi, now: Callable[[], datetime] | None = None) -> None:
        self.api = api
        self.now = now

    def install(self, upstream: FakeUpstream) -> AnalyticsOnASocket:
        upstream.on(COST, self.answer)
        upstream.on(USAGE, self.answer)
        return self

    def answer(self, handler: Handler, received: Received) -> None:
        path, _, query = received.target.decode("latin-1").partition("?")
        if self.now is not None:
            self.api.now = self.now()
        status, body = self.api.answer(path, parse_qsl(query, keep_blank_values=True),
                                       {name.lower(): value for name, value in received.headers})
        handler.send_reply(Reply(status, body=json.dumps(body, indent=2).encode()))


ME = "/v1/organizations/me"
# Cents a token (a million tokens at $3 in, $15 out, $0.30 read from the cache), and a web search.
PRICES = {"uncached_input_tokens": Decimal("0.0003"), "output_tokens": Decimal("0.0015"),
          "cache_read_input_tokens": Decimal("0.00003")}


def analytics_of(usage: list[dict[str, Any]]) -> AnalyticsApi:
    """The analytics API over an organization's usage ledger (``AnthropicOrg.usage``): its
    tokens, and what they cost (PRICES), per key, workspace, model and token type."""
    costs, used = [], []
    for entry in usage:
        dimensions = {name: entry.get(name) for name in ("api_key_id", "workspace_id", "model")}
        tokens = {name: entry.get(name, 0) for name in PRICES}
        tokens.update(entry.get("cache_creation", {}))
        tokens["web_search_requests"] = entry.get("web_search_requests", 0)
        used.append(Entry(entry["day"], dimensions, requests=1, tokens=tokens))
        for token_type, price in PRICES.items():
            if entry.get(token_type):
                costs.append(Entry(entry["day"], {**dimensions, "cost_type": "tokens", "token_type": token_type},
                                   str(price * entry[token_type]), requests=1))
        if entry.get("web_search_requests"):
            costs.append(Entry(entry["day"], {**dimensions, "cost_type": "web_search"},
                               str(entry["web_search_requests"]), requests=entry["web_search_requests"]))
    return AnalyticsApi(costs=costs, usage=used)
