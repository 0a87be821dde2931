"""An exported HTML report in a real browser with the network cut off: every chart draws.

A real (tiny) ranking is computed and stored, exported with ``report --run latest``, and opened
from a file:// URL in Debian's chromium (``apt-get install -y chromium``; playwright drives it,
never ``playwright install``). Any request that is not for a file fails the test.
"""

from dataclasses import replace
from pathlib import Path

import pytest

from resque_core.cli import main
from resque_core.plans import DEMO_PLAN, Candidate, load_plan
from resque_core.ranking import rank_plan
from resque_core.store.runs import RunStore

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"
    ),
]


@pytest.fixture
def exported(tmp_path) -> Path:
    demo = load_plan(DEMO_PLAN)
    plan = replace(
        demo,
        name="browser report",
        run=replace(demo.run, samples_per_class=10, device="cpu"),
        candidates=(
            Candidate("noise-2", "shift", shift="gaussian_noise:2"),
            Candidate("noise-4", "shift", shift="gaussian_noise:4"),
            Candidate("parity", "task", data="builtin:digits-parity"),
        ),
    )
    rank_plan(plan, store=None, runs=RunStore(tmp_path / "cache"))
    out = tmp_path / "report.html"
    argv = ["report", "--run", "latest", "--out", str(out), "--cache-dir", str(tmp_path / "cache")]
    assert main(argv) == 0
    return out


def test_html_report_draws_its_charts_offline(exported):
    from playwright.sync_api import sync_playwright

    fetched: list[str] = []
    problems: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"],
        )
        try:
            context = browser.new_context(viewport={"width": 1200, "height": 900})
            context.set_offline(True)

            def block(route):
                if not route.request.url.startswith("file://"):
                    fetched.append(route.request.url)
                    return route.abort()
                return route.continue_()

            context.route("**/*", block)
            page = context.new_page()
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on(
                "console",
                lambda m: problems.append(f"console: {m.text}") if m.type == "error" else None,
            )
            page.goto(exported.as_uri())
            figures = page.locator("figure")
            n = figures.count()
            assert n == 4  # ranking bars, severity lines, per-class dist and task
            for i in range(n):
                figures.nth(i).locator(".js-plotly-plot .main-svg").first.wait_for(timeout=30_000)
                # drawn, not just created: bars / lines, or the heatmap image
                assert figures.nth(i).locator(".trace, .hm image").count() > 0
            body = page.inner_text("body")
            assert body.startswith("RESQUE ranking: browser report\n\nDecision. Cheapest to reuse:")
            assert "Sangarya & Kim" in body
        finally:
            browser.close()
    assert fetched == [] and problems == []
