"""Workspaces (the plan and uploads kept on the server, named in the URL), data roots, and user
text shown as text: reload and copied links, uploads by name and deleted with their workspace,
one answer for every path outside the roots or missing, devices and FIFOs refused at once."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
from apptools import finish_jobs, no_problems, open_app, table, tiny_plan
from PIL import Image

from resque_core.store import NOT_ALLOWED, WorkspaceStore
from ui.views import md_text

IMAGE = "![x](http://127.0.0.1:9/a.png)"


def _page(page: str, *, ws: str | None = None, plan: dict | None = None):
    """A new browser session (a reload, or a copied link) opened on ``page``."""
    at = open_app(plan)
    if ws is not None:
        at.query_params["ws"] = ws
    at.switch_page(page)
    return at.run()


def _texts(at) -> list[str]:
    return [
        e.value
        for e in (*at.markdown, *at.caption, *at.error, *at.warning, *at.subheader, *at.title)
    ]


def test_reload_and_a_copied_link_restore_the_workspace_and_its_uploads(task_npz):
    at = _page("pages/candidates.py")
    assert "ws" not in at.query_params  # a fresh tab on the demo keeps nothing yet
    demo = at.session_state["plan"]
    at.radio(key="cand_task_how").set_value("Upload").run()
    at.file_uploader(key="cand_task_upload").upload("my letters.npz", task_npz).run()
    at.text_input(key="cand_task_label").set_value("letters")
    at.button(key="cand_add_task").click().run()
    no_problems(at)
    ws = at.query_params["ws"]
    assert len(ws) == 22
    stored = Path(at.session_state["plan"]["candidates"][-1]["data"])
    assert stored.is_file() and stored.read_bytes() == task_npz

    again = _page("pages/candidates.py", ws=ws)  # reload, or the link in another tab
    no_problems(again)
    assert again.session_state["plan"] == at.session_state["plan"]
    assert again.query_params["ws"] == ws
    # The upload is shown by its name: in the table, the sidebar, never by its server path.
    assert "my letters.npz" in list(table(again, "what")["what"])
    assert not [t for t in _texts(again) if "/workspaces/" in t]
    assert not [v for v in table(again, "what")["what"] if "/workspaces/" in str(v)]

    fresh = _page("pages/candidates.py")  # a new tab without the link starts fresh
    assert fresh.session_state["plan"] == demo
    assert "ws" not in fresh.query_params


def test_uploads_are_gone_when_the_workspace_is_deleted(task_npz):
    at = _page("pages/candidates.py")
    at.radio(key="cand_task_how").set_value("Upload").run()
    at.file_uploader(key="cand_task_upload").upload("abc.npz", task_npz).run()
    at.button(key="cand_add_task").click().run()
    ws = at.query_params["ws"]
    stored = Path(at.session_state["plan"]["candidates"][-1]["data"])
    assert stored.is_file()

    history = _page("pages/history.py", ws=ws)
    no_problems(history)
    listed = table(history, "uploads")
    assert list(listed["uploads"]) == [1]
    history.selectbox(key="hist_ws").set_value(ws).run()
    history.button(key="hist_ws_delete").click().run()
    no_problems(history)
    assert not stored.exists() and not stored.parent.parent.exists()
    assert not WorkspaceStore(os.environ["RESQUE_CACHE_DIR"]).exists(ws)
    # This session starts fresh (the URL loses ?ws= in the browser).
    assert "workspace_id" not in history.session_state
    assert history.session_state["plan_is_demo"]
    # The link of the deleted workspace now opens a fresh session and says why.
    gone = _page("pages/candidates.py", ws=ws)
    assert not gone.exception
    assert "ws" not in gone.query_params


def _apply_checkpoint(at, path: str):
    at.radio(key="ckpt_how").set_value("Path on the server").run()
    at.text_input(key="ckpt_path").set_value(path)
    at.selectbox(key="ckpt_arch").set_value("small_cnn")
    at.number_input(key="ckpt_in_channels").set_value(1)
    at.run()
    at.button(key="ckpt_apply").click()
    start = time.monotonic()
    at.run()
    return time.monotonic() - start


def test_paths_outside_the_roots_and_missing_paths_get_the_same_message(
    digits_checkpoint, digits_npz, data_roots, tmp_path
):
    link = tmp_path / "innocent.pt"
    link.symlink_to("/etc/passwd")  # inside a root, but leads out of it
    at = _page("pages/checkpoint.py", plan=tiny_plan("", digits_npz, candidates=[]))
    messages = []
    for path in ("/etc/passwd", "/root/.ssh", str(tmp_path / "missing.pt"), "/nope/x.pt", link):
        _apply_checkpoint(at, str(path))
        assert not at.exception
        messages.append([e.value for e in at.error])
        assert at.session_state["plan"]["model"]["checkpoint"] == ""
    expected = [f"Could not use this checkpoint: {md_text(NOT_ALLOWED)}"]
    assert messages == [expected] * 5
    # the same words for a plan file and a data path
    at = _page("pages/candidates.py", plan=tiny_plan(digits_checkpoint, digits_npz))
    at.text_input(key="cand_plan_path").set_value("/etc/passwd").run()
    at.button(key="cand_plan_open").click().run()
    assert [e.value for e in at.error] == [f"Could not open the plan: {md_text(NOT_ALLOWED)}"]
    at.radio(key="cand_source_how").set_value("Path on the server").run()
    at.text_input(key="cand_source_path").set_value("/usr/share/icons").run()
    at.button(key="cand_source_set").click().run()
    assert [e.value for e in at.error] == [f"Could not use this data: {md_text(NOT_ALLOWED)}"]
    assert at.session_state["plan"]["source"] == digits_npz


def test_a_data_root_lists_its_images(digits_checkpoint, digits_npz, tmp_path, monkeypatch):
    root = tmp_path / "pets"
    rng = np.random.default_rng(0)
    for cls in ("cats", "dogs"):
        (root / cls).mkdir(parents=True)
        for i in range(3):
            pixels = rng.integers(0, 255, (8, 8), dtype=np.uint8)
            Image.fromarray(pixels).save(root / cls / f"{i}.png")
    monkeypatch.setenv("RESQUE_DATA_ROOTS", str(root))
    at = _page("pages/candidates.py", plan=tiny_plan(digits_checkpoint, digits_npz, candidates=[]))
    at.radio(key="cand_source_how").set_value("Path on the server").run()
    picker = at.selectbox(key="cand_source_pick")
    assert str(root) in picker.options and str(root / "cats") in picker.options
    picker.set_value(str(root)).run()
    assert at.text_input(key="cand_source_path").value == str(root)
    at.button(key="cand_source_set").click().run()
    no_problems(at)
    assert at.session_state["plan"]["source"] == str(root)
    assert "6 images, 2 classes" in at.markdown[0].value


def test_dev_zero_and_a_fifo_are_refused_within_a_second(digits_npz, tmp_path, monkeypatch):
    fifo = tmp_path / "weights.pt"
    os.mkfifo(fifo)
    monkeypatch.setenv("RESQUE_DATA_ROOTS", f"{tmp_path}{os.pathsep}/dev")
    at = _page("pages/checkpoint.py", plan=tiny_plan("", digits_npz, candidates=[]))
    for path in ("/dev/zero", str(fifo)):
        seconds = _apply_checkpoint(at, path)
        assert not at.exception
        (error,) = at.error
        assert "not a regular file" in error.value
        assert seconds < 1.0, f"{path} took {seconds:.2f} s"
    monkeypatch.setenv("RESQUE_DATA_ROOTS", str(tmp_path))
    seconds = _apply_checkpoint(at, "/dev/zero")
    assert [e.value for e in at.error] == [f"Could not use this checkpoint: {md_text(NOT_ALLOWED)}"]
    assert seconds < 1.0


def test_user_text_renders_as_text(digits_checkpoint, digits_npz):
    at = _page("pages/candidates.py", plan=tiny_plan(digits_checkpoint, digits_npz))
    at.text_input(key="cand_plan_name").set_value(IMAGE).run()
    no_problems(at)
    assert at.session_state["plan"]["name"] == IMAGE
    # a bad value that the error message repeats
    at.text_input(key="cand_edit_target").set_value(IMAGE).run()
    at.button(key="cand_edit_save").click().run()
    assert not at.exception
    (error,) = at.error
    assert error.value.startswith("Could not save the changes: ")
    assert "\\!\\[x\\]" in error.value
    assert not [t for t in _texts(at) if IMAGE in t]
    # (the sidebar, drawn by app.py, is checked in the browser: tests/e2e/test_workspace_browser.py)


def test_a_reload_shows_the_ranking_again_without_scoring_anything(
    digits_checkpoint, digits_npz, monkeypatch
):
    import resque_core.scoring.scorer

    at = _page("pages/candidates.py", plan=tiny_plan(digits_checkpoint, digits_npz))
    at.text_input(key="cand_plan_name").set_value("kept").run()
    ws = at.query_params["ws"]
    at.switch_page("pages/ranking.py").run()
    finish_jobs(at)
    no_problems(at)
    first = table(at, "RESQUE")[["id", "RESQUE"]]
    assert len(first) == 3

    def scored_again(*_a, **_k):
        raise AssertionError("the reload ran the model again")

    # The forward passes of both kinds: a reload answers from the stored results.
    monkeypatch.setattr(resque_core.scoring.scorer, "class_sums", scored_again)
    monkeypatch.setattr(resque_core.scoring.scorer, "embeddings", scored_again)
    again = _page("pages/ranking.py", ws=ws)  # a reload, or the link in another tab
    finish_jobs(again)
    no_problems(again)
    assert again.session_state["plan"]["name"] == "kept"
    assert table(again, "RESQUE")[["id", "RESQUE"]].equals(first)
