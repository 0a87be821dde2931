"""Ranking page: rank order, failed candidates with reasons, charts, cancel and resume, sweep."""

import json
import threading

import pytest
from apptools import finish_jobs, no_problems, open_app, table, tiny_plan

import resque_core.ranking


def _ranking_page(plan):
    at = open_app(plan).run()
    # The Start page starts the same job; let it end so that each test sees one clean state.
    finish_jobs(at)
    return at.switch_page("pages/ranking.py").run()


def test_table_and_charts_of_a_ranking(digits_checkpoint, digits_npz):
    at = _ranking_page(tiny_plan(digits_checkpoint, digits_npz))
    no_problems(at)
    rows = table(at, "RESQUE")
    assert list(rows["id"]) == ["noise-1", "noise-5", "parity"]
    assert list(rows["rank"]) == [1, 2, 1]
    dist = rows[rows["kind"] == "distribution shift"]["RESQUE"]
    assert dist.is_monotonic_increasing
    assert set(rows["status"]) == {"ok"}
    keys = [c.key for c in at.get("plotly_chart")]
    assert keys == ["rank_chart_bars", "rank_chart_severity", "rank_chart_classes"]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Ranked"] == "3 / 3" and metrics["Failed"] == "0"

    at.radio(key="rank_heatmap_kind").set_value("task").run()
    heat = json.loads(at.get("plotly_chart")[2].proto.spec)["data"][0]
    assert heat["x"] == ["even", "odd"]


def test_a_failed_candidate_is_listed_with_its_reason(digits_checkpoint, digits_npz, tmp_path):
    missing = str(tmp_path / "nowhere.npz")
    plan = tiny_plan(
        digits_checkpoint,
        digits_npz,
        candidates=[
            {"id": "noise-1", "kind": "shift", "shift": "gaussian_noise:1"},
            {"id": "lost", "kind": "task", "data": missing, "label": "Lost task"},
        ],
    )
    at = _ranking_page(plan)
    assert not at.exception
    rows = table(at, "RESQUE")
    assert list(rows["id"]) == ["noise-1", "lost"]
    assert rows["status"][1].startswith("failed: ")
    assert "nowhere.npz" in rows["status"][1]
    assert at.warning[0].value.startswith("Not scored: **Lost task** — ")
    assert {m.label: m.value for m in at.metric}["Failed"] == "1"


def test_cancel_keeps_finished_candidates_and_compute_the_rest_resumes(
    digits_checkpoint, digits_npz, monkeypatch
):
    # Hold the second candidate at a gate, so that Cancel is pressed while the job runs.
    gate = threading.Event()
    original = resque_core.ranking._score_one

    def gated(scorer, plan, candidate):
        if candidate.id == "noise-5":
            gate.wait(30)
        return original(scorer, plan, candidate)

    monkeypatch.setattr(resque_core.ranking, "_score_one", gated)
    at = open_app(tiny_plan(digits_checkpoint, digits_npz)).run()
    at.switch_page("pages/ranking.py").run()
    (job,) = at.session_state["rank_jobs"].values()
    assert job.running
    assert at.get("progress")
    at.button(key="rank_cancel").click().run()
    assert job.cancelling
    gate.set()
    finish_jobs(at)
    assert not at.exception
    assert at.warning[0].value.startswith("Cancelled after 1 of 3 candidates")
    assert list(table(at, "RESQUE")["id"]) == ["noise-1"]

    at.button(key="rank_resume").click().run()
    finish_jobs(at)
    no_problems(at)
    rows = table(at, "RESQUE")
    assert list(rows["id"]) == ["noise-1", "noise-5", "parity"]
    # The candidate finished before the cancel came from the cache.
    assert rows.set_index("id").loc["noise-1", "cached"]


def test_layer_sweep_of_one_candidate(digits_checkpoint, digits_npz):
    at = _ranking_page(tiny_plan(digits_checkpoint, digits_npz))
    at.selectbox(key="rank_sweep_candidate").set_value("noise-5")
    at.multiselect(key="rank_sweep_layers").set_value(
        ["features.conv3", "features.conv1", "fc"]
    ).run()
    at.button(key="rank_sweep_run").click().run()
    no_problems(at)
    sweep = next(c for c in at.get("plotly_chart") if c.key == "rank_chart_sweep")
    line = json.loads(sweep.proto.spec)["data"][0]
    assert line["x"] == ["features.conv1", "features.conv3", "fc"]  # the model's order
    assert all(0 <= v <= 1 for v in line["y"])
    conv3 = table(at, "RESQUE").set_index("id").loc["noise-5", "RESQUE"]
    assert line["y"][1] == pytest.approx(conv3)  # the ranking's own (default) layer


def _store_calibration(checkpoint: str) -> None:
    """A calibration of each kind for ``checkpoint`` and the page's default procedure, as
    ``validate``/``calibrate`` would store it (predictions appear only for calibrated kinds)."""
    import os

    from resque_core._util import sha256_file
    from resque_core.cost import calibration_key, fit_calibration, save_calibrations
    from resque_core.retrain import RetrainConfig

    cals = {
        "dist": fit_calibration([0.05, 0.2, 0.4], [1, 3, 6], kind="dist"),
        "task": fit_calibration([0.1, 0.3, 0.5], [1, 2, 4], kind="task"),
    }
    key = calibration_key(sha256_file(checkpoint), RetrainConfig(seed=0).procedure())
    save_calibrations(os.environ["RESQUE_CACHE_DIR"], key, cals)


def test_cost_prediction_orders_by_kwh_and_flags_budgets(digits_checkpoint, digits_npz):
    _store_calibration(digits_checkpoint)
    at = _ranking_page(tiny_plan(digits_checkpoint, digits_npz))
    at.toggle(key="rank_cost_on").set_value(True).run()
    at.selectbox(key="rank_meter").set_value("replay")
    at.selectbox(key="rank_order_by").set_value("kwh")
    # A budget every candidate exceeds: 1e-12 kWh.
    at.number_input(key="rank_max_kwh").set_value(1e-12).run()
    finish_jobs(at)
    no_problems(at)
    rows = table(at, "RESQUE")
    assert set(rows["id"]) == {"noise-1", "noise-5", "parity"}
    # One rank sequence over both kinds, in increasing predicted energy.
    assert list(rows["rank"]) == [1, 2, 3]
    assert rows["Wh"].is_monotonic_increasing and (rows["Wh"] > 0).all()
    assert (rows["g CO2e"] > 0).all()
    assert all(r.startswith("replay") for r in rows["energy from"])
    assert all(r.endswith(" kWh > 1e-12 kWh") for r in rows["over budget"])
    assert at.warning[0].value.startswith("Predicted over budget: ")
    assert "Ordered by predicted retraining energy" in " ".join(c.value for c in at.caption)
