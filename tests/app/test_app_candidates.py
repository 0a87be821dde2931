"""Candidates page: source, shifts and tasks, preview, edit and remove, plan files, bad data."""

import io
import json

import numpy as np
from apptools import finish_jobs, no_problems, open_app, table, tiny_plan

from ui.views import md_text


def _candidates_page(plan):
    at = open_app(plan).run()
    return at.switch_page("pages/candidates.py").run()


def _ids(at) -> list[str]:
    return [c["id"] for c in at.session_state["plan"]["candidates"]]


def test_source_summary_and_shift_preview(digits_checkpoint, digits_npz):
    at = _candidates_page(tiny_plan(digits_checkpoint, digits_npz, candidates=[]))
    no_problems(at)
    assert "1,797 images, 10 classes, 1×8×8 each" in at.markdown[0].value
    at.selectbox(key="cand_shift").set_value("gaussian_blur")
    at.multiselect(key="cand_severities").set_value([2, 4]).run()
    no_problems(at)
    (preview,) = at.get("plotly_chart")
    spec = json.loads(preview.proto.spec)
    titles = [a["text"] for a in spec["layout"]["annotations"]]
    assert titles[:3] == ["original", "gaussian_blur 2", "gaussian_blur 4"]
    assert len(spec["data"]) == 4 * 3  # four classes, original + two severities


def test_add_shifts_and_a_builtin_task_then_edit_and_remove(digits_checkpoint, digits_npz):
    at = _candidates_page(tiny_plan(digits_checkpoint, digits_npz, candidates=[]))
    at.selectbox(key="cand_shift").set_value("contrast")
    at.multiselect(key="cand_severities").set_value([1, 3]).run()
    at.button(key="cand_add_shift").click().run()
    no_problems(at)
    assert _ids(at) == ["contrast-1", "contrast-3"]
    # Adding the same shifts again gives fresh ids, never a duplicate.
    at.button(key="cand_add_shift").click().run()
    assert _ids(at) == ["contrast-1", "contrast-3", "contrast-1-2", "contrast-3-2"]

    at.radio(key="cand_task_how").set_value("Built-in").run()
    at.selectbox(key="cand_task_builtin").set_value("shapes")
    at.text_input(key="cand_task_label").set_value("Shapes").run()
    at.button(key="cand_add_task").click().run()
    no_problems(at)
    assert at.session_state["plan"]["candidates"][-1] == {
        "id": "Shapes",
        "kind": "task",
        "data": "builtin:shapes",
        "label": "Shapes",
    }
    assert list(table(at, "what")["id"]) == _ids(at)

    at.selectbox(key="cand_edit_id").set_value("contrast-3").run()
    assert at.text_input(key="cand_edit_target").value == "contrast:3"
    at.text_input(key="cand_edit_target").set_value("contrast:5")
    at.text_input(key="cand_edit_label").set_value("Faded").run()
    at.button(key="cand_edit_save").click().run()
    no_problems(at)
    edited = at.session_state["plan"]["candidates"][1]
    assert (edited["shift"], edited["label"]) == ("contrast:5", "Faded")

    at.selectbox(key="cand_edit_id").set_value("contrast-1-2").run()
    at.button(key="cand_remove").click().run()
    assert _ids(at) == ["contrast-1", "contrast-3", "contrast-3-2", "Shapes"]
    at.button(key="cand_remove_all").click().run()
    assert _ids(at) == []
    assert at.info[0].value == "No candidates yet: add shifts or tasks above."


def test_an_invalid_edit_is_refused_with_the_reason(digits_checkpoint, digits_npz):
    at = _candidates_page(tiny_plan(digits_checkpoint, digits_npz))
    at.selectbox(key="cand_edit_id").set_value("noise-5").run()
    at.text_input(key="cand_edit_target").set_value("gaussian_noise:9").run()
    at.button(key="cand_edit_save").click().run()
    assert not at.exception
    assert at.error[0].value == "Could not save the changes: " + md_text(
        "severity 9 is out of range for shift 'gaussian_noise': use 1-5"
    )
    assert at.session_state["plan"]["candidates"][1]["shift"] == "gaussian_noise:5"


def test_upload_a_task_npz(digits_checkpoint, digits_npz, task_npz):
    at = _candidates_page(tiny_plan(digits_checkpoint, digits_npz, candidates=[]))
    at.radio(key="cand_task_how").set_value("Upload").run()
    at.file_uploader(key="cand_task_upload").upload("abc_letters.npz", task_npz).run()
    at.button(key="cand_add_task").click().run()
    no_problems(at)
    (task,) = at.session_state["plan"]["candidates"]
    assert (task["id"], task["kind"], task["label"]) == ("abc_letters", "task", "abc_letters")
    assert task["data"].endswith("abc_letters.npz")


def test_zip_with_path_traversal_is_refused(digits_checkpoint, digits_npz, traversal_zip):
    at = _candidates_page(tiny_plan(digits_checkpoint, digits_npz, candidates=[]))
    at.radio(key="cand_task_how").set_value("Upload").run()
    at.file_uploader(key="cand_task_upload").upload("evil.zip", traversal_zip).run()
    at.button(key="cand_add_task").click().run()
    assert not at.exception
    (error,) = at.error
    assert error.value.startswith("Could not add this task: ")
    assert "../../evil/b.png" in error.value
    assert _ids(at) == []


def test_missing_source_path_is_an_error(digits_checkpoint, digits_npz, tmp_path):
    at = _candidates_page(tiny_plan(digits_checkpoint, digits_npz, candidates=[]))
    at.radio(key="cand_source_how").set_value("Path on the server").run()
    at.text_input(key="cand_source_path").set_value(str(tmp_path / "missing")).run()
    at.button(key="cand_source_set").click().run()
    assert not at.exception
    assert at.error[0].value.startswith("Could not use this data: ")
    assert at.session_state["plan"]["source"] == digits_npz


