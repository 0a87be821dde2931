"""Stored rankings: one run per distinct result; another order or cost setting updates it."""

from test_ranking import DEMO_CHECKPOINT

from resque_core.plans import plan_from_dict
from resque_core.ranking import Ranking, rank_plan
from resque_core.store.cache import ResultStore
from resque_core.store.runs import RunStore


def test_a_reordered_ranking_updates_its_stored_run(tmp_path):
    plan = plan_from_dict(
        {
            "version": 1,
            "name": "two shifts",
            "model": {"checkpoint": DEMO_CHECKPOINT, "arch": "small_cnn", "num_classes": 10},
            "source": "builtin:digits",
            "run": {"samples_per_class": 5, "device": "cpu"},
            "candidates": [
                {"id": "noise-5", "kind": "shift", "shift": "gaussian_noise:5"},
                {"id": "noise-1", "kind": "shift", "shift": "gaussian_noise:1"},
            ],
        }
    )
    store, runs = ResultStore(tmp_path), RunStore(tmp_path)
    first = rank_plan(plan, store=store, runs=runs, reuse_stored=True)
    again = rank_plan(plan, store=store, runs=runs, reuse_stored=True)  # from the cache
    assert again.run_id == first.run_id and runs.list() == [first.run_id]
    reordered = Ranking(plan, first.results, 0.1, ordered_by="epochs", cost={"note": "other"})
    assert reordered.identity_key() == first.identity_key()
    assert reordered.content_key() != first.content_key()
    run_id = runs.save(
        reordered.to_dict(),
        content_key=reordered.identity_key(),
        version_key=reordered.content_key(),
    )
    assert run_id == first.run_id and runs.list() == [first.run_id]
    assert runs.load(run_id)["ordered_by"] == "epochs"
    other = plan_from_dict({**plan.to_dict(), "candidates": plan.to_dict()["candidates"][:1]})
    assert rank_plan(other, store=store, runs=runs, reuse_stored=True).run_id != first.run_id
    assert len(runs.list()) == 2
