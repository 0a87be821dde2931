"""Feature streaming and hooks against an independent per-sample implementation of METHOD.md."""

import threading

import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score
from torch import nn

from resque_core.errors import LayerError
from resque_core.model.hooks import tap
from resque_core.scoring.estimators import resque_dist, resque_task_variants
from resque_core.scoring.features import class_sums, embeddings, pool


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 3, padding=1)
        self.conv2 = nn.Conv2d(6, 5, 3, padding=1)
        self.fc = nn.Linear(5, 4)
        self.fc_calls = 0

    def forward(self, x):
        x = torch.relu(self.conv1(x))
        x = self.conv2(x)
        self.fc_calls += 1
        return self.fc(torch.relu(x).mean(dim=(2, 3)))


@pytest.fixture
def model():
    torch.manual_seed(0)
    return Tiny().eval()


def _data(seed, n=40, k=4):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, 8, 8, generator=g)
    y = torch.arange(n) % k
    return x, y


def _batches(x, y, bs):
    return [(x[i : i + bs], y[i : i + bs]) for i in range(0, len(x), bs)]


def _reference_dist(model, layer, xs, ys, xt, yt):
    """METHOD.md, literally: per sample, hook the layer, mean over H*W, sum per class, angle."""
    store = {}
    handle = dict(model.named_modules())[layer].register_forward_hook(
        lambda m, i, o: store.__setitem__("a", o.detach().numpy()[0])
    )
    try:

        def sums(x, y):
            out = {}
            for i in range(len(x)):
                with torch.no_grad():
                    model(x[i : i + 1])
                v = store["a"].reshape(store["a"].shape[0], -1).mean(axis=1).astype(np.float64)
                out[int(y[i])] = out.get(int(y[i]), 0) + v
            return out

        s, t = sums(xs, ys), sums(xt, yt)
    finally:
        handle.remove()
    angles = []
    for c in sorted(set(s) & set(t)):
        a, b = s[c] / np.linalg.norm(s[c]), t[c] / np.linalg.norm(t[c])
        angles.append(np.arccos(np.clip(np.dot(a, b), -1, 1)) / np.pi)
    return float(np.mean(angles))


@pytest.mark.parametrize("layer", ["conv1", "conv2", "fc"])
def test_dist_equals_independent_per_sample_implementation(model, layer):
    xs, ys = _data(1)
    xt, yt = _data(2)
    xt = xt * 1.5 + 0.3  # a shift
    expected = _reference_dist(model, layer, xs, ys, xt, yt)
    src, _ = class_sums(model, layer, _batches(xs, ys, 7), num_classes=4)
    tgt, _ = class_sums(model, layer, _batches(xt, yt, 16), num_classes=4)
    assert resque_dist(src.sums, tgt.sums).value == pytest.approx(expected, abs=1e-5)


def test_streaming_over_batches_equals_one_shot(model):
    x, y = _data(3)
    one, _ = class_sums(model, "conv2", [(x, y)], num_classes=4)
    for bs in (1, 4, 9, 13):
        many, _ = class_sums(model, "conv2", _batches(x, y, bs), num_classes=4)
        np.testing.assert_allclose(many.sums, one.sums, rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(many.counts, one.counts)


def test_identical_data_gives_zero(model):
    x, y = _data(4)
    a, _ = class_sums(model, "conv2", _batches(x, y, 8), num_classes=4)
    b, _ = class_sums(model, "conv2", _batches(x, y, 5), num_classes=4)
    assert resque_dist(a.sums, b.sums).value == pytest.approx(0.0, abs=1e-5)


def test_task_equals_sklearn_reference_exactly(model):
    x, y = _data(5, n=60, k=3)
    emb, _ = embeddings(model, "conv2", _batches(x, y, 11), flatten=True)
    with torch.no_grad():
        feats = {}
        h = model.conv2.register_forward_hook(lambda m, i, o: feats.__setitem__("a", o))
        model(x)
        h.remove()
    pooled = feats["a"].mean(dim=(2, 3)).numpy()
    np.testing.assert_allclose(emb.pooled, pooled, rtol=1e-5, atol=1e-6)
    centroids = np.stack([emb.pooled[emb.labels == c].mean(axis=0) for c in range(3)])
    ref = KMeans(n_clusters=3, init=centroids, n_init=1, random_state=0).fit_predict(emb.pooled)
    value = resque_task_variants(emb.pooled, emb.labels, flattened=emb.flattened, seed=0)
    assert value.value == 1 - adjusted_rand_score(emb.labels, ref)
    assert emb.flattened.shape == (60, 5 * 8 * 8)


def test_tap_stops_early_and_leaves_no_hooks(model):
    x, _ = _data(6)
    with tap(model, "conv1") as run:
        out = run(x)
    assert out.shape == (40, 6, 8, 8)
    assert model.fc_calls == 0  # the forward pass stopped after conv1
    assert all(not m._forward_hooks for m in model.modules())


def test_hooks_removed_even_when_the_body_raises(model):
    with pytest.raises(RuntimeError), tap(model, "conv2"):
        raise RuntimeError("boom")
    assert all(not m._forward_hooks for m in model.modules())


def test_unknown_layer_lists_close_names(model):
    msg = "unknown layer 'conv3'; closest: conv2, conv1; available: conv1, conv2, fc"
    with pytest.raises(LayerError) as err, tap(model, "conv3"):
        pass
    assert str(err.value) == msg


def test_other_threads_do_not_see_a_tap(model):
    x, _ = _data(7)
    results = {}

    def other():
        with torch.no_grad():
            results["other"] = model(x)  # runs the full model while a tap is open elsewhere

    with tap(model, "conv1") as run:
        t = threading.Thread(target=other)
        t.start()
        t.join()
        results["mine"] = run(x)
    assert results["other"].shape == (40, 4)
    assert results["mine"].shape == (40, 6, 8, 8)


def test_pool_shapes():
    assert pool(torch.ones(2, 3, 4, 5)).shape == (2, 3)
    tokens = torch.arange(24.0).reshape(1, 4, 6)
    assert torch.equal(pool(tokens), tokens.mean(dim=1))  # mean over tokens, not features
    assert pool(torch.ones(2, 7)).shape == (2, 7)
    with pytest.raises(ValueError):
        pool(torch.ones(2))


def test_training_mode_model_is_refused(model):
    model.train()
    x, y = _data(8)
    with pytest.raises(ValueError, match="eval mode"):
        class_sums(model, "conv1", [(x, y)], num_classes=4)
