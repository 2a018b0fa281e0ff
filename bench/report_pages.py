"""A month of daily costs for many keys, served as orgproxy answers them (names beside the
ids), for measuring orgproxy-report at scale: OpenAI's ``/v1/organization/costs`` (daily
buckets, ``limit`` buckets a page, a ``next_page`` cursor) and Anthropic's
``/v1/organizations/analytics/cost`` (one row per day and key, ``limit`` rows a page,
1000 unless asked) and ``/v1/organizations/me``.

Every page is made when it is asked for, deterministically, from the day and the key
alone: the fake holds no page, so that its memory does not grow with the keys and the
same run gives the same bytes. One row per key and day for each vendor: 5,000 keys for a
month of 31 days are 155,000 rows a vendor.

    .venv/bin/python bench/report_pages.py --keys 5000 --port 18998   # serve until Ctrl-C
"""

from __future__ import annotations

import argparse
import json
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

OPENAI_COSTS = "/v1/organization/costs"
ANTHROPIC_COST = "/v1/organizations/analytics/cost"
ME = "/v1/organizations/me"
ORGANIZATION = {"id": "0d7c1b9e-5f2a-4c3d-8e6f-1a2b3c4d5e6f", "name": "Bench Corp", "type": "organization"}
DAY = 86400
ANALYTICS_PAGE = 1000  # rows a page of the analytics API where the query sets no limit
# Every dimension of an analytics row's group, null unless grouped by (as the API sends it).
DIMENSIONS = ("product", "model", "context_window", "inference_geo", "speed", "slack_channel_id",
              "claude_tag_category", "claude_tag_user_id", "actor", "actor_type", "agent_id", "api_key_id",
              "deployment_id", "environment_id", "organization_id", "rbac_group_id", "service_tier", "session_id",
              "user_profile_id", "workspace_id", "cost_type", "token_type")


def cents(day: int, key: int) -> int:
    """Ten-thousandths of a cent, scattered: the same for the same day and key."""
    return (day * 7919 + key * 104729) % 9_000_000 + 1_000


def openai_result(day: int, key: int) -> dict[str, object]:
    amount = cents(day, key)
    return {"object": "organization.costs.result",
            "amount": {"value": float(f"{amount // 1_000_000}.{amount % 1_000_000:06d}"), "currency": "usd"},
            "line_item": "gpt-4o-2024-08-06, input", "project_id": f"proj_{key % 40:08x}",
            "project_name": f"project {key % 40}", "api_key_id": f"key_{key:016x}",
            "api_key_name": f"service-{key}-production", "api_key_redacted_value": f"sk-...{key % 10000:04d}",
            "quantity": amount * 4, "quantity_unit": "tokens"}


def anthropic_row(day: int, key: int, start: datetime) -> dict[str, object]:
    amount, begins = cents(day, key), start + timedelta(days=day)
    listed = amount + amount // 4  # a negotiated discount of a fifth
    group: dict[str, object] = dict.fromkeys(DIMENSIONS)
    group.update({"api_key_id": f"apikey_01{key:024X}", "workspace_id": f"wrkspc_01{key % 25:024X}",
                  "model": "claude-sonnet-4-5", "cost_type": "tokens", "token_type": "uncached_input_tokens",
                  "service_tier": "standard", "context_window": "0-200k",
                  "api_key_name": f"claude-service-{key}", "workspace_name": f"workspace {key % 25}"})
    return {"starting_at": begins.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "ending_at": (begins + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ"), "group": group,
            "cost": {"amount": f"{amount // 10_000}.{amount % 10_000:04d}", "currency": "USD",
                     "list_amount": f"{listed // 10_000}.{listed % 10_000:04d}", "requests": None}}


class Pages:
    """The pages of a range of days for ``keys`` keys."""

    def __init__(self, keys: int) -> None:
        self.keys = keys

    def openai(self, query: dict[str, str]) -> dict[str, object]:
        start, end = int(query["start_time"]), int(query["end_time"])
        first = int(query.get("page", start))
        limit = int(query.get("limit", 7))
        days = range(first, min(end, first + limit * DAY), DAY)
        epoch = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
        data = [{"object": "bucket", "start_time": t, "end_time": t + DAY,
                 "results": [openai_result(int((t - epoch) // DAY), key) for key in range(self.keys)]}
                for t in days]
        following = first + limit * DAY
        more = following < end
        return {"object": "page", "data": data, "has_more": more, "next_page": str(following) if more else None}

    def anthropic(self, query: dict[str, str]) -> dict[str, object]:
        start = datetime.fromisoformat(query["starting_at"].replace("Z", "+00:00"))
        end = datetime.fromisoformat(query["ending_at"].replace("Z", "+00:00"))
        total = (end - start).days * self.keys
        offset, limit = int(query.get("page", 0)), int(query.get("limit", ANALYTICS_PAGE))
        epoch_day = (start - datetime(2026, 1, 1, tzinfo=UTC)).days
        rows = [anthropic_row(epoch_day + n // self.keys, n % self.keys, start - timedelta(days=epoch_day))
                for n in range(offset, min(total, offset + limit))]
        more = offset + limit < total
        return {"data": rows, "has_more": more, "next_page": str(offset + limit) if more else None,
                "data_refreshed_at": "2026-11-02T06:00:00Z"}


class Handler(BaseHTTPRequestHandler):
    server: PageServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        url = urlsplit(self.path)
        query = dict(parse_qsl(url.query))
        if url.path == OPENAI_COSTS:
            body = self.server.pages.openai(query)
        elif url.path == ANTHROPIC_COST:
            body = self.server.pages.anthropic(query)
        elif url.path == ME:
            body = ORGANIZATION
        else:
            self.send_error(404)
            return
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class PageServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, keys: int, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), Handler)
        self.pages = Pages(keys)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def start(self) -> PageServer:
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    options.add_argument("--keys", type=int, default=5000)
    options.add_argument("--port", type=int, default=18998)
    args = options.parse_args()
    server = PageServer(args.keys, args.port)
    print(f"serving a month of {args.keys} keys on {server.url}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
