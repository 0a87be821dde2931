"""Shared fixtures: a small CNN trained for a few seconds on scikit-learn's real digits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from resque_core.data import Preprocess, load_data
from resque_core.model.archs import build_model


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    # No test may read or write the user's real cache.
    monkeypatch.setenv("RESQUE_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="session")
def digits_checkpoint(tmp_path_factory) -> str:
    """small_cnn (1 channel, 10 classes) trained 2 epochs on digits; path to its state_dict."""
    torch.manual_seed(0)
    digits = load_data("builtin:digits")
    pre = Preprocess(image_size=(8, 8), channels=1, mean=(0.5,), std=(0.5,))
    x = pre.normalize(pre.to_unit(digits.images))
    y = digits.labels
    model = build_model("small_cnn", num_classes=10, in_channels=1)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(2):
        for idx in torch.randperm(len(y), generator=g).split(64):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        acc = (model(x).argmax(1) == y).float().mean().item()
    assert acc > 0.8, f"digits model trained to only {acc:.2f}"
    path = tmp_path_factory.mktemp("ckpt") / "digits_small_cnn.pt"
    torch.save(model.state_dict(), path)
    return str(path)


@pytest.fixture(scope="session")
def digits_npz(tmp_path_factory) -> str:
    """The digits as an .npz (x uint8 [N,8,8], y) for tests that need a file-based spec."""
    digits = load_data("builtin:digits")
    path = tmp_path_factory.mktemp("data") / "digits.npz"
    np.savez(path, x=digits.images[:, 0].numpy(), y=digits.labels.numpy())
    return str(path)
