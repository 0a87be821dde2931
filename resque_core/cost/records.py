"""The calibration record (:class:`Calibration`: RESQUE -> epochs for one estimator kind, with
its leave-one-out error and chosen form), the documented priors, the linear fit, and where
calibrations are kept (``<cache dir>/calibrations.json``, one entry per checkpoint SHA-256 and
retraining procedure; the demo model's own entry ships with the package)."""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from scipy import stats

from ..errors import ConfigError
from ..kinds import ESTIMATOR_KINDS, EstimatorKind
from ..measure import units as units
from ..store.cache import canonical_key
from .conformal import conformal_band
from .forms import predict_form
from .signals import Signals

if TYPE_CHECKING:
    pass

__all__ = [
    "CALIBRATION_FILE",
    "LEVEL",
    "MIN_POINTS",
    "PRIORS",
    "Calibration",
    "calibration_key",
    "fit_calibration",
    "load_calibrations",
    "save_calibrations",
]

CALIBRATION_FILE = "calibrations.json"
LEVEL = 0.8
MIN_POINTS = 3
_VERSION = 1


@dataclass(frozen=True)
class Calibration:
    """A linear map RESQUE -> epochs for one estimator kind.

    ``n``: points fitted (0 for a prior); ``residual_sd``: s, the residual standard deviation
    (for a prior: the assumed spread of epochs around the line); ``dof``: degrees of freedom of
    the t distribution of predictions; ``x_mean``/``sxx``: mean of RESQUE and sum of squared
    deviations (leverage); ``loo_mae``/``loo_rmse``: leave-one-out errors in epochs;
    ``pearson_r``: correlation of the fitted points; ``source``: where the numbers come from.
    """

    kind: EstimatorKind
    intercept: float
    slope: float
    residual_sd: float
    dof: int
    basis: Literal["calibrated", "prior"]
    n: int = 0
    x_mean: float = 0.0
    sxx: float = 0.0
    loo_mae: float | None = None
    loo_rmse: float | None = None
    pearson_r: float | None = None
    source: str = ""
    form: str = "linear"
    model: dict[str, Any] | None = None
    baseline_loo_mae: float | None = None

    def mean(self, resque: float, signals: Signals | None = None) -> float:
        """Point prediction of epochs (not clipped for the linear map). A calibration chosen
        among forms (``model`` set, :mod:`resque_core.cost.calibration`) reads ``signals``;
        a candidate already at its target needs 0."""
        if self.model is not None:
            sig = signals if signals is not None else Signals(resque=resque)
            if sig.at_target:
                return 0.0
            return predict_form(self.form, self.model["params"], sig)
        return self.intercept + self.slope * resque

    def prediction_sd(self, resque: float) -> float:
        """Standard deviation of a new observation at ``resque`` (epochs)."""
        if self.basis == "prior":
            return self.residual_sd
        lever = 1 / self.n + (resque - self.x_mean) ** 2 / self.sxx
        return self.residual_sd * math.sqrt(1 + lever)

    def interval(
        self, resque: float, level: float = LEVEL, signals: Signals | None = None
    ) -> tuple[float, float]:
        """Central ``level`` prediction interval of epochs, clipped at 0 (for a chosen form:
        the LOO-residual band of :mod:`resque_core.cost.conformal`)."""
        if self.model is not None:
            if signals is not None and signals.at_target:
                return 0.0, 0.0
            mid = self.mean(resque, signals)
            half = conformal_band(self.model["loo_residuals"], level)["half_width"]
            return max(0.0, mid - half), max(0.0, mid + half)
        half = stats.t.ppf(0.5 + level / 2, self.dof) * self.prediction_sd(resque)
        mid = self.mean(resque)
        return max(0.0, mid - half), max(0.0, mid + half)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Calibration:
        return cls(**d)


_PRIOR_SOURCE = (
    "prior: fit of the docs/VALIDATION.md demo study (small_cnn on 8x8 digits, CPU, target "
    "0.9, no_flip), residual spread doubled; not measured on this model"
)
PRIORS: dict[str, Calibration] = {
    # study fit: epochs = -0.26 + 7.33 x RESQUE_dist, s = 0.92 (25 shifts)
    "dist": Calibration(
        kind="dist",
        intercept=0.0,
        slope=7.5,
        residual_sd=2.0,
        dof=3,
        basis="prior",
        source=_PRIOR_SOURCE,
    ),
    # study fit: epochs = 0.83 + 2.13 x RESQUE_task, s = 1.11 (4 tasks)
    "task": Calibration(
        kind="task",
        intercept=1.0,
        slope=2.0,
        residual_sd=2.2,
        dof=3,
        basis="prior",
        source=_PRIOR_SOURCE,
    ),
}
"""Used when fewer than MIN_POINTS local measurements exist for a kind. A placeholder that says
"a few epochs, more for larger RESQUE" for a small model; its t(3) interval is deliberately wide.
Validate a few candidates on your own model to replace it."""


