"""Plotly figures of rankings, severities, per-class breakdowns, layer sweeps and shift previews.

Pure figure builders (no streamlit): the dashboard draws them with ``st.plotly_chart``, and
:func:`export_figure` writes one as PNG or SVG through kaleido (a headless Chromium, plotly.js
from the plotly package, MathJax off: nothing is fetched). Results come as the candidates and
retrained runs of a run document (:class:`resque_core.store.documents.CandidateDoc`: ``id``,
``kind`` "dist" | "task", ``label``, ``status``, ``rank``, ``resque``, ``shift``/``severity``
for synthetic shifts, ``score.per_class``; :class:`~resque_core.store.documents.RetrainedDoc`),
so a stored run (:class:`resque_core.store.runs.RunStore`) redraws unchanged.

RESQUE_dist and RESQUE_task are on different scales, so no figure puts both on one value axis.

Plotly reads text in figures as a subset of HTML (links included), so every user-given string
(candidate labels and ids, class names, shift names, layer names, titles) goes through
:func:`~resque_core.report._figure_style._text`, and only there: callers (the report, the app's
views) pass raw text.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..errors import ConfigError, ResqueError
from ._figure_style import (
    _BAR_PX,
    _COLOURS,
    _FONT,
    _TEMPLATE,
    KIND_RANGES,
    KIND_TITLES,
    KINDS,
    MEASURE_TITLES,
    Kind,
    Measure,
    Result,
    _check_kind,
    _empty,
    _resque_range,
    _scored,
    _text,
)
from .cost_charts import co2_text, cost_bars, energy_text, everyday, human_unit, resque_vs_cost

__all__ = [
    "IMAGE_FORMATS",
    "KIND_RANGES",
    "KIND_TITLES",
    "MEASURE_TITLES",
    "class_heatmap",
    "co2_text",
    "cost_bars",
    "energy_text",
    "everyday",
    "export_figure",
    "human_unit",
    "layer_sweep",
    "predicted_vs_measured",
    "ranking_bars",
    "resque_vs_cost",
    "severity_lines",
    "shift_family_names",
    "shift_preview",
    "training_curves",
]


def ranking_bars(candidates: Sequence[Result], *, by_resque: bool = False) -> go.Figure:
    """Horizontal bars of RESQUE per candidate, best (lowest) at the top, one panel per kind.

    Each panel has its own value axis: the two estimators are not comparable. ``by_resque``:
    order by RESQUE and leave out the rank numbers (for a run ranked by predicted cost, whose
    ranks are not RESQUE's).
    """
    groups = [(k, _scored(candidates, k)) for k in KINDS]
    if by_resque:
        groups = [(k, sorted(rows, key=lambda c: c["resque"])) for k, rows in groups]
    groups = [(k, rows) for k, rows in groups if rows]
    if not groups:
        return _empty("No scored candidates yet")
    fig = make_subplots(
        rows=len(groups),
        cols=1,
        row_heights=[len(rows) for _, rows in groups],
        subplot_titles=[KIND_TITLES[k] for k, _ in groups],
        vertical_spacing=0.32 / sum(len(rows) for _, rows in groups) ** 0.5,
    )
    for i, (kind, rows) in enumerate(groups, start=1):
        fig.add_trace(
            go.Bar(
                x=[c["resque"] for c in rows],
                y=[
                    _text(c["label"]) if by_resque else f"{c['rank']}. {_text(c['label'])}"
                    for c in rows
                ],
                orientation="h",
                marker_color=_COLOURS[kind],
                text=[f"{c['resque']:.3f}" for c in rows],
                textposition="outside",
                cliponaxis=False,
                customdata=[[_text(c["id"])] for c in rows],
                hovertemplate="%{y}<br>RESQUE %{x:.4f}<br>id %{customdata[0]}<extra></extra>",
                name=KIND_TITLES[kind],
                showlegend=False,
            ),
            row=i,
            col=1,
        )
        fig.update_yaxes(autorange="reversed", row=i, col=1)
        fig.update_xaxes(range=_resque_range(kind, [c["resque"] for c in rows]), row=i, col=1)
    fig.update_xaxes(title_text="RESQUE (lower = cheaper to reuse)", row=len(groups), col=1)
    n = sum(len(rows) for _, rows in groups)
    fig.update_layout(
        template=_TEMPLATE,
        font=_FONT,
        height=140 + _BAR_PX * n + 60 * len(groups),
        margin={"l": 10, "r": 30, "t": 40, "b": 50},
        bargap=0.25,
    )
    return fig


_SEVERITY_SUFFIX = re.compile(r"[\s,;:(–-]*(severity|level|sev\.?)\s*\d+\)?\s*$", re.IGNORECASE)


def shift_family_names(candidates: Sequence[Result]) -> dict[str, str]:
    """A display name per synthetic shift type: the candidates' own labels without their
    severity ("Sensor noise, severity 2" -> "Sensor noise") when all of one type agree, else the
    shift's name in words ("gaussian_noise" -> "Gaussian noise")."""
    found: dict[str, set[str]] = {}
    for c in candidates:
        if c.get("shift") is None:
            continue
        label = str(c.get("label") or "")
        stem = _SEVERITY_SUFFIX.sub("", label).strip()
        found.setdefault(c["shift"], set()).add(stem if stem != label else "")
    out = {}
    for name, stems in found.items():
        words = str(name).replace("_", " ")
        (stem,) = stems if len(stems) == 1 else ("",)
        out[name] = stem or words[:1].upper() + words[1:]
    return out


def severity_lines(candidates: Sequence[Result]) -> go.Figure:
    """RESQUE_dist against severity, one line per synthetic shift type (named as the candidates'
    labels name it), and each scored real shifted data set as a dashed reference line."""
    by_shift: dict[str, list[tuple[int, float]]] = {}
    dist = _scored(candidates, "dist")
    for c in dist:
        if c.get("shift") is not None and c.get("severity") is not None:
            by_shift.setdefault(c["shift"], []).append((int(c["severity"]), float(c["resque"])))
    real = [c for c in dist if c.get("shift") is None]
    if not by_shift and not real:
        return _empty("No distribution shifts scored yet")
    names = shift_family_names(dist)
    fig = go.Figure()
    for name in sorted(by_shift, key=lambda n: names.get(n, n)):
        points = sorted(by_shift[name])
        fig.add_trace(
            go.Scatter(
                x=[p[0] for p in points],
                y=[p[1] for p in points],
                mode="lines+markers",
                name=_text(names.get(name, name)),
                hovertemplate="%{fullData.name}<br>severity %{x}<br>RESQUE %{y:.4f}<extra></extra>",
            )
        )
    severities = [s for pts in by_shift.values() for s, _ in pts] or [1, 5]
    x0, x1 = min(severities) - 0.2, max(severities) + 0.2
    for c in real:
        fig.add_trace(
            go.Scatter(
                x=[x0, x1],
                y=[c["resque"], c["resque"]],
                mode="lines",
                line={"dash": "dash", "width": 2, "color": "#555"},
                name=_text(f"{c['label']} (real data)"),
                hovertemplate="%{fullData.name}<br>RESQUE %{y:.4f}<extra></extra>",
            )
        )
    values = [float(c["resque"]) for c in dist]
    fig.update_layout(
        template=_TEMPLATE,
        font=_FONT,
        height=440,
        xaxis={"title": "severity", "dtick": 1, "range": [x0, x1]},
        yaxis={
            "title": "RESQUE_dist (0 = as the model knows it)",
            "range": _resque_range("dist", values, 1.1),
        },
        legend={"title": "shift", "orientation": "v"},
        margin={"l": 10, "r": 10, "t": 30, "b": 50},
    )
    return fig


def class_heatmap(candidates: Sequence[Result], *, kind: Kind = "dist") -> go.Figure:
    """Per-class values, candidates (rank order) x classes, for one kind.

    For a shift a cell is the class's angle (RESQUE_dist per class); for a task, the class's share
    of samples that the clustering puts outside the class's own cluster.
    """
    _check_kind(kind)
    rows = [c for c in _scored(candidates, kind) if (c.get("score") or {}).get("per_class")]
    if not rows:
        return _empty(f"No per-class values for {KIND_TITLES[kind].lower()} yet")
    classes: list[str] = []
    for c in rows:
        classes += [name for name in c["score"]["per_class"] if name not in classes]
    z = [[c["score"]["per_class"].get(name, math.nan) for name in classes] for c in rows]
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=[_text(name) for name in classes],
            y=[f"{c['rank']}. {_text(c['label'])}" for c in rows],
            colorscale="Blues",
            colorbar={"title": "RESQUE"},
            hovertemplate="%{y}<br>class %{x}<br>%{z:.4f}<extra></extra>",
            xgap=1,
            ygap=1,
        )
    )
    fig.update_layout(
        template=_TEMPLATE,
        font=_FONT,
        height=160 + _BAR_PX * len(rows),
        xaxis={"title": "class", "type": "category", "side": "top"},
        yaxis={"autorange": "reversed", "type": "category"},
        margin={"l": 10, "r": 10, "t": 60, "b": 20},
    )
    return fig


