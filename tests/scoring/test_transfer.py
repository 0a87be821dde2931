"""Transferability scores against direct transcriptions of the papers' formulas, and the
properties the papers state."""

from __future__ import annotations

import math

import numpy as np
import pytest

from resque_core.errors import DataError
from resque_core.scoring import transfer as tr


def _data(n=60, d=5, k=3, sep=1.0, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    rng.shuffle(y)
    centres = rng.normal(size=(k, d)) * sep
    return centres[y] + rng.normal(size=(n, d)), y


# ----------------------------------------------------------------------------- transcriptions
def naive_logme(f, y):
    """Per class: the fixed point with explicit matrices A = alpha I + beta F^T F."""
    f = np.asarray(f, dtype=np.float64)
    n, d = f.shape
    out = []
    for c in np.unique(y):
        t = (y == c).astype(np.float64)
        alpha, beta = 1.0, 1.0
        for _ in range(500):
            a = alpha * np.eye(d) + beta * f.T @ f
            m = beta * np.linalg.solve(a, f.T @ t)
            gamma = d - alpha * np.trace(np.linalg.inv(a))
            res = float(np.sum((f @ m - t) ** 2))
            alpha_new = gamma / float(m @ m)
            beta_new = (n - gamma) / res
            if abs(alpha_new - alpha) < 1e-10 * alpha and abs(beta_new - beta) < 1e-10 * beta:
                alpha, beta = alpha_new, beta_new
                break
            alpha, beta = alpha_new, beta_new
        out.append(_evidence(f, t, alpha, beta) / n)
    return float(np.mean(out))


def _evidence(f, t, alpha, beta):
    n, d = f.shape
    a = alpha * np.eye(d) + beta * f.T @ f
    m = beta * np.linalg.solve(a, f.T @ t)
    return (
        n / 2 * math.log(beta)
        + d / 2 * math.log(alpha)
        - n / 2 * math.log(2 * math.pi)
        - beta / 2 * float(np.sum((f @ m - t) ** 2))
        - alpha / 2 * float(m @ m)
        - 0.5 * np.linalg.slogdet(a)[1]
    )


def naive_leep(probs, y):
    n, z = probs.shape
    classes = sorted(set(y.tolist()))
    joint = {(c, j): 0.0 for c in classes for j in range(z)}
    for i in range(n):
        for j in range(z):
            joint[(y[i], j)] += probs[i, j] / n
    marg = [sum(joint[(c, j)] for c in classes) for j in range(z)]
    total = 0.0
    for i in range(n):
        s = sum(joint[(y[i], j)] / marg[j] * probs[i, j] for j in range(z))
        total += math.log(s)
    return total / n


def naive_nce(z, y):
    n = len(y)
    pairs = {}
    for a, b in zip(z.tolist(), y.tolist(), strict=True):
        pairs[(a, b)] = pairs.get((a, b), 0) + 1
    pz = {}
    for (a, _b), c in pairs.items():
        pz[a] = pz.get(a, 0) + c
    return sum(c / n * math.log(c / pz[a]) for (a, _b), c in pairs.items())


def _cov(f):
    n, d = f.shape
    mu = [sum(f[i, j] for i in range(n)) / n for j in range(d)]
    c = np.zeros((d, d))
    for i in range(n):
        for a in range(d):
            for b in range(d):
                c[a, b] += (f[i, a] - mu[a]) * (f[i, b] - mu[b]) / n
    return c, np.array(mu)


def _between(f, y):
    n, d = f.shape
    _, mu = _cov(f)
    g = np.zeros((n, d))
    for c in np.unique(y):
        g[y == c] = f[y == c].mean(axis=0)
    cb = np.zeros((d, d))
    for i in range(n):
        cb += np.outer(g[i] - mu, g[i] - mu) / n
    return cb


def naive_h_score(f, y):
    c, _ = _cov(f)
    return float(np.trace(np.linalg.pinv(c) @ _between(f, y)))


def naive_shrinkage_h_score(f, y):
    n, d = f.shape
    s, mu = _cov(f)
    z = f - mu
    m = np.trace(s) / d
    d2 = np.sum((s - m * np.eye(d)) ** 2)
    b2 = sum(np.sum((np.outer(z[i], z[i]) - s) ** 2) for i in range(n)) / n**2
    a = min(b2, d2) / d2
    shrunk = (1 - a) * s + a * m * np.eye(d)
    return float(np.trace(np.linalg.inv(shrunk) @ ((1 - a) * _between(f, y))))


def naive_transrate(f, y, eps):
    z = f - f.mean(axis=0)
    n, d = z.shape

    def rate(x):
        return 0.5 * np.linalg.slogdet(np.eye(d) + d / (len(x) * eps**2) * x.T @ x)[1]

    return rate(z) - sum(np.mean(y == c) * rate(z[y == c]) for c in np.unique(y))


def naive_gbc(f, y, dim):
    z = f - f.mean(axis=0)
    vals, vecs = np.linalg.eigh(np.cov(z.T, bias=True))
    order = np.argsort(vals)[::-1][:dim]
    p = z @ vecs[:, order]
    classes = np.unique(y)
    stats = {c: (p[y == c].mean(axis=0), p[y == c].var(axis=0, ddof=1)) for c in classes}
    total = 0.0
    for ci in classes:
        for cj in classes:
            if ci == cj:
                continue
            (m1, v1), (m2, v2) = stats[ci], stats[cj]
            db = 0.0
            for t in range(p.shape[1]):
                s = (v1[t] + v2[t]) / 2
                db += (m1[t] - m2[t]) ** 2 / (8 * s) + 0.5 * math.log(s / math.sqrt(v1[t] * v2[t]))
            total += math.exp(-db)
    return -total


# ----------------------------------------------------------------------------- agreement
@pytest.mark.parametrize("seed", [0, 1])
def test_logme_matches_explicit_fixed_point(seed):
    f, y = _data(n=50, d=6, k=3, seed=seed)
    assert tr.logme(f, y) == pytest.approx(naive_logme(f, y), rel=1e-6)


def test_logme_both_decompositions_agree():
    f, y = _data(n=30, d=6, k=3, seed=2)
    m = tr._Moments(f, y)
    assert tr._logme(m, dual=True) == pytest.approx(tr._logme(m, dual=False), rel=1e-8)


def test_logme_when_features_outnumber_samples_is_finite():
    # N < D: the features can interpolate a label column, and the noise precision grows
    # without bound; the iteration stops at a cap and the value stays finite and stable.
    f, y = _data(n=12, d=20, k=3, seed=2)
    value = tr.logme(f, y)
    assert np.isfinite(value)
    assert tr.logme(f * 1.0000001, y) == pytest.approx(value, rel=1e-3)


def test_logme_is_a_maximum_of_the_evidence():
    """The fixed point maximises the evidence: no (alpha, beta) on a wide grid does better."""
    f, y = _data(n=40, d=4, k=2, seed=3)
    grid = np.geomspace(1e-3, 1e3, 25)
    for col in ((y == 0).astype(float), (y == 1).astype(float)):
        peak = _one_column_logme(f, col)
        best = max(_evidence(f, col, a, b) / len(y) for a in grid for b in grid)
        assert peak >= best - 1e-9
        assert peak < best + 0.05  # and the grid gets close to it


def _one_column_logme(f, col):
    y2 = float(col @ col)
    sigma, v = np.linalg.eigh(f.T @ f)
    x2 = (v.T @ (f.T @ col)) ** 2 / sigma
    return tr._logme_one(sigma, x2, y2, *f.shape)


def test_logme_higher_for_separable_labels():
    f, y = _data(n=80, d=5, k=2, sep=6.0, seed=4)
    shuffled = np.random.default_rng(0).permutation(y)
    assert tr.logme(f, y) > tr.logme(f, shuffled) + 0.05
    far, _ = _data(n=80, d=5, k=2, sep=12.0, seed=4)
    assert tr.logme(far, y) > tr.logme(f, y)


def test_leep_matches_transcription():
    rng = np.random.default_rng(5)
    logits = rng.normal(size=(30, 4))
    y = rng.integers(0, 3, 30)
    probs = tr.softmax(logits)
    assert tr.leep(logits, y) == pytest.approx(naive_leep(probs, y), rel=1e-10)
    assert tr.leep(probs, y, probabilities=True) == pytest.approx(naive_leep(probs, y))


def test_leep_of_a_perfect_source_classifier_is_zero():
    z = np.arange(40) % 5
    probs = np.eye(5)[z]
    y = z // 2  # each target label is a function of the source label
    assert tr.leep(probs, y, probabilities=True) == pytest.approx(0.0, abs=1e-12)
    # a one-hot source: LEEP equals NCE (Nguyen et al., section 4)
    y2 = np.random.default_rng(1).integers(0, 3, 40)
    assert tr.leep(probs, y2, probabilities=True) == pytest.approx(tr.nce(z, y2))


def test_leep_is_at_most_zero_and_above_nce_bound():
    rng = np.random.default_rng(6)
    logits = rng.normal(size=(50, 6)) * 3
    y = rng.integers(0, 4, 50)
    value = tr.leep(logits, y)
    assert value <= 0
    # Nguyen et al., Theorem 1: LEEP >= NCE + mean log theta(z_i) of the argmax labels
    probs = tr.softmax(logits)
    z = probs.argmax(axis=1)
    bound = tr.nce(z, y) + float(np.mean(np.log(probs[np.arange(50), z])))
    assert value >= bound - 1e-12


def test_nce_matches_transcription_and_bounds():
    rng = np.random.default_rng(7)
    z = rng.integers(0, 5, 70)
    y = rng.integers(0, 3, 70)
    assert tr.nce(z, y) == pytest.approx(naive_nce(z, y), rel=1e-12)
    assert tr.nce(z, y) <= 0
    assert tr.nce(y * 7 + 1, y) == pytest.approx(0.0, abs=1e-12)  # Z determines Y


def test_h_score_matches_transcription():
    f, y = _data(n=30, d=4, k=3, seed=8)
    assert tr.h_score(f, y) == pytest.approx(naive_h_score(f, y), rel=1e-9)


def test_h_score_singular_covariance_uses_pseudo_inverse():
    f, y = _data(n=30, d=4, k=3, seed=9)
    f = np.hstack([f, f[:, :1] * 2.0])  # a dependent column: singular covariance
    assert tr.h_score(f, y) == pytest.approx(naive_h_score(f, y), rel=1e-6)


def test_h_score_invariance_and_range():
    f, y = _data(n=60, d=5, k=4, seed=10)
    value = tr.h_score(f, y)
    assert 0 <= value <= 3 + 1e-9
    a = np.random.default_rng(1).normal(size=(5, 5)) + 3 * np.eye(5)  # invertible
    assert tr.h_score(f * 1000.0, y) == pytest.approx(value, rel=1e-9)
    assert tr.h_score(f @ a + 7.0, y) == pytest.approx(value, rel=1e-7)
    # Features that are their class means: K - 1, the maximum
    centres = np.random.default_rng(2).normal(size=(4, 5))
    assert tr.h_score(centres[y], y) == pytest.approx(3.0, rel=1e-6)


def test_shrinkage_h_score_matches_transcription_and_is_scale_free():
    f, y = _data(n=25, d=6, k=3, seed=11)
    value = tr.shrinkage_h_score(f, y)
    assert value == pytest.approx(naive_shrinkage_h_score(f, y), rel=1e-9)
    assert tr.shrinkage_h_score(f * 0.01, y) == pytest.approx(value, rel=1e-9)
    assert 0 <= value <= 2


def test_ledoit_wolf_intensity_matches_scikit_learn():
    from sklearn.covariance import ledoit_wolf

    f, y = _data(n=40, d=8, k=2, seed=12)
    m = tr._Moments(f, y)
    expected = ledoit_wolf(f - f.mean(axis=0), assume_centered=True)[1]
    assert tr._ledoit_wolf_shrinkage(m) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("shape", [(50, 4), (9, 12)])
def test_transrate_matches_transcription(shape):
    n, d = shape
    f, y = _data(n=n, d=d, k=3, seed=13)
    for eps in (1e-2, 1.0):
        expected = naive_transrate(f, y, eps)
        assert tr.transrate(f, y, eps=eps) == pytest.approx(expected, rel=1e-9)


def test_transrate_is_non_negative_and_grows_with_separation():
    near, y = _data(n=90, d=4, k=3, sep=0.5, seed=14)
    far, _ = _data(n=90, d=4, k=3, sep=5.0, seed=14)
    assert tr.transrate(near, y) >= 0
    assert tr.transrate(far, y) > tr.transrate(near, y)


@pytest.mark.parametrize("dim", [2, 64])
def test_gbc_matches_transcription(dim):
    f, y = _data(n=45, d=5, k=3, sep=1.5, seed=15)
    assert tr.gbc(f, y, dim=dim) == pytest.approx(naive_gbc(f, y, dim), rel=1e-9)


def test_gbc_range_and_separation():
    near, y = _data(n=60, d=4, k=3, sep=0.3, seed=16)
    far, _ = _data(n=60, d=4, k=3, sep=20.0, seed=16)
    assert -6 <= tr.gbc(near, y) < tr.gbc(far, y) <= 0
    assert tr.gbc(far, y) == pytest.approx(0.0, abs=1e-3)


def test_all_scores_together_equal_each_alone():
    f, y = _data(n=60, d=5, k=3, seed=17)
    logits = np.random.default_rng(3).normal(size=(60, 4))
    together = tr.transfer_scores(f, y, logits)
    assert set(together) == set(tr.TRANSFER_SCORES)
    alone = {
        "logme": tr.logme(f, y),
        "leep": tr.leep(logits, y),
        "nce": tr.nce(logits.argmax(axis=1), y),
        "h_score": tr.h_score(f, y),
        "shrinkage_h_score": tr.shrinkage_h_score(f, y),
        "transrate": tr.transrate(f, y),
        "gbc": tr.gbc(f, y),
    }
    assert together == pytest.approx(alone, rel=1e-12)
    assert set(tr.transfer_scores(f, y)) == set(tr.TRANSFER_SCORES) - {"leep", "nce"}


def test_float32_features_agree_with_float64():
    f, y = _data(n=200, d=16, k=4, seed=19)
    logits = np.random.default_rng(4).normal(size=(200, 5))
    wide = tr.transfer_scores(f, y, logits)
    narrow = tr.transfer_scores(f.astype(np.float32), y, logits.astype(np.float32))
    assert narrow == pytest.approx(wide, rel=1e-4, abs=1e-6)


def test_labels_may_be_any_integers():
    f, y = _data(n=40, d=3, k=2, seed=18)
    assert tr.transfer_scores(f, y * 10 + 3) == pytest.approx(tr.transfer_scores(f, y))


def test_bad_inputs_are_named():
    f, y = _data(n=20, d=3, k=2)
    with pytest.raises(ValueError, match="labels must be"):
        tr.logme(f, y[:-1])
    with pytest.raises(ValueError, match="features must be"):
        tr.h_score(f[:, 0], y)
    with pytest.raises(DataError, match="at least 2 classes"):
        tr.transrate(f, np.zeros(20, dtype=int))
    bad = f.copy()
    bad[0, 0] = np.nan
    with pytest.raises(DataError, match="NaN"):
        tr.gbc(bad, y)
    with pytest.raises(ValueError, match="unknown transferability"):
        tr.transfer_scores(f, y, names=("bogus",))
    # a class of one sample: GBC cannot fit its variance and is left out, the rest are kept
    y1 = y.copy()
    y1[0] = 5
    got = tr.transfer_scores(f, y1)
    assert "gbc" not in got and "logme" in got


def test_every_score_is_declared_higher_is_better():
    assert all(s.higher_is_better for s in tr.TRANSFER_SCORES.values())
    assert tr.TRANSFER_SCORES["gbc"].direction == "higher is better"


# ----------------------------------------------------------------------------- in the scorer
def _scorer(ckpt, tmp_path, **kw):
    from resque_core.scoring.scorer import ModelConfig, RunConfig, Scorer
    from resque_core.store.cache import ResultStore

    cfg = ModelConfig(ckpt, arch="small_cnn", in_channels=1)
    run = RunConfig(samples_per_class=20, flatten=False)
    return Scorer(cfg, run, store=ResultStore(tmp_path / "c"), source_data="builtin:digits", **kw)


def test_task_scores_come_from_the_same_pass_and_are_cached(digits_checkpoint, tmp_path):
    import torch

    from resque_core.scoring import features

    scorer = _scorer(digits_checkpoint, tmp_path)
    score = scorer.score_task("builtin:digits")
    assert set(score.transfer) == set(tr.TRANSFER_SCORES)
    # The same embeddings and logits, taken by hand, give the same values.
    task = scorer.dataset("builtin:digits")
    pre = scorer.preprocess(task)
    idx = scorer._select(task)
    emb, _ = features.embeddings(
        scorer.checkpoint().model,
        score.layer,
        scorer._batches(task, idx, pre, None, "task"),
        outputs=True,
    )
    with torch.inference_mode():
        logits = scorer.checkpoint().model(
            pre.normalize(pre.to_unit(task.images[torch.from_numpy(idx)], device=scorer.device))
        )
    np.testing.assert_allclose(emb.outputs, logits.numpy(), rtol=1e-5, atol=1e-5)
    assert score.transfer == pytest.approx(
        tr.transfer_scores(emb.pooled, emb.labels, logits.numpy())
    )
    # A new scorer on the same cache: RESQUE and every score are served without a pass.
    again = _scorer(digits_checkpoint, tmp_path)
    calls = []
    again._batches = lambda *a, **k: calls.append(a) or iter(())
    hit = again.score_task("builtin:digits")
    assert hit.cached and not calls
    assert hit.transfer == pytest.approx(score.transfer)
    assert hit.value == score.value


def test_scores_filled_in_for_a_stored_resque_and_left_out_when_off(digits_checkpoint, tmp_path):
    plain = _scorer(digits_checkpoint, tmp_path, transfer=False)
    first = plain.score_task("builtin:digits")
    assert first.transfer == {}
    later = _scorer(digits_checkpoint, tmp_path).score_task("builtin:digits")
    assert later.cached and later.value == first.value  # RESQUE from the store, unchanged
    assert set(later.transfer) == set(tr.TRANSFER_SCORES)


def test_shift_scores_use_the_shifted_pass(digits_checkpoint, tmp_path):
    scorer = _scorer(digits_checkpoint, tmp_path)
    mild = scorer.score_shift("builtin:digits", "gaussian_noise:1")
    harsh = scorer.score_shift("builtin:digits", "gaussian_noise:5")
    assert set(mild.transfer) == set(tr.TRANSFER_SCORES)
    # the source classifier's LEEP on its own label space drops as the noise grows
    assert harsh.transfer["leep"] < mild.transfer["leep"]
    off = _scorer(digits_checkpoint, tmp_path / "other", transfer=False)
    assert off.score_shift("builtin:digits", "gaussian_noise:1").value == mild.value
