"""Run store: atomic JSON documents, valid ids only, most recently stored first; a damaged file
is refused by name on load and still listed (the kill -9 and concurrent-writer cases are in
test_store.py, where both stores are written together)."""

import os
import re
import shutil
import time

import pytest

from resque_core.errors import ConfigError
from resque_core.store.runs import RunStore, new_run_id


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


RUN = "20260101-120000-abcdef"


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b'{"type": "ranking", "candi', "not complete JSON: Unterminated string starting at"),
        (b"", "not complete JSON: Expecting value at line 1 column 1"),
        (b"not json at all", "not complete JSON: Expecting value at line 1 column 1"),
        (b'{"type": "\xff\xfe"}', "not UTF-8 text"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply to be a run"),
    ],
    ids=["truncated", "empty", "text", "not-utf8", "deep"],
)
def test_an_unreadable_run_file_is_refused_by_name_and_still_listed(tmp_path, content, why):
    store = RunStore(tmp_path)
    good = store.save({"type": "ranking", "n": 1})
    path = store.directory / f"{RUN}.json"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=re.escape(f"stored run {RUN!r} is unreadable ({why}")):
        store.load(RUN)
    assert sorted(store.list()) == sorted([good, RUN])
    assert {e[1] for e in store.entries()} == {path, store.directory / f"{good}.json"}
    assert store.load(good)["n"] == 1


def test_the_full_unreadable_message_names_the_file_and_the_fix(tmp_path):
    store = RunStore(tmp_path)
    store.directory.mkdir(parents=True)
    path = store.directory / f"{RUN}.json"
    path.write_text('{"type": "ranking"')
    msg = (
        f"stored run {RUN!r} is unreadable (not complete JSON: Expecting ',' delimiter at line 1 "
        f"column 19); delete {path} or import the run again"
    )
    with pytest.raises(ConfigError, match=f"^{re.escape(msg)}$"):
        store.load(RUN)


def test_a_fifo_named_like_a_run_is_refused_unopened(tmp_path):
    store = RunStore(tmp_path)
    store.directory.mkdir(parents=True)
    os.mkfifo(store.directory / f"{RUN}.json")  # reading it would block forever
    with pytest.raises(ConfigError, match=re.escape(f"{RUN!r} is unreadable (not a regular file)")):
        store.load(RUN)
    assert store.list() == [RUN]


def test_a_damaged_copy_of_the_same_content_is_written_again(tmp_path):
    store = RunStore(tmp_path)
    first = store.save({"type": "ranking", "n": 1}, content_key="k1")
    assert store.save({"type": "ranking", "n": 1}, content_key="k1") == first
    (store.directory / f"{first}.json").write_text("{")
    second = store.save({"type": "ranking", "n": 1}, content_key="k1")
    assert second != first and store.load(second)["n"] == 1
    # A damaged marker is not a stored run either.
    (store.directory / "by_content" / "k1").write_bytes(b"\xff\xfe")
    third = store.save({"type": "ranking", "n": 1}, content_key="k1")
    assert third not in (first, second) and store.load(third)["n"] == 1


def test_a_failed_save_leaves_neither_a_run_nor_a_temporary_file(tmp_path):
    store = RunStore(tmp_path)
    store.directory.mkdir(parents=True)
    (store.directory / f"{RUN}.json").mkdir()  # the rename onto it fails
    with pytest.raises(IsADirectoryError):
        store.save({"type": "ranking"}, run_id=RUN)
    assert sorted(p.name for p in store.directory.iterdir()) == [f"{RUN}.json"]


def test_the_store_keeps_working_when_its_folder_is_deleted(tmp_path):
    store = RunStore(tmp_path / "cache")
    store.save({"type": "ranking", "n": 1})
    shutil.rmtree(tmp_path / "cache")
    assert store.list() == []
    run_id = store.save({"type": "ranking", "n": 2})
    assert store.list() == [run_id]
