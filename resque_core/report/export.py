"""Shareable reports of a stored run: HTML, PDF, Markdown, JSON and CSV.

A run document (a ranking or a validation, as kept by :class:`~resque_core.store.runs.RunStore`) is
turned into one list of blocks (headings, paragraphs, tables, charts) that every readable format
renders the same way. The report leads with the decision in one sentence (:func:`decision`) and
how sure it is, then the candidates, the charts, the validation results, and a model-card style
account of the model, intended use, method, energy provenance, caveats and the run's settings,
hardware and versions.

- ``html``: one self-contained file: CSS and Plotly's JavaScript inline (once), no reference
  to the network; the charts stay interactive offline.
- ``pdf``: the HTML printed by a headless Chromium (:func:`find_chromium`; ``$BROWSER_PATH``,
  then ``chromium`` / ``chromium-browser`` / Chrome on the PATH; never downloaded). Without one,
  or if printing fails, a text-only PDF written here, which says that the charts are omitted.
- ``md``: the same sections as Markdown (no charts).
- ``json``: the run document itself; :func:`import_run` stores it back unchanged.

Every document is checked by :func:`resque_core.store.documents.check_run` before it is rendered or
imported, so a malformed one is refused with one line naming the bad field.
- ``csv``: the ranking table (a validation: the retrained candidates), raw numbers.

:func:`render` returns the bytes (for a download button); :func:`export_run` writes a file.
"""

from __future__ import annotations

import csv
import html
import io
import json
import os
import re
import shutil
import subprocess
import tempfile
import textwrap
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from .._util import regular_file
from ..errors import ConfigError
from ..kinds import ESTIMATOR_INDEX, ESTIMATOR_WORDS
from ..store import documents as docs
from ..store.documents import RunDoc, check_run
from ..store.runs import RunStore

__all__ = [
    "FORMATS",
    "Export",
    "ReportFormat",
    "decision",
    "export_run",
    "find_chromium",
    "import_run",
    "load_run",
    "render",
]

ReportFormat = Literal["html", "pdf", "md", "json", "csv"]
FORMATS: dict[str, tuple[str, str]] = {
    "html": ("html", "text/html"),
    "pdf": ("pdf", "application/pdf"),
    "md": ("md", "text/markdown"),
    "json": ("json", "application/json"),
    "csv": ("csv", "text/csv"),
}
"""Format -> (file extension, MIME type)."""

_COST_KEYS = {"epochs": "epochs", "kwh": "energy_kwh", "co2": "co2_kg"}  # ordering -> field
_PRINT_TIMEOUT_S = 90.0
_MAX_IMPORT_BYTES = 64 * 2**20  # a stored run is tens of kB; anything this large is not one
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


@dataclass(frozen=True)
class Export:
    """A written report: its ``path``, ``format``, size in ``bytes`` and a ``note`` (why a PDF
    has no charts), or None."""

    path: Path
    format: str
    bytes: int
    note: str | None = None


# ----------------------------------------------------------------------------- run documents
def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ConfigError(f"unknown report format {fmt!r}; allowed: {', '.join(FORMATS)}")


def load_run(run: str | Mapping[str, Any], *, cache_dir: str | os.PathLike | None = None) -> RunDoc:
    """A checked run document: ``run`` itself when it is one, else the stored run with that id
    (``"latest"``: the newest stored run) from the run store under ``cache_dir``."""
    if not isinstance(run, str):
        return check_run(run)
    store = RunStore(cache_dir)
    if run == "latest":
        ids = store.list()
        if not ids:
            raise ConfigError(f"no stored runs in {store.directory}: rank a plan first")
        run = ids[0]
    return check_run(store.load(run))


