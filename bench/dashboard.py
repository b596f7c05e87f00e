#!/usr/bin/env python3
"""Dashboard benchmark (issue 15): the page's first render and its weight, in a real browser.

    python bench/dashboard.py [--loads 15] [--coins 100]

Starts ``run.py`` on the simulated market (``--limit`` coins, a tick a second, a temporary SQLite
database) and loads ``/`` in Debian's headless Chromium (Playwright) ``--loads`` times, each in a
fresh browser context (a cold cache: every file is fetched again). Figures, medians over the loads:

* ``first paint``: the browser's first-contentful-paint, from the navigation's start;
* ``first render``: until the market table holds its rows (the page's own modules loaded, the
  snapshot fetched and drawn): what a user waits for. Target: <= 1 s;
* ``coin chart``: from the navigation's start of ``/#coin/1`` until its canvas has drawn candles.

and the page's weight: the bytes of the page and its own files as served (``transferSize`` of the
HTML, scripts, style sheet and icon; the API's JSON is data, listed apart), beside the files' size
in the package. Target: <= 300 KB.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ubot.http.dashboard import Bundle  # noqa: E402

RENDER_TARGET_MS = 1000
WEIGHT_TARGET_KB = 300
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def start(folder: Path, coins: int) -> tuple[subprocess.Popen, str]:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("UBOT_")}
    env["HOME"] = str(folder)
    args = [sys.executable, str(REPO / "run.py"), "--config", str(REPO / "settings.ini")]
    args += ["--source", "simulated", "--interval", "1", "--limit", str(coins)]
    args += ["--db", f"sqlite:///{folder}/ubot.db", "--bind", f"127.0.0.1:{port}"]
    log = open(folder / "ubot.log", "w")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        args, cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(base + "/v1/snapshot", timeout=5).status_code == 200:
                return proc, base
        except requests.ConnectionError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"run.py did not serve a snapshot:\n{(folder / 'ubot.log').read_text()[-2000:]}")


#: The page marks the moments itself (performance.mark in market.js and chart.js).
MARK_JS = "name => performance.getEntriesByName(name)[0].startTime"
FIGURES_JS = """() => {
    const nav = performance.getEntriesByType("navigation")[0];
    const paint = performance.getEntriesByName("first-contentful-paint")[0];
    const files = performance.getEntriesByType("resource").filter((r) => r.name.includes("/ui/"));
    const data = performance.getEntriesByType("resource").filter((r) => r.name.includes("/v1/"));
    return {
        paint: paint ? paint.startTime : null,
        page: nav.transferSize,
        files: files.reduce((sum, r) => sum + r.transferSize, 0),
        count: files.length,
        data: data.reduce((sum, r) => sum + r.transferSize, 0),
    };
}"""


def measure(base: str, loads: int, coins: int) -> dict[str, list[float]]:
    from playwright.sync_api import sync_playwright

    found: dict[str, list[float]] = {
        "paint": [],
        "render": [],
        "chart": [],
        "weight": [],
        "data": [],
        "count": [],
    }
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            for _ in range(loads):
                context = browser.new_context(base_url=base, viewport={"width": 1280, "height": 900})
                page = context.new_page()
                page.goto("/", wait_until="commit")
                page.locator("#market-table tbody tr").nth(coins - 1).wait_for()
                found["render"].append(page.evaluate(MARK_JS, "ubot:market"))
                page.wait_for_load_state("load")
                figures = page.evaluate(FIGURES_JS)
                found["paint"].append(figures["paint"])
                found["weight"].append(figures["page"] + figures["files"])
                found["data"].append(figures["data"])
                found["count"].append(figures["count"])
                context.close()
                context = browser.new_context(base_url=base, viewport={"width": 1280, "height": 900})
                page = context.new_page()
                page.goto("/#coin/1", wait_until="commit")
                page.locator("#coin-chart[data-drawn]:not([data-drawn='0'])").wait_for(state="attached")
                found["chart"].append(page.evaluate(MARK_JS, "ubot:chart"))
                context.close()
        finally:
            browser.close()
    return found


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--loads", type=int, default=15, help="page loads to take the medians of")
    parser.add_argument("--coins", type=int, default=100, help="coins in the market table")
    options = parser.parse_args()
    if CHROMIUM is None:
        raise SystemExit("no chromium binary: apt-get install chromium")
    files = sum(len(file.body) for file in Bundle.packaged().assets.values()) + len(
        Bundle.packaged().index.body
    )
    with tempfile.TemporaryDirectory() as folder:
        proc, base = start(Path(folder), options.coins)
        try:
            found = measure(base, options.loads, options.coins)
        except Exception:
            lines = (Path(folder) / "ubot.log").read_text().splitlines()
            print("\n".join([line for line in lines if " tick " not in line][-40:]), file=sys.stderr)
            raise
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    median = {name: statistics.median(values) for name, values in found.items()}
    print(f"dashboard, {options.loads} cold loads, {options.coins} coins (medians):")
    print(f"  first paint     {median['paint']:7.0f} ms")
    render = median["render"]
    verdict = "ok" if render <= RENDER_TARGET_MS else "OVER"
    print(
        f"  first render    {render:7.0f} ms   (market table filled; target <= {RENDER_TARGET_MS} ms: {verdict})"
    )
    print(f"  coin chart      {median['chart']:7.0f} ms   (candles drawn on /#coin/1)")
    weight = median["weight"] / 1024
    verdict = "ok" if weight <= WEIGHT_TARGET_KB else "OVER"
    print(
        f"  page weight     {weight:7.1f} KB   (page and {median['count']:.0f} files as transferred; "
        f"target <= {WEIGHT_TARGET_KB} KB: {verdict})"
    )
    print(f"  package files   {files / 1024:7.1f} KB   (ubot/http/static, uncompressed)")
    print(f"  API data        {median['data'] / 1024:7.1f} KB   (the snapshot and the session check)")


if __name__ == "__main__":
    main()
