"""History: every stored ranking and validation, reopened read-only, with a link and exports."""

import json
from typing import Any

import streamlit as st

from resque_core.errors import ResqueError
from ui import cached, views, widgets
from ui.feedback import user_errors

_SHOWN = 300  # newest runs listed

st.title("History")
st.caption(
    "Every ranking and validation is stored with its plan, results, settings, hardware and "
    "versions, and survives restarts. Open one to read it again, share its link, or export it."
)


@st.cache_data(max_entries=2000, show_spinner=False)
def _summary(path: str, _mtime_ns: int) -> dict[str, Any] | None:
    """One line of the run list (None for a file that is not a readable run)."""
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError):
        return None
    kind = doc.get("type")
    plan = doc.get("plan") or {}
    if kind == "ranking":
        ok = [c for c in doc.get("candidates", []) if c.get("status") == "ok"]
        outcome = f"{len(ok)} / {len(doc.get('candidates', []))} ranked"
        if ok:
            outcome += f"; first: {ok[0].get('label')}"
    elif kind == "validation":
        runs = doc.get("runs", [])
        done = [r for r in runs if r.get("epochs") is not None]
        outcome = f"{len(done)} / {len(runs)} retrained"
    else:
        return None
    if doc.get("cancelled"):
        outcome += " (cancelled)"
    return {
        "run": doc.get("run_id"),
        "type": kind,
        "created (UTC)": str(doc.get("created", "")).replace("T", " ")[:19],
        "comparison": plan.get("name", ""),
        "outcome": outcome,
    }


def _list_runs(store) -> list[dict[str, Any]]:
    rows = []
    for _, path, mtime in store.entries()[:_SHOWN]:
        if (row := _summary(str(path), mtime)) is not None:
            rows.append(row)
    return rows


with user_errors("Could not open the run store") as box:
    store = cached.run_store()
    rows = _list_runs(store)
if box.failed:
    st.stop()

# ----------------------------------------------------------------------------- import
with st.expander("Import a run (JSON export)", icon=":material/upload_file:"):
    upload = st.file_uploader(
        "A run exported as JSON from this tool",
        type=["json"],
        key="hist_import",
        help="The JSON export of a ranking or validation, for example from a colleague.",
    )
    if upload is not None and st.button("Import", key="hist_import_go", icon=":material/add:"):
        from resque_core.report import import_run

        with user_errors("Could not import the run") as box:
            imported = import_run(upload.getvalue(), cache_dir=cached.cache_dir())
        if not box.failed:
            st.query_params["run"] = imported
            st.rerun()

if not rows:
    st.info(
        "No stored runs yet: rankings and validations appear here once computed.",
        icon=":material/info:",
    )
    st.stop()

# ----------------------------------------------------------------------------- the list
ids = [r["run"] for r in rows]
wanted = st.query_params.get("run")
if wanted and wanted not in ids:
    with user_errors("Could not open the linked run") as box:
        store.load(wanted)  # names the problem: malformed id or no such run
    if not box.failed:  # stored but older than the list shows: offer it too
        ids.insert(0, wanted)
        rows.insert(0, {"run": wanted, "type": "", "created (UTC)": "", "comparison": ""})
if st.session_state.get("hist_run_of_link") != wanted and wanted in ids:
    # A link (?run=ID) selects its run; afterwards the picker is the user's.
    st.session_state["hist_run"] = wanted
    st.session_state["hist_run_of_link"] = wanted
by_id = {r["run"]: r for r in rows}
st.dataframe(rows, hide_index=True, key="hist_table")
chosen = st.selectbox(
    "Open run",
    ids,
    index=None,
    placeholder="Choose a run…",
    format_func=lambda i: f"{i} · {by_id[i]['type']} · {by_id[i]['comparison']}",
    key="hist_run",
)
if chosen is None:
    st.stop()
if st.query_params.get("run") != chosen:
    st.query_params["run"] = chosen
    st.session_state["hist_run_of_link"] = chosen

try:
    doc = store.load(chosen)
except (ResqueError, OSError, ValueError) as e:
    st.error(f"Could not read run {chosen}: {e}", icon="⚠️")
    st.stop()

# ----------------------------------------------------------------------------- one run
plan = doc.get("plan") or {}
st.subheader(plan.get("name") or chosen)
st.caption(
    f"{'Ranking' if doc['type'] == 'ranking' else 'Validation'} `{chosen}` · "
    f"created {str(doc.get('created', '')).replace('T', ' ')} UTC · read-only · "
    f"link: [?run={chosen}](/history?run={chosen})"
)
if doc["type"] == "ranking":
    views.ranking_metrics(doc)
    views.ranking_table(doc, key="hist_ranking_table")
    with st.expander("Export this ranking", icon=":material/ios_share:"):
        views.report_downloads(doc, key_prefix="hist")
    views.ranking_charts(doc, key_prefix="hist")
else:
    labels = {
        r["candidate_id"]: f"{r['label']} ({widgets.KIND_LABELS[r['kind']]})" for r in doc["runs"]
    }
    views.validation_results(doc, key_prefix="hist_val", labels=labels)

with st.expander("Plan, settings, hardware and versions", icon=":material/info:"):
    left, right = st.columns(2)
    left.caption("Plan")
    left.json(plan, expanded=False)
    right.caption("Hardware and versions")
    right.json(doc.get("environment") or {}, expanded=True)
