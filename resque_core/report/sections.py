"""A run document as the report's list of blocks: title, decision, candidates or validation
results, charts, and a model-card style account of the model, intended use, method, energy
provenance, caveats and the run's settings, hardware and versions."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..kinds import ESTIMATOR_INDEX, ESTIMATOR_WORDS
from ..store import documents as docs
from .blocks import (
    _Block,
    _Bold,
    _Bullets,
    _Chart,
    _g,
    _Heading,
    _p,
    _Para,
    _table,
    _with_interval,
    calibration_line,
)
from .lead import _confidence, _lead_spans
from .transfer_blocks import _score_correlation_blocks, _transfer_table

_CITATION = (
    'Sangarya & Kim, "RESQUE: Quantifying Estimator to Task and Distribution Shift for '
    'Sustainable Model Reusability", AAAI 2025 (arXiv 2412.15511)'
)
_ENERGY_BASIS = {
    "measured": "measured by hardware counters (NVML energy counter / RAPL)",
    "partial": "partly measured (e.g. RAPL CPU counter), partly modelled (RAM constant)",
    "estimate": "an estimate, not a measurement (CPU TDP x load, RAM constant)",
    "replay": "the replay meter: a fixed figure, not a measurement (tests and demos)",
}
_HEATMAP_CAPTIONS = {
    "dist": "Each class's angle between source and shifted data; classes far above the rest are "
    "where reuse will cost most.",
    "task": "Each class's share of samples clustered outside its own cluster.",
}


def _calibration_basis(doc: Mapping[str, Any]) -> list[_Block]:
    """What the predicted figures rest on per kind (form, n, leave-one-out error), and for an
    uncalibrated kind the offer to calibrate with its rough cost."""
    cost = doc.get("cost") or {}
    basis = cost.get("calibration")
    if not basis:
        return []
    parts = [f"{ESTIMATOR_INDEX.get(k, k)}: {text}" for k, text in basis.items()]
    out: list[_Block] = [_p("Predicted figures rest on: " + "; ".join(parts) + ".")]
    if cost.get("uncalibrated"):
        kinds = " and ".join(ESTIMATOR_INDEX.get(k, k) for k in cost["uncalibrated"])
        text = (
            f"{kinds}: uncalibrated on this model, so no predicted cost is shown for those "
            "candidates, only RESQUE."
        )
        offer = cost.get("calibration_offer") or {}
        if offer.get("candidates"):
            text += (
                f" Calibrating (resque calibrate) would retrain {len(offer['candidates'])} "
                f"candidates ({', '.join(offer['candidates'])}): roughly "
                f"{offer['estimated_seconds'] / 60:.1f} min and {offer['estimated_kwh']:.2g} kWh "
                f"({offer['basis']})."
            )
        out.append(_p(text))
    return out


def _ranking_section(doc: Mapping[str, Any]) -> list[_Block]:
    from . import charts as charts

    candidates, scored = doc["candidates"], docs.scored(doc)
    with_cost = bool(docs.with_prediction(candidates))
    columns = ["rank", "kind", "candidate", "id", "RESQUE"]
    if with_cost:
        columns += ["epochs [interval]", "kWh [interval]", "kg CO2e [interval]", "budget"]
    rows = []
    for c in scored:
        row = [c.get("rank"), ESTIMATOR_WORDS[c["kind"]], c["label"], c["id"], f"{c['resque']:.4f}"]
        if with_cost and c.get("uncalibrated"):
            row += ["uncalibrated"] * 3 + ["—"]
        elif with_cost:
            p = c.get("predicted")
            row += [
                _with_interval(p, "epochs", ".1f"),
                _with_interval(p, "energy_kwh"),
                _with_interval(p, "co2_kg"),
                "; ".join(c.get("over_budget") or []) or ("within" if p else "—"),
            ]
        rows.append(row)
    blocks: list[_Block] = [_Heading("Candidates")]
    basis = doc.get("rank_basis") or doc.get("ordered_by", "resque")
    blocks.append(_p(f"Ordered by {basis}; rank 1 is the cheapest to reuse."))
    if doc.get("cancelled"):
        blocks.append(
            _p("This ranking was cancelled: only the candidates finished by then are ranked.")
        )
    if rows:
        blocks.append(_table(columns, rows))
    blocks += _transfer_table(scored)
    blocks += _calibration_basis(doc)
    failed = docs.failed(doc)
    trouble = [
        f"{c['label']} ({c['id']}): cost prediction failed: {c['prediction_error']}"
        for c in candidates
        if c.get("prediction_error")
    ]
    if failed or trouble:
        blocks.append(_Heading("Failed candidates", 3))
        blocks.append(
            _Bullets(
                tuple(f"{c['label']} ({c['id']}): {c.get('error') or 'failed'}" for c in failed)
                + tuple(trouble)
            )
        )
    # User text goes to the charts raw: charts.py is the one place that escapes it for Plotly.
    blocks.append(_Heading("Charts"))
    blocks.append(
        _Chart(
            "RESQUE per candidate",
            lambda: charts.ranking_bars(candidates),
            "Lower means closer to what the model already knows, hence cheaper to reuse. Each "
            "kind has its own axis.",
        )
    )
    if any(c.get("severity") is not None for c in scored):
        blocks.append(
            _Chart(
                "RESQUE_dist against severity",
                lambda: charts.severity_lines(candidates),
                "A steeper curve means the representation drifts faster with severity.",
            )
        )
    for kind in ("dist", "task"):
        if any(c["kind"] == kind and c["score"]["per_class"] for c in scored):
            blocks.append(
                _Chart(
                    f"Per class: {ESTIMATOR_WORDS[kind]}s",
                    lambda kind=kind: charts.class_heatmap(candidates, kind=kind),
                    _HEATMAP_CAPTIONS[kind],
                )
            )
    return blocks


def _validation_section(doc: Mapping[str, Any]) -> list[_Block]:
    from . import charts as charts

    runs = doc["runs"]
    rows = [
        (
            r["label"],
            r["candidate_id"],
            ESTIMATOR_WORDS[r["kind"]],
            _g(r.get("resque"), ".4f"),
            r.get("epochs"),
            _with_interval(r.get("predicted"), "epochs", ".1f"),
            _g(r.get("energy_kwh")),
            _with_interval(r.get("predicted"), "energy_kwh"),
            _g(r.get("co2_kg")),
            _with_interval(r.get("predicted"), "co2_kg"),
            r.get("stop_reason") or r.get("error") or r.get("status"),
        )
        for r in runs
    ]
    blocks: list[_Block] = [
        _Heading("Retrained candidates: predicted against measured"),
        _p(
            f"Predictions ({round(doc.get('level', 0.8) * 100)} % intervals) were made before "
            "each retraining; measured values are what retraining actually cost."
        ),
    ]
    if doc.get("cancelled"):
        blocks.append(_p("This validation was cancelled: the runs finished by then are shown."))
    blocks.append(
        _table(
            (
                "candidate",
                "id",
                "kind",
                "RESQUE",
                "epochs",
                "predicted epochs",
                "kWh",
                "predicted kWh",
                "kg CO2e",
                "predicted kg CO2e",
                "stop",
            ),
            rows,
        )
    )
    failed = docs.unmeasured(doc)
    if failed:
        blocks.append(_Heading("Failed candidates", 3))
        blocks.append(
            _Bullets(
                tuple(
                    f"{r['label']} ({r['candidate_id']}): {r.get('error') or r['status']}"
                    for r in failed
                )
            )
        )
    blocks.append(_Heading("Charts"))
    for measure, title in charts.MEASURE_TITLES.items():
        blocks.append(
            _Chart(
                f"Predicted against measured {title}",
                lambda measure=measure: charts.predicted_vs_measured(runs, measure),
                "Points on the dotted diagonal were predicted exactly; bars are the intervals.",
            )
        )
    corr_rows = [
        (
            ESTIMATOR_INDEX[kind],
            charts.MEASURE_TITLES.get(measure, measure),
            c.get("n"),
            _g(c.get("pearson"), "+.2f"),
            _g(c.get("spearman"), "+.2f"),
            _g(c.get("kendall"), "+.2f"),
            c.get("note", ""),
        )
        for kind, table in doc.get("correlation", {}).items()
        for measure, c in table.items()
    ]
    if corr_rows:
        blocks += [
            _Heading("Correlation of RESQUE with each measure"),
            _p("Per kind (the two RESQUE scales differ), over the runs that finished."),
            _table(("index", "measure", "n", "Pearson", "Spearman", "Kendall", "note"), corr_rows),
        ]
    blocks += _score_correlation_blocks(doc)
    cal_rows = [
        (
            ESTIMATOR_INDEX[kind],
            c["basis"],
            f"{c['form']} (chosen by leave-one-out error; the mean of the runs: "
            f"{_g(c.get('baseline_loo_mae'), '.2f')})"
            if c.get("model")
            else calibration_line(c["intercept"], c["slope"]),
            c["n"],
            _g(c.get("loo_mae"), ".2f"),
            c.get("source", ""),
        )
        for kind, c in doc.get("calibration", {}).items()
    ]
    if cal_rows:
        blocks += [
            _Heading("Calibration: RESQUE to epochs"),
            _table(("index", "basis", "epochs =", "runs", "leave-one-out MAE", "source"), cal_rows),
        ]
    return blocks


def _model_section(doc: Mapping[str, Any]) -> list[_Block]:
    plan = doc["plan"]
    model, run = plan.get("model", {}), plan.get("run", {})
    layers = sorted(
        {(c.get("score") or {}).get("layer") for c in doc.get("candidates", [])} - {None}
    )
    rows = [
        ("plan", plan.get("name")),
        ("checkpoint", model.get("checkpoint")),
        ("checkpoint SHA-256", doc.get("checkpoint_sha256")),
        ("architecture", model.get("arch")),
        ("classes / input channels", f"{model.get('num_classes')} / {model.get('in_channels')}"),
        ("input size", "x".join(map(str, model.get("image_size") or [])) or "the source data's"),
        ("normalisation", f"mean {model.get('mean')}, std {model.get('std')}"),
        ("source data", plan.get("source")),
        ("layer read", plan.get("layer") or ", ".join(layers) or "each estimator's default"),
        ("samples per class", run.get("samples_per_class") or "all"),
        ("seed / device", f"{run.get('seed')} / {run.get('device')}"),
        ("pipeline (compat mode)", _mode_text(doc)),
    ]
    return [_Heading("Model details"), _table(("", ""), [r for r in rows if r[1] is not None])]


_MODES = {
    "project": "project (default): clamped noise, per-value salt-and-pepper, 3-sigma mirror "
    "blur, float images; token layers averaged over tokens; task samples capped",
    "reference": "reference: the reference code's pipeline, to compare with the paper (noise "
    "wraps around in 8 bits, whole-pixel salt-and-pepper, scipy 4-sigma blur, 8-bit rounding "
    "after corruption; token layers averaged over features; every task sample)",
}
"""How the report names each compat mode (docs/METHOD.md has the measured differences)."""


def _mode_text(doc: Mapping[str, Any]) -> str:
    mode = docs.compat_mode(doc)
    return _MODES.get(mode, mode)


def _intended_use() -> list[_Block]:
    return [
        _Heading("Intended use of the reuse decision"),
        _p(
            "To choose, before spending retraining time, energy and CO2, which reuse option "
            "(new data that drifted, or a new task) to try first with this checkpoint. RESQUE "
            "estimates the relative cost of adapting the model; it does not predict the "
            "accuracy reached after retraining, and it says nothing about other models or "
            "training recipes than the ones recorded below."
        ),
    ]


def _method_section(doc: Mapping[str, Any]) -> list[_Block]:
    blocks: list[_Block] = [
        _Heading("Metrics and method"),
        _Bullets(
            (
                "RESQUE_dist (same label space, shifted data): mean over classes of the angle "
                "between the class-summed activations of one layer on the source data and on "
                "the shifted data, divided by pi; in [0, 1].",
                "RESQUE_task (new label space): 1 - ARI between the new task's labels and a "
                "k-means clustering of the model's embeddings initialised at the class "
                "centroids.",
                "Lower is closer to what the model already knows, hence cheaper to reuse. The "
                "two indices are on different scales: without a cost model each kind is ranked "
                "on its own.",
                "Predicted cost: epochs = intercept + slope x RESQUE (a calibration on measured "
                "retrains, or a documented prior); kWh = epochs x the energy of one epoch from "
                "a short measured probe; kg CO2e = kWh x carbon intensity x PUE. Intervals "
                "propagate all three uncertainties (seeded Monte Carlo).",
            )
        ),
        _p(
            f"Pipeline: {_mode_text(doc)}. The two modes give "
            "different values for the same candidate; compare values within one mode only "
            "(docs/METHOD.md)."
        ),
        _p(f"Reference: {_CITATION}."),
    ]
    return blocks


def _energy_rows(doc: Mapping[str, Any]) -> list[tuple[str, str, str, str]]:
    """(figure, how it was obtained, what that means, candidates) per distinct method."""
    found: dict[tuple[str, str, str], list[str]] = {}
    if doc["type"] == "ranking":
        for c in doc["candidates"]:
            p = c.get("predicted")
            if p:
                key = ("predicted kWh per epoch (probe)", p["energy_method"], p["energy_basis"])
                found.setdefault(key, []).append(c["id"])
    else:
        for r in doc["runs"]:
            if r.get("predicted"):
                p = r["predicted"]
                key = ("predicted kWh per epoch (probe)", p["energy_method"], p["energy_basis"])
                found.setdefault(key, []).append(r["candidate_id"])
            if r.get("energy_method"):
                basis = r.get("energy_basis") or (r.get("probe") or {}).get("basis", "")
                key = ("measured retraining energy", r["energy_method"], basis)
                found.setdefault(key, []).append(r["candidate_id"])
    return [
        (figure, method, _ENERGY_BASIS.get(basis, basis or "—"), ", ".join(ids))
        for (figure, method, basis), ids in found.items()
    ]


def _energy_section(doc: Mapping[str, Any]) -> list[_Block]:
    blocks: list[_Block] = [_Heading("Energy provenance")]
    rows = _energy_rows(doc)
    intensity = (doc.get("cost") or {}).get("intensity") or doc.get("intensity")
    if not rows and not intensity:
        blocks.append(
            _p(
                "This run has no energy figures: it was ranked by RESQUE alone, without a cost "
                "model."
            )
        )
        return blocks
    if rows:
        blocks.append(_table(("figure", "obtained with", "meaning", "candidates"), rows))
    if intensity:
        year = f", {intensity['year']}" if intensity.get("year") else ""
        blocks.append(
            _p(
                f"Carbon intensity: {intensity['g_per_kwh']:.0f} g CO2e/kWh "
                f"({intensity.get('location')}, {intensity.get('source')}{year}; relative "
                f"uncertainty {intensity.get('relative_uncertainty', 0):.0%}), PUE "
                f"{intensity.get('pue', 1.0):g}."
            )
        )
    basis = (doc.get("cost") or {}).get("calibration_basis")
    if basis:
        blocks.append(
            _p(
                "Epochs: "
                + "; ".join(
                    f"{ESTIMATOR_INDEX.get(k, k)} from "
                    + (
                        "no calibration (uncalibrated: not predicted)"
                        if k in (doc.get("cost") or {}).get("uncalibrated", ())
                        else "the documented prior"
                        if b == "prior"
                        else "a local calibration"
                    )
                    for k, b in basis.items()
                )
                + "."
            )
        )
    return blocks


def _caveats(doc: Mapping[str, Any]) -> list[_Block]:
    items = [
        "RESQUE_dist and RESQUE_task are not comparable with each other; only predicted "
        "epochs, kWh and CO2e compare across kinds.",
        "The paper reports strong correlations of RESQUE with retraining cost on its "
        "benchmarks; a correlation is not a guarantee for a single candidate.",
    ]
    energy = docs.energy_bases(doc)
    if "prior" in docs.prediction_bases(doc):
        items.append(
            "Some epoch predictions use the documented prior, measured on a different model: "
            "treat their values as placeholders until a validation calibrates this model."
        )
    if "replay" in energy:
        items.append("Some energy figures come from the replay meter: they are not measurements.")
    if "estimate" in energy:
        items.append(
            "Some energy figures are codecarbon estimates (no hardware counter): expect errors "
            "of tens of per cent."
        )
    if doc["type"] == "validation":
        if any(r.get("censored") for r in doc["runs"]):
            items.append(
                "Some retrainings stopped at a limit (max epochs or time) before reaching the "
                "target: their epoch counts are lower bounds."
            )
        items.append("Correlations need 3 or more finished runs with varying values.")
    if doc.get("cancelled"):
        items.append("The run was cancelled: it covers only part of the plan.")
    return [_Heading("Caveats"), _Bullets(tuple(items))]


def _flatten(prefix: str, value: Any) -> list[tuple[str, str]]:
    if isinstance(value, Mapping):
        return [
            kv for k, v in value.items() for kv in _flatten(f"{prefix}.{k}" if prefix else k, v)
        ]
    return [
        (
            prefix,
            json.dumps(value, default=str)
            if isinstance(value, list | bool) or value is None
            else str(value),
        )
    ]


def _provenance_section(doc: Mapping[str, Any]) -> list[_Block]:
    head = [
        ("run id", doc.get("run_id") or "not stored"),
        ("type", doc["type"]),
        ("created (UTC)", doc.get("created")),
        ("compute time", f"{doc.get('seconds', 0):.1f} s"),
    ]
    if doc["type"] == "ranking":
        head.append(("ordered by", doc.get("ordered_by", "resque")))
    settings = {"run": doc["plan"].get("run", {})}
    if doc.get("cost"):
        settings["cost"] = {k: v for k, v in doc["cost"].items() if k != "intensity"}
    if doc.get("retrain_config"):
        settings["retraining"] = doc["retrain_config"]
    return [
        _Heading("Run, settings, hardware and versions"),
        _table(("", ""), [r for r in head if r[1] is not None]),
        _Heading("Settings", 3),
        _table(("setting", "value"), _flatten("", settings)),
        _Heading("Hardware and versions", 3),
        _table(("", ""), _flatten("", doc.get("environment") or {})),
    ]


def _title(doc: Mapping[str, Any]) -> str:
    what = "ranking" if doc["type"] == "ranking" else "validation"
    return f"RESQUE {what}: {doc['plan'].get('name') or 'unnamed plan'}"


def _blocks(doc: Mapping[str, Any]) -> list[_Block]:
    blocks: list[_Block] = [
        _Heading(_title(doc), 1),
        _Para((_Bold("Decision."), " ", *_lead_spans(doc)), lead=True),
    ]
    sure = _confidence(doc)
    if sure:
        blocks.append(_p(sure))
    body = _ranking_section(doc) if doc["type"] == "ranking" else _validation_section(doc)
    return [
        *blocks,
        *body,
        *_model_section(doc),
        *_intended_use(),
        *_method_section(doc),
        *_energy_section(doc),
        *_caveats(doc),
        *_provenance_section(doc),
    ]
