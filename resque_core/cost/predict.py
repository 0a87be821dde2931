"""Cost model: RESQUE -> predicted epochs, kWh and kg CO2e, each with an 80% interval.

Three pieces, three uncertainties:

1. **Epochs** from RESQUE through a linear calibration ``epochs = intercept + slope x RESQUE``,
   fitted by least squares on measured retrains, one fit per estimator kind (``dist`` and
   ``task`` values live on different scales). Its uncertainty is the fit's prediction interval:
   ``t(n-2) x s x sqrt(1 + 1/n + (x - mean x)^2 / Sxx)``. The leave-one-out error (closed form:
   residual / (1 - leverage)) is reported with every fit. Without at least
   :data:`MIN_POINTS` usable local measurements a documented :data:`PRIORS` entry is used and
   marked ``"basis": "prior"``.
2. **Energy per epoch** from a short measured probe, one per workload (model, procedure,
   device, input size, head; :mod:`resque_core.retrain.probe`), scaled by each candidate's
   batches; its uncertainty is the spread (standard
   deviation) of the probe's repeated windows, not the standard error of their mean: the
   extrapolation from a few batches to an epoch has errors that repeating the same windows does
   not reveal.
3. **Carbon intensity** from :mod:`resque_core.measure.carbon`, with its relative uncertainty; CO2
   = kWh
   x intensity x PUE (:func:`~resque_core.measure.units.co2_kg`, for the point value and every
   draw).

The interval propagates all three with a seeded Monte Carlo (:func:`predict_cost`): epochs drawn
from the fit's t distribution (clipped at 0), energy per epoch and intensity from normals
(clipped at 0); the interval is the central ``level`` quantile range of the draws. Point values
are the products of the point estimates.

Calibrations are kept in ``<cache dir>/calibrations.json``, one entry per (checkpoint SHA-256,
retraining procedure): a calibration only transfers to the model and training recipe it was
measured with.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from scipy import stats

from ..errors import Cancelled, ConfigError, ResqueError
from ..kinds import ESTIMATOR_KINDS, EstimatorKind
from ..measure import units as units
from ..measure.carbon import CarbonIntensity, emissions_kg
from ..measure.energy import Meter, make_meter
from ..retrain import (
    EnergyProbe,
    RetrainConfig,
    RetrainData,
    Workload,
    workload_energy,
    workload_of,
)
from ..store.cache import canonical_key, default_cache_dir
from .conformal import conformal_band
from .forms import predict_form
from .signals import Signals

if TYPE_CHECKING:
    from ..plans import Candidate, Plan
    from ..scoring.scorer import Scorer
    from ..store.cache import ResultStore

__all__ = [
    "CALIBRATION_FILE",
    "LEVEL",
    "MIN_POINTS",
    "PRIORS",
    "Calibration",
    "CandidateCost",
    "CostOptions",
    "CostSettings",
    "Prediction",
    "calibration_key",
    "fit_calibration",
    "load_calibrations",
    "over_budget",
    "predict_candidates",
    "predict_cost",
    "probe_candidate",
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


# ----------------------------------------------------------------------------- prediction
@dataclass(frozen=True)
class CostSettings:
    """Carbon intensity (with PUE), interval ``level``, and the Monte Carlo's size and seed."""

    intensity: CarbonIntensity
    level: float = LEVEL
    draws: int = 20_000
    seed: int = 0

    def __post_init__(self):
        if not 0 < self.level < 1:
            raise ConfigError(f"interval level must be in (0, 1), got {self.level}")
        if self.draws < 100:
            raise ConfigError(f"Monte Carlo draws must be at least 100, got {self.draws}")


@dataclass(frozen=True)
class Prediction:
    """Predicted cost of retraining one candidate; intervals are (low, high) at ``level``.
    ``basis``: ``calibrated`` (local measurements) or ``prior``."""

    resque: float
    epochs: float
    epochs_interval: tuple[float, float]
    energy_kwh: float
    energy_kwh_interval: tuple[float, float]
    co2_kg: float
    co2_kg_interval: tuple[float, float]
    level: float
    basis: str
    kwh_per_epoch: float
    energy_method: str
    energy_basis: str
    calibration: dict[str, Any] = field(default_factory=dict)
    intensity: dict[str, Any] = field(default_factory=dict)
    probe: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("epochs_interval", "energy_kwh_interval", "co2_kg_interval"):
            d[k] = list(d[k])
        return d


