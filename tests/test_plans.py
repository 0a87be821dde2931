"""Plan files: round trip, validation messages naming the field, path resolution."""

import json
import re

import pytest

from resque_core.errors import ConfigError, ShiftError
from resque_core.plans import load_plan, plan_from_dict, save_plan


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
            "unknown plan field 'run.speed'; allowed: amp, batch_size, device, "
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
