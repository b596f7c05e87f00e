"""The dashboard in a real browser: headless Chromium (Debian's, driven by Playwright; no browser is
downloaded) against ``run.py`` as a user starts it, replaying a recorded market one file a second.

The recording is the simulated market's, 30 coins a minute (``tests/procs.write_market``): its first
13 hours are stored beforehand by a headless ``run.py --interval 0`` (once per module, the database
copied for each test), so the charts have history; each test's ``run.py`` then replays the following
minutes at one a second, so the page sees ticks, candles and alerts arrive.

* a new user's walk: sign up, log out, log in; the market table fills and changes on the next tick
  without a reload; search and sort; a strategy with a mistake shows the message and a caret under
  its column (in its condition and in its message template, as typed: the template against the
  condition), fixed it is saved and listed with its template; "Log out" ends the session;
* the coin chart draws, in another timeframe too, zooms and pans from the keyboard, and draws an
  overlay typed in the condition language (a mistake in it shows its caret);
* a dry run over the stored day draws its firings as markers on the chart and lists them in a table;
  a mistake in its condition shows the caret;
* an alert raised by the replay appears in the alerts feed without a reload, and as a marker on the
  coin's chart; settings are saved (the mute too: kept, refused past 7 days, cleared); "Log out
  everywhere" ends the session;
* the settings list each session (this browser, a program's token logged in through the API), and
  logging out the other one makes its token get 401 while this browser's session goes on.

Each test saves a screenshot in ``tests/output/screenshots/`` (git-ignored; ``UBOT_TEST_SCREENSHOTS``
names another directory). Skipped only when no Chromium binary is installed (``.ci/run`` installs
Debian's ``chromium``).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import requests

from tests.procs import write_market
from tests.support.ports import free_port
from tests.support.processes import REPO, Process, command, environment, launch
from tests.support.waits import wait_until
from tests.support.workers import made_once

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
COINS = 30
HISTORY_FILES = 780  # 13 hours of minutes, stored before each test's run.py starts
LIVE_FILES = 240  # then replayed at one a second: four minutes of ticks, more than a test takes
MARKET_START_MS = 1_729_036_800_000  # 2024-10-16T00:00:00Z
SCREENSHOTS = Path(os.environ.get("UBOT_TEST_SCREENSHOTS") or REPO / "tests" / "output" / "screenshots")


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> tuple[Path, Path]:
    """(the replay directory of the live minutes, a database holding the history before them):
    made once per test run (under pytest-xdist, by the first worker that needs them)."""
    base = made_once(tmp_path_factory, "dashboard-market", _record)
    return base / "live", base / "history.db"


def _record(base: Path) -> None:
    market = write_market(base / "all", HISTORY_FILES + LIVE_FILES, COINS, MARKET_START_MS)
    history, live = base / "history", base / "live"
    history.mkdir()
    live.mkdir()
    for number, path in enumerate(sorted(Path(market.directory).glob("*.json"))):
        shutil.copy(path, (history if number < HISTORY_FILES else live) / path.name)
    database = base / "history.db"
    home = base / "home"
    home.mkdir()
    stored = launch(
        command(
            "--source",
            "replay",
            "--replay-dir",
            str(history),
            "--interval",
            "0",
            "--no-http",
            "--limit",
            str(COINS),
            "--db",
            f"sqlite:///{database}",
        ),
        base / "history.log",
        cwd=base,
        env=environment(home),
        new_session=True,
    )
    try:
        assert stored.wait_exit(timeout=300) == 0, stored.tail()
    finally:
        stored.close()


@pytest.fixture
def ubot(tmp_path: Path, recorded: tuple[Path, Path]) -> Iterator[str]:
    live, history = recorded
    for suffix in ("", "-wal", "-shm"):
        if Path(f"{history}{suffix}").exists():
            shutil.copy(f"{history}{suffix}", tmp_path / f"ubot.db{suffix}")
    yield from _serve(
        tmp_path,
        ("--source", "replay", "--replay-dir", str(live), "--interval", "1", "--limit", str(COINS)),
        {},
    )


def _serve(tmp_path: Path, args: tuple[str, ...], env: dict[str, str]) -> Iterator[str]:
    """``run.py args`` serving on a free port, with ``env``; its base URL once it has a snapshot."""
    port = free_port()
    home = tmp_path / "home"
    home.mkdir()
    started = launch(
        command("--bind", f"127.0.0.1:{port}", "--db", f"sqlite:///{tmp_path}/ubot.db", *args),
        tmp_path / "ubot.log",
        cwd=tmp_path,
        env=environment(home, env),
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
    yield from _browse(ubot)


def _browse(base: str) -> Iterator:
    """A page of a fresh Chromium on ``base``; the test fails on any script error or CSP refusal."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            context = browser.new_context(base_url=base, viewport={"width": 1280, "height": 900})
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


