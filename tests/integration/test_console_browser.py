"""The operator console and the public lookup pages in a real browser (headless Chromium
through chromedriver), against real services: mail through a private Postfix and the
spamwarden milter, `spamwarden api`, `spamwarden rbl`, one Redis.

One browser serves the whole module. Every page visited is saved as a PNG under the test's
tmp_path and checked not to be blank; with SPAMWARDEN_SCREENSHOTS_DIR set (e.g.
``docs/console``) a scaled copy of each shot docs/console.md shows is written there.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dns.rcode
import pytest
import redis

from spamwarden.reputation.history import HistoryFilter, read_history
from spamwarden.reputation.store import ListingStore
from tests.support.apiserver import ApiProcess
from tests.support.browser import find_binaries, start_chromium
from tests.support.messages import make_message
from tests.support.milterproc import MilterProcess
from tests.support.net import wait_until
from tests.support.png import blankness
from tests.support.postfix import PostfixInstance
from tests.support.rblserver import RblProcess, ip_name
from tests.support.smtpclient import swaks

pytestmark = pytest.mark.integration

TOKEN = "browser-op-token-0123456789"
RCPT = "user@test.local"
AUTHSERV_ID = "mx.test"
#: where a scaled copy of every named screenshot goes, for docs/console.md
DOCS_DIR = os.environ.get("SPAMWARDEN_SCREENSHOTS_DIR", "")
DOCS_WIDTH = 960
#: the shots docs/console.md shows (only these are written to DOCS_DIR)
DOCS_SHOTS = set(re.findall(r"\]\(console/([\w.-]+)\.png\)", (
    Path(__file__).resolve().parents[2] / "docs" / "console.md").read_text(encoding="utf-8")))
#: a milter that holds every message it does not refuse (Postfix's hold queue)
HOLD_ALL = {"policy": {"tag_threshold": -50.0, "quarantine_threshold": -40.0,
                       "reject_threshold": 50.0},
            "milter": {"quarantine": "hold"}}


@dataclass
class Stack:
    """The running services a browser test talks to."""

    redis_url: str
    postfix: PostfixInstance
    milter: MilterProcess
    rbl: RblProcess
    api: ApiProcess

    @property
    def smtp_port(self) -> int:
        return self.postfix.smtp["milter"].port

    @property
    def hold_port(self) -> int:
        """The listener whose milter holds every message it accepts."""
        return self.postfix.smtp["hold"].port


@pytest.fixture(scope="module")
def chrome(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One headless Chromium for the module (skipped, saying why, where it is not installed)."""
    found = find_binaries()
    if isinstance(found, str):
        pytest.skip(f"no browser for the console tests: {found}")
    browser = start_chromium(*found, log=tmp_path_factory.mktemp("chromedriver") / "log")
    try:
        yield browser
    finally:
        browser.quit()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, module_redis_url: str, dns_server: Any,
          spamwarden_milter_module: Any, postfix_instance_module: Any) -> Iterator[Stack]:
    milter = spamwarden_milter_module(nameservers=[dns_server.address],
                                      redis_url=module_redis_url, authserv_id=AUTHSERV_ID)
    holder = spamwarden_milter_module(nameservers=[dns_server.address],
                                      redis_url=module_redis_url, authserv_id=AUTHSERV_ID,
                                      overrides=HOLD_ALL)
    postfix = postfix_instance_module(listeners={"milter": milter.postfix_socket,
                                                 "hold": holder.postfix_socket})
    rbl = RblProcess(tmp_path_factory.mktemp("rbl"), module_redis_url)
    # the console's quarantine runs postqueue/postsuper on this Postfix (as root here)
    api = ApiProcess(tmp_path_factory.mktemp("api"), module_redis_url,
                     {"api": {"operator_tokens": [TOKEN]},
                      "intake": {"local_domains": ["example.test"]},
                      "quarantine": {"postfix_config_dir": str(postfix.config_dir)}})
    rbl.start()
    try:
        api.start()
        try:
            yield Stack(module_redis_url, postfix, milter, rbl, api)
        finally:
            api.stop()
    finally:
        rbl.stop()


