"""Options, environment variables, and start-up failures of ``twistd orgproxy``."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest
from twisted.python import usage

from orgproxy.tap import DEFAULTS, Options, env_name
from tests.conftest import assert_clean_output
from tests.daemon import TWISTD, Daemon, daemon_env, free_port
from tests.fakeupstream import FakeUpstream, reply
from tests.http import call


def parse(argv: list[str], environ: dict[str, str] | None = None) -> Options:
    options = Options(environ=environ or {})
    options.parseOptions(argv)
    return options


def test_defaults() -> None:
    options = parse([])
    assert options["port"] == "tcp:18080:interface=127.0.0.1"
    assert options["upstream"] == "https://api.openai.com"
    assert options["aliases"] is None
    assert options["timeout"] == 60.0
    assert options["max-response-bytes"] == 64 * 1024 * 1024
    assert options["log-level"] == "info"


def test_every_option_has_an_environment_variable_and_the_flag_wins() -> None:
    environ = {"ORGPROXY_PORT": "tcp:1234", "ORGPROXY_UPSTREAM": "http://gateway.internal:8080",
               "ORGPROXY_ALIASES": "/etc/orgproxy/aliases.toml", "ORGPROXY_TIMEOUT": "2.5",
               "ORGPROXY_MAX_RESPONSE_BYTES": "1000", "ORGPROXY_LOG_LEVEL": "debug"}
    from_env = parse([], environ)
    assert (from_env["port"], from_env["upstream"], from_env["aliases"], from_env["timeout"],
            from_env["max-response-bytes"], from_env["log-level"]) == (
        "tcp:1234", "http://gateway.internal:8080", "/etc/orgproxy/aliases.toml", 2.5, 1000, "debug")
    flags = parse(["--port", "tcp:999", "--upstream", "https://x.example", "--aliases", "a.json",
                   "--timeout", "7", "--max-response-bytes", "5", "--log-level", "warn"], environ)
    assert (flags["port"], flags["upstream"], flags["aliases"], flags["timeout"],
            flags["max-response-bytes"], flags["log-level"]) == (
        "tcp:999", "https://x.example", "a.json", 7.0, 5, "warn")
    assert {env_name(option) for option, *_ in Options.optParameters} == set(environ)


def test_openai_base_url_is_never_read() -> None:
    # Callers point OPENAI_BASE_URL at the proxy; reading it would make the proxy call itself.
    options = parse([], {"OPENAI_BASE_URL": "http://127.0.0.1:18080/v1"})
    assert options["upstream"] == DEFAULTS["upstream"]


@pytest.mark.parametrize(("argv", "message"), [
    (["--timeout", "abc"], "--timeout must be a positive float"),
    (["--timeout", "-1"], "--timeout must be a positive float"),
    (["--max-response-bytes", "1.5"], "--max-response-bytes must be a positive int"),
    (["--upstream", "ftp://x"], "--upstream must be an http:// or https:// URL"),
    (["--upstream", "https://user:secret@x"], "no credentials"),
    (["--port", "nonsense:1"], "is not an endpoint description"),
    (["--log-level", "loud"], "--log-level must be one of debug, info, warn, error"),
])
def test_malformed_options_are_refused(argv: list[str], message: str) -> None:
    with pytest.raises(usage.UsageError, match=message):
        parse(argv)


def run_twistd(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([TWISTD, "--nodaemon", "--pidfile=", "orgproxy", *args], cwd=cwd,
                          env=daemon_env(), capture_output=True, text=True, timeout=60)


def test_invalid_alias_file_stops_the_start_with_file_line_and_reason(tmp_path: Path) -> None:
    aliases = tmp_path / "aliases.toml"
    aliases.write_text('[api_keys]\nkey_a = "a"\nkey_b = 5\n')
    result = run_twistd("--port", f"tcp:{free_port()}:interface=127.0.0.1", "--aliases", str(aliases),
                        cwd=tmp_path)
    assert result.returncode != 0
    assert f"{aliases}:3: api_keys.key_b: name must be a string, not integer" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_unreadable_alias_file_stops_the_start(tmp_path: Path) -> None:
    result = run_twistd("--port", f"tcp:{free_port()}:interface=127.0.0.1",
                        "--aliases", str(tmp_path / "missing.toml"), cwd=tmp_path)
    assert result.returncode != 0
    assert "missing.toml: cannot read" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_malformed_option_makes_twistd_exit_non_zero(tmp_path: Path) -> None:
    result = run_twistd("--timeout", "soon", cwd=tmp_path)
    assert result.returncode != 0
    assert "--timeout must be a positive float, not 'soon'" in result.stdout + result.stderr


def test_port_in_use_stops_the_start_with_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_twistd("--port", f"tcp:{port}:interface=127.0.0.1", cwd=tmp_path)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert f"orgproxy: cannot listen on tcp:{port}:interface=127.0.0.1" in output
    assert "Address already in use" in output
    assert "Traceback" not in output


def test_without_aliases_it_serves_with_no_names_and_says_so(tmp_path: Path, upstream: FakeUpstream) -> None:
    upstream.on("/v1/organization/costs", reply(body=b'{"api_key_id": "key_1234567890abcdef"}'))
    daemon = Daemon(["--upstream", upstream.url], cwd=tmp_path).wait_ready()
    try:
        assert "running with no names" in daemon.output
        answer = call(daemon.url, "/v1/organization/costs?start_time=1")
        assert answer.json() == {"api_key_id": "key_1234567890abcdef", "api_key_name": "unknown"}
    finally:
        assert daemon.stop() == 0
        assert_clean_output(daemon)


def test_options_come_from_the_environment_of_the_real_daemon(tmp_path: Path, upstream: FakeUpstream,
                                                             aliases: Path) -> None:
    port = free_port()
    daemon = Daemon([], cwd=tmp_path, port=port, env={
        "ORGPROXY_UPSTREAM": upstream.url, "ORGPROXY_ALIASES": str(aliases)})
    daemon.wait_ready()
    try:
        assert call(daemon.url, "/health").json()["names_loaded"] == 5
        assert call(daemon.url, "/v1/organization/users").status == 200
        assert upstream.last().target == b"/v1/organization/users"
    finally:
        assert daemon.stop() == 0
        assert_clean_output(daemon)


def test_sigterm_ends_the_daemon_with_status_0(daemon: Daemon) -> None:
    assert daemon.stop() == 0
    assert "SIGTERM" in daemon.output
