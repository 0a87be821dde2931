"""The plain-text reports: Markdown (the same sections as the HTML, without charts) and CSV
(the ranking table, or a validation's retrained candidates, as raw numbers)."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Mapping
from typing import Any

from .blocks import _Bold, _Bullets, _Heading, _Para, _Table
from .sections import _blocks

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
        fields += [
            (name, lambda c, n=name: (c.get("transfer") or {}).get(n))
            for name in _transfer_names(items)
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
    scores = _transfer_names(doc["runs"])
    w.writerow(
        head
        + [f"{n}{s}" for n, _ in pred for s in ("", "_low", "_high")]
        + ["prediction_basis", "error"]
        + scores
    )
    for r in doc["runs"]:
        p = r.get("predicted") or {}
        row = [_cell(r.get(k)) for k in head]
        for _, k in pred:
            row += [_cell(p.get(k)), _cell(_bound(r, k, 0)), _cell(_bound(r, k, 1))]
        transfer = r.get("transfer") or {}
        w.writerow(
            row
            + [_cell(p.get("basis")), _cell(r.get("error"))]
            + [_cell(transfer.get(n)) for n in scores]
        )
    return buf.getvalue()


def _transfer_names(items: list[Mapping[str, Any]]) -> list[str]:
    """The transferability scores any item carries, in first-seen order (columns after the
    existing ones, so older readers of the CSV see the same columns first)."""
    return list(dict.fromkeys(n for c in items for n in (c.get("transfer") or {})))


def _bound(item: Mapping[str, Any], key: str, i: int) -> float | None:
    p = item.get("predicted")
    return p[f"{key}_interval"][i] if p else None


def _cell(v: Any) -> Any:
    return "" if v is None else v
