"""The report's blocks for the transferability scores (LogME, LEEP, NCE, H-score, TransRate,
GBC) beside RESQUE: the ranking's score table, and the validation's side-by-side correlations
with every measure and the sentence naming the best predictor of epochs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..kinds import ESTIMATOR_INDEX, ESTIMATOR_WORDS
from .blocks import (
    _Block,
    _Bullets,
    _g,
    _Heading,
    _p,
    _table,
)

__all__ = ["best_epochs_predictor"]  # and the blocks for sections.py


def _transfer_info() -> dict[str, Any]:
    # imported on use: only a document with transferability scores needs their descriptions
    from ..scoring.transfer import TRANSFER_SCORES

    return TRANSFER_SCORES


def _transfer_table(scored: list[dict[str, Any]]) -> list[_Block]:
    """RESQUE beside every transferability score of the scored candidates (none: no block)."""
    names = {n for c in scored for n in (c.get("transfer") or {})}
    if not names:
        return []
    info = _transfer_info()
    order = [n for n in info if n in names]
    columns = ["rank", "kind", "candidate", "RESQUE (lower = better)"] + [
        f"{info[n].title} ({'higher' if info[n].higher_is_better else 'lower'} = better)"
        for n in order
    ]
    rows = [
        [c.get("rank"), ESTIMATOR_WORDS[c["kind"]], c["label"], f"{c['resque']:.4f}"]
        + [_g((c.get("transfer") or {}).get(n), ".4g") for n in order]
        for c in scored
    ]
    refs = "; ".join(f"{info[n].title}: {info[n].reference}" for n in order)
    return [
        _Heading("Transferability scores", 3),
        _p(
            "The same forward passes also give the transferability scores of the literature. "
            "RESQUE is lower-is-better; each of these is higher-is-better. Within a kind they "
            f"can be compared with RESQUE's order ({refs})."
        ),
        _table(columns, rows),
    ]


def _score_correlation_blocks(doc: Mapping[str, Any]) -> list[_Block]:
    """Every score against each measure, side by side, and which one predicted epochs best."""
    from . import charts as charts

    table = doc.get("score_correlation") or {}
    if not any(table.values()):
        return []
    info = _transfer_info()

    def title(name: str) -> str:
        return "RESQUE" if name == "resque" else info[name].title if name in info else name

    rows = [
        (
            ESTIMATOR_INDEX[kind],
            title(name),
            charts.MEASURE_TITLES.get(measure, measure),
            c.get("n"),
            _g(c.get("spearman"), "+.2f"),
            _g(c.get("pearson"), "+.2f"),
            _g(c.get("kendall"), "+.2f"),
        )
        for kind, scores in table.items()
        for measure in _measures_of(scores)
        for name, by_measure in scores.items()
        if (c := by_measure.get(measure)) is not None
    ]
    blocks: list[_Block] = [
        _Heading("Every score against each measure"),
        _p(
            "RESQUE and each transferability score over the same finished runs. RESQUE is "
            "lower-is-better, so it predicts cost well with a positive correlation; the others "
            "are higher-is-better and predict cost well with a negative one."
        ),
        _table(("index", "score", "measure", "n", "Spearman", "Pearson", "Kendall"), rows),
    ]
    verdicts = [best_epochs_predictor(kind, scores, title) for kind, scores in table.items()]
    verdicts = [v for v in verdicts if v]
    if verdicts:
        blocks.append(_Bullets(tuple(verdicts)))
    return blocks


def _measures_of(scores: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The measures of a kind's score correlations, in the order first seen."""
    return list(dict.fromkeys(m for by_measure in scores.values() for m in by_measure))


def best_epochs_predictor(kind: str, scores: Mapping[str, Mapping[str, Any]], title) -> str:
    """One sentence: which score's Spearman correlation with epochs was strongest in the
    direction that means "predicts cost" (positive for RESQUE, negative for the others)."""
    ranked = []
    for name, by_measure in scores.items():
        rho = (by_measure.get("epochs") or {}).get("spearman")
        if rho is not None:
            ranked.append(((rho if name == "resque" else -rho), name, rho, by_measure["epochs"]))
    if not ranked:
        return ""
    strength, name, rho, c = max(ranked)
    index = ESTIMATOR_INDEX[kind]
    if strength <= 0:
        return (
            f"{index}: no score correlated with retraining epochs in its predicting direction "
            f"(n = {c.get('n')})."
        )
    return (
        f"{index}: {title(name)} predicted retraining epochs best (Spearman {rho:+.2f}, "
        f"n = {c.get('n')})."
    )
