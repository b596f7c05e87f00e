"""The dashboard in a real browser: headless Chromium (Debian's, driven by Playwright; no browser is
downloaded) against ``run.py`` as a user starts it, on the simulated market ticking every second.

One walk through the page, as a new user takes it: sign up, log out, log in; the market table fills
from the snapshot and changes on the next tick without a reload; the search filters its rows; a
strategy with a mistake in its condition shows the message and a caret under the column, and once
fixed it is saved and listed; "Log out" ends the session. A screenshot of the end is written to the
test's temporary directory (``UBOT_TEST_SCREENSHOTS=DIR`` copies it there), never into the repository.

Skipped only when no Chromium binary is installed (``.ci/run`` installs Debian's ``chromium``).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.support.ports import free_port
from tests.support.processes import Process, command, environment, launch
from tests.support.waits import wait_until

CHROMIUM = next(
    (found for name in ("chromium", "chromium-browser", "google-chrome") if (found := shutil.which(name))),
    None,
)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary (apt-get install chromium)")

#: Milliseconds Playwright waits for anything on the page: only reached by a failing test.
WAIT_MS = 15_000
PASSWORD = "a browser walk, 2026"
#: How Chromium logs an HTTP error status the page expects (a 401 when logged out, the 422 of a
#: condition with a mistake); anything else on the console (a script error, a CSP refusal) fails.
REFUSED = "Failed to load resource: the server responded with a status of"


@pytest.fixture
def ubot(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    home = tmp_path / "home"
    home.mkdir()
    args = (
        "--source",
        "simulated",
        "--interval",
        "1",
        "--limit",
        "30",
        "--db",
        f"sqlite:///{tmp_path}/ubot.db",
    )
    started = launch(
        command("--bind", f"127.0.0.1:{port}", *args),
        tmp_path / "ubot.log",
        cwd=tmp_path,
        env=environment(home),
        new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            lambda: requests.get(base + "/v1/snapshot", timeout=5).status_code == 200,
            "the first snapshot",
            alive=started,
            ignoring=(requests.ConnectionError,),
            interval=0.05,
        )
        yield base
    finally:
        _stop(started)


def _stop(started: Process) -> None:
    started.proc.terminate()
    try:
        started.wait_exit()
    finally:
        started.close()


@pytest.fixture
def page(ubot: str) -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            context = browser.new_context(base_url=ubot, viewport={"width": 1280, "height": 900})
            context.set_default_timeout(WAIT_MS)
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on(
                "console",
                lambda message: (
                    errors.append(message.text)
                    if message.type == "error" and not message.text.startswith(REFUSED)
                    else None
                ),
            )
            yield page
            assert not errors, errors  # no script error, no CSP violation
        finally:
            browser.close()


def test_a_new_user_walks_through_the_dashboard(page, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    page.goto("/#account")
    # Sign up (which logs in), log out, log in.
    page.get_by_label("Username").fill("walker")
    page.get_by_label("E-mail").fill("walker@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    logout = page.get_by_role("button", name="Log out")
    expect(logout).to_be_visible()
    logout.click()
    expect(page.get_by_role("link", name="Log in or sign up", exact=True)).to_be_visible()
    page.goto("/#account")
    page.get_by_label("Username").fill("walker")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(logout).to_be_visible()
    assert {c["name"]: c for c in page.context.cookies()}["ubot_session"]["httpOnly"]

    # The market: a table with rows, changing on the next tick without a reload.
    table = page.get_by_role("table").filter(has=page.get_by_role("columnheader", name="Symbol"))
    expect(table.get_by_role("columnheader", name="Price")).to_be_visible()
    rows = table.locator("tbody tr")
    expect(rows).to_have_count(30)
    first_status = page.locator("#market-status").inner_text()
    # a later snapshot, no reload (ticks are 1 s apart; the bound allows for a loaded machine)
    expect(page.locator("#market-status")).not_to_have_text(first_status, timeout=20_000)
    expect(page.locator("#metrics")).to_contain_text("Market cap")
    # Search filters the rows.
    btc = rows.filter(has=page.get_by_role("rowheader", name="BTC", exact=True))
    search = page.get_by_role("searchbox", name="Search")
    search.fill("btc")
    expect(btc).to_have_count(1)
    expect(rows.filter(has_not_text=re.compile("btc", re.IGNORECASE))).to_have_count(0)
    assert 1 <= rows.count() < 30
    search.fill("no such coin")
    expect(rows).to_have_text(["No coin matches."])
    search.fill("")
    expect(rows).to_have_count(30)
    # Sorting by price, then back by rank.
    page.get_by_role("button", name="Price").click()
    expect(table.get_by_role("columnheader", name="Price")).to_have_attribute("aria-sort", "descending")

    # A strategy: a mistake in the condition shows where; fixed, it is saved and listed.
    page.get_by_role("link", name="Strategies").click()
    page.get_by_label("Name", exact=True).fill("BTC dip")
    condition = page.get_by_label("Condition")
    condition.fill("rsi(14) < 30 and price >> 5")
    message = page.locator("#s-condition-message")
    expect(message).to_contain_text("'>>'")
    caret = page.locator("#s-caret")
    expect(caret).to_be_visible()
    line, marker = caret.inner_text().split("\n")
    assert line == "rsi(14) < 30 and price >> 5"
    assert marker == " " * line.index(">>") + "^"
    expect(condition).to_have_attribute("aria-invalid", "true")
    condition.fill("rsi(14) < 30 and price > 5")
    expect(message).to_contain_text("Valid")
    expect(caret).to_be_hidden()
    expect(page.get_by_role("button", name="Dry run")).to_be_disabled()
    page.get_by_role("button", name="Save").click()
    listed = page.locator("#strategy-table tbody tr")
    expect(listed).to_have_count(1)
    expect(listed.first).to_contain_text("BTC dip")
    expect(listed.first).to_contain_text("rsi(14) < 30 and price > 5")
    toggle = page.get_by_role("checkbox", name="Enabled: BTC dip")
    toggle.uncheck()
    expect(page.locator("#toast")).to_contain_text("BTC dip disabled")

    shot = tmp_path / "dashboard.png"
    page.screenshot(path=str(shot), full_page=False)
    if os.environ.get("UBOT_TEST_SCREENSHOTS"):
        shutil.copy(shot, Path(os.environ["UBOT_TEST_SCREENSHOTS"]) / shot.name)

    # Log out: the session is over (the cookie is gone, the strategies ask to log in).
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("link", name="Log in or sign up", exact=True)).to_be_visible()
    assert "ubot_session" not in {c["name"] for c in page.context.cookies()}
    expect(page.locator("#strategies-login")).to_be_visible()
    assert re.search(r"#strategies$", page.url)
