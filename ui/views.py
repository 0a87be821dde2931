"""Read-only displays of a ranking run, shared by the Ranking page and the History page.

The documents shown are run documents (:mod:`resque_core.store.documents`): a page passes either a
run it just computed or a stored one checked by ``check_run``. Text from a document (labels,
errors, sources) is shown through :func:`md_text`, never as Markdown; charts get it raw and
escape it themselves.
"""

from __future__ import annotations

import re
from typing import Any

import streamlit as st

from resque_core import MEASURES, recalibrate
from resque_core.report import FORMATS, calibration_line, charts, render
from resque_core.scoring import TRANSFER_SCORES
from resque_core.store import documents as docs

from . import cached, widgets
from .feedback import user_errors

__all__ = [
    "MEASURE_TITLES",
    "ui_words",
    "calibration_rows",
    "correlation_rows",
    "md_text",
    "ranking_charts",
    "ranking_metrics",
    "ranking_table",
    "report_downloads",
    "validation_results",
    "validation_rows",
]

_FORMAT_LABELS = {
    "html": "HTML report",
    "pdf": "PDF",
    "md": "Markdown",
    "json": "JSON (re-importable)",
    "csv": "CSV table",
}


# Characters that start Markdown or Streamlit syntax anywhere in a line: emphasis, code, links
# and images ([...], ![...]), raw HTML, tables, strike-through, LaTeX ($), Streamlit's
# :color[...] and :material/...: directives. Escaping [ and ] already disarms "(url)".
_MD_INLINE = re.compile(r"([\\`*_\[\]<>#|~$:{}!])")
# ... and what starts a block at the beginning of the text: a list item or a numbered one.
_MD_LINE_START = re.compile(r"^(\s*)([-+]|\d+(?=[.)]))")


# Command-line flags an engine message may name, as the app's settings (Checkpoint page).
_FLAG_WORDS = {
    "--arch": "the Architecture setting",
    "--num-classes": "the Classes setting",
    "--in-channels": "the Input channels setting",
    "--image-size": "the Image size setting",
    "--mean": "the Normalisation mean",
    "--std": "the Normalisation std",
    "--trusted": "the Trust this file switch",
}
_BOTH_WORDS = re.compile(r"\(--[a-z-]+(?: [^;()]+)?; ('[^']+') in the app\)")
_FLAG = re.compile(r"--[a-z][a-z-]+")


def ui_words(text: str) -> str:
    """An engine message in the app's words: "(--image-size; 'Image size' in the app)" becomes
    "('Image size')", and a bare flag such as ``--arch`` the setting it stands for."""
    text = _BOTH_WORDS.sub(lambda m: f"({m[1]})", str(text))
    return _FLAG.sub(lambda m: _FLAG_WORDS.get(m[0], m[0]), text)


def md_text(value: Any) -> str:
    """``value`` (one line) as literal text inside Markdown: no links, images, emphasis, HTML or
    Streamlit directives; plain words and punctuation such as ( ) ; . are left as they are."""
    text = _MD_INLINE.sub(r"\\\1", str(value).replace("\n", " "))
    return _MD_LINE_START.sub(lambda m: m[1] + ("\\" + m[2] if m[2] in "-+" else m[2] + "\\"), text)


def ranking_metrics(ranking: dict[str, Any], n_planned: int | None = None) -> None:
    """Four headline figures of a ranking run."""
    candidates = ranking["candidates"]
    scored, failed = docs.scored(ranking), docs.failed(ranking)
    cols = st.columns(4)
    cols[0].metric("Ranked", f"{len(scored)} / {n_planned or len(candidates)}")
    cols[1].metric("Failed", len(failed), help="Candidates that could not be scored; see below.")
    cols[2].metric(
        "Compute time",
        f"{sum(c['score']['compute_seconds'] for c in scored):.1f} s",
        help="Time the values took to compute when they were first computed.",
    )
    cols[3].metric(
        "From cache",
        f"{sum(c['score']['cached'] for c in scored)} / {len(scored)}",
        help="Results are cached on disk by content; a repeated ranking is instant.",
    )
    if failed and not scored:
        st.error(
            f"No candidate could be scored. First reason: {md_text(_reason(failed[0]))}",
            icon="⚠️",
        )
    elif failed:
        st.warning(
            "Not scored: "
            + "; ".join(f"**{md_text(c['label'])}** — {md_text(_reason(c))}" for c in failed),
            icon=":material/error:",
        )


