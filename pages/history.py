"""History: every stored ranking and validation, reopened read-only, with a link and exports;
searched, filtered, deleted, compared side by side, or continued as the working plan. Below, the
workspaces kept on this server (a plan being edited and its uploads), to open or delete.

Every stored document is checked (``resque_core.store.documents.check_run``) before it is listed or
shown. One that does not fit is listed as "unreadable" with its file name and the reason; the
other runs, the import and every other session's page keep working.
"""

import os
from pathlib import Path
from typing import Any

import streamlit as st

from resque_core import DEMO_PLAN, ResqueError, plan_from_dict
from resque_core.store import documents as docs
from ui import cached, state, views, widgets
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
            "status": UNREADABLE,
            "created (UTC)": "",
            "comparison": "",
            "checkpoint": "",
            "outcome": f"{Path(path).name}: {why}",
        }
    if doc["type"] == "ranking":
        ok = docs.scored(doc)
        outcome = f"{len(ok)} / {len(doc['candidates'])} ranked"
        if ok:
            outcome += f"; first: {ok[0]['label']}"
        status = "ok" if len(ok) == len(doc["candidates"]) else "failed" if not ok else "partly"
    else:
        done = len(docs.measured(doc))
        outcome = f"{done} / {len(doc['runs'])} retrained"
        status = "ok" if done == len(doc["runs"]) else "failed" if not done else "partly"
    if doc.get("cancelled"):
        outcome += " (cancelled)"
        status = "cancelled"
    checkpoint = str((doc["plan"].get("model") or {}).get("checkpoint") or "")
    return {
        "run": run_id,
        "type": doc["type"],
        "status": status,
        "created (UTC)": str(doc.get("created", "")).replace("T", " ")[:19],
        "comparison": doc["plan"].get("name") or "",
        "checkpoint": state.display(checkpoint).rsplit("/", 1)[-1],
        "outcome": outcome,
    }


def _matches(row: dict[str, Any], words: str, statuses: list[str]) -> bool:
    """Whether a listed run passes the search (name, checkpoint or id) and the status filter."""
    if statuses and row["status"] not in statuses:
        return False
    text = " ".join(str(row[k]) for k in ("run", "comparison", "checkpoint")).lower()
    return all(w in text for w in words.lower().split())


def _base_for(plan: dict[str, Any]) -> str:
    """The folder a stored plan's relative paths resolve against: the shipped demo's for the
    demo's plan, else the folder the app runs in (absolute paths need none)."""
    checkpoint = str((plan.get("model") or {}).get("checkpoint") or "")
    demo = Path(DEMO_PLAN).parent
    if checkpoint and not Path(checkpoint).is_absolute() and (demo / checkpoint).is_file():
        return str(demo)
    return str(Path.cwd())


def _continue(doc: docs.RunDoc) -> None:
    """Make the run's plan the working plan of this session (trust off) and go edit it."""
    with user_errors("Could not continue from this run's plan") as box:
        plan = doc["plan"]
        base = _base_for(plan)
        state.open_plan(plan_from_dict(plan, base_dir=base), base=base)
    if not box.failed:
        st.switch_page("pages/candidates.py")


def _compare(store, first: str, second: str) -> None:
    """Two runs side by side: their headline figures, and every candidate's RESQUE and rank."""
    shown = []
    for run_id in (first, second):
        doc, why = _open(store, run_id)
        if doc is None:
            st.error(f"Could not read run {run_id}: {views.md_text(why)}", icon="⚠️")
            return
        shown.append((run_id, doc))
    for col, (run_id, doc) in zip(st.columns(2), shown, strict=True):
        with col:
            st.markdown(f"**{views.md_text(doc['plan'].get('name') or run_id)}** · `{run_id}`")
            if doc["type"] == "ranking":
                views.ranking_metrics(doc)
            else:
                st.caption(f"Validation: {len(docs.measured(doc))} / {len(doc['runs'])} retrained")
    rows: dict[str, dict[str, Any]] = {}
    for run_id, doc in shown:
        items = doc["candidates"] if doc["type"] == "ranking" else doc["runs"]
        for c in items:
            key = c.get("id") or c.get("candidate_id") or ""
            row = rows.setdefault(key, {"candidate": c.get("label", key), "id": key})
            row[f"RESQUE · {run_id}"] = c.get("resque")
            row[f"rank · {run_id}"] = c.get("rank")
            if doc["type"] != "ranking":
                row[f"epochs · {run_id}"] = c.get("epochs")
    st.dataframe(list(rows.values()), hide_index=True, key="hist_compare_table")


