"""Energy probes once per workload: sizes from labels match the retraining data, candidates with
one workload share one measured value, a probe never runs more batches than the cheapest
retraining it informs, short windows say so, and cancelling stops inside a probe."""

from pathlib import Path

import pytest
import torch
from torch import nn

from resque_core.cost.predict import CostOptions, CostSettings, predict_candidates
from resque_core.errors import Cancelled
from resque_core.measure.carbon import carbon_intensity
from resque_core.measure.energy import ReplayMeter
from resque_core.plans import plan_from_dict
from resque_core.ranking import rank_plan
from resque_core.retrain import (
    RetrainConfig,
    RetrainData,
    Workload,
    candidate_data,
    probe_batch_energy,
    workload_of,
)
from resque_core.scoring.scorer import Scorer
from resque_core.store.cache import ResultStore

ROOT = Path(__file__).resolve().parents[2]
DEMO_CHECKPOINT = str(ROOT / "resque_core" / "demo" / "digits_small_cnn.pt")


@pytest.fixture
def plan():
    return plan_from_dict(
        {
            "version": 1,
            "name": "probe",
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
                {"id": "blur-2", "kind": "shift", "shift": "gaussian_blur:2"},
                {"id": "noise-1", "kind": "shift", "shift": "gaussian_noise:1"},
                {"id": "parity", "kind": "task", "data": "builtin:digits-parity"},
            ],
        }
    )


def _config() -> RetrainConfig:
    return RetrainConfig(device="cpu", max_samples_per_class=12, batch_size=16)


class _CountingMeter(ReplayMeter):
    """A replay meter whose watts change with every window, so two probes never agree by
    chance, and which counts its windows."""

    def __init__(self):
        super().__init__(watts=10.0)
        self.windows = 0

    def _begin(self) -> None:
        self.windows += 1
        self.watts = 10.0 + self.windows
        super()._begin()


def test_workload_sizes_from_labels_match_the_retraining_data(plan):
    scorer = Scorer(plan.resolved_model(), plan.run, source_data=plan.resolve(plan.source))
    config = _config()
    for c in plan.candidates:
        expected = Workload.of_data(
            candidate_data(
                plan, c, workspace=scorer.workspace, seed=scorer.run.seed, config=config
            ),
            16,
        )
        assert workload_of(plan, c, scorer=scorer, config=config) == expected
    shift = workload_of(plan, plan.candidates[0], scorer=scorer, config=config)
    task = workload_of(plan, plan.candidates[3], scorer=scorer, config=config)
    assert shift.head is None and task.head == 2 and shift.input_shape == (1, 8, 8)


def test_tasks_of_any_head_width_share_one_probe_and_shifts_keep_their_own():
    shift = Workload((1, 8, 8), None, train_batches=5, eval_batches=1)
    narrow = Workload((1, 8, 8), 2, train_batches=5, eval_batches=1)
    wide = Workload((1, 8, 8), 10, train_batches=9, eval_batches=2)
    bigger = Workload((1, 16, 16), 2, train_batches=5, eval_batches=1)
    assert narrow.probe_key == wide.probe_key and narrow.parts() == wide.parts()
    assert shift.probe_key != narrow.probe_key and shift.parts() != narrow.parts()
    assert bigger.probe_key != narrow.probe_key
    assert wide.describe() == "1×8×8 inputs, a new head"


