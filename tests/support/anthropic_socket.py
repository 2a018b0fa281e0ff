"""The fake Anthropic (``fake_anthropic.FakeAnthropic``) and its analytics API
(``fake_analytics.AnalyticsApi``) served on a real socket, by ``FakeUpstream``'s threads: for
the tests that run the real daemon (``tests/process/``, the README's blocks) and for ``make
demo``. Their paths (``/v1/organizations/...``) never meet OpenAI's, so one ``FakeUpstream``
can serve every fake. ``AnthropicOnASocket`` also answers
``/v1/organizations/me``."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

from tests.support.fake_analytics import COST, USAGE, AnalyticsApi
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
    """The fake Anthropic's organization and ledgers (its analytics ledgers too), served by
    FakeUpstream's threads."""

    def __init__(self, org: AnthropicOrg | None = None) -> None:
        self.fake = FakeAnthropic(org)

    def install(self, upstream: FakeUpstream) -> AnthropicOnASocket:
        routes = {API_KEYS: self.fake.list_api_keys, WORKSPACES: self.fake.list_workspaces,
                  USERS: self.fake.list_users, MESSAGES: self.fake.messages_report, COSTS: self.fake.cost_report,
                  ME: lambda pairs: self.fake.example_for("GET", ME)[1]}
        for path, route in routes.items():
            upstream.on(path, self.answering(route))
        AnalyticsOnASocket(self.fake.org.analytics).install(upstream)
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
