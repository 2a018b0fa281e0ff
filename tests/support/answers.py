"""What a test got back from the proxy, in memory or over a socket."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

# The admin key every test sends; it must never show up in logs, errors or files.
TOKEN = "sk-admin-TEST-never-logged-5f2c9a"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@dataclass
class Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        return values[-1] if values else None

    def json(self) -> Any:
        return json.loads(self.body)

    def error(self) -> dict[str, Any]:
        """The OpenAI-shaped error, checked for its exact shape."""
        body = self.json()
        assert list(body) == ["error"], body
        assert set(body["error"]) == {"message", "type", "param", "code"}, body
        assert isinstance(body["error"]["message"], str) and body["error"]["message"]
        return body["error"]
