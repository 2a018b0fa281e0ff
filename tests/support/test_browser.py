"""The browser helper itself: HTTP Basic credentials reach the server only when given (the
prompt comes back on the next page without them), and the blank check tells a blank page from
one with something on it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.support.browser import Browser, basic_authorization, picture_of

PASSWORD = "s3cret token"


class AskingForBasic(BaseHTTPRequestHandler):
    """Answers 401 with a Basic challenge, or the page for the right credentials; keeps what
    each request sent as Authorization."""

    server: Asking

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        given = self.headers.get("Authorization")
        with self.server.lock:
            self.server.seen.append((self.path, given))
        if given == basic_authorization("anyone", PASSWORD):
            status, body = 200, b"<!doctype html><h1>Welcome</h1><p>the costs</p>"
        else:
            status, body = 401, b"<!doctype html><p>who are you?</p>"
        self.send_response(status)
        if status == 401:
            self.send_header("WWW-Authenticate", 'Basic realm="test"')
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class Asking(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), AskingForBasic)
        self.lock = threading.Lock()
        self.seen: list[tuple[str, str | None]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def asking() -> Iterator[Asking]:
    server = Asking()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_basic_credentials_are_sent_only_for_the_load_that_gives_them(browser: Browser, asking: Asking) -> None:
    refused = browser.load(asking.url + "/first")
    assert refused.status == 401 and refused.header("WWW-Authenticate") == 'Basic realm="test"'
    welcomed = browser.load(asking.url + "/second", user="anyone", password=PASSWORD)
    assert welcomed.status == 200 and browser.text("h1") == "Welcome"
    assert browser.texts("h1, p") == ["Welcome", "the costs"]
    # Not remembered for the origin: the prompt again.
    assert browser.load(asking.url + "/third").status == 401
    with asking.lock:
        sent = {path: given for path, given in asking.seen if path != "/favicon.ico"}
    assert sent == {"/first": None, "/second": basic_authorization("anyone", PASSWORD), "/third": None}


def test_a_blank_page_is_blank_and_a_page_with_text_is_not(browser: Browser, asking: Asking) -> None:
    blank = picture_of(browser.screenshot())
    assert blank.blank and blank.colours == 1
    browser.load(asking.url + "/", user="anyone", password=PASSWORD)
    shown = picture_of(browser.screenshot(full_page=True))
    assert not shown.blank and shown.colours > 2
