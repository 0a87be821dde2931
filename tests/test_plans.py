"""Plan files: round trip, validation messages naming the field, path resolution, trust never
read from a file, ranges, lengths and depth."""

import json
import os
import re
from pathlib import Path

import pytest
from fixtures.pickled import marker_checkpoint

from resque_core.errors import CheckpointError, ConfigError, ShiftError
from resque_core.plans import MAX_PLAN_BYTES, TRUST_IGNORED, load_plan, plan_from_dict, save_plan
from resque_core.scoring.scorer import ModelConfig, RunConfig, Scorer


def _doc(**over):
    doc = {
        "version": 1,
        "name": "t",
        "model": {
            "checkpoint": "m.pt",
            "arch": "small_cnn",
            "in_channels": 1,
            "image_size": [8, 8],
        },
        "source": "builtin:digits",
        "run": {"samples_per_class": 5, "seed": 3},
        "candidates": [
            {"id": "g3", "kind": "shift", "shift": "gaussian_noise:3", "label": "noise"},
            {"id": "cam", "kind": "shifted_data", "data": "cam/"},
            {"id": "let", "kind": "task", "data": "builtin:digits", "note": "n"},
        ],
    }
    doc.update(over)
    return doc


def test_round_trip_is_identical(tmp_path):
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(_doc()))
    first = load_plan(path)
    save_plan(first, tmp_path / "again.json")
    second = load_plan(tmp_path / "again.json")
    assert first == second
    assert first.to_dict() == second.to_dict()
    assert first.run.samples_per_class == 5 and first.model.image_size == (8, 8)
    assert [c.estimator for c in first.candidates] == ["dist", "dist", "task"]


def test_relative_paths_resolve_against_the_plan_folder(tmp_path):
    path = tmp_path / "sub" / "plan.json"
    path.parent.mkdir()
    path.write_text(json.dumps(_doc()))
    plan = load_plan(path)
    assert plan.resolved_model().checkpoint == str(tmp_path / "sub" / "m.pt")
    assert plan.resolve("cam/") == str(tmp_path / "sub" / "cam")
    assert plan.resolve("builtin:digits") == "builtin:digits"
    assert plan.resolve("torchvision:CIFAR10:data") == f"torchvision:CIFAR10:{tmp_path}/sub/data"
    assert plan.model.checkpoint == "m.pt"  # kept as written


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"version": 2}, "plan field 'version' is 2; this engine reads version 1"),
        (
            {"colour": 1},
            "unknown plan field 'colour'; allowed: candidates, layer, model, name, "
            "run, source, version",
        ),
        (
            {"candidates": [{"id": "a", "kind": "drift", "data": "x"}]},
            "plan field 'candidates[0].kind' is \"drift\"; allowed: shift, shifted_data, task",
        ),
        (
            {"candidates": [{"id": "a", "kind": "task"}]},
            "plan field 'candidates[0].data' must be a data spec (path, builtin:NAME, "
            "torchvision:...), got null",
        ),
        (
            {"candidates": [{"id": "a b", "kind": "task", "data": "x"}]},
            "plan field 'candidates[0].id' is 'a b': use letters, digits, '.', '_' or '-' (max 64)",
        ),
        (
            {"candidates": [{"id": "a", "kind": "task", "data": "x"}] * 2},
            "plan field 'candidates[1].id': duplicate candidate id 'a'",
        ),
        ({"run": {"batch_size": "big"}}, "plan field 'run.batch_size' must be int, got \"big\""),
        (
            {"run": {"speed": 1}},
            "unknown plan field 'run.speed'; allowed: amp, batch_size, compat, device, "
            "flatten, max_task_samples, samples_per_class, seed",
        ),
        (
            {"model": {"arch": "x"}},
            "plan field 'model.checkpoint' is required (a checkpoint file path)",
        ),
    ],
)
def test_invalid_plans_name_the_field(change, message):
    with pytest.raises(ConfigError) as err:
        plan_from_dict(_doc(**change))
    assert str(err.value) == message


def test_bad_shift_in_a_plan_is_a_shift_error():
    with pytest.raises(ShiftError, match=re.escape("severity 9 is out of range")):
        plan_from_dict(_doc(candidates=[{"id": "a", "kind": "shift", "shift": "gaussian_noise:9"}]))


