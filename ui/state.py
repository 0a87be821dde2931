"""Per-session state: the current plan (as its JSON dict), kept in a server-side workspace.

The plan being edited lives in ``st.session_state`` and, from its first change on, in a
*workspace* on the server (:class:`resque_core.store.WorkspaceStore`, under the cache folder)
whose random id is put in the page's URL as ``?ws=ID``: a reload, or the link copied into
another tab, opens the same plan and uploads again. A tab opened without ``?ws=`` starts fresh
(on the demo) and gets its own workspace when its plan is first changed. Uploads are stored in
the workspace (by content hash, with their original names) and are deleted with it.

Paths typed into the dashboard are read only inside the server's data roots
(:func:`ui.cached.allowed_path`): every new path a plan change brings is checked in
:func:`set_plan`, so a plan never points the server at files outside them.

The plan is kept as the plain dict of :meth:`resque_core.plans.Plan.to_dict` plus the folder
its relative paths are resolved against; every change is validated with
:func:`resque_core.plans.plan_from_dict` before it is stored, so the stored plan is always valid.
A session without a workspace opens on the shipped demo plan.

Trust in the checkpoint (a pickled model runs code when loaded) is never part of the plan: it is
the session's own flag, set only by the Checkpoint page's switch together with the checkpoint
it applies to, applied by :func:`current_plan`, and reset to off whenever another plan is opened
(a plan file, the demo, a new comparison). What an opened plan file said but was ignored is kept
for the page to show once (:func:`take_notices`).
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import streamlit as st

from resque_core import DEMO_PLAN, PLAN_VERSION, Plan, ResqueError, load_plan, plan_from_dict
from resque_core.executor import make_executor

from . import cached

__all__ = [
    "allowed_path",
    "allowed_spec",
    "base_dir",
    "delete_workspace",
    "display",
    "open_workspace",
    "sync_url",
    "uploads",
    "workspace_id",
    "current_plan",
    "executor",
    "executor_choice",
    "is_demo",
    "load_demo",
    "new_comparison",
    "plan_doc",
    "plan_key",
    "save_upload",
    "open_plan",
    "set_executor",
    "set_plan",
    "set_trusted",
    "startup_error",
    "take_notices",
    "trusted",
    "upload_dir",
]

_PLAN = "plan"
_BASE = "plan_base_dir"
_DEMO = "plan_is_demo"
_ERROR = "plan_startup_error"
_WS = "workspace_id"
_WS_PARAM = "ws"
_TRUSTED = "plan_trusted"
_NOTICES = "plan_notices"
_EXECUTOR = "executor_choice"
# The Checkpoint page's switch: cleared with the trust so that it shows "off" for a new plan.
_TRUST_SWITCH = "ckpt_trusted"


def _blank(run: dict[str, Any] | None = None) -> dict[str, Any]:
    """A plan with no checkpoint, source or candidates (keeps the given run settings)."""
    doc: dict[str, Any] = {
        "version": PLAN_VERSION,
        "name": "my comparison",
        "model": {"checkpoint": "", "in_channels": 3},
        "source": "",
        "layer": None,
        "candidates": [],
    }
    if run is not None:
        doc["run"] = run
    return doc


def _ensure() -> None:
    if _PLAN in st.session_state:
        return
    cached.expire_workspaces()  # a new session: old workspaces and their uploads go
    wanted = st.query_params.get(_WS_PARAM)
    if wanted:
        try:
            _restore(wanted)
            return
        except ResqueError as e:
            # A deleted workspace or a damaged link: start fresh, and say why.
            st.session_state[_ERROR] = f"The linked workspace could not be opened: {e}."
            st.query_params.pop(_WS_PARAM, None)
    try:
        load_demo()
    except ResqueError as e:
        # A broken install must not make the app unusable: open on an empty plan and say why.
        st.session_state[_ERROR] = f"the demo plan could not be opened: {e}"
        st.session_state[_PLAN] = _blank()
        st.session_state[_BASE] = str(Path.cwd())
        st.session_state[_DEMO] = False


def _restore(ws_id: str) -> None:
    """Make workspace ``ws_id`` this session's (its plan, or the demo if it has none yet)."""
    doc = cached.workspaces().load(ws_id)
    st.session_state[_WS] = ws_id
    if doc.get("plan") is None:
        load_demo()
        return
    plan = plan_from_dict(doc["plan"], base_dir=doc.get("base") or str(Path.cwd()))
    st.session_state[_PLAN] = plan.to_dict()
    st.session_state[_BASE] = plan.base_dir
    st.session_state[_DEMO] = bool(doc.get("demo"))
    _untrust()