def _workspaces() -> None:
    """The workspaces of this server: open one in this tab, or delete it with its uploads."""
    if os.environ.get("RESQUE_LIST_WORKSPACES", "1") == "0":
        st.caption("This server does not list workspaces: open yours by its link (?ws=…).")
        return
    found = cached.workspaces().list()
    current = state.workspace_id()
    if not found:
        st.caption("No workspace yet: one is kept as soon as you change the comparison.")
        return
    st.dataframe(
        [
            {
                "workspace": w["id"][:8] + ("… (this tab)" if w["id"] == current else "…"),
                "comparison": w["name"],
                "candidates": w["candidates"],
                "uploads": w["uploads"],
                "upload MB": round(w["upload_bytes"] / 2**20, 2),
                "updated (UTC)": str(w["updated"]).replace("T", " "),
            }
            for w in found
        ],
        hide_index=True,
        key="hist_ws_table",
    )
    by_id = {w["id"]: w for w in found}
    chosen = st.selectbox(
        "Workspace",
        list(by_id),
        index=None,
        placeholder="Choose a workspace…",
        format_func=lambda i: (
            f"{by_id[i]['name'] or 'untitled'} · {i[:8]}…" + (" · this tab" if i == current else "")
        ),
        key="hist_ws",
    )
    if chosen is None:
        return
    left, right = st.columns(2)
    if left.button("Open in this tab", key="hist_ws_open", icon=":material/open_in_browser:"):
        with user_errors("Could not open the workspace") as box:
            state.open_workspace(chosen)
        if not box.failed:
            st.switch_page("pages/candidates.py", query_params={"ws": chosen})
    if right.button(
        "Delete the workspace and its uploads", key="hist_ws_delete", icon=":material/delete:"
    ):
        state.delete_workspace(chosen)
        st.session_state.pop("hist_ws", None)
        st.rerun()


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

if (deleted := st.session_state.pop("hist_deleted", None)) is not None:
    st.success(f"Deleted run {deleted}.", icon=":material/check:")

with st.expander("Workspaces on this server", icon=":material/folder_open:"):
    _workspaces()

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
        rows.insert(
            0,
            {
                "run": wanted,
                "type": "",
                "status": "",
                "created (UTC)": "",
                "comparison": "",
                "checkpoint": "",
                "outcome": "",
            },
        )
if st.session_state.get("hist_run_of_link") != wanted and wanted in ids:
    # A link (?run=ID) selects its run; afterwards the picker is the user's.
    st.session_state["hist_run"] = wanted
    st.session_state["hist_run_of_link"] = wanted
by_id = {r["run"]: r for r in rows}
col_search, col_status = st.columns([3, 2])
words = col_search.text_input(
    "Search", key="hist_search", placeholder="comparison name, checkpoint or run id"
)
statuses = col_status.multiselect(
    "Status",
    ["ok", "partly", "failed", "cancelled", UNREADABLE],
    key="hist_status",
    placeholder="all",
    help="partly: some candidates failed; failed: none was scored (or retrained).",
)
shown = [r for r in rows if _matches(r, words, statuses)]
if shown:
    # Fixed widths that fit the page at 1400 px; a longer cell ends in "…" and shows whole on
    # hover or in the run below.
    widths = {
        "run": 170,
        "type": 72,
        "status": 70,
        "created (UTC)": 140,
        "comparison": 185,
        "checkpoint": 120,
        "outcome": 240,
    }
    st.dataframe(
        shown,
        hide_index=True,
        key="hist_table",
        column_config={k: st.column_config.TextColumn(k, width=w) for k, w in widths.items()},
    )
    if len(shown) < len(rows):
        st.caption(f"{len(shown)} of {len(rows)} runs match.")
else:
    st.info("No stored run matches the search and the status filter.", icon=":material/info:")
ids = [i for i in ids if i == wanted or any(r["run"] == i for r in shown)]

with st.expander("Compare two runs side by side", icon=":material/compare:"):
    pair = st.multiselect(
        "Runs to compare",
        ids,
        max_selections=2,
        key="hist_compare",
        format_func=lambda i: f"{i} · {by_id[i]['comparison']}",
    )
    if len(pair) == 2:
        _compare(store, *pair)

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
    f"shareable link: `/history?run={chosen}`"
)
col_continue, col_delete, _ = st.columns([2, 2, 3])
if col_continue.button(
    "Continue from this run's plan",
    key="hist_continue",
    icon=":material/edit_note:",
    help="Makes this run's plan the comparison you edit (the current one is replaced; it stays "
    "in its workspace).",
):
    _continue(doc)
with col_delete.popover("Delete this run", icon=":material/delete:"):
    st.caption("The stored run is removed for everyone; its cached results stay.")
    if st.button("Delete", key="hist_delete", type="primary"):
        with user_errors("Could not delete the run") as box:
            store.delete(chosen)
        if not box.failed:
            st.session_state["hist_deleted"] = chosen
            st.session_state.pop("hist_run", None)
            st.session_state.pop("hist_run_of_link", None)
            st.query_params.pop("run", None)
            st.rerun()
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
