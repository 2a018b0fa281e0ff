"""Headless Chromium, driven through chromedriver, for the tests where what a person sees in a
browser is the point (a page the daemon serves).

Debian's ``chromium`` and ``chromium-driver`` packages (``make test`` installs them): Selenium is
handed both paths, so it never asks Selenium Manager for a browser or a driver, and nothing is
downloaded. The flags are the ones this closed network needs: without the background-networking
ones Chromium keeps calling Google's hosts, and each call is refused. A browser that cannot start
raises: a test that needs one fails, it is never skipped.

One Chromium serves a whole test session (starting it takes seconds); ``Browser.reset`` gives
each test a blank page, no cookies and no credentials. Credentials for HTTP Basic are sent as
the ``Authorization`` header of every request until the next ``load``, rather than typed into the
browser's prompt: Chromium would remember typed ones for the origin until it stops, and a later
test could no longer see the prompt. What ``load`` returns (the page's HTTP status and headers,
read from Chromium's own network log) is what shows whether the browser was asked for them.
"""

from __future__ import annotations

import base64
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync")
WINDOW = (1280, 900)  # the window; the page's viewport is what Chromium's frame leaves of it
LOAD_TIMEOUT = 20.0  # seconds a page may take to load


class BrowserUnavailable(RuntimeError):
    """Chromium or chromedriver is not installed where Debian puts them, or did not start."""


@dataclass(frozen=True)
class Loaded:
    """The page's own HTTP answer (not its images' or scripts'), as Chromium received it."""

    url: str
    status: int
    headers: dict[str, str]  # names lower-cased

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass(frozen=True)
class Picture:
    """What a screenshot shows, counted from its pixels."""

    width: int
    height: int
    colours: int  # distinct RGB colours
    inked: float  # the share of pixels not of the most common colour (the background)

    @property
    def blank(self) -> bool:
        """One colour, or next to nothing on the background: nothing a person could read."""
        return self.colours < 2 or self.inked < 0.001


def picture_of(png: bytes) -> Picture:
    """Decode a PNG (matplotlib, already a test dependency, reads it) and count its colours."""
    import matplotlib.image  # here: a second to import, for the few tests that look

    pixels = matplotlib.image.imread(io.BytesIO(png), format="png")
    rgb = np.round(pixels[:, :, :3] * 255).astype(np.uint32)
    packed = (rgb[:, :, 0] << 16 | rgb[:, :, 1] << 8 | rgb[:, :, 2]).ravel()
    _, counts = np.unique(packed, return_counts=True)
    return Picture(width=pixels.shape[1], height=pixels.shape[0], colours=len(counts),
                   inked=1 - counts.max() / packed.size)


def assert_not_blank(png: bytes) -> Picture:
    picture = picture_of(png)
    assert not picture.blank, f"the screenshot is blank: {picture}"
    return picture


def basic_authorization(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


class Browser:
    """A headless Chromium of Debian's, with its profile in ``profile`` (an empty directory)."""

    def __init__(self, profile: Path, window: tuple[int, int] = WINDOW) -> None:
        for path in (CHROMIUM, CHROMEDRIVER):
            if not path.is_file():
                raise BrowserUnavailable(f"{path} is missing: apt-get install chromium chromium-driver"
                                         " (as make test does)")
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for flag in FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={profile}")
        options.add_argument(f"--window-size={window[0]},{window[1]}")
        # The network log, for each page's status and headers (``load``).
        options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
        try:
            self.driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
        except WebDriverException as e:
            raise BrowserUnavailable(f"headless Chromium did not start: {e.msg}") from e
        self.driver.set_page_load_timeout(LOAD_TIMEOUT)
        self.driver.execute_cdp_cmd("Network.enable", {})

    def close(self) -> None:
        self.driver.quit()

    def reset(self) -> None:
        """A blank page, no cookies, no credentials: as a test should find the browser."""
        self.driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {}})
        self.driver.get("about:blank")
        self.driver.delete_all_cookies()
        self.driver.get_log("performance")  # what earlier tests left in the log

    def load(self, url: str, user: str | None = None, password: str | None = None) -> Loaded:
        """Open ``url`` (with HTTP Basic credentials where ``password`` is given) and return the
        page's own HTTP answer."""
        headers = {} if password is None else {"Authorization": basic_authorization(user or "", password)}
        self.driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": headers})
        self.driver.get_log("performance")  # only this load's answers from here on
        self.driver.get(url)
        shown = self.driver.current_url  # the address as Chromium writes it, after any redirect
        answers = [event["response"] for event in self._network_events("Network.responseReceived")
                   if event.get("type") == "Document" and event["response"]["url"] == shown]
        if not answers:
            raise AssertionError(f"Chromium received no answer for {url} (shown: {shown})")
        last = answers[-1]
        return Loaded(shown, int(last["status"]), {k.lower(): v for k, v in last["headers"].items()})

    def _network_events(self, method: str) -> list[dict]:
        events = []
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message["method"] == method:
                events.append(message["params"])
        return events

    # --- what a person sees ----------------------------------------------------------------

    def text(self, css: str = "body") -> str:
        """The visible text of the first element matching ``css`` (the whole page by default)."""
        return self.driver.find_element(By.CSS_SELECTOR, css).text

    def texts(self, css: str) -> list[str]:
        """The visible text of every element matching ``css``, in document order."""
        return [element.text for element in self.elements(css)]

    def elements(self, css: str) -> list[WebElement]:
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def viewport(self) -> tuple[int, int]:
        """The page's width and height in CSS pixels (a screenshot's, at Chromium's scale of 1)."""
        width, height = self.driver.execute_script("return [window.innerWidth, window.innerHeight]")
        return int(width), int(height)

    def screenshot(self, path: Path | None = None, full_page: bool = False) -> bytes:
        """A PNG of the viewport, or of the whole page (``full_page``); also written to ``path``."""
        if full_page:
            size = self.driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
            shot = self.driver.execute_cdp_cmd("Page.captureScreenshot", {
                "format": "png", "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}})
            png = base64.b64decode(shot["data"])
        else:
            png = self.driver.get_screenshot_as_png()
        if path is not None:
            path.write_bytes(png)
        return png

