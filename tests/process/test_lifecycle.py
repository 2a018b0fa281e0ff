"""Stopping cleanly, and running under a real supervisord with the shipped program section."""

from __future__ import annotations

import configparser
import getpass
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from xmlrpc.client import ServerProxy

import pytest
from supervisor.xmlrpc import SupervisorTransport

from orgproxy.tap import DEFAULTS
from tests.conftest import ROOT, TOKEN, assert_clean_output
from tests.support.daemon import TWISTD, Daemon, daemon_env, free_port
from tests.support.fake_admin import sample_org
from tests.support.readme_setup import made_by, setup_lines
from tests.support.fake_usage import FakeUsage
from tests.support.tcp_upstream import FakeUpstream, Handler, Received, Reply, TcpAdmin, hold
from tests.support.raw_http import Answer, call

COSTS = "/v1/organization/costs"
SUPERVISORD = str(Path(sys.executable).with_name("supervisord"))


def released_by(event: threading.Event):  # type: ignore[no-untyped-def]
    """A behaviour that answers only once the test sets ``event``."""
    def answer(handler: Handler, received: Received) -> None:
        event.wait(20)
        handler.send_reply(Reply(body=b'{"api_key_id": "key_1234567890abcdef"}'))
    return answer


def in_background(target: str, daemon: Daemon) -> tuple[threading.Thread, list[Answer | BaseException]]:
    results: list[Answer | BaseException] = []

    def run() -> None:
        try:
            results.append(call(daemon.url, target))
        except BaseException as e:  # noqa: BLE001 - handed to the test
            results.append(e)
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, results