def workspace_id() -> str | None:
    """This session's workspace id (None until its plan is first changed)."""
    _ensure()
    return st.session_state.get(_WS)


def _workspace() -> str:
    """This session's workspace id, creating the workspace (and its URL) on first use."""
    ws_id = st.session_state.get(_WS)
    store = cached.workspaces()
    if ws_id is None or not store.exists(ws_id):
        ws_id = store.create()
        st.session_state[_WS] = ws_id
    sync_url()
    return ws_id


def _persist() -> None:
    """Write the current plan to this session's workspace."""
    cached.workspaces().save(
        _workspace(),
        plan=st.session_state[_PLAN],
        base=st.session_state[_BASE],
        demo=bool(st.session_state.get(_DEMO)),
    )


def sync_url() -> None:
    """Put this session's workspace id in the URL (``?ws=ID``) if it is not there: pages
    switched inside the app drop the query, and a reload must find the workspace again."""
    ws_id = st.session_state.get(_WS)
    if ws_id and st.query_params.get(_WS_PARAM) != ws_id:
        st.query_params[_WS_PARAM] = ws_id


def open_workspace(ws_id: str) -> None:
    """Make another stored workspace this session's (trust off); ConfigError if there is none."""
    _restore(ws_id)
    sync_url()


def delete_workspace(ws_id: str) -> bool:
    """Delete a workspace and its uploads; this session starts fresh if it was its own."""
    gone = cached.workspaces().delete(ws_id)
    cached.forget_uploads(str(cached.workspaces().directory / ws_id))
    if st.session_state.get(_WS) == ws_id:
        st.session_state.pop(_WS, None)
        st.query_params.pop(_WS_PARAM, None)
        load_demo()
    return gone


def uploads() -> list[Any]:
    """This session's uploaded files (:class:`resque_core.store.Upload`: name, size, path)."""
    ws_id = st.session_state.get(_WS)
    if ws_id is None:
        return []
    try:
        return cached.workspaces().uploads(ws_id)
    except ResqueError:
        return []


def display(text: Any) -> str:
    """``text`` with every upload path shown as the uploaded file's name."""
    _ensure()
    return cached.workspaces().display(str(text), st.session_state.get(_WS))


def _paths(doc: dict[str, Any]) -> set[tuple[str, str]]:
    """(kind, value) of every server path a plan dict names: its checkpoint and data specs."""
    found = set()
    if (doc.get("model") or {}).get("checkpoint"):
        found.add(("file", str(doc["model"]["checkpoint"])))
    if doc.get("source"):
        found.add(("spec", str(doc["source"])))
    for c in doc.get("candidates") or []:
        if isinstance(c, dict) and c.get("data"):
            found.add(("spec", str(c["data"])))
    return found


def _check_new_paths(plan: Plan, before: dict[str, Any] | None) -> None:
    """ConfigError unless every path ``plan`` adds (to ``before``) is inside the data roots,
    the demo or this session's uploads."""
    old = _paths(before) if before is not None else set()
    for kind, value in _paths(plan.to_dict()) - old:
        if kind == "file":
            allowed_path(plan.resolve(value))
        else:
            allowed_spec(plan.resolve(value))


def _own_uploads() -> tuple[str, ...]:
    ws_id = st.session_state.get(_WS)
    return (str(cached.workspaces().uploads_folder(ws_id)),) if ws_id else ()


def allowed_path(path: str) -> str:
    """``path`` if this session may read it (inside a data root, the demo or its own uploads);
    else ConfigError "not an allowed location" (the same for a missing path). Nothing is read."""
    return cached.allowed_path(path, extra=_own_uploads())


def allowed_spec(spec: str) -> str:
    """A data spec whose server path passes :func:`allowed_path` (built-in sets always do)."""
    return cached.allowed_spec(spec, extra=_own_uploads())


def startup_error() -> str | None:
    """Why the demo plan could not be opened at start, if it could not."""
    _ensure()
    return st.session_state.get(_ERROR)


def plan_doc() -> dict[str, Any]:
    """A copy of the current plan's dict (change it, then store it with :func:`set_plan`)."""
    _ensure()
    return copy.deepcopy(st.session_state[_PLAN])


def base_dir() -> str:
    """Folder against which the current plan's relative paths are resolved."""
    _ensure()
    return st.session_state[_BASE]


