"""Run store: atomic JSON documents, valid ids only, most recently stored first."""

import time

import pytest

from resque_core.errors import ConfigError
from resque_core.runs import RunStore, new_run_id


def test_round_trip_and_order_of_storing(tmp_path):
    store = RunStore(tmp_path)
    assert store.list() == []
    # Same second, and the later run's random part sorts first: the list still follows storing.
    first = store.save({"type": "ranking", "n": 1}, run_id="20260101-120000-ffffff")
    time.sleep(0.02)
    second = store.save({"type": "ranking", "n": 2}, run_id="20260101-120000-000000")
    assert store.list() == [second, first]
    assert store.load(first) == {"type": "ranking", "n": 1, "run_id": first}
    assert not list(store.directory.glob("*.tmp"))


def test_ids_are_checked_before_any_file_is_touched(tmp_path):
    store = RunStore(tmp_path)
    with pytest.raises(ConfigError, match=r"invalid run id '\.\./x'"):
        store.load("../x")
    with pytest.raises(ConfigError, match="no stored run '20260101-120000-abcdef'"):
        store.load("20260101-120000-abcdef")
    assert len(new_run_id()) == len("20260101-120000-abcdef")