def test_same_workload_candidates_share_one_probe_and_order_by_epochs(plan, tmp_path, monkeypatch):
    meter = _CountingMeter()
    monkeypatch.setattr("resque_core.cost.predict.make_meter", lambda *a, **k: meter)
    scorer = Scorer(plan.resolved_model(), plan.run, source_data=plan.resolve(plan.source))
    by_id = {c.id: c for c in plan.candidates}
    scored = [(by_id["noise-5"], 0.3), (by_id["blur-2"], 0.1), (by_id["noise-1"], 0.02)]
    scored.append((by_id["parity"], 0.4))
    options = CostOptions(
        settings=CostSettings(carbon_intensity(override_g_per_kwh=400.0), draws=200),
        procedure=_config(),
        meter="replay",
        probe_seconds=0.01,
    )
    store = ResultStore(tmp_path)
    costs, _ = predict_candidates(plan, scored, scorer=scorer, options=options, store=store)
    shifts = [costs[i].prediction for i in ("noise-5", "blur-2", "noise-1")]
    assert len({p.kwh_per_epoch for p in shifts}) == 1
    assert len({p.probe["workload"] for p in shifts}) == 1
    task = costs["parity"].prediction
    assert task.probe["workload"] != shifts[0].probe["workload"]
    # two probes (shifts, the task's new head), each one evaluation + 3 training windows
    assert meter.windows == 8
    epochs = [p.epochs for p in shifts]
    kwh = [p.energy_kwh for p in shifts]
    assert sorted(range(3), key=epochs.__getitem__) == sorted(range(3), key=kwh.__getitem__)
    assert all(p.probe["probe_seconds"] > 0 and p.probe["probe_joules"] > 0 for p in shifts)
    # a second prediction reads both probes back from the store: no new window
    again, _ = predict_candidates(plan, scored, scorer=scorer, options=options, store=store)
    assert meter.windows == 8
    assert again["noise-1"].prediction.kwh_per_epoch == shifts[2].kwh_per_epoch
    assert "reused from the cache" in again["noise-1"].prediction.probe["note"]


def _tiny_data(n: int = 96) -> RetrainData:
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(n, 1, 8, 8, generator=g), torch.arange(n) % 3
    return RetrainData(x[:80], y[:80], x[80:], y[80:], 3, lambda t: t, False)


def _tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 3))


class _SlowSampler(ReplayMeter):
    poll_seconds = 5.0  # a meter that reads every 5 s


def test_a_probe_runs_no_more_batches_than_the_cheapest_retraining():
    config = RetrainConfig(device="cpu", batch_size=8, augment="none")  # 10 batches an epoch
    meter = _SlowSampler(watts=20.0)
    steps = []
    batch = probe_batch_energy(
        _tiny_model(),
        _tiny_data(),
        config=config,
        meter=meter,
        seconds=0.01,
        max_batches=10,
        progress=lambda done, planned: steps.append((done, planned)),
    )
    assert steps[-1][0] <= 10 and steps[-1][1] <= 10
    assert batch.batches_measured <= 10 and batch.repeats == 3
    assert "shorter than the meter's 5 s sampling period" in batch.note
    epoch = batch.for_epoch(10, 1)
    assert epoch.joules_per_epoch == pytest.approx(
        batch.joules_per_train_batch * 10 + batch.joules_per_eval_batch
    )
    assert epoch.probe_seconds == batch.probe_seconds


def test_cancel_stops_inside_a_probe_within_one_batch():
    calls = []

    def cancel() -> bool:
        calls.append(1)
        return len(calls) >= 2

    with pytest.raises(Cancelled):
        probe_batch_energy(
            _tiny_model(),
            _tiny_data(),
            config=RetrainConfig(device="cpu", batch_size=8, augment="none"),
            meter=ReplayMeter(watts=20.0),
            seconds=0.01,
            cancel=cancel,
        )
    assert len(calls) == 2  # read after each batch: stopped at the second


def test_a_ranking_cancelled_while_probing_says_what_finished(plan, tmp_path):
    finished = []
    options = CostOptions(
        settings=CostSettings(carbon_intensity(override_g_per_kwh=400.0), draws=200),
        procedure=_config(),
        meter="replay",
        probe_seconds=0.01,
    )
    stages = []
    ranking = rank_plan(
        plan,
        store=ResultStore(tmp_path),
        cost=options,
        ordered_by="kwh",
        on_candidate=lambda i, n, r: finished.append(r),
        progress=lambda stage, i, n: stages.append((stage, i, n)),
        cancel=lambda: len(finished) == len(plan.candidates),
    )
    assert ranking.cancelled and ranking.ordered_by == "resque"
    assert ranking.stopped == (
        "all 4 scored; cancelled while probing energy (0 of 2 probes done); the scores are "
        "kept; no predicted costs"
    )
    assert all(r.prediction is None for r in ranking.results)
    doc = ranking.to_dict()
    assert doc["stopped"] == ranking.stopped and "no cost model" in doc["rank_basis"]
