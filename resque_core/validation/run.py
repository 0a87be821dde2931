"""Retrain chosen candidates for real (:func:`validate_plan`, :class:`ValidationJob`): predict
first, retrain, measure, then store the run with its statistics (:mod:`.stats`)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..cost import Signals, candidate_signals
from ..cost.predict import (
    Calibration,
    CostSettings,
    Prediction,
    calibration_key,
    load_calibrations,
    predict_cost,
    probe_candidate,
)
from ..errors import Cancelled, ConfigError, ResqueError
from ..executor import Executor, Outcome
from ..jobs import Job
from ..measure.energy import Meter, make_meter
from ..plans import Candidate, Plan
from ..ranking import environment, rank_plan
from ..retrain import (
    EnergyProbe,
    EpochRecord,
    RetrainConfig,
    RetrainResult,
    candidate_data,
    retrain,
)
from ..scoring.scorer import Progress, Scorer, resolve_device
from ..store.cache import ResultStore, default_cache_dir
from ..store.runs import RunStore
from .stats import (
    correlations,
    recalibrate,
    score_correlations,
    suggest_candidates,
)

__all__ = ["Validation", "ValidationJob", "ValidationRun", "validate_plan"]


@dataclass
class ValidationRun:
    """One retrained candidate: its RESQUE, the prediction made before retraining, the energy
    probe behind it, and the measured result (or the error that stopped it)."""

    candidate: Candidate
    resque: float | None
    prediction: Prediction | None = None
    probe: EnergyProbe | None = None
    result: RetrainResult | None = None
    error: str | None = None
    signals: Signals | None = None
    transfer: dict[str, float] = field(default_factory=dict)
    per_class: dict[str, float] = field(default_factory=dict)  # of RESQUE, for the signals

    def to_dict(self) -> dict[str, Any]:
        c, r = self.candidate, self.result
        out: dict[str, Any] = {
            "candidate_id": c.id,
            "kind": c.estimator,
            "candidate_kind": c.kind,
            "label": c.title,
            "resque": self.resque,
            "status": r.status if r else "failed",
            "epochs": r.epochs if r else None,
            "energy_kwh": r.energy_kwh if r else None,
            "co2_kg": r.co2_kg if r else None,
            "energy_method": r.energy_method if r else None,
            "energy_basis": r.energy_basis if r else None,
            "grad_norm": r.grad_norm if r else None,
            "param_change": r.param_change if r else None,
            "stop_reason": r.stop_reason if r else None,
            "reached_target": r.reached_target if r else False,
            "censored": r.censored if r else False,
            "seconds": r.seconds if r else None,
            "predicted": self.prediction.to_dict() if self.prediction else None,
            "probe": self.probe.to_dict() if self.probe else None,
            "signals": self.signals.to_dict() if self.signals else None,
            "error": self.error or (r.error if r else None),
            "transfer": dict(self.transfer),
        }
        if r is not None:
            out["retrain"] = r.to_dict()
        return out


@dataclass
class Validation:
    plan: Plan
    runs: list[ValidationRun]
    correlation: dict[str, Any]
    calibrations: dict[str, Calibration]
    calibration_key: str
    checkpoint_sha256: str
    config: RetrainConfig
    settings: CostSettings
    seconds: float
    cancelled: bool = False
    run_id: str | None = None
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    score_correlation: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "validation",
            "run_id": self.run_id,
            "created": self.created,
            "seconds": self.seconds,
            "cancelled": self.cancelled,
            "checkpoint_sha256": self.checkpoint_sha256,
            "calibration_key": self.calibration_key,
            "procedure": self.config.procedure(),
            "retrain_config": self.config.to_dict(),
            "intensity": self.settings.intensity.to_dict(),
            "level": self.settings.level,
            "plan": self.plan.to_dict(),
            "runs": [r.to_dict() for r in self.runs],
            "correlation": self.correlation,
            "score_correlation": self.score_correlation,
            "calibration": {k: c.to_dict() for k, c in self.calibrations.items()},
            "environment": environment(),
        }


# ----------------------------------------------------------------------------- main entry
def validate_plan(
    plan: Plan,
    *,
    candidates: Sequence[str] | None = None,
    limit: int | None = None,
    config: RetrainConfig | None = None,
    settings: CostSettings,
    meter: Meter | str = "auto",
    store: ResultStore | None = None,
    runs: RunStore | None = None,
    cache_dir: str | os.PathLike | None = None,
    recalibrate_after: bool = True,
    probe_seconds: float = 0.5,
    on_start: Callable[[int, int, str], None] | None = None,
    on_run: Callable[[int, int, ValidationRun], None] | None = None,
    on_epoch: Callable[[str, EpochRecord], None] | None = None,
    progress: Progress | None = None,
    cancel: Callable[[], bool] | None = None,
    executor: Executor | None = None,
) -> Validation:
    """Retrain the chosen candidates of ``plan`` and compare with the predictions.

    ``candidates``: ids to retrain (default: all, or ``limit`` of them spread over the RESQUE
    range). ``config``: the retraining procedure (default: :class:`RetrainConfig` with the
    plan's seed and device). ``meter``: a meter or a name for :func:`make_meter`.
    ``probe_seconds``: length of each energy-probe window. Callbacks: ``on_start(i, n,
    candidate_id)`` before and ``on_run(i, n, run)`` after each candidate, ``on_epoch(
    candidate_id, record)`` after each epoch, ``progress(stage, done, total)`` during scoring
    and training; ``cancel()`` is polled often: cancelling keeps the finished runs and the
    measured part of the current one. ``executor``: where the retrains run (default: here, one
    after another); on a remote one each candidate's probe, prediction and retraining is one
    unit on a worker of its own (one whole GPU, or a CPU), ``on_epoch`` and ``progress`` stay
    silent during retraining, and cancelling stops the running retrains without their partial
    measurements (the finished runs are kept).
    """
    started = time.perf_counter()
    config = config or RetrainConfig(seed=plan.run.seed, device=plan.run.device)
    if limit is not None and limit < 1:
        raise ConfigError(f"the number of candidates to retrain must be at least 1, got {limit}")
    if candidates is not None:
        candidates = list(dict.fromkeys(candidates))
        chosen = [plan.candidate(cid) for cid in candidates]
        if not chosen:
            raise ConfigError("no candidate ids given: name at least one, or use --limit")
        scored_plan = replace(plan, candidates=tuple(chosen))
    else:
        scored_plan = plan
    ranking = rank_plan(
        scored_plan, store=store, progress=progress, cancel=cancel, executor=executor
    )
    by_id = {r.candidate.id: r for r in ranking.results}
    if candidates is not None:
        ids = list(candidates)
    elif limit is not None:
        scores = [
            (r.candidate.id, r.candidate.estimator, r.score.value) for r in ranking.results if r.ok
        ]
        ids = suggest_candidates(scores, limit)
    else:
        ids = [r.candidate.id for r in ranking.ordered]
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    scorer = plan.scorer(store, progress=progress, cancel=cancel)
    sha = scorer.checkpoint_sha256()
    key = calibration_key(sha, config.procedure())
    before = load_calibrations(cache, key)
    device = resolve_device(config.device)
    remote = executor is not None and executor.remote
    the_meter = make_meter(meter, device=device) if isinstance(meter, str) and not remote else meter
    out: list[ValidationRun] = []
    cancelled = ranking.cancelled
    session = _Session(
        plan,
        scorer,
        config,
        settings,
        the_meter,
        store,
        before,
        probe_seconds,
        on_epoch,
        progress,
        cancel,
    )
    if remote:
        cancelled = _retrain_remote(
            executor,
            _WorkerSpec(plan, config, settings, meter, before, probe_seconds),
            [_unscored(plan, cid, by_id) for cid in ids],
            out,
            on_start,
            on_run,
            cancel,
            cancelled,
            store,
        )
    else:
        with the_meter:
            for i, cid in enumerate(ids):
                if cancelled or (cancel is not None and cancel()):
                    cancelled = True
                    break
                if on_start is not None:
                    on_start(i, len(ids), cid)
                run = _unscored(plan, cid, by_id)
                if run.error is None:
                    cancelled = session.retrain(run)
                out.append(run)
                if on_run is not None:
                    on_run(i, len(ids), run)
    validation = Validation(
        plan=plan,
        runs=out,
        correlation=correlations([r.to_dict() for r in out]),
        score_correlation=score_correlations([r.to_dict() for r in out]),
        calibrations=before,
        calibration_key=key,
        checkpoint_sha256=sha,
        config=config,
        settings=settings,
        seconds=time.perf_counter() - started,
        cancelled=cancelled,
    )
    if runs is not None:
        # stored first, so that the refit below counts this run like the earlier ones
        validation.run_id = runs.save(validation.to_dict())
    if recalibrate_after:
        validation.calibrations = recalibrate(
            runs or RunStore(cache),
            key,
            cache_dir=cache,
            extra=[] if runs is not None else [validation.to_dict()],
        )
    validation.seconds = time.perf_counter() - started
    if runs is not None:
        runs.save(validation.to_dict(), run_id=validation.run_id)
    return validation


@dataclass
class _Session:
    """What every candidate's probe, prediction and retraining share within one validation."""

    plan: Plan
    scorer: Scorer
    config: RetrainConfig
    settings: CostSettings
    meter: Meter
    store: ResultStore | None
    calibrations: dict[str, Calibration]
    probe_seconds: float
    on_epoch: Callable[[str, EpochRecord], None] | None
    progress: Progress | None
    cancel: Callable[[], bool] | None

    def retrain(self, run: ValidationRun) -> bool:
        """Probe, predict and retrain ``run``'s candidate into it; True if the user cancelled."""
        c = run.candidate
        on_epoch = self.on_epoch
        try:
            data = candidate_data(
                self.plan,
                c,
                workspace=self.scorer.workspace,
                seed=self.scorer.run.seed,
                config=self.config,
            )
            run.probe = probe_candidate(
                self.plan,
                c,
                scorer=self.scorer,
                config=self.config,
                meter=self.meter,
                store=self.store,
                data=data,
                seconds=self.probe_seconds,
            )
            run.signals = _signals(self, run, data)
            run.prediction = predict_cost(
                run.resque,
                calibration=self.calibrations[c.estimator],
                probe=run.probe,
                settings=self.settings,
                signals=run.signals,
            )
            run.result = retrain(
                self.scorer.checkpoint().model,
                data,
                config=self.config,
                meter=self.meter,
                intensity=self.settings.intensity,
                on_epoch=(lambda rec: on_epoch(c.id, rec)) if on_epoch is not None else None,
                progress=self.progress,
                cancel=self.cancel,
            )
        except Cancelled:
            return True
        except ResqueError as e:
            run.error = str(e)
            return False
        return run.result.status == "cancelled"


def _signals(session: _Session, run: ValidationRun, data: Any) -> Signals | None:
    """The forward-pass signals the cost model reads (recorded with the run for the refit)."""
    try:
        return candidate_signals(
            session.plan,
            run.candidate,
            resque=run.resque,
            per_class=run.per_class,
            scorer=session.scorer,
            config=session.config,
            store=session.store,
            data=data,
        )
    except ResqueError:
        return None


def _unscored(plan: Plan, cid: str, by_id: dict[str, Any]) -> ValidationRun:
    """Candidate ``cid``'s run before retraining: its RESQUE, or why it cannot be retrained."""
    scored = by_id.get(cid)
    run = ValidationRun(plan.candidate(cid), scored.score.value if scored and scored.ok else None)
    if scored is not None and scored.ok:
        run.transfer = dict(scored.score.transfer)
        run.per_class = dict(scored.score.per_class)
    if scored is None or not scored.ok:
        run.error = scored.error if scored else "not scored (cancelled)"
    return run


@dataclass(frozen=True)
class _WorkerSpec:
    """What a remote worker needs to build its own :class:`_Session` (sent once per worker)."""

    plan: Plan
    config: RetrainConfig
    settings: CostSettings
    meter: Meter | str
    calibrations: dict[str, Calibration]
    probe_seconds: float


def _worker_session(spec: _WorkerSpec, store: Any) -> _Session:
    """A worker's session: its own scorer and meter (opened once), the driver's calibrations;
    ``store`` records the energy probes for the driver to write."""
    plan = spec.plan
    scorer = plan.scorer(store)
    meter = spec.meter
    if isinstance(meter, str):
        meter = make_meter(meter, device=resolve_device(spec.config.device))
    meter.__enter__()
    return _Session(
        plan,
        scorer,
        spec.config,
        spec.settings,
        meter,
        store,
        spec.calibrations,
        spec.probe_seconds,
        None,
        None,
        None,
    )


def _retrain_unit(session: _Session, run: ValidationRun) -> ValidationRun:
    session.retrain(run)
    return run


def _retrain_remote(
    executor: Executor,
    spec: _WorkerSpec,
    pending: list[ValidationRun],
    out: list[ValidationRun],
    on_start: Callable[[int, int, str], None] | None,
    on_run: Callable[[int, int, ValidationRun], None] | None,
    cancel: Callable[[], bool] | None,
    cancelled: bool,
    store: ResultStore | None,
) -> bool:
    """Retrain ``pending``'s scored candidates on ``executor``'s workers into ``out`` (in
    ``pending``'s order); True if cancelled. A worker that died twice is its run's error."""
    n = len(pending)
    todo = [i for i, run in enumerate(pending) if run.error is None]
    finished: dict[int, ValidationRun] = {}
    for i, run in enumerate(pending):
        if run.error is not None:  # not scored: reported at once, as locally
            if on_start is not None:
                on_start(i, n, run.candidate.id)
            finished[i] = run
            if on_run is not None:
                on_run(i, n, run)

    def done(o: Outcome) -> None:
        i = todo[o.index]
        run = o.value if o.ok else replace(pending[i], error=o.error)
        finished[i] = run
        if on_run is not None:
            on_run(i, n, run)

    if todo and not cancelled:
        with executor.pool(_worker_session, spec, store=store) as pool:
            try:
                pool.map(
                    _retrain_unit,
                    [pending[i] for i in todo],
                    on_start=(lambda k: on_start(todo[k], n, pending[todo[k]].candidate.id))
                    if on_start is not None
                    else None,
                    on_done=done,
                    cancel=cancel,
                )
            except Cancelled:
                cancelled = True
    out += [finished[i] for i in sorted(finished)]
    return cancelled


class ValidationJob(Job):
    """:func:`validate_plan` in a background thread (:class:`~resque_core.jobs.Job`), with live
    state for a UI or a notebook.

    ``options`` are :func:`validate_plan`'s keyword arguments except the callbacks. Beside the
    job's stage and outcome (``result``: the validation document): ``runs`` (finished runs as
    dicts), ``current`` (id being retrained), ``index`` / ``total`` (its position) and ``epochs``
    (records of the current candidate). :meth:`cancel` stops after the current batch; what was
    measured is kept.
    """

    name = "resque-validate"

    def __init__(self, plan: Plan, **options: Any):
        super().__init__(plan, **options)
        self.runs: list[dict[str, Any]] = []
        self.current: str | None = None
        self.index = 0
        self.total = 0
        self.epochs: list[dict[str, Any]] = []

    def _on_start(self, i: int, n: int, cid: str) -> None:
        self.index, self.total, self.current, self.epochs = i, n, cid, []

    def _on_run(self, _i: int, _n: int, run: ValidationRun) -> None:
        self.runs = [*self.runs, run.to_dict()]

    def _on_epoch(self, _cid: str, record: EpochRecord) -> None:
        self.epochs = [*self.epochs, record.to_dict()]

    def _callbacks(self) -> dict[str, Any]:
        return {
            "on_start": self._on_start,
            "on_run": self._on_run,
            "on_epoch": self._on_epoch,
            "progress": self._progress,
            "cancel": self.cancel_event.is_set,
        }

    def _call(self) -> dict[str, Any]:
        return validate_plan(self.plan, **self.options, **self._callbacks()).to_dict()

    def _finish(self) -> None:
        self.current = None