def layer_sweep(points: Sequence[tuple[str, float | None]], *, title: str = "") -> go.Figure:
    """RESQUE of one candidate at several layers, in the order given (the model's order).

    ``points``: (layer name, value); a None value (the layer failed) leaves a gap.
    """
    if not points:
        return _empty("No layers computed yet")
    fig = go.Figure(
        go.Scatter(
            x=[_text(p[0]) for p in points],
            y=[math.nan if p[1] is None else p[1] for p in points],
            mode="lines+markers",
            marker={"size": 9, "color": _COLOURS["dist"]},
            hovertemplate="layer %{x}<br>RESQUE %{y:.4f}<extra></extra>",
        )
    )
    fig.update_layout(
        template=_TEMPLATE,
        font=_FONT,
        height=380,
        title={"text": _text(title)},
        xaxis={"title": "layer (input side → output side)", "type": "category"},
        yaxis={"title": "RESQUE", "rangemode": "tozero"},
        margin={"l": 10, "r": 10, "t": 50 if title else 30, "b": 60},
    )
    return fig


def predicted_vs_measured(
    runs: Sequence[Result], measure: Measure, *, labels: Mapping[str, str] | None = None
) -> go.Figure:
    """Measured value (x) against the prediction made before retraining (y) with its interval
    as an error bar, one colour per kind; the dotted diagonal is a perfect prediction.

    ``runs``: retrained candidates in the JSON form of
    :meth:`resque_core.validation.ValidationRun.to_dict` (``candidate_id``, ``kind``, the
    measured ``epochs`` / ``energy_kwh`` / ``co2_kg`` and ``predicted`` with ``*_interval``);
    ``labels``: candidate id -> name shown on hover (default: the run's ``label``).
    """
    if measure not in MEASURE_TITLES:
        raise ConfigError(f"unknown measure {measure!r}; allowed: {', '.join(MEASURE_TITLES)}")
    labels = labels or {}
    done = [r for r in runs if r.get("predicted") and r.get(measure) is not None]
    if not done:
        return _empty("No retrained candidate with a prediction yet")
    fig = go.Figure()
    for kind in KINDS:
        pts = [r for r in done if r["kind"] == kind]
        if not pts:
            continue
        y = [r["predicted"][measure] for r in pts]
        lo = [r["predicted"][f"{measure}_interval"][0] for r in pts]
        hi = [r["predicted"][f"{measure}_interval"][1] for r in pts]
        fig.add_trace(
            go.Scatter(
                x=[r[measure] for r in pts],
                y=y,
                mode="markers",
                name=KIND_TITLES[kind],
                marker={"color": _COLOURS[kind], "size": 10},
                text=[
                    _text(labels.get(r["candidate_id"], r.get("label") or r["candidate_id"]))
                    for r in pts
                ],
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": [h - v for h, v in zip(hi, y, strict=True)],
                    "arrayminus": [v - low for v, low in zip(y, lo, strict=True)],
                },
                hovertemplate="%{text}<br>measured %{x:.3g}<br>predicted %{y:.3g}<extra></extra>",
            )
        )
    top = max([r[measure] for r in done] + [r["predicted"][measure] for r in done] + [1e-12])
    fig.add_trace(
        go.Scatter(
            x=[0, top],
            y=[0, top],
            mode="lines",
            line={"dash": "dot", "color": "#888"},
            name="perfect prediction",
            hoverinfo="skip",
        )
    )
    title = MEASURE_TITLES[measure]
    fig.update_layout(
        template=_TEMPLATE,
        font=_FONT,
        xaxis_title=f"measured {title}",
        yaxis_title=f"predicted {title} (interval)",
        height=380,
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
    )
    return fig