def test_missing_and_malformed_plan_files(tmp_path):
    with pytest.raises(ConfigError, match=re.escape(f"plan not found: {tmp_path / 'no.json'}")):
        load_plan(tmp_path / "no.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match=r"is not valid JSON: .* at line 1"):
        load_plan(bad)


# ------------------------------------------------------------------ trust is never in a plan
DEMO_PLAN = Path(__file__).resolve().parents[1] / "resque_core" / "demo" / "plan.json"


def test_the_demo_plan_of_schema_v1_loads_unchanged_and_saves_without_trust(tmp_path):
    written = json.loads(DEMO_PLAN.read_text())
    assert written["model"]["trusted"] is False  # as schema v1 files carry it
    plan = load_plan(DEMO_PLAN)
    assert plan.warnings == () and plan.model.trusted is False
    del written["model"]["trusted"]
    assert plan.to_dict() == written
    save_plan(plan, tmp_path / "again.json")
    assert "trusted" not in (tmp_path / "again.json").read_text()
    assert load_plan(tmp_path / "again.json") == plan


def test_a_plan_that_says_trusted_is_untrusted_with_a_warning(tmp_path):
    doc = _doc()
    doc["model"]["trusted"] = True
    plan = plan_from_dict(doc)
    assert plan.model.trusted is False
    assert plan.warnings == (
        "plan field 'model.trusted' is ignored: a plan cannot grant trust to its checkpoint; "
        "give it at run time with --trust-checkpoint (CLI) or the 'Trust this file' switch on "
        "the Checkpoint page (app)",
    )
    assert plan.warnings == (TRUST_IGNORED,)
    assert "trusted" not in plan.to_dict()["model"]
    # Trust given at run time reaches the model, and still never the document.
    trusting = plan.with_trust(True)
    assert trusting.model.trusted is True and trusting.resolved_model().trusted is True
    assert trusting.to_dict() == plan.to_dict()
    assert plan_from_dict(_doc()).warnings == ()


def test_the_trusted_field_must_still_be_a_boolean():
    doc = _doc()
    doc["model"]["trusted"] = "yes"
    with pytest.raises(ConfigError) as err:
        plan_from_dict(doc)
    assert str(err.value) == "plan field 'model.trusted' must be true or false, got \"yes\""


@pytest.fixture
def pickled(tmp_path, monkeypatch):
    """(checkpoint, class name, marker): a pickled model whose unpickling creates the marker."""
    monkeypatch.syspath_prepend(str(tmp_path))
    marker = tmp_path / "pickle-code-ran"
    path, cls = marker_checkpoint(tmp_path, marker)
    return path, cls, marker


def test_a_trusted_plan_does_not_load_a_pickled_model_but_run_time_trust_does(pickled):
    path, cls, marker = pickled
    doc = _doc(model={"checkpoint": str(path), "in_channels": 1, "trusted": True})
    plan = plan_from_dict(doc)
    with pytest.raises(CheckpointError) as err:
        Scorer(plan.resolved_model()).checkpoint()
    assert str(err.value) == (
        f"checkpoint {path} contains pickled Python objects (e.g. {cls}); loading it could run "
        "code, so it was refused; if you trust its origin, retry with --trust-checkpoint (CLI) "
        "or the 'Trust this file' switch (app); or save model.state_dict() and pass --arch"
    )
    assert not marker.exists()
    # The payload is live: the person's trust at run time loads it and its code runs.
    Scorer(plan.with_trust(True).resolved_model()).checkpoint()
    assert marker.exists()


# ------------------------------------------------------------------ ranges, types and lengths
def _model_doc(**over):
    return {"checkpoint": "m.pt", "arch": "small_cnn", "in_channels": 1, **over}


def _cand(**over):
    return [{"id": "t", "kind": "task", "data": "builtin:digits", **over}]


RANGE = "must be an integer from"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"run": {"seed": -1}}, f"seed {RANGE} 0 to 4,294,967,295, got -1"),
        ({"run": {"seed": 2**32}}, f"seed {RANGE} 0 to 4,294,967,295, got 4294967296"),
        ({"run": {"seed": 2**63}}, f"seed {RANGE} 0 to 4,294,967,295, got 9223372036854775808"),
        (
            {"run": {"seed": 10**400}},
            f"seed {RANGE} 0 to 4,294,967,295, got an integer of 1329 bits",
        ),
        ({"run": {"seed": 1.5}}, "plan field 'run.seed' must be int, got 1.5"),
        ({"run": {"seed": True}}, "plan field 'run.seed' must be int, got true"),
        ({"run": {"batch_size": 0}}, f"batch size {RANGE} 1 to 65,536, got 0"),
        ({"run": {"batch_size": 65_537}}, f"batch size {RANGE} 1 to 65,536, got 65537"),
        ({"run": {"samples_per_class": 0}}, f"samples per class {RANGE} 1 to 1,000,000,000, got 0"),
        (
            {"run": {"samples_per_class": 10**9 + 1}},
            f"samples per class {RANGE} 1 to 1,000,000,000, got 1000000001",
        ),
        ({"run": {"max_task_samples": 1}}, f"max task samples {RANGE} 2 to 1,000,000,000, got 1"),
        (
            {"run": {"device": "c" * 201}},
            "plan field 'run.device' is 201 characters long; the limit is 200",
        ),
        (
            {"model": _model_doc(num_classes=0)},
            f"the number of classes {RANGE} 1 to 100,000, got 0",
        ),
        (
            {"model": _model_doc(num_classes=100_001)},
            f"the number of classes {RANGE} 1 to 100,000, got 100001",
        ),
        ({"model": _model_doc(in_channels=0)}, f"input channels {RANGE} 1 to 64, got 0"),
        ({"model": _model_doc(in_channels=65)}, f"input channels {RANGE} 1 to 64, got 65"),
        (
            {"model": _model_doc(mean=float("nan"))},
            "normalisation mean must be 1 to 64 finite numbers (one, or one per channel), got nan",
        ),
        (
            {"model": _model_doc(mean=[0.5, float("-inf")])},
            "normalisation mean must be 1 to 64 finite numbers (one, or one per channel), "
            "got 0.5, -inf",
        ),
        (
            {"model": _model_doc(mean=10**400)},
            "normalisation mean must be 1 to 64 finite numbers (one, or one per channel), got inf",
        ),
        (
            {"model": _model_doc(std=[0])},
            "normalisation std must be 1 to 64 positive finite numbers (one, or one per channel), "
            "got 0",
        ),
        (
            {"model": _model_doc(std=[0.5] * 65)},
            "normalisation std must be 1 to 64 positive finite numbers (one, or one per channel), "
            "got 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, ...",
        ),
        (
            {"model": _model_doc(mean=[])},
            "plan field 'model.mean' must be a number or a list of numbers, got a list",
        ),
        (
            {"model": _model_doc(std="0.5")},
            "plan field 'model.std' must be a number or a list of numbers, got \"0.5\"",
        ),
        (
            {"model": _model_doc(image_size=[True, 8])},
            "plan field 'model.image_size' must be an integer or [height, width], got a list",
        ),
        (
            {"model": _model_doc(image_size=40_000)},
            "image_size 40000 x 40000 is over the limit of 1,024 pixels a side for the model's "
            "input; give a smaller size (e.g. 224)",
        ),
        (
            {"model": _model_doc(checkpoint="m" * 4097)},
            "plan field 'model.checkpoint' is 4,097 characters long; the limit is 4,096",
        ),
        (
            {"model": _model_doc(arch="a" * 201)},
            "plan field 'model.arch' is 201 characters long; the limit is 200",
        ),
        ({"name": "n" * 201}, "plan field 'name' is 201 characters long; the limit is 200"),
        (
            {"source": "s" * 5000},
            "plan field 'source' is 5,000 characters long; the limit is 4,096",
        ),
        ({"layer": "l" * 201}, "plan field 'layer' is 201 characters long; the limit is 200"),
        (
            {"candidates": _cand(label="x" * 201)},
            "plan field 'candidates[0].label' is 201 characters long; the limit is 200",
        ),
        (
            {"candidates": _cand(note="x" * 2001)},
            "plan field 'candidates[0].note' is 2,001 characters long; the limit is 2,000",
        ),
        (
            {"candidates": _cand(data="")},
            "plan field 'candidates[0].data' is empty; give a data spec (path, builtin:NAME, "
            "torchvision:...)",
        ),
        (
            {"candidates": _cand(data="d" * 4097)},
            "plan field 'candidates[0].data' is 4,097 characters long; the limit is 4,096",
        ),
        (
            {"candidates": [{"id": "s", "kind": "shift", "shift": "gaussian_noise:" + "1" * 200}]},
            "plan field 'candidates[0].shift' is 215 characters long; the limit is 200",
        ),
        (
            {"candidates": [{"id": f"c{i}", "kind": "task", "data": "x"} for i in range(1001)]},
            "plan field 'candidates' has 1,001 candidates; the limit is 1,000: split the "
            "comparison into several plans",
        ),
        (
            {"candidates": [{"id": "a" * 80, "kind": "task", "data": "x"}]},
            f"plan field 'candidates[0].id' is '{'a' * 37}...': use letters, digits, '.', '_' or "
            "'-' (max 64)",
        ),
        (
            {"candidates": _cand(kind={"kind": "task"})},
            "plan field 'candidates[0].kind' is an object; allowed: shift, shifted_data, task",
        ),
        ({"version": True}, "plan field 'version' is true; this engine reads version 1"),
        ({"version": 1.0}, "plan field 'version' is 1.0; this engine reads version 1"),
        (
            {"k" * 100: 1},
            f"unknown plan field '{'k' * 37}...'; allowed: candidates, layer, model, name, run, "
            "source, version",
        ),
        ({"name": ["a"] * 3}, "plan field 'name' must be a string, got a list"),
        (
            {"name": "x" * 10_000 + "\u00e9"},
            "plan field 'name' is 10,001 characters long; the limit is 200",
        ),
    ],
)
def test_out_of_range_values_are_refused_with_the_allowed_range(change, message):
    with pytest.raises(ConfigError) as err:
        plan_from_dict(_doc(**change))
    assert str(err.value) == message


