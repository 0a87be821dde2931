"""Candidates: the source data, the shifts and new tasks to compare, and the plan file."""

import json
from pathlib import Path

import streamlit as st

from resque_core import load_plan
from resque_core.data import BUILTINS, shift_table
from resque_core.report import charts
from ui import cached, state, views, widgets
from ui.feedback import user_errors

st.title("Candidates")
st.caption(
    "The reuse options to compare: synthetic shifts of the source data, real shifted data in "
    "the same classes, and new tasks with their own classes."
)

BUILTIN_NAMES = list(BUILTINS)
SHIFTS = shift_table()
plan = state.current_plan()


def _add(candidates: list[dict]) -> None:
    """Append candidates to the plan (validated as a whole; nothing is stored on error)."""
    doc = state.plan_doc()
    doc["candidates"] = doc["candidates"] + candidates
    state.set_plan(doc)
    st.toast(f"Added {len(candidates)} candidate{'s' if len(candidates) != 1 else ''}.")


def _label(spec: str) -> str:
    """A short readable name for a data spec (file stem, builtin or torchvision name)."""
    if spec.startswith("builtin:"):
        return spec.split(":", 1)[1]
    if spec.startswith("torchvision:"):
        return spec.split(":")[1]
    return Path(spec.rstrip("/")).stem


def _show_data_notes(kind: str) -> None:
    """Once, after a candidate with real data was added: what its images go through."""
    label, notes = st.session_state.pop(f"cand_notes_{kind}", (None, []))
    if notes:
        st.info(
            f"Added **{views.md_text(state.display(label))}**. Note: "
            + "; ".join(views.md_text(state.display(n)) for n in notes)
            + ".",
            icon=":material/info:",
        )


def _data_tab(kind: str, key: str, button: str, failure: str) -> None:
    """A data spec, an optional label and the button adding it as a ``kind`` candidate
    (``shifted_data`` or ``task``), with what its images go through once added. Widget keys:
    ``key`` and ``key_label``; the button's: ``key`` with ``cand_`` turned into ``cand_add_``."""
    spec = widgets.data_spec_input(key, builtins=BUILTIN_NAMES, descriptions=BUILTINS)
    label_text = st.text_input("Label (optional)", key=f"{key}_label")
    if st.button(
        button,
        key=f"cand_add_{key.removeprefix('cand_')}",
        type="primary",
        icon=":material/add:",
        disabled=spec is None,
    ):
        with user_errors(failure) as box:
            cached.data_summary(state.allowed_spec(spec))
            plan = state.current_plan()
            notes = cached.data_notes(plan, spec, shifted=kind == "shifted_data")
            label = label_text.strip() or _label(spec)
            taken = [c.id for c in plan.candidates]
            _add(
                [
                    {
                        "id": widgets.unique_id(label, taken),
                        "kind": kind,
                        "data": spec,
                        "label": label,
                    }
                ]
            )
            st.session_state[f"cand_notes_{kind}"] = (label, notes)
        if not box.failed:
            st.rerun()
    _show_data_notes(kind)


# ------------------------------------------------------------------ source data
with st.container(border=True):
    st.subheader("Source data")
    st.caption(
        "Labelled data the model was trained on (or data like it). Synthetic shifts are applied "
        "to it; real shifted data is matched to it by class name."
    )
    if plan.source:
        with user_errors("The source data cannot be read") as box:
            summary = cached.data_summary(plan.resolve(plan.source))
        if not box.failed:
            st.markdown(
                f"{views.md_text(state.display(plan.source))} — {summary['images']:,} images, "
                f"{summary['classes']} classes, {summary['shape']} each"
            )
    with st.expander("Change the source data", expanded=not plan.source):
        spec = widgets.data_spec_input("cand_source", builtins=BUILTIN_NAMES, descriptions=BUILTINS)
        if st.button("Use as source data", key="cand_source_set", disabled=spec is None):
            with user_errors("Could not use this data") as box:
                cached.data_summary(state.allowed_spec(spec))
                doc = state.plan_doc()
                doc["source"] = spec
                state.set_plan(doc)
            if not box.failed:
                st.rerun()

