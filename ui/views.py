"""Read-only displays of a ranking run, shared by the Ranking page and the History page."""

from __future__ import annotations

from typing import Any

import streamlit as st

from resque_core import charts

from . import widgets

__all__ = ["ranking_charts", "ranking_metrics", "ranking_table", "report_downloads"]

# (format, button label, file extension, MIME type)
_FORMATS = (
    ("html", "HTML report", "html", "text/html"),
    ("pdf", "PDF", "pdf", "application/pdf"),
    ("md", "Markdown", "md", "text/markdown"),
    ("json", "JSON (re-importable)", "json", "application/json"),
    ("csv", "CSV table", "csv", "text/csv"),
)


def ranking_metrics(ranking: dict[str, Any], n_planned: int | None = None) -> None:
    """Four headline figures of a ranking run."""
    candidates = ranking["candidates"]
    scored = [c for c in candidates if c["status"] == "ok"]
    failed = [c for c in candidates if c["status"] != "ok"]
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
        st.error(f"No candidate could be scored. First reason: {failed[0]['error']}", icon="⚠️")
    elif failed:
        st.warning(
            "Not scored: " + "; ".join(f"**{c['label']}** — {c['error']}" for c in failed),
            icon=":material/error:",
        )


def ranking_table(ranking: dict[str, Any], *, key: str) -> None:
    """The ranking as a sortable table (with predicted costs when the run has them)."""
    rows = widgets.ranking_rows(ranking["candidates"])
    st.dataframe(
        rows,
        hide_index=True,
        key=key,
        column_config={
            "rank": st.column_config.NumberColumn(
                "rank",
                help="Rank within its kind (1 = cheapest)"
                if ranking.get("ordered_by", "resque") == "resque"
                else "Rank by predicted cost, all kinds together (1 = cheapest)",
            ),
            "RESQUE": st.column_config.NumberColumn("RESQUE", format="%.4f"),
            "epochs": st.column_config.NumberColumn(
                "epochs", format="%.1f", help="Predicted retraining epochs (cost model)"
            ),
            "kWh": st.column_config.NumberColumn(
                "kWh", format="%.3g", help="Predicted retraining energy"
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
        st.caption(f"Ordered by {basis}.")
    cost = ranking.get("cost")
    if cost:
        intensity = cost["intensity"]
        priors = sorted(k for k, b in cost.get("calibration_basis", {}).items() if b == "prior")
        st.caption(
            f"Costs: {int(round(cost['level'] * 100))}% intervals; carbon intensity "
            f"{intensity['g_per_kwh']:.0f} g CO2e/kWh ({intensity['location']}, "
            f"{intensity['source']}), PUE {intensity['pue']:g}. "
            + (
                f"Epochs for {', '.join(priors)} come from the documented prior (no local "
                "retraining measured yet; the Validation page calibrates them)."
                if priors
                else "Epochs come from a calibration on measured retrainings."
            )
        )


def ranking_charts(ranking: dict[str, Any], *, key_prefix: str) -> None:
    """Ranking bars, RESQUE against severity and the per-class heatmap, in tabs."""
    candidates = ranking["candidates"]
    bars_tab, severity_tab, class_tab = st.tabs(["Ranking", "RESQUE vs severity", "Per class"])
    with bars_tab:
        st.plotly_chart(charts.ranking_bars(candidates), key=f"{key_prefix}_chart_bars")
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


def _export(run: dict[str, Any], fmt: str) -> bytes:
    from resque_core import report

    return report.render(run, fmt)


def report_downloads(run: dict[str, Any], *, key_prefix: str) -> None:
    """Download buttons for every export format of a stored run (built when clicked)."""
    run_id = run.get("run_id") or "unsaved"
    cols = st.columns(len(_FORMATS))
    for col, (fmt, label, ext, mime) in zip(cols, _FORMATS, strict=True):
        col.download_button(
            label,
            data=lambda fmt=fmt: _export(run, fmt),
            file_name=f"resque-{run_id}.{ext}",
            mime=mime,
            key=f"{key_prefix}_download_{fmt}",
            icon=":material/download:",
            on_click="ignore",
            width="stretch",
        )
