"""Calibrations earned on the user's own model: fit a chosen form on measured retrains, apply it
to every other candidate, and say plainly when there is none.

- :func:`calibration_rows` reads the usable measured runs of a validation or calibration
  document (finished, not cut short by a limit, with the forward-pass signals recorded).
- :func:`fit_model` chooses a form by leave-one-out error (:mod:`resque_core.cost.forms`) on the
  runs that needed training (a shift already at its target is a measured 0 and predicted 0, it
  teaches nothing about the rest), keeps the LOO residuals for the interval
  (:mod:`resque_core.cost.conformal`) and the measured / probed energy per epoch ratios for the
  kWh band, and returns a :class:`~resque_core.cost.predict.Calibration` with ``model`` set.
- :func:`apply_calibrations` turns a ranking's probe-based answers into predictions from the
  stored calibrations: a kind without one is *uncalibrated*, its candidates get no predicted
  number, only RESQUE and the estimated cost of calibrating (:func:`calibration_offer`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ConfigError, ResqueError
from ..kinds import ESTIMATOR_KINDS
from ..retrain import EnergyProbe
from .chooser import GUESS_EPOCHS, Option, choose_for_calibration
from .conformal import conformal_band
from .forms import FORMS, select_form
from .predict import PRIORS, Calibration, CandidateCost, CostOptions, over_budget, predict_cost
from .signals import Signals, candidate_signals, family_of

if TYPE_CHECKING:
    from ..plans import Candidate, Plan
    from ..scoring.scorer import Scorer
    from ..store.cache import ResultStore

__all__ = [
    "DEFAULT_K",
    "MIN_RUNS",
    "apply_calibrations",
    "calibration_offer",
    "calibration_rows",
    "describe",
    "fit_model",
    "guess_epochs",
]

MIN_RUNS = 2
"""Measured runs (that needed training) a kind needs before it is calibrated."""
DEFAULT_K = 5


def guess_epochs(kind: str, resque: float) -> float:
    """A rough epoch count for budgeting a calibration only (:mod:`~resque_core.cost.chooser`):
    the prior's 80 % upper bound plus :data:`~resque_core.cost.chooser.GUESS_EPOCHS`."""
    return GUESS_EPOCHS + PRIORS[kind].interval(resque)[1]


def calibration_rows(doc: dict[str, Any], key: str) -> dict[str, list[dict[str, Any]]]:
    """{kind: usable runs} of a ``validation`` or ``calibration`` document with calibration
    ``key``: finished, not censored, with RESQUE, epochs and signals."""
    rows: dict[str, list[dict[str, Any]]] = {k: [] for k in ESTIMATOR_KINDS}
    if doc.get("type") not in ("validation", "calibration") or doc.get("calibration_key") != key:
        return rows
    for r in doc.get("runs", []):
        usable = r.get("status") == "completed" and not r.get("censored")
        measured = r.get("resque") is not None and r.get("epochs") is not None
        if usable and measured and r.get("signals") and r.get("kind") in rows:
            rows[r["kind"]].append(r)
    return rows


def _energy_ratio(rows: Sequence[dict[str, Any]]) -> dict[str, float] | None:
    ratios = []
    for r in rows:
        probe = r.get("probe") or {}
        per = probe.get("kwh_per_epoch")
        if r["epochs"] and r.get("energy_kwh") and per:
            ratios.append(r["energy_kwh"] / r["epochs"] / per)
    if not ratios:
        return None
    return {
        "median": float(np.median(ratios)),
        "low": float(min(ratios)),
        "high": float(max(ratios)),
        "n": len(ratios),
    }


def fit_model(kind: str, rows: Sequence[dict[str, Any]], *, source: str = "") -> Calibration:
    """A calibration of ``kind`` from measured runs (run documents with ``signals``, ``epochs``,
    ``energy_kwh``, ``probe``): the form with the best LOO error (module doc)."""
    sig = [Signals.from_dict(r["signals"]) for r in rows]
    keep = [i for i, s in enumerate(sig) if not s.at_target]
    if len(keep) < MIN_RUNS:
        raise ConfigError(
            f"a {kind} calibration needs at least {MIN_RUNS} measured runs that needed training, "
            f"got {len(keep)}: retrain more candidates"
        )
    points = [sig[i] for i in keep]
    epochs = [float(rows[i]["epochs"]) for i in keep]
    choice = select_form(points, epochs)
    residuals = [abs(p - y) for p, y in zip(choice.loo_predictions, epochs, strict=True)]
    x = np.array([p.resque for p in points])
    y = np.array(epochs)
    r = float(np.corrcoef(x, y)[0, 1]) if len(x) > 2 and x.std() > 0 and y.std() > 0 else None
    linear = FORMS["linear"].fit(points, y) if len(points) >= 2 else {"intercept": 0, "slope": 0}
    return Calibration(
        kind=kind,  # type: ignore[arg-type]
        intercept=float(linear["intercept"]),
        slope=float(linear["slope"]),
        residual_sd=float(np.sqrt(np.mean(np.square(residuals)))),
        dof=max(len(points) - 1, 1),
        basis="calibrated",
        n=len(rows),
        x_mean=float(x.mean()),
        sxx=float(((x - x.mean()) ** 2).sum()),
        loo_mae=choice.loo_mae,
        loo_rmse=choice.loo_rmse,
        pearson_r=r,
        source=source or f"{len(rows)} measured retrains",
        form=choice.form,
        baseline_loo_mae=choice.baseline_loo_mae,
        model={
            "params": choice.params,
            "loo_predictions": choice.loo_predictions,
            "loo_residuals": residuals,
            "forms_loo_mae": choice.table,
            "fitted_runs": len(points),
            "at_target_runs": len(rows) - len(points),
            "candidates": [r.get("candidate_id") for r in rows],
            "energy_ratio": _energy_ratio(rows),
        },
    )


