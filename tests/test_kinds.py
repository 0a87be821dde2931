"""Kinds: the two estimators, the three candidate kinds, their display words, defined once."""

import typing

from resque_core import kinds


def test_each_candidate_kind_maps_to_its_estimator():
    assert kinds.CANDIDATE_KINDS == ("shift", "shifted_data", "task")
    assert kinds.ESTIMATOR_KINDS == ("dist", "task")
    assert [kinds.estimator_of(k) for k in kinds.CANDIDATE_KINDS] == ["dist", "dist", "task"]
    assert typing.get_args(kinds.CandidateKind) == kinds.CANDIDATE_KINDS
    assert typing.get_args(kinds.EstimatorKind) == kinds.ESTIMATOR_KINDS


def test_every_kind_has_its_words():
    assert kinds.ESTIMATOR_WORDS == {"dist": "distribution shift", "task": "new task"}
    assert kinds.ESTIMATOR_PLURALS == {"dist": "distribution shifts", "task": "new tasks"}
    assert kinds.ESTIMATOR_INDEX == {"dist": "RESQUE_dist", "task": "RESQUE_task"}
    assert kinds.CANDIDATE_WORDS == {
        "shift": "synthetic shift",
        "shifted_data": "real shifted data",
        "task": "new task",
    }
