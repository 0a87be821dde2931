"""Validation: candidate spread, correlations, recalibration from stored runs, end to end with
the replay meter, and the validate / rank command lines (budget exit code)."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

from resque_core.cli import main
from resque_core.cost.predict import CostSettings, calibration_key, load_calibrations
from resque_core.errors import ConfigError
from resque_core.measure.carbon import carbon_intensity
from resque_core.measure.energy import ReplayMeter
from resque_core.plans import plan_from_dict
from resque_core.retrain import RetrainConfig
from resque_core.store.runs import RunStore
from resque_core.validation import (
    MEASURES,
    correlations,
    recalibrate,
    suggest_candidates,
    validate_plan,
)


def test_suggestion_spreads_over_each_kinds_range():
    scores = [(f"s{i}", "dist", v) for i, v in enumerate([0.30, 0.01, 0.12, 0.2, 0.05])]
    scores += [("t0", "task", 0.9), ("t1", "task", 0.4), ("t2", "task", 0.6)]
    # 3 picks over 5 shifts and 3 tasks: 2 shifts (lowest, highest) and 1 task (the median)
    assert suggest_candidates(scores, 3) == ["s1", "s0", "t2"]
    # 5 picks: 3 shifts nearest 0.01 / 0.155 / 0.30 (0.12 is nearer than 0.2), 2 tasks at the ends
    assert suggest_candidates(scores, 5) == ["s1", "s2", "s0", "t1", "t0"]
    assert len(suggest_candidates(scores, 50)) == 8
    assert suggest_candidates([], 3) == []
    with pytest.raises(
        ConfigError, match="^the number of candidates to retrain must be at least 1, got 0$"
    ):
        suggest_candidates(scores, 0)


# ----------------------------------------------------------------------------- statistics
def _run(kind, resque, epochs, status="completed", censored=False):
    return {
        "kind": kind,
        "resque": resque,
        "status": status,
        "censored": censored,
        "epochs": epochs,
        "grad_norm": 1 + resque,
        "param_change": 2 * resque,
        "energy_kwh": epochs * 0.01,
        "co2_kg": epochs * 0.005,
    }


def test_correlations_per_kind_and_measure():
    runs = [_run("dist", x, e) for x, e in [(0.1, 2), (0.2, 3), (0.3, 7), (0.4, 8)]]
    runs += [_run("task", 0.5, 3), _run("task", 0.7, 4), _run("dist", 0.9, 1, status="failed")]
    table = correlations(runs)
    assert set(table) == {"dist", "task"} and set(table["dist"]) == set(MEASURES)
    epochs = table["dist"]["epochs"]
    assert epochs["n"] == 4 and epochs["spearman"] == pytest.approx(1.0)
    assert epochs["kendall"] == pytest.approx(1.0) and 0.9 < epochs["pearson"] < 1.0
    assert table["dist"]["param_change"]["pearson"] == pytest.approx(1.0)
    assert table["task"]["epochs"] == {
        "n": 2,
        "pearson": None,
        "pearson_p": None,
        "spearman": None,
        "spearman_p": None,
        "kendall": None,
        "kendall_p": None,
        "note": "needs 3+ runs with varying values",
    }


def test_recalibrate_pools_stored_runs_and_skips_censored_ones(tmp_path):
    runs = RunStore(tmp_path)
    key = calibration_key("sha", {"p": 1})
    doc = {"type": "validation", "calibration_key": key}
    runs.save({**doc, "runs": [_run("dist", 0.1, 3), _run("dist", 0.2, 5)]})
    runs.save({**doc, "runs": [_run("dist", 0.3, 7), _run("dist", 0.4, 40, censored=True)]})
    runs.save({"type": "validation", "calibration_key": "other", "runs": [_run("dist", 0.9, 99)]})
    runs.save({"type": "ranking", "candidates": []})
    fitted = recalibrate(runs, key, cache_dir=tmp_path)
    assert fitted["dist"].basis == "calibrated" and fitted["dist"].n == 3
    assert fitted["dist"].slope == pytest.approx(20.0) and fitted[
        "dist"
    ].intercept == pytest.approx(1.0)
    assert fitted["task"].basis == "prior"
    assert load_calibrations(tmp_path, key)["dist"] == fitted["dist"]


# ----------------------------------------------------------------------------- end to end
DEMO_CHECKPOINT = str(
    Path(__file__).resolve().parent.parent / "resque_core" / "demo" / "digits_small_cnn.pt"
)


@pytest.fixture
def tiny_plan():
    return plan_from_dict(
        {
            "version": 1,
            "name": "tiny",
            "model": {
                "checkpoint": DEMO_CHECKPOINT,
                "arch": "small_cnn",
                "num_classes": 10,
                "in_channels": 1,
            },
            "source": "builtin:digits",
            "run": {"samples_per_class": 20, "device": "cpu"},
            "candidates": [
                {"id": "noise-1", "kind": "shift", "shift": "gaussian_noise:1"},
                {"id": "noise-5", "kind": "shift", "shift": "gaussian_noise:5"},
                {"id": "blur-3", "kind": "shift", "shift": "gaussian_blur:3"},
                {"id": "parity", "kind": "task", "data": "builtin:digits-parity"},
            ],
        }
    )


def test_validate_plan_end_to_end(tiny_plan, tmp_path):
    runs = RunStore(tmp_path)
    epochs_seen = []
    config = RetrainConfig(device="cpu", max_epochs=2, max_samples_per_class=15, augment="none")
    v = validate_plan(
        tiny_plan,
        limit=2,
        config=config,
        settings=CostSettings(carbon_intensity(override_g_per_kwh=300.0)),
        meter=ReplayMeter(joules=[36.0], seconds=0.1),
        runs=runs,
        cache_dir=tmp_path,
        probe_seconds=0.05,
        on_epoch=lambda cid, rec: epochs_seen.append((cid, rec.epoch)),
    )
    # one pick per kind: the median shift, then the task
    assert [r.candidate.estimator for r in v.runs] == ["dist", "task"]
    assert v.runs[1].candidate.id == "parity"
    doc = runs.load(v.run_id)
    assert doc["type"] == "validation" and doc["calibration_key"] == v.calibration_key
    for r in doc["runs"]:
        assert r["status"] == "completed" and isinstance(r["epochs"], int) and r["epochs"] <= 2
        assert r["predicted"]["basis"] == "prior"
        assert r["energy_kwh"] == pytest.approx(r["epochs"] * 1e-5)
        assert r["co2_kg"] == pytest.approx(r["energy_kwh"] * 0.3)
        assert r["energy_method"].startswith("replay")
        lo, hi = r["predicted"]["epochs_interval"]
        assert lo <= r["predicted"]["epochs"] <= hi
    task = next(r for r in doc["runs"] if r["kind"] == "task")
    assert task["retrain"]["new_head"] and task["retrain"]["num_classes"] == 2
    # the recorded signals carry the spread of the candidate's own per-class RESQUE values
    for run in v.runs:
        spread = float(np.std(list(run.per_class.values())))
        assert len(run.per_class) >= 2 and run.signals.spread == pytest.approx(spread)
    assert len(epochs_seen) == sum(r["epochs"] for r in doc["runs"])


def test_validate_rejects_unknown_ids(tiny_plan, tmp_path):
    with pytest.raises(ConfigError, match=re.escape("no candidate 'nope' in the plan")):
        validate_plan(tiny_plan, candidates=["nope"], settings=None, cache_dir=tmp_path)


def _write_plan(plan, tmp_path):
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan.to_dict()), encoding="utf-8")
    return str(path)


def test_validate_cli_json(tiny_plan, tmp_path, capsys):
    code = main(
        [
            "validate",
            "--plan",
            _write_plan(tiny_plan, tmp_path),
            "--candidates",
            "noise-5",
            "--max-epochs",
            "1",
            "--cache-dir",
            str(tmp_path / "c"),
            "--meter",
            "replay",
            "--augment",
            "none",
            "--json",
        ]
    )
    out = capsys.readouterr()
    assert code == 0
    doc = json.loads(out.out)
    (run,) = doc["runs"]
    assert run["candidate_id"] == "noise-5" and run["epochs"] in (0, 1)
    for field in ("resque", "energy_kwh", "co2_kg", "energy_method", "grad_norm", "param_change"):
        assert field in run
    assert set(run["predicted"]) >= {
        "epochs",
        "epochs_interval",
        "energy_kwh",
        "energy_kwh_interval",
        "co2_kg",
        "co2_kg_interval",
        "basis",
    }
    assert "correlation" in doc and doc["run_id"]
    assert "[1/1] noise-5:" in out.err


def test_validate_cli_bad_candidates(tiny_plan, tmp_path, capsys):
    plan = _write_plan(tiny_plan, tmp_path)
    assert main(["validate", "--plan", plan, "--candidates", " , "]) == 2
    assert capsys.readouterr().err == (
        "error: --candidates is empty: give ids separated by commas\n"
    )


def test_rank_budget_exit_code(tiny_plan, tmp_path, capsys):
    plan = _write_plan(tiny_plan, tmp_path)
    common = ["rank", "--plan", plan, "--cache-dir", str(tmp_path / "c"), "--meter", "replay"]
    common += ["--probe-seconds", "0.05"]
    assert main([*common, "--max-kwh", "1000", "--json"]) == 0
    within = json.loads(capsys.readouterr().out)
    assert within["over_budget"] == []
    assert all("predicted" in c for c in within["candidates"])

    # a zero budget: every candidate predicted to need energy is over it; a shift the model
    # already handles (a known 0 epochs) is not
    needs = [c["id"] for c in within["candidates"] if c["predicted"]["energy_kwh"] > 0]
    assert 0 < len(needs) <= 4
    assert main([*common, "--max-kwh", "0", "--order-by", "kwh"]) == 3
    out = capsys.readouterr()
    assert out.out.count("OVER BUDGET") == len(needs)
    over = [line for line in out.err.splitlines() if line.startswith("over budget: ")]
    assert sorted(line.split(":")[1].strip() for line in over) == sorted(needs)
    assert all(line.endswith(" kWh > 0 kWh") for line in over)


def test_rank_cost_ordering_needs_known_name(tiny_plan, tmp_path, capsys):
    plan = _write_plan(tiny_plan, tmp_path)
    assert main(["rank", "--plan", plan, "--order-by", "joules"]) == 2
    assert capsys.readouterr().err == (
        "error: unknown ordering 'joules'; allowed: resque, epochs, kwh, co2, logme, leep, nce, "
        "h_score, shrinkage_h_score, transrate, gbc\n"
    )