class Shots:
    """Screenshots of one test: saved under its tmp_path, each checked not to be blank."""

    def __init__(self, browser: Any, directory: Path) -> None:
        self.browser = browser
        self.directory = directory
        self.taken: list[Path] = []

    def __call__(self, name: str, *, drawn: bool = True) -> Path:
        """Save the page as ``name``.png; unless ``drawn`` is False (a page meant to stay
        empty), fail when it is blank."""
        path = self.directory / f"{name}.png"
        data = full_page_png(self.browser)
        path.write_bytes(data)
        self.taken.append(path)
        seen = blankness(data)
        assert seen.shows_something() or not drawn, f"{name}: blank screenshot ({seen}) of {self.browser.current_url}"
        if DOCS_DIR and name in DOCS_SHOTS:
            _docs_copy(data, Path(DOCS_DIR) / f"{name}.png")
        return path


def full_page_png(browser: Any, *, max_height: int = 1600) -> bytes:
    """The whole page (up to ``max_height`` pixels tall), not only the window, as PNG."""
    import base64

    width, height = browser.execute_script(
        "return [document.documentElement.clientWidth,"
        " Math.max(document.body.scrollHeight, document.documentElement.scrollHeight)]")
    shot = browser.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": width, "height": min(height, max_height), "scale": 1}})
    return base64.b64decode(shot["data"])


def _docs_copy(data: bytes, target: Path) -> None:
    """A smaller copy for the documentation (scaled, 64 colours) when Pillow is at hand."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        import io

        from PIL import Image
    except ImportError:
        target.write_bytes(data)
        return
    img = Image.open(io.BytesIO(data)).convert("RGB")
    img = img.resize((DOCS_WIDTH, round(img.height * DOCS_WIDTH / img.width)),
                     Image.Resampling.LANCZOS)
    img.quantize(colors=64).save(target, optimize=True)


@pytest.fixture
def shots(chrome: Any, tmp_path: Path) -> Shots:
    return Shots(chrome, tmp_path)


def _by(kind: str) -> Any:
    from selenium.webdriver.common.by import By

    return getattr(By, kind)


def wait_page(browser: Any, text: str, *, timeout: float = 10) -> str:
    """Wait until the page's visible text contains ``text``; that text."""
    from selenium.common.exceptions import (
        NoSuchElementException,
        StaleElementReferenceException,
        TimeoutException,
        WebDriverException,
    )
    from selenium.webdriver.support.ui import WebDriverWait

    body: list[str] = []

    def has(_: Any) -> bool:
        try:
            body[:] = [browser.find_element(_by("TAG_NAME"), "body").text]
        except WebDriverException as exc:
            # a body read while the next page replaces it: Chrome can say so with an
            # inspector error rather than a stale element; read again
            if "does not belong to the document" in str(exc):
                return False
            raise
        return text in body[0]

    try:
        WebDriverWait(browser, timeout, poll_frequency=0.05, ignored_exceptions=(
            NoSuchElementException, StaleElementReferenceException)).until(has)
    except TimeoutException as exc:  # say what the page showed
        pytest.fail(f"{text!r} not on {browser.current_url} in {timeout}s; it shows:\n"
                    f"{body[0] if body else '?'}\n({exc!r})")
    return body[0]


def sign_in(browser: Any, stack: Stack, shots: Shots | None = None) -> None:
    """Sign in through the form, as an operator does."""
    browser.delete_all_cookies()
    browser.get(stack.api.url + "/ui/login")
    wait_page(browser, "Operator token")
    if shots is not None:
        shots("login")
    field = browser.find_element(_by("NAME"), "token")
    field.send_keys(TOKEN)
    field.submit()
    wait_page(browser, "delisting request(s) waiting")
    assert browser.current_url == stack.api.url + "/ui/"
    cookie = browser.get_cookie("sw_ui")
    assert cookie and cookie["httpOnly"] and cookie["sameSite"] == "Strict", cookie
    assert cookie["path"] == "/ui/"
    # HttpOnly: the page's scripts cannot read the session
    assert "sw_ui" not in (browser.execute_script("return document.cookie") or "")


def _history(stack: Stack, queue_id: str) -> list[dict[str, Any]]:
    client = redis.Redis.from_url(stack.redis_url)
    try:
        return read_history(client, limit=5, want=HistoryFilter(queue_id=queue_id))
    finally:
        client.close()


