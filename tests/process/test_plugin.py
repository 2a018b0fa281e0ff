"""The twistd dropin, as installed by a plain (not editable) ``pip install .``."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

from twisted.application.service import IServiceMaker
from twisted.plugin import getPlugins

import orgproxy
from tests.support.daemon import Daemon
from tests.support.tcp_upstream import FakeUpstream
from tests.support.raw_http import call

ROOT = Path(__file__).resolve().parents[1]


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
        assert "PollReactor" in daemon.output
        assert call(daemon.url, "/v1/organization/users").status == 200
    finally:
        assert daemon.stop() == 0