def import_run(
    source: bytes | str | os.PathLike, *, cache_dir: str | os.PathLike | None = None
) -> str:
    """Store a run exported as JSON (``bytes``: the file's content; ``str`` / path: the file)
    in the run store under ``cache_dir``; return its run id.

    The document is checked (:func:`~resque_core.store.documents.check_run`) and kept unchanged,
    under its own run id (a new one if it has none), so that loading it gives back exactly what
    was exported. Importing the same run twice is harmless; a different run under the same id
    is refused.
    """
    if isinstance(source, bytes | bytearray):
        where = "the uploaded file"
        if len(source) > _MAX_IMPORT_BYTES:
            raise ConfigError(
                f"{where} is {len(source) / 2**20:,.0f} MiB, over the limit of "
                f"{_MAX_IMPORT_BYTES / 2**20:,.0f} MiB for a run export"
            )
        text = bytes(source).decode("utf-8", errors="replace")
    else:
        where = str(source)
        path = regular_file(source, what="run file", error=ConfigError, max_bytes=_MAX_IMPORT_BYTES)
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError as e:
            raise ConfigError(f"cannot read {where}: {e.strerror or e}") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(
            f"{where} is not JSON ({e.msg}, line {e.lineno}): export it again"
        ) from None
    except RecursionError:
        raise ConfigError(
            f"{where} is nested too deeply to be a RESQUE run: export it again"
        ) from None
    doc = check_run(raw)
    store = RunStore(cache_dir)
    run_id = doc.get("run_id")
    if run_id is not None and run_id in store.list():
        if store.load(run_id) == doc:
            return run_id
        raise ConfigError(
            f"a different run with id {run_id!r} is already stored in {store.directory}; "
            "import into another cache directory"
        )
    return store.save(doc, run_id)


# ----------------------------------------------------------------------------- number formats
def _g(x: float | None, fmt: str = ".3g") -> str:
    return "—" if x is None else f"{x:{fmt}}"


def _with_interval(p: Mapping[str, Any] | None, key: str, fmt: str = ".3g") -> str:
    """'value [low, high]' of a prediction's field (a dash without a prediction)."""
    if not p:
        return "—"
    lo, hi = p[f"{key}_interval"]
    return f"{p[key]:{fmt}} [{lo:{fmt}}, {hi:{fmt}}]"


def _cost_phrase(p: Mapping[str, Any]) -> str:
    level = round(p["level"] * 100)
    return (
        f"{_with_interval(p, 'epochs', '.1f')} epochs, {_with_interval(p, 'energy_kwh')} kWh "
        f"and {_with_interval(p, 'co2_kg')} kg CO2e ({level} % intervals)"
    )


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


# ----------------------------------------------------------------------------- blocks
class _Bold(str):
    """A span of a paragraph shown in bold."""


@dataclass(frozen=True)
class _Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class _Para:
    spans: tuple[str, ...]
    lead: bool = False


@dataclass(frozen=True)
class _Bullets:
    items: tuple[str, ...]


@dataclass(frozen=True)
class _Table:
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class _Chart:
    title: str
    figure: Callable[[], Any]  # builds the plotly Figure: only the HTML draws charts
    caption: str = ""


_Block = _Heading | _Para | _Bullets | _Table | _Chart


def _p(*spans: str) -> _Para:
    return _Para(tuple(spans))


def _table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> _Table:
    return _Table(
        tuple(columns), tuple(tuple("—" if v is None else str(v) for v in r) for r in rows)
    )