def test_sign_in_and_find_a_message_from_postfix_by_its_queue_id(
        chrome: Any, stack: Stack, shots: Shots) -> None:
    # a message from a domain failing SPF with DMARC p=reject: refused, with its symbols
    forged, _ = make_message(from_addr="Bank <security@bank.test>", subject="Verify now")
    before = stack.postfix.maillog().count("milter-reject: END-OF-MESSAGE")
    result = swaks(stack.smtp_port, mail_from="security@bank.test", rcpt_to=RCPT, data=forged,
                   helo="client.test")
    assert result.returncode != 0, result.transcript
    wait_until(lambda: stack.postfix.maillog().count("milter-reject: END-OF-MESSAGE") > before,
               timeout=15, what="the reject in the maillog")
    line = [x for x in stack.postfix.maillog().splitlines()
            if "milter-reject: END-OF-MESSAGE" in x and "security@bank.test" in x][-1]
    m = re.search(r" ([0-9A-F]{6,}): milter-reject", line)
    assert m, line
    qid = m.group(1)
    [entry] = wait_until(lambda: _history(stack, qid), timeout=15,
                         what="the verdict in the message history")
    symbols = [s["name"] for s in entry["symbols"]]
    assert symbols, entry

    sign_in(chrome, stack, shots)
    shots("home")
    box = chrome.find_element(_by("NAME"), "queue_id")
    box.send_keys(qid)
    box.submit()
    page = wait_page(chrome, f"Message {qid}")
    for name in symbols:
        assert name in page, (name, page)
    assert "reject" in page and "security@bank.test" in page
    shots("message")

    # the history list, searched by recipient, links to the same detail
    chrome.get(stack.api.url + "/ui/history")
    wait_page(chrome, "message(s).")
    shots("history-all")
    rcpt = chrome.find_element(_by("NAME"), "rcpt")
    rcpt.send_keys(RCPT)
    rcpt.submit()
    wait_page(chrome, qid)
    shots("history")
    chrome.find_element(_by("LINK_TEXT"), qid).click()
    page = wait_page(chrome, f"Message {qid}")
    assert all(name in page for name in symbols)
    shots("message-from-history")


def _listed(stack: Stack, key: str) -> None:
    client = redis.Redis.from_url(stack.redis_url)
    try:
        ListingStore(client).add(key, reason="complaints", now=time.time(), ttl=3600)
    finally:
        client.close()


def _nxdomain_within(stack: Stack, name: str, *, since: float, limit: float) -> float:
    """Seconds from ``since`` until the rbl answers NXDOMAIN for ``name``; fail past ``limit``."""
    while True:
        answer = stack.rbl.query(name, timeout=0.5)
        took = time.monotonic() - since
        if answer.rcode() == dns.rcode.NXDOMAIN:
            return took
        assert took <= limit, f"{name} still answered {answer.answer} {took:.2f}s after delisting"
        time.sleep(0.02)


def test_delisting_request_filed_on_the_public_page_and_approved_in_the_console(
        chrome: Any, stack: Stack, shots: Shots) -> None:
    _listed(stack, "203.0.113.0/24")
    name = ip_name("203.0.113.7")
    wait_until(lambda: stack.rbl.dig_short(name) == ["127.0.0.2"], timeout=10,
               what="the rbl answering for the new listing")

    chrome.delete_all_cookies()
    chrome.get(stack.api.url + "/lookup/203.0.113.7")
    wait_page(chrome, "203.0.113.7")
    page = wait_page(chrome, "203.0.113.0/24")
    assert "listed" in page
    shots("lookup")
    chrome.find_element(_by("NAME"), "reason").send_keys("We closed the open relay.")
    chrome.find_element(_by("NAME"), "contact").send_keys("postmaster@example.org")
    chrome.find_element(_by("CSS_SELECTOR"), 'form[method="post"] button').click()
    wait_page(chrome, "pending")
    status_url = chrome.current_url
    assert re.fullmatch(re.escape(stack.api.url) + r"/lookup/request/[0-9a-f]{32,}", status_url)
    shots("request-status")

    sign_in(chrome, stack)
    chrome.get(stack.api.url + "/ui/listings")
    wait_page(chrome, "203.0.113.0/24")
    shots("listings")
    chrome.get(stack.api.url + "/ui/requests")
    wait_page(chrome, "We closed the open relay.")
    shots("requests")
    row = chrome.find_element(  # the pending row of that key (the one with the buttons)
        _by("XPATH"), "//tr[td/a[normalize-space()='203.0.113.0/24']][.//button[@value='approve']]")
    assert "postmaster@example.org" in row.text
    approve = row.find_element(_by("CSS_SELECTOR"), 'button[value="approve"]')
    clicked = time.monotonic()
    approve.click()
    took = _nxdomain_within(stack, name, since=clicked, limit=1.0)
    assert took <= 1.0
    wait_page(chrome, "0 pending request(s).")
    shots("requests-decided")

    chrome.delete_all_cookies()
    chrome.get(status_url)
    wait_page(chrome, "approved")
    shots("request-approved")