def _reason(c: dict[str, Any]) -> str:
    return c.get("error") or "no reason recorded"


def ranking_table(ranking: dict[str, Any], *, key: str) -> None:
    """The ranking as a sortable table (with predicted costs when the run has them)."""
    rows = widgets.ranking_rows(ranking["candidates"])
    extra = transfer_columns(rows, ranking["candidates"])
    st.dataframe(
        rows,
        hide_index=True,
        key=key,
        column_config={
            **extra,
            "rank": st.column_config.NumberColumn(
                "rank",
                help="Rank within its kind (1 = cheapest)"
                if ranking.get("ordered_by", "resque") == "resque"
                else "Rank by predicted cost, all kinds together (1 = cheapest)",
            ),
            "RESQUE": st.column_config.NumberColumn(
                "RESQUE ↓", format="%.4f", help="RESQUE: lower is better (cheaper to reuse)"
            ),
            "epochs": st.column_config.NumberColumn(
                "epochs", format="%.1f", help="Predicted retraining epochs (cost model)"
            ),
            "Wh": st.column_config.NumberColumn(
                "Wh", format="%.3g", help="Predicted retraining energy, watt-hours"
            ),
            "g CO2e": st.column_config.NumberColumn(
                "g CO2e", format="%.3g", help="Predicted retraining emissions"
            ),
            "seconds": st.column_config.NumberColumn("seconds", format="%.2f"),
            "images": st.column_config.NumberColumn("images", help="Images of the candidate read"),
        },
    )
    basis = ranking.get("rank_basis")
    if basis:
        st.caption(f"Ordered by {md_text(basis)}.")
    if extra:
        st.caption(
            "RESQUE: lower is better. The transferability scores (LogME, LEEP, ...; hidden "
            "columns, shown from the table's column menu) are higher-is-better."
        )
    cost = ranking.get("cost")
    if cost:
        intensity = cost["intensity"]
        priors = sorted(k for k, b in cost.get("calibration_basis", {}).items() if b == "prior")
        st.caption(
            f"Costs: {int(round(cost['level'] * 100))}% intervals; carbon intensity "
            f"{intensity['g_per_kwh']:.0f} g CO2e/kWh ({md_text(intensity['location'])}, "
            f"{md_text(intensity['source'])}), PUE {intensity['pue']:g}. "
            + (
                f"Epochs for {md_text(', '.join(priors))} come from the documented prior (no local "
                "retraining measured yet; the Validation page calibrates them)."
                if priors
                else "Epochs come from a calibration on measured retrainings."
            )
        )
        probes = probe_costs(ranking["candidates"])
        if probes:
            st.caption(probe_sentence(probes))
        cheapest = _cheapest(ranking["candidates"])
        if cheapest is not None:
            p = cheapest["predicted"]
            st.caption(
                f"Cheapest predicted retraining: **{md_text(cheapest['label'])}**, "
                f"{charts.energy_text(p['energy_kwh'])} and {charts.co2_text(p['co2_kg'])}: "
                f"{md_text(charts.everyday(p['energy_kwh'], p['co2_kg']))}."
            )
    stopped = ranking.get("stopped")
    if stopped:
        st.caption(f"This run stopped early: {md_text(stopped)}.")


def transfer_columns(rows: list[dict[str, Any]], candidates: list[dict[str, Any]]) -> dict:
    """Add each transferability score the candidates carry to their table ``rows`` (one row per
    candidate, same order) and return the columns' configs: hidden at first (the table's column
    menu shows them), each header saying which direction is better."""
    names = [n for n in TRANSFER_SCORES if any(n in (c.get("transfer") or {}) for c in candidates)]
    config: dict[str, Any] = {}
    for n in names:
        info = TRANSFER_SCORES[n]
        arrow = "↑" if info.higher_is_better else "↓"
        for row, c in zip(rows, candidates, strict=True):
            row[n] = (c.get("transfer") or {}).get(n)
        config[n] = {
            **st.column_config.NumberColumn(
                f"{info.title} {arrow}",
                format="%.4g",
                help=f"{info.title} ({info.reference}): {info.direction}. "
                "Shown from the table's column menu.",
            ),
            "hidden": True,
        }
    return config


def _cheapest(candidates: list[dict[str, Any]]) -> dict[str, Any] | None:
    costed = [c for c in candidates if c.get("predicted")]
    return min(costed, key=lambda c: c["predicted"]["energy_kwh"]) if costed else None