def test_download_and_load_plan_files(digits_checkpoint, digits_npz):
    plan = tiny_plan(digits_checkpoint, digits_npz)
    at = _candidates_page(plan)
    # AppTest shows the button, not its payload: the payload is plan.to_dict() as JSON.
    assert at.download_button(key="cand_download").label == "Download plan"

    other = {**plan, "name": "other", "candidates": plan["candidates"][:1]}
    at.file_uploader(key="cand_plan_upload").upload("other.json", json.dumps(other).encode())
    at.run()
    at.button(key="cand_plan_load").click().run()
    no_problems(at)
    assert at.session_state["plan"]["name"] == "other"
    assert _ids(at) == ["noise-1"]
    assert at.text_input(key="cand_plan_name").value == "other"

    at.file_uploader(key="cand_plan_upload").set_value(("bad.json", b"{not json", "text/json"))
    at.run()
    at.button(key="cand_plan_load").click().run()
    assert not at.exception
    assert "is not valid JSON" in at.error[0].value
    assert at.session_state["plan"]["name"] == "other"


def test_rename_the_comparison(digits_checkpoint, digits_npz):
    at = _candidates_page(tiny_plan(digits_checkpoint, digits_npz))
    at.text_input(key="cand_plan_name").set_value("Scanner upgrade").run()
    no_problems(at)
    assert at.session_state["plan"]["name"] == "Scanner upgrade"


def test_a_plan_that_says_trusted_loads_untrusted_and_its_pickle_runs_no_code(
    digits_checkpoint, digits_npz, tmp_path, monkeypatch
):
    from fixtures.pickled import marker_checkpoint

    from ui.views import md_text

    monkeypatch.syspath_prepend(str(tmp_path))
    marker = tmp_path / "pickle-code-ran"
    checkpoint, cls = marker_checkpoint(tmp_path, marker)
    # The session trusts its current checkpoint (switch on, applied) before the plan is loaded.
    at = open_app(tiny_plan(digits_checkpoint, digits_npz)).run()
    at.switch_page("pages/checkpoint.py").run()
    at.toggle(key="ckpt_trusted").set_value(True).run()
    at.button(key="ckpt_apply").click().run()
    no_problems(at)
    assert at.session_state["plan_trusted"] is True

    hostile = tiny_plan(str(checkpoint), digits_npz, candidates=[])
    hostile["model"] = {**hostile["model"], "arch": None, "trusted": True}
    hostile["candidates"] = [{"id": "noise-1", "kind": "shift", "shift": "gaussian_noise:1"}]
    at.switch_page("pages/candidates.py").run()
    at.file_uploader(key="cand_plan_upload").upload("hostile.json", json.dumps(hostile).encode())
    at.run()
    at.button(key="cand_plan_load").click().run()
    no_problems(at)
    assert [w.value for w in at.warning] == [
        "Plan field 'model.trusted' is ignored: a plan cannot grant trust to its checkpoint; "
        "give it at run time with --trust-checkpoint (CLI) or the 'Trust this file' switch on "
        "the Checkpoint page (app)."
    ]
    assert at.session_state["plan"]["name"] == "tiny"
    assert at.session_state["plan"]["model"]["checkpoint"] == str(checkpoint)
    assert "trusted" not in at.session_state["plan"]["model"]
    assert at.session_state["plan_trusted"] is False

    at.switch_page("pages/ranking.py").run()
    finish_jobs(at)
    refused = (
        f"checkpoint {checkpoint} contains pickled Python objects (e.g. {cls}); loading it could "
        "run code, so it was refused; if you trust its origin, retry with --trust-checkpoint "
        "(CLI) or the 'Trust this file' switch (app); or save model.state_dict() and pass --arch"
    )
    assert [e.value for e in at.error] == [f"The ranking stopped: {md_text(refused)}"]
    assert not marker.exists()

    # The switch shows off for the opened plan; only turning it on (and applying) loads it.
    at.switch_page("pages/checkpoint.py").run()
    assert at.toggle(key="ckpt_trusted").value is False
    assert not marker.exists()
    at.toggle(key="ckpt_trusted").set_value(True).run()
    at.button(key="ckpt_apply").click().run()
    no_problems(at)
    assert marker.exists()


def test_adding_real_shifted_data_states_class_and_input_differences(digits_checkpoint, digits_npz):
    # Colour 16x16 images of digits 0 and 1 plus a class the source lacks, for an 8x8 grey model.
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    np.savez(
        buf,
        x=rng.integers(0, 255, (30, 16, 16, 3), dtype=np.uint8),
        y=np.arange(30) % 3,
        classes=np.array(["0", "1", "smudge"]),
    )
    at = open_app(tiny_plan(digits_checkpoint, digits_npz)).switch_page("pages/candidates.py")
    at.run()
    at.radio(key="cand_shifted_how").set_value("Upload").run()
    at.file_uploader(key="cand_shifted_upload").upload("camera.npz", buf.getvalue()).run()
    at.button(key="cand_add_shifted").click().run()
    no_problems(at)
    assert at.session_state["plan"]["candidates"][-1]["kind"] == "shifted_data"
    (note,) = [i.value for i in at.info if i.value.startswith("Added **camera**")]
    assert md_text("are not source classes and are left out: smudge") in note
    assert md_text("8 source class(es) have no images in the shifted data") in note
    assert md_text("colour images: turned grey") in note
    assert md_text("16×16 images are downscaled to the model's 8×8") in note