def test_delist_a_key_in_the_console_and_the_rbl_answers_nxdomain_within_a_second(
        chrome: Any, stack: Stack, shots: Shots) -> None:
    _listed(stack, "198.51.100.0/24")
    name = ip_name("198.51.100.20")
    wait_until(lambda: stack.rbl.dig_short(name) == ["127.0.0.2"], timeout=10,
               what="the rbl answering for the new listing")
    sign_in(chrome, stack)
    chrome.get(stack.api.url + "/ui/listings?q=198.51.100")
    wait_page(chrome, "198.51.100.0/24")
    shots("listings-search")
    form = chrome.find_element(
        _by("XPATH"), "//form[@action='/ui/listings/delist'][input[@name='key' and "
        "@value='198.51.100.0/24']]")
    form.find_element(_by("NAME"), "reason").send_keys("customer fixed the relay")
    button = form.find_element(_by("TAG_NAME"), "button")
    clicked = time.monotonic()
    button.click()
    took = _nxdomain_within(stack, name, since=clicked, limit=1.0)
    assert took <= 1.0
    wait_page(chrome, "delisted")
    shots("listings-delisted")
    client = redis.Redis.from_url(stack.redis_url)
    try:
        assert ListingStore(client).find("198.51.100.20", now=time.time()) is None
    finally:
        client.close()


def _delivered(stack: Stack, msgid: str) -> list[Path]:
    import email

    return [p for p in stack.postfix.delivered()
            if (email.message_from_bytes(p.read_bytes()).get("Message-ID") or "").strip() == msgid]


def _held(stack: Stack) -> set[str]:
    return {str(e.get("queue_id")) for e in stack.postfix.queue() if e.get("queue_name") == "hold"}


def test_release_a_held_message_from_the_quarantine_and_find_it_delivered(
        chrome: Any, stack: Stack, shots: Shots) -> None:
    raw, msgid = make_message(from_addr="Alice <alice@good.test>", subject="Held for review")
    result = swaks(stack.hold_port, mail_from="alice@good.test", rcpt_to=RCPT, data=raw,
                   helo="client.test")
    assert result.returncode == 0, result.transcript
    qid = result.queue_id
    assert qid
    wait_until(lambda: qid in _held(stack), timeout=15, what=f"{qid} in the hold queue")
    assert _delivered(stack, msgid) == []

    sign_in(chrome, stack)
    chrome.get(stack.api.url + "/ui/quarantine")
    wait_page(chrome, qid)
    shots("quarantine")
    row = chrome.find_element(_by("CSS_SELECTOR"), f'tr[data-queue-id="{qid}"]')
    assert "alice@good.test" in row.text and RCPT in row.text
    row.find_element(_by("CSS_SELECTOR"), 'form[action="/ui/quarantine/release"] button').click()
    wait_page(chrome, f"{qid}: Released")
    shots("quarantine-released")
    # delivered by Postfix itself after the release (no flush by the test)
    [path] = wait_until(lambda: _delivered(stack, msgid), timeout=20,
                        what=f"{qid} delivered to the Maildir after its release")
    assert b"Subject: Held for review" in path.read_bytes()
    assert qid not in _held(stack)