def training_curves(
    curves: Mapping[str, Sequence[float]],
    *,
    target: float | None = None,
    initial: Mapping[str, float] | None = None,
) -> go.Figure:
    """Held-out accuracy (a fraction) after each epoch, one line per retrained candidate, with
    a legend.

    ``curves``: candidate name -> accuracy after epoch 1, 2, ...; ``initial``: name -> accuracy
    before training, drawn at epoch 0; ``target``: the accuracy retraining stops at, a dotted
    line.
    """
    initial = initial or {}
    if not curves and not initial:
        return _empty("No candidate needed a training epoch")
    traces = []
    for name in dict.fromkeys([*initial, *curves]):
        v = list(curves.get(name, ()))
        start = 1
        if name in initial:
            v, start = [initial[name], *v], 0
        traces.append(
            go.Scatter(
                x=list(range(start, start + len(v))),
                y=v,
                name=_text(name),
                mode="lines+markers",
                hovertemplate="%{fullData.name}<br>epoch %{x}<br>accuracy %{y:.3f}<extra></extra>",
            )
        )
    fig = go.Figure(traces)
    last = max((max(t.x) for t in traces if len(t.x)), default=1)
    if target is not None:
        fig.add_hline(
            y=target,
            line_dash="dot",
            annotation_text=f"target {target:.0%}",
            annotation_position="bottom right",
        )
    fig.update_layout(
        template=_TEMPLATE,
        font=_FONT,
        xaxis={
            "title": "epoch",
            "range": [-0.3, last + 0.3],
            "dtick": 1 if last < 15 else None,
        },
        yaxis={"title": "held-out accuracy", "range": [0, 1.02], "tickformat": ".0%"},
        showlegend=True,
        legend={"title": "candidate"},
        height=400,
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
    )
    return fig