def wait_for_request(upstream: FakeUpstream, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not upstream.received:
        assert time.monotonic() < deadline, "the request never reached the upstream"
        time.sleep(0.01)  # polling an observable fact


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def test_sigterm_lets_a_request_in_flight_finish_then_exits_0(upstream: FakeUpstream, aliases: Path,
                                                             tmp_path: Path) -> None:
    release = threading.Event()
    upstream.on(COSTS, released_by(release))
    daemon = Daemon(["--upstream", upstream.url, "--aliases", str(aliases)], cwd=tmp_path).wait_ready()
    try:
        thread, results = in_background(COSTS + "?start_time=1", daemon)
        wait_for_request(upstream)
        daemon.process.send_signal(signal.SIGTERM)
        daemon.wait_for("Waiting up to 10 s for 1 request in flight")
        assert refused(daemon.port), "still accepting connections after SIGTERM"
        assert daemon.process.poll() is None, "exited with a request in flight"
        release.set()
        thread.join(20)
        answer = results[0]
        assert isinstance(answer, Answer), answer
        assert answer.status == 200
        assert answer.json() == {"api_key_id": "key_1234567890abcdef",
                                 "api_key_name": "checkout-service-production"}
        assert daemon.wait_exit() == 0
    finally:
        release.set()
        daemon.stop()
    assert_clean_output(daemon)


def test_shutdown_timeout_bounds_the_wait_for_requests_in_flight(upstream: FakeUpstream,
                                                                 tmp_path: Path) -> None:
    upstream.on(COSTS, hold())
    daemon = Daemon(["--upstream", upstream.url, "--shutdown-timeout", "0.5"], cwd=tmp_path).wait_ready()
    try:
        thread, results = in_background(COSTS + "?start_time=1", daemon)
        wait_for_request(upstream)
        daemon.process.send_signal(signal.SIGTERM)
        assert daemon.wait_exit(timeout=15) == 0
        assert "1 request still in flight after 0.5 s; stopping anyway" in daemon.output
        thread.join(20)
        assert not isinstance(results[0], Answer)  # the connection was closed, not answered
    finally:
        daemon.stop()
    assert_clean_output(daemon)


# --- supervisord ---------------------------------------------------------------------------

SHIPPED = ROOT / "etc" / "supervisor" / "orgproxy.conf"


def supervisor_section_of_the_readme() -> str:
    readme = (ROOT / "README.md").read_text()
    return readme[readme.index("**supervisor**"):readme.index("**systemd**")]


def substituted_program(tmp_path: Path, aliases: Path, port: int) -> str:
    """The shipped program section with exactly the changes the README names, to this
    machine's paths and user; the directories and the admin key file made as the README says."""
    text = SHIPPED.read_text()
    admin_key = tmp_path / "openai-admin-key"
    admin_key.write_text(TOKEN + "\n")
    admin_key.chmod(0o600)
    replacements = {
        "/opt/orgproxy/.venv/bin/twistd": TWISTD,
        "/etc/orgproxy/aliases.toml": str(aliases),
        "/etc/orgproxy/openai-admin-key": str(admin_key),
        "tcp:18080:": f"tcp:{port}:",
        "/var/lib/orgproxy": str(tmp_path / "lib"),
        "/var/log/orgproxy": str(tmp_path / "log"),
        "user=orgproxy": f"user={getpass.getuser()}",
    }
    readme = supervisor_section_of_the_readme()
    for shipped, here in replacements.items():
        assert shipped in text, f"{shipped} is no longer in {SHIPPED}"
        assert f"`{shipped}`" in readme, f"the README does not name {shipped} as a change to make"
        text = text.replace(shipped, here)
    for directory in ("lib", "log"):  # the README's `install -d` lines
        (tmp_path / directory).mkdir(mode=0o700)
    return text


class Supervisor:
    def __init__(self, tmp_path: Path, program: str, env: dict[str, str]):
        (tmp_path / "orgproxy.conf").write_text(program)
        self.conf = tmp_path / "supervisord.conf"
        self.log = tmp_path / "supervisord.log"
        self.program_log = tmp_path / "log" / "orgproxy.log"
        socket_path = tmp_path / "supervisor.sock"
        self.conf.write_text(f"""
[unix_http_server]
file={socket_path}

[supervisord]
nodaemon=true
logfile={self.log}
pidfile={tmp_path}/supervisord.pid
childlogdir={tmp_path}

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[include]
files = {tmp_path}/orgproxy.conf
""")
        self.process = subprocess.Popen([SUPERVISORD, "-c", str(self.conf)], env=daemon_env(env),
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # What supervisorctl does, without starting a Python process per command.
        self.rpc = ServerProxy("http://127.0.0.1",
                               transport=SupervisorTransport(serverurl=f"unix://{socket_path}")).supervisor

    def wait_in_log(self, path: Path, text: str, after: int = 0, timeout: float = 20) -> str:
        deadline = time.monotonic() + timeout
        while True:
            content = path.read_text() if path.exists() else ""
            if text in content[after:]:
                return content
            assert time.monotonic() < deadline, f"{text!r} never appeared in {path}:\n{content}"
            time.sleep(0.05)  # polling a file for an observable fact

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                self.rpc.shutdown()  # supervisorctl shutdown
            except OSError:
                self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


@pytest.fixture
def supervised(tmp_path: Path, aliases: Path, upstream: FakeUpstream) -> Iterator[tuple[Supervisor, str]]:
    # OpenAI as discovery and the cost series find it: the Admin API's lists, a month of costs.
    TcpAdmin(upstream, sample_org())
    FakeUsage(token=TOKEN).install(upstream)
    port = free_port()
    supervisor = Supervisor(tmp_path, substituted_program(tmp_path, aliases, port),
                            {"ORGPROXY_UPSTREAM": upstream.url})
    try:
        for started in ("orgproxy serving on", "OpenAI discovery (start) learned", "OpenAI cost series (start)"):
            supervisor.wait_in_log(supervisor.program_log, started)
        yield supervisor, f"http://127.0.0.1:{port}"
    finally:
        supervisor.stop()


def test_under_supervisord_serves_reloads_on_hup_and_stops_with_status_0(
        supervised: tuple[Supervisor, str], upstream: FakeUpstream, aliases: Path) -> None:
    supervisor, url = supervised
    upstream.on(COSTS, lambda handler, received: handler.send_reply(
        Reply(body=b'{"data": [{"api_key_id": "key_1234567890abcdef"}]}')))
    answer = call(url, COSTS + "?start_time=1")
    assert answer.json()["data"][0]["api_key_name"] == "checkout-service-production"

    before = len(supervisor.program_log.read_text())
    aliases.write_text('[api_keys]\nkey_1234567890abcdef = "checkout-after-hup"\n')
    assert supervisor.rpc.signalProcess("orgproxy", "HUP") is True  # supervisorctl signal HUP orgproxy
    supervisor.wait_in_log(supervisor.program_log, "Alias file reloaded (SIGHUP)", after=before)
    assert call(url, COSTS + "?start_time=1").json()["data"][0]["api_key_name"] == "checkout-after-hup"

    supervisor.wait_in_log(supervisor.log, "orgproxy entered RUNNING state")  # after startsecs
    pid = supervisor.rpc.getProcessInfo("orgproxy")["pid"]
    assert supervisor.rpc.stopProcess("orgproxy") is True  # supervisorctl stop orgproxy
    supervisor.wait_in_log(supervisor.log, "stopped: orgproxy (exit status 0)")
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    log = supervisor.program_log.read_text()
    assert "Traceback" not in log and TOKEN not in log
    # Set up as the README says, it runs without a warning (an error, a plugin cache it could not write).
    assert not [line for line in log.splitlines()
                if re.search(r"#(warn|error|critical)\]", line) or "Unable to write to plugin cache" in line], log
    assert (supervisor.conf.parent / "lib" / "history.sqlite3").is_file()  # --state-dir, as shipped


def test_the_shipped_stop_timeout_exceeds_the_drain_with_margin() -> None:
    program = configparser.ConfigParser(interpolation=None)
    program.read_string(SHIPPED.read_text())
    assert int(program["program:orgproxy"]["stopwaitsecs"]) >= float(DEFAULTS["shutdown-timeout"]) + 10


def test_the_readmes_supervisor_block_makes_everything_the_program_section_names() -> None:
    lines = setup_lines(supervisor_section_of_the_readme())
    program = configparser.ConfigParser(interpolation=None)
    program.read_string(SHIPPED.read_text())
    section = program["program:orgproxy"]
    argv = section["command"].split()
    assert f"make install PREFIX={argv[0].removesuffix('/.venv/bin/twistd')}" in lines
    assert made_by(lines, argv[argv.index("--aliases") + 1])
    assert made_by(lines, section["environment"].split("=", 1)[1].strip('"'))  # the admin key file
    assert f"useradd --system --home-dir {section['directory']} --shell /usr/sbin/nologin {section['user']}" in lines
    for directory in (argv[argv.index("--state-dir") + 1], section["directory"],
                      str(Path(section["stdout_logfile"]).parent)):
        assert any(line.startswith("install -d ") and line.endswith(" " + directory) for line in lines), directory
    assert made_by(lines, "/etc/supervisor/conf.d/orgproxy.conf")  # where Debian's supervisor reads it
