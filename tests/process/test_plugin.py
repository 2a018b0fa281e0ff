"""The twistd dropin, as installed by a plain (not editable) ``pip install .``, and twistd
running it: on another reactor, and refusing to start with one line."""

from __future__ import annotations

import socket
import subprocess
import sys
import sysconfig
from pathlib import Path

from twisted.application.service import IServiceMaker
from twisted.plugin import getPlugins

import orgproxy
from tests.conftest import ROOT
from tests.support.daemon import TWISTD, Daemon, daemon_env, free_port
from tests.support.tcp_upstream import FakeUpstream
from tests.support.raw_http import call



def test_package_under_test_is_the_installed_one_not_the_source_tree() -> None:
    site_packages = Path(sysconfig.get_paths()["purelib"]).resolve()
    assert Path(orgproxy.__file__).resolve().is_relative_to(site_packages)
    assert not Path(orgproxy.__file__).resolve().is_relative_to(ROOT / "src")


def test_get_plugins_finds_orgproxy() -> None:
    makers = {maker.tapname: maker for maker in getPlugins(IServiceMaker)}
    assert "orgproxy" in makers
    maker = makers["orgproxy"]
    assert maker.module == "orgproxy.tap"
    assert maker.options().longdesc.startswith("Forward /v1/organization/*")


def test_dropin_does_not_import_the_reactor() -> None:
    # twistd imports every dropin before installing the reactor chosen with -r.
    code = ("import sys, twisted.plugins.orgproxy_plugin; "
            "sys.exit('twisted.internet.reactor' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


def test_twistd_runs_orgproxy_on_another_reactor(tmp_path: Path, upstream: FakeUpstream) -> None:
    daemon = Daemon(["--upstream", upstream.url], cwd=tmp_path, twistd_args=["--reactor=poll"]).wait_ready()
    try:
        (reactor,) = [e["reactor"] for e in daemon.events if "reactor" in e]  # twistd's own event
        assert reactor.endswith("PollReactor")
        assert call(daemon.url, "/v1/organization/users").status == 200
    finally:
        assert daemon.stop() == 0


def test_a_start_up_failure_ends_twistd_with_one_line_and_a_non_zero_status(tmp_path: Path) -> None:
    # One failure from each place it can come from: the options (UsageError), makeService
    # (the alias file), and the start (binding the port). Started together: each is a
    # Python start-up's worth of waiting.
    aliases = tmp_path / "aliases.toml"
    aliases.write_text('[api_keys]\nkey_a = "a"\nkey_b = 5\n')
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        failures = {
            "--timeout must be a positive float, not 'soon'": ["--timeout", "soon"],
            "orgproxy: option --bogus not recognized": ["--bogus"],
            f"orgproxy: alias file: {aliases}": ["--port", f"tcp:{free_port()}:interface=127.0.0.1",
                                                 "--aliases", str(aliases)],
            f"orgproxy: cannot listen on tcp:{port}:interface=127.0.0.1: [Errno 98] Address already in use":
                ["--port", f"tcp:{port}:interface=127.0.0.1"],
        }
        running = {expected: subprocess.Popen([TWISTD, "--nodaemon", "--pidfile=", "orgproxy", *args], cwd=tmp_path,
                                              env=daemon_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                              text=True)
                   for expected, args in failures.items()}
        for expected, process in running.items():
            out, err = process.communicate(timeout=60)
            assert process.returncode != 0, expected
            assert sum(expected in line for line in (out + err).splitlines()) == 1, out + err
            assert "Traceback" not in out + err
            assert "Usage:" not in out + err  # the reason, not 62 lines of --help before it
            if expected.startswith(("--", "orgproxy: option")):  # the options' own: that line and nothing else
                assert len((out + err).splitlines()) == 1, out + err

