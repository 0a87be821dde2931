"""Transferability scores in the ranking, its orderings and the validation's correlations."""

from __future__ import annotations

import pytest

from resque_core.plans import DEMO_PLAN, load_plan
from resque_core.ranking import ORDERINGS, TRANSFER_ORDERINGS, CandidateResult, Ranking
from resque_core.scoring.scorer import Score
from resque_core.scoring.transfer import TRANSFER_SCORES
from resque_core.store.documents import check_run
from resque_core.validation import MEASURES, score_correlations

PLAN = load_plan(DEMO_PLAN)


def _score(kind: str, value: float, transfer: dict[str, float]) -> Score:
    return Score(kind, value, {}, "layer", 0, 10, 0.1, 0.1, False, "cpu", "fp32", "k", {}, 0.1,
                 transfer)  # fmt: skip


def _results() -> list[CandidateResult]:
    shifts = [c for c in PLAN.candidates if c.estimator == "dist"][:3]
    tasks = [c for c in PLAN.candidates if c.estimator == "task"][:2]
    return [
        CandidateResult(shifts[0], _score("dist", 0.1, {"logme": 0.5, "gbc": -1.0})),
        CandidateResult(shifts[1], _score("dist", 0.2, {"logme": 0.9, "gbc": -3.0})),
        CandidateResult(shifts[2], _score("dist", 0.3, {})),  # no score: last in its kind
        CandidateResult(tasks[0], _score("task", 0.4, {"logme": -0.2})),
        CandidateResult(tasks[1], _score("task", 0.5, {"logme": 0.1})),
    ]


def test_every_score_is_an_ordering_highest_first_within_each_kind():
    assert set(TRANSFER_ORDERINGS) == set(TRANSFER_SCORES) <= set(ORDERINGS)
    results = _results()
    ids = [r.candidate.id for r in results]
    by_logme = Ranking(PLAN, results, 0.0, ordered_by="logme").ordered
    assert [r.candidate.id for r in by_logme] == [ids[1], ids[0], ids[2], ids[4], ids[3]]
    by_gbc = Ranking(PLAN, results, 0.0, ordered_by="gbc").ordered
    assert [r.candidate.id for r in by_gbc][:2] == [ids[0], ids[1]]  # -1 beats -3
    assert "higher is better" in ORDERINGS["logme"][0]


def test_candidate_documents_carry_the_scores_and_still_check():
    ranking = Ranking(PLAN, _results(), 0.0, ordered_by="logme")
    for i, r in enumerate(ranking.ordered):
        r.rank = i + 1
    doc = ranking.to_dict()
    first = doc["candidates"][0]
    assert first["transfer"] == {"logme": 0.9, "gbc": -3.0}
    assert first["score"]["transfer"] == first["transfer"]
    check_run(doc)
    # a document written before the scores existed still loads
    for c in doc["candidates"]:
        c.pop("transfer"), c["score"].pop("transfer")
    check_run(doc)


def _run(kind, resque, epochs, **transfer):
    return {
        "kind": kind,
        "status": "completed",
        "resque": resque,
        "transfer": transfer,
        **{m: None for m in MEASURES},
        "epochs": epochs,
    }


def test_score_correlations_side_by_side():
    runs = [
        _run("dist", 0.1, 0, logme=0.9, leep=-0.1),
        _run("dist", 0.2, 1, logme=0.8, leep=-0.2),
        _run("dist", 0.3, 3, logme=0.1, leep=-0.1),
        _run("dist", 0.4, 5, logme=0.2, leep=-0.9),
        {**_run("dist", 0.5, 9, logme=0.0), "status": "failed"},  # not counted
    ]
    table = score_correlations(runs)
    assert set(table) == {"dist"}
    assert set(table["dist"]) == {"resque", "logme", "leep"}
    assert table["dist"]["resque"]["epochs"]["spearman"] == pytest.approx(1.0)
    assert table["dist"]["logme"]["epochs"]["spearman"] == pytest.approx(-0.8)
    assert table["dist"]["logme"]["epochs"]["n"] == 4
    assert table["dist"]["resque"]["grad_norm"]["n"] == 0  # no such measure recorded
