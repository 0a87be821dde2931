"""Start page: opens on the demo, ranks with no clicks, instant from the cache, new comparison."""

import json

from apptools import finish_jobs, no_problems, open_app, tiny_plan

from resque_core.plans import DEMO_PLAN, load_plan
from ui.views import md_text


def _chart_bars(at) -> list[str]:
    (chart,) = at.get("plotly_chart")
    assert chart.key == "start_chart"
    spec = json.loads(chart.proto.spec)
    return [label for trace in spec["data"] for label in trace["y"]]


def test_opens_on_the_demo_and_starts_ranking_it_without_a_click():
    at = open_app().run()
    assert not at.exception
    assert at.subheader[0].value == md_text(load_plan(DEMO_PLAN).name)  # shown as text
    (job,) = at.session_state["rank_jobs"].values()
    try:
        if job.running:  # first start: progress with a Cancel button while it computes
            assert at.get("progress")
            assert at.button(key="start_cancel").label == "Cancel"
    finally:
        job.cancel()
        assert job.finished.wait(60)


def test_draws_the_ranking_chart_and_then_serves_it_from_the_cache(digits_checkpoint, digits_npz):
    plan = tiny_plan(digits_checkpoint, digits_npz)
    at = finish_jobs(open_app(plan).run())
    no_problems(at)
    bars = _chart_bars(at)
    # Stronger noise moves the representation further: rank 2 among the shifts.
    assert bars == ["1. gaussian_noise:1", "2. gaussian_noise:5", "1. builtin:digits-parity"]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Candidates ranked"] == "3 / 3"
    # The closest of each kind, named in full (a metric would cut a long name off).
    names = [m.value for m in at.markdown]
    assert f"**{md_text('gaussian_noise:1')}**" in names
    assert f"**{md_text('builtin:digits-parity')}**" in names

    # A new browser session on the same plan: ready in its first run, no progress bar.
    again = open_app(plan).run()
    no_problems(again)
    assert not again.get("progress")
    assert sorted(_chart_bars(again)) == sorted(bars)
    assert {m.label: m.value for m in again.metric}["Computed in"] == "from cache"


def test_a_plan_that_is_not_ready_says_what_is_missing(digits_checkpoint):
    plan = tiny_plan(digits_checkpoint, "", candidates=[])
    at = open_app(plan).run()
    no_problems(at)
    assert at.info[0].value == "Set the source data (what the model was trained on)."
    assert not at.get("plotly_chart")


def test_new_comparison_button_opens_the_checkpoint_page_on_an_empty_plan(
    digits_checkpoint, digits_npz
):
    at = open_app(tiny_plan(digits_checkpoint, digits_npz)).run()
    at.button(key="start_new").click().run()
    no_problems(at)
    assert at.title[0].value == "Checkpoint"
    assert at.session_state["plan"]["candidates"] == []
    assert at.session_state["plan"]["model"]["checkpoint"] == ""
    # The run settings of the previous comparison are kept.
    assert at.session_state["plan"]["run"]["samples_per_class"] == 12