def probe_costs(candidates: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The energy probes behind a run's predictions, one per workload: {workload: {seconds,
    joules, shared (candidates using it), reused (read from the cache), note}}."""
    out: dict[str, dict[str, Any]] = {}
    for c in candidates:
        probe = (c.get("predicted") or {}).get("probe") or {}
        if probe.get("probe_seconds") is None:
            continue
        name = probe.get("workload") or c["id"]
        entry = out.setdefault(
            name,
            {
                "seconds": probe["probe_seconds"],
                "joules": probe.get("probe_joules") or 0.0,
                "shared": 0,
                "reused": "reused from the cache" in (probe.get("note") or ""),
                "note": probe.get("note") or "",
            },
        )
        entry["shared"] += 1
    return out


def probe_sentence(probes: dict[str, dict[str, Any]]) -> str:
    """One line on what the energy probes cost: "This estimate cost 9 s and 0.2 Wh: 2 energy
    probes, one per workload ..."."""
    seconds = sum(p["seconds"] for p in probes.values())
    kwh = sum(p["joules"] for p in probes.values()) / 3.6e6
    reused = sum(p["reused"] for p in probes.values())
    shared = ", ".join(
        f"{md_text(name.split(' [')[0])}: {p['shared']} candidate{'s' if p['shared'] != 1 else ''}"
        for name, p in probes.items()
    )
    text = (
        f"This estimate cost {seconds:.0f} s and {charts.energy_text(kwh)} of measured training: "
        f"{len(probes)} energy probe{'s' if len(probes) != 1 else ''}, one per workload "
        f"({shared}), each scaled by a candidate's own batches"
    )
    if reused:
        text += f"; {reused} of them measured earlier and reused from the cache (no new cost)"
    notes = sorted({p["note"].replace("; reused from the cache", "") for p in probes.values()})
    notes = [n for n in notes if n and n != "reused from the cache"]
    if notes:
        text += f". Note: {md_text(notes[0])}"
    return text + "."


def ranking_charts(ranking: dict[str, Any], *, key_prefix: str) -> None:
    """Ranking bars, RESQUE against severity and the per-class heatmap, in tabs; with predicted
    costs also the cost bars (first when the run is ordered by cost) and RESQUE against cost."""
    candidates = ranking["candidates"]
    with_cost = any(c.get("predicted") for c in candidates)
    by_cost = ranking.get("ordered_by", "resque") != "resque"
    names = ["RESQUE", "RESQUE vs severity", "Per class"]
    if with_cost:
        names = (
            ["Predicted cost", "RESQUE vs cost", *names]
            if by_cost
            else [*names[:1], "Predicted cost", "RESQUE vs cost", *names[1:]]
        )
    tabs = dict(zip(names, st.tabs(names), strict=True))
    if with_cost:
        with tabs["Predicted cost"]:
            st.plotly_chart(charts.cost_bars(candidates), key=f"{key_prefix}_chart_cost")
            st.caption(
                "Bars: the point prediction; whiskers: the interval, which carries the "
                "calibration's, the energy probe's and the carbon intensity's uncertainty."
            )
        with tabs["RESQUE vs cost"]:
            measure = st.radio(
                "Predicted",
                ["energy_kwh", "epochs", "co2_kg"],
                format_func={"epochs": "epochs", "energy_kwh": "energy", "co2_kg": "CO2e"}.get,
                key=f"{key_prefix}_cost_measure",
                horizontal=True,
            )
            st.plotly_chart(
                charts.resque_vs_cost(candidates, measure), key=f"{key_prefix}_chart_scatter"
            )
            st.caption(
                "Each kind on its own RESQUE scale, from 0. Within a kind, cost rises with "
                "RESQUE; between kinds the energy per epoch (the probe) decides."
            )
    with tabs["RESQUE"]:
        st.plotly_chart(
            charts.ranking_bars(candidates, by_resque=by_cost), key=f"{key_prefix}_chart_bars"
        )
        if by_cost:
            st.caption("RESQUE itself, lowest first within each kind (the table is by cost).")
    severity_tab, class_tab = tabs["RESQUE vs severity"], tabs["Per class"]
    with severity_tab:
        st.plotly_chart(charts.severity_lines(candidates), key=f"{key_prefix}_chart_severity")
        st.caption("A steeper curve means the model's representation drifts faster with severity.")
    with class_tab:
        kind = st.radio(
            "Kind",
            ["dist", "task"],
            format_func=lambda k: charts.KIND_TITLES[k],
            key=f"{key_prefix}_heatmap_kind",
            horizontal=True,
        )
        st.plotly_chart(
            charts.class_heatmap(candidates, kind=kind), key=f"{key_prefix}_chart_classes"
        )
        st.caption(
            "Shifts: the angle of each class between source and shifted data. Tasks: each "
            "class's contribution to 1 − ARI. Classes far above the rest are where reuse will "
            "cost most."
        )


