"""compat="reference" pooling: a token layer averages the feature axis (the reference code's
``reshape(N, T, -1).mean(-1)``); conv maps and vectors pool the same in both modes."""

import numpy as np
import pytest
import torch
from torch import nn

from resque_core.scoring.features import class_sums, embeddings, pool


def test_token_layer_pools_the_feature_axis_only_in_reference_mode():
    a = torch.arange(2 * 3 * 4, dtype=torch.float32).view(2, 3, 4)  # [B, T, D]
    ref = a.numpy().reshape(2, 3, -1).mean(axis=-1)  # the reference's hook, in numpy
    np.testing.assert_allclose(pool(a, compat="reference").numpy(), ref)
    np.testing.assert_allclose(pool(a).numpy(), a.numpy().mean(axis=1))
    assert pool(a, compat="reference").shape == (2, 3) and pool(a).shape == (2, 4)


@pytest.mark.parametrize("shape", [(2, 5, 3, 3), (2, 7)])
def test_maps_and_vectors_pool_alike_in_both_modes(shape):
    a = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    ref = a.numpy().reshape(*a.shape[:2], -1).mean(axis=-1)
    np.testing.assert_allclose(pool(a, compat="reference").numpy(), ref, rtol=0, atol=1e-6)
    assert torch.equal(pool(a, compat="reference"), pool(a))


class _Tokens(nn.Module):
    """Images [B, 1, 4, 4] -> 4 tokens of 3 features; ``proj`` is the token layer."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(4, 3)
        self.head = nn.Linear(3, 2)

    def forward(self, x):
        tokens = self.proj(x.view(x.shape[0], 4, 4))  # [B, T=4, D=3]
        return self.head(tokens.mean(1))


def test_class_sums_and_embeddings_follow_the_mode():
    torch.manual_seed(0)
    model = _Tokens().eval()
    x = torch.randn(6, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, 1, 0, 1, 0, 1])
    with torch.no_grad():
        tokens = model.proj(x.view(6, 4, 4)).numpy()
    sums, _ = class_sums(model, "proj", [(x, y)], num_classes=2, compat="reference")
    np.testing.assert_allclose(sums.sums[0], tokens[y == 0].mean(axis=2).sum(0), rtol=1e-5)
    assert sums.sums.shape == (2, 4)  # one value per token
    emb, _ = embeddings(model, "proj", [(x, y)], flatten=True, compat="reference")
    np.testing.assert_allclose(emb.pooled, tokens.mean(axis=2), rtol=1e-5)
    np.testing.assert_allclose(emb.flattened, tokens.reshape(6, -1), rtol=1e-5)
    default, _ = class_sums(model, "proj", [(x, y)], num_classes=2)
    assert default.sums.shape == (2, 3)  # one value per feature