def test_a_form_posted_from_another_site_changes_nothing(
        chrome: Any, stack: Stack, shots: Shots) -> None:
    """Cross-site request forgery in a real browser: a page elsewhere posts the delist form
    to the console of a signed-in operator. The browser does not send the SameSite=Strict
    cookie with it, and the page cannot know the CSRF token: nothing is delisted."""
    from urllib.parse import quote

    _listed(stack, "192.0.2.0/24")
    sign_in(chrome, stack)
    target = stack.api.url + "/ui/listings/delist"
    attack = ("<!doctype html><title>win a prize</title><form id=f method=post "
              f'action="{target}"><input name=key value="192.0.2.0/24">'
              "<input name=reason value=forged><input name=csrf value=guessed></form>"
              "<script>document.getElementById('f').submit()</script>")
    chrome.get("data:text/html;charset=utf-8," + quote(attack))
    wait_page(chrome, "Operator token")  # sent to sign in: the cookie did not come along
    assert chrome.current_url == stack.api.url + "/ui/login"
    shots("cross-site-post")
    client = redis.Redis.from_url(stack.redis_url)
    try:
        assert ListingStore(client).find("192.0.2.7", now=time.time()) is not None
    finally:
        client.close()
    # the operator's own session is untouched
    chrome.get(stack.api.url + "/ui/listings?q=192.0.2.0")
    wait_page(chrome, "192.0.2.0/24")
    assert "Sign out" in chrome.find_element(_by("TAG_NAME"), "body").text
    shots("cross-site-after")


@contextmanager
def other_site(html: str) -> Iterator[str]:
    """Serve ``html`` from another site (127.0.0.2: a different host is a different site);
    its URL. Loopback, so the browser's private-network rules do not get in the way."""
    import http.server
    import threading

    body = html.encode()

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.2", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.2:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_another_site_cannot_show_the_console_in_a_frame(
        chrome: Any, stack: Stack, shots: Shots) -> None:
    """Clickjacking: a page elsewhere framing the console (or its sign-in form) gets an
    empty frame, the browser refusing to draw it (X-Frame-Options, frame-ancestors)."""
    sign_in(chrome, stack)
    for path in ("/ui/", "/ui/login", "/ui/listings"):
        html = (f'<!doctype html><title>framed</title><iframe id=f src="{stack.api.url}{path}" '
                'width=900 height=500 onload="document.title=\'loaded\'"></iframe>')
        with other_site(html) as url:
            chrome.get(url)
            wait_until(lambda: chrome.title == "loaded", timeout=10, what=f"the frame of {path}")
            chrome.switch_to.frame(chrome.find_element(_by("ID"), "f"))
            try:
                shown = chrome.find_element(_by("TAG_NAME"), "body").text
            finally:
                chrome.switch_to.default_content()
            assert "Operator token" not in shown and "Sign out" not in shown, (path, shown)
    shots("framed", drawn=False)  # the refused frame is empty


def _api_json(stack: Stack, method: str, path: str, token: str, body: Any = None) -> Any:
    import json
    import urllib.request

    req = urllib.request.Request(
        stack.api.url + path, method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def test_every_page_of_the_navigation_opens_and_shows_something(
        chrome: Any, stack: Stack, shots: Shots) -> None:
    """Each entry of the navigation bar, followed by clicking it (pages added later too)."""
    # an advertiser with a few consents, so the consent page has a row to show
    adv = _api_json(stack, "POST", "/v1/advertisers", TOKEN,
                    {"id": "shop", "name": "Shop", "domains": ["shop.test"]})["token"]
    _api_json(stack, "POST", "/v1/advertisers/shop/consents", adv, {"consents": [
        {"recipient": f"buyer{i}@example.test", "method": "form",
         "at": "2026-01-02T03:04:05Z", "evidence": f"form {i}"} for i in range(3)]})
    sign_in(chrome, stack)
    links = [(a.get_attribute("href"), a.text)
             for a in chrome.find_elements(_by("CSS_SELECTOR"), "nav a")]
    assert len(links) >= 4, links
    for href, label in links:
        chrome.get(stack.api.url + "/ui/")
        wait_page(chrome, "Sign out")
        chrome.find_element(_by("LINK_TEXT"), label).click()
        page = wait_page(chrome, "Sign out")  # still signed in, the page frame drawn
        assert chrome.current_url == href, (label, chrome.current_url)
        assert "Internal Server Error" not in page and "Traceback" not in page, page
        slug = href.rstrip("/").rsplit("/", 1)[-1]
        shots(f"tour-{slug if slug != 'ui' else 'home'}")


def test_the_screenshot_check_refuses_a_blank_page_of_the_browser(chrome: Any) -> None:
    """The check every shot above passed tells an empty page apart (see also the unit tests
    on synthetic PNGs in tests/unit/test_screenshot_png.py)."""
    chrome.get("about:blank")
    seen = blankness(full_page_png(chrome))
    assert seen.colours == 1 and not seen.shows_something(), seen