# ----------------------------------------------------------------------------- the decision
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
            notes.append(
                f"epochs for {ESTIMATOR_INDEX[k]} come from a calibration on {cal['n']} local "
                f"retrains{loo}"
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


# ----------------------------------------------------------------------------- sections
_HEATMAP_CAPTIONS = {
    "dist": "Each class's angle between source and shifted data; classes far above the rest are "
    "where reuse will cost most.",
    "task": "Each class's share of samples clustered outside its own cluster.",
}


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
        if with_cost:
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
    cal_rows = [
        (
            ESTIMATOR_INDEX[kind],
            c["basis"],
            f"{c['intercept']:.2f} + {c['slope']:.2f} x RESQUE",
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
    ]
    return [_Heading("Model details"), _table(("", ""), [r for r in rows if r[1] is not None])]


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
                    + ("the documented prior" if b == "prior" else "a local calibration")
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


# ----------------------------------------------------------------------------- HTML
_CSS = """
:root { color-scheme: light; }
body { font-family: Inter, "Source Sans Pro", "Segoe UI", Arial, sans-serif; color: #1d232b;
  max-width: 1100px; margin: 0 auto; padding: 24px 32px 48px; line-height: 1.45; }
h1 { font-size: 1.7em; margin-bottom: .3em; }
h2 { font-size: 1.3em; border-bottom: 1px solid #d7dce2; padding-bottom: .2em; margin-top: 1.6em; }
h3 { font-size: 1.05em; margin-top: 1.2em; }
p.lead { font-size: 1.12em; background: #eef4fb; border-left: 4px solid #2f6db5;
  padding: .7em 1em; }
table { border-collapse: collapse; margin: .6em 0 1em; font-size: .9em; }
th, td { border: 1px solid #d7dce2; padding: .3em .6em; text-align: left; vertical-align: top; }
th { background: #f3f5f8; }
figure { margin: 1em 0 1.6em; break-inside: avoid; }
figcaption { color: #56606b; font-size: .9em; }
footer { color: #56606b; font-size: .85em; margin-top: 2em; }
@media print {
  body { max-width: none; padding: 0; font-size: 10pt; }
  table { font-size: 8pt; }
  h2, h3 { break-after: avoid; }
  tr, p.lead { break-inside: avoid; }
}
@page { size: A4; margin: 14mm; }
"""
# Everything is inline; the policy makes the browser refuse any fetch, should a future change or
# a crafted label ever try one.
_CSP = (
    "default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; style-src 'unsafe-inline'; "
    "img-src data: blob:; font-src data:"
)
_PRINT_WIDTH_PX = 680  # A4 less the page margins at 96 dpi


def _spans_html(spans: Sequence[str]) -> str:
    return "".join(
        f"<strong>{html.escape(s)}</strong>" if isinstance(s, _Bold) else html.escape(s)
        for s in spans
    )


def _html(doc: Mapping[str, Any], *, static: bool = False) -> str:
    from plotly.offline import get_plotlyjs

    blocks = _blocks(doc)
    body: list[str] = []
    n_charts = 0
    for b in blocks:
        if isinstance(b, _Heading):
            body.append(f"<h{b.level}>{html.escape(b.text)}</h{b.level}>")
        elif isinstance(b, _Para):
            attr = ' class="lead"' if b.lead else ""
            body.append(f"<p{attr}>{_spans_html(b.spans)}</p>")
        elif isinstance(b, _Bullets):
            items = "".join(f"<li>{html.escape(i)}</li>" for i in b.items)
            body.append(f"<ul>{items}</ul>")
        elif isinstance(b, _Table):
            head = "".join(f"<th>{html.escape(c)}</th>" for c in b.columns)
            rows = "".join(
                "<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in r) + "</tr>" for r in b.rows
            )
            thead = f"<thead><tr>{head}</tr></thead>" if any(b.columns) else ""
            body.append(f"<table>{thead}<tbody>{rows}</tbody></table>")
        else:
            n_charts += 1
            fig = b.figure()
            if static:
                fig = fig.update_layout(width=_PRINT_WIDTH_PX)
            div = fig.to_html(
                full_html=False,
                include_plotlyjs=False,
                div_id=f"chart-{n_charts}",
                config={"displaylogo": False, "responsive": not static, "staticPlot": static},
            )
            caption = f"<figcaption>{html.escape(b.caption)}</figcaption>" if b.caption else ""
            body.append(f"<figure><h3>{html.escape(b.title)}</h3>{div}{caption}</figure>")
    plotly_js = f"<script>{get_plotlyjs()}</script>" if n_charts else ""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(_title(doc))}</title><style>{_CSS}</style>{plotly_js}</head>"
        f"<body>{''.join(body)}<footer>RESQUE model-reuse dashboard report; run "
        f"{html.escape(str(doc.get('run_id') or 'not stored'))}.</footer></body></html>\n"
    )


# ----------------------------------------------------------------------------- Markdown
_MD_SPECIAL = re.compile(r"([\\`*<>|]|(?<=\])[(\[])")  # also "](" and "][": no links


def _md(text: str) -> str:
    return _MD_SPECIAL.sub(r"\\\1", text.replace("\n", " "))


