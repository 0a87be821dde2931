"""Workspaces and links in a real browser: a stored workspace opens from its ?ws= link, survives
a reload and in-app navigation; /history?run= and /?run= open History without a "Page not
found" dialog; user text with Markdown image syntax renders as text and nothing fetches it.

Uses the dashboard server of test_browser.py (Debian's chromium, playwright without
``playwright install``). No ranking is computed: the Start page is never opened.
"""

import json
from pathlib import Path

from test_browser import CHROMIUM, CHROMIUM_ARGS, pytestmark, server  # noqa: F401

from resque_core.plans import DEMO_PLAN, load_plan
from resque_core.store.runs import RunStore
from resque_core.store.workspaces import WorkspaceStore

IMAGE = "![x](http://127.0.0.1:9/a.png)"
FIXTURE_RUN = Path(__file__).resolve().parents[1] / "fixtures" / "runs" / "ranking-kwh-cbc6ee8.json"
WAIT = 180_000  # ms: the first page of a cold server imports torch on a loaded machine


def _stored(cache: Path) -> tuple[str, str]:
    """A workspace whose plan name and a candidate label are Markdown images, and a run."""
    demo = load_plan(DEMO_PLAN)
    doc = demo.to_dict()
    doc["name"] = IMAGE
    doc["candidates"] = [
        {"id": "noisy", "kind": "shift", "shift": "gaussian_noise:1", "label": IMAGE},
        *doc["candidates"][:2],
    ]
    workspaces = WorkspaceStore(cache)
    ws = workspaces.create()
    workspaces.save(ws, plan=doc, base=demo.base_dir, demo=False)
    run = json.loads(FIXTURE_RUN.read_text(encoding="utf-8"))
    run["plan"]["name"] = IMAGE
    run_id = RunStore(cache).save(run, run["run_id"])
    return ws, run_id


def _no_dialog(page) -> None:
    assert page.locator("[role=dialog]").count() == 0
    assert "Page not found" not in page.inner_text("body")


def test_workspace_links_and_history_links_in_the_browser(server, tmp_path):  # noqa: F811
    from playwright.sync_api import sync_playwright

    ws, run_id = _stored(tmp_path / "cache")
    fetched: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.on("request", lambda r: fetched.append(r.url) if ":9/" in r.url else None)

            # The copied link opens the workspace's plan; the sidebar shows its name as text.
            page.goto(f"{server}/candidates?ws={ws}")
            page.get_by_text("The comparison's candidates (3)").wait_for(timeout=WAIT)
            sidebar = page.locator("[data-testid=stSidebar]")
            sidebar.get_by_text(IMAGE).first.wait_for(timeout=30_000)
            _no_dialog(page)
            page.reload()
            page.get_by_text("The comparison's candidates (3)").wait_for(timeout=WAIT)
            assert f"ws={ws}" in page.url

            # In-app navigation stays in this tab and keeps the workspace in the URL.
            sidebar.get_by_role("link", name="History").click()
            page.get_by_role("heading", name="History").first.wait_for(timeout=WAIT)
            page.wait_for_function(f"() => location.search.includes('ws={ws}')", timeout=30_000)
            assert "/history" in page.url
            assert len(browser.contexts[0].pages) == 1

            # Links to a stored run: /history?run= and /?run= open it, no dialog.
            for link in (f"/history?run={run_id}", f"/?run={run_id}"):
                page.goto(f"{server}{link}")
                page.get_by_role("heading", name="History").first.wait_for(timeout=WAIT)
                page.get_by_text(f"shareable link: /history?run={run_id}").wait_for(timeout=60_000)
                _no_dialog(page)
                assert "/history" in page.url and f"run={run_id}" in page.url
            page.get_by_role("heading", name=IMAGE).wait_for(timeout=30_000)  # name, as text
            assert page.locator("img[src*='127.0.0.1:9']").count() == 0
            page.wait_for_timeout(1000)
        finally:
            browser.close()
    assert fetched == []