def report_downloads(run: dict[str, Any], *, key_prefix: str) -> None:
    """Download buttons for every export format of a stored run (built when clicked)."""
    run_id = run.get("run_id") or "unsaved"
    cols = st.columns(len(FORMATS))
    for col, (fmt, (ext, mime)) in zip(cols, FORMATS.items(), strict=True):
        col.download_button(
            _FORMAT_LABELS[fmt],
            data=lambda fmt=fmt: render(run, fmt),
            file_name=f"resque-{run_id}.{ext}",
            mime=mime,
            key=f"{key_prefix}_download_{fmt}",
            icon=":material/download:",
            on_click="ignore",
            width="stretch",
        )


# ----------------------------------------------------------------------------- validation runs
# Titles of every measure a validation records (the charts title the three predicted ones).
MEASURE_TITLES = {
    **charts.MEASURE_TITLES,
    "grad_norm": "gradient norm",
    "param_change": "parameter change",
}


def _with_interval(
    p: dict | None, measure: str, scale: float = 1.0, fmt: str = ".2g"
) -> str | None:
    """'value [low, high]' of a prediction (None for a run that was never predicted)."""
    if not p:
        return None
    lo, hi = (v * scale for v in p[f"{measure}_interval"])
    return f"{p[measure] * scale:{fmt}} [{lo:{fmt}}, {hi:{fmt}}]"


def validation_rows(runs: list[dict], labels: dict[str, str]) -> list[dict]:
    """Table rows of measured retrainings beside the predictions made before them."""
    return [
        {
            "candidate": labels.get(r["candidate_id"], r.get("label") or r["candidate_id"]),
            "RESQUE": r["resque"],
            "epochs": r["epochs"],
            "predicted epochs": _with_interval(r["predicted"], "epochs", fmt=".1f"),
            "kWh": r["energy_kwh"],
            "predicted kWh": _with_interval(r["predicted"], "energy_kwh"),
            "g CO2e": r["co2_kg"] * 1000 if r["co2_kg"] is not None else None,
            "predicted g CO2e": _with_interval(r["predicted"], "co2_kg", scale=1000),
            "stop": r["stop_reason"] or r["error"],
            "prediction basis": (r["predicted"] or {}).get("basis"),
            "id": r["candidate_id"],
        }
        for r in runs
    ]


def correlation_rows(correlation: dict) -> list[dict]:
    """Rows of RESQUE's correlation with each measure, per kind (measures a run lacks are left
    out)."""
    rows = []
    for kind, table in correlation.items():
        for m in MEASURES:
            c = table.get(m)
            if c is None:
                continue
            rows.append(
                {
                    "kind": widgets.KIND_LABELS[kind],
                    "measure": MEASURE_TITLES[m],
                    "n": c["n"],
                    "Pearson": c["pearson"],
                    "Spearman": c["spearman"],
                    "Kendall": c["kendall"],
                    "note": c.get("note", ""),
                }
            )
    return rows


def calibration_rows(calibrations: dict) -> list[dict]:
    return [
        {
            "kind": widgets.KIND_LABELS[kind],
            "basis": c["basis"],
            "epochs =": calibration_line(c["intercept"], c["slope"], times="×"),
            "runs": c["n"],
            "residual sd": c["residual_sd"],
            "leave-one-out MAE (epochs)": c.get("loo_mae"),
            "source": c["source"],
        }
        for kind, c in calibrations.items()
    ]


def _training_curves(doc: dict, measured: list[dict], labels: dict[str, str], key: str) -> None:
    with_record = [r for r in measured if r.get("retrain")]
    curves = {
        labels.get(r["candidate_id"], r["candidate_id"]): [
            e["held_accuracy"] for e in r["retrain"]["records"]
        ]
        for r in with_record
    }
    initial = {
        labels.get(r["candidate_id"], r["candidate_id"]): r["retrain"]["initial_held_accuracy"]
        for r in with_record
        if r["retrain"].get("initial_held_accuracy") is not None
    }
    if not any(curves.values()) and not initial:
        st.info("No candidate needed a training epoch.", icon=":material/info:")
        return
    target = doc["retrain_config"]["target_accuracy"]
    st.plotly_chart(charts.training_curves(curves, target=target, initial=initial), key=key)
    st.caption("Epoch 0 is the accuracy before retraining; the dotted line is the target.")


