"""The vocabulary of a report: number formats and the block types (heading, paragraph,
bullets, table, chart) that :mod:`.sections` builds from a run document and every renderer
(:mod:`.html`, :mod:`.text`, :mod:`.pdf`) draws the same way."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


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


def calibration_line(intercept: float, slope: float, *, times: str = "x") -> str:
    """A calibration line RESQUE -> epochs in words, ``"23.50 - 56.27 x RESQUE"`` (``times``:
    the sign between slope and RESQUE, "×" in the app)."""
    sign = "-" if slope < 0 else "+"
    return f"{intercept:.2f} {sign} {abs(slope):.2f} {times} RESQUE"
