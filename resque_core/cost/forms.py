"""Model forms for epochs from forward-pass signals, and the choice between them by
leave-one-out error.

Every form maps a candidate's :class:`~resque_core.cost.signals.Signals` (RESQUE, its per-class
spread, the source model's accuracy on the candidate before training, the shift family) to
predicted epochs, clipped at 0. The forms (:data:`FORMS`, simplest first):

- ``mean``: the mean of the measured epochs (the baseline every other form must beat);
- ``linear``: ``a + b x RESQUE``;
- ``gap``: ``a + b x gap``, gap = max(0, target accuracy - accuracy before training);
- ``monotone``: an increasing step fit in RESQUE (isotonic regression), flat beyond the
  measured range;
- ``resque_gap``: ``a + b x RESQUE + c x gap``;
- ``per_family``: ``a + b_f x RESQUE`` with a slope per shift family that has two or more
  measured runs, one shared slope for the rest (and for tasks and unseen families).

:func:`select_form` computes each applicable form's leave-one-out (LOO) predictions: each
measured run predicted by the form fitted on the others. A form needs more runs than it has
parameters (so that every LOO fit is determined) and the signals it reads. The chosen form has
the lowest LOO mean absolute error, except that a form with more parameters must beat the best
simpler one by :data:`SIMPLER_MARGIN`; with few runs a flexible form's lower error is mostly
luck. The LOO residuals of the chosen form are what :mod:`resque_core.cost.conformal` turns
into intervals.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConfigError
from .signals import Signals

__all__ = ["FORMS", "SIMPLER_MARGIN", "Form", "FormChoice", "predict_form", "select_form"]

SIMPLER_MARGIN = 0.05
"""A form with more parameters is chosen only if its LOO MAE is this fraction below the best
form with fewer parameters."""

Params = dict[str, Any]


@dataclass(frozen=True)
class Form:
    """One documented model form: ``fit(signals, epochs) -> params``, ``predict(params,
    signals) -> epochs`` (unclipped); ``n_params`` of the fit; ``needs_gap``: reads the
    accuracy before training (unusable when a run lacks it)."""

    name: str
    doc: str
    n_params: Callable[[Sequence[Signals]], int]
    fit: Callable[[Sequence[Signals], np.ndarray], Params]
    predict: Callable[[Params, Signals], float]
    needs_gap: bool = False


def _lstsq(columns: list[np.ndarray], y: np.ndarray) -> list[float]:
    design = np.column_stack(columns)
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    return [float(c) for c in coef]


def _ones(s: Sequence[Signals]) -> np.ndarray:
    return np.ones(len(s))


def _resque(s: Sequence[Signals]) -> np.ndarray:
    return np.array([p.resque for p in s], dtype=np.float64)


def _gap(s: Sequence[Signals]) -> np.ndarray:
    return np.array([p.gap for p in s], dtype=np.float64)


def _fit_mean(s, y):
    return {"mean": float(np.mean(y))}


def _fit_linear(s, y):
    a, b = _lstsq([_ones(s), _resque(s)], y)
    return {"intercept": a, "slope": b}


def _fit_gap(s, y):
    a, b = _lstsq([_ones(s), _gap(s)], y)
    return {"intercept": a, "gap_slope": b}


def _fit_resque_gap(s, y):
    a, b, c = _lstsq([_ones(s), _resque(s), _gap(s)], y)
    return {"intercept": a, "slope": b, "gap_slope": c}


def _slope_groups(s: Sequence[Signals]) -> list[str]:
    """Families with their own slope: two or more runs, and at least one other run left for
    the shared slope and the intercept."""
    counts: dict[str, int] = {}
    for p in s:
        counts[p.family] = counts.get(p.family, 0) + 1
    return sorted(f for f, c in counts.items() if c >= 2 and c < len(s))


def _fit_per_family(s, y):
    groups = _slope_groups(s)
    x = _resque(s)
    cols = [_ones(s)]
    for f in groups:
        cols.append(np.where([p.family == f for p in s], x, 0.0))
    cols.append(np.where([p.family not in groups for p in s], x, 0.0))
    coef = _lstsq(cols, y)
    return {
        "intercept": coef[0],
        "family_slopes": dict(zip(groups, coef[1:-1], strict=True)),
        "slope": coef[-1],
    }


def _predict_per_family(params, p):
    slope = params["family_slopes"].get(p.family, params["slope"])
    return params["intercept"] + slope * p.resque


def _fit_monotone(s, y):
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(increasing=True, out_of_bounds="clip").fit(_resque(s), y)
    return {"x": [float(v) for v in iso.X_thresholds_], "y": [float(v) for v in iso.y_thresholds_]}


def _predict_monotone(params, p):
    return float(np.interp(p.resque, params["x"], params["y"]))


FORMS: dict[str, Form] = {
    f.name: f
    for f in (
        Form("mean", "mean of the measured epochs", lambda s: 1, _fit_mean, lambda q, p: q["mean"]),
        Form(
            "linear",
            "a + b x RESQUE",
            lambda s: 2,
            _fit_linear,
            lambda q, p: q["intercept"] + q["slope"] * p.resque,
        ),
        Form(
            "gap",
            "a + b x accuracy gap (target - accuracy before training)",
            lambda s: 2,
            _fit_gap,
            lambda q, p: q["intercept"] + q["gap_slope"] * p.gap,
            needs_gap=True,
        ),
        Form(
            "monotone",
            "increasing step fit in RESQUE (isotonic), flat outside the measured range",
            lambda s: 2,
            _fit_monotone,
            _predict_monotone,
        ),
        Form(
            "resque_gap",
            "a + b x RESQUE + c x accuracy gap",
            lambda s: 3,
            _fit_resque_gap,
            lambda q, p: q["intercept"] + q["slope"] * p.resque + q["gap_slope"] * p.gap,
            needs_gap=True,
        ),
        Form(
            "per_family",
            "a + b_family x RESQUE (one slope per shift family with 2+ runs, shared otherwise)",
            lambda s: 2 + len(_slope_groups(s)),
            _fit_per_family,
            _predict_per_family,
        ),
    )
}
"""The offered forms, simplest first."""


def predict_form(form: str, params: Params, signals: Signals) -> float:
    """Predicted epochs of ``form`` with fitted ``params`` (clipped at 0)."""
    if form not in FORMS:
        raise ConfigError(f"unknown calibration form {form!r}; known: {', '.join(FORMS)}")
    value = FORMS[form].predict(params, signals)
    return max(0.0, value) if math.isfinite(value) else 0.0


@dataclass(frozen=True)
class FormChoice:
    """The chosen form, its params fitted on all runs, its LOO predictions (one per run, in
    input order), LOO MAE / RMSE, and ``table``: every form tried with its LOO MAE (None:
    not applicable: too few runs or a signal missing)."""

    form: str
    params: Params
    loo_predictions: list[float]
    loo_mae: float
    loo_rmse: float
    baseline_loo_mae: float
    table: dict[str, float | None]

    @property
    def residuals(self) -> list[float]:
        return [abs(p - y) for p, y in zip(self.loo_predictions, self._y, strict=True)]

    _y: tuple[float, ...] = ()


def _applicable(form: Form, signals: Sequence[Signals]) -> bool:
    if form.needs_gap and any(p.start_accuracy is None for p in signals):
        return False
    if form.name == "per_family" and not _slope_groups(signals):
        return False
    return len(signals) - 1 >= form.n_params(signals)


def _loo(form: Form, signals: Sequence[Signals], y: np.ndarray) -> list[float] | None:
    out = []
    for i in range(len(y)):
        rest = [p for j, p in enumerate(signals) if j != i]
        if form.needs_gap and any(p.start_accuracy is None for p in rest):
            return None
        params = form.fit(rest, np.delete(y, i))
        value = form.predict(params, signals[i])
        out.append(max(0.0, value) if math.isfinite(value) else 0.0)
    return out


def select_form(
    signals: Sequence[Signals], epochs: Sequence[float], *, forms: Sequence[str] | None = None
) -> FormChoice:
    """Fit every applicable form, compute its LOO predictions and choose one (module doc).
    Needs at least 2 runs (the mean's LOO needs one run left)."""
    y = np.asarray(epochs, dtype=np.float64)
    if len(signals) != len(y):
        raise ConfigError(f"{len(signals)} signal rows for {len(y)} measured runs")
    if len(y) < 2:
        raise ConfigError(f"choosing a form needs at least 2 measured runs, got {len(y)}")
    if not np.isfinite(y).all():
        raise ConfigError("measured epochs must be finite numbers")
    names = list(forms) if forms is not None else list(FORMS)
    table: dict[str, float | None] = {}
    loos: dict[str, list[float]] = {}
    for name in names:
        form = FORMS[name]
        pred = _loo(form, signals, y) if _applicable(form, signals) else None
        if pred is None:
            table[name] = None
            continue
        loos[name] = pred
        table[name] = float(np.mean(np.abs(np.array(pred) - y)))
    baseline = _loo(FORMS["mean"], signals, y)
    baseline_mae = float(np.mean(np.abs(np.array(baseline) - y)))
    if not loos:
        raise ConfigError("no calibration form applies to these runs")
    best = None
    for name in sorted(loos, key=lambda n: (FORMS[n].n_params(signals), names.index(n))):
        if best is None:
            best = name
            continue
        simpler = FORMS[name].n_params(signals) > FORMS[best].n_params(signals)
        margin = (1 - SIMPLER_MARGIN) if simpler else 1.0
        if table[name] < table[best] * margin - 1e-12:
            best = name
    pred = np.array(loos[best])
    return FormChoice(
        form=best,
        params=FORMS[best].fit(signals, y),
        loo_predictions=[float(v) for v in pred],
        loo_mae=float(np.mean(np.abs(pred - y))),
        loo_rmse=float(np.sqrt(np.mean((pred - y) ** 2))),
        baseline_loo_mae=baseline_mae,
        table=table,
        _y=tuple(float(v) for v in y),
    )
