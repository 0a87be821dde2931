"""Settings checked where they are entered (one message, the page kept), a cancel during the
energy probes that says exactly what finished, and the cost chart of a cost-ordered ranking."""

import hashlib
import json
import os
import threading
import time
from pathlib import Path

from apptools import finish_jobs, no_problems, open_app, table, tiny_plan

import resque_core.retrain.probe
from resque_core.cost import calibration_key, fit_calibration, save_calibrations
from resque_core.retrain import RetrainConfig


def _checkpoint_page(plan):
    at = open_app(plan).run()
    return at.switch_page("pages/checkpoint.py").run()


def _apply(at, *, size="8", channels=1, mean="0.5", std="0.5"):
    at.selectbox(key="ckpt_arch").set_value("small_cnn")
    at.number_input(key="ckpt_num_classes").set_value(10)
    at.number_input(key="ckpt_in_channels").set_value(channels)
    at.text_input(key="ckpt_image_size").set_value(size)
    at.text_input(key="ckpt_mean").set_value(mean)
    at.text_input(key="ckpt_std").set_value(std)
    return at.button(key="ckpt_apply").click().run()


def test_a_huge_image_size_and_a_wrong_length_mean_give_one_message_and_keep_the_page(
    digits_checkpoint, digits_npz
):
    plan = tiny_plan(digits_checkpoint, digits_npz)
    at = _checkpoint_page(plan)
    before = json.dumps(at.session_state["plan"], sort_keys=True)

    at = _apply(at, size="100000")
    assert not at.exception
    (error,) = at.error
    assert error.value.startswith("Could not use this checkpoint: Image size 100000 x 100000 is")
    assert "--" not in error.value
    # The page is kept: its inputs still hold what was typed, the plan is unchanged.
    assert at.text_input(key="ckpt_image_size").value == "100000"
    assert at.title[0].value == "Checkpoint"
    assert json.dumps(at.session_state["plan"], sort_keys=True) == before

    at = _apply(at, channels=3, mean="0.5, 0.5")
    assert not at.exception
    (error,) = at.error
    assert error.value.replace("\\", "") == (  # shown as plain text: ':' is escaped
        "Could not use this checkpoint: Normalisation mean has 2 values for a model with 3 "
        "input channels: give one value, or 3 (one per channel)"
    )
    assert json.dumps(at.session_state["plan"], sort_keys=True) == before


def _cost_ranking(at, order_by="resque"):
    at.switch_page("pages/ranking.py").run()
    at.session_state["rank_meter"] = "replay"  # the meter selector is disabled until then
    at.toggle(key="rank_cost_on").set_value(True)
    at.run()
    if order_by != "resque":
        at.selectbox(key="rank_order_by").set_value(order_by).run()
    return at


def _wait(condition, timeout=120.0):
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.05)


def test_cancel_during_the_energy_probes_states_what_finished(
    digits_checkpoint, digits_npz, monkeypatch
):
    # Two workloads (the shifts' own head, the parity task's new head): the second probe
    # waits at a gate, so Cancel lands while it runs.
    gate = threading.Event()
    original = resque_core.retrain.probe.probe_batch_energy
    calls = []

    def gated(*args, **kw):
        calls.append(1)
        if len(calls) == 2:
            gate.wait(60)
        return original(*args, **kw)

    monkeypatch.setattr(resque_core.retrain.probe, "probe_batch_energy", gated)
    at = open_app(tiny_plan(digits_checkpoint, digits_npz)).run()
    finish_jobs(at)
    at = _cost_ranking(at)
    job = [j for k, j in at.session_state["rank_jobs"].items() if ":cost:" in k][-1]
    _wait(lambda: job.phase == "probing" and job.probes_done == 1 or not job.running)
    assert job.running and "energy probe 2 of 2" in job.status()
    job.cancel()  # what the Cancel button does
    gate.set()
    finish_jobs(at)
    assert not at.exception
    warning = next(w.value for w in at.warning if w.value.startswith("Cancelled"))
    assert warning.startswith(
        "Cancelled while predicting costs: all 3 of 3 candidates are scored; 1 of 2 energy "
        "probes finished, so no candidate has a predicted cost"
    )
    rows = table(at, "RESQUE")
    assert "Wh" not in rows.columns  # no row claims a cost
    captions = " ".join(c.value for c in at.caption)
    assert "no cost model applied" in captions


def _calibrate(checkpoint: str) -> None:
    """A stored linear calibration of both kinds for ``checkpoint`` and the page's procedure,
    so that the ranking shows predicted costs."""
    sha = hashlib.sha256(Path(checkpoint).read_bytes()).hexdigest()
    key = calibration_key(sha, RetrainConfig(seed=0).procedure())
    fits = {
        kind: fit_calibration([0.1, 0.2, 0.4], [1.0, 2.0, 3.5], kind=kind)
        for kind in ("dist", "task")
    }
    save_calibrations(os.environ["RESQUE_CACHE_DIR"], key, fits)


def test_a_cost_ordered_ranking_draws_the_cost_chart_with_whiskers(digits_checkpoint, digits_npz):
    _calibrate(digits_checkpoint)
    at = open_app(tiny_plan(digits_checkpoint, digits_npz)).run()
    finish_jobs(at)
    at = _cost_ranking(at, order_by="kwh")
    finish_jobs(at)
    no_problems(at)
    charts = {c.key: json.loads(c.proto.spec) for c in at.get("plotly_chart")}
    assert list(charts)[:2] == ["rank_chart_cost", "rank_chart_scatter"]
    bars = [t for t in charts["rank_chart_cost"]["data"] if t["type"] == "bar"]
    assert len(bars) == 6  # epochs, energy, CO2e for each kind
    for t in bars:
        assert len(t["error_x"]["array"]) == len(t["x"]) and all(v >= 0 for v in t["x"])
    assert "80% intervals" in charts["rank_chart_cost"]["layout"]["title"]["text"]
    captions = " ".join(c.value for c in at.caption)
    assert "This estimate cost" in captions and "2 energy probes, one per workload" in captions


def test_server_config_keeps_scoring_fast_and_local():
    """The progress panel reruns twice a second; Streamlit's full garbage collection after each
    run starved the scoring thread (400 s against 20 s for the demo ranking), so it is off. The
    server binds this machine only."""
    import tomllib

    path = Path(__file__).resolve().parents[2] / ".streamlit" / "config.toml"
    config = tomllib.loads(path.read_text())
    assert config["runner"]["postScriptGC"] is False
    assert config["server"]["address"] == "127.0.0.1"
