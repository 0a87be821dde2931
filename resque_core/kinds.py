"""The kinds of estimator and of candidate, and the words shown for them, defined once.

Two estimators: ``dist`` (RESQUE_dist: per class, the angle between the model's mean features on
the source data and on shifted data in the same label space) and ``task`` (RESQUE_task: how
poorly k-means clusters of the model's features of a new task's images match the task's labels).
Three candidate kinds: a synthetic ``shift`` of the source data, real ``shifted_data`` in the
source's label space (both scored by ``dist``), and a new ``task``. RESQUE values of the two
estimators are on different scales and are never compared with each other.
"""

from __future__ import annotations

from typing import Literal

__all__ = [
    "CANDIDATE_KINDS",
    "CANDIDATE_WORDS",
    "ESTIMATOR_INDEX",
    "ESTIMATOR_KINDS",
    "ESTIMATOR_PLURALS",
    "ESTIMATOR_WORDS",
    "CandidateKind",
    "EstimatorKind",
    "estimator_of",
]

EstimatorKind = Literal["dist", "task"]
ESTIMATOR_KINDS: tuple[EstimatorKind, ...] = ("dist", "task")
"""In display order: distribution shifts first, then new tasks."""
CandidateKind = Literal["shift", "shifted_data", "task"]
CANDIDATE_KINDS: tuple[CandidateKind, ...] = ("shift", "shifted_data", "task")

ESTIMATOR_WORDS: dict[EstimatorKind, str] = {"dist": "distribution shift", "task": "new task"}
ESTIMATOR_PLURALS: dict[EstimatorKind, str] = {
    "dist": "distribution shifts",
    "task": "new tasks",
}
ESTIMATOR_INDEX: dict[EstimatorKind, str] = {"dist": "RESQUE_dist", "task": "RESQUE_task"}
"""The index each estimator computes, as the papers and the reports name it."""
CANDIDATE_WORDS: dict[CandidateKind, str] = {
    "shift": "synthetic shift",
    "shifted_data": "real shifted data",
    "task": "new task",
}


def estimator_of(kind: CandidateKind) -> EstimatorKind:
    """The estimator that scores a candidate of this kind: ``task`` for a task, else ``dist``."""
    return "task" if kind == "task" else "dist"