def screenshot(page, name: str) -> Path:
    """The page as it is now, in the screenshots directory (``name``.png)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    return path


def sign_up(page, username: str) -> None:
    from playwright.sync_api import expect

    page.goto("/#account")
    page.get_by_label("Username", exact=True).fill(username)
    page.get_by_label("E-mail", exact=True).fill(f"{username}@example.com")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()


def test_a_new_user_walks_through_the_dashboard(page) -> None:
    from playwright.sync_api import expect

    # Sign up (which logs in), log out, log in.
    sign_up(page, "walker")
    logout = page.get_by_role("button", name="Log out")
    logout.click()
    expect(page.get_by_role("link", name="Log in or sign up", exact=True)).to_be_visible()
    page.goto("/#account")
    page.get_by_label("Username", exact=True).fill("walker")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
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
    # The message template, checked as typed: a mistake shows the caret under its column.
    template = page.get_by_label("Message template")
    template_message = page.locator("#s-template-message")
    template_caret = page.locator("#s-template-caret")
    template.fill("{symbol} at {price.__class__}")
    expect(template_message).to_contain_text("attribute access ('.') is not allowed")
    expect(template_caret).to_have_text("{symbol} at {price.__class__}\n" + " " * 18 + "^")
    expect(template).to_have_attribute("aria-invalid", "true")
    # its {value:EXPR} against the condition: a change of the condition checks it again
    template.fill("{symbol} at {price}: SMA {value:sma(20):.1f}")
    expect(template_message).to_contain_text("sma(20) is not in the condition")
    expect(template_caret).to_have_text("{symbol} at {price}: SMA {value:sma(20):.1f}\n" + " " * 32 + "^")
    condition.fill("rsi(14) < 30 and price > sma(20)")
    expect(template_message).to_have_text("Valid template.")
    expect(template_caret).to_be_hidden()
    expect(template).not_to_have_attribute("aria-invalid", "true")
    condition.fill("rsi(14) < 30 and price > 5")
    expect(template_message).to_contain_text("sma(20) is not in the condition")
    # A mistake is refused when saved too, with the same caret.
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#strategy-message")).to_contain_text("sma(20) is not in the condition")
    expect(page.locator("#strategy-table tbody tr")).to_have_count(0)
    template.fill("{symbol} at {price}: RSI {value:rsi(14):.1f}")
    expect(template_message).to_have_text("Valid template.")
    page.get_by_role("button", name="Save").click()
    listed = page.locator("#strategy-table tbody tr")
    expect(listed).to_have_count(1)
    expect(listed.first).to_contain_text("BTC dip")
    expect(listed.first).to_contain_text("rsi(14) < 30 and price > 5")
    expect(listed.first).to_contain_text("{symbol} at {price}: RSI {value:rsi(14):.1f}")
    expect(listed.first).to_contain_text("this page only")  # no channel ticked
    # each channel's state: no destination is set up yet
    expect(page.get_by_role("group", name="Channels")).to_contain_text("Webhook (no destination yet)")
    toggle = page.get_by_role("checkbox", name="Enabled: BTC dip")
    toggle.uncheck()
    expect(page.locator("#toast")).to_contain_text("BTC dip disabled")

    screenshot(page, "strategies")

    # Log out: the session is over (the cookie is gone, the strategies ask to log in).
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("link", name="Log in or sign up", exact=True)).to_be_visible()
    assert "ubot_session" not in {c["name"] for c in page.context.cookies()}
    expect(page.locator("#strategies-login")).to_be_visible()
    assert re.search(r"#strategies$", page.url)


def test_the_coin_chart_draws_zooms_pans_and_overlays(page) -> None:
    from playwright.sync_api import expect

    page.goto("/")
    page.get_by_role("link", name="BTC", exact=True).click()
    expect(page).to_have_url(re.compile(r"#coin/1$"))
    expect(page.get_by_role("heading", name="BTC")).to_be_visible()
    chart = page.get_by_role("img", name=re.compile(r"^BTC 1h candle chart"))
    expect(chart).to_have_attribute("data-drawn", re.compile(r"^[1-9]"))
    assert _painted(chart)  # pixels, not only the bookkeeping

    # Another timeframe: the 15-minute candles of the 13 hours stored (and the minutes since)
    page.get_by_role("group", name="Timeframe").get_by_role("button", name="15m").click()
    expect(page.get_by_role("button", name="15m")).to_have_attribute("aria-pressed", "true")
    chart = page.get_by_role("img", name=re.compile(r"^BTC 15m candle chart"))
    # 13 hours stored and the minutes since: the 52 quarters of the history and one or two more
    expect(chart).to_have_attribute("data-drawn", re.compile(r"^5[2-5]$"))
    expect(page.locator("#coin-status")).to_contain_text("candles of 15m")
    drawn = int(chart.get_attribute("data-drawn"))
    # Keyboard: + zooms in (fewer candles), the left arrow pans back (an earlier first candle)
    chart.focus()
    page.keyboard.press("+")
    expect(chart).not_to_have_attribute("data-drawn", str(drawn))
    zoomed = int(chart.get_attribute("data-drawn"))
    assert zoomed < drawn
    first = int(chart.get_attribute("data-first"))
    assert first > 0
    page.keyboard.press("ArrowLeft")
    expect(chart).not_to_have_attribute("data-first", str(first))
    assert int(chart.get_attribute("data-first")) < first
    # The mouse wheel zooms out again
    chart.hover()
    page.mouse.wheel(0, 400)
    expect(chart).not_to_have_attribute("data-drawn", str(zoomed))
    assert int(chart.get_attribute("data-drawn")) > zoomed

    # An overlay in the condition language; a mistake in one shows its caret
    overlay = page.get_by_label("Overlay", exact=True)
    overlay.fill("bb_upper(20, 2)")
    page.get_by_role("button", name="Add overlay").click()
    expect(chart).to_have_attribute("data-overlays", "1")
    expect(page.get_by_role("button", name="Remove overlay bb_upper(20, 2)")).to_be_visible()
    overlay.fill("sma(20) + volume_24h")
    page.get_by_role("button", name="Add overlay").click()
    expect(page.locator("#overlay-message")).to_contain_text("no volume_24h")
    caret = page.locator("#overlay-caret")
    line, marker = caret.inner_text().split("\n")
    assert (line, marker) == ("sma(20) + volume_24h", " " * line.index("volume_24h") + "^")
    expect(chart).to_have_attribute("data-overlays", "1")
    overlay.fill("sma(20)")
    page.get_by_role("button", name="Add overlay").click()
    expect(chart).to_have_attribute("data-overlays", "2")
    expect(page.locator("#coin-readout")).to_contain_text("sma(20)")
    screenshot(page, "coin")
    # The overlays are kept for the next visit
    page.reload()
    expect(chart).to_have_attribute("data-overlays", "2")
    page.get_by_role("button", name="Remove overlay sma(20)").click()
    expect(chart).to_have_attribute("data-overlays", "1")


def _painted(chart) -> bool:
    """Whether the canvas holds more than its background: a few distinct colours at least."""
    colours = chart.evaluate(
        """canvas => {
            const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
            const seen = new Set();
            for (let i = 0; i < data.length; i += 4 * 97) seen.add(data[i] << 16 | data[i + 1] << 8 | data[i + 2]);
            return seen.size;
        }"""
    )
    return colours > 4


def test_an_alert_of_the_replay_appears_in_the_feed_and_on_the_chart(page) -> None:
    from playwright.sync_api import expect

    sign_up(page, "watcher")
    page.get_by_role("link", name="Strategies").click()
    page.get_by_label("Name", exact=True).fill("BTC above its mean")
    page.get_by_label("Condition").fill("price > 0")
    page.get_by_role("combobox", name="Timeframe").select_option("1m")
    page.get_by_role("combobox", name="Frequency").select_option("once_per_bar")
    page.get_by_role("radio", name="Symbols").check()
    page.get_by_label("Symbols (comma-separated)").fill("BTC")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#strategy-table tbody tr")).to_have_count(1)

    # The feed: the alert arrives from the stream, no reload.
    page.get_by_role("link", name="Alerts").click()
    feed = page.get_by_role("table").filter(has=page.get_by_role("columnheader", name="Deliveries"))
    alert = feed.locator("tbody tr").filter(has=page.get_by_role("rowheader", name=re.compile(r"^BTC")))
    expect(alert.first).to_be_visible(timeout=30_000)
    expect(alert.first).to_contain_text("BTC above its mean")
    expect(alert.first.locator(".badge", has_text="live")).to_be_visible()
    # Filters: a coin no alert is about empties the list
    page.get_by_role("searchbox", name="Coin").fill("ETH")
    expect(page.locator("#alerts-empty")).to_have_text("No alert matches the filters.")
    page.get_by_role("searchbox", name="Coin").fill("")
    expect(alert.first).to_be_visible()
    screenshot(page, "alerts")

    # The same alerts as markers on BTC's 1m chart
    alert.first.get_by_role("link", name="BTC").click()
    chart = page.get_by_role("img", name=re.compile(r"^BTC 1m candle chart"))
    expect(chart).to_have_attribute("data-markers", re.compile(r"^[1-9]"))
    expect(page.locator("#coin-alerts")).to_contain_text("of your alerts on this coin")
    # The scanner's figures in the health view: this one strategy, its cost (1 coin, 1 series)
    page.get_by_role("link", name="Health").click()
    scanner = page.get_by_role("region", name="Scanner")
    expect(scanner).to_contain_text("Strategies1")
    expect(scanner).to_contain_text("Cost1 series-coins")

    # Settings: saved, and read back after a reload
    page.get_by_role("link", name="Settings").click()
    page.get_by_label("Quiet hours").fill("22:00-07:00")
    page.get_by_label("Time zone").fill("Europe/Paris")
    page.get_by_role("button", name="Save settings").click()
    expect(page.locator("#toast")).to_contain_text("Settings saved")
    page.reload()
    expect(page.get_by_label("Time zone")).to_have_value("Europe/Paris")
    expect(page.get_by_label("Quiet hours")).to_have_value("22:00-07:00")
    # The mute (the Telegram bot's /mute as a setting): saved, read back, kept by another save,
    # refused past 7 days (the field named and focused), cleared
    muted = (datetime.now() + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M")  # the browser's zone is ours
    page.get_by_label("Mute alerts until").fill(muted)
    page.get_by_role("button", name="Save settings").click()
    expect(page.locator("#toast")).to_contain_text("Settings saved")
    page.reload()
    expect(page.get_by_label("Mute alerts until")).to_have_value(muted)
    settings = page.evaluate("fetch('/v1/me/settings').then((r) => r.json())")
    assert settings["muted_until"] is not None and settings["muted_until"].endswith("Z")
    page.get_by_role("button", name="Save settings").click()  # unchanged: kept to the millisecond
    expect(page.locator("#toast")).to_contain_text("Settings saved")
    again = page.evaluate("fetch('/v1/me/settings').then((r) => r.json())")
    assert again["muted_until"] == settings["muted_until"]
    page.get_by_label("Mute alerts until").fill(
        (datetime.now() + timedelta(days=9)).strftime("%Y-%m-%dT%H:%M")
    )
    page.get_by_role("button", name="Save settings").click()
    expect(page.locator("#settings-message")).to_contain_text("muted_until")
    expect(page.locator("#settings-message")).to_contain_text("at most 7 days")
    expect(page.get_by_label("Mute alerts until")).to_be_focused()
    page.get_by_label("Mute alerts until").fill("")
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_label("Mute alerts until")).to_have_value("")
    assert page.evaluate("fetch('/v1/me/settings').then((r) => r.json())")["muted_until"] is None
    # Destinations: each one's state; Verify sends the one message an unverified one may get
    destinations = page.get_by_role("list", name="Verified destinations")
    expect(destinations).to_contain_text("Webhook: not set — unverified")
    page.get_by_label("Alert e-mails to").fill("watcher@example.com")
    page.get_by_role("button", name="Save settings").click()
    expect(destinations).to_contain_text("E-mail: watcher@example.com — unverified")
    page.get_by_role("button", name="Verify E-mail").click()  # this server has no SMTP: it says so
    expect(page.locator("#verify-message")).to_contain_text("email is not configured on this server")
    page.get_by_label("Alert e-mails to").fill("")
    page.get_by_role("button", name="Save settings").click()
    expect(destinations).to_contain_text("E-mail: not set — unverified")
    page.get_by_label("Quiet hours").fill("25:00-07:00")
    page.get_by_role("button", name="Save settings").click()
    expect(page.locator("#settings-message")).to_contain_text("quiet_hours")
    expect(page.get_by_label("Quiet hours")).to_be_focused()

    # The password: a wrong current one is refused there; the change ends the session
    page.get_by_label("Current password").fill("not my password at all")
    page.get_by_label("New password").fill("another walk, 2027")
    page.get_by_role("button", name="Change password").click()
    expect(page.locator("#password-message")).not_to_be_empty()
    expect(page.get_by_label("Current password")).to_be_focused()
    page.get_by_label("Current password").fill(PASSWORD)
    page.get_by_role("button", name="Change password").click()
    expect(page.locator("#toast")).to_contain_text("Password changed")
    expect(page.get_by_role("link", name="Log in or sign up", exact=True)).to_be_visible()
    page.get_by_label("Username", exact=True).fill("watcher")
    page.get_by_label("Password", exact=True).fill("another walk, 2027")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()
    page.get_by_role("link", name="Settings").click()

    # Log out everywhere: this session ends too
    page.get_by_role("button", name="Log out everywhere").click()
    expect(page.get_by_role("link", name="Log in or sign up", exact=True)).to_be_visible()
    assert "ubot_session" not in {c["name"] for c in page.context.cookies()}
    page.goto("/#settings")
    expect(page.locator("#settings-login")).to_be_visible()


def test_each_session_is_listed_and_another_one_is_logged_out(ubot, page) -> None:
    from playwright.sync_api import expect

    sign_up(page, "traveller")
    login = requests.post(
        ubot + "/v1/sessions",
        json={"username": "traveller", "password": PASSWORD},
        headers={"User-Agent": "sessions-test/1.0"},
        timeout=10,
    )
    assert login.status_code == 201, login.text
    program = {"Authorization": f"Bearer {login.json()['token']}"}
    assert requests.get(ubot + "/v1/me/settings", headers=program, timeout=10).status_code == 200

    page.get_by_role("link", name="Settings").click()
    sessions = page.get_by_role("list", name="Sessions")
    expect(sessions.get_by_role("listitem")).to_have_count(2)
    this = sessions.get_by_role("listitem").filter(has_text="This browser")
    other = sessions.get_by_role("listitem").filter(has_text="A program: sessions-test/1.0 from 127.0.0.1")
    expect(this).to_have_count(1)
    expect(other).to_have_count(1)
    screenshot(page, "sessions")

    other.get_by_role("button", name=re.compile(r"^Log out session \d+ \(A program: sessions-test")).click()
    expect(page.locator("#toast")).to_contain_text("Session logged out")
    expect(sessions.get_by_role("listitem")).to_have_count(1)
    expect(sessions.get_by_role("listitem")).to_contain_text("This browser")
    assert requests.get(ubot + "/v1/me/settings", headers=program, timeout=10).status_code == 401
    # this browser's session goes on
    page.reload()
    expect(page.get_by_role("button", name="Log out everywhere")).to_be_visible()
    expect(sessions.get_by_role("listitem")).to_have_count(1)


def test_health_shows_the_pipeline(page) -> None:
    from playwright.sync_api import expect

    page.goto("/#health")
    expect(page.locator("#health-status")).to_have_text("ok")
    stages = page.locator(".stages li")
    expect(stages.first).to_contain_text("fetch")
    expect(page.get_by_role("heading", name="Clock")).to_be_visible()
    expect(page.locator("#health-body")).to_contain_text("Interval")
    expect(page.locator("#health-body")).to_contain_text("spends no CoinMarketCap credits")
    screenshot(page, "health")


def test_a_dry_run_draws_its_firings_as_markers_and_a_table(page) -> None:
    from playwright.sync_api import expect

    sign_up(page, "dreamer")
    page.get_by_role("link", name="Strategies").click()
    page.get_by_label("Name", exact=True).fill("Over the mean")
    condition = page.get_by_label("Condition")
    page.get_by_role("combobox", name="Timeframe").select_option("15m")
    page.get_by_role("radio", name="Symbols").check()
    page.get_by_label("Symbols (comma-separated)").fill("BTC, ETH")
    # A mistake: refused with the caret under it, nothing drawn
    condition.fill("price >> sma(20)")
    page.get_by_role("button", name="Dry run").click()
    expect(page.locator("#strategy-message")).to_contain_text("'>>'")
    expect(page.locator("#s-caret")).to_have_text("price >> sma(20)\n      ^")
    expect(page.locator("#dry-run")).to_be_hidden()

    condition.fill("price > sma(20)")
    page.get_by_role("button", name="Dry run").click()
    summary = page.locator("#dry-run-summary")
    expect(summary).to_contain_text(re.compile(r"^\d+ firings? over 2 coins"))
    # The range: the day before the latest snapshot (filled in), inside the 13 hours stored
    assert (
        page.get_by_label("From", exact=True).input_value()
        < page.get_by_label("To", exact=True).input_value()
    )
    fired = int(summary.inner_text().split()[0])
    assert fired > 0
    table = page.get_by_role("table").filter(has=page.get_by_role("columnheader", name="Values"))
    rows = table.locator("tbody tr")
    expect(rows).to_have_count(fired)
    expect(rows.first).to_contain_text("sma(20) =")
    # The chart shows the coin with the most firings, each one a marker
    coin = page.get_by_role("combobox", name="Coin")
    symbol, count = re.fullmatch(r"(\w+) \((\d+)\)", coin.locator("option:checked").inner_text()).groups()
    chart = page.get_by_role("img", name=re.compile(rf"^Dry run chart of {symbol}"))
    expect(chart).to_have_attribute("data-markers", count)
    assert rows.filter(has=page.get_by_role("rowheader", name=symbol, exact=True)).count() == int(count)
    assert _painted(chart)
    # The other coin's firings on its own chart
    other = coin.locator("option:not(:checked)")
    if other.count():
        name, other_count = re.fullmatch(r"(\w+) \((\d+)\)", other.first.inner_text()).groups()
        coin.select_option(label=other.first.inner_text())
        chart = page.get_by_role("img", name=re.compile(rf"^Dry run chart of {name}"))
        expect(chart).to_have_attribute("data-markers", other_count)
    page.locator("#dry-run").scroll_into_view_if_needed()
    expect(page.locator("#toast")).not_to_have_class(re.compile(r"\bshow\b"), timeout=10_000)
    screenshot(page, "dry-run")


@pytest.fixture
def cmc_page(tmp_path: Path) -> Iterator:
    """The dashboard of ``run.py --source cmc`` on the fake CoinMarketCap (a 10,000-credit plan), a
    tick a second: far more than the plan pays for."""
    from tests.fakecmc import KEY, FakeCmc

    fake = FakeCmc(step_ms=60_000).start()
    try:
        env = {
            "UBOT_COINMARKETCAP_API_KEY": KEY,
            "UBOT_COINMARKETCAP_BASE_URL": fake.base_url,
            "UBOT_COINMARKETCAP_FIT_TO_PLAN": "false",
        }
        for base in _serve(tmp_path, ("--source", "cmc", "--interval", "1"), env):
            yield from _browse(base)
    finally:
        fake.stop()


def test_health_shows_the_coinmarketcap_budget(cmc_page) -> None:
    from playwright.sync_api import expect

    page = cmc_page
    page.goto("/#health")
    budget = page.get_by_role("region", name="CoinMarketCap budget")
    expect(budget).to_contain_text("Plan allowance10,000 a month")
    expect(budget).to_contain_text("Per tick2")  # 100 coins' listings and the global metrics
    # A tick a second at 2 credits runs through 10,000 credits within the month
    expect(budget.get_by_role("meter", name="The month's projected credits of the allowance")).to_be_visible()
    expect(budget).to_contain_text("the plan runs out before the month ends")
    used = int(
        budget.locator("dt", has_text="Used this month").locator("xpath=../dd").inner_text().replace(",", "")
    )
    assert used > 0
    screenshot(page, "health-budget")
