"""The fake Anthropic (``fake_anthropic.FakeAnthropic``) served on a real socket, by
``FakeUpstream``'s threads: for the tests that run the real daemon (``tests/process/``, the
README's blocks). Its paths (``/v1/organizations/...``) never meet OpenAI's, so one
``FakeUpstream`` can serve both fakes."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from tests.support.fake_analytics import COST as ANALYTICS_COST
from tests.support.fake_analytics import USAGE as ANALYTICS_USAGE
from tests.support.fake_anthropic import (
    API_KEYS,
    COSTS,
    MESSAGES,
    USERS,
    WORKSPACES,
    BadRequest,
    FakeAnthropic,
    anthropic_error,
)
from tests.support.tcp_upstream import FakeUpstream, Handler, Received, Reply


class AnthropicOnASocket:
    """The fake Anthropic's organization and ledgers, served by FakeUpstream's threads."""

    def __init__(self) -> None:
        self.fake = FakeAnthropic()

    def install(self, upstream: FakeUpstream) -> AnthropicOnASocket:
        routes = {API_KEYS: self.fake.list_api_keys, WORKSPACES: self.fake.list_workspaces,
                  USERS: self.fake.list_users, MESSAGES: self.fake.messages_report, COSTS: self.fake.cost_report}
        for path, route in routes.items():
            upstream.on(path, self.answering(route))
        for path in (ANALYTICS_COST, ANALYTICS_USAGE):
            upstream.on(path, self.analytics)
        return self

    def analytics(self, handler: Handler, received: Received) -> None:
        """The Usage and Cost Analytics API, over the organization's analytics ledgers."""
        path, _, query = received.target.decode("latin-1").partition("?")
        headers = {name.lower(): value for name, value in received.headers}
        status, body = self.fake.org.analytics.answer(path, parse_qsl(query, keep_blank_values=True), headers)
        handler.send_reply(Reply(status, body=json.dumps(body, indent=2).encode()))

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
