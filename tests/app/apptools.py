"""Helpers for the AppTest tests: the app from its entry file, tiny plans, finished jobs."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

APP = Path(__file__).resolve().parents[2] / "app.py"
TIMEOUT = 60


def open_app(plan: dict | None = None, base: str | None = None) -> AppTest:
    """The app, optionally on ``plan`` (a plan dict) instead of the demo; not run yet."""
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    if plan is not None:
        # The session keys of ui/state.py: the plan dict and the folder it resolves against.
        at.session_state["plan"] = plan
        at.session_state["plan_base_dir"] = base or str(Path.cwd())
        at.session_state["plan_is_demo"] = False
    return at


def finish_jobs(at: AppTest, timeout: float = 120) -> AppTest:
    """Wait until this session's ranking jobs end, then rerun the page (as the poller would)."""
    for job in at.session_state["rank_jobs"].values():
        assert job.finished.wait(timeout), "a ranking job did not finish in time"
    return at.run()


def no_problems(at: AppTest) -> None:
    """The page ran without an exception and shows no error."""
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def tiny_plan(checkpoint: str, source: str, *, candidates: list[dict] | None = None) -> dict:
    return {
        "version": 1,
        "name": "tiny",
        "model": {
            "checkpoint": checkpoint,
            "arch": "small_cnn",
            "num_classes": 10,
            "in_channels": 1,
            "image_size": [8, 8],
        },
        "source": source,
        "run": {"samples_per_class": 12, "batch_size": 64, "seed": 0, "flatten": False},
        "candidates": candidates
        if candidates is not None
        else [
            {"id": "noise-1", "kind": "shift", "shift": "gaussian_noise:1"},
            {"id": "noise-5", "kind": "shift", "shift": "gaussian_noise:5"},
            {"id": "parity", "kind": "task", "data": "builtin:digits-parity"},
        ],
    }


def table(at: AppTest, column: str):
    """The first table on the page with a ``column`` column, as a pandas DataFrame.

    (Read-only tables carry no key in AppTest, so they are found by their columns.)
    """
    for frame in at.dataframe:
        value = frame.value
        if column in value.columns:
            return value
    raise AssertionError(f"no table with a {column!r} column on the page")
