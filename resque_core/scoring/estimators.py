"""RESQUE estimators as pure functions on features (numpy in, floats out).

Definitions follow Sangarya & Kim, AAAI 2025, as fixed by the authors' reference code
(see METHOD.md in the project docs):

* RESQUE_dist: for every class c present in both sets, the angle between the per-class sums of
  pooled activations on the source and on the shifted data, ``arccos(<s_c/|s_c|, s'_c/|s'_c|>)/pi``
  in [0, 1]; the index is the mean over those classes. Sums and means give the same angle, so the
  sums can be accumulated batch by batch (:func:`resque_core.scoring.features.class_sums` fills a
  :class:`ClassSums`).
* RESQUE_task: k-means with K clusters on the new task's embeddings, initialised at the true class
  centroids (one init, Lloyd), and ``1 - ARI(true labels, cluster labels)``. K, the work of one
  iteration, the number of iterations and the seconds are bounded (:mod:`resque_core.limits`).
  The reference also reports k-means++ initialisation and un-pooled (flattened) embeddings: both
  initialisations are returned, on flattened embeddings too when they are given (the scorer's
  ``run.flatten``); the headline value is centroid init on pooled embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from .. import limits
from ..errors import DataError

__all__ = [
    "ClassSums",
    "DistValue",
    "TaskValue",
    "class_angles",
    "resque_dist",
    "resque_task",
    "resque_task_variants",
]

TaskInit = Literal["centroid", "k-means++"]
_INITS: tuple[str, ...] = ("centroid", "k-means++")


class ClassSums:
    """Per-class sums of feature vectors: ``sums`` float64 [K, D], ``counts`` int64 [K], zero
    at first. :func:`resque_core.scoring.features.class_sums` adds each batch on the model's device;
    memory is O(K x D) whatever the number of samples.
    """

    def __init__(self, num_classes: int, dim: int):
        self.sums = np.zeros((num_classes, dim), dtype=np.float64)
        self.counts = np.zeros(num_classes, dtype=np.int64)


@dataclass(frozen=True)
class DistValue:
    """RESQUE_dist and its per-class angles (class index -> angle / pi, in [0, 1])."""

    value: float
    per_class: dict[int, float]


@dataclass(frozen=True)
class TaskValue:
    """RESQUE_task: headline ``value`` plus every computed variant and per-class breakdown.

    ``variants`` maps ``"<init>/<features>"`` (init in centroid | k-means++, features in pooled |
    flattened) to ``1 - ARI``. ``per_class[k]`` is the fraction of class k's samples that the
    centroid-initialised clustering (pooled) put outside cluster k, the cluster seeded at class k's
    centroid: 0 when the class stays whole.
    """

    value: float
    variants: dict[str, float]
    per_class: dict[int, float] = field(default_factory=dict)


def class_angles(source_sums: np.ndarray, target_sums: np.ndarray) -> dict[int, float]:
    """Angle / pi between matching rows of two [K, D] sum matrices, for the rows non-zero in both.

    A class with no samples (zero row) on either side is left out.
    """
    s = np.asarray(source_sums, dtype=np.float64)
    t = np.asarray(target_sums, dtype=np.float64)
    if s.ndim != 2 or s.shape != t.shape:
        raise ValueError(
            f"source and target sums must be equal [K, D] arrays: {s.shape} vs {t.shape}"
        )
    ns = np.linalg.norm(s, axis=1)
    nt = np.linalg.norm(t, axis=1)
    out: dict[int, float] = {}
    for c in np.flatnonzero((ns > 0) & (nt > 0)):
        cos = float(np.dot(s[c] / ns[c], t[c] / nt[c]))
        out[int(c)] = float(np.arccos(np.clip(cos, -1.0, 1.0)) / np.pi)
    return out


def resque_dist(source_sums: np.ndarray, target_sums: np.ndarray) -> DistValue:
    """RESQUE_dist from per-class activation sums ([K, D] each; rows = classes).

    Returns the mean angle / pi over classes present in both sets, in [0, 1].
    """
    per_class = class_angles(source_sums, target_sums)
    if not per_class:
        raise DataError(
            "no class is present in both the source and the shifted data: "
            "check that both use the same label space"
        )
    return DistValue(value=float(np.mean(list(per_class.values()))), per_class=per_class)


def _check_task_inputs(embeddings: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(embeddings)
    y = np.asarray(labels)
    if x.ndim != 2:
        raise ValueError(f"embeddings must be [N, D], got shape {x.shape}")
    if y.shape != (x.shape[0],):
        raise ValueError(f"labels must be [N] = [{x.shape[0]}], got shape {y.shape}")
    classes = np.unique(y)
    if classes.size < 2:
        raise DataError(
            f"a new task needs at least 2 classes to cluster; the data has {classes.size} "
            "(check the labels of the task data)"
        )
    if x.shape[0] <= classes.size:
        raise DataError(
            f"a new task needs more samples ({x.shape[0]}) than classes ({classes.size}) "
            "to cluster; raise samples per class"
        )
    limits.check_kmeans_work(x.shape[0], x.shape[1], classes.size)
    return x, y


def _cluster(x: np.ndarray, y: np.ndarray, init: TaskInit, seed: int) -> np.ndarray:
    from sklearn.cluster import KMeans  # imported on use: a cached request never needs it

    classes = np.unique(y)
    if init == "centroid":
        start: np.ndarray | str = np.stack([x[y == c].mean(axis=0) for c in classes])
    elif init == "k-means++":
        start = "k-means++"
    else:
        raise ValueError(f"init must be one of {_INITS}, got {init!r}")
    # Lloyd iterations in chunks, each continuing from the last centres, so that the clock can
    # be read in between; a run that fits in one chunk is one plain fit.
    clock = limits.KMeansClock(x.shape[0], x.shape[1], classes.size)
    while True:
        chunk = clock.next_chunk()
        km = KMeans(
            n_clusters=classes.size, init=start, n_init=1, max_iter=chunk, random_state=seed
        ).fit(x)
        if km.n_iter_ < chunk:  # converged before the chunk ran out
            return km.labels_
        clock.advance(km.n_iter_)
        if clock.exhausted:
            return km.labels_
        start = km.cluster_centers_


def resque_task(
    embeddings: np.ndarray, labels: np.ndarray, *, init: TaskInit = "centroid", seed: int = 0
) -> float:
    """RESQUE_task = 1 - ARI(labels, k-means clusters) for embeddings [N, D] and labels [N].

    K = number of distinct labels. ``init="centroid"`` seeds cluster k at the mean embedding of
    the k-th smallest label (one init, Lloyd iterations); ``"k-means++"`` uses scikit-learn's
    k-means++ seeding with ``seed``. Values lie in [0, 2) (ARI can be negative); 0 means the
    embeddings already separate the new classes perfectly.
    """
    from sklearn.metrics import adjusted_rand_score

    x, y = _check_task_inputs(embeddings, labels)
    return float(1.0 - adjusted_rand_score(y, _cluster(x, y, init, seed)))


def resque_task_variants(
    pooled: np.ndarray,
    labels: np.ndarray,
    *,
    flattened: np.ndarray | None = None,
    seed: int = 0,
) -> TaskValue:
    """All RESQUE_task variants: {centroid, k-means++} x {pooled, flattened (if given)}.

    ``pooled`` is [N, C] (spatially averaged activations); ``flattened`` is [N, C*H*W] or None.
    The headline ``value`` is centroid init on pooled embeddings.
    """
    from sklearn.metrics import adjusted_rand_score

    x, y = _check_task_inputs(pooled, labels)
    classes = np.unique(y)
    variants: dict[str, float] = {}
    clusters = _cluster(x, y, "centroid", seed)
    variants["centroid/pooled"] = float(1.0 - adjusted_rand_score(y, clusters))
    variants["k-means++/pooled"] = resque_task(x, y, init="k-means++", seed=seed)
    if flattened is not None and flattened.shape == x.shape and np.array_equal(flattened, x):
        # A layer of 1 x 1 spatial size: the flattened embeddings are the pooled ones.
        for init in _INITS:
            variants[f"{init}/flattened"] = variants[f"{init}/pooled"]
    elif flattened is not None:
        for init in _INITS:
            variants[f"{init}/flattened"] = resque_task(flattened, y, init=init, seed=seed)
    per_class = {int(c): float(np.mean(clusters[y == c] != k)) for k, c in enumerate(classes)}
    return TaskValue(value=variants["centroid/pooled"], variants=variants, per_class=per_class)