def current_plan() -> Plan:
    """The current plan, validated, with this session's checkpoint trust."""
    return plan_from_dict(plan_doc(), base_dir=base_dir()).with_trust(trusted())


def trusted() -> bool:
    """Whether this session trusts the current plan's checkpoint (off unless the Checkpoint
    page's switch was on when that checkpoint was applied)."""
    return bool(st.session_state.get(_TRUSTED, False))


def set_trusted(value: bool) -> None:
    """Record the Checkpoint page's trust switch for the checkpoint it just applied."""
    st.session_state[_TRUSTED] = bool(value)


def set_plan(doc: dict[str, Any], *, base: str | None = None) -> Plan:
    """Validate ``doc`` and make it the current plan; ConfigError (nothing stored) if invalid."""
    plan = plan_from_dict(doc, base_dir=base or base_dir())
    same_base = plan.base_dir == st.session_state.get(_BASE)
    _check_new_paths(plan, st.session_state.get(_PLAN) if same_base else None)
    st.session_state[_PLAN] = plan.to_dict()
    st.session_state[_BASE] = plan.base_dir
    st.session_state[_DEMO] = False
    _persist()
    return plan


def _untrust() -> None:
    st.session_state[_TRUSTED] = False
    st.session_state.pop(_TRUST_SWITCH, None)


def open_plan(plan: Plan, *, base: str) -> Plan:
    """Make a plan read from a file the current plan (paths resolved against ``base``), with
    trust off; its :attr:`~resque_core.plans.Plan.warnings` wait for :func:`take_notices`."""
    opened = set_plan(plan.to_dict(), base=base)
    _untrust()
    st.session_state[_NOTICES] = list(plan.warnings)
    return opened


def take_notices() -> list[str]:
    """What the last opened plan file said but was ignored, once (empty afterwards)."""
    return st.session_state.pop(_NOTICES, [])


def load_demo() -> Plan:
    """Make the shipped demo plan the current plan (trust off)."""
    plan = load_plan(DEMO_PLAN)
    st.session_state[_PLAN] = plan.to_dict()
    st.session_state[_BASE] = plan.base_dir
    st.session_state[_DEMO] = True
    st.session_state.pop(_ERROR, None)
    _untrust()
    if st.session_state.get(_WS):  # "back to the demo" inside a workspace is kept there too
        _persist()
    return plan


def new_comparison() -> Plan:
    """Replace the current plan by an empty one that keeps the run settings (trust off)."""
    plan = set_plan(_blank(plan_doc().get("run")), base=str(Path.cwd()))
    _untrust()
    return plan


def is_demo() -> bool:
    """True while the current plan is the unchanged demo plan."""
    _ensure()
    return bool(st.session_state.get(_DEMO))


def plan_key(doc: dict[str, Any] | None = None, base: str | None = None) -> str:
    """Short content id of a plan (default: the current one), its base folder and the session's
    trust (a ranking that failed on an untrusted pickle is not the one to show once trusted)."""
    text = json.dumps(
        {
            "plan": doc if doc is not None else plan_doc(),
            "base": base or base_dir(),
            "trusted": trusted(),
        },
        sort_keys=True,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def upload_dir() -> Path:
    """This session's folder for uploaded files (its workspace's; created on first use)."""
    folder = cached.workspaces().uploads_folder(_workspace())
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def save_upload(name: str, content: bytes) -> Path:
    """Store an uploaded file in this session's workspace and return its path.

    Equal uploads are stored once (a folder per content hash); the file keeps its name, shown
    wherever the path would be. ConfigError if it is over the server's upload caps.
    """
    return cached.workspaces().add_upload(_workspace(), name, content)


def executor_choice() -> tuple[str, str | None]:
    """Where this session's jobs run: (``local`` or ``ray``, Ray address or None)."""
    return st.session_state.get(_EXECUTOR, ("local", None))


def set_executor(name: str, address: str | None = None) -> str:
    """Make ``name`` (at ``address``) the executor of this session's jobs and return where it
    runs, in words. Ray is started (or joined) here, so a wrong address is reported now
    (ResqueError, the choice unchanged) and not at the next ranking."""
    address = (address or "").strip() or None
    chosen = make_executor(name, address=address if name == "ray" else None)
    st.session_state[_EXECUTOR] = (name, address if name == "ray" else None)
    return chosen.describe()


def executor():
    """The executor for this session's next job: None for ``local`` (the engine's default, so
    the default path never imports ray), else the Ray executor of :func:`set_executor`."""
    name, address = executor_choice()
    return None if name == "local" else make_executor(name, address=address)
