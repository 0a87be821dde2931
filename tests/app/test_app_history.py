"""History page: stored runs listed, reopened read-only, opened by their ?run= link."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from apptools import TIMEOUT, no_problems, open_app, table, tiny_plan
from streamlit.testing.v1 import AppTest

from resque_core.cost.predict import CostSettings
from resque_core.measure.carbon import carbon_intensity
from resque_core.plans import plan_from_dict
from resque_core.ranking import rank_plan
from resque_core.retrain import RetrainConfig
from resque_core.store.cache import ResultStore
from resque_core.store.documents import check_run
from resque_core.store.runs import RunStore
from resque_core.store.workspaces import WorkspaceStore
from resque_core.validation import validate_plan

CANDIDATES = [
    {"id": "noise-1", "kind": "shift", "shift": "gaussian_noise:1"},
    {"id": "noise-5", "kind": "shift", "shift": "gaussian_noise:5"},
    {"id": "parity", "kind": "task", "data": "builtin:digits-parity"},
]


@pytest.fixture
def stored(digits_checkpoint):
    """A ranking and a validation (one epoch, replay meter) in this test's run store."""
    cache = os.environ["RESQUE_CACHE_DIR"]
    plan = plan_from_dict(tiny_plan(digits_checkpoint, "builtin:digits", candidates=CANDIDATES))
    store, runs = ResultStore(cache), RunStore(cache)
    ranking = rank_plan(plan, store=store, runs=runs)
    validation = validate_plan(
        plan,
        candidates=["noise-5"],
        config=RetrainConfig(max_epochs=1, augment="none", seed=0),
        settings=CostSettings(carbon_intensity()),
        meter="replay",
        store=store,
        runs=runs,
        cache_dir=cache,
        probe_seconds=0.05,
    )
    return ranking, validation


def _history(run: str | None = None) -> AppTest:
    at = open_app(tiny_plan("", "", candidates=[]))
    if run is not None:
        at.query_params["run"] = run
    else:
        at.switch_page("pages/history.py")
    return at.run(timeout=TIMEOUT)


def test_the_run_link_opens_the_stored_ranking(stored):
    ranking, validation = stored
    at = _history(ranking.run_id)
    no_problems(at)
    assert at.title[0].value == "History"
    assert at.selectbox(key="hist_run").value == ranking.run_id
    listed = table(at, "outcome")
    assert list(listed["run"]) == [validation.run_id, ranking.run_id]  # newest first
    assert list(listed["type"]) == ["validation", "ranking"]
    rows = table(at, "RESQUE")
    expected = ranking.to_dict()["candidates"]
    assert list(rows["id"]) == [c["id"] for c in expected]
    assert list(rows["RESQUE"]) == pytest.approx([c["resque"] for c in expected])
    # read-only: nothing on the page computes or edits
    assert not [b for b in at.button if b.key and b.key.startswith(("rank_", "cand_"))]


def test_choosing_a_validation_run_shows_it_and_updates_the_link(stored):
    ranking, validation = stored
    at = _history(ranking.run_id)
    at.selectbox(key="hist_run").set_value(validation.run_id).run()
    no_problems(at)
    assert at.query_params["run"] == validation.run_id
    rows = table(at, "predicted epochs")
    assert list(rows["id"]) == ["noise-5"]
    run = validation.to_dict()["runs"][0]
    assert rows["epochs"][0] == run["epochs"] and rows["stop"][0] == run["stop_reason"]
    assert rows["predicted epochs"][0].startswith(f"{run['predicted']['epochs']:.1f} [")


def test_a_bad_link_names_the_problem_and_keeps_the_list(stored):
    ranking, _ = stored
    at = _history("20990101-000000-abcdef")
    assert not at.exception
    assert at.error[0].value.startswith("Could not open the linked run: no stored run")
    assert ranking.run_id in list(table(at, "outcome")["run"])
    at = _history("../../etc/passwd")
    assert not at.exception
    assert "invalid run id" in at.error[0].value


def test_no_runs_yet():
    at = _history()
    no_problems(at)
    assert at.info[0].value.startswith("No stored runs yet")