def _markdown(doc: Mapping[str, Any]) -> str:
    out: list[str] = []
    charts_noted = False
    for b in _blocks(doc):
        if isinstance(b, _Heading):
            out.append(f"{'#' * b.level} {_md(b.text)}")
        elif isinstance(b, _Para):
            out.append(
                "".join(f"**{_md(s)}**" if isinstance(s, _Bold) else _md(s) for s in b.spans)
            )
        elif isinstance(b, _Bullets):
            out.append("\n".join(f"- {_md(i)}" for i in b.items))
        elif isinstance(b, _Table):
            cells = [[_md(c) for c in b.columns]] + [[_md(v) for v in r] for r in b.rows]
            widths = [max(3, *(len(r[i]) for r in cells)) for i in range(len(b.columns))]
            lines = [
                "| " + " | ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) + " |"
                for r in cells
            ]
            lines.insert(1, "| " + " | ".join("-" * w for w in widths) + " |")
            out.append("\n".join(lines))
        elif not charts_noted:
            charts_noted = True
            out.append("The charts are in the HTML and PDF exports of this run.")
    return "\n\n".join(out) + "\n"


# ----------------------------------------------------------------------------- CSV
def _csv(doc: Mapping[str, Any]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    if doc["type"] == "ranking":
        items = doc["candidates"]
        with_cost = any(c.get("predicted") for c in items)
        head = ["rank", "id", "kind", "candidate_kind", "label", "resque", "shift", "severity"]
        fields: list[tuple[str, Callable[[dict], Any]]] = []
        if with_cost:
            for key in ("epochs", "energy_kwh", "co2_kg"):
                fields += [
                    (f"predicted_{key}", lambda c, k=key: (c.get("predicted") or {}).get(k)),
                    (f"predicted_{key}_low", lambda c, k=key: _bound(c, k, 0)),
                    (f"predicted_{key}_high", lambda c, k=key: _bound(c, k, 1)),
                ]
            fields += [
                ("prediction_basis", lambda c: (c.get("predicted") or {}).get("basis")),
                ("energy_method", lambda c: (c.get("predicted") or {}).get("energy_method")),
                ("over_budget", lambda c: "; ".join(c.get("over_budget") or [])),
            ]
        fields += [
            ("status", lambda c: c.get("status")),
            ("error", lambda c: c.get("error") or c.get("prediction_error")),
        ]
        w.writerow(head + [name for name, _ in fields])
        for c in items:
            w.writerow([_cell(c.get(k)) for k in head] + [_cell(get(c)) for _, get in fields])
        return buf.getvalue()
    head = [
        "candidate_id",
        "kind",
        "candidate_kind",
        "label",
        "resque",
        "status",
        "epochs",
        "energy_kwh",
        "co2_kg",
        "grad_norm",
        "param_change",
        "energy_method",
        "stop_reason",
        "censored",
    ]
    pred = [(f"predicted_{k}", k) for k in ("epochs", "energy_kwh", "co2_kg")]
    w.writerow(
        head
        + [f"{n}{s}" for n, _ in pred for s in ("", "_low", "_high")]
        + ["prediction_basis", "error"]
    )
    for r in doc["runs"]:
        p = r.get("predicted") or {}
        row = [_cell(r.get(k)) for k in head]
        for _, k in pred:
            row += [_cell(p.get(k)), _cell(_bound(r, k, 0)), _cell(_bound(r, k, 1))]
        w.writerow(row + [_cell(p.get("basis")), _cell(r.get("error"))])
    return buf.getvalue()


def _bound(item: Mapping[str, Any], key: str, i: int) -> float | None:
    p = item.get("predicted")
    return p[f"{key}_interval"][i] if p else None


def _cell(v: Any) -> Any:
    return "" if v is None else v


# ----------------------------------------------------------------------------- PDF
def find_chromium() -> str | None:
    """The Chromium (or Chrome) that prints PDFs: ``$BROWSER_PATH`` when set (the variable
    kaleido also reads), else the first of chromium, chromium-browser, google-chrome on the
    PATH. Never downloads one."""
    if "BROWSER_PATH" in os.environ:
        path = os.environ["BROWSER_PATH"]
        return path if os.path.isfile(path) and os.access(path, os.X_OK) else None
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


class _PrintFailed(Exception):
    pass


def _print_pdf(page: str, chromium: str) -> bytes:
    """``page`` (HTML) printed to PDF by a headless Chromium with the network shut off."""
    with tempfile.TemporaryDirectory(prefix="resque-report-") as tmp:
        src, out = Path(tmp, "report.html"), Path(tmp, "report.pdf")
        src.write_text(page, encoding="utf-8")
        cmd = [
            chromium,
            "--headless",
            "--no-sandbox",  # root in containers; the page is our own, with escaped text
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--host-resolver-rules=MAP * ~NOTFOUND",
            f"--user-data-dir={Path(tmp, 'profile')}",
            "--no-pdf-header-footer",
            "--virtual-time-budget=10000",
            f"--print-to-pdf={out}",
            src.as_uri(),
        ]
        try:
            done = subprocess.run(
                cmd,
                capture_output=True,
                timeout=_PRINT_TIMEOUT_S,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            raise _PrintFailed(str(e)) from None
        if not out.exists() or not out.read_bytes().startswith(b"%PDF"):
            tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
            raise _PrintFailed(f"exit code {done.returncode}: {tail[0]}")
        return out.read_bytes()


def _pdf(doc: Mapping[str, Any]) -> tuple[bytes, str | None]:
    chromium = find_chromium()
    if chromium is None:
        note = "charts omitted: no Chromium found for static rendering"
    else:
        try:
            return _print_pdf(_html(doc, static=True), chromium), None
        except _PrintFailed as e:
            note = f"charts omitted: printing with {chromium} failed ({e})"
    return _TextPdf(_title(doc)).render(_blocks(doc), note), note


_PDF_CHARS = str.maketrans({"→": "->", "≤": "<=", "≥": ">=", "×": "x", "ρ": "rho", "π": "pi"})


class _TextPdf:
    """A minimal PDF writer: A4 pages of text in the standard Helvetica and Courier fonts
    (WinAnsi encoding, so no font files), for when no browser can print the HTML report."""

    width, height, margin = 595, 842, 50
    fonts = {
        "body": ("F1", 9.5),
        "bold": ("F2", 9.5),
        "mono": ("F3", 7.0),
        "h1": ("F2", 16.0),
        "h2": ("F2", 12.5),
        "h3": ("F2", 10.5),
    }

    def __init__(self, title: str):
        self.title = title
        self.pages: list[list[str]] = []
        self.y = 0.0

    def _new_page(self) -> None:
        self.pages.append([])
        self.y = self.height - self.margin

    def _line(self, text: str, style: str, gap: float = 1.35) -> None:
        font, size = self.fonts[style]
        if not self.pages or self.y - size * gap < self.margin:
            self._new_page()
        self.y -= size * gap
        raw = text.translate(_PDF_CHARS).encode("cp1252", errors="replace")
        safe = raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")
        self.pages[-1].append(
            f"BT /{font} {size:g} Tf {self.margin} {self.y:.1f} Td (".encode() + safe + b") Tj ET"
        )

    def _chars(self, style: str) -> int:
        """Characters per line (Courier is 0.6 em wide; Helvetica about 0.5 on average)."""
        size = self.fonts[style][1]
        return int((self.width - 2 * self.margin) / (size * (0.6 if style == "mono" else 0.52)))

    def _wrapped(self, text: str, style: str, indent: str = "") -> None:
        for line in textwrap.wrap(text, self._chars(style), subsequent_indent=indent) or [""]:
            self._line(line, style)

    def _table_line(self, text: str) -> None:
        # Cut, not wrapped at spaces: the columns keep their positions on the first line.
        width = self._chars("mono")
        self._line(text[:width], "mono")
        for i in range(width, len(text), width - 4):
            self._line("    " + text[i : i + width - 4], "mono")

    def render(self, blocks: Sequence[_Block], note: str | None) -> bytes:
        first_chart = True
        for b in blocks:
            if isinstance(b, _Heading):
                self.y -= 6
                self._wrapped(b.text, f"h{min(b.level, 3)}")
                if b.level == 1 and note:
                    self._wrapped(f"Note: {note}.", "bold")
            elif isinstance(b, _Para):
                self._wrapped("".join(b.spans), "bold" if b.lead else "body")
                self.y -= 4
            elif isinstance(b, _Bullets):
                for item in b.items:
                    self._wrapped(f"- {item}", "body", indent="  ")
                self.y -= 4
            elif isinstance(b, _Table):
                cells = [list(b.columns), *map(list, b.rows)]
                widths = [min(48, max(len(r[i]) for r in cells)) for i in range(len(b.columns))]
                for r in cells:
                    if not any(r):
                        continue
                    line = "  ".join(
                        (v if len(v) <= w else v[: w - 1] + "~").ljust(w)
                        for v, w in zip(r, widths, strict=True)
                    )
                    self._table_line(line.rstrip())
                self.y -= 6
            elif first_chart:
                first_chart = False
                self._wrapped(f"[{note or 'charts omitted'}; see the HTML export]", "body")
        return self._assemble()

    def _assemble(self) -> bytes:
        objects: list[bytes] = [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"",  # the page tree, once the page objects are numbered
            *(
                b"<< /Type /Font /Subtype /Type1 /BaseFont /%s /Encoding /WinAnsiEncoding >>" % name
                for name in (b"Helvetica", b"Helvetica-Bold", b"Courier")  # F1, F2, F3
            ),
        ]
        title = self.title.translate(_PDF_CHARS).encode("cp1252", errors="replace")
        title = title.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")
        objects.append(b"<< /Title (" + title + b") /Producer (resque_core report) >>")
        kids = []
        for ops in self.pages:
            stream = zlib.compress(b"\n".join(ops))
            objects.append(
                f"<< /Length {len(stream)} /Filter /FlateDecode >>\nstream\n".encode()
                + stream
                + b"\nendstream"
            )
            content = len(objects)
            objects.append(
                f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {self.width} {self.height}] "
                f"/Resources << /Font << /F1 3 0 R /F2 4 0 R /F3 5 0 R >> >> "
                f"/Contents {content} 0 R >>".encode()
            )
            kids.append(f"{len(objects)} 0 R")
        objects[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(kids)} >>".encode()
        out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
        offsets = []
        for i, body in enumerate(objects, start=1):
            offsets.append(len(out))
            out += f"{i} 0 obj\n".encode() + body + b"\nendobj\n"
        xref = len(out)
        out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
        out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
        out += (
            f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R /Info 6 0 R >>\n"
            f"startxref\n{xref}\n%%EOF\n"
        ).encode()
        return bytes(out)


# ----------------------------------------------------------------------------- entry points
def _render(doc: RunDoc, fmt: str) -> tuple[bytes, str | None]:
    """``doc`` (already checked) in format ``fmt`` (a known one), and the PDF's note."""
    if fmt == "pdf":
        return _pdf(doc)
    if fmt == "json":
        return (json.dumps(doc, indent=1, ensure_ascii=False, default=str) + "\n").encode(), None
    text = {"html": _html, "md": _markdown, "csv": _csv}[fmt](doc)
    return text.encode("utf-8"), None


def render(doc: Mapping[str, Any], fmt: ReportFormat) -> bytes:
    """The report of run document ``doc`` in format ``fmt`` (see :data:`FORMATS` for the file
    extension and MIME type of each). A PDF is always produced: text only, with a note, when no
    Chromium can print the charts."""
    _check_format(fmt)
    return _render(check_run(doc), fmt)[0]


def export_run(
    run: str | Mapping[str, Any],
    fmt: ReportFormat,
    out_path: str | os.PathLike,
    *,
    cache_dir: str | os.PathLike | None = None,
) -> Export:
    """Write the report of ``run`` (a run document, a stored run id or ``"latest"``) to
    ``out_path`` in format ``fmt``."""
    _check_format(fmt)
    data, note = _render(load_run(run, cache_dir=cache_dir), fmt)
    path = Path(out_path)
    try:
        path.write_bytes(data)
    except OSError as e:
        raise ConfigError(f"cannot write {path}: {e.strerror or e}") from None
    return Export(path, fmt, len(data), note)
