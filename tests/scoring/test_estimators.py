"""RESQUE estimators on hand-made features: definitions, properties and input checks."""

import re

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score

from resque_core.errors import DataError
from resque_core.scoring.estimators import (
    class_angles,
    resque_dist,
    resque_task,
    resque_task_variants,
)


def _blobs(rng, k=4, n=30, d=6, spread=0.3):
    centers = rng.normal(size=(k, d)) * 3
    y = np.repeat(np.arange(k), n)
    x = centers[y] + rng.normal(scale=spread, size=(k * n, d))
    return x, y


def test_angle_of_orthogonal_and_opposite_classes():
    s = np.array([[1.0, 0.0], [1.0, 0.0]])
    t = np.array([[0.0, 2.0], [-3.0, 0.0]])
    angles = class_angles(s, t)
    assert angles == pytest.approx({0: 0.5, 1: 1.0})
    assert resque_dist(s, t).value == pytest.approx(0.75)


def test_identical_sums_give_zero_and_scale_does_not_matter():
    rng = np.random.default_rng(0)
    s = rng.normal(size=(5, 8))
    assert resque_dist(s, s).value == pytest.approx(0.0, abs=1e-7)
    # sums vs means: scaling a class's sum leaves its angle unchanged
    assert resque_dist(s, s * np.array([[1], [2], [3], [4], [50]])).value == pytest.approx(
        0, abs=1e-7
    )


def test_classes_missing_on_one_side_are_left_out():
    s = np.array([[1.0, 0.0], [0.0, 0.0], [1.0, 1.0]])
    t = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 0.0]])
    value = resque_dist(s, t)
    assert value.per_class == {0: 0.0}


def test_no_common_class_is_a_data_error():
    with pytest.raises(DataError, match="no class is present in both"):
        resque_dist(np.array([[1.0, 0.0], [0.0, 0.0]]), np.array([[0.0, 0.0], [1.0, 1.0]]))


def test_dist_value_in_range_for_random_sums():
    rng = np.random.default_rng(1)
    for _ in range(20):
        v = resque_dist(rng.normal(size=(3, 4)), rng.normal(size=(3, 4))).value
        assert 0.0 <= v <= 1.0


def test_task_matches_sklearn_reference_exactly():
    rng = np.random.default_rng(3)
    x, y = _blobs(rng, spread=2.5)
    centroids = np.stack([x[y == c].mean(axis=0) for c in range(4)])
    ref = KMeans(n_clusters=4, init=centroids, n_init=1, random_state=0).fit_predict(x)
    assert resque_task(x, y, seed=0) == 1 - adjusted_rand_score(y, ref)
    ref_pp = KMeans(n_clusters=4, init="k-means++", n_init=1, random_state=0).fit_predict(x)
    assert resque_task(x, y, init="k-means++", seed=0) == 1 - adjusted_rand_score(y, ref_pp)


def test_task_perfect_separation_is_zero_and_noise_is_about_one():
    rng = np.random.default_rng(4)
    x, y = _blobs(rng, spread=0.01)
    assert resque_task(x, y) == pytest.approx(0.0, abs=1e-12)
    noise = rng.normal(size=x.shape)
    assert resque_task(noise, y) == pytest.approx(1.0, abs=0.1)


def test_task_invariant_to_renumbering_labels():
    rng = np.random.default_rng(5)
    x, y = _blobs(rng, spread=2.0)
    perm = np.array([2, 0, 3, 1])
    # Centroid init follows the label order, so a renaming permutes the initial centres only:
    # Lloyd converges to the same partition and ARI is label-permutation invariant.
    assert resque_task(x, perm[y]) == pytest.approx(resque_task(x, y), abs=1e-12)
    assert resque_task(x, y + 10) == pytest.approx(resque_task(x, y), abs=1e-12)


def test_task_variants_and_per_class():
    rng = np.random.default_rng(6)
    x, y = _blobs(rng, spread=0.01)
    flat = np.concatenate([x, x], axis=1)
    v = resque_task_variants(x, y, flattened=flat, seed=0)
    assert set(v.variants) == {
        "centroid/pooled",
        "k-means++/pooled",
        "centroid/flattened",
        "k-means++/flattened",
    }
    assert v.value == v.variants["centroid/pooled"] == pytest.approx(0.0, abs=1e-12)
    assert v.per_class == {0: 0.0, 1: 0.0, 2: 0.0, 3: 0.0}
    no_flat = resque_task_variants(x, y, seed=0)
    assert set(no_flat.variants) == {"centroid/pooled", "k-means++/pooled"}


def test_a_1x1_layer_reuses_the_pooled_clusterings_for_the_flattened_variants():
    rng = np.random.default_rng(7)
    x, y = _blobs(rng, spread=0.8)  # overlapping: values away from 0
    shared = resque_task_variants(x, y, flattened=x.copy(), seed=3)
    for init in ("centroid", "k-means++"):
        alone = resque_task(x, y, init=init, seed=3)
        assert shared.variants[f"{init}/flattened"] == alone
        assert shared.variants[f"{init}/pooled"] == alone


def test_single_class_task_is_rejected_with_a_clear_message():
    x = np.zeros((10, 3))
    y = np.zeros(10, dtype=int)
    msg = (
        "a new task needs at least 2 classes to cluster; the data has 1 "
        "(check the labels of the task data)"
    )
    with pytest.raises(DataError, match=re.escape(msg)):
        resque_task(x, y)


def test_task_needs_more_samples_than_classes():
    with pytest.raises(DataError, match="more samples"):
        resque_task(np.eye(2), np.array([0, 1]))