def predict_cost(
    resque: float,
    *,
    calibration: Calibration,
    probe: EnergyProbe,
    settings: CostSettings,
    signals: Signals | None = None,
) -> Prediction:
    """Predicted epochs, kWh and kg CO2e for a candidate with this RESQUE value (and, for a
    calibration chosen among forms, these forward-pass ``signals``)."""
    if calibration.model is not None:
        return _banded(resque, calibration, probe, settings, signals)
    rng = np.random.default_rng(settings.seed)
    n = settings.draws
    intensity = settings.intensity
    epochs_point = max(0.0, calibration.mean(resque))
    epochs = calibration.mean(resque) + calibration.prediction_sd(resque) * rng.standard_t(
        calibration.dof, n
    )
    epochs = np.clip(epochs, 0, None)
    per_epoch = np.clip(
        rng.normal(probe.kwh_per_epoch, units.joules_to_kwh(probe.joules_per_epoch_sd), n), 0, None
    )
    g = np.clip(
        rng.normal(intensity.g_per_kwh, intensity.relative_uncertainty * intensity.g_per_kwh, n),
        0,
        None,
    )
    kwh = epochs * per_epoch
    co2 = units.co2_kg(kwh, g, intensity.pue)
    lo, hi = 50 * (1 - settings.level), 50 * (1 + settings.level)

    def band(a: np.ndarray) -> tuple[float, float]:
        q = np.percentile(a, [lo, hi])
        return float(q[0]), float(q[1])

    energy_point = epochs_point * probe.kwh_per_epoch
    return Prediction(
        resque=float(resque),
        epochs=epochs_point,
        epochs_interval=calibration.interval(resque, settings.level),
        energy_kwh=energy_point,
        energy_kwh_interval=band(kwh),
        co2_kg=emissions_kg(energy_point, intensity),
        co2_kg_interval=band(co2),
        level=settings.level,
        basis=calibration.basis,
        kwh_per_epoch=probe.kwh_per_epoch,
        energy_method=probe.method,
        energy_basis=probe.basis,
        calibration=calibration.to_dict(),
        intensity=intensity.to_dict(),
        probe=probe.to_dict(),
    )


def _banded(
    resque: float,
    calibration: Calibration,
    probe: EnergyProbe,
    settings: CostSettings,
    signals: Signals | None,
) -> Prediction:
    """A chosen form's prediction: epochs +/- the LOO-residual band; kWh = epochs x the probe's
    kWh per epoch x the measured/probe ratio of the calibration runs (its lowest and highest
    ratio bound the band; without measured ratios the probe's spread, z at ``level``); CO2 =
    kWh x intensity, the intensity's uncertainty widening the band the same way."""
    level, intensity = settings.level, settings.intensity
    z = float(stats.norm.ppf(0.5 + level / 2))
    epochs = max(0.0, calibration.mean(resque, signals))
    e_lo, e_hi = calibration.interval(resque, level, signals)
    per = probe.kwh_per_epoch
    ratio = (calibration.model or {}).get("energy_ratio")
    if ratio:
        mid, low, high = ratio["median"], ratio["low"], ratio["high"]
    else:
        cv = units.joules_to_kwh(probe.joules_per_epoch_sd) / per if per > 0 else 0.0
        mid, low, high = 1.0, max(0.0, 1 - z * cv), 1 + z * cv
    kwh = epochs * per * mid
    kwh_band = (e_lo * per * low, e_hi * per * high)
    rel = z * intensity.relative_uncertainty
    co2_band = (
        emissions_kg(kwh_band[0], intensity) * max(0.0, 1 - rel),
        emissions_kg(kwh_band[1], intensity) * (1 + rel),
    )
    return Prediction(
        resque=float(resque),
        epochs=epochs,
        epochs_interval=(e_lo, e_hi),
        energy_kwh=kwh,
        energy_kwh_interval=kwh_band,
        co2_kg=emissions_kg(kwh, intensity),
        co2_kg_interval=co2_band,
        level=level,
        basis=calibration.basis,
        kwh_per_epoch=per * mid,
        energy_method=probe.method,
        energy_basis=probe.basis,
        calibration=calibration.to_dict(),
        intensity=intensity.to_dict(),
        probe=probe.to_dict(),
    )


def over_budget(
    prediction: Prediction, *, max_kwh: float | None = None, max_co2_kg: float | None = None
) -> list[str]:
    """The budgets the point prediction exceeds, as short phrases (empty = within budget)."""
    over = []
    if max_kwh is not None and prediction.energy_kwh > max_kwh:
        over.append(f"{prediction.energy_kwh:.3g} kWh > {max_kwh:g} kWh")
    if max_co2_kg is not None and prediction.co2_kg > max_co2_kg:
        over.append(f"{prediction.co2_kg:.3g} kg CO2e > {max_co2_kg:g} kg CO2e")
    return over


# ----------------------------------------------------------------------------- candidates
@dataclass(frozen=True)
class CostOptions:
    """What a ranking needs to predict costs: ``settings`` (intensity, level), the retraining
    ``procedure`` whose epochs are predicted, the ``meter`` name used by energy probes, where
    calibrations live (``cache_dir``, None = default cache dir), optional budgets, and the
    length of each energy-probe window (``probe_seconds``)."""

    settings: CostSettings
    procedure: RetrainConfig = field(default_factory=RetrainConfig)
    meter: str = "auto"
    cache_dir: str | None = None
    max_kwh: float | None = None
    max_co2_kg: float | None = None
    probe_seconds: float = 0.5

    def __post_init__(self):
        for name in ("max_kwh", "max_co2_kg"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"budget {name.replace('_', '-')} must be >= 0, got {value}")

    def resolved_cache_dir(self) -> Path:
        return Path(self.cache_dir) if self.cache_dir is not None else default_cache_dir()


