"""Calibrate the cost model on the user's own model: retrain a few chosen candidates, fit, store.

:func:`calibrate_plan` scores the plan (cached), measures each candidate's energy probe and
forward-pass signals, lets :func:`~resque_core.cost.chooser.choose_for_calibration` pick up to
``k`` candidates (spread over each kind's RESQUE range and over shift families, cheap ones
preferred, within the budget), retrains them with the given procedure through
:func:`~resque_core.validation.validate_plan` (one stored validation document, so ``validate``
and ``calibrate`` feed the same refit) and returns what was retrained, the refitted
calibrations (form, n, leave-one-out error beside the mean's) and what it cost. ``rank`` and
the app then predict every other candidate from the stored calibration.

A budget (seconds or kWh) bounds the chooser's estimated cost and, while retraining, the
measured time: a retrain still running when the time budget is spent is cut short (censored,
so it does not count in the fit) and no further one starts.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from .cost import (
    DEFAULT_K,
    CostOptions,
    CostSettings,
    Option,
    candidate_signals,
    choose_for_calibration,
    describe,
    family_of,
    guess_epochs,
    predict_candidates,
)
from .errors import ConfigError, ResqueError
from .executor import Executor
from .plans import Plan
from .ranking import rank_plan
from .retrain import EnergyProbe, EpochRecord, RetrainConfig
from .scoring.scorer import Progress, Scorer
from .store.cache import ResultStore
from .store.runs import RunStore
from .validation import ValidationJob, ValidationRun, validate_plan

__all__ = ["CHOOSER_RULE", "Calibrated", "CalibrationJob", "calibrate", "calibrate_plan"]

CHOOSER_RULE = (
    "skip shifts already at the target accuracy (0 epochs, known); share k between kinds: two "
    "each first while k allows (one run of a kind calibrates nothing), the rest by size; "
    "within a kind cut the RESQUE ranking into k equal bands and take the cheapest "
    "candidate of each band (estimated cost = energy probe x a generous epoch guess), a shift "
    "family not yet picked counting half its cost; drop the most expensive picks until the "
    "estimate fits the budget"
)


@dataclass
class Calibrated:
    """What a calibration did: ``retrained`` ids, the refitted ``calibration`` per kind (and a
    one-line ``basis`` each), the chooser's ``estimate`` of the cost and the ``measured`` cost
    (seconds and kWh of the retrains), wall ``seconds``, the validation ``run_id``."""

    retrained: list[str]
    calibration: dict[str, dict[str, Any]]
    basis: dict[str, str]
    estimate: dict[str, float]
    measured: dict[str, float]
    seconds: float
    cancelled: bool = False
    stopped_at_budget: bool = False
    run_id: str | None = None
    calibration_key: str = ""
    runs: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "calibration",
            "retrained": self.retrained,
            "calibration": self.calibration,
            "basis": self.basis,
            "chooser": CHOOSER_RULE,
            "estimate": self.estimate,
            "measured": self.measured,
            "seconds": self.seconds,
            "cancelled": self.cancelled,
            "stopped_at_budget": self.stopped_at_budget,
            "run_id": self.run_id,
            "calibration_key": self.calibration_key,
            "runs": self.runs,
        }


def _options(
    plan: Plan,
    ranking,
    probes: dict[str, EnergyProbe],
    scorer: Scorer,
    config: RetrainConfig,
    store: ResultStore | None,
) -> list[Option]:
    out = []
    for r in ranking.results:
        if not r.ok or r.candidate.id not in probes:
            continue
        c, probe = r.candidate, probes[r.candidate.id]
        try:
            sig = candidate_signals(
                plan,
                c,
                resque=r.score.value,
                per_class=r.score.per_class,
                scorer=scorer,
                config=config,
                store=store,
            )
            known = sig.at_target
        except ResqueError:
            known = False
        guess = guess_epochs(c.estimator, r.score.value)
        out.append(
            Option(
                id=c.id,
                kind=c.estimator,
                resque=r.score.value,
                family=family_of(c),
                seconds=guess * probe.seconds_per_epoch,
                kwh=guess * probe.kwh_per_epoch,
                known=known,
            )
        )
    return out


def calibrate_plan(
    plan: Plan,
    *,
    k: int = DEFAULT_K,
    budget_seconds: float | None = None,
    budget_kwh: float | None = None,
    config: RetrainConfig | None = None,
    settings: CostSettings,
    meter: str = "auto",
    store: ResultStore | None = None,
    runs: RunStore | None = None,
    cache_dir: str | os.PathLike | None = None,
    probe_seconds: float = 0.5,
    on_start: Callable[[int, int, str], None] | None = None,
    on_run: Callable[[int, int, ValidationRun], None] | None = None,
    on_epoch: Callable[[str, EpochRecord], None] | None = None,
    progress: Progress | None = None,
    cancel: Callable[[], bool] | None = None,
    executor: Executor | None = None,
) -> Calibrated:
    """Choose, retrain and fit (module doc). ``executor``: where the scoring and the retrains
    run (:func:`~resque_core.ranking.rank_plan`, :func:`~resque_core.validation.validate_plan`);
    the energy probes that choose the candidates run here."""
    started = time.perf_counter()
    if k < 1:
        raise ConfigError(f"--k must be at least 1, got {k}")
    config = config or RetrainConfig(seed=plan.run.seed, device=plan.run.device)
    ranking = rank_plan(plan, store=store, progress=progress, cancel=cancel, executor=executor)
    if ranking.cancelled:
        return _empty(started, cancelled=True)
    scored = [(r.candidate, r.score.value) for r in ranking.results if r.ok]
    if not scored:
        raise ConfigError("no candidate could be scored, so none can be retrained to calibrate")
    scorer = plan.scorer(store, progress=progress, cancel=cancel)
    options = CostOptions(settings, procedure=config, meter=meter, probe_seconds=probe_seconds)
    costs, _ = predict_candidates(
        plan, scored, scorer=scorer, options=options, store=store, cancel=cancel
    )
    probes = {
        cid: EnergyProbe(**{k: v for k, v in c.prediction.probe.items() if k != "kwh_per_epoch"})
        for cid, c in costs.items()
        if c.prediction is not None and c.prediction.probe
    }
    opts = _options(plan, ranking, probes, scorer, config, store)
    picks = choose_for_calibration(opts, k, budget_seconds=budget_seconds, budget_kwh=budget_kwh)
    if not picks:
        raise ConfigError(
            "nothing to retrain: every scorable candidate is already at its target accuracy, "
            "or the budget is too small for the cheapest one"
        )
    estimate = {
        "seconds": float(sum(o.seconds for o in picks)),
        "kwh": float(sum(o.kwh for o in picks)),
    }
    limit = budget_seconds
    if budget_kwh is not None:
        # the time the probes say the energy budget buys
        rate = sum(o.kwh for o in picks) / max(sum(o.seconds for o in picks), 1e-9)
        limit = budget_kwh / rate if rate > 0 else None
    if limit is not None:
        config = replace(config, time_budget_s=limit)
    over = {"budget": False}

    def stop() -> bool:
        if limit is not None and time.perf_counter() - started > limit:
            over["budget"] = True
            return True
        return cancel is not None and cancel()

    validation = validate_plan(
        plan,
        candidates=[o.id for o in picks],
        config=config,
        settings=settings,
        meter=meter,
        store=store,
        runs=runs,
        cache_dir=cache_dir,
        probe_seconds=probe_seconds,
        on_start=on_start,
        on_run=on_run,
        on_epoch=on_epoch,
        progress=progress,
        cancel=stop,
        executor=executor,
    )
    doc = validation.to_dict()
    done = [r for r in doc["runs"] if r["status"] != "failed"]
    return Calibrated(
        retrained=[r["candidate_id"] for r in done],
        calibration=doc["calibration"],
        basis={kind: describe(c, settings.level) for kind, c in doc["calibration"].items()},
        estimate=estimate,
        measured={
            "seconds": float(sum(r["seconds"] or 0 for r in done)),
            "kwh": float(sum(r["energy_kwh"] or 0 for r in done)),
            "co2_kg": float(sum(r["co2_kg"] or 0 for r in done)),
        },
        seconds=time.perf_counter() - started,
        cancelled=validation.cancelled and not over["budget"],
        stopped_at_budget=over["budget"],
        run_id=validation.run_id,
        calibration_key=validation.calibration_key,
        runs=doc["runs"],
    )


calibrate = calibrate_plan
"""The facade's name for :func:`calibrate_plan`."""


def _empty(started: float, *, cancelled: bool) -> Calibrated:
    return Calibrated(
        retrained=[],
        calibration={},
        basis={},
        estimate={},
        measured={},
        seconds=time.perf_counter() - started,
        cancelled=cancelled,
    )


class CalibrationJob(ValidationJob):
    """:func:`calibrate_plan` in a background thread, with the live state of
    :class:`~resque_core.validation.ValidationJob` (runs, current, epochs, stage, cancel); at
    the end ``result`` is :meth:`Calibrated.to_dict`."""

    name = "resque-calibrate"

    def _call(self) -> dict[str, Any]:
        return calibrate_plan(self.plan, **self.options, **self._callbacks()).to_dict()
