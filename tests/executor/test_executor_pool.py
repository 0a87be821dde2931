"""Executor pools: the local one is the plain loop; the Ray one retries a killed worker once,
reports a second death as that item's failure without losing the others, and cancel stops the
running and queued items while keeping the finished ones."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

import pytest

from resque_core.errors import Cancelled, ConfigError, DataError
from resque_core.executor import EXECUTORS, WorkerStore, make_executor, write_records


def _setup(shared, store):
    return {"offset": shared, "store": store}


def test_local_pool_is_the_plain_loop_and_propagates_errors():
    ex = make_executor("local")
    assert ex.name == "local" and not ex.remote and EXECUTORS == ("local", "ray")
    seen = []
    with ex.pool(_setup, 10, store="the cache") as pool:
        out = pool.map(
            lambda s, x: (s["offset"] + x, s["store"]), [1, 2, 3], on_done=lambda o: seen.append(o)
        )
    assert [o.value for o in out] == [(11, "the cache"), (12, "the cache"), (13, "the cache")]
    assert [o.index for o in seen] == [0, 1, 2]

    def fails_on_two(_s, x):
        if x == 2:
            raise DataError("bad data")
        return x

    seen.clear()
    with ex.pool(_setup, 0) as pool, pytest.raises(DataError, match="bad data"):
        pool.map(fails_on_two, [1, 2, 3], on_done=seen.append)
    assert [o.value for o in seen] == [1]  # finished before the error, nothing after


def test_make_executor_refuses_unknown_names_and_stray_addresses():
    with pytest.raises(ConfigError, match="unknown executor 'dask'; allowed: local, ray"):
        make_executor("dask")
    with pytest.raises(ConfigError, match="--ray-address needs --executor ray"):
        make_executor("local", address="auto")


def test_worker_store_records_and_driver_writes_them():
    import numpy as np

    ws = WorkerStore(known=[("k0", {"a": 1}, {"x": np.zeros(2)})])
    assert ws.get("k0")[0] == {"a": 1} and ws.get("k1") is None
    ws.put("k1", {"b": 2})
    ws.put("k2", {"c": 3}, {"y": np.ones(3)})
    made = ws.take()
    assert [k for k, _m, _a in made] == ["k1", "k2"] and ws.take() == []
    written = {}

    class Store:
        def put(self, key, meta, arrays=None):
            written[key] = (meta, arrays)

    assert write_records(Store(), made) == 2 and write_records(None, made) == 0
    assert written["k1"] == ({"b": 2}, None) and written["k2"][1]["y"].sum() == 3


# ----------------------------------------------------------------------------- on Ray
@pytest.fixture
def by_value(ray_cluster):
    """Ray workers cannot import this test module: send its functions by value."""
    ray_cluster.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield
    ray_cluster.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def _slow_or_dying(tmp: str):
    """A unit that records its start; ``victim`` hangs on its first attempt (to be killed from
    outside), ``doomed`` kills its own worker on every attempt."""

    def work(_state, item):
        import os as _os
        import time as _time

        with open(_os.path.join(tmp, f"start-{item}-{_os.getpid()}"), "w"):
            pass
        if item == "victim" and not _os.path.exists(_os.path.join(tmp, "victim-pid")):
            with open(_os.path.join(tmp, "victim-pid.part"), "w") as f:
                f.write(str(_os.getpid()))
            _os.replace(_os.path.join(tmp, "victim-pid.part"), _os.path.join(tmp, "victim-pid"))
            _time.sleep(120)
        if item == "doomed":
            _os._exit(1)
        if item.startswith("slow"):
            _time.sleep(1.5)
        return item.upper()

    return work


@pytest.mark.ray
def test_killed_worker_is_retried_once_and_a_second_death_is_that_items_failure(by_value, tmp_path):
    ex = make_executor("ray")
    assert ex.remote and ex.resources() == (0, 2)

    def killer():
        pid_file = tmp_path / "victim-pid"
        for _ in range(600):
            if pid_file.exists():
                os.kill(int(pid_file.read_text()), signal.SIGKILL)  # mid-task
                return
            time.sleep(0.1)

    threading.Thread(target=killer, daemon=True).start()
    done = []
    with ex.pool(_setup, 0) as pool:
        out = pool.map(
            _slow_or_dying(str(tmp_path)), ["a", "victim", "doomed", "b"], on_done=done.append
        )
    by_item = dict(zip(["a", "victim", "doomed", "b"], out, strict=True))
    assert by_item["a"].value == "A" and by_item["b"].value == "B"
    assert by_item["victim"].ok and by_item["victim"].value == "VICTIM"
    assert by_item["victim"].attempts == 2
    doomed = by_item["doomed"]
    assert not doomed.ok and doomed.value is None and doomed.attempts == 2
    assert doomed.error.startswith("the worker died 2 times")
    assert sorted(o.index for o in done) == [0, 1, 2, 3]
    starts = [p.name for p in tmp_path.iterdir() if p.name.startswith("start-")]
    assert len([s for s in starts if s.startswith("start-victim-")]) == 2  # two workers
    assert len([s for s in starts if s.startswith("start-doomed-")]) == 2


@pytest.mark.ray
def test_cancel_stops_running_and_queued_items_and_keeps_finished_ones(by_value, tmp_path):
    ex = make_executor("ray")
    items = ["fast", *(f"slow{i}" for i in range(5))]
    done = []
    with ex.pool(_setup, 0) as pool, pytest.raises(Cancelled, match="finished and kept"):
        pool.map(
            _slow_or_dying(str(tmp_path)),
            items,
            on_done=done.append,
            cancel=lambda: len(done) >= 1,
        )
    assert [o.value for o in done] == ["FAST"]
    started = {p.name.split("-")[1] for p in tmp_path.iterdir() if p.name.startswith("start-")}
    # two workers: "fast", the slow one beside it (if it got far enough to record its start
    # before it was stopped) and at most one more; the rest never ran
    assert "fast" in started and len(started) <= 3
    time.sleep(2.0)  # a unit left running would finish and record nothing new, but be visible
    later = {p.name.split("-")[1] for p in tmp_path.iterdir() if p.name.startswith("start-")}
    assert later == started
