"""The UAT page in a real headless Chromium (the system one, driven by Playwright; no browser download) against
the real server: sign in from the link, send a message, see the answer stream in, give a thumbs-down with a
correction and find it in the feedback log; and the page asks nothing of the network but its own server.

Skipped when Playwright or a Chromium/Chrome binary is missing (`.ci/run` installs Debian's chromium).
"""
from __future__ import annotations

import json
from urllib.parse import urlparse

import pytest

from ftkit.deployment.server import BackgroundServer
from ftkit.deployment.uat_log import read_lines
from ftkit.deployment.uat_tokens import TokenStore
from ftkit.report_pdf import find_chromium

playwright_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the test extra)")
BROWSER = find_chromium()
pytestmark = pytest.mark.skipif(BROWSER is None, reason="no chromium/chrome binary on PATH (Debian: apt-get install "
                                                        "chromium); the real-browser checks need one")

# Counts how often the answer's text changes while it arrives: more than once means it streamed in pieces.
# (Waits use selectors, not wait_for_function: the page's CSP forbids eval, and the test keeps the CSP on.)
WATCH_ANSWER = """() => { window.ftkitUpdates = 0; new MutationObserver(() => { window.ftkitUpdates += 1; })
  .observe(document.getElementById("log"), {subtree: true, characterData: true, childList: true}); }"""


@pytest.fixture(scope="module")
def served(tiny_chat_model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("uat-page")
    store = TokenStore(folder / "tokens.json")
    token = store.issue("dana")
    with BackgroundServer(tiny_chat_model, log_path=folder / "requests.jsonl", tokens=store,
                          feedback_path=folder / "feedback.jsonl", system_prompt="Triage the ticket.",
                          identity={"training_run": "20260101T000000Z-abc", "export": "20260102T000000Z-def (merged)"}) as srv:
        srv.folder, srv.token = folder, token
        yield srv


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        # Every host name resolves nowhere: a page that tried to load a CDN script or font would fail loudly.
        chromium = p.chromium.launch(executable_path=BROWSER, args=["--no-sandbox", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"])
        yield chromium
        chromium.close()


def open_page(browser, url: str):
    page = browser.new_page()
    requests, errors = [], []
    page.on("request", lambda r: requests.append(r.url))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(url)
    return page, requests, errors


def test_tester_chats_streams_and_corrects_an_answer(served, browser):
    page, _, errors = open_page(browser, served.page_url + "#token=" + served.token)
    page.wait_for_selector("#identity:has-text('tester: dana')", timeout=30_000)
    identity = page.inner_text("#identity")
    assert "tiny-ft" in identity and "20260101T000000Z-abc" in identity and "20260102T000000Z-def" in identity
    assert "token" not in page.evaluate("location.href"), "the token must leave the address bar"
    page.evaluate(WATCH_ANSWER)
    page.fill("#input", "My card was charged twice for one order.")
    page.click("#send")
    page.wait_for_selector(".assistant .feedback", timeout=60_000)
    shown = page.inner_text(".assistant .text")
    request_id = page.get_attribute(".assistant", "data-request-id")
    assert page.evaluate("window.ftkitUpdates") >= 3, "the answer did not arrive in pieces"

    [logged] = [e for e in read_lines(served.folder / "requests.jsonl")[0] if e["request_id"] == request_id]
    assert logged["stream"] is True and logged["tester"] == "dana" and logged["output"] == shown.strip()
    assert logged["messages"] == [{"role": "system", "content": "Triage the ticket."},
                                  {"role": "user", "content": "My card was charged twice for one order."}]

    page.click(".thumb-down")
    page.fill(".correction", '{"category": "billing", "priority": "high"}')
    page.fill(".comment", "duplicate charge is billing")
    page.click(".send-feedback")
    page.wait_for_selector(".feedback-status:has-text('saved')", timeout=30_000)
    [feedback] = [e for e in read_lines(served.folder / "feedback.jsonl")[0] if e["request_id"] == request_id]
    assert (feedback["tester"], feedback["rating"], feedback["correction"], feedback["comment"]) == \
        ("dana", "down", '{"category": "billing", "priority": "high"}', "duplicate charge is billing")
    assert feedback["output"] == logged["output"]
    assert not errors, errors
    page.close()


def test_page_loads_nothing_from_the_network(served, browser):
    origin = "{0.scheme}://{0.netloc}".format(urlparse(served.page_url))
    page, requests, errors = open_page(browser, served.page_url + "#token=" + served.token)
    page.wait_for_selector("#identity:has-text('tester')", timeout=30_000)
    page.wait_for_load_state("networkidle")
    assert requests and all(url.startswith(origin + "/") for url in requests), requests
    assert {urlparse(u).path for u in requests} <= {"/", "/uat/info"}
    html = page.content()
    for marker in ("<link", "src=\"http", "@import", "url(http", "fonts.googleapis"):
        assert marker not in html, marker
    assert not errors, errors
    page.close()


def test_a_bad_token_shows_the_sign_in_form_with_the_servers_message(served, browser):
    page, _, _ = open_page(browser, served.page_url + "#token=ftk_wrong")
    page.wait_for_selector("#login:not([hidden])", timeout=30_000)
    page.wait_for_selector("#login-status:has-text('token')", timeout=30_000)
    assert "revoked" in page.inner_text("#login-status") and page.is_hidden("#chat")
    page.fill("#token", served.token)
    page.click("#save-token")
    page.wait_for_selector("#identity:has-text('tester: dana')", timeout=30_000)
    page.close()
