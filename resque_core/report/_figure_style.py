"""What every figure of the report room shares: the shapes of results, the kinds' titles and
ranges, colours, fonts, and the one escaping of user text for plotly (:func:`_text`)."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import plotly.graph_objects as go

from ..errors import ConfigError
from ..kinds import ESTIMATOR_KINDS, EstimatorKind
from ..store.documents import scored

__all__ = ["KIND_RANGES", "KIND_TITLES", "MEASURE_TITLES"]

Result = Mapping[str, Any]
Kind = EstimatorKind
KINDS = ESTIMATOR_KINDS
Measure = Literal["epochs", "energy_kwh", "co2_kg"]
MEASURE_TITLES: dict[str, str] = {
    "epochs": "epochs",
    "energy_kwh": "energy (kWh)",
    "co2_kg": "CO2e (kg)",
}

KIND_TITLES: dict[str, str] = {
    "dist": "Distribution shifts (RESQUE_dist)",
    "task": "New tasks (RESQUE_task)",
}
# The span of each RESQUE: an angle in [0, 1] for shifts; 1 - ARI for tasks (ARI >= -1/2).
KIND_RANGES: dict[str, tuple[float, float]] = {"dist": (0.0, 1.0), "task": (0.0, 1.5)}
_COLOURS = {"dist": "#2f6db5", "task": "#d9822b"}
_TEMPLATE = "plotly_white"
_FONT = {"family": "Inter, 'Source Sans Pro', sans-serif", "size": 13}
_BAR_PX = 26  # height of one bar row, so long rankings stay readable


def _text(value: Any) -> str:
    """A user-given string as plain text in a figure (no tags or links). Plotly decodes
    ``&lt;`` ``&gt;`` ``&amp;`` in the text it draws, so escaping once shows the string as
    typed; escaping twice would show the entities."""
    return html.escape(str(value), quote=False)


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ConfigError(f"unknown candidate kind {kind!r}; allowed: {', '.join(KINDS)}")


def _scored(candidates: Sequence[Result], kind: str | None = None) -> list[Result]:
    """Scored candidates (of ``kind``) in rank order; failed ones are left out."""
    ok = [c for c in scored(candidates) if kind in (None, c["kind"])]
    return sorted(ok, key=lambda c: (c["kind"] != "dist", c.get("rank") or 0, c["resque"]))


def _empty(message: str) -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, font={"size": 15, "color": "#666"})
    fig.update_layout(
        template=_TEMPLATE,
        font=_FONT,
        height=220,
        xaxis={"visible": False},
        yaxis={"visible": False},
    )
    return fig


def _resque_range(kind: str, values: Sequence[float], room: float = 1.18) -> list[float]:
    """A RESQUE axis from 0 to the kind's upper end (further if a value exceeds it, with room
    for value labels)."""
    top = KIND_RANGES.get(kind, (0.0, 1.0))[1]
    low = min([0.0, *values])
    return [low, max(top, max(values, default=0.0) * room)]
