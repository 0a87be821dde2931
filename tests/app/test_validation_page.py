"""The validation page: suggested spread, a real (replay-metered) retraining job, results,
recalibration, and settings errors shown with st.error."""

from __future__ import annotations

from pathlib import Path

from apptools import TIMEOUT, finish_jobs, no_problems, tiny_plan
from streamlit.testing.v1 import AppTest

from ui.views import md_text

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "pages" / "validation.py"
CHECKPOINT = str(ROOT / "resque_core" / "demo" / "digits_small_cnn.pt")
CANDIDATES = [
    {"id": "noise-1", "kind": "shift", "shift": "gaussian_noise:1"},
    {"id": "blur-3", "kind": "shift", "shift": "gaussian_blur:3"},
    {"id": "blur-5", "kind": "shift", "shift": "gaussian_blur:5"},
    {"id": "parity", "kind": "task", "data": "builtin:digits-parity"},
]


def _page() -> AppTest:
    at = AppTest.from_file(str(PAGE), default_timeout=TIMEOUT)
    at.session_state["plan"] = tiny_plan(CHECKPOINT, "builtin:digits", candidates=CANDIDATES)
    at.session_state["plan_base_dir"] = str(ROOT)
    at.session_state["plan_is_demo"] = False
    at.run()
    return finish_jobs(at)


def test_suggests_a_spread_and_retrains_it():
    at = _page()
    no_problems(at)
    chosen = at.multiselect(key="val_candidates").value
    # three of four: both ends of the shifts' RESQUE range and the only task
    assert len(chosen) == 3 and chosen[-1] == "parity"
    assert "blur-3" not in chosen
    # before any validation: the calibrations the predictions will use; for the demo model,
    # the one it ships (measured on 3 shift and 2 task retrains)
    (cals,) = [df.value for df in at.dataframe if "source" in df.value.columns]
    assert list(cals["source"]) == [
        "3 measured retrains from 1 validation run(s)",
        "2 measured retrains from 1 validation run(s)",
    ]

    at.selectbox(key="val_meter").set_value("replay")
    at.selectbox(key="val_augment").set_value("none")
    at.number_input(key="val_max_epochs").set_value(1)
    at.button(key="val_start").click().run()
    (job,) = at.session_state["val_jobs"].values()
    assert job.wait(120), "the validation job did not finish in time"
    at.run()
    no_problems(at)

    results = at.dataframe[0].value
    assert list(results["id"]) == chosen
    assert (results["epochs"] <= 1).all()
    assert results["prediction basis"].eq("prior").all()
    assert [m.label for m in at.metric] == ["Retrained", "Epochs in total", "Energy", "CO2e"]
    assert at.metric[0].value == "3 / 3"
    assert any(
        "Energy: replay (fixed 30 W x wall time; not a measurement)" in c.value for c in at.caption
    )
    assert len(at.get("plotly_chart")) >= 1
    assert at.radio(key="val_measure").options == ["epochs", "energy (kWh)", "CO2e (kg)"]

    at.button(key="val_recalibrate").click().run()
    no_problems(at)
    assert at.success[0].value == "Calibrations refitted and stored."
    stored = at.session_state["val_recalibrated"][job.result["calibration_key"]]
    assert stored["dist"]["basis"] == "prior"  # 2 shift runs: too few to fit


def test_settings_errors_are_shown():
    at = _page()
    at.selectbox(key="val_meter").set_value("nvml").run()
    assert [e.value for e in at.error] == [
        "Check the settings: " + md_text("the nvml meter measures GPUs only: run on a CUDA device")
    ]
    assert not at.exception
