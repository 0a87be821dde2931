"""Inputs and small displays used by several pages.

Every widget key is built from the caller's page prefix (``f"{prefix}_how"``), so tests and the
pages address the same widget by the same name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

import streamlit as st

from resque_core import Plan, ResqueError

from . import state

__all__ = [
    "KIND_LABELS",
    "data_spec_input",
    "energy_inputs",
    "plan_problem",
    "plan_sidebar",
    "ranking_rows",
    "unique_id",
]

KIND_LABELS = {"dist": "distribution shift", "task": "new task"}
_WHERE = ("Built-in", "Upload", "Path on the server", "torchvision")
_DATA_HELP = (
    "Labelled images: a folder with one sub-folder per class, a .zip of such a folder, or an "
    ".npz with arrays x (N,H,W or N,H,W,C) and y (N,), optional classes."
)


def data_spec_input(
    prefix: str, *, builtins: Sequence[str], descriptions: dict[str, str] | None = None
) -> str | None:
    """Inputs for one labelled data set; returns its data spec, or None while incomplete.

    Uploads are written to the session's folder and referred to by that path.
    """
    where = st.radio(
        "Where is the data?", _WHERE, key=f"{prefix}_how", horizontal=True, help=_DATA_HELP
    )
    if where == "Built-in":
        name = st.selectbox(
            "Built-in data set",
            builtins,
            key=f"{prefix}_builtin",
            format_func=lambda n: f"{n} — {descriptions[n]}" if descriptions else n,
            help="Data sets that ship with the tool or its dependencies; nothing is downloaded.",
        )
        return f"builtin:{name}" if name else None
    if where == "Upload":
        upload = st.file_uploader(
            "Data file (.zip or .npz)", type=["zip", "npz"], key=f"{prefix}_upload", help=_DATA_HELP
        )
        if upload is None:
            return None
        try:
            return str(state.save_upload(upload.name, upload.getvalue()))
        except ResqueError as e:  # over the server's upload caps
            st.error(str(e), icon="⚠️")
            return None
    if where == "Path on the server":
        from . import cached

        found = cached.root_entries("data")

        def _pick() -> None:
            st.session_state[f"{prefix}_path"] = st.session_state[f"{prefix}_pick"] or ""

        if found:
            st.selectbox(
                "Data in the data roots",
                ["", *found],
                key=f"{prefix}_pick",
                on_change=_pick,
                format_func=lambda f: f or "choose, or type a path below",
            )
        path = st.text_input(
            "Folder, .zip or .npz on the server",
            key=f"{prefix}_path",
            placeholder="/data/new_camera/",
            help=_DATA_HELP + " The path is read by the machine that runs this app, only inside "
            "its data roots (see Settings).",
        )
        return path.strip() or None
    name_col, root_col, split_col = st.columns([2, 3, 1])
    name = name_col.text_input(
        "torchvision data set", key=f"{prefix}_tv_name", placeholder="CIFAR10"
    ).strip()
    root = root_col.text_input(
        "Root folder (already downloaded)",
        key=f"{prefix}_tv_root",
        placeholder="/data/cifar",
        help="The folder torchvision would use as root=; nothing is downloaded.",
    ).strip()
    split = split_col.selectbox("Split", ("train", "test"), key=f"{prefix}_tv_split")
    return f"torchvision:{name}:{root}:{split}" if name and root else None


def plan_problem(plan: Plan) -> tuple[str, str] | None:
    """(what is missing, page that fixes it) if the plan cannot be ranked yet, else None."""
    if not plan.model.checkpoint:
        return "Choose a checkpoint first.", "pages/checkpoint.py"
    if not plan.source:
        return "Set the source data (what the model was trained on).", "pages/candidates.py"
    if not plan.candidates:
        return "Add at least one candidate: a shift or a new task.", "pages/candidates.py"
    return None


def plan_sidebar() -> None:
    """The current plan in one glance, in the sidebar."""
    doc = state.plan_doc()
    model = doc.get("model", {})
    with st.sidebar:
        st.caption("Current comparison")
        from .views import md_text  # views imports this module: imported late

        name = md_text(doc.get("name") or "untitled")
        st.markdown(f"**{name}**" + (" · demo" if state.is_demo() else ""))
        checkpoint = state.display(model.get("checkpoint") or "—")
        st.caption(
            f"Checkpoint: {md_text(checkpoint.rsplit('/', 1)[-1])}  \n"
            f"Source: {md_text(state.display(doc.get('source') or '—'))}  \n"
            f"Candidates: {len(doc.get('candidates', []))}"
        )


def energy_inputs(
    prefix: str, meter_col: Any, country_col: Any, pue_col: Any, *, disabled: bool = False
) -> tuple[str, str | None, float]:
    """Energy meter, carbon-intensity location and PUE: (meter name, ISO-3 country or None for
    the world average, PUE). Keys: ``{prefix}_meter``, ``{prefix}_country``, ``{prefix}_pue``."""
    from resque_core.measure import METERS, countries

    meter = meter_col.selectbox(
        "Energy meter",
        METERS,
        key=f"{prefix}_meter",
        disabled=disabled,
        help="auto = codecarbon (CPU, RAM and the run's GPU; an estimate without RAPL). nvml: "
        "GPU energy counter only. replay: a fixed 30 W, for demos and tests, not a measurement.",
    )
    table = countries()
    country = country_col.selectbox(
        "Carbon intensity of",
        ["world", *table],
        format_func=lambda c: "World average" if c == "world" else f"{table[c]} ({c})",
        key=f"{prefix}_country",
        disabled=disabled,
    )
    pue = pue_col.number_input("PUE", 1.0, 3.0, 1.0, 0.05, key=f"{prefix}_pue", disabled=disabled)
    return meter, None if country == "world" else country, float(pue)


def unique_id(text: str, taken: Iterable[str]) -> str:
    """A plan candidate id made from ``text`` (letters, digits, '.', '_', '-'), not in ``taken``."""
    base = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-._")[:56] or "candidate"
    taken = set(taken)
    cid, n = base, 2
    while cid in taken:
        cid, n = f"{base}-{n}", n + 1
    return cid


def _interval(low: float, high: float, scale: float = 1.0) -> str:
    return f"{low * scale:.3g} – {high * scale:.3g}"


def _cost_columns(c: dict[str, Any]) -> dict[str, Any]:
    """Predicted cost of one candidate as table columns (empty where it has none)."""
    p = c.get("predicted")
    if not p:
        return {
            "epochs": None,
            "epochs interval": c.get("prediction_error") or "—",
            "Wh": None,
            "Wh interval": "—",
            "g CO2e": None,
            "g CO2e interval": "—",
            "energy from": "—",
            "over budget": "",
        }
    return {
        "epochs": p["epochs"],
        "epochs interval": _interval(*p["epochs_interval"]),
        "Wh": p["energy_kwh"] * 1000,
        "Wh interval": _interval(*p["energy_kwh_interval"], scale=1000),
        "g CO2e": p["co2_kg"] * 1000,
        "g CO2e interval": _interval(*p["co2_kg_interval"], scale=1000),
        "energy from": f"{p['energy_method']} ({p['energy_basis']})",
        "over budget": ", ".join(c.get("over_budget") or []),
    }


def ranking_rows(candidates: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Table rows of a ranking's candidates (ranked first, then failed ones with the reason);
    predicted-cost columns are added when any candidate has a prediction."""
    with_cost = any(c.get("predicted") for c in candidates)
    rows = []
    for c in candidates:
        score = c.get("score") or {}
        row = {
            "rank": c.get("rank"),
            "kind": KIND_LABELS[c["kind"]],
            "candidate": c["label"],
            "RESQUE": c.get("resque"),
        }
        if with_cost:
            row.update(_cost_columns(c))
        row.update(
            {
                "layer": score.get("layer") or "—",
                "images": score.get("n_target"),
                "seconds": score.get("compute_seconds"),
                "cached": score.get("cached"),
                "status": "ok" if c["status"] == "ok" else f"failed: {c.get('error', '')}",
                "id": c["id"],
            }
        )
        rows.append(row)
    return rows
