"""Per-session state: the current plan (as its JSON dict) and the session's upload folder.

Everything lives in ``st.session_state``, so two browser sessions never see each other's plan or
files. The plan is kept as the plain dict of :meth:`resque_core.plans.Plan.to_dict` plus the folder
its relative paths are resolved against; every change is validated with
:func:`resque_core.plans.plan_from_dict` before it is stored, so the stored plan is always valid.
A session opens on the shipped demo plan.

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
import re
import tempfile
from pathlib import Path
from typing import Any

import streamlit as st

from resque_core import DEMO_PLAN, PLAN_VERSION, Plan, ResqueError, load_plan, plan_from_dict

__all__ = [
    "base_dir",
    "current_plan",
    "is_demo",
    "load_demo",
    "new_comparison",
    "plan_doc",
    "plan_key",
    "save_upload",
    "open_plan",
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
_UPLOADS = "upload_dir"
_TRUSTED = "plan_trusted"
_NOTICES = "plan_notices"
# The Checkpoint page's switch: cleared with the trust so that it shows "off" for a new plan.
_TRUST_SWITCH = "ckpt_trusted"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


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
    try:
        load_demo()
    except ResqueError as e:
        # A broken install must not make the app unusable: open on an empty plan and say why.
        st.session_state[_ERROR] = f"the demo plan could not be opened: {e}"
        st.session_state[_PLAN] = _blank()
        st.session_state[_BASE] = str(Path.cwd())
        st.session_state[_DEMO] = False


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
    st.session_state[_PLAN] = plan.to_dict()
    st.session_state[_BASE] = plan.base_dir
    st.session_state[_DEMO] = False
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
    """This session's folder for uploaded files (created on first use)."""
    if _UPLOADS not in st.session_state:
        st.session_state[_UPLOADS] = tempfile.mkdtemp(prefix="resque-uploads-")
    path = Path(st.session_state[_UPLOADS])
    path.mkdir(parents=True, exist_ok=True)
    return path


def save_upload(name: str, content: bytes) -> Path:
    """Write an uploaded file into the session folder and return its path.

    The file keeps a sanitised version of its name (no folders, no odd characters) inside a
    sub-folder named by its content hash, so equal uploads are written once and different files
    with the same name never overwrite each other.
    """
    digest = hashlib.sha256(content).hexdigest()[:16]
    safe = _UNSAFE.sub("_", Path(name).name).strip("._")[:100] or "upload"
    folder = upload_dir() / digest
    folder.mkdir(exist_ok=True)
    path = folder / safe
    if not path.exists():
        tmp = path.with_name(path.name + ".part")
        tmp.write_bytes(content)
        tmp.replace(path)
    return path
