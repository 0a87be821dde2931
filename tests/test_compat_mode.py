"""The demo ranks in both modes: the default's values stay the pinned ones, the reference mode
gives the reference code's (noise 8-32x larger), the plan and run document carry the mode, and
the report states it."""

from dataclasses import replace

import pytest
from test_demo_values import PINNED, moved_from_pinned

from resque_core.plans import DEMO_PLAN, load_plan, plan_from_dict
from resque_core.ranking import rank_plan
from resque_core.report import render
from resque_core.store import documents
from resque_core.store.cache import ResultStore

IDS = ("noise-1", "noise-5", "impulse-4", "blur-3", "letters")


def _plan(compat: str):
    plan = load_plan(DEMO_PLAN)
    keep = tuple(c for c in plan.candidates if c.id in IDS)
    return replace(plan, candidates=keep, run=replace(plan.run, device="cpu", compat=compat))


@pytest.mark.slow  # five candidates in two modes: about 40 s on one core
def test_demo_ranks_in_both_modes_and_the_report_states_the_mode(tmp_path):
    store = ResultStore(tmp_path / "cache")
    values, docs = {}, {}
    for mode in ("project", "reference"):
        ranking = rank_plan(_plan(mode), store=store)
        assert all(r.ok for r in ranking.results), [r.error for r in ranking.results]
        values[mode] = {r.candidate.id: r.score.value for r in ranking.results}
        docs[mode] = ranking.to_dict()
    assert set(values["project"]) == set(IDS)
    assert moved_from_pinned(values["project"]) == {}  # the default: the pinned values
    ref = values["reference"]
    for i in ("noise-1", "noise-5"):  # the uint8 wrap: 8-32x the clamped noise's angle
        assert 5 < ref[i] / PINNED[i] < 40
    assert ref["impulse-4"] != values["project"]["impulse-4"]
    assert ref["blur-3"] != values["project"]["blur-3"]
    assert ref["letters"] == values["project"]["letters"]  # a conv layer pools alike; 1,500 < 5,000
    assert "compat" not in docs["project"]["plan"]["run"]
    assert docs["reference"]["plan"]["run"]["compat"] == "reference"
    for mode, doc in docs.items():
        assert documents.compat_mode(documents.check_run(doc)) == mode
        text = render(doc, "md").decode()
        assert "pipeline (compat mode)" in text
        assert f"Pipeline: {mode}" in text


def test_plans_read_and_write_the_mode():
    doc = load_plan(DEMO_PLAN).to_dict()
    assert "compat" not in doc["run"]  # an old plan loads and writes back unchanged
    assert plan_from_dict(doc).to_dict() == doc
    doc["run"] = {**doc["run"], "compat": "reference", "max_task_samples": None}
    plan = plan_from_dict(doc)
    assert plan.run.compat == "reference" and plan.run.task_sample_cap is None
    assert plan_from_dict(plan.to_dict()) == plan
    with pytest.raises(Exception, match="plan field 'run.compat' is \"paper\"; allowed: project"):
        plan_from_dict({**doc, "run": {"compat": "paper"}})


def test_cache_keys_gain_the_mode_only_outside_the_default():
    from resque_core.scoring.config import RunConfig

    assert RunConfig().key_parts() == {}
    assert RunConfig(compat="reference").key_parts() == {"compat": "reference"}
    assert RunConfig(max_task_samples=None).task_sample_cap is None
    assert RunConfig(compat="reference", max_task_samples=100).task_sample_cap is None
    assert RunConfig().task_sample_cap == 5000


def test_score_command_takes_the_mode_and_a_raw_parameter(capsys):
    import json

    from resque_core.cli import main
    from resque_core.plans import DEMO_DIR

    base = [
        "score",
        "--checkpoint",
        str(DEMO_DIR / "digits_small_cnn.pt"),
        "--arch",
        "small_cnn",
        "--in-channels",
        "1",
        "--data",
        "builtin:digits",
        "--shift",
        "gaussian_noise@0.04",
        "--samples-per-class",
        "40",
        "--device",
        "cpu",
        "--no-cache",
        "--json",
    ]
    values = {}
    for mode in ("project", "reference"):
        assert main([*base, "--compat", mode]) == 0
        values[mode] = json.loads(capsys.readouterr().out)["value"]
    assert values["reference"] > 5 * values["project"]
    with pytest.raises(SystemExit) as bad:
        main([*base, "--compat", "paper"])
    assert bad.value.code == 2
    with pytest.raises(SystemExit) as bad:
        main([*base, "--max-task-samples", "lots"])
    assert bad.value.code == 2
    assert "expected a whole number or 'all'" in capsys.readouterr().err