def test_every_export_format_is_offered_and_builds(stored):
    ranking, _ = stored
    at = _history(ranking.run_id)
    keys = {b.key for b in at.get("download_button")}
    assert keys == {f"hist_download_{fmt}" for fmt in ("html", "pdf", "md", "json", "csv")}
    # What the buttons send when clicked (built on demand from the stored run).
    from resque_core.report.export import render

    doc = ranking.to_dict()
    assert render(doc, "pdf").startswith(b"%PDF-")
    assert b"<html" in render(doc, "html")[:2000].lower()
    csv_head = render(doc, "csv").decode().splitlines()[0]
    assert "resque" in csv_head and "id" in csv_head


def test_importing_a_json_export_stores_and_opens_it(stored, tmp_path):
    ranking, validation = stored
    from resque_core.report.export import render

    exported = render(ranking.to_dict(), "json")
    (RunStore(os.environ["RESQUE_CACHE_DIR"]).directory / f"{ranking.run_id}.json").unlink()
    at = _history(validation.run_id)
    at.file_uploader(key="hist_import").upload("run.json", exported).run()
    at.button(key="hist_import_go").click().run()
    no_problems(at)
    assert at.query_params["run"] == ranking.run_id
    assert at.selectbox(key="hist_run").value == ranking.run_id
    assert list(table(at, "RESQUE")["id"]) == [c["id"] for c in ranking.to_dict()["candidates"]]
    # a file that is not a run: a clear error, the page stays
    at.file_uploader(key="hist_import").upload("bad.json", b'{"hello": 1}').run()
    at.button(key="hist_import_go").click().run()
    assert not at.exception
    assert at.error[0].value.startswith("Could not import the run: ")


NULL_CANDIDATE = (
    "ranking run document field 'candidates[1]' must be an object (a candidate result), got null"
)


def test_the_engines_stored_documents_fit_the_schema(stored):
    store = RunStore(os.environ["RESQUE_CACHE_DIR"])
    for run in stored:
        doc = store.load(run.run_id)
        assert check_run(doc) == doc


def test_an_invalid_stored_run_is_listed_as_unreadable_and_the_rest_works(stored):
    ranking, validation = stored
    runs = RunStore(os.environ["RESQUE_CACHE_DIR"]).directory
    broken = ranking.to_dict()
    broken["candidates"][1] = None
    (runs / "20260101-000000-abcdef.json").write_text(json.dumps(broken), encoding="utf-8")
    (runs / "20260101-000001-abcdef.json").write_text('{"type": "ranking", "pl', encoding="utf-8")
    at = _history(ranking.run_id)  # a new session
    no_problems(at)
    listed = table(at, "outcome")
    rows = dict(
        zip(listed["run"], zip(listed["type"], listed["outcome"], strict=True), strict=True)
    )
    assert rows["20260101-000000-abcdef"] == (
        "unreadable",
        f"20260101-000000-abcdef.json: {NULL_CANDIDATE}",
    )
    kind, outcome = rows["20260101-000001-abcdef"]
    assert kind == "unreadable"
    assert outcome.startswith(
        "20260101-000001-abcdef.json: stored run '20260101-000001-abcdef' is unreadable "
        "(not complete JSON: "
    )
    assert rows[validation.run_id][0] == "validation"
    # only readable runs can be opened; the ranking shows as before
    options = {o.split(" · ")[0] for o in at.selectbox(key="hist_run").options}
    assert options == {ranking.run_id, validation.run_id}
    assert list(table(at, "RESQUE")["id"]) == [c["id"] for c in ranking.to_dict()["candidates"]]
    at = _history("20260101-000000-abcdef")
    assert not at.exception
    assert at.error[0].value.startswith("Could not open the linked run: ranking run document ")
    assert "unreadable" in list(table(at, "outcome")["type"])


def test_an_invalid_import_is_refused_and_history_stays_usable(stored):
    ranking, _ = stored
    store = RunStore(os.environ["RESQUE_CACHE_DIR"])
    before = store.list()
    broken = ranking.to_dict()
    broken["candidates"][1] = None
    broken["run_id"] = "20260101-000002-abcdef"
    at = _history(ranking.run_id)
    at.file_uploader(key="hist_import").upload("run.json", json.dumps(broken).encode()).run()
    at.button(key="hist_import_go").click().run()
    assert not at.exception
    # (the page may escape the message for Markdown: its words are compared up to the quote)
    assert at.error[0].value.startswith("Could not import the run: ranking run document field ")
    assert "candidates" in at.error[0].value and "got null" in at.error[0].value
    assert store.list() == before
    no_problems(_history(ranking.run_id))  # a new session