def test_a_long_bad_value_is_shown_cut_short():
    with pytest.raises(ConfigError) as err:
        plan_from_dict(_doc(run={"batch_size": "b" * 1000}))
    assert str(err.value) == f"plan field 'run.batch_size' must be int, got \"{'b' * 37}...\""


def test_run_and_model_configs_share_the_ranges_with_the_python_api():
    with pytest.raises(ConfigError, match=re.escape(f"seed {RANGE} 0 to 4,294,967,295, got str")):
        RunConfig(seed="1")
    with pytest.raises(ConfigError, match=re.escape(f"batch size {RANGE} 1 to 65,536, got bool")):
        RunConfig(batch_size=True)
    assert RunConfig(seed=2**32 - 1).seed == 2**32 - 1
    assert ModelConfig("m.pt", mean=(0, 1, 2), std=(1,)).mean == (0, 1, 2)


# ------------------------------------------------------------------ files: depth, size, kind
def test_a_deeply_nested_plan_file_is_a_config_error(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text('{"version": 1, "name": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(ConfigError) as err:
        load_plan(path)
    assert str(err.value) == (
        f"plan {path} is nested too deeply to be a plan (a plan nests at most 3 levels)"
    )


def test_a_nested_value_in_a_readable_plan_is_a_type_error(tmp_path):
    path = tmp_path / "nested.json"
    path.write_text(json.dumps(_doc(model=_model_doc(mean=[[[[[[0.5]]]]]]))))
    with pytest.raises(ConfigError) as err:
        load_plan(path)
    assert (
        str(err.value)
        == "plan field 'model.mean' must be a number or a list of numbers, got a list"
    )


def test_an_integer_too_long_to_read_is_a_config_error(tmp_path):
    path = tmp_path / "digits.json"
    path.write_text('{"version": 1, "run": {"seed": ' + "9" * 5000 + "}}")
    with pytest.raises(ConfigError) as err:
        load_plan(path)
    assert str(err.value) == (
        f"plan {path} holds an integer of more than 4,300 digits; no plan field takes one"
    )


def test_a_fifo_or_oversized_plan_is_refused_without_being_read(tmp_path):
    fifo = tmp_path / "plan.fifo"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError) as err:
        load_plan(fifo)  # would block forever if it were opened
    assert str(err.value) == (
        f"plan {fifo} is not a regular file (a device, FIFO or socket); give a file"
    )
    big = tmp_path / "big.json"
    with open(big, "wb") as f:
        f.truncate(MAX_PLAN_BYTES + 2**20)  # sparse: nothing is written
    with pytest.raises(ConfigError) as err:
        load_plan(big)
    assert str(err.value) == f"plan {big} is 17 MiB, over the limit of 16 MiB"
    with pytest.raises(ConfigError) as err:
        load_plan(tmp_path)
    assert str(err.value) == f"plan {tmp_path} is a directory; give the file"
