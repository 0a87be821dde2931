"""Which candidates to retrain, and what the retrained runs say: the candidate suggestion, the
correlations of RESQUE (and every transferability score) with each measure, and the refit of
the calibrations from every stored validation run of one checkpoint and procedure."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from ..cost import calibration_rows, fit_model
from ..cost.predict import (
    MIN_POINTS,
    Calibration,
    fit_calibration,
    load_calibrations,
    save_calibrations,
)
from ..errors import ConfigError, ResqueError
from ..kinds import ESTIMATOR_KINDS
from ..scoring.transfer import TRANSFER_SCORES
from ..store.cache import default_cache_dir
from ..store.runs import RunStore

__all__ = [
    "MEASURES",
    "correlations",
    "recalibrate",
    "score_correlations",
    "suggest_candidates",
]

MEASURES: tuple[str, ...] = ("epochs", "grad_norm", "param_change", "energy_kwh", "co2_kg")
"""Run fields correlated with RESQUE, in table order."""


# ----------------------------------------------------------------------------- selection
def suggest_candidates(scores: Sequence[tuple[str, str, float]], n: int) -> list[str]:
    """Ids of ``n`` candidates spread over the RESQUE range of each kind.

    ``scores``: (candidate id, kind "dist" | "task", RESQUE) of the scored candidates. ``n`` is
    shared between kinds in proportion to their sizes, at least one each while ``n`` allows;
    within a kind the picks are the candidates nearest to evenly spaced RESQUE values from the
    lowest to the highest (one pick: the median). Order: by kind, then RESQUE.
    """
    if n < 1:
        raise ConfigError(f"the number of candidates to retrain must be at least 1, got {n}")
    by_kind: dict[str, list[tuple[str, float]]] = {}
    for cid, kind, value in scores:
        by_kind.setdefault(kind, []).append((cid, float(value)))
    if not by_kind:
        return []
    sizes = {k: len(v) for k, v in by_kind.items()}
    total = sum(sizes.values())
    n = min(n, total)
    share = dict.fromkeys(sizes, 0)
    for k in sorted(sizes, key=lambda k: -sizes[k])[:n]:
        share[k] = 1
    left = n - sum(share.values())
    if left:
        # largest remainder over what each kind can still take
        quota = {k: left * sizes[k] / total for k in sizes}
        for k in sizes:
            share[k] += min(int(quota[k]), sizes[k] - share[k])
        rest = n - sum(share.values())
        for k in sorted(sizes, key=lambda k: -(quota[k] - int(quota[k]))):
            while rest and share[k] < sizes[k]:
                share[k] += 1
                rest -= 1
    picked: list[str] = []
    for kind in sorted(by_kind):
        ranked = sorted(by_kind[kind], key=lambda p: p[1])
        k = share[kind]
        if k == 0:
            continue
        values = np.array([v for _cid, v in ranked])
        targets = [float(np.median(values))] if k == 1 else np.linspace(values[0], values[-1], k)
        free = list(range(len(ranked)))
        chosen = []
        for t in targets:
            best = min(free, key=lambda i: (abs(values[i] - t), i))
            free.remove(best)
            chosen.append(best)
        picked += [ranked[i][0] for i in sorted(chosen)]
    return picked


# ----------------------------------------------------------------------------- statistics
def _corr(x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    n = len(x)
    out: dict[str, Any] = {"n": n}
    if n < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        for name in ("pearson", "spearman", "kendall"):
            out[name] = None
            out[f"{name}_p"] = None
        out["note"] = "needs 3+ runs with varying values"
        return out
    for name, fn in (
        ("pearson", stats.pearsonr),
        ("spearman", stats.spearmanr),
        ("kendall", stats.kendalltau),
    ):
        res = fn(x, y)
        out[name] = float(res.statistic)
        out[f"{name}_p"] = float(res.pvalue)
    return out


def correlations(runs: Sequence[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """{kind: {measure: {n, pearson, spearman, kendall, *_p}}} of RESQUE against each of
    :data:`MEASURES`, over the finished runs (run documents as in :meth:`ValidationRun.to_dict`).
    Kinds are kept apart: RESQUE_dist and RESQUE_task are on different scales."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for kind in ESTIMATOR_KINDS:
        rows = [
            r
            for r in runs
            if r["kind"] == kind and r["status"] == "completed" and r["resque"] is not None
        ]
        if not rows:
            continue
        x = np.array([r["resque"] for r in rows], dtype=np.float64)
        out[kind] = {}
        for m in MEASURES:
            pairs = [(xi, r[m]) for xi, r in zip(x, rows, strict=True) if r[m] is not None]
            xs = np.array([p[0] for p in pairs], dtype=np.float64)
            ys = np.array([p[1] for p in pairs], dtype=np.float64)
            out[kind][m] = _corr(xs, ys)
    return out


