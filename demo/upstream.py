"""The demo's organizations (``demo.organization``) served on one local socket, as OpenAI's and
Anthropic's Admin APIs serve them: the lists discovery walks, OpenAI's costs and completions
usage, Anthropic's analytics (cost and usage) and its older usage and cost reports.

The serving is the test suite's own fakes (``tests/support/``): they already answer as the
providers' references say (paging, cursors, grouping, errors), and they are checked against
the references' examples by the suite. Writing them a second time for the demo would make two
models of each API to keep true; these are the ones that are kept true.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from demo.organization import AnthropicDemo, OpenAIDemo, anthropic_demo, first_day, openai_demo
from tests.support.anthropic_socket import AnalyticsOnASocket, AnthropicOnASocket
from tests.support.fake_admin import PROJECTS
from tests.support.fake_analytics import AnalyticsApi
from tests.support.fake_usage import FakeUsage
from tests.support.tcp_upstream import FakeUpstream, Handler, Received, TcpAdmin

# The admin keys the demo daemon is given, and the only ones the fakes accept for costs.
OPENAI_ADMIN_KEY = "sk-admin-orgproxy-demo-not-a-real-key"
ANTHROPIC_ADMIN_KEY = "sk-ant-admin01-orgproxy-demo-not-a-real-key"


class DeletingAdmin(TcpAdmin):
    """OpenAI's lists; the keys in ``deleted`` are listed by the first walk of discovery only,
    then deleted (as a person deletes a key in the console): the daemon keeps the names it
    learned in its history, while the costs go on showing the ids."""

    def __init__(self, upstream: FakeUpstream, demo: OpenAIDemo) -> None:
        self.deleted = demo.deleted
        self.walks_begun = 0
        super().__init__(upstream, demo.org)

    def _serve(self, handler: Handler, received: Received) -> None:
        path, _, query = received.target.decode("latin-1").partition("?")
        if path == PROJECTS and "after=" not in query:
            self.walks_begun += 1
            if self.walks_begun == 2:
                for project, keys in self.deleted.items():
                    for key in keys:
                        self.delete_key(project, key)
        super()._serve(handler, received)


@dataclass
class DemoUpstream:
    server: FakeUpstream
    openai: OpenAIDemo
    anthropic: AnthropicDemo
    usage: FakeUsage  # OpenAI's costs and usage

    @property
    def url(self) -> str:
        return self.server.url

    def stop(self) -> None:
        self.server.stop()


def serve(today: date) -> DemoUpstream:
    """Both organizations, with costs from the first of last month to ``today`` included,
    on a FakeUpstream of their own (a free loopback port), started."""
    openai, anthropic = openai_demo(today), anthropic_demo(today)
    server = FakeUpstream()
    DeletingAdmin(server, openai)
    usage = FakeUsage(since=first_day(today), until=today + timedelta(days=1), token=OPENAI_ADMIN_KEY,
                      page_size=31, keys=openai.keys).install(server)
    AnthropicOnASocket(anthropic.org).install(server)
    analytics = AnalyticsApi(costs=anthropic.costs, usage=anthropic.usage, now=datetime.now(UTC),
                             data_refreshed_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:00:00Z"))
    AnalyticsOnASocket(analytics, now=lambda: datetime.now(UTC)).install(server)
    return DemoUpstream(server.start(), openai, anthropic, usage)
