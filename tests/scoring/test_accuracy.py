"""Source accuracy: the model's top-1 accuracy on the held-out part of its source data, kept in
the result store under a key of content (checkpoint, model settings, data, fraction, seed)."""

import importlib

import numpy as np
import pytest
import torch

from resque_core.data import Preprocess, data_fingerprint, load_data
from resque_core.model import build_model, load_checkpoint
from resque_core.scoring import (
    HELD_OUT_FRACTION,
    ModelConfig,
    RunConfig,
    Scorer,
    accuracy,
    held_out,
    source_accuracy,
)
from resque_core.store import ResultStore, canonical_key

# The scoring room exports a function named like this module, so look the module up by name.
accuracy_mod = importlib.import_module("resque_core.scoring.accuracy")


@pytest.fixture
def setting(tmp_path):
    """(model config, data spec): an untrained seeded small_cnn (1 channel, 3 classes) and 60
    grey 8x8 images, 20 per class."""
    torch.manual_seed(0)
    path = tmp_path / "m.pt"
    torch.save(build_model("small_cnn", num_classes=3, in_channels=1).state_dict(), path)
    rng = np.random.default_rng(0)
    data = tmp_path / "d.npz"
    x = rng.integers(0, 256, (60, 8, 8), dtype=np.uint8)
    np.savez(data, x=x, y=np.repeat(np.arange(3), 20))
    return ModelConfig(str(path), arch="small_cnn", in_channels=1), f"{data}"


def reference(model: ModelConfig, spec: str, seed: int) -> tuple[float, int]:
    ckpt = load_checkpoint(model.checkpoint, arch=model.arch, in_channels=model.in_channels)
    data = load_data(spec)
    idx = held_out(data.labels.numpy(), fraction=HELD_OUT_FRACTION, seed=seed)
    pre = Preprocess(image_size=(8, 8), channels=1, mean=model.mean, std=model.std)
    return accuracy(ckpt, data.subset(idx), pre), len(idx)


@pytest.fixture
def computed(monkeypatch):
    """Counts the accuracy computations (store misses) made through source_accuracy."""
    calls = []

    def counting(*args, **kwargs):
        calls.append(1)
        return accuracy(*args, **kwargs)

    monkeypatch.setattr(accuracy_mod, "accuracy", counting)
    return calls


def test_the_accuracy_of_the_held_out_part_and_its_size(setting, tmp_path):
    model, spec = setting
    run = RunConfig(device="cpu", seed=7, batch_size=5)
    value, n = source_accuracy(model, run, spec, store=ResultStore(tmp_path / "c"))
    assert (value, n) == reference(model, spec, seed=7)
    assert n == 12  # 20 % of 60, 4 per class


def test_a_stored_value_loads_neither_model_nor_data(setting, tmp_path, monkeypatch, computed):
    model, spec = setting
    run, store = RunConfig(device="cpu"), ResultStore(tmp_path / "c")
    first = source_accuracy(model, run, spec, store=store)

    def refuse(*args, **kwargs):
        raise AssertionError("loaded on a store hit")

    monkeypatch.setattr(accuracy_mod, "load_data", refuse)
    monkeypatch.setattr(Scorer, "checkpoint", refuse)
    assert source_accuracy(model, run, spec, store=store) == first
    assert len(computed) == 1


def test_seed_and_model_settings_are_in_the_key_batch_size_is_not(setting, tmp_path, computed):
    model, spec = setting
    store = ResultStore(tmp_path / "c")
    source_accuracy(model, RunConfig(device="cpu", seed=1), spec, store=store)
    source_accuracy(model, RunConfig(device="cpu", seed=1, batch_size=3), spec, store=store)
    assert len(computed) == 1
    source_accuracy(model, RunConfig(device="cpu", seed=2), spec, store=store)
    assert len(computed) == 2
    other_norm = ModelConfig(model.checkpoint, arch="small_cnn", in_channels=1, mean=(0.4,))
    source_accuracy(other_norm, RunConfig(device="cpu", seed=1), spec, store=store)
    assert len(computed) == 3


def test_values_stored_under_the_existing_key_are_read(setting, tmp_path):
    # Runs of earlier versions stored source accuracy under this key; they stay hits.
    model, spec = setting
    store = ResultStore(tmp_path / "c")
    key = canonical_key(
        "source_accuracy",
        {
            "sha256": store.file_sha256(model.checkpoint),
            "arch": "small_cnn",
            "num_classes": None,
            "in_channels": 1,
            "image_size": None,
            "mean": (0.5,),
            "std": (0.5,),
            "data": data_fingerprint(spec),
            "held_out": 0.2,
            "seed": 4,
        },
    )
    store.put(key, {"accuracy": 0.25, "n": 99})
    assert source_accuracy(model, RunConfig(device="cpu", seed=4), spec, store=store) == (0.25, 99)


def test_a_given_checkpoint_and_images_are_used_as_they_are(setting, tmp_path, monkeypatch):
    model, spec = setting
    ckpt = load_checkpoint(model.checkpoint, arch="small_cnn", in_channels=1)
    images = load_data(spec)

    def refuse(*args, **kwargs):
        raise AssertionError("loaded although given")

    monkeypatch.setattr(accuracy_mod, "load_data", refuse)
    monkeypatch.setattr(Scorer, "checkpoint", refuse)
    got = source_accuracy(
        model,
        RunConfig(device="cpu", seed=7),
        spec,
        store=ResultStore(tmp_path / "c"),
        checkpoint=ckpt,
        images=images,
    )
    assert got == reference(model, spec, seed=7)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_shared_checkpoint_on_the_cpu_is_not_moved_to_the_runs_gpu(setting, tmp_path):
    model, spec = setting
    ckpt = load_checkpoint(model.checkpoint, arch="small_cnn", in_channels=1)
    got = source_accuracy(
        model,
        RunConfig(device="cuda", seed=7),
        spec,
        store=ResultStore(tmp_path / "c"),
        checkpoint=ckpt,
    )
    assert got == reference(model, spec, seed=7)
    assert {p.device.type for p in ckpt.model.parameters()} == {"cpu"}
