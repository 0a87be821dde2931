"""Result store: reads only its own format (a foreign row is a logged miss, never unpickled),
refuses unusable cache dirs with one line, heals when its folder disappears, and survives kill -9
and concurrent writers together with the run store."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import pathlib
import pickle
import random
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time

import diskcache
import numpy as np
import pytest

from resque_core import cli
from resque_core.errors import ConfigError
from resque_core.store.cache import ResultStore, _encode, canonical_key
from resque_core.store.runs import RunStore

HINT = "point --cache-dir or RESQUE_CACHE_DIR at a writable folder"
REPO = pathlib.Path(__file__).resolve().parents[2]


def _key(n: int = 0) -> str:
    return canonical_key("features", {"checkpoint": "ab" * 32, "layer": "fc1", "seed": n})


class _Touch:
    """Unpickling this creates ``marker``: the payload a hostile pickle-mode row would carry."""

    def __init__(self, marker: pathlib.Path):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def _payload(marker: pathlib.Path, pad: int) -> object:
    # Padded past 32 kB, diskcache keeps the pickle in a value file instead of the database.
    return [_Touch(marker), "x" * pad]


def _foreign(directory: pathlib.Path) -> diskcache.Cache:
    """diskcache with its stock serializer: writes rows the way a hostile process could."""
    return diskcache.Cache(str(directory))


def _row(directory: pathlib.Path, key: str):
    with sqlite3.connect(directory / "cache.db") as con:
        return con.execute("SELECT mode, filename FROM Cache WHERE key = ?", (key,)).fetchone()


# ----------------------------------------------------------------------------- own format only
def test_round_trip_keeps_meta_and_arrays(tmp_path):
    store = ResultStore(tmp_path)
    big = np.arange(20_000, dtype=np.float64).reshape(200, 100)  # 160 kB: kept in a value file
    store.put(_key(), {"n": 3, "layer": "fc1"}, {"sums": big, "counts": np.array([1, 2])})
    meta, arrays = store.get(_key())
    assert meta == {"n": 3, "layer": "fc1"}
    np.testing.assert_array_equal(arrays["sums"], big)
    np.testing.assert_array_equal(arrays["counts"], [1, 2])
    assert store.get(_key(1)) is None
    assert len(store) == 1


@pytest.mark.parametrize("pad", [0, 40_000], ids=["in-database", "value-file"])
def test_pickle_mode_row_is_a_miss_and_never_unpickled(tmp_path, caplog, pad):
    cache_dir, marker = tmp_path / "cache", tmp_path / "marker"
    # The payload is live: unpickling it elsewhere creates its marker.
    proof = tmp_path / "proof"
    pickle.loads(pickle.dumps(_payload(proof, pad)))
    assert proof.exists()

    store = ResultStore(cache_dir)
    foreign = _foreign(cache_dir)
    foreign.set(_key(), _payload(marker, pad))
    assert _row(cache_dir, _key())[0] == diskcache.core.MODE_PICKLE
    with caplog.at_level(logging.WARNING, logger="resque_core.store.cache"):
        assert store.get(_key()) is None
    assert not marker.exists()
    assert _row(cache_dir, _key()) is None
    assert f"entry {_key()} is not this store's format (a pickle-mode row)" in caplog.text
    assert caplog.records[-1].name == "resque_core.store.cache"
    # Recomputed by the caller: the next put and get work under the same key.
    store.put(_key(), {"ok": True})
    assert store.get(_key()) == ({"ok": True}, {})


def _npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (b"\x00garbage bytes\xff" * 4, "undecodable npz/JSON: ValueError"),
        (_encode({"n": 1}, {"a": np.arange(10)})[:200], "undecodable npz/JSON: BadZipFile"),
        (_npz(a=np.arange(3)), "undecodable npz/JSON: KeyError"),
        (_npz(__meta__=np.array("[1, 2]")), "a JSON list header, not an object"),
        (_npz(__meta__=np.array("{not json")), "undecodable npz/JSON: JSONDecodeError"),
        (np.lib.format.magic(1, 0) + b"\x00" * 8, "undecodable npz/JSON: ValueError"),
        (_npy(np.arange(3)), "a bare array, not an npz archive"),
        ("a text value", "a str value, not npz bytes"),
        (12345, "a int value, not npz bytes"),
    ],
    ids=[
        "garbage",
        "truncated",
        "no-meta",
        "list-meta",
        "bad-json",
        "bad-npy",
        "bare-npy",
        "text",
        "int",
    ],
)
def test_a_row_that_is_not_our_format_is_a_logged_miss(tmp_path, caplog, value, why):
    store = ResultStore(tmp_path)
    _foreign(tmp_path).set(_key(), value)
    with caplog.at_level(logging.WARNING, logger="resque_core.store.cache"):
        assert store.get(_key()) is None
    assert f"is not this store's format ({why}" in caplog.text
    assert _row(tmp_path, _key()) is None


def test_a_row_naming_a_file_outside_the_cache_is_neither_read_nor_removed(tmp_path, caplog):
    cache_dir, victim = tmp_path / "cache", tmp_path / "victim.val"
    victim.write_bytes(_encode({"n": 1}, {"a": np.arange(10)}))
    store = ResultStore(cache_dir)
    store.put(_key(), {"n": 1}, {"a": np.zeros(10_000)})  # a value file row, then redirected
    with sqlite3.connect(cache_dir / "cache.db") as con:
        con.execute("UPDATE Cache SET filename = ? WHERE key = ?", ("../victim.val", _key()))
    with caplog.at_level(logging.WARNING, logger="resque_core.store.cache"):
        assert store.get(_key()) is None
    assert "a value file named '../victim.val', not one of diskcache's" in caplog.text
    assert victim.exists()
    assert _row(cache_dir, _key()) is None


def test_a_value_file_replaced_by_a_fifo_is_refused_unopened(tmp_path, caplog):
    store = ResultStore(tmp_path)
    store.put(_key(), {"n": 1}, {"a": np.zeros(10_000)})
    value_file = tmp_path / _row(tmp_path, _key())[1]
    value_file.unlink()
    os.mkfifo(value_file)  # opening it for reading would block forever
    with caplog.at_level(logging.WARNING, logger="resque_core.store.cache"):
        assert store.get(_key()) is None
    assert "that is not a regular file" in caplog.text


def test_the_store_never_writes_or_unpickles_pickles(tmp_path):
    store = ResultStore(tmp_path)
    with pytest.raises(TypeError, match="the result store keeps bytes or text, not dict"):
        store._cache.set(_key(), {"a": 1})
    # A pickled key (diskcache pickles non-text keys) is handed back as bytes when listing.
    marker = tmp_path / "marker"
    _foreign(tmp_path).set(_Touch(marker), b"x")
    keys = list(store._cache)
    assert len(keys) == 1 and isinstance(keys[0], bytes)
    assert not marker.exists()


def test_a_foreign_hash_memo_row_is_recomputed(tmp_path, caplog):
    store = ResultStore(tmp_path / "cache")
    data = tmp_path / "weights.bin"
    data.write_bytes(b"weights")
    digest = store.file_sha256(data)
    assert digest == hashlib.sha256(b"weights").hexdigest()
    (stamp,) = [k for k in store._cache if str(k).startswith("sha256:")]
    _foreign(tmp_path / "cache").set(stamp, _Touch(tmp_path / "marker"))
    with caplog.at_level(logging.WARNING, logger="resque_core.store.cache"):
        assert store.file_sha256(data) == digest
    assert "a pickle-mode row" in caplog.text
    assert not (tmp_path / "marker").exists()
    assert store._cache.get(stamp) == digest


def test_foreign_settings_cannot_replace_the_stores_methods(tmp_path, caplog):
    ResultStore(tmp_path).put(_key(), {"n": 1})
    with sqlite3.connect(tmp_path / "cache.db") as con:
        con.execute("UPDATE Settings SET value = 'bogus' WHERE key = 'eviction_policy'")
        con.executemany("INSERT INTO Settings VALUES (?, 3)", [("get",), ("disk_fetch",)])
    with caplog.at_level(logging.WARNING, logger="resque_core.store.cache"):
        store = ResultStore(tmp_path)
    assert "dropping unknown settings 'disk_fetch', 'get'" in caplog.text
    assert store.get(_key()) == ({"n": 1}, {})


def test_a_damaged_database_is_one_clear_line(tmp_path):
    (tmp_path / "cache.db").write_bytes(b"garbage" * 1000)
    msg = (
        f"cannot open the cache in {tmp_path} (file is not a database); delete "
        f"{tmp_path / 'cache.db'} to start it afresh, or {HINT}"
    )
    with pytest.raises(ConfigError, match=f"^{re.escape(msg)}$"):
        ResultStore(tmp_path)


@pytest.mark.slow  # the whole demo plan twice: 10 s on one free core, over a minute on busy ones
def test_rank_demo_recomputes_a_garbage_entry(tmp_path, capsys, caplog):
    cache_dir = tmp_path / "cache"
    argv = ["rank", "--demo", "--cache-dir", str(cache_dir)]
    assert cli.main(argv) == 0
    first = capsys.readouterr().out
    store = ResultStore(cache_dir)
    # A candidate's score (read by every rerun; the class sums behind it only on a miss).
    scores = [k for k in store._cache if not str(k).startswith("sha256:")]
    key = sorted(k for k in scores if "value" in store.get(k)[0])[0]
    _foreign(cache_dir).set(key, b"not an npz at all")
    with caplog.at_level(logging.WARNING, logger="resque_core.store.cache"):
        assert cli.main(argv) == 0
    second = capsys.readouterr().out
    assert f"entry {key} is not this store's format" in caplog.text
    assert store.get(key) is not None  # computed again and stored in our format

    def table(out: str) -> list[str]:
        return [line for line in out.splitlines() if re.match(r"^\s+\d+\s+(dist|task)\s", line)]

    assert table(second) == table(first) and len(table(first)) == 29  # every candidate


# ----------------------------------------------------------------------------- unusable dirs
def test_a_file_as_cache_dir_is_one_clear_line(tmp_path, capsys):
    f = tmp_path / "afile"
    f.write_text("x")
    with pytest.raises(ConfigError, match=re.escape(f"cache dir {f} is a file; {HINT}")):
        ResultStore(f)
    with pytest.raises(
        ConfigError, match=re.escape(f"cannot create cache dir {f / 'sub'} (Not a directory)")
    ):
        ResultStore(f / "sub")
    # The CLI prints it as one error line, exit 2, before loading any model.
    argv = ["score", "--arch", "small_cnn", "--checkpoint", str(tmp_path / "none.pt")]
    argv += ["--data", "builtin:digits", "--shift", "noise-1", "--cache-dir", str(f)]
    assert cli.main(argv) == 2
    assert capsys.readouterr().err == f"error: cache dir {f} is a file; {HINT}\n"


def test_dev_null_as_cache_dir_is_refused():
    msg = f"cache dir /dev/null is a device, FIFO or socket, not a folder; {HINT}"
    with pytest.raises(ConfigError, match=re.escape(msg)):
        ResultStore("/dev/null")


def test_a_read_only_folder_is_refused(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if os.access(ro, os.W_OK):
            pytest.skip("running as root: mode bits do not stop writes (see the sysfs case)")
        msg = f"cache dir {ro} is not writable (Permission denied); {HINT}"
        with pytest.raises(ConfigError, match=re.escape(msg)):
            ResultStore(ro)
    finally:
        ro.chmod(0o700)


def test_a_folder_that_refuses_even_root_is_refused():
    # sysfs refuses new files to every user, root included.
    folder = pathlib.Path("/sys/kernel")
    try:
        os.close(tempfile.mkstemp(dir=folder)[0])
        pytest.skip("/sys/kernel accepts files here")
    except FileNotFoundError:
        pytest.skip("no /sys/kernel on this system")
    except PermissionError:
        pass
    msg = f"cache dir {folder} is not writable (Permission denied); {HINT}"
    with pytest.raises(ConfigError, match=re.escape(msg)):
        ResultStore(folder)


# ----------------------------------------------------------------------------- healing
@pytest.mark.parametrize("how", ["deleted", "moved"])
def test_the_store_heals_when_its_folder_is_deleted_or_moved(tmp_path, caplog, how):
    cache_dir = tmp_path / "cache"
    store = ResultStore(cache_dir)
    store.put(_key(0), {"n": 0}, {"a": np.zeros(10_000)})
    if how == "deleted":
        shutil.rmtree(cache_dir)
    else:
        cache_dir.rename(tmp_path / "elsewhere")
    with caplog.at_level(logging.WARNING, logger="resque_core.store.cache"):
        store.put(_key(1), {"n": 1}, {"a": np.ones(10_000)})
    assert "its database was deleted, moved or replaced; reopening it" in caplog.text
    assert (cache_dir / "cache.db").is_file()
    assert store.get(_key(0)) is None  # gone with the folder: a miss, computed again
    meta, arrays = store.get(_key(1))
    assert meta == {"n": 1} and arrays["a"].sum() == 10_000
    # Written to the new folder's database, so another process's store sees it too.
    assert ResultStore(cache_dir).get(_key(1))[0] == {"n": 1}
    assert len(store) == 1 and store.size_bytes() > 0
    assert store.clear() == 1


def test_get_alone_heals_too(tmp_path):
    store = ResultStore(tmp_path / "cache")
    store.put(_key(), {"n": 0})
    shutil.rmtree(tmp_path / "cache")
    assert store.get(_key()) is None
    assert (tmp_path / "cache" / "cache.db").is_file()


# ----------------------------------------------------------------------------- crashes
_WRITER = """
import sys
import numpy as np
from resque_core.store.runs import RunStore
from resque_core.store.cache import ResultStore

