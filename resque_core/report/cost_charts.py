"""Figures and words for predicted cost: human units (Wh, g), everyday equivalents, predicted
epochs / energy / CO2e bars with their interval whiskers, and RESQUE against predicted cost."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..errors import ConfigError
from ..store.documents import scored
from ._figure_style import (
    _BAR_PX,
    _COLOURS,
    _FONT,
    _TEMPLATE,
    KIND_TITLES,
    KINDS,
    MEASURE_TITLES,
    Measure,
    Result,
    _empty,
    _resque_range,
    _text,
)

__all__ = ["co2_text", "cost_bars", "energy_text", "everyday", "human_unit", "resque_vs_cost"]

# ----------------------------------------------------------------------------- costs
# (unit, factor from kWh or kg, smallest value shown in it): Wh and g down to 0.01, since
# "0.06 Wh" reads more easily than "62.5 mWh".
_ENERGY_UNITS = (("kWh", 1.0, 1.0), ("Wh", 1e3, 0.01), ("mWh", 1e6, 0.0))
_CO2_UNITS = (("kg", 1.0, 1.0), ("g", 1e3, 0.01), ("mg", 1e6, 0.0))


def human_unit(values: Sequence[float], kind: Literal["energy", "co2"]) -> tuple[str, float]:
    """(unit, factor from kWh or kg) that fits the largest of ``values``: kWh / kg from 1,
    Wh / g from 0.01, else mWh / mg."""
    units = _ENERGY_UNITS if kind == "energy" else _CO2_UNITS
    top = max((abs(v) for v in values if v is not None and math.isfinite(v)), default=0.0)
    for unit, factor, smallest in units:
        if top * factor >= smallest and top > 0:
            return unit, factor
    return units[1][:2]


def energy_text(kwh: float | None) -> str:
    """``0.00021`` -> ``"0.21 Wh"``; None -> ``"—"``."""
    if kwh is None:
        return "—"
    unit, f = human_unit([kwh], "energy")
    return f"{kwh * f:.3g} {unit}"


def co2_text(kg: float | None) -> str:
    """``8e-5`` -> ``"0.08 g CO2e"``; None -> ``"—"``."""
    if kg is None:
        return "—"
    unit, f = human_unit([kg], "co2")
    return f"{kg * f:.3g} {unit} CO2e"


# Everyday figures to compare with (rounded, stated with each comparison): a 10 W LED bulb, a
# smartphone battery of about 15 Wh charged from empty, and an average new petrol car in the EU
# (about 120 g CO2e per km).
_LED_W = 10.0
_PHONE_WH = 15.0
_CAR_G_PER_KM = 120.0


def everyday(kwh: float | None, co2_kg: float | None = None) -> str:
    """The energy (and emissions) as things people know, e.g. "about 2 minutes of a 10 W LED
    bulb; about 3 m driven by an average petrol car"."""
    parts = []
    if kwh is not None and kwh > 0:
        wh = kwh * 1000
        if wh >= _PHONE_WH / 2:
            parts.append(f"about {wh / _PHONE_WH:.2g} smartphone charges ({_PHONE_WH:g} Wh each)")
        else:
            minutes = wh / _LED_W * 60
            span = f"{minutes:.2g} minutes" if minutes >= 1 else f"{minutes * 60:.2g} seconds"
            parts.append(f"about {span} of a {_LED_W:g} W LED bulb")
    if co2_kg is not None and co2_kg > 0:
        metres = co2_kg * 1000 / _CAR_G_PER_KM * 1000
        span = f"{metres / 1000:.2g} km" if metres >= 1000 else f"{metres:.2g} m"
        parts.append(f"about {span} driven by an average petrol car (~{_CAR_G_PER_KM:g} g/km)")
    return "; ".join(parts)


def _costed(candidates: Sequence[Result]) -> list[Result]:
    """Scored candidates with a prediction, in rank order (a cost ordering ranks all kinds in
    one sequence)."""
    ok = [c for c in scored(candidates) if c.get("predicted")]
    return sorted(ok, key=lambda c: (c.get("rank") or 0, c["kind"] != "dist"))


def _whiskers(rows: Sequence[Result], measure: str, factor: float) -> dict[str, Any]:
    mid = [c["predicted"][measure] * factor for c in rows]
    lo = [c["predicted"][f"{measure}_interval"][0] * factor for c in rows]
    hi = [c["predicted"][f"{measure}_interval"][1] * factor for c in rows]
    return {
        "type": "data",
        "symmetric": False,
        "array": [max(0.0, h - m) for h, m in zip(hi, mid, strict=True)],
        "arrayminus": [max(0.0, m - low) for m, low in zip(mid, lo, strict=True)],
        "color": "#333",
        "thickness": 1.2,
        "width": 3,
    }


