"""Workspaces (plan and uploads kept on the server), data roots, and runs updated in place."""

from __future__ import annotations

import json
import os
import time

import pytest

from resque_core.errors import ConfigError
from resque_core.store.roots import (
    NOT_ALLOWED,
    confine,
    confine_spec,
    data_entries,
    server_settings,
)
from resque_core.store.runs import RunStore
from resque_core.store.workspaces import WorkspaceStore, without_upload_folders


def test_a_workspace_keeps_its_plan_and_uploads_until_deleted(tmp_path):
    store = WorkspaceStore(tmp_path)
    ws = store.create()
    assert len(ws) == 22 and store.exists(ws)
    store.save(ws, plan={"name": "mine", "candidates": [1, 2]}, base="/x")
    path = store.add_upload(ws, "my model (v2).pt", b"weights")
    again = store.add_upload(ws, "copy.pt", b"weights")  # same content: stored once
    assert again == path and path.read_bytes() == b"weights"
    assert [u.name for u in store.uploads(ws)] == ["my model (v2).pt"]
    assert store.display(f"checkpoint not found: {path}") == f"checkpoint not found: {path.name}"
    assert store.display(f"in {path}", ws) == "in my model (v2).pt"
    assert store.load(ws)["plan"]["name"] == "mine"
    listed = store.list()
    assert listed[0]["id"] == ws and listed[0]["candidates"] == 2 and listed[0]["uploads"] == 1
    assert store.delete(ws)
    assert not path.exists() and not store.exists(ws) and store.list() == []
    with pytest.raises(ConfigError, match="no such workspace"):
        store.load(ws)
    with pytest.raises(ConfigError, match="no such workspace"):
        store.load("../../etc")


def test_upload_caps_per_file_and_per_server(tmp_path):
    store = WorkspaceStore(tmp_path, max_upload_bytes=10, max_total_bytes=15)
    ws = store.create()
    with pytest.raises(ConfigError, match="per upload"):
        store.add_upload(ws, "big.npz", b"x" * 11)
    store.add_upload(ws, "a.npz", b"a" * 10)
    other = store.create()
    with pytest.raises(ConfigError, match="server's uploads"):
        store.add_upload(other, "b.npz", b"b" * 6)
    assert store.upload_bytes() == 10


def test_outside_and_missing_paths_get_the_same_words(tmp_path):
    root = tmp_path / "root"
    (root / "cats").mkdir(parents=True)
    (root / "model.pt").write_bytes(b"x")
    outside = tmp_path / "secret.txt"
    outside.write_text("s")
    (root / "link").symlink_to(outside)
    messages = set()
    for path in (outside, tmp_path / "missing", root / "missing", root / "link", "/etc/shadow"):
        with pytest.raises(ConfigError) as e:
            confine(path, [root])
        messages.add(str(e.value))
    assert messages == {NOT_ALLOWED}
    assert confine(root / "model.pt", [root]) == (root / "model.pt").resolve()
    assert confine_spec("builtin:digits", []) == "builtin:digits"
    with pytest.raises(ConfigError, match="not an allowed location"):
        confine_spec(f"torchvision:CIFAR10:{tmp_path}:train", [root])
    assert str(root / "cats") in data_entries([root])
    assert data_entries([root], kind="model") == [str(root / "model.pt")]


def test_a_fifo_and_dev_zero_are_refused_at_once(tmp_path):
    fifo = tmp_path / "data.npz"
    os.mkfifo(fifo)
    start = time.monotonic()
    with pytest.raises(ConfigError, match="not a regular file"):
        confine(fifo, [tmp_path])
    with pytest.raises(ConfigError, match="not an allowed location"):
        confine("/dev/zero", [tmp_path])
    with pytest.raises(ConfigError, match="not a regular file"):
        confine("/dev/zero", ["/dev"])
    assert time.monotonic() - start < 1.0


def test_server_settings_from_env_are_fixed(tmp_path, monkeypatch):
    monkeypatch.delenv("RESQUE_DATA_ROOTS", raising=False)
    default = server_settings(tmp_path)
    assert default.roots == (tmp_path / "data",) and not default.fixed
    monkeypatch.setenv("RESQUE_DATA_ROOTS", f"{tmp_path}/a{os.pathsep}{tmp_path}/b")
    fixed = server_settings(tmp_path)
    assert fixed.fixed and fixed.roots == (tmp_path / "a", tmp_path / "b")
    with pytest.raises(ConfigError, match="cannot be changed"):
        fixed.to_file(tmp_path)


def test_a_run_of_the_same_content_is_updated_in_place_and_deleted(tmp_path):
    runs = RunStore(tmp_path)
    first = runs.save({"type": "ranking", "order": "a"}, content_key="k", version_key="v1")
    same = runs.save({"type": "ranking", "order": "a"}, content_key="k", version_key="v1")
    reordered = runs.save({"type": "ranking", "order": "b"}, content_key="k", version_key="v2")
    assert first == same == reordered and runs.list() == [first]
    assert runs.load(first)["order"] == "b"
    assert runs.delete(first) and runs.list() == [] and not runs.delete(first)
    fresh = runs.save({"type": "ranking"}, content_key="k", version_key="v2")
    assert fresh != first


def test_workspaces_not_updated_for_long_are_expired(tmp_path):
    store = WorkspaceStore(tmp_path)
    old, recent = store.create(), store.create()
    store.save(old, plan=None)
    doc = store.load(old)
    doc["updated"] = "2020-01-01T00:00:00"
    (store.directory / old / "workspace.json").write_text(json.dumps(doc), encoding="utf-8")
    assert store.expire(30) == [old]
    assert [w["id"] for w in store.list()] == [recent]


def test_shared_documents_name_uploads_without_their_folders(tmp_path):
    store = WorkspaceStore(tmp_path)
    ws = store.create()
    path = store.add_upload(ws, "net.pt", b"w")
    doc = {"plan": {"model": {"checkpoint": str(path)}}, "errors": [f"bad file '{path}'"], "n": 1}
    assert without_upload_folders(doc) == {
        "plan": {"model": {"checkpoint": "net.pt"}},
        "errors": ["bad file 'net.pt'"],
        "n": 1,
    }
    assert ws not in json.dumps(without_upload_folders(doc))
