"""Score every candidate of a plan and rank them.

Candidates share one :class:`~resque_core.scoring.scorer.Scorer`, so the model loads once and the
source-side activation sums are computed once for all synthetic shifts. A candidate that fails
(missing data, say) is reported with its reason; the others are still scored and ranked.

Ordering: RESQUE values of the two estimators are not comparable, so by default candidates are
ranked by RESQUE *within each kind* (distribution shifts first, then new tasks), lower = closer
to what the model already knows = cheaper to reuse. ``ORDERINGS`` maps an ordering name to a key
over scored candidates. With a cost model (``cost=``, :mod:`resque_core.cost.predict`) every
candidate
also gets predicted epochs, kWh and CO2, which are comparable across kinds: the orderings
``epochs``, ``kwh`` and ``co2`` rank all candidates together, and budgets flag candidates.
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import torch

from ._version import __version__
from .cost.calibration import apply_calibrations, describe
from .cost.predict import CandidateCost, CostOptions, Prediction, predict_candidates
from .data.shifts import parse_shift
from .errors import Cancelled, CheckpointError, ConfigError, ResqueError
from .executor import Executor, Outcome
from .executor.local import LocalExecutor
from .jobs import Job
from .plans import Candidate, Plan
from .scoring.scorer import Progress, Score, Scorer
from .scoring.transfer import TRANSFER_SCORES
from .store.cache import ResultStore
from .store.runs import RunStore

__all__ = [
    "COST_ORDERINGS",
    "ORDERINGS",
    "TRANSFER_ORDERINGS",
    "CandidateResult",
    "Ranking",
    "RankingJob",
    "rank_plan",
]


@dataclass
class CandidateResult:
    candidate: Candidate
    score: Score | None = None
    error: str | None = None
    rank: int | None = None
    prediction: Prediction | None = None
    prediction_error: str | None = None
    over_budget: list[str] = field(default_factory=list)
    uncalibrated: bool = False

    @property
    def ok(self) -> bool:
        return self.score is not None

    def to_dict(self) -> dict[str, Any]:
        c = self.candidate
        out: dict[str, Any] = {
            "id": c.id,
            "kind": c.estimator,
            "candidate_kind": c.kind,
            "label": c.title,
            "status": "ok" if self.ok else "failed",
            "rank": self.rank,
            "resque": self.score.value if self.score else None,
            "transfer": dict(self.score.transfer) if self.score else {},
        }
        if c.kind == "shift":
            spec = parse_shift(c.shift)
            out["shift"], out["severity"] = spec.name, spec.severity
        if c.data:
            out["data"] = c.data
        if self.score:
            out["score"] = self.score.to_dict()
        if self.error:
            out["error"] = self.error
        if self.prediction is not None:
            out["predicted"] = self.prediction.to_dict()
            out["over_budget"] = self.over_budget
        if self.prediction_error:
            out["prediction_error"] = self.prediction_error
        if self.uncalibrated:
            out["uncalibrated"] = True
        return out


ORDERINGS: dict[str, tuple[str, Callable[[CandidateResult], tuple]]] = {
    "resque": (
        "RESQUE within each kind (shifts first, then tasks); no cost model applied",
        lambda r: (r.candidate.estimator != "dist", r.score.value),
    ),
    "epochs": (
        "predicted retraining epochs (cost model), all kinds together",
        lambda r: _cost_key(r, "epochs"),
    ),
    "kwh": (
        "predicted retraining energy in kWh (cost model), all kinds together",
        lambda r: _cost_key(r, "energy_kwh"),
    ),
    "co2": (
        "predicted retraining emissions in kg CO2e (cost model), all kinds together",
        lambda r: _cost_key(r, "co2_kg"),
    ),
}
COST_ORDERINGS: tuple[str, ...] = ("epochs", "kwh", "co2")


def _transfer_key(name: str) -> Callable[[CandidateResult], tuple]:
    """Within each kind (shifts first), by the score the right way round (every score is
    higher-is-better: the highest first); candidates without the score last, by RESQUE."""
    sign = -1.0 if TRANSFER_SCORES[name].higher_is_better else 1.0

    def key(r: CandidateResult) -> tuple:
        value = r.score.transfer.get(name) if r.score else None
        if value is None:
            return (r.candidate.estimator != "dist", True, r.score.value if r.score else 0.0)
        return (r.candidate.estimator != "dist", False, sign * value)

    return key


for _name, _info in TRANSFER_SCORES.items():
    ORDERINGS[_name] = (
        f"{_info.title} ({_info.reference}; {_info.direction}) within each kind "
        "(shifts first, then tasks); no cost model applied",
        _transfer_key(_name),
    )
TRANSFER_ORDERINGS: tuple[str, ...] = tuple(TRANSFER_SCORES)
"""Orderings by a transferability score (:mod:`resque_core.scoring.transfer`)."""


def _cost_key(r: CandidateResult, attr: str) -> tuple:
    """Predicted candidates by the figure; the rest (uncalibrated) after them by RESQUE within
    each kind."""
    if r.prediction is not None:
        return (False, getattr(r.prediction, attr), False, 0.0)
    return (True, 0.0, r.candidate.estimator != "dist", r.score.value if r.score else 0.0)


@dataclass
class Ranking:
    plan: Plan
    results: list[CandidateResult]
    seconds: float
    ordered_by: str = "resque"
    cancelled: bool = False
    run_id: str | None = None
    cost: dict[str, Any] | None = None
    stopped: str | None = None
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    @property
    def ordered(self) -> list[CandidateResult]:
        """Scored candidates in rank order, then failed ones."""
        key = ORDERINGS[self.ordered_by][1]
        ok = sorted((r for r in self.results if r.ok), key=key)
        return ok + [r for r in self.results if not r.ok]

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "ranking",
            "run_id": self.run_id,
            "created": self.created,
            "seconds": self.seconds,
            "ordered_by": self.ordered_by,
            "rank_basis": ORDERINGS[self.ordered_by][0],
            "cancelled": self.cancelled,
            "stopped": self.stopped,
            "plan": self.plan.to_dict(),
            "candidates": [r.to_dict() for r in self.ordered],
            "cost": self.cost,
            "environment": environment(),
        }

    def content_key(self) -> str:
        """Same plan, ordering, cost settings and the same results (by their cache keys and
        predictions) give the same key; timings and cache hits do not count."""
        content = {
            "plan": self.plan.to_dict(),
            "ordered_by": self.ordered_by,
            "cancelled": self.cancelled,
            "cost": self.cost,
            "results": [
                [
                    r.candidate.id,
                    r.score.key if r.score else None,
                    r.error,
                    r.prediction.to_dict() if r.prediction else None,
                ]
                for r in self.results
            ],
        }
        blob = json.dumps(content, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()

    def identity_key(self) -> str:
        """Same plan and the same scores (by their cache keys) and failures give the same key,
        whatever the order and cost settings: one stored run per distinct result, which a
        change of order, country or budget updates in place (:meth:`content_key` versions it)."""
        content = {
            "plan": self.plan.to_dict(),
            "cancelled": self.cancelled,
            "results": sorted(
                [r.candidate.id, r.score.key if r.score else None, r.error] for r in self.results
            ),
        }
        blob = json.dumps(content, sort_keys=True, default=str).encode()
        return "id-" + hashlib.sha256(blob).hexdigest()

    @property
    def over_budget(self) -> list[CandidateResult]:
        """Candidates whose predicted cost exceeds a budget of the cost options."""
        return [r for r in self.ordered if r.over_budget]


def environment() -> dict[str, Any]:
    """Hardware and versions recorded with every run."""
    import numpy
    import sklearn

    env: dict[str, Any] = {
        "engine": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "scikit_learn": sklearn.__version__,
        "platform": platform.platform(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        env["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return env


def _score_one(scorer: Scorer, plan: Plan, c: Candidate) -> Score:
    if c.kind == "shift":
        return scorer.score_shift(plan.resolve(plan.source), c.shift, layer=plan.layer)
    if c.kind == "shifted_data":
        return scorer.score_shifted_data(
            plan.resolve(plan.source), plan.resolve(c.data), layer=plan.layer
        )
    return scorer.score_task(plan.resolve(c.data), layer=plan.layer)


def rank_plan(
    plan: Plan,
    *,
    store: ResultStore | None,
    runs: RunStore | None = None,
    progress: Progress | None = None,
    on_candidate: Callable[[int, int, CandidateResult], None] | None = None,
    cancel: Callable[[], bool] | None = None,
    ordered_by: str = "resque",
    cost: CostOptions | None = None,
    reuse_stored: bool = False,
    executor: Executor | None = None,
) -> Ranking:
    """Score all candidates and rank them; store the run in ``runs`` if given.

    ``on_candidate(i, n, result)`` is called after each candidate. Cancelling keeps the
    candidates finished so far (the ranking is marked ``cancelled``). ``cost``: also predict
    epochs, kWh and CO2 per candidate (needed by the cost orderings) and check its budgets.
    ``reuse_stored``: if ``runs`` already holds a run with the same content (plan, settings and
    results), keep its id instead of storing a copy; one that differs only in order or cost
    settings is updated in place. ``executor``: where candidates are scored
    (default: this process, one shared scorer); a remote one (:mod:`resque_core.executor`)
    answers cached candidates here and scores the rest on its workers, which load the checkpoint
    once each; ``progress`` then stays silent and ``on_candidate`` follows completion order.
    """
    if ordered_by not in ORDERINGS:
        raise ConfigError(f"unknown ordering {ordered_by!r}; allowed: {', '.join(ORDERINGS)}")
    if ordered_by in COST_ORDERINGS and cost is None:
        raise ConfigError(f"ordering by {ordered_by!r} needs cost options (a cost model)")
    started = time.perf_counter()
    scorer = plan.scorer(store, progress=progress, cancel=cancel)
    results: list[CandidateResult] = []
    cancelled = False

    def done(i: int, result: CandidateResult) -> None:
        results.append(result)
        if on_candidate is not None:
            on_candidate(i, len(plan.candidates), result)

    try:
        if executor is not None and executor.remote:
            _score_remote(executor, plan, scorer, store, done, cancel)
        else:
            # One worker in this process sharing ``scorer``: the candidates in plan order.
            local = executor or LocalExecutor()
            with local.pool(lambda shared, _store: shared, (scorer, plan)) as pool:
                pool.map(_score_unit, plan.candidates, on_done=lambda o: done(o.index, o.value))
    except Cancelled:
        cancelled = True
    if executor is not None and executor.remote:  # results came in completion order
        order = {c.id: i for i, c in enumerate(plan.candidates)}
        results.sort(key=lambda r: order[r.candidate.id])
    cost_doc = None
    stopped = None
    if cancelled:
        stopped = f"cancelled while scoring: {len(results)} of {len(plan.candidates)} scored"
    if cost is not None and not cancelled:
        scored = [(r.candidate, r.score.value) for r in results if r.ok]
        try:
            costs, used = predict_candidates(
                plan,
                scored,
                scorer=scorer,
                options=cost,
                store=store,
                cancel=cancel,
                progress=progress,
            )
        except Cancelled as e:
            cancelled = True
            # No candidate has a cost, so the cost orderings have nothing to order by.
            ordered_by = "resque"
            stopped = f"all {len(results)} scored; {e}; no predicted costs"
        else:
            ok = [(r.candidate, r.score) for r in results if r.ok]
            costs, unknown, offer = apply_calibrations(
                plan, ok, costs, used, scorer=scorer, options=cost, store=store
            )
            results = [
                _with_cost(r, costs.get(r.candidate.id), r.candidate.id in unknown) for r in results
            ]
            cost_doc = {
                "intensity": cost.settings.intensity.to_dict(),
                "level": cost.settings.level,
                "max_kwh": cost.max_kwh,
                "max_co2_kg": cost.max_co2_kg,
                "calibration_basis": {k: c.basis for k, c in used.items()},
                # what each kind's predictions rest on, or "uncalibrated" (no prior number shown)
                "calibration": {k: describe(c, cost.settings.level) for k, c in used.items()},
                "uncalibrated": sorted({c.estimator for c, _ in ok if c.id in unknown}),
                "calibration_offer": offer,
            }
    ranking = Ranking(
        plan,
        results,
        time.perf_counter() - started,
        ordered_by=ordered_by,
        cancelled=cancelled,
        cost=cost_doc,
        stopped=stopped,
    )
    _assign_ranks(ranking)
    if runs is not None:
        if reuse_stored:
            ranking.run_id = runs.save(
                ranking.to_dict(),
                content_key=ranking.identity_key(),
                version_key=ranking.content_key(),
            )
        else:
            ranking.run_id = runs.save(ranking.to_dict())
    return ranking


class RankingJob(Job):
    """:func:`rank_plan` in a background thread (:class:`~resque_core.jobs.Job`).

    ``options`` are :func:`rank_plan`'s keyword arguments except the callbacks. Beside the
    job's stage and outcome (``result``: the ranking document): ``results`` (finished
    candidates as dicts, in completion order), ``phase`` ("scoring", then "probing" while the
    energy probes of a cost prediction run), ``probes_done`` / ``probes_total`` and
    ``probing_started``. A cancelled ranking keeps what finished (``result["cancelled"]``).
    """

    name = "resque-rank"

    def __init__(self, plan: Plan, **options: Any):
        super().__init__(plan, **options)
        self.results: list[dict[str, Any]] = []
        self.phase = "scoring"
        self.probes_done = 0
        self.probes_total = 0
        self.probing_started: float | None = None

    def _progress(self, stage: str, done: int, total: int) -> None:
        if stage == "energy probe":
            if self.probing_started is None:
                self.probing_started = time.perf_counter()
            self.phase, self.probes_done, self.probes_total = "probing", done, total
            return
        super()._progress(stage, done, total)

    def _candidate(self, _i: int, _n: int, result: CandidateResult) -> None:
        self.results = [*self.results, result.to_dict()]
        self.stage, self.stage_done, self.stage_total = "", 0, 0

    def _call(self) -> dict[str, Any]:
        ranking = rank_plan(
            self.plan,
            **self.options,
            progress=self._progress,
            on_candidate=self._candidate,
            cancel=self.cancel_event.is_set,
        )
        return ranking.to_dict()


def _with_cost(
    result: CandidateResult, cost: CandidateCost | None, uncalibrated: bool = False
) -> CandidateResult:
    """A copy of ``result`` carrying the cost model's answer (None: it was not scored);
    ``uncalibrated``: its kind has no calibration, so no predicted cost."""
    if cost is None:
        return result
    return replace(
        result,
        prediction=cost.prediction,
        prediction_error=cost.error,
        over_budget=list(cost.over_budget),
        uncalibrated=uncalibrated,
    )


def _assign_ranks(ranking: Ranking) -> None:
    counters: dict[str, int] = {}
    for r in ranking.ordered:
        if r.ok:
            # cost orderings are comparable across kinds: one rank sequence
            kind = "all" if ranking.ordered_by in COST_ORDERINGS else r.candidate.estimator
            counters[kind] = counters.get(kind, 0) + 1
            r.rank = counters[kind]


# ----------------------------------------------------------------------------- fanned out
def _score_unit(state: tuple[Scorer, Plan], c: Candidate) -> CandidateResult:
    """Score one candidate: its result, or the reason it failed. A cancel and a checkpoint error
    are raised: the checkpoint is every candidate's, so a file that cannot (or must not) be
    loaded is the plan's error, not one candidate's. Finished scores stay in the result cache."""
    scorer, plan = state
    result = CandidateResult(c)
    try:
        result.score = _score_one(scorer, plan, c)
    except (Cancelled, CheckpointError):
        raise
    except ResqueError as e:
        result.error = str(e)
    return result


def _worker_scorer(plan: Plan, store: Any) -> tuple[Scorer, Plan]:
    """A remote worker's state: its own scorer (the checkpoint loads on first use, once)."""
    return plan.scorer(store), plan


