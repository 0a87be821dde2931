"""Settings page: device note without a GPU, sampling saved into the plan, cache size and clear."""

import pytest
from apptools import finish_jobs, no_problems, open_app, tiny_plan

from ui import hardware


def _settings_page(plan):
    at = open_app(plan).run()
    return at.switch_page("pages/settings.py").run()


def test_without_nvidia_driver_the_page_says_cpu(digits_checkpoint, digits_npz, monkeypatch):
    monkeypatch.setattr(hardware, "gpus", lambda: None)
    at = _settings_page(tiny_plan(digits_checkpoint, digits_npz))
    no_problems(at)
    assert at.info[0].value == "No NVIDIA GPU/driver found: running on CPU."
    assert at.selectbox(key="set_device").options == ["auto", "cpu", "cuda"]


def test_gpus_are_listed_with_memory_and_power(digits_checkpoint, digits_npz, monkeypatch):
    gpu = hardware.GpuInfo(0, "Test GPU", 80 * 2**30, 2**30, 71.5, 700.0)
    monkeypatch.setattr(hardware, "gpus", lambda: [gpu])
    at = _settings_page(tiny_plan(digits_checkpoint, digits_npz))
    no_problems(at)
    assert at.selectbox(key="set_device").options == ["auto", "cpu", "cuda", "cuda:0"]
    (row,) = at.dataframe[0].value.to_dict("records")
    assert row["GPU"] == "0: Test GPU" and row["power now (W)"] == 71.5
    assert row["memory total (GiB)"] == 80.0


def test_gpus_returns_none_or_a_list_on_this_machine():
    found = hardware.gpus()
    assert found is None or all(g.memory_total_bytes > 0 for g in found)


def test_sampling_settings_are_saved_into_the_plan(digits_checkpoint, digits_npz):
    at = _settings_page(tiny_plan(digits_checkpoint, digits_npz))
    at.number_input(key="set_samples_per_class").set_value(7)
    at.number_input(key="set_batch_size").set_value(32)
    at.number_input(key="set_seed").set_value(3)
    at.selectbox(key="set_device").set_value("cpu").run()
    at.button(key="set_save").click().run()
    no_problems(at)
    run = at.session_state["plan"]["run"]
    assert (run["samples_per_class"], run["batch_size"], run["seed"], run["device"]) == (
        7,
        32,
        3,
        "cpu",
    )
    assert run["flatten"] is False  # the flattened variants are opt-in
    at.toggle(key="set_all_samples").set_value(True).run()
    at.toggle(key="set_flatten").set_value(True).run()
    at.button(key="set_save").click().run()
    assert at.session_state["plan"]["run"]["samples_per_class"] is None
    assert at.session_state["plan"]["run"]["flatten"] is True


def test_cache_size_and_clear(digits_checkpoint, digits_npz, tmp_path):
    at = finish_jobs(open_app(tiny_plan(digits_checkpoint, digits_npz)).run())
    at.switch_page("pages/settings.py").run()
    no_problems(at)
    metrics = {m.label: m.value for m in at.metric}
    assert int(metrics["Entries"].replace(",", "")) > 0
    assert metrics["Stored runs"] == "1"
    assert any(str(tmp_path / "cache") in c.value for c in at.caption)
    at.button(key="set_clear_cache").click().run()
    no_problems(at)
    assert {m.label: m.value for m in at.metric}["Entries"] == "0"
    assert at.success[0].value.startswith("Removed ")


@pytest.mark.parametrize("page", ["start", "checkpoint", "candidates", "ranking", "settings"])
def test_every_page_runs_on_the_demo_plan(page):
    at = open_app().run()
    at.switch_page(f"pages/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    for job in at.session_state["rank_jobs"].values() if "rank_jobs" in at.session_state else []:
        job.cancel()
        job.finished.wait(60)