cache, name, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
runs, store = RunStore(cache), ResultStore(cache)
for i in range(n):
    runs.save({"type": "ranking", "writer": name, "i": i, "pad": "x" * 50_000})
    # 80 kB of arrays: a value file plus its row, both or neither after a crash
    store.put(f"{name}-{i % 7}", {"writer": name, "i": i}, {"a": np.full(10_000, i)})
    if i == 0:
        print("ready", flush=True)
"""


def _writer(cache_dir, name: str, n: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(cache_dir), name, str(n)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )


def _check_readable(cache_dir) -> tuple[int, int]:
    """(runs, cache entries) after checking every one of them reads back whole."""
    runs = RunStore(cache_dir)
    for run_id in runs.list():
        doc = runs.load(run_id)
        assert doc["run_id"] == run_id and doc["pad"] == "x" * 50_000
    store = ResultStore(cache_dir)
    keys = list(store._cache)
    for key in keys:
        meta, arrays = store.get(key)
        np.testing.assert_array_equal(arrays["a"], np.full(10_000, meta["i"]))
    assert len(store) == len(keys)
    return len(runs.list()), len(keys)


@pytest.mark.slow  # 10 writer processes: 3 s on a free machine
def test_ten_kill_9_leave_no_half_written_run_and_a_readable_cache(tmp_path):
    rng = random.Random(0)
    cache_dir = tmp_path / "cache"
    for k in range(10):
        proc = _writer(cache_dir, f"w{k}", 10_000)
        assert proc.stdout.readline() == "ready\n", proc.stderr.read()
        time.sleep(rng.uniform(0.0, 0.15))
        proc.kill()  # SIGKILL: no cleanup, no flush
        proc.wait()
        n_runs, n_entries = _check_readable(cache_dir)
        assert n_runs >= k + 1 and n_entries >= k + 1


@pytest.mark.slow
def test_two_concurrent_writers_on_one_cache_both_succeed(tmp_path):
    cache_dir = tmp_path / "cache"
    procs = [_writer(cache_dir, name, 40) for name in ("a", "b")]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    assert _check_readable(cache_dir) == (80, 14)
