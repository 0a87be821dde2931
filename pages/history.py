"""History: every stored ranking and validation, reopened read-only, with a link and exports.

Every stored document is checked (``resque_core.store.documents.check_run``) before it is listed or
shown. One that does not fit is listed as "unreadable" with its file name and the reason; the
other runs, the import and every other session's page keep working.
"""

from pathlib import Path
from typing import Any

import streamlit as st

from resque_core import ResqueError
from resque_core.store import documents as docs
from ui import cached, views, widgets
from ui.feedback import user_errors

_SHOWN = 300  # newest runs listed

st.title("History")
st.caption(
    "Every ranking and validation is stored with its plan, results, settings, hardware and "
    "versions, and survives restarts. Open one to read it again, share its link, or export it."
)


UNREADABLE = "unreadable"  # the type shown for a stored file that is not a valid run


def _open(store, run_id: str) -> tuple[docs.RunDoc | None, str]:
    """The checked document of a stored run, or None and why it cannot be shown."""
    try:  # the store refuses a damaged file (not JSON, not a regular file) with a ConfigError
        return docs.check_run(store.load(run_id)), ""
    except ResqueError as e:
        return None, str(e)


@st.cache_data(max_entries=2000, show_spinner=False)
def _summary(_store, run_id: str, path: str, mtime_ns: int) -> dict[str, Any]:
    """One line of the run list; ``path`` and ``mtime_ns`` key the cache (a rewritten file is
    read again)."""
    doc, why = _open(_store, run_id)
    if doc is None:
        return {
            "run": run_id,
            "type": UNREADABLE,
            "created (UTC)": "",
            "comparison": "",
            "outcome": f"{Path(path).name}: {why}",
        }
    if doc["type"] == "ranking":
        ok = docs.scored(doc)
        outcome = f"{len(ok)} / {len(doc['candidates'])} ranked"
        if ok:
            outcome += f"; first: {ok[0]['label']}"
    else:
        outcome = f"{len(docs.measured(doc))} / {len(doc['runs'])} retrained"
    if doc.get("cancelled"):
        outcome += " (cancelled)"
    return {
        "run": run_id,
        "type": doc["type"],
        "created (UTC)": str(doc.get("created", "")).replace("T", " ")[:19],
        "comparison": doc["plan"].get("name") or "",
        "outcome": outcome,
    }


def _list_runs(store) -> list[dict[str, Any]]:
    return [
        _summary(store, run_id, str(path), mtime)
        for run_id, path, mtime in store.entries()[:_SHOWN]
    ]


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
        from resque_core import import_run

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
ids = [r["run"] for r in rows if r["type"] != UNREADABLE]
wanted = st.query_params.get("run")
if wanted and wanted not in ids:
    _, why = _open(store, wanted)  # names the problem: malformed id, no such run, bad file
    if why:
        st.error(f"Could not open the linked run: {views.md_text(why)}", icon="⚠️")
    else:  # stored but older than the list shows: offer it too
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

doc, why = _open(store, chosen)
if doc is None:
    st.error(f"Could not read run {chosen}: {views.md_text(why)}", icon="⚠️")
    st.stop()

# ----------------------------------------------------------------------------- one run
plan = doc["plan"]
st.subheader(views.md_text(plan.get("name") or chosen))
st.caption(
    f"{'Ranking' if doc['type'] == 'ranking' else 'Validation'} `{chosen}` · "
    f"created {views.md_text(str(doc.get('created', '')).replace('T', ' '))} UTC · read-only · "
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
