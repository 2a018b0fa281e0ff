"""Options, environment variables, and start-up failures of ``twistd orgproxy``."""

from __future__ import annotations

import socket
import subprocess
from ipaddress import ip_network
from pathlib import Path

import pytest
from twisted.python import usage

from orgproxy.tap import DEFAULTS, Options, env_name
from tests.conftest import assert_clean_output
from tests.support.daemon import TWISTD, Daemon, daemon_env, free_port
from tests.support.tcp_upstream import FakeUpstream, reply
from tests.support.raw_http import call


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
    assert options["watch"] == "auto"
    assert options["shutdown-timeout"] == 10.0
    assert options["admin-key-file"] is None
    assert options["state-dir"] == "var"
    assert (options["discovery-interval"], options["discovery-cooldown"]) == (900.0, 60.0)


# option -> (environment value, parsed), (flag value, parsed)
SAMPLES = {
    "port": (("tcp:1234", "tcp:1234"), ("tcp:999", "tcp:999")),
    "upstream": (("http://gateway.internal:8080",) * 2, ("https://x.example",) * 2),
    "aliases": (("/etc/orgproxy/aliases.toml",) * 2, ("a.json",) * 2),
    "timeout": (("2.5", 2.5), ("7", 7.0)),
    "max-response-bytes": (("1000", 1000), ("5", 5)),
    "log-level": (("debug", "debug"), ("warn", "warn")),
    "watch": (("poll", "poll"), ("off", "off")),
    "shutdown-timeout": (("3", 3.0), ("0.5", 0.5)),
    "admin-key-file": (("/run/secrets/openai-admin", "/run/secrets/openai-admin"), ("key.txt", "key.txt")),
    "state-dir": (("/var/lib/orgproxy", "/var/lib/orgproxy"), ("state", "state")),
    "discovery-interval": (("600", 600.0), ("30", 30.0)),
    "discovery-cooldown": (("10", 10.0), ("5", 5.0)),
    "allow-from": (("10.0.0.0/8", (ip_network("10.0.0.0/8"),)),
                   ("127.0.0.1,fd00::/8", (ip_network("127.0.0.1/32"), ip_network("fd00::/8")))),
    "client-token-file": (("/run/secrets/token", "/run/secrets/token"), ("token.txt", "token.txt")),
    "upstream-ca": (("/etc/ssl/gateway.pem", "/etc/ssl/gateway.pem"), ("ca.pem", "ca.pem")),
    "max-concurrency": (("100", 100), ("8", 8)),
    "workers": (("2", 2), ("3", 3)),
    "cache-ttl": (("30", 30.0), ("0", 0.0)),
    "cache-max-bytes": (("1000000", 1000000), ("5000", 5000)),
    "worker-fd": (("3", "3"), ("4", "4")),
    "worker-number": (("1", 1), ("2", 2)),
}


def test_every_option_has_an_environment_variable_and_the_flag_wins() -> None:
    assert set(SAMPLES) == {option for option, *_ in Options.optParameters}
    environ = {env_name(option): env for option, ((env, _), _) in SAMPLES.items()}
    from_env = parse([], environ)
    assert {option: from_env[option] for option in SAMPLES} == {
        option: parsed for option, ((_, parsed), _) in SAMPLES.items()}
    argv = [arg for option, (_, (flag, _)) in SAMPLES.items() for arg in (f"--{option}", flag)]
    from_flags = parse(argv, environ)
    assert {option: from_flags[option] for option in SAMPLES} == {
        option: parsed for option, (_, (_, parsed)) in SAMPLES.items()}
    assert env_name("max-response-bytes") == "ORGPROXY_MAX_RESPONSE_BYTES"


def test_replace_ids_is_a_flag_also_set_by_its_environment_variable() -> None:
    assert parse([])["replace-ids"] is False
    assert parse(["--replace-ids"])["replace-ids"] is True
    assert parse([], {"ORGPROXY_REPLACE_IDS": "1"})["replace-ids"] is True
    assert parse([], {"ORGPROXY_REPLACE_IDS": "no"})["replace-ids"] is False


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
    (["--allow-from", "10.0.0.0/8,nonsense"], "--allow-from: 'nonsense' is not an address or CIDR network"),
    (["--max-concurrency", "0"], "--max-concurrency must be a positive int"),
    (["--cache-ttl", "-1"], "--cache-ttl must be 0 \\(off\\) or more seconds"),
    (["--cache-ttl", "soon"], "--cache-ttl must be 0 \\(off\\) or more seconds"),
    (["--watch", "fanotify"], "--watch must be one of auto, inotify, poll, off"),
    (["--shutdown-timeout", "0"], "--shutdown-timeout must be a positive float"),
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
