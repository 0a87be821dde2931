"""Seeded index splits over labels [N]: stratified parts, per-class subsamples and the
clean/shifted roles of a synthetic shift."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import ConfigError, DataError

__all__ = ["stratified_split", "subsample_per_class", "synthetic_shift_roles"]


def _labels_1d(labels: np.ndarray) -> np.ndarray:
    y = np.asarray(labels)
    if y.ndim != 1:
        raise DataError(f"labels must be a 1-D array, got shape {y.shape}")
    return y


def stratified_split(
    labels: np.ndarray, fractions: Sequence[float] = (0.5, 0.3, 0.2), *, seed: int
) -> list[np.ndarray]:
    """Split sample indices into ``len(fractions)`` parts with every class's share.

    Per class (in sorted label order), a permutation from ``default_rng(seed)`` is cut at
    ``floor(n_c * cumulative fraction + 0.5)`` (round half up; the last cut is n_c), so each
    part holds ``n_c * fraction`` samples of class c within one. Every index lands in exactly one
    part; parts are sorted int64 arrays. ConfigError unless fractions are >= 0 and sum to 1.
    """
    fr = np.asarray(fractions, dtype=np.float64)
    if fr.ndim != 1 or len(fr) == 0 or (fr < 0).any() or abs(fr.sum() - 1) > 1e-9:
        raise ConfigError(
            f"split fractions must be non-negative numbers that sum to 1, got {tuple(fractions)}"
        )
    y = _labels_1d(labels)
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[] for _ in fr]
    cumulative = np.cumsum(fr)
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        cuts = np.floor(cumulative * len(idx) + 0.5).astype(np.int64)
        cuts[-1] = len(idx)
        for k, piece in enumerate(np.split(idx, cuts[:-1])):
            parts[k].append(piece)
    return [
        np.sort(np.concatenate(p)).astype(np.int64) if p else np.empty(0, np.int64) for p in parts
    ]


def subsample_per_class(labels: np.ndarray, n: int | None, *, seed: int) -> np.ndarray:
    """Sorted positions of at most ``n`` samples per class, drawn with ``default_rng(seed)``
    (classes in sorted order); ``None`` = all positions."""
    y = _labels_1d(labels)
    if n is None:
        return np.arange(len(y), dtype=np.int64)
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ConfigError(f"samples per class must be a positive integer or None, got {n!r}")
    rng = np.random.default_rng(seed)
    keep = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        keep.append(idx if len(idx) <= n else rng.choice(idx, size=n, replace=False))
    return np.sort(np.concatenate(keep)).astype(np.int64) if keep else np.empty(0, np.int64)


def synthetic_shift_roles(labels: np.ndarray, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The reference's roles for a synthetic shift, from a stratified 50/30/20 split:
    (clean = parts 0 + 2, shifted = parts 1 + 2), each sorted. Part 2 is in both roles."""
    first, second, shared = stratified_split(labels, (0.5, 0.3, 0.2), seed=seed)
    return np.sort(np.concatenate([first, shared])), np.sort(np.concatenate([second, shared]))