def fit_calibration(
    resque: Sequence[float], epochs: Sequence[float], *, kind: EstimatorKind, source: str = ""
) -> Calibration:
    """Least-squares line epochs ~ RESQUE over measured runs, with its residual spread and
    leave-one-out errors. Needs at least :data:`MIN_POINTS` points with distinct RESQUE values.
    """
    x = np.asarray(resque, dtype=np.float64)
    y = np.asarray(epochs, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ConfigError(
            f"calibration needs one epoch count per RESQUE value, got {x.shape} and {y.shape}"
        )
    if len(x) < MIN_POINTS:
        raise ConfigError(
            f"a {kind} calibration needs at least {MIN_POINTS} measured runs, got {len(x)}: "
            "retrain more candidates"
        )
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ConfigError("calibration points must be finite numbers")
    n = len(x)
    x_mean = float(x.mean())
    sxx = float(((x - x_mean) ** 2).sum())
    if sxx <= 1e-24:
        raise ConfigError(
            f"all {n} {kind} runs have the same RESQUE value ({x_mean:.4g}): "
            "retrain candidates spread over the RESQUE range"
        )
    slope = float(((x - x_mean) * (y - y.mean())).sum() / sxx)
    intercept = float(y.mean() - slope * x_mean)
    resid = y - (intercept + slope * x)
    dof = n - 2
    s = math.sqrt(float((resid**2).sum()) / dof) if dof > 0 else 0.0
    leverage = 1 / n + (x - x_mean) ** 2 / sxx
    with np.errstate(divide="ignore", invalid="ignore"):
        loo = resid / (1 - leverage)
    finite = np.isfinite(loo)
    r = float(np.corrcoef(x, y)[0, 1]) if y.std() > 0 else None
    return Calibration(
        kind=kind,
        intercept=intercept,
        slope=slope,
        residual_sd=s,
        dof=max(dof, 1),
        basis="calibrated",
        n=n,
        x_mean=x_mean,
        sxx=sxx,
        loo_mae=float(np.abs(loo[finite]).mean()) if finite.any() else None,
        loo_rmse=float(np.sqrt((loo[finite] ** 2).mean())) if finite.any() else None,
        pearson_r=r,
        source=source or f"fit on {n} measured retrains",
    )


# ----------------------------------------------------------------------------- storage
def calibration_key(checkpoint_sha256: str, procedure: dict[str, Any]) -> str:
    """Key of a calibration: the checkpoint's content and the retraining procedure
    (:meth:`~resque_core.retrain.config.RetrainConfig.procedure`)."""
    return canonical_key("calibration", {"sha256": checkpoint_sha256, "procedure": procedure})


def _path(cache_dir: str | os.PathLike) -> Path:
    return Path(cache_dir) / CALIBRATION_FILE


def _read(cache_dir: str | os.PathLike) -> dict[str, Any]:
    path = _path(cache_dir)
    if not path.exists():
        return {"version": _VERSION, "entries": {}}
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"cannot read {path}: {e}; delete it to start over") from None
    if doc.get("version") != _VERSION:
        raise ConfigError(f"{path} has version {doc.get('version')!r}; expected {_VERSION}")
    return doc


_SHIPPED = Path(__file__).resolve().parent.parent / "demo" / CALIBRATION_FILE


def _shipped_entry(key: str) -> dict[str, Any]:
    """The package's own calibration for ``key`` (the demo model, measured with the default
    procedure; ``resque_core/demo/calibrations.json``), else none."""
    try:
        doc = json.loads(_SHIPPED.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return doc.get("entries", {}).get(key, {})


def load_calibrations(cache_dir: str | os.PathLike, key: str) -> dict[str, Calibration]:
    """The stored calibrations for ``key`` (else the package's shipped one for the demo model),
    with :data:`PRIORS` for kinds that have none."""
    entry = _read(cache_dir)["entries"].get(key) or _shipped_entry(key)
    out = dict(PRIORS)
    for kind in ESTIMATOR_KINDS:
        if kind in entry:
            out[kind] = Calibration.from_dict(entry[kind])
    return out


def save_calibrations(
    cache_dir: str | os.PathLike,
    key: str,
    calibrations: dict[str, Calibration],
    *,
    meta: dict[str, Any] | None = None,
) -> Path:
    """Store the fitted (non-prior) ``calibrations`` under ``key``, replacing that entry
    (atomic: written to a temporary file and renamed)."""
    doc = _read(cache_dir)
    entry = {k: c.to_dict() for k, c in calibrations.items() if c.basis == "calibrated"}
    entry["meta"] = {**(meta or {}), "updated": datetime.now(UTC).isoformat(timespec="seconds")}
    doc["entries"][key] = entry
    path = _path(cache_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1)
    os.replace(tmp, path)
    return path
