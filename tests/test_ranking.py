"""Ranking: orderings and ranks per kind, failures kept, cancellation, the cost model's answers
attached as new results (cost never edits ranking's objects), and no cost <-> ranking cycle."""

import ast
import re
from pathlib import Path

import pytest

from resque_core.cost.predict import CandidateCost, CostOptions, CostSettings, predict_candidates
from resque_core.errors import ConfigError
from resque_core.measure.carbon import carbon_intensity
from resque_core.plans import plan_from_dict
from resque_core.ranking import CandidateResult, rank_plan
from resque_core.retrain import RetrainConfig
from resque_core.scoring.scorer import Scorer
from resque_core.store.cache import ResultStore

ROOT = Path(__file__).resolve().parent.parent
DEMO_CHECKPOINT = str(ROOT / "resque_core" / "demo" / "digits_small_cnn.pt")


@pytest.fixture
def plan():
    """Three shifts, one task and one candidate whose data is missing; 5 images per class."""
    return plan_from_dict(
        {
            "version": 1,
            "name": "small",
            "model": {
                "checkpoint": DEMO_CHECKPOINT,
                "arch": "small_cnn",
                "num_classes": 10,
                "in_channels": 1,
            },
            "source": "builtin:digits",
            "run": {"samples_per_class": 5, "device": "cpu"},
            "candidates": [
                {"id": "noise-5", "kind": "shift", "shift": "gaussian_noise:5"},
                {"id": "missing", "kind": "task", "data": "no_such_folder/"},
                {"id": "blur-5", "kind": "shift", "shift": "gaussian_blur:5"},
                {"id": "parity", "kind": "task", "data": "builtin:digits-parity"},
                {"id": "noise-1", "kind": "shift", "shift": "gaussian_noise:1"},
            ],
        }
    )


def _options(**kw) -> CostOptions:
    return CostOptions(
        settings=CostSettings(carbon_intensity(override_g_per_kwh=400.0), draws=200),
        procedure=RetrainConfig(device="cpu", max_samples_per_class=5),
        meter="replay",
        probe_seconds=0.01,
        **kw,
    )


def test_ranks_within_each_kind_and_failures_last(plan, tmp_path):
    ranking = rank_plan(plan, store=ResultStore(tmp_path))
    assert [r.candidate.id for r in ranking.results] == [c.id for c in plan.candidates]
    missing = next(r for r in ranking.results if r.candidate.id == "missing")
    assert not missing.ok and missing.rank is None and "no_such_folder" in missing.error
    ordered = ranking.ordered
    assert ordered[-1] is missing
    shifts = [r for r in ordered if r.ok and r.candidate.estimator == "dist"]
    assert [r.rank for r in shifts] == [1, 2, 3]
    assert [r.score.value for r in shifts] == sorted(r.score.value for r in shifts)
    assert [(r.candidate.id, r.rank) for r in ordered if r.candidate.estimator == "task"] == [
        ("parity", 1),
        ("missing", None),
    ]
    doc = ranking.to_dict()
    assert [c["id"] for c in doc["candidates"]] == [r.candidate.id for r in ordered]
    assert doc["candidates"][-1]["status"] == "failed" and doc["cost"] is None


def test_uncalibrated_kinds_show_resque_only_and_calibrated_ones_rank_together(plan, tmp_path):
    from resque_core.cost import (
        Signals,
        calibration_key,
        fit_calibration,
        fit_model,
        save_calibrations,
    )

    options = _options(max_kwh=0.0, cache_dir=str(tmp_path))
    store = ResultStore(tmp_path / "cache")
    ranking = rank_plan(plan, store=store, ordered_by="kwh", cost=options)
    scored = [r for r in ranking.ordered if r.ok]
    # no calibration on this model: no prior number is shown as a prediction
    assert all(r.prediction is None and r.uncalibrated and not r.over_budget for r in scored)
    assert ranking.cost["uncalibrated"] == ["dist", "task"]
    assert ranking.cost["calibration"] == {"dist": "uncalibrated", "task": "uncalibrated"}
    assert ranking.cost["calibration_offer"]["candidates"]
    docs = [c for c in ranking.to_dict()["candidates"] if c["status"] == "ok"]
    assert all(c["uncalibrated"] and "predicted" not in c for c in docs)
    # uncalibrated candidates keep the RESQUE order within each kind
    shifts = [r.score.value for r in scored if r.candidate.estimator == "dist"]
    assert shifts == sorted(shifts)

    # with a calibration of each kind: predictions, one rank sequence by kWh, budgets checked
    def run(cid, resque, epochs, start):
        sig = Signals(resque, "gaussian_noise", 0.0, start, 0.9, True)
        return {
            "candidate_id": cid,
            "resque": resque,
            "epochs": epochs,
            "energy_kwh": None,
            "probe": None,
            "signals": sig.to_dict(),
        }

    dist = fit_model("dist", [run("a", 0.1, 2, 0.5), run("b", 0.2, 4, 0.4), run("c", 0.3, 6, 0.2)])
    task = fit_calibration([0.1, 0.3, 0.5], [1, 2, 4], kind="task")
    sha = Scorer(plan.resolved_model(), plan.run).checkpoint_sha256()
    save_calibrations(
        tmp_path, calibration_key(sha, options.procedure.procedure()), {"dist": dist, "task": task}
    )
    ranking = rank_plan(plan, store=store, ordered_by="kwh", cost=options)
    scored = [r for r in ranking.ordered if r.ok]
    assert [r.rank for r in scored] == [1, 2, 3, 4]
    kwh = [r.prediction.energy_kwh for r in scored]
    assert kwh == sorted(kwh) and not any(r.uncalibrated for r in scored)
    assert all(
        r.over_budget == [f"{r.prediction.energy_kwh:.3g} kWh > 0 kWh"]
        for r in scored
        if r.prediction.energy_kwh > 0
    )
    assert ranking.cost["calibration_basis"] == {"dist": "calibrated", "task": "calibrated"}
    assert "linear fit on 3 retrains" in ranking.cost["calibration"]["task"]
    assert "fit on 3 retrains, LOO MAE" in ranking.cost["calibration"]["dist"]
    assert ranking.cost["uncalibrated"] == [] and ranking.cost["max_kwh"] == 0.0