def cost_bars(candidates: Sequence[Result]) -> go.Figure:
    """Predicted epochs, energy and CO2e of every candidate with a prediction, in rank order,
    bars at the point prediction with whiskers over its interval (the run's level, 80% by
    default); energy and CO2e in units that fit (Wh, g, ...)."""
    rows = _costed(candidates)
    if not rows:
        return _empty("No predicted costs: turn on the cost model")
    level = rows[0]["predicted"].get("level", 0.8)
    e_unit, e_f = human_unit([c["predicted"]["energy_kwh_interval"][1] for c in rows], "energy")
    c_unit, c_f = human_unit([c["predicted"]["co2_kg_interval"][1] for c in rows], "co2")
    columns = [
        ("epochs", 1.0, "epochs"),
        ("energy_kwh", e_f, f"energy ({e_unit})"),
        ("co2_kg", c_f, f"CO2e ({c_unit})"),
    ]
    fig = make_subplots(
        rows=1,
        cols=3,
        shared_yaxes=True,
        horizontal_spacing=0.03,
        subplot_titles=[title for _, _, title in columns],
    )
    labels = [f"{c['rank']}. {_text(c['label'])}" for c in rows]
    for j, (measure, factor, title) in enumerate(columns, start=1):
        for kind in KINDS:
            part = [c for c in rows if c["kind"] == kind]
            if not part:
                continue
            fig.add_trace(
                go.Bar(
                    x=[c["predicted"][measure] * factor for c in part],
                    y=[labels[rows.index(c)] for c in part],
                    orientation="h",
                    marker_color=_COLOURS[kind],
                    error_x=_whiskers(part, measure, factor),
                    name=KIND_TITLES[kind],
                    legendgroup=kind,
                    showlegend=j == 1,
                    hovertemplate=f"%{{y}}<br>{title} %{{x:.3g}}<extra></extra>",
                ),
                row=1,
                col=j,
            )
        fig.update_xaxes(rangemode="tozero", row=1, col=j)
    fig.update_yaxes(
        autorange="reversed", categoryorder="array", categoryarray=labels, row=1, col=1
    )
    fig.update_layout(
        template=_TEMPLATE,
        font=_FONT,
        height=150 + _BAR_PX * len(rows),
        barmode="overlay",
        bargap=0.25,
        title={
            "text": f"Predicted retraining cost (bars) with {level:.0%} intervals (whiskers)",
            "font": {"size": 14},
        },
        legend={"orientation": "h", "y": -40 / (150 + _BAR_PX * len(rows)), "yanchor": "top"},
        margin={"l": 10, "r": 20, "t": 70, "b": 40},
    )
    return fig


def resque_vs_cost(candidates: Sequence[Result], measure: Measure = "energy_kwh") -> go.Figure:
    """Each candidate's RESQUE (x, its kind's scale from 0) against its predicted ``measure``
    (y, with the interval as whiskers), one panel per kind: where RESQUE and cost agree, the
    points rise from left to right."""
    if measure not in MEASURE_TITLES:
        raise ConfigError(f"unknown measure {measure!r}; allowed: {', '.join(MEASURE_TITLES)}")
    rows = _costed(candidates)
    if not rows:
        return _empty("No predicted costs: turn on the cost model")
    if measure == "epochs":
        unit, factor = "epochs", 1.0
    else:
        kind_of = "energy" if measure == "energy_kwh" else "co2"
        unit, factor = human_unit([c["predicted"][f"{measure}_interval"][1] for c in rows], kind_of)
        unit = unit if measure == "energy_kwh" else f"{unit} CO2e"
    kinds = [k for k in KINDS if any(c["kind"] == k for c in rows)]
    fig = make_subplots(
        rows=1,
        cols=len(kinds),
        shared_yaxes=True,
        horizontal_spacing=0.06,
        subplot_titles=[KIND_TITLES[k] for k in kinds],
    )
    for j, kind in enumerate(kinds, start=1):
        part = [c for c in rows if c["kind"] == kind]
        fig.add_trace(
            go.Scatter(
                x=[c["resque"] for c in part],
                y=[c["predicted"][measure] * factor for c in part],
                mode="markers",
                marker={"color": _COLOURS[kind], "size": 9},
                error_y=_whiskers(part, measure, factor),
                text=[_text(c["label"]) for c in part],
                name=KIND_TITLES[kind],
                showlegend=False,
                hovertemplate=f"%{{text}}<br>RESQUE %{{x:.4f}}<br>%{{y:.3g}} {unit}<extra></extra>",
            ),
            row=1,
            col=j,
        )
        fig.update_xaxes(
            title_text="RESQUE",
            range=_resque_range(kind, [c["resque"] for c in part], 1.05),
            row=1,
            col=j,
        )
    fig.update_yaxes(title_text=f"predicted {unit}", rangemode="tozero", row=1, col=1)
    fig.update_layout(
        template=_TEMPLATE,
        font=_FONT,
        height=400,
        margin={"l": 10, "r": 10, "t": 40, "b": 50},
    )
    return fig
