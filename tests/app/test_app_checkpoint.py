"""Checkpoint page: choosing a file, bad files and sizes shown as errors, summary, layer picker."""

from pathlib import Path

import numpy as np
import pytest
from apptools import no_problems, open_app, table, tiny_plan
from fixtures.hostile import aoti_archive, compiler, payload_library, tiny_export

from resque_core.store import NOT_ALLOWED
from ui.views import md_text, ui_words


def _checkpoint_page(plan):
    at = open_app(plan).run()
    return at.switch_page("pages/checkpoint.py").run()


def _fill(at, *, arch="small_cnn", classes=10, channels=1, size="8"):
    at.selectbox(key="ckpt_arch").set_value(arch)
    at.number_input(key="ckpt_num_classes").set_value(classes)
    at.number_input(key="ckpt_in_channels").set_value(channels)
    at.text_input(key="ckpt_image_size").set_value(size)
    return at


def test_summary_metrics_and_layers_of_the_current_checkpoint(digits_checkpoint, digits_npz):
    at = _checkpoint_page(tiny_plan(digits_checkpoint, digits_npz, candidates=[]))
    no_problems(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Format"] == "state_dict"
    assert int(metrics["Parameters"].replace(",", "")) > 90_000
    assert len(metrics["SHA-256"]) == 12
    # The seeded 20% held-out part of the 1,797 digits: 360 images, and a trained model.
    assert float(metrics["Source accuracy"].rstrip("%")) > 80
    layers = table(at, "output shape")
    assert list(layers["layer"][:2]) == ["features.conv1", "features.bn1"]
    assert layers.set_index("layer").loc["features.conv3", "default for"] == "shifts, tasks"
    # The layer picker starts on the default and writes a choice into the plan.
    picker = at.selectbox(key="ckpt_layer")
    assert picker.value == ""
    picker.set_value("features.conv2").run()
    no_problems(at)
    assert at.session_state["plan"]["layer"] == "features.conv2"


def test_upload_a_checkpoint_and_use_it(digits_checkpoint):
    at = _checkpoint_page(tiny_plan("", "", candidates=[]))
    assert at.info[0].value.startswith("Upload a checkpoint or give its path")
    at.file_uploader(key="ckpt_upload").upload("digits.pt", Path(digits_checkpoint).read_bytes())
    _fill(at).run()
    at.button(key="ckpt_apply").click().run()
    no_problems(at)
    model = at.session_state["plan"]["model"]
    saved = Path(model["checkpoint"])
    assert saved.name == "digits.pt" and saved.read_bytes() == Path(digits_checkpoint).read_bytes()
    assert (model["arch"], model["in_channels"], model["image_size"]) == ("small_cnn", 1, [8, 8])
    assert table(at, "output shape").shape[0] > 5


def test_corrupt_checkpoint_shows_an_error_and_keeps_the_plan(digits_checkpoint, digits_npz):
    plan = tiny_plan(digits_checkpoint, digits_npz, candidates=[])
    at = _checkpoint_page(plan)
    at.radio(key="ckpt_how").set_value("Upload").run()
    noise = np.random.default_rng(0).bytes(4096)
    at.file_uploader(key="ckpt_upload").upload("broken.pt", noise)
    _fill(at).run()
    at.button(key="ckpt_apply").click().run()
    assert not at.exception
    (error,) = at.error
    assert error.value.startswith("Could not use this checkpoint: ")
    assert "broken.pt" in error.value
    assert at.session_state["plan"]["model"]["checkpoint"] == digits_checkpoint
    # The page stays usable: the current checkpoint's summary is still drawn.
    assert {m.label for m in at.metric} >= {"Parameters", "Format"}


def test_missing_path_shows_an_error(digits_checkpoint, digits_npz, tmp_path):
    at = _checkpoint_page(tiny_plan(digits_checkpoint, digits_npz, candidates=[]))
    at.text_input(key="ckpt_path").set_value(str(tmp_path / "nope.pt"))
    _fill(at).run()
    at.button(key="ckpt_apply").click().run()
    assert not at.exception
    # A missing path gets the words of any path outside the data roots: nothing is revealed.
    assert at.error[0].value == f"Could not use this checkpoint: {md_text(NOT_ALLOWED)}"


def test_image_size_too_small_for_the_model_is_an_error(digits_checkpoint, digits_npz):
    at = _checkpoint_page(tiny_plan(digits_checkpoint, digits_npz, candidates=[]))
    _fill(at, size="1").run()
    at.button(key="ckpt_apply").click().run()
    assert not at.exception
    (error,) = at.error
    assert error.value.startswith("Could not use this checkpoint: the model cannot take 1x1 images")
    assert at.session_state["plan"]["model"]["image_size"] == [8, 8]


def test_bad_mean_is_an_error(digits_checkpoint, digits_npz):
    at = _checkpoint_page(tiny_plan(digits_checkpoint, digits_npz, candidates=[]))
    _fill(at).run()
    at.text_input(key="ckpt_mean").set_value("half").run()
    at.button(key="ckpt_apply").click().run()
    assert not at.exception
    assert at.error[0].value == (
        "Could not use this checkpoint: Normalisation mean must be one number or comma-separated "
        "numbers "
        "(e.g. 0.5 or 0.229,0.224,0.225), got 'half'"
    )


def test_zero_std_is_an_error_not_a_division_by_zero(digits_checkpoint, digits_npz):
    at = _checkpoint_page(tiny_plan(digits_checkpoint, digits_npz, candidates=[]))
    _fill(at).run()
    at.text_input(key="ckpt_std").set_value("0").run()
    at.button(key="ckpt_apply").click().run()
    assert not at.exception
    assert at.error[0].value.startswith("Could not use this checkpoint: Normalisation std ")
    assert "0" in at.error[0].value
    assert at.session_state["plan"]["model"].get("std") in (None, [0.5])


def test_trust_switch_warns_that_loading_runs_code(digits_checkpoint, digits_npz):
    at = _checkpoint_page(tiny_plan(digits_checkpoint, digits_npz, candidates=[]))
    assert not at.warning
    at.toggle(key="ckpt_trusted").set_value(True).run()
    assert at.warning[0].value == "Loading runs code from the file: only for files you trust."


@pytest.fixture
def aoti(tmp_path):
    """A torch.export archive with an AOTInductor payload, and the marker its library creates."""
    if compiler() is None:
        pytest.skip("no C compiler (cc) to build the payload")
    marker = tmp_path / "native-code-ran"
    clean = tiny_export(tmp_path / "tiny.pt2")
    return aoti_archive(clean, tmp_path / "evil.pt2", payload_library(tmp_path, marker)), marker


NATIVE = (
    "carries native code (tiny/data/aotinductor/model/evil.so); loading it would run that code, "
    "so it is refused even if trusted: re-export the model with torch.export.save (no "
    "AOTInductor packaging), or save model.state_dict() and pass --arch"
)


def test_aotinductor_archive_on_the_server_is_refused_and_runs_nothing_even_if_trusted(
    aoti, digits_checkpoint, digits_npz
):
    evil, marker = aoti
    at = _checkpoint_page(tiny_plan(digits_checkpoint, digits_npz, candidates=[]))
    at.text_input(key="ckpt_path").set_value(str(evil))
    at.toggle(key="ckpt_trusted").set_value(True)
    _fill(at).run()
    at.button(key="ckpt_apply").click().run()
    assert not at.exception
    assert [e.value for e in at.error] == [
        f"Could not use this checkpoint: {md_text(ui_words(f'checkpoint {evil} {NATIVE}'))}"
    ]
    assert at.session_state["plan"]["model"]["checkpoint"] == digits_checkpoint
    assert not marker.exists()


def test_uploaded_aotinductor_archive_is_refused_and_runs_nothing(aoti, digits_checkpoint):
    evil, marker = aoti
    at = _checkpoint_page(tiny_plan(digits_checkpoint, "", candidates=[]))
    at.radio(key="ckpt_how").set_value("Upload").run()
    # A harmless name: the file is recognised by its content.
    at.file_uploader(key="ckpt_upload").upload("weights.pt", evil.read_bytes())
    _fill(at).run()
    at.button(key="ckpt_apply").click().run()
    assert not at.exception
    (error,) = at.error
    assert error.value.startswith("Could not use this checkpoint: checkpoint ")
    assert error.value.endswith(md_text(ui_words(f"weights.pt {NATIVE}")))
    assert not marker.exists()