def test_the_cost_model_answers_without_touching_the_results(plan, tmp_path):
    scorer = Scorer(plan.resolved_model(), plan.run, source_data=plan.resolve(plan.source))
    by_id = {c.id: c for c in plan.candidates}
    scored = [(by_id["noise-1"], 0.02), (by_id["missing"], 0.4)]
    costs, calibrations = predict_candidates(
        plan, scored, scorer=scorer, options=_options(max_co2_kg=1e9), store=ResultStore(tmp_path)
    )
    assert set(costs) == {"noise-1", "missing"} and set(calibrations) == {"dist", "task"}
    ok = costs["noise-1"]
    assert isinstance(ok, CandidateCost) and ok.error is None and ok.over_budget == ()
    assert ok.prediction.resque == 0.02 and ok.prediction.basis == "prior"
    failed = costs["missing"]
    assert failed.prediction is None and "no_such_folder" in failed.error


def test_cancelling_while_probing_keeps_scores_and_attaches_no_prediction(plan, tmp_path):
    scored_all = []

    def seen(i, n, result):
        scored_all.append(i == n - 1)

    ranking = rank_plan(
        plan,
        store=ResultStore(tmp_path),
        cost=_options(),
        on_candidate=seen,
        cancel=lambda: bool(scored_all) and scored_all[-1],
    )
    assert ranking.cancelled and ranking.cost is None
    assert len(ranking.results) == len(plan.candidates)
    assert all(r.prediction is None and r.prediction_error is None for r in ranking.results)
    assert sum(r.ok for r in ranking.results) == 4


def test_cancelling_while_scoring_keeps_the_finished_candidates(plan, tmp_path):
    done = []
    ranking = rank_plan(
        plan,
        store=ResultStore(tmp_path),
        on_candidate=lambda i, n, r: done.append(r),
        cancel=lambda: len(done) >= 1,
    )
    # "missing" fails on its data before its first batch, where cancelling is checked
    assert ranking.cancelled
    assert [r.candidate.id for r in ranking.results] == ["noise-5", "missing"]
    assert ranking.results[0].rank == 1


def test_ordering_messages(plan):
    with pytest.raises(
        ConfigError,
        match=re.escape("unknown ordering 'joules'; allowed: resque, epochs, kwh, co2"),
    ):
        rank_plan(plan, store=None, ordered_by="joules")
    with pytest.raises(
        ConfigError, match=re.escape("ordering by 'co2' needs cost options (a cost model)")
    ):
        rank_plan(plan, store=None, ordered_by="co2")


def test_a_result_without_a_score_is_not_ok():
    from resque_core.plans import Candidate

    r = CandidateResult(Candidate("a", "shift", shift="contrast:2"), error="boom")
    assert not r.ok and r.to_dict()["status"] == "failed" and r.to_dict()["shift"] == "contrast"


def _imports(name: str) -> set[str]:
    """The engine rooms and root modules that a root module or a room (every file in it) imports,
    at any level (TYPE_CHECKING and function-level imports included)."""
    package = ROOT / "resque_core"
    files = (
        sorted((package / name).glob("*.py"))
        if (package / name).is_dir()
        else [package / f"{name}.py"]
    )
    names = set()
    for path in files:
        depth = len(path.relative_to(package).parts)  # 1 for a root module, 2 inside a room
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == depth:
                # From the package root: the first dotted part names the room or module.
                if node.module:
                    names.add(node.module.split(".")[0])
                else:
                    names.update(a.name for a in node.names)
    return names


def test_cost_does_not_import_ranking():
    assert "ranking" not in _imports("cost")
    assert "cost" in _imports("ranking")


def test_a_ranking_job_gives_the_ranking_and_keeps_its_progress(plan, tmp_path):
    from resque_core import Job, RankingJob, ValidationJob
    from resque_core.calibrating import CalibrationJob

    assert issubclass(RankingJob, Job) and issubclass(CalibrationJob, ValidationJob)
    assert issubclass(ValidationJob, Job)
    job = RankingJob(plan, store=ResultStore(tmp_path))
    assert not job.running and job.result is None
    assert job.start().wait(120)
    assert not job.running and job.error is None
    direct = rank_plan(plan, store=ResultStore(tmp_path)).to_dict()
    assert [c["id"] for c in job.result["candidates"]] == [c["id"] for c in direct["candidates"]]
    assert sorted(r["id"] for r in job.results) == sorted(c.id for c in plan.candidates)
    assert job.elapsed == job.elapsed  # frozen once ended


def test_a_job_reports_a_failure_as_its_error_and_cancel_keeps_what_finished(plan, tmp_path):
    from resque_core import RankingJob

    failing = RankingJob(plan, store=None, ordered_by="joules").start()
    assert failing.wait(60)
    assert failing.result is None
    assert failing.error.startswith("unknown ordering 'joules'")

    job = RankingJob(plan, store=ResultStore(tmp_path))
    job.cancel()  # before it starts: stops at the first check, keeps nothing unfinished
    assert job.start().wait(60) and job.cancelling
    assert job.result["cancelled"] is True
    assert len(job.result["candidates"]) < len(plan.candidates)
