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

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import stats

from ..errors import Cancelled, ConfigError, ResqueError
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
from ..store.cache import default_cache_dir
from .records import (
    CALIBRATION_FILE,
    LEVEL,
    MIN_POINTS,
    PRIORS,
    Calibration,
    calibration_key,
    fit_calibration,
    load_calibrations,
    save_calibrations,
)
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
    # Candidates with one workload (model, procedure, device, input size, own or new head) share
    # one probe.
    groups: dict[tuple, list[tuple[Candidate, float, Workload]]] = {}
    for candidate, value in scored:
        try:
            w = workload_of(plan, candidate, scorer=scorer, config=options.procedure)
        except ResqueError as e:
            costs[candidate.id] = CandidateCost(error=str(e))
            continue
        groups.setdefault(w.probe_key, []).append((candidate, value, w))
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
