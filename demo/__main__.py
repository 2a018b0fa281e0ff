"""``make demo``: orgproxy over a local fake OpenAI and Anthropic organization, for someone
without admin keys yet.

    python -m demo [--port 18080] [--state-dir DIR] [daemon options...]

Serves the demo's organizations (``demo.upstream``) on a free loopback port, starts ``twistd
orgproxy`` in front of them with the demo's admin keys (discovery and the cost series on),
prints the dashboard's address once the daemon serves, and stops both on Ctrl-C (SIGINT) or
SIGTERM. The daemon is given the demo's budgets (``demo/budgets.toml``). Options it does not
know are the daemon's. The daemon's state (its history of names)
goes to a temporary directory removed at the end, unless ``--state-dir`` says where.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from demo.organization import today_utc
from demo.upstream import ANTHROPIC_ADMIN_KEY, OPENAI_ADMIN_KEY, DemoUpstream, serve

TWISTD = str(Path(sys.executable).with_name("twistd"))
BUDGETS = Path(__file__).with_name("budgets.toml")
READY = "orgproxy serving on"
# Discovery every minute rather than every 15: the deleted keys leave the lists within a minute.
DISCOVERY_INTERVAL = "60"


def daemon_command(port: int, upstream: str, state_dir: str, more: Sequence[str]) -> list[str]:
    return [TWISTD, "--nodaemon", "--pidfile=", "orgproxy", "--port", f"tcp:{port}:interface=127.0.0.1",
            "--upstream", upstream, "--anthropic-upstream", upstream, "--state-dir", state_dir,
            "--discovery-interval", DISCOVERY_INTERVAL, "--budgets", str(BUDGETS), *more]


def daemon_environment() -> dict[str, str]:
    """The demo's admin keys, and none of the machine's orgproxy settings or credentials: a
    real admin key must never be sent to the fake, nor the demo's to a provider."""
    env = {name: value for name, value in os.environ.items()
           if not name.startswith("ORGPROXY_") and name != "CREDENTIALS_DIRECTORY"}
    env.update(OPENAI_ADMIN_KEY=OPENAI_ADMIN_KEY, ANTHROPIC_ADMIN_KEY=ANTHROPIC_ADMIN_KEY)
    return env


def banner(port: int, upstream: DemoUpstream) -> str:
    base = f"http://127.0.0.1:{port}"
    keys = len(upstream.openai.keys) + len(upstream.anthropic.names)
    return "\n".join((
        f"orgproxy demo: a fake OpenAI and Anthropic organization ({keys} keys, costs since "
        f"{upstream.usage.since}) at {upstream.url}",
        f"orgproxy demo: the dashboard is at {base}/orgproxy/",
        f"orgproxy demo: also {base}/metrics and {base}/health; Ctrl-C stops the demo",
    ))


def run(port: int, state_dir: str, more: Sequence[str]) -> int:
    upstream = serve(today_utc())
    daemon = subprocess.Popen(daemon_command(port, upstream.url, state_dir, more), env=daemon_environment(),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              start_new_session=True)  # a Ctrl-C reaches it once, from here

    def stop(signum: int, frame: FrameType | None) -> None:
        if daemon.poll() is None:
            daemon.send_signal(signal.SIGTERM)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        assert daemon.stdout is not None
        for line in daemon.stdout:  # until the daemon has stopped and closed it
            print(line, end="", flush=True)
            if READY in line:
                print(banner(port, upstream), flush=True)
        code = daemon.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
        upstream.stop()
    print(f"orgproxy demo: stopped (the daemon exited with {code})", flush=True)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=18080, help="the daemon's port on 127.0.0.1 (18080)")
    parser.add_argument("--state-dir", help="the daemon's state directory (a temporary one by default)")
    args, more = parser.parse_known_args(argv)
    if args.state_dir:
        return run(args.port, args.state_dir, more)
    with tempfile.TemporaryDirectory(prefix="orgproxy-demo-") as state_dir:
        return run(args.port, state_dir, more)


if __name__ == "__main__":
    sys.exit(main())