class _Miss(Exception):
    """The result cache has no answer for this candidate."""


class _LookupOnly:
    """The driver's result cache, read-only: a miss stops the scorer before any computation
    (a candidate's own result is the first thing a scorer looks up)."""

    def __init__(self, store: ResultStore):
        self._store = store

    def get(self, key: str):
        hit = self._store.get(key)
        if hit is None:
            raise _Miss
        return hit

    def put(self, *_args: Any, **_kwargs: Any) -> None:
        raise _Miss

    def file_sha256(self, path):
        return self._store.file_sha256(path)


def _score_remote(
    executor: Executor,
    plan: Plan,
    scorer: Scorer,
    store: ResultStore | None,
    done: Callable[[int, CandidateResult], None],
    cancel: Callable[[], bool] | None,
) -> None:
    """Cached candidates answered by the driver, the others scored on ``executor``'s workers.

    The first distribution shift goes out first (with the new tasks); the source-side class sums
    its worker computed are then shared with every worker through the object store, so they are
    computed once, not once per worker. The driver writes the workers' records to ``store``."""
    todo: list[int] = []
    lookup = plan.scorer(_LookupOnly(store) if store is not None else None)
    for i, c in enumerate(plan.candidates):
        if store is None:
            todo.append(i)
            continue
        try:
            done(i, _score_unit((lookup, plan), c))
        except _Miss:
            todo.append(i)
    if not todo:
        return
    dist = [i for i in todo if plan.candidates[i].estimator == "dist"]
    first = [i for i in todo if i not in dist[1:]]
    waves = [first, dist[1:]]
    known: list = []
    with executor.pool(_worker_scorer, plan, store=store) as pool:
        for wave in waves:
            if not wave:
                continue

            def finished(o: Outcome, wave: list[int] = wave) -> None:
                c = plan.candidates[wave[o.index]]
                value = o.value if o.ok else CandidateResult(c, error=o.error)
                done(wave[o.index], value)
                if o.ok and c.estimator == "dist" and not known:
                    known.extend(r for r in o.records if r[2])  # class sums carry arrays

            items = [plan.candidates[i] for i in wave]
            pool.map(_score_unit, items, known=known, on_done=finished, cancel=cancel)