# ------------------------------------------------------------------ add
with st.container(border=True):
    st.subheader("Add candidates")
    shift_tab, shifted_tab, task_tab = st.tabs(["Synthetic shift", "Real shifted data", "New task"])
    taken = [c.id for c in plan.candidates]

    with shift_tab:
        col_shift, col_sev = st.columns([2, 3])
        shift = col_shift.selectbox(
            "Shift",
            list(SHIFTS),
            key="cand_shift",
            help="A corruption applied to the source images, as the model sees them.",
        )
        severities = col_sev.multiselect(
            "Severities",
            [1, 2, 3, 4, 5],
            default=[1, 3, 5],
            key="cand_severities",
            help="1 = mild, 5 = strong; one candidate per severity.",
        )
        st.caption(SHIFTS[shift]["description"])
        if st.button(
            "Add shifts",
            key="cand_add_shift",
            type="primary",
            icon=":material/add:",
            disabled=not severities,
        ):
            new = []
            for severity in sorted(severities):
                cid = widgets.unique_id(f"{shift}-{severity}", taken + [c["id"] for c in new])
                new.append({"id": cid, "kind": "shift", "shift": f"{shift}:{severity}"})
            with user_errors("Could not add the shifts"):
                _add(new)
                st.rerun()
        if plan.source and severities:
            with user_errors("No preview"):
                original, shifted, labels = cached.shift_preview(
                    plan.resolve(plan.source),
                    shift,
                    tuple(sorted(severities)),
                    model=plan.model,
                    seed=plan.run.seed,
                )
                st.plotly_chart(
                    charts.shift_preview(original, shifted, labels=labels, shift_name=shift),
                    key="cand_preview",
                    width="content",
                )
                st.caption(
                    "Source images as the model sees them (resized, in [0, 1]), then the same "
                    "images at each chosen severity (seeded)."
                )
        with st.expander("All shifts and their parameters"):
            st.dataframe(
                [
                    {
                        "shift": name,
                        "what it does": info["description"],
                        "parameter": info["parameter"],
                        "severity 1 → 5": " · ".join(map(str, info["values"])),
                        "random": info["random"],
                    }
                    for name, info in SHIFTS.items()
                ],
                hide_index=True,
                key="cand_shift_table",
            )

    with shifted_tab:
        st.caption(
            "Data collected under new conditions (another camera, season, site) with the same "
            "class names as the source data."
        )
        _data_tab("shifted_data", "cand_shifted", "Add shifted data", "Could not add this data")

    with task_tab:
        st.caption(
            "Labelled data of a task with its own classes (the classifier would be replaced)."
        )
        _data_tab("task", "cand_task", "Add task", "Could not add this task")