def validation_results(
    doc: dict[str, Any], *, key_prefix: str, labels: dict[str, str], editable: bool = False
) -> None:
    """A validation run: measured vs predicted, correlations, calibration, training curves and
    exports. ``editable``: offer to recalibrate from all stored validations."""
    runs = doc["runs"]
    if doc["cancelled"]:
        by_status = {k: sum(r["status"] == k for r in runs) for k in ("completed", "cancelled")}
        st.warning(
            f"Cancelled: {by_status['completed']} candidate(s) retrained to the end and "
            f"{by_status['cancelled']} stopped mid-way (keeping the epochs it finished and the "
            "energy it used); candidates not started are not listed.",
            icon=":material/pause_circle:",
        )
    measured = docs.measured(runs)
    cols = st.columns(4)
    cols[0].metric("Retrained", f"{len(measured)} / {len(runs)}")
    cols[1].metric("Epochs in total", sum(r["epochs"] for r in measured))
    cols[2].metric("Energy", f"{sum(r['energy_kwh'] for r in measured):.3g} kWh")
    cols[3].metric("CO2e", f"{sum(r['co2_kg'] for r in measured) * 1000:.3g} g")
    methods = sorted({r["energy_method"] for r in measured if r["energy_method"]})
    intensity = doc["intensity"]
    st.caption(
        f"Energy: {md_text('; '.join(methods)) or '—'}. Carbon intensity "
        f"{intensity['g_per_kwh']:.0f} g CO2e/kWh ({md_text(intensity['source'])}), PUE "
        f"{intensity['pue']:g}. Predictions: "
        f"{int(round(doc['level'] * 100))}% intervals, made before retraining."
    )
    st.dataframe(validation_rows(runs, labels), hide_index=True, key=f"{key_prefix}_results")

    compare_tab, corr_tab, cal_tab, curve_tab = st.tabs(
        ["Predicted vs measured", "Correlation", "Calibration", "Training curves"]
    )
    with compare_tab:
        measure = st.radio(
            "Measure",
            ["epochs", "energy_kwh", "co2_kg"],
            format_func=MEASURE_TITLES.get,
            horizontal=True,
            key=f"{key_prefix}_measure",
        )
        st.plotly_chart(
            charts.predicted_vs_measured(runs, measure, labels=labels),
            key=f"{key_prefix}_chart_compare",
        )
    with corr_tab:
        st.caption(
            "RESQUE against each measure, per kind (the two RESQUE scales differ). Needs 3+ "
            "finished runs with varying values."
        )
        st.dataframe(
            correlation_rows(doc["correlation"]), hide_index=True, key=f"{key_prefix}_correlation"
        )
    with cal_tab:
        calibration = doc["calibration"]
        if editable:
            recal = st.session_state.setdefault(f"{key_prefix}_recalibrated", {})
            if st.button(
                "Recalibrate from all stored validations",
                key=f"{key_prefix}_recalibrate",
                icon=":material/refresh:",
                help="Refit RESQUE → epochs on every stored validation of this checkpoint and "
                "procedure.",
            ):
                with user_errors("Could not recalibrate") as box:
                    fitted = recalibrate(
                        cached.run_store(), doc["calibration_key"], cache_dir=cached.cache_dir()
                    )
                    recal[doc["calibration_key"]] = {k: c.to_dict() for k, c in fitted.items()}
                if not box.failed:
                    st.success("Calibrations refitted and stored.", icon=":material/check_circle:")
            calibration = recal.get(doc["calibration_key"], calibration)
        st.dataframe(
            calibration_rows(calibration), hide_index=True, key=f"{key_prefix}_calibration"
        )
        st.caption(
            "Runs cut short by max epochs or the time budget are left out of the fit: their "
            "epoch counts are only lower bounds. A kind with fewer than 3 usable runs keeps its "
            "prior."
        )
    with curve_tab:
        _training_curves(doc, measured, labels, key=f"{key_prefix}_chart_curves")
    with st.expander("Export this validation", icon=":material/ios_share:"):
        report_downloads(doc, key_prefix=key_prefix)
