"""Rankings and validations on a local Ray give what the local executor gives: the same RESQUE
values in the same order, the same epochs; the driver alone writes the result cache, and a
cancelled ranking keeps what finished."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from resque_core.cli import main
from resque_core.cost.predict import CostSettings
from resque_core.executor import make_executor
from resque_core.measure.carbon import carbon_intensity
from resque_core.measure.energy import ReplayMeter
from resque_core.plans import plan_from_dict
from resque_core.ranking import rank_plan
from resque_core.retrain import RetrainConfig
from resque_core.store.cache import ResultStore
from resque_core.store.runs import RunStore
from resque_core.validation import validate_plan

pytestmark = pytest.mark.ray

CHECKPOINT = str(
    Path(__file__).resolve().parents[2] / "resque_core" / "demo" / "digits_small_cnn.pt"
)


@pytest.fixture
def plan():
    return plan_from_dict(
        {
            "version": 1,
            "name": "tiny",
            "model": {
                "checkpoint": CHECKPOINT,
                "arch": "small_cnn",
                "num_classes": 10,
                "in_channels": 1,
            },
            "source": "builtin:digits",
            "run": {"samples_per_class": 20, "device": "cpu", "seed": 3},
            "candidates": [
                {"id": "noise-5", "kind": "shift", "shift": "gaussian_noise:5"},
                {"id": "parity", "kind": "task", "data": "builtin:digits-parity"},
                {"id": "blur-3", "kind": "shift", "shift": "gaussian_blur:3"},
                {"id": "missing", "kind": "task", "data": "/no/such/data.npz"},
                {"id": "noise-1", "kind": "shift", "shift": "gaussian_noise:1"},
            ],
        }
    )


def _values(ranking):
    return [(r.candidate.id, r.rank, r.score.value if r.ok else r.error) for r in ranking.ordered]


def test_rank_on_ray_gives_the_local_values_and_order(ray_cluster, plan, tmp_path):
    local = rank_plan(plan, store=ResultStore(tmp_path / "local"))
    store = ResultStore(tmp_path / "ray")
    seen = []
    remote = rank_plan(
        plan,
        store=store,
        executor=make_executor("ray"),
        on_candidate=lambda i, n, r: seen.append((i, n, r.candidate.id)),
    )
    assert [r.candidate.id for r in remote.results] == [c.id for c in plan.candidates]
    got, want = _values(remote), _values(local)
    assert [g[:2] for g in got] == [w[:2] for w in want]
    for (_cid, _rank, g), (_c, _r, w) in zip(got, want, strict=True):
        assert g == (pytest.approx(w, rel=1e-9, abs=1e-12) if isinstance(w, float) else w)
    assert sorted(seen) == sorted((i, 5, c.id) for i, c in enumerate(plan.candidates))
    assert remote.results[3].error.startswith("data not found")
    # the driver wrote the workers' results: ranking again is all cache hits, same values
    again = rank_plan(plan, store=store)
    assert all(r.score.cached for r in again.results if r.ok)
    assert _values(again) == got


def test_rank_cli_executor_ray_matches_local(ray_cluster, plan, tmp_path, capsys):
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan.to_dict()), encoding="utf-8")
    docs = {}
    for name in ("local", "ray"):
        argv = ["rank", "--plan", str(path), "--cache-dir", str(tmp_path / name), "--json"]
        assert main([*argv, "--executor", name]) == 0
        docs[name] = json.loads(capsys.readouterr().out)["candidates"]
    pick = [(c["id"], c["rank"], c["status"]) for c in docs["local"]]
    assert [(c["id"], c["rank"], c["status"]) for c in docs["ray"]] == pick
    for a, b in zip(docs["local"], docs["ray"], strict=True):
        assert b["resque"] == pytest.approx(a["resque"], rel=1e-9) if a["resque"] else True


def test_validate_on_ray_gives_the_local_epochs(ray_cluster, plan, tmp_path):
    config = RetrainConfig(device="cpu", max_epochs=3, max_samples_per_class=15, augment="none")
    common = {
        "candidates": ["noise-5", "parity", "blur-3"],
        "config": config,
        "settings": CostSettings(carbon_intensity(override_g_per_kwh=300.0)),
        "probe_seconds": 0.05,
    }
    docs = {}
    for name, executor in (("local", None), ("ray", make_executor("ray"))):
        store = ResultStore(tmp_path / name)
        runs = RunStore(tmp_path / name)
        started = []
        v = validate_plan(
            plan,
            **common,
            meter=ReplayMeter(joules=[36.0], seconds=0.1),
            store=store,
            runs=runs,
            cache_dir=tmp_path / name,
            executor=executor,
            on_start=lambda i, n, cid, started=started: started.append(cid),
        )
        assert sorted(started) == ["blur-3", "noise-5", "parity"]
        docs[name] = runs.load(v.run_id)
        # the energy probes measured on the workers are in the driver's cache
        assert len(store) > 0
    local, remote = docs["local"]["runs"], docs["ray"]["runs"]
    assert [r["candidate_id"] for r in remote] == ["noise-5", "parity", "blur-3"]
    for a, b in zip(local, remote, strict=True):
        assert b["status"] == a["status"] == "completed" and b["error"] is None
        assert b["epochs"] == a["epochs"] and b["stop_reason"] == a["stop_reason"]
        assert b["resque"] == pytest.approx(a["resque"], rel=1e-9)
        assert b["energy_kwh"] == pytest.approx(a["energy_kwh"])
        assert b["retrain"]["final_held_accuracy"] == pytest.approx(
            a["retrain"]["final_held_accuracy"], abs=1e-6
        )


def test_cancelled_ranking_on_ray_keeps_what_finished(ray_cluster, plan, tmp_path):
    done = []
    ranking = rank_plan(
        plan,
        store=ResultStore(tmp_path),
        executor=make_executor("ray"),
        on_candidate=lambda i, n, r: done.append(r.candidate.id),
        cancel=lambda: len(done) >= 2,
    )
    assert ranking.cancelled
    # "missing" fails on the driver before any work is sent; then one worker result at least
    assert "missing" in done and 2 <= len(ranking.results) < len(plan.candidates)
    assert [r.candidate.id for r in ranking.results] == [
        c.id for c in plan.candidates if c.id in done
    ]
