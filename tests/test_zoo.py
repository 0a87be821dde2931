"""The demo zoo: build_zoo.py builds a loadable, scorable, reproducible checkpoint; the shipped
assets (checkpoint, manifest, default plan, README) agree with each other; the demo ranking
behaves (noise RESQUE_dist grows with severity, every candidate scores)."""

import importlib.util
import json
import sys
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import pytest

from resque_core._util import sha256_file
from resque_core.data import Preprocess, load_data
from resque_core.data.shifts import parse_shift
from resque_core.model.checkpoints import load_checkpoint
from resque_core.plans import load_plan
from resque_core.ranking import rank_plan
from resque_core.scoring.accuracy import accuracy, held_out
from resque_core.scoring.scorer import ModelConfig, RunConfig, Scorer
from resque_core.store.cache import ResultStore
from resque_core.store.runs import RunStore

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "resque_core" / "demo"


def _build_zoo():
    spec = importlib.util.spec_from_file_location("build_zoo", ROOT / "scripts" / "build_zoo.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["build_zoo"] = module  # dataclasses look their module up while it executes
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def fast_build(tmp_path_factory):
    out = tmp_path_factory.mktemp("zoo")
    assert _build_zoo().main(["--fast", "--out", str(out)]) == 0
    return out


def test_fast_build_writes_a_checkpoint_and_its_manifest(fast_build):
    manifest = json.loads((fast_build / "manifest.json").read_text())
    (entry,) = manifest["models"]
    path = fast_build / entry["file"]
    assert entry["sha256"] == sha256_file(path)
    assert entry["bytes"] == path.stat().st_size < 1_000_000
    assert entry["training"]["epochs"] == 1 and entry["training"]["fast"] is True
    assert entry["split"]["train"] == 300 and entry["split"]["held_out"] == 360
    assert 0.0 <= entry["held_out_accuracy"] <= 1.0
    assert entry["data"] == "builtin:digits" and entry["preprocessing"]["mean"] == [0.5]


def test_fast_build_is_bit_reproducible(fast_build, tmp_path):
    assert _build_zoo().main(["--fast", "--out", str(tmp_path)]) == 0
    name = "digits_small_cnn.pt"
    assert sha256_file(tmp_path / name) == sha256_file(fast_build / name)


def test_built_checkpoint_loads_and_scores_a_shift(fast_build):
    path = str(fast_build / "digits_small_cnn.pt")
    ckpt = load_checkpoint(path, arch="small_cnn", num_classes=10, in_channels=1)
    assert ckpt.in_channels == 1
    config = ModelConfig(path, arch="small_cnn", num_classes=10, in_channels=1)
    scorer = Scorer(config, RunConfig(samples_per_class=20), source_data="builtin:digits")
    score = scorer.score_shift("builtin:digits", "gaussian_noise:3")
    assert 0.0 < score.value < 1.0
    assert score.n_source > 0 and score.n_target > 0


def test_shipped_checkpoint_matches_its_manifest():
    manifest = json.loads((DEMO / "manifest.json").read_text())
    entry = next(m for m in manifest["models"] if m["file"] == "digits_small_cnn.pt")
    path = DEMO / entry["file"]
    assert sha256_file(path) == entry["sha256"]
    assert path.stat().st_size < 1_000_000
    assert entry["training"]["fast"] is False
    assert entry["held_out_accuracy"] >= 0.95
    # The engine, feeding the held-out split as RESQUE feeds data, sees the recorded accuracy.
    ckpt = load_checkpoint(str(path), arch="small_cnn", num_classes=10, in_channels=1)
    digits = load_data(entry["data"])
    held = digits.subset(held_out(digits.labels.numpy(), seed=entry["split"]["seed"]))
    assert len(held) == entry["split"]["held_out"]
    pre = Preprocess.from_dict({k: v for k, v in entry["preprocessing"].items() if k != "scale"})
    assert round(accuracy(ckpt, held, pre), 4) == entry["held_out_accuracy"]


@pytest.fixture(scope="module")
def plan():
    return load_plan(DEMO / "plan.json")


def test_default_plan_covers_shift_families_severities_and_tasks(plan):
    severities = defaultdict(set)
    for c in plan.candidates:
        if c.kind == "shift":
            spec = parse_shift(c.shift)
            severities[spec.name].add(spec.severity)
    assert len(severities) >= 3
    assert {"gaussian_noise", "gaussian_blur", "impulse_noise"} <= set(severities)
    assert all(s == {1, 2, 3, 4, 5} for s in severities.values())
    tasks = [c.data for c in plan.candidates if c.kind == "task"]
    assert {"builtin:letters", "builtin:shapes", "builtin:digits-parity"} <= set(tasks)
    assert all(c.label and c.note for c in plan.candidates)


def test_default_plan_points_at_the_shipped_model(plan):
    manifest = json.loads((DEMO / "manifest.json").read_text())
    entry = next(m for m in manifest["models"] if m["file"] == "digits_small_cnn.pt")
    model = plan.resolved_model()
    assert Path(model.checkpoint).resolve() == (DEMO / entry["file"]).resolve()
    assert (model.arch, model.num_classes, model.in_channels) == (
        entry["arch"],
        entry["num_classes"],
        entry["in_channels"],
    )
    assert list(model.mean) == entry["preprocessing"]["mean"]
    assert list(model.std) == entry["preprocessing"]["std"]
    assert plan.source == entry["data"]


def test_demo_readme_documents_every_candidate(plan):
    readme = (DEMO / "README.md").read_text()

    def documented(c):
        if c.kind != "shift":
            return f"`{c.id}`" in readme
        # Shift families are documented as one row: `noise-1` ... `noise-5` | `gaussian_noise`.
        family = c.id.rsplit("-", 1)[0]
        row = f"`{family}-1` ... `{family}-5` | `{parse_shift(c.shift).name}`"
        return row in readme

    assert [c.id for c in plan.candidates if not documented(c)] == []
    assert "python scripts/build_zoo.py" in readme


def test_demo_ranking_scores_everything_and_noise_grows_with_severity(plan, tmp_path):
    # The full demo takes 20-50 s on 2 cores; 10 images per class still score every candidate and
    # keep the severity trend (noise draws are shared across severities) in a few seconds.
    small = replace(plan, run=replace(plan.run, samples_per_class=10, device="cpu"))
    store = ResultStore(tmp_path / "cache")
    ranking = rank_plan(small, store=store)
    failed = {r.candidate.id: r.error for r in ranking.results if not r.ok}
    assert not failed
    assert len(ranking.results) == len(plan.candidates)
    by_family = defaultdict(dict)
    for r in ranking.results:
        if r.candidate.kind == "shift":
            spec = parse_shift(r.candidate.shift)
            by_family[spec.name][spec.severity] = r.score.value
            assert 0.0 <= r.score.value <= 1.0
    for family in ("gaussian_noise", "impulse_noise"):
        values = [by_family[family][s] for s in sorted(by_family[family])]
        assert values == sorted(values), f"{family}: {values}"
        assert values[0] < values[-1]

    again = rank_plan(small, store=store)
    assert all(r.score.cached for r in again.results)
    assert [r.score.value for r in again.results] == [r.score.value for r in ranking.results]
    assert again.seconds < 1.0

    # Stored runs: a repeat with reuse_stored keeps the stored run; other content gets its own.
    runs = RunStore(tmp_path / "cache")
    first = rank_plan(small, store=store, runs=runs, reuse_stored=True).run_id
    assert rank_plan(small, store=store, runs=runs, reuse_stored=True).run_id == first
    assert rank_plan(small, store=store, runs=runs).run_id != first  # plain: always a new run
    fewer = replace(small, candidates=small.candidates[:3])
    assert rank_plan(fewer, store=store, runs=runs, reuse_stored=True).run_id != first
    assert len(runs.list()) == 3
