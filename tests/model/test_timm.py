"""timm architectures by name: built without weights (nothing downloads), their layers listed and
scored like torchvision's."""

from __future__ import annotations

import math

import pytest
import torch

pytest.importorskip("timm")

from resque_core.model import available_archs, build_model, default_layer, list_layers  # noqa: E402
from resque_core.model.checkpoints import load_checkpoint  # noqa: E402
from resque_core.scoring import ModelConfig, RunConfig, Scorer  # noqa: E402


def test_timm_names_beside_torchvisions():
    names = set(available_archs())
    assert {"resnet18", "timm:resnet18", "test_efficientnet"} <= names
    # The same name is torchvision's; the prefix asks for timm's (different module names).
    tv = build_model("resnet18", num_classes=3)
    tm = build_model("timm:resnet18", num_classes=3)
    assert type(tv).__module__.startswith("torchvision") and "timm" in type(tm).__module__


def test_a_timm_model_by_name_lists_layers_and_scores(tmp_path, monkeypatch):
    # Any attempt to reach a hub would fail loudly here: nothing may download.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    torch.manual_seed(0)
    model = build_model("test_efficientnet", num_classes=10, in_channels=1).eval()
    path = tmp_path / "timm.pt"
    torch.save(model.state_dict(), path)

    ckpt = load_checkpoint(path, arch="test_efficientnet")
    assert ckpt.in_channels == 1
    layers = list_layers(ckpt, input_shape=(1, 16, 16))
    names = [info.name for info in layers]
    assert "conv_stem" in names and any(n.startswith("blocks.") for n in names)
    dist_layer = default_layer(layers, "dist")
    assert dist_layer in names

    scorer = Scorer(
        ModelConfig(str(path), arch="test_efficientnet", in_channels=1, image_size=(16, 16)),
        RunConfig(samples_per_class=20, batch_size=64, device="cpu", seed=0),
        source_data="builtin:digits",
    )
    mild = scorer.score_shift("builtin:digits", "gaussian_noise:1", layer=dist_layer)
    strong = scorer.score_shift("builtin:digits", "gaussian_noise:5", layer=dist_layer)
    assert mild.layer == dist_layer and mild.n_source > 0 and mild.n_target > 0
    assert 0 <= mild.value < strong.value <= 1 and math.isfinite(strong.value)
