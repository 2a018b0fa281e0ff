"""Headless Chromium (Debian's) in front of the real daemon: /health, as a person opening it
sees it (Chromium shows JSON as text), is the daemon's own, and the screenshot shows it."""

from __future__ import annotations

import json
from pathlib import Path


from tests.support.browser import Browser, assert_not_blank
from tests.support.daemon import Daemon
from tests.support.raw_http import call


def test_chromium_shows_the_daemon_s_health_as_its_json(browser: Browser, daemon: Daemon, tmp_path: Path) -> None:
    loaded = browser.load(daemon.url + "/health")
    assert loaded.status == 200 and loaded.header("content-type") == "application/json"
    shown = json.loads(browser.text())
    assert shown["status"] == "ok" and shown["pid"] == daemon.process.pid
    fetched = json.loads(call(daemon.url, "/health").body)
    assert {k: shown[k] for k in ("names_loaded", "names_by_source")} == \
        {k: fetched[k] for k in ("names_loaded", "names_by_source")}
    assert shown["names_loaded"] > 0  # the example alias map's names
    picture = assert_not_blank(browser.screenshot(tmp_path / "health.png"))
    assert (picture.width, picture.height) == (browser.viewport())