def describe(cal: Calibration | dict[str, Any], level: float = 0.8) -> str:
    """One line on what a calibration rests on: ``uncalibrated``, or form, n and LOO error."""
    d = cal.to_dict() if isinstance(cal, Calibration) else cal
    if d.get("basis") != "calibrated":
        return "uncalibrated"
    if not d.get("model"):
        mae = f", LOO MAE {d['loo_mae']:.2f} epochs" if d.get("loo_mae") is not None else ""
        return f"linear fit on {d['n']} retrains{mae}"
    m = d["model"]
    band = conformal_band(m["loo_residuals"], level)
    base = d.get("baseline_loo_mae")
    vs = f" (mean of the runs: {base:.2f})" if base is not None else ""
    return (
        f"{d['form']} fit on {d['n']} retrains, LOO MAE {d['loo_mae']:.2f} epochs{vs}, "
        f"{int(level * 100)}% band +/-{band['half_width']:.2f} epochs ({band['method']})"
    )


def calibration_offer(
    scored: Sequence[tuple[Candidate, float]],
    probes: dict[str, EnergyProbe],
    kinds: Sequence[str],
    *,
    k: int = DEFAULT_K,
) -> dict[str, Any] | None:
    """What calibrating the ``kinds`` that have none would retrain and roughly cost (the
    chooser's picks and their estimated seconds and kWh; a rough guess, not a prediction)."""
    options = [
        _option(c, v, probes[c.id]) for c, v in scored if c.estimator in kinds and c.id in probes
    ]
    if not options:
        return None
    picks = choose_for_calibration(options, k)
    return {
        "k": k,
        "kinds": sorted(set(kinds)),
        "candidates": [o.id for o in picks],
        "estimated_seconds": float(sum(o.seconds for o in picks)),
        "estimated_kwh": float(sum(o.kwh for o in picks)),
        "basis": "rough: energy probe x a deliberately generous epoch guess; not a prediction",
    }


def _option(c: Candidate, value: float, probe: EnergyProbe, known: bool = False) -> Option:
    epochs = guess_epochs(c.estimator, value)
    return Option(
        id=c.id,
        kind=c.estimator,
        resque=float(value),
        family=family_of(c),
        seconds=epochs * probe.seconds_per_epoch,
        kwh=epochs * probe.kwh_per_epoch,
        known=known,
    )


def _probe_of(cost: CandidateCost) -> EnergyProbe | None:
    if cost.prediction is None or not cost.prediction.probe:
        return None
    d = cost.prediction.probe
    return EnergyProbe(**{k: v for k, v in d.items() if k != "kwh_per_epoch"})


def apply_calibrations(
    plan: Plan,
    scored: Sequence[tuple[Candidate, Any]],
    costs: dict[str, CandidateCost],
    calibrations: dict[str, Calibration],
    *,
    scorer: Scorer,
    options: CostOptions,
    store: ResultStore | None = None,
) -> tuple[dict[str, CandidateCost], set[str], dict[str, Any] | None]:
    """Final answers of a ranking: ``(costs, uncalibrated ids, calibration offer)``.

    ``scored``: (candidate, its :class:`~resque_core.scoring.scorer.Score`). A kind with a
    chosen-form calibration gets predictions from its signals; a kind with only the prior gets
    no prediction (its candidates are listed as uncalibrated, with the offer to calibrate them);
    a legacy linear calibration keeps the probe-based prediction."""
    out: dict[str, CandidateCost] = {}
    uncalibrated: set[str] = set()
    probes: dict[str, EnergyProbe] = {}
    for c, score in scored:
        cost = costs.get(c.id)
        if cost is None:
            continue
        probe = _probe_of(cost)
        if probe is not None:
            probes[c.id] = probe
        cal = calibrations.get(c.estimator)
        if cal is None or cal.basis != "calibrated":
            uncalibrated.add(c.id)
            out[c.id] = CandidateCost(error=cost.error)
            continue
        if cal.model is None or probe is None:
            out[c.id] = cost
            continue
        try:
            sig = candidate_signals(
                plan,
                c,
                resque=score.value,
                per_class=score.per_class,
                scorer=scorer,
                config=options.procedure,
                store=store,
            )
        except ResqueError as e:
            out[c.id] = CandidateCost(error=f"signals: {e}")
            continue
        prediction = predict_cost(
            score.value, calibration=cal, probe=probe, settings=options.settings, signals=sig
        )
        over = over_budget(prediction, max_kwh=options.max_kwh, max_co2_kg=options.max_co2_kg)
        out[c.id] = replace(cost, prediction=prediction, over_budget=tuple(over))
    kinds = sorted({c.estimator for c, _ in scored if c.id in uncalibrated})
    values = [(c, s.value) for c, s in scored]
    offer = calibration_offer(values, probes, kinds) if kinds else None
    return out, uncalibrated, offer