def score_correlations(
    runs: Sequence[dict[str, Any]],
) -> dict[str, dict[str, dict[str, dict[str, Any]]]]:
    """{kind: {score: {measure: {n, pearson, spearman, kendall, *_p}}}}: RESQUE (``"resque"``)
    and every transferability score (:data:`~resque_core.scoring.transfer.TRANSFER_SCORES`)
    side by side against each of :data:`MEASURES`, over the finished runs. The signs differ:
    RESQUE is lower-is-better, the others higher-is-better, so a score that predicts cost well
    correlates positively (RESQUE) or negatively (the others) with epochs. A score absent from
    every run of a kind is left out."""
    out: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
    for kind in ESTIMATOR_KINDS:
        rows = [r for r in runs if r["kind"] == kind and r["status"] == "completed"]
        if not rows:
            continue
        out[kind] = {}
        for name in ("resque", *TRANSFER_SCORES):
            values = [
                r.get("resque") if name == "resque" else (r.get("transfer") or {}).get(name)
                for r in rows
            ]
            if all(v is None for v in values):
                continue
            out[kind][name] = {}
            for m in MEASURES:
                pairs = [
                    (v, r[m])
                    for v, r in zip(values, rows, strict=True)
                    if v is not None and r.get(m) is not None
                ]
                xs = np.array([p[0] for p in pairs], dtype=np.float64)
                ys = np.array([p[1] for p in pairs], dtype=np.float64)
                out[kind][name][m] = _corr(xs, ys)
    return out


def _calibration_points(doc: dict[str, Any], key: str) -> dict[str, list[tuple[float, int]]]:
    points: dict[str, list[tuple[float, int]]] = {k: [] for k in ESTIMATOR_KINDS}
    if doc.get("type") != "validation" or doc.get("calibration_key") != key:
        return points
    for r in doc.get("runs", []):
        usable = r.get("status") == "completed" and not r.get("censored")
        if usable and r.get("resque") is not None and r.get("epochs") is not None:
            points[r["kind"]].append((float(r["resque"]), int(r["epochs"])))
    return points


def recalibrate(
    runs: RunStore,
    key: str,
    *,
    cache_dir: str | os.PathLike | None = None,
    extra: Sequence[dict[str, Any]] = (),
) -> dict[str, Calibration]:
    """Fit each kind's calibration on every stored validation run with calibration ``key``
    (plus ``extra`` documents not stored yet), save the fits to ``cache_dir`` and return them;
    a kind with fewer than :data:`MIN_POINTS` usable runs keeps its prior."""
    points: dict[str, list[tuple[float, int]]] = {k: [] for k in ESTIMATOR_KINDS}
    rows: dict[str, list[dict[str, Any]]] = {k: [] for k in ESTIMATOR_KINDS}
    docs = [*(_safe_load(runs, rid) for rid in runs.list()), *extra]
    ids = []
    for doc in docs:
        if doc is None:
            continue
        got = _calibration_points(doc, key)
        if any(got.values()):
            ids.append(doc.get("run_id"))
        for kind in points:
            points[kind] += got[kind]
            rows[kind] += calibration_rows(doc, key)[kind]
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    fitted = load_calibrations(cache, key)
    for kind, pts in points.items():
        source = f"{len(pts)} measured retrains from {len(ids)} validation run(s)"
        try:
            # runs that recorded their signals: the form with the best leave-one-out error
            fitted[kind] = fit_model(kind, rows[kind], source=source)
            continue
        except ConfigError:
            pass
        if len(pts) >= MIN_POINTS and len({p[0] for p in pts}) >= 2:
            x, y = zip(*pts, strict=True)
            fitted[kind] = fit_calibration(
                x,
                y,
                kind=kind,
                source=f"fit on {len(pts)} measured retrains from {len(ids)} validation run(s)",
            )
    save_calibrations(cache, key, fitted, meta={"runs": [i for i in ids if i]})
    return fitted


def _safe_load(runs: RunStore, run_id: str) -> dict[str, Any] | None:
    try:
        return runs.load(run_id)
    except (ResqueError, OSError, ValueError):
        return None
