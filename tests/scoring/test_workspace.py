"""Workspace: one checkpoint and its data sets, shared by scoring and retraining; a model it did
not load is never moved."""

from __future__ import annotations

import torch

from resque_core.model.checkpoints import load_checkpoint
from resque_core.plans import Plan, plan_from_dict
from resque_core.retrain import RetrainConfig, candidate_data
from resque_core.scoring import ModelConfig, Scorer
from resque_core.scoring.workspace import Workspace


def _plan(ckpt: str) -> Plan:
    return plan_from_dict(
        {
            "version": 1,
            "name": "ws",
            "model": {"checkpoint": ckpt, "arch": "small_cnn", "num_classes": 10, "in_channels": 1},
            "source": "builtin:digits",
            "run": {"samples_per_class": 20, "seed": 3},
            "candidates": [{"id": "n", "kind": "shift", "shift": "gaussian_noise:2"}],
        }
    )


def test_a_model_passed_in_on_another_device_is_copied_not_moved(digits_checkpoint):
    ckpt = load_checkpoint(digits_checkpoint, arch="small_cnn", num_classes=10, in_channels=1)
    shared = ckpt.model
    ws = Workspace(
        ModelConfig(digits_checkpoint, arch="small_cnn", num_classes=10, in_channels=1),
        device=torch.device("meta"),
        checkpoint=ckpt,
    )
    mine = ws.checkpoint().model
    assert mine is not shared
    assert next(mine.parameters()).device.type == "meta"
    assert next(shared.parameters()).device.type == "cpu"  # the caller's copy stays put
    assert ws.checkpoint().model is mine  # copied once, then reused


def test_a_model_passed_in_on_the_right_device_is_used_as_is(digits_checkpoint):
    ckpt = load_checkpoint(digits_checkpoint, arch="small_cnn", num_classes=10, in_channels=1)
    ws = Workspace(
        ModelConfig(digits_checkpoint, arch="small_cnn", num_classes=10, in_channels=1),
        device=torch.device("cpu"),
        checkpoint=ckpt,
    )
    assert ws.checkpoint() is ckpt and ws.checkpoint_sha256() == ckpt.sha256


def test_scoring_and_retraining_read_one_copy_of_each_data_set(digits_checkpoint, monkeypatch):
    plan = _plan(digits_checkpoint)
    scorer = Scorer(plan.resolved_model(), plan.run, source_data=plan.source)
    scorer.score_shift(plan.source, plan.candidates[0].shift)
    loads = []
    import resque_core.data as data_mod

    real = data_mod.load_data
    monkeypatch.setattr(data_mod, "load_data", lambda *a, **k: loads.append(a) or real(*a, **k))
    data = candidate_data(
        plan,
        plan.candidates[0],
        workspace=scorer.workspace,
        seed=scorer.run.seed,
        config=RetrainConfig(max_samples_per_class=5),
    )
    assert loads == []  # the scorer's decoded digits were reused
    assert len(data.train_y) + len(data.held_y) == 50


def test_shifted_data_with_no_class_in_common_names_both_class_lists(digits_checkpoint, tmp_path):
    import numpy as np
    import pytest

    from resque_core.errors import DataError

    other = tmp_path / "other.npz"
    np.savez(
        other,
        x=np.zeros((4, 8, 8), np.uint8),
        y=np.array([0, 1, 0, 1]),
        classes=np.array(["cat", "dog"]),
    )
    ws = Workspace(
        ModelConfig(digits_checkpoint, arch="small_cnn", num_classes=10, in_channels=1),
        device=torch.device("cpu"),
    )
    with pytest.raises(
        DataError, match=r"shares no class name .*source: 0, 1, .*shifted: cat, dog"
    ):
        ws.aligned("builtin:digits", str(other))
