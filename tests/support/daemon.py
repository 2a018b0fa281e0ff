"""Start the real daemon, ``twistd -n orgproxy``, as a subprocess on a free TCP port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

TWISTD = str(Path(sys.executable).with_name("twistd"))
READY = "orgproxy serving on"


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
    """A running ``twistd -n orgproxy``; its output is collected line by line."""

    def __init__(self, args: Sequence[str], cwd: Path, env: Mapping[str, str] | None = None,
                 port: int | None = None, twistd_args: Sequence[str] = (),
                 preexec_fn: Callable[[], None] | None = None, twistd: str = TWISTD):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.lines: list[str] = []
        self._changed = threading.Condition()
        # twistd: another install's (a venv of the system's Python, say) rather than this one's.
        command = [twistd, "--nodaemon", "--pidfile=", *twistd_args, "orgproxy",
                   "--port", f"tcp:{self.port}:interface=127.0.0.1", *args]
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

    def wait_for(self, text: str, timeout: float = 20.0, start: int = 0) -> str:
        """The first output line (from line ``start`` on) containing ``text``."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self.lines[start:]:
                    if text in line:
                        return line
                left = deadline - time.monotonic()
                if left <= 0 or (self.process.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError(f"no line with {text!r}; output:\n" + "\n".join(self.lines))
                self._changed.wait(left)

    def wait_ready(self) -> Daemon:
        self.wait_for(READY)
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
