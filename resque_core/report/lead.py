"""The report's lead: the decision in one sentence (:func:`decision`) and how sure it is."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..kinds import ESTIMATOR_INDEX, ESTIMATOR_WORDS
from ..store import documents as docs
from ..store.documents import check_run
from .blocks import _Bold, _cost_phrase, _g, _plural, _with_interval

__all__ = ["decision"]

_COST_KEYS = {"epochs": "epochs", "kwh": "energy_kwh", "co2": "co2_kg"}  # ordering -> field


def _lead_spans(doc: Mapping[str, Any]) -> tuple[str, ...]:
    if doc["type"] == "validation":
        return _validation_lead(doc)
    scored = docs.scored(doc)
    if not scored:
        return (
            "No candidate was scored, so this run supports no reuse decision"
            + ("; the reasons are listed under Candidates." if doc["candidates"] else "."),
        )
    predicted = docs.with_prediction(scored)
    ordered_by = doc.get("ordered_by", "resque")
    if ordered_by in _COST_KEYS and predicted:
        best = predicted[0]
        what = {"epochs": "retraining epochs", "kwh": "energy", "co2": "emissions"}[ordered_by]
        return (
            "Reuse ",
            _Bold(best["label"]),
            f" ({best['id']}) first: it has the lowest predicted {what} of the "
            f"{_plural(len(predicted), 'candidate')} with a cost prediction, "
            f"{_cost_phrase(best['predicted'])}.",
        )
    spans: list[str] = ["Cheapest to reuse: "]
    kinds = [k for k in ("dist", "task") if any(c["kind"] == k for c in scored)]
    for i, kind in enumerate(kinds):
        group = [c for c in scored if c["kind"] == kind]
        best = group[0]
        cost = f", predicted {_cost_phrase(best['predicted'])}" if best.get("predicted") else ""
        spans += [
            " and " if i else "",
            _Bold(best["label"]),
            f" ({best['id']}) among {_plural(len(group), ESTIMATOR_WORDS[kind])} "
            f"({ESTIMATOR_INDEX[kind]} {best['resque']:.4f}{cost})",
        ]
    spans.append(
        "; the two indices are on different scales, so each kind is ranked on its own."
        if len(kinds) == 2
        else "."
    )
    return tuple(s for s in spans if s)


def _validation_lead(doc: Mapping[str, Any]) -> tuple[str, ...]:
    runs, measured = doc["runs"], docs.measured(doc)
    if not measured:
        return (
            f"No candidate finished retraining ({_plural(len(runs), 'failure')}), so this "
            "validation measured nothing; the reasons are listed below.",
        )
    best = min(measured, key=lambda r: (r["epochs"], r["energy_kwh"] or 0.0))
    predicted = docs.with_prediction(measured)
    inside = sum(
        r["predicted"]["epochs_interval"][0] <= r["epochs"] <= r["predicted"]["epochs_interval"][1]
        for r in predicted
    )
    level = round(doc.get("level", 0.8) * 100)
    return (
        f"Of {_plural(len(measured), 'retrained candidate')}, ",
        _Bold(best["label"]),
        f" ({best['candidate_id']}) was cheapest to reuse: {best['epochs']} epochs, "
        f"{_g(best['energy_kwh'])} kWh and {_g(best['co2_kg'])} kg CO2e measured; "
        f"{inside} of {len(predicted)} measured epoch counts fell inside the {level} % "
        "intervals predicted before retraining.",
    )


def decision(doc: Mapping[str, Any]) -> str:
    """The report's first sentence: the best candidate by the run's ordering, with its predicted
    cost and interval when the run has a cost model (a validation: the cheapest measured one)."""
    return "".join(_lead_spans(check_run(doc)))


def _calibration_notes(doc: Mapping[str, Any], kinds: Sequence[str]) -> list[str]:
    """Where the predicted epochs of each kind come from: the prior or a local calibration."""
    cals = {}
    for c in doc["candidates"]:
        if c.get("predicted") and c["kind"] in kinds:
            cals.setdefault(c["kind"], c["predicted"].get("calibration") or {})
    priors = [k for k in kinds if cals.get(k, {}).get("basis", "prior") == "prior"]
    notes = []
    if priors:
        notes.append(
            f"epochs for {' and '.join(ESTIMATOR_INDEX[k] for k in priors)} come from the "
            "documented prior, not from retraining this model (validate a few candidates to "
            "calibrate)"
        )
    for k in kinds:
        if k not in priors:
            cal = cals[k]
            loo = f", leave-one-out error {cal['loo_mae']:.2f} epochs" if cal.get("loo_mae") else ""
            if cal.get("baseline_loo_mae") is not None:
                loo += f" (the mean of the runs: {cal['baseline_loo_mae']:.2f})"
            form = f" ({cal['form']} form)" if cal.get("model") else ""
            notes.append(
                f"epochs for {ESTIMATOR_INDEX[k]} come from a calibration{form} on {cal['n']} "
                f"local retrains{loo}"
            )
    return notes


def _separation(best: Mapping[str, Any], runner: Mapping[str, Any], key: str) -> str:
    """How clearly ``best`` beats ``runner`` on the predicted ``key``, by their intervals."""
    b, r = best["predicted"], runner["predicted"]
    unit = {"epochs": "epochs", "energy_kwh": "kWh", "co2_kg": "kg CO2e"}[key]
    other = f"{runner['label']} ({_with_interval(r, key)} {unit})"
    if b[f"{key}_interval"][1] < r[f"{key}_interval"][0]:
        return f"clearly ahead of the runner-up {other}: the two intervals do not overlap"
    return (
        f"not clearly ahead of the runner-up {other}: the intervals overlap, so either may "
        "turn out cheaper"
    )


def _confidence(doc: Mapping[str, Any]) -> str:
    """How sure the decision is: separation from the runner-up and the basis of the numbers."""
    if doc["type"] == "validation":
        parts = []
        for kind, table in doc.get("correlation", {}).items():
            c = table.get("epochs", {})
            if c.get("spearman") is None:
                parts.append(
                    f"{ESTIMATOR_INDEX[kind]} vs epochs: {c.get('note', 'no correlation')}"
                )
            else:
                parts.append(
                    f"{ESTIMATOR_INDEX[kind]} vs epochs: Spearman {c['spearman']:+.2f}, "
                    f"Pearson {_g(c['pearson'], '+.2f')} (n={c['n']})"
                )
        return ("How sure: " + "; ".join(parts) + ".") if parts else ""
    scored = docs.scored(doc)
    if not scored:
        return ""
    ordered_by = doc.get("ordered_by", "resque")
    parts = []
    if ordered_by in _COST_KEYS and docs.with_prediction(scored):
        groups = [docs.with_prediction(scored)]
        key = _COST_KEYS[ordered_by]
    else:
        groups = [[c for c in scored if c["kind"] == k] for k in ("dist", "task")]
        key = "epochs"
    for group in groups:
        if len(group) < 2:
            alone = "with a cost prediction" if len(groups) == 1 else "of its kind"
            parts.append(f"{group[0]['label']} is the only candidate {alone}" if group else "")
            continue
        best, runner = group[0], group[1]
        if best.get("predicted") and runner.get("predicted"):
            parts.append(f"{best['label']} is {_separation(best, runner, key)}")
        else:
            spread = group[-1]["resque"] - best["resque"]
            gap = runner["resque"] - best["resque"]
            share = f" ({gap / spread:.0%} of the kind's spread)" if spread > 0 else ""
            parts.append(
                f"{best['label']} leads the runner-up {runner['label']} by "
                f"{gap:.4f} {ESTIMATOR_INDEX[best['kind']]}{share}; RESQUE has no interval, so "
                "rank with the cost model to see whether the gap matters"
            )
    parts += _calibration_notes(doc, sorted({c["kind"] for c in docs.with_prediction(scored)}))
    parts = [p for p in parts if p]
    return "How sure: " + "; ".join(parts) + "." if parts else ""
