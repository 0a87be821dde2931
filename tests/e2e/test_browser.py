"""The dashboard in a real browser: started as the README says, opened with Debian's chromium.

Needs /usr/bin/chromium (``apt-get install -y chromium``); playwright drives it (never
``playwright install``). The screenshot goes to ``$RESQUE_SCREENSHOT_DIR`` (else tmp_path).
"""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"
    ),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_server(url: str, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"streamlit exited early with code {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"streamlit did not answer on {url} within {timeout} s")


@pytest.fixture
def server(tmp_path):
    port = _free_port()
    env = {**os.environ, "RESQUE_CACHE_DIR": str(tmp_path / "cache")}
    log = (tmp_path / "streamlit.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            "app.py",
            "--server.headless",
            "true",
            "--server.address",
            "127.0.0.1",
            "--server.port",
            str(port),
            "--browser.gatherUsageStats",
            "false",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for_server(url, proc, timeout=60)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def test_demo_ranking_chart_appears(server, tmp_path):
    from playwright.sync_api import sync_playwright

    shots = Path(os.environ.get("RESQUE_SCREENSHOT_DIR") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(server)
            # The demo ranking is computed on first start (progress bar), then drawn: about 20 s on
            # a quiet 2-core machine (docs/BENCHMARKS.md); the wait leaves room for a loaded one.
            chart = page.locator(".js-plotly-plot").first
            chart.wait_for(state="visible", timeout=300_000)
            page.wait_for_timeout(1500)  # let plotly finish laying out before the screenshot
            page.screenshot(path=str(shots / "start_page.png"), full_page=True)
            body = page.inner_text("body")
            assert "Start a new comparison with your own files" in body
            assert "Distribution shifts (RESQUE_dist)" in body
            assert "Traceback" not in body
        finally:
            browser.close()
    assert (shots / "start_page.png").stat().st_size > 10_000