def probe_candidate(
    plan: Plan,
    candidate: Candidate,
    *,
    scorer: Scorer,
    config: RetrainConfig,
    meter: Meter,
    store: ResultStore | None = None,
    data: RetrainData | None = None,
    seconds: float = 0.5,
) -> EnergyProbe:
    """The energy probe of one candidate: its workload's batch energy
    (:func:`~resque_core.retrain.probe.workload_energy`, measured once per model, procedure,
    device, input size and head, from ``store`` when this machine already measured it) scaled
    by the candidate's own batches."""
    workload = (
        Workload.of_data(data, config.batch_size)
        if data is not None
        else workload_of(plan, candidate, scorer=scorer, config=config)
    )
    batch = workload_energy(
        plan,
        candidate,
        scorer=scorer,
        config=config,
        meter=meter,
        workload=workload,
        store=store,
        data=data,
        seconds=seconds,
    )
    return batch.for_epoch(workload.train_batches, workload.eval_batches)


@dataclass(frozen=True)
class CandidateCost:
    """The cost model's answer for one scored candidate: its ``prediction``, or ``error`` (why
    its energy probe failed); ``over_budget``: the budgets the point prediction exceeds, as
    :func:`over_budget` phrases."""

    prediction: Prediction | None = None
    error: str | None = None
    over_budget: tuple[str, ...] = ()


def predict_candidates(
    plan: Plan,
    scored: Sequence[tuple[Candidate, float]],
    *,
    scorer: Scorer,
    options: CostOptions,
    store: ResultStore | None = None,
    cancel: Callable[[], bool] | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> tuple[dict[str, CandidateCost], dict[str, Calibration]]:
    """Predict the cost of every ``(candidate, RESQUE value)`` in ``scored``: returns
    ({candidate id: its answer}, the calibrations used (stored ones, else priors)). One meter
    session serves all the probes, one probe per workload
    (:func:`~resque_core.retrain.probe.workload_of`), each at most as long as the cheapest
    predicted retraining of its candidates; ``progress("energy probe", i, n)`` before each.
    Cancelling (read after every probe batch) raises :class:`~resque_core.errors.Cancelled`
    and returns nothing, so a caller never holds half the answers."""
    from ..scoring.scorer import resolve_device

    device = resolve_device(options.procedure.device)
    key = calibration_key(scorer.checkpoint_sha256(), options.procedure.procedure())
    calibrations = load_calibrations(options.resolved_cache_dir(), key)
    costs: dict[str, CandidateCost] = {}
    # Candidates with one workload (model, procedure, device, input size, head) share one probe.
    groups: dict[tuple, list[tuple[Candidate, float, Workload]]] = {}
    for candidate, value in scored:
        try:
            w = workload_of(plan, candidate, scorer=scorer, config=options.procedure)
        except ResqueError as e:
            costs[candidate.id] = CandidateCost(error=str(e))
            continue
        groups.setdefault((w.input_shape, w.head), []).append((candidate, value, w))
    with make_meter(options.meter, device=device) as meter:
        for i, members in enumerate(groups.values()):
            if cancel is not None and cancel():
                raise Cancelled(
                    f"cancelled while probing energy ({i} of {len(groups)} probes done); "
                    "the scores are kept"
                )
            if progress is not None:
                progress("energy probe", i, len(groups))
            # Never probe longer than the cheapest retraining this probe informs.
            cheapest = min(calibrations[c.estimator].mean(v) for c, v, _ in members)
            try:
                batch = workload_energy(
                    plan,
                    members[0][0],
                    scorer=scorer,
                    config=options.procedure,
                    meter=meter,
                    workload=members[0][2],
                    store=store,
                    seconds=options.probe_seconds,
                    budget_epochs=cheapest,
                    cancel=cancel,
                )
            except Cancelled:
                raise Cancelled(
                    f"cancelled while probing energy ({i} of {len(groups)} probes done); "
                    "the scores are kept"
                ) from None
            except ResqueError as e:
                for candidate, _, _ in members:
                    costs[candidate.id] = CandidateCost(error=str(e))
                continue
            for candidate, value, w in members:
                probe = batch.for_epoch(w.train_batches, w.eval_batches)
                prediction = predict_cost(
                    value,
                    calibration=calibrations[candidate.estimator],
                    probe=probe,
                    settings=options.settings,
                )
                over = over_budget(
                    prediction, max_kwh=options.max_kwh, max_co2_kg=options.max_co2_kg
                )
                costs[candidate.id] = CandidateCost(prediction, over_budget=tuple(over))
        if progress is not None:
            progress("energy probe", len(groups), len(groups))
    return costs, calibrations