# ------------------------------------------------------------------ list, edit, remove
plan = state.current_plan()
with st.container(border=True):
    st.subheader(f"The comparison's candidates ({len(plan.candidates)})")
    if not plan.candidates:
        st.info("No candidates yet: add shifts or tasks above.", icon=":material/info:")
    else:
        st.dataframe(
            [
                {
                    "id": c.id,
                    "kind": {"shift": "synthetic shift", "shifted_data": "real shifted data"}.get(
                        c.kind, "new task"
                    ),
                    "what": c.shift or state.display(c.data),
                    "label": c.label,
                    "note": c.note,
                }
                for c in plan.candidates
            ],
            hide_index=True,
            key="cand_table",
        )
        ids = [c.id for c in plan.candidates]

        def _load_fields() -> None:
            c = state.current_plan().candidate(st.session_state["cand_edit_id"])
            st.session_state["cand_edit_target"] = c.shift or c.data or ""
            st.session_state["cand_edit_label"] = c.label
            st.session_state["cand_edit_note"] = c.note

        if st.session_state.get("cand_edit_id") not in ids:
            st.session_state["cand_edit_id"] = ids[0]
            _load_fields()
        with st.expander("Edit or remove a candidate"):
            cid = st.selectbox(
                "Candidate",
                ids,
                key="cand_edit_id",
                on_change=_load_fields,
                format_func=lambda i: f"{i} — {plan.candidate(i).title}",
            )
            if "cand_edit_target" not in st.session_state:
                _load_fields()
            chosen = plan.candidate(cid)
            target = st.text_input(
                "Shift (NAME:SEVERITY)" if chosen.kind == "shift" else "Data spec",
                key="cand_edit_target",
            )
            label = st.text_input("Label", key="cand_edit_label")
            note = st.text_input("Note", key="cand_edit_note")
            col_save, col_remove, col_clear = st.columns(3)
            if col_save.button("Save changes", key="cand_edit_save", icon=":material/save:"):
                doc = state.plan_doc()
                for c in doc["candidates"]:
                    if c["id"] == cid:
                        c.update({"shift" if chosen.kind == "shift" else "data": target.strip()})
                        c["label"], c["note"] = label.strip(), note.strip()
                with user_errors("Could not save the changes") as box:
                    state.set_plan(doc)
                if not box.failed:
                    st.rerun()
            if col_remove.button("Remove", key="cand_remove", icon=":material/delete:"):
                doc = state.plan_doc()
                doc["candidates"] = [c for c in doc["candidates"] if c["id"] != cid]
                state.set_plan(doc)
                st.rerun()
            if col_clear.button(
                "Remove all", key="cand_remove_all", icon=":material/delete_sweep:"
            ):
                doc = state.plan_doc()
                doc["candidates"] = []
                state.set_plan(doc)
                st.rerun()

# ------------------------------------------------------------------ plan file
with st.container(border=True):
    st.subheader("Plan file")
    st.caption(
        "A plan is one JSON file describing the whole comparison (checkpoint, source, "
        "candidates, settings); the command line runs it with `python -m resque_core rank "
        "--plan FILE`."
    )

    def _rename() -> None:
        name = st.session_state["cand_plan_name"].strip()
        if name:
            doc = state.plan_doc()
            doc["name"] = name
            state.set_plan(doc)
            st.session_state["cand_plan_name_of"] = state.plan_key()

    # The name field follows the plan when another plan is loaded or edited elsewhere.
    if st.session_state.get("cand_plan_name_of") != state.plan_key():
        st.session_state["cand_plan_name"] = plan.name
        st.session_state["cand_plan_name_of"] = state.plan_key()
    col_name, col_download = st.columns([3, 1])
    col_name.text_input("Name of the comparison", key="cand_plan_name", on_change=_rename)
    col_download.download_button(
        "Download plan",
        data=json.dumps(plan.to_dict(), indent=2) + "\n",
        file_name=f"{widgets.unique_id(plan.name, [])}.json",
        mime="application/json",
        key="cand_download",
        icon=":material/download:",
        width="stretch",
    )
    col_up, col_path = st.columns(2)
    with col_up:
        plan_upload = st.file_uploader(
            "Load a plan file",
            type=["json"],
            key="cand_plan_upload",
            help="Relative paths in an uploaded plan are read from the folder the app runs in.",
        )
        if st.button("Load this plan", key="cand_plan_load", disabled=plan_upload is None):
            with user_errors("Could not load the plan") as box:
                loaded = load_plan(state.save_upload(plan_upload.name, plan_upload.getvalue()))
                state.open_plan(loaded, base=str(Path.cwd()))
            if not box.failed:
                st.rerun()
    with col_path:
        plan_path = st.text_input(
            "or a plan file on the server",
            key="cand_plan_path",
            help="Relative paths in it are read from the plan file's folder.",
        ).strip()
        if st.button("Open", key="cand_plan_open", disabled=not plan_path):
            with user_errors("Could not open the plan") as box:
                loaded = load_plan(state.allowed_path(plan_path))
                state.open_plan(loaded, base=loaded.base_dir)
            if not box.failed:
                st.rerun()
    # Shown once, on the run after the plan was opened (e.g. a "trusted" field it ignored).
    for notice in state.take_notices():
        st.warning(f"{notice[:1].upper()}{notice[1:]}.", icon=":material/shield:")