def test_document_text_is_shown_as_text_not_markdown():
    image = "![x](http://127.0.0.1:9/a.png)"
    fixture = Path(__file__).parents[1] / "fixtures" / "runs" / "ranking-kwh-cbc6ee8.json"
    doc = json.loads(fixture.read_text(encoding="utf-8"))
    doc["plan"]["name"] = image
    failed = next(c for c in doc["candidates"] if c["status"] != "ok")
    failed["label"] = image
    runs = RunStore(os.environ["RESQUE_CACHE_DIR"])
    run_id = runs.save(doc, doc["run_id"])
    at = _history(run_id)
    no_problems(at)
    escaped = "\\!\\[x\\](http\\://127.0.0.1\\:9/a.png)"
    assert at.subheader[0].value == escaped
    assert at.warning[0].value.startswith(f"Not scored: **{escaped}** — ")
    shown = [e.value for e in (*at.markdown, *at.caption, *at.warning, *at.subheader)]
    assert not [text for text in shown if image in text]


def _second_ranking(digits_checkpoint) -> str:
    """Another stored ranking (one shift only, another name): the second run to compare."""
    cache = os.environ["RESQUE_CACHE_DIR"]
    doc = tiny_plan(digits_checkpoint, "builtin:digits", candidates=CANDIDATES[:1])
    doc["name"] = "other comparison"
    plan = plan_from_dict(doc)
    return rank_plan(plan, store=ResultStore(cache), runs=RunStore(cache)).run_id


def test_search_and_status_filter_the_list(stored, digits_checkpoint):
    ranking, validation = stored
    other = _second_ranking(digits_checkpoint)
    at = _history()
    at.text_input(key="hist_search").set_value("other").run()
    no_problems(at)
    assert list(table(at, "outcome")["run"]) == [other]
    assert at.selectbox(key="hist_run").options == [f"{other} · ranking · other comparison"]
    at.text_input(key="hist_search").set_value(Path(digits_checkpoint).name).run()
    assert set(table(at, "outcome")["run"]) == {ranking.run_id, validation.run_id, other}
    at.text_input(key="hist_search").set_value("").run()
    at.multiselect(key="hist_status").set_value(["ok"]).run()
    no_problems(at)
    assert set(table(at, "outcome")["status"]) == {"ok"}
    at.multiselect(key="hist_status").set_value(["failed", "cancelled"]).run()
    no_problems(at)  # every stored run scored all its candidates: none is listed
    assert at.info[0].value == "No stored run matches the search and the status filter."
    assert at.selectbox(key="hist_run").options == []


def test_compare_two_runs_side_by_side(stored, digits_checkpoint):
    ranking, _ = stored
    other = _second_ranking(digits_checkpoint)
    at = _history()
    at.multiselect(key="hist_compare").set_value([ranking.run_id, other]).run()
    no_problems(at)
    rows = table(at, f"RESQUE · {other}").set_index("id")
    expected = {c["id"]: c["resque"] for c in ranking.to_dict()["candidates"]}
    assert rows[f"RESQUE · {ranking.run_id}"].to_dict() == pytest.approx(expected)
    # the same candidate, the same cached score, in both runs; the others only in the first
    assert rows.loc["noise-1", f"RESQUE · {other}"] == pytest.approx(expected["noise-1"])
    assert rows[f"RESQUE · {other}"].isna().sum() == 2


def test_delete_a_run_and_continue_from_another(stored):
    ranking, validation = stored
    at = _history(ranking.run_id)
    at.button(key="hist_delete").click().run()
    no_problems(at)
    assert RunStore(os.environ["RESQUE_CACHE_DIR"]).list() == [validation.run_id]
    assert at.success[0].value == f"Deleted run {ranking.run_id}."
    assert list(table(at, "outcome")["run"]) == [validation.run_id]
    at.selectbox(key="hist_run").set_value(validation.run_id).run()
    at.button(key="hist_continue").click().run()
    no_problems(at)
    assert at.title[0].value == "Candidates"
    plan = at.session_state["plan"]
    assert plan["candidates"] == validation.to_dict()["plan"]["candidates"]
    assert at.session_state["plan_trusted"] is False
    ws = at.session_state["workspace_id"]  # kept in this session's workspace, on the server
    stored = WorkspaceStore(os.environ["RESQUE_CACHE_DIR"]).load(ws)["plan"]
    assert stored["candidates"] == plan["candidates"]
