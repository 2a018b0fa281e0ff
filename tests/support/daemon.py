"""Start the real daemon, ``twistd -n orgproxy``, as a subprocess on a free TCP port, logging
JSON (``--log-format json``): tests wait for and look at its events by their ``event``
identifier and fields, never by a line's wording."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

TWISTD = str(Path(sys.executable).with_name("twistd"))
SERVING = "serving"  # the event the daemon logs last as it starts: it serves, and takes signals


def event_of(line: str) -> dict[str, Any] | None:
    """A JSON log line's event; None for any other line (twistd's own words before its
    logging starts, a traceback written to standard error)."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def matches(record: dict[str, Any], event: str, fields: Mapping[str, Any]) -> bool:
    return record.get("event") == event and all(record.get(name) == value for name, value in fields.items())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def daemon_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    # No ORGPROXY_* from the machine leaks into a test, nor an admin key of Anthropic's:
    # discovery would call api.anthropic.com, which a test must never reach.
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORGPROXY_") and k != "ANTHROPIC_ADMIN_KEY"}
    # A relative PYTHONPATH (PYTHONPATH=src) would not hold in the daemon's own directory:
    # it would run the installed package instead of the sources.
    if env.get("PYTHONPATH"):
        env["PYTHONPATH"] = os.pathsep.join(os.path.abspath(p) for p in env["PYTHONPATH"].split(os.pathsep))
    env.update(extra or {})
    return env


class Daemon:
    """A running ``twistd -n orgproxy``; its output is collected line by line, and its
    events (``events``) parsed from the JSON lines."""

    def __init__(self, args: Sequence[str], cwd: Path, env: Mapping[str, str] | None = None,
                 port: int | None = None, twistd_args: Sequence[str] = (),
                 preexec_fn: Callable[[], None] | None = None, twistd: str = TWISTD):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.lines: list[str] = []
        self._changed = threading.Condition()
        # twistd: another install's (a venv of the system's Python, say) rather than this one's.
        command = [twistd, "--nodaemon", "--pidfile=", *twistd_args, "orgproxy",
                   "--port", f"tcp:{self.port}:interface=127.0.0.1", "--log-format", "json", *args]
        # preexec_fn: what the child does before it runs twistd (resource limits, say).
        self.process = subprocess.Popen(command, cwd=cwd, env=daemon_env(env), stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True, preexec_fn=preexec_fn)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def output(self) -> str:
        with self._changed:
            return "\n".join(self.lines)

    @property
    def events(self) -> list[dict[str, Any]]:
        """Every event logged so far, in order (twistd's own among them)."""
        with self._changed:
            lines = list(self.lines)
        return [record for record in map(event_of, lines) if record is not None]

    def logged(self, event: str, **fields: Any) -> list[dict[str, Any]]:
        """The events so far with this ``event`` identifier and these field values."""
        return [record for record in self.events if matches(record, event, fields)]

    def wait_for(self, event: str, within: float = 20.0, start: int = 0, **fields: Any) -> dict[str, Any]:
        """The first event (from output line ``start`` on) with this ``event`` identifier and
        these field values, once it is logged (within ``within`` seconds)."""
        deadline = time.monotonic() + within
        with self._changed:
            while True:
                for line in self.lines[start:]:
                    record = event_of(line)
                    if record is not None and matches(record, event, fields):
                        return record
                left = deadline - time.monotonic()
                if left <= 0 or (self.process.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError(f"no event {event!r} with {fields}; output:\n" + "\n".join(self.lines))
                self._changed.wait(left)

    def wait_ready(self) -> Daemon:
        self.wait_for(SERVING)
        return self

    def wait_exit(self, timeout: float = 20.0) -> int:
        code = self.process.wait(timeout)
        self._reader.join(5)
        return code

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.wait_exit()
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.wait_exit()
