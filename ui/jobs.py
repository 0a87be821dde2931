"""Rankings computed in a background thread, with per-candidate progress and a working Cancel.

Why a thread: Streamlit reruns the whole script on every click, so a computation running inside
the script cannot react to a click on "Cancel" until it has finished. Here the script starts a
:class:`resque_core.RankingJob` (the engine's one job type, shared with validation and
calibration) and returns at once; the page polls the job with ``st.fragment(run_every=...)``,
which redraws the progress and keeps Cancel clickable. Cancel sets the event that
``rank_plan``'s ``cancel`` callback reads after every batch; the candidates finished so far are
kept. When the job ends, the fragment reruns the whole page, which then draws the ranking.

Jobs belong to one browser session (kept in ``st.session_state``, keyed by the plan's content id)
and the worker never calls Streamlit. A plan whose results are all in the disk cache finishes
within :data:`QUICK_SECONDS`, so its ranking is drawn in the same script run, with no progress bar.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import streamlit as st

from resque_core import Plan, RankingJob, ResqueError, rank_plan
from resque_core.cost import CostOptions
from resque_core.measure import make_meter
from resque_core.retrain import meter_period

from . import cached, state
from .feedback import user_errors
from .views import md_text
from .widgets import plan_problem

__all__ = [
    "RankJob",
    "forget",
    "job_for",
    "job_key",
    "layer_sweep",
    "probe_estimate",
    "progress_line",
    "progress_panel",
    "remaining_seconds",
    "ranking_view",
    "start",
]

POLL_SECONDS = 0.5
QUICK_SECONDS = 1.5
_JOBS = "rank_jobs"
_KEEP = 6  # jobs (plans) remembered per session; older ones are dropped


class RankJob(RankingJob):
    """One ranking being computed (or computed) for one plan, with the page's words for its
    progress; the worker and its state are :class:`~resque_core.ranking.RankingJob`'s.

    Two phases: ``scoring`` (candidate i of n, with the current stage's batches) and
    ``probing`` (energy probe i of n, one per workload, when costs are predicted)."""

    def __init__(self, plan: Plan, *, plan_key: str, **options: Any):
        super().__init__(plan, **options)
        self.plan_key = plan_key
        self.titles = [c.title for c in plan.candidates]

    @property
    def ranking(self) -> dict[str, Any] | None:
        return self.result

    @property
    def fraction(self) -> float:
        """Share of the current phase done, in [0, 1] (finished items plus the current one's
        part)."""
        if self.phase == "probing":
            return min(1.0, self.probes_done / max(self.probes_total, 1))
        n = max(len(self.titles), 1)
        part = self.stage_done / self.stage_total if self.stage_total else 0.0
        return min(1.0, (len(self.results) + part) / n)

    def remaining(self) -> float | None:
        """Estimated seconds left in the current phase (None until one item has finished)."""
        if self.phase == "probing":
            if not self.probes_done or self.probing_started is None:
                return None
            spent = time.perf_counter() - self.probing_started
            return spent / self.probes_done * (self.probes_total - self.probes_done)
        return remaining_seconds(self.elapsed, self.fraction) if self.results else None

    def status(self) -> str:
        """The progress line: stage, item i of n, elapsed and estimated remaining time."""
        n = len(self.titles)
        done = len(self.results)
        if self.cancelling:
            head = "Cancelling… (stops within one batch)"
        elif self.phase == "probing":
            i = min(self.probes_done + 1, max(self.probes_total, 1))
            head = (
                f"Predicting costs · energy probe {i} of {self.probes_total or '?'} "
                "(one per workload; a short measured training run)"
            )
        else:
            current = self.titles[done] if done < n else ""
            head = f"Scoring · candidate {min(done + 1, n)} of {n}: {current}"
            if self.stage:
                head += f" · {self.stage} {self.stage_done}/{self.stage_total} images"
        return progress_line(head, self.elapsed, self.remaining())

    def outcome(self, n_planned: int) -> str | None:
        """What a cancelled ranking finished, in the page's words (None if not cancelled)."""
        ranking = self.ranking
        if ranking is None or not ranking.get("cancelled"):
            return None
        scored = len(ranking["candidates"])
        if self.phase == "probing" or "probing energy" in (ranking.get("stopped") or ""):
            return (
                f"Cancelled while predicting costs: all {scored} of {n_planned} candidates are "
                f"scored; {self.probes_done} of {self.probes_total or '?'} energy probes "
                "finished, so no candidate has a predicted cost and the ranking below is by "
                "RESQUE within each kind. Probes that finished are cached."
            )
        return (
            f"Cancelled after {scored} of {n_planned} candidates, while scoring: the ranking "
            "below covers only those. Finished candidates are cached, so computing again "
            "resumes."
        )


def progress_line(head: str, elapsed: float, remaining: float | None) -> str:
    """``head`` with the elapsed and (when known) the estimated remaining time: the one form
    of every long job's progress line (ranking, probing, validation, calibration)."""
    clock = f"{elapsed:.0f} s elapsed"
    if remaining is not None:
        clock += f" · about {_duration(remaining)} left"
    return f"{head} · {clock}"


def remaining_seconds(elapsed: float, fraction: float) -> float | None:
    """Seconds left at this pace when ``fraction`` of a job took ``elapsed`` seconds."""
    if fraction <= 0 or elapsed <= 0:
        return None
    return elapsed / fraction * (1 - min(fraction, 1.0))


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(seconds, 1):.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _jobs() -> dict[str, RankJob]:
    if _JOBS not in st.session_state:
        st.session_state[_JOBS] = {}
    return st.session_state[_JOBS]


def job_for(plan_key: str) -> RankJob | None:
    """This session's job for the plan with content id ``plan_key``, if one was started."""
    return _jobs().get(plan_key)


def forget(plan_key: str) -> None:
    """Drop the job of a plan (cancelling it if it still runs), e.g. to compute it again."""
    job = _jobs().pop(plan_key, None)
    if job is not None:
        job.cancel()


def job_key(plan_key: str, cost: CostOptions | None = None, ordered_by: str = "resque") -> str:
    """The job id of a plan ranked with these cost options and ordering."""
    if cost is None and ordered_by == "resque":
        return plan_key
    digest = hashlib.sha256(repr((cost, ordered_by)).encode()).hexdigest()[:12]
    return f"{plan_key}:cost:{digest}"


def start(
    plan: Plan, plan_key: str, *, cost: CostOptions | None = None, ordered_by: str = "resque"
) -> RankJob:
    """Start ranking ``plan`` in a worker thread; wait up to QUICK_SECONDS for it to finish.

    ``plan_key`` is the job's id (see :func:`job_key`). Raises ResqueError (nothing started) if
    the cache folder cannot be opened.
    """
    jobs = _jobs()
    job = RankJob(
        plan,
        plan_key=plan_key,
        store=cached.result_store(),
        runs=cached.run_store(),
        executor=state.executor(),  # read here: the worker thread has no session state
        ordered_by=ordered_by,
        cost=cost,
        # Reopening the app re-ranks from the cache: keep one stored run, not a copy each time.
        reuse_stored=True,
    )
    jobs.pop(plan_key, None)
    jobs[plan_key] = job
    for old in list(jobs)[:-_KEEP]:
        forget(old)
    job.start().wait(QUICK_SECONDS)
    return job


def progress_panel(job: RankJob, *, key_prefix: str) -> None:
    """Draw the progress of a running job with a Cancel button; rerun the page when it ends."""

    @st.fragment(run_every=POLL_SECONDS)
    def panel() -> None:
        if not job.running:
            st.rerun()
        n = len(job.titles)
        done = len(job.results)
        st.progress(job.fraction, text=job.status())
        col_info, col_cancel = st.columns([5, 1])
        col_info.caption(
            f"{done} of {n} candidates scored"
            + (
                f" · {job.probes_done} of {job.probes_total} energy probes done"
                if job.phase == "probing"
                else ""
            )
            + " · finished work is cached, so a cancelled ranking resumes where it stopped"
        )
        col_cancel.button(
            "Cancel",
            key=f"{key_prefix}_cancel",
            icon=":material/stop_circle:",
            on_click=job.cancel,
            disabled=job.cancelling,
            width="stretch",
        )
        if job.results:
            st.dataframe(
                [
                    {
                        "candidate": r["label"],
                        "kind": r["kind"],
                        "RESQUE": r["resque"] if r["resque"] is not None else float("nan"),
                        "status": r["status"] if r["status"] == "ok" else r.get("error", "failed"),
                    }
                    for r in job.results
                ],
                hide_index=True,
                width="stretch",
            )

    panel()


def ranking_view(
    plan: Plan,
    *,
    key_prefix: str,
    cost: CostOptions | None = None,
    ordered_by: str = "resque",
) -> dict[str, Any] | None:
    """The ranking of ``plan`` as its JSON dict, computing it if needed.

    Starts the job on first call (a cached plan is ready at once), draws progress with Cancel
    while it runs, and explains what is missing or what failed; returns None in those cases.
    ``cost``/``ordered_by``: also predict costs and order by one of them (a job of its own).
    """
    if (problem := plan_problem(plan)) is not None:
        text, page = problem
        st.info(text, icon=":material/info:")
        st.page_link(page, label="Go there", icon=":material/arrow_forward:")
        return None
    key = job_key(state.plan_key(), cost, ordered_by)
    job = job_for(key)
    if job is None:
        with user_errors("Could not start the ranking") as box:
            job = start(plan, key, cost=cost, ordered_by=ordered_by)
        if box.failed:
            return None
    if job.running:
        progress_panel(job, key_prefix=key_prefix)
        return None
    if job.error is not None:
        st.error(f"The ranking stopped: {md_text(job.error)}", icon="⚠️")
        st.button("Try again", key=f"{key_prefix}_retry", on_click=forget, args=(key,))
        return None
    ranking = job.ranking
    outcome = job.outcome(len(plan.candidates))
    if outcome is not None:
        st.warning(outcome, icon=":material/pause_circle:")
        st.button(
            "Compute the rest",
            key=f"{key_prefix}_resume",
            on_click=forget,
            args=(key,),
            icon=":material/play_arrow:",
        )
    return ranking


_PROBE_OVERHEAD_S = 3.0  # warm-up steps, one evaluation, the retraining data of one candidate


def probe_estimate(
    plan: Plan, meter: str, device: str, probe_seconds: float = 0.5
) -> tuple[float, int]:
    """(seconds, probes): how long the energy probes of ``plan`` take at most the first time
    (later rankings read them from the cache): one probe per workload, at most one for all
    shifts and real shifted sets plus one per task, each three windows at least the meter's
    sampling period long."""
    with_source_head = any(c.kind != "task" for c in plan.candidates)
    probes = int(with_source_head) + sum(c.kind == "task" for c in plan.candidates)
    try:
        period = meter_period(make_meter(meter, device=device))
    except ResqueError:
        period = 1.0
    window = max(probe_seconds, 1.25 * period)
    return probes * (3 * window + _PROBE_OVERHEAD_S), probes


def layer_sweep(
    plan: Plan,
    candidate_id: str,
    layers: Sequence[str],
    *,
    on_layer: Callable[[int, int, str], None] | None = None,
) -> list[tuple[str, float | None, str | None]]:
    """RESQUE of one candidate at each of ``layers``: [(layer, value or None, error or None)].

    Each layer is scored as a one-candidate plan with that layer, so results share the disk cache
    with rankings. ``on_layer(i, n, layer)`` is called before each layer.
    """
    candidate = plan.candidate(candidate_id)
    store = cached.result_store()
    points = []
    for i, name in enumerate(layers):
        if on_layer is not None:
            on_layer(i, len(layers), name)
        one = replace(plan, layer=name, candidates=(candidate,))
        result = rank_plan(one, store=store).results[0]
        points.append((name, result.score.value if result.ok else None, result.error))
    return points