def _to_rgb(images: np.ndarray) -> np.ndarray:
    """[N, C, H, W] float in [0, 1] (C = 1 or 3) -> [N, H, W, 3] uint8."""
    arr = np.asarray(images, dtype=np.float64)
    if arr.ndim != 4 or arr.shape[1] not in (1, 3):
        raise ConfigError(f"preview images must be [N, 1 or 3, H, W], got shape {arr.shape}")
    rgb = np.repeat(arr, 3, axis=1) if arr.shape[1] == 1 else arr
    return np.rint(np.clip(rgb, 0.0, 1.0) * 255).astype(np.uint8).transpose(0, 2, 3, 1)


def shift_preview(
    original: np.ndarray,
    shifted: Mapping[int, np.ndarray],
    *,
    labels: Sequence[str] | None = None,
    shift_name: str = "",
) -> go.Figure:
    """A grid of sample images: one row per sample, the original then each severity.

    ``original``: [N, C, H, W] float in [0, 1]; ``shifted``: severity -> array of the same shape
    (the same samples after the shift); ``labels``: N class names shown at the row starts.
    """
    orig = _to_rgb(original)
    columns = [("original", orig)]
    for severity in sorted(shifted):
        arr = _to_rgb(shifted[severity])
        if arr.shape != orig.shape:
            raise ConfigError(
                f"shifted images for severity {severity} have shape {arr.shape}, "
                f"expected {orig.shape} like the originals"
            )
        columns.append((_text(f"{shift_name} {severity}".strip()), arr))
    n = orig.shape[0]
    fig = make_subplots(
        rows=n,
        cols=len(columns),
        column_titles=[title for title, _ in columns],
        row_titles=[_text(label) for label in labels] if labels is not None else None,
        horizontal_spacing=0.01,
        vertical_spacing=0.01,
    )
    for j, (_, arr) in enumerate(columns, start=1):
        for i in range(n):
            fig.add_trace(go.Image(z=arr[i], hoverinfo="skip"), row=i + 1, col=j)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    cell = 90
    fig.update_layout(
        template=_TEMPLATE,
        font=_FONT,
        height=40 + cell * n,
        width=40 + cell * len(columns),
        margin={"l": 0, "r": 30, "t": 40, "b": 0},
    )
    return fig


IMAGE_FORMATS = ("png", "svg")
_EXPORT_TIMEOUT_S = 90.0


def export_figure(
    fig: go.Figure, fmt: str = "png", *, width: int = 900, height: int = 500, scale: float = 2.0
) -> bytes:
    """``fig`` as PNG or SVG bytes, drawn by kaleido in a headless Chromium (``$BROWSER_PATH``,
    else the one on the PATH; never downloaded). plotly.js comes from the installed plotly package
    and MathJax is off, so the page loads nothing from the network. ConfigError for another
    format; ResqueError naming the cause when kaleido or a Chromium is missing or drawing fails.
    """
    if fmt not in IMAGE_FORMATS:
        raise ConfigError(f"unknown image format {fmt!r}; allowed: {', '.join(IMAGE_FORMATS)}")
    try:
        import kaleido
    except ImportError:
        raise ResqueError(
            "exporting charts as images needs the kaleido package: pip install kaleido"
        ) from None
    opts = {"format": fmt, "width": width, "height": height, "scale": scale}
    kopts = {"page_generator": kaleido.PageGenerator(mathjax=False), "timeout": _EXPORT_TIMEOUT_S}
    try:
        data = kaleido.calc_fig_sync(fig, opts=opts, kopts=kopts)
    except Exception as e:  # kaleido's and choreographer's errors share no base class
        raise ResqueError(
            f"cannot draw the chart as {fmt.upper()}: {type(e).__name__}: {e}".rstrip(": ")
            + " (kaleido needs Chromium: install it or set BROWSER_PATH)"
        ) from None
    return data if isinstance(data, bytes) else str(data).encode()
