"""Cheap content identities of data specs (hex SHA-256 over file bytes, folder trees and
builtin versions), computed without decoding images."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from importlib import metadata
from pathlib import Path
from typing import Any

from .._util import file_sha256, regular_file, stat_sha256
from ..errors import DataError
from . import synthetic
from .builtins import _fashion_files, _torchvision_missing
from .listing import _walk
from .specs import TORCHVISION_DATASETS, _parse_spec, _reason

__all__ = ["data_fingerprint"]


def _tree_digest(path: Path) -> str:
    """A file's SHA-256, or for a folder the SHA-256 over its top-level folder names and the
    sorted (relative path, SHA-256) of its non-hidden files."""
    if not path.is_dir():
        return _file_digest(path)
    files, tops = _walk(path)
    root = str(path.resolve())
    entries = [["dir", d] for d in sorted(tops)] + [
        ["file", f, _member_digest(root, f)] for f in files
    ]
    return hashlib.sha256(json.dumps(entries).encode()).hexdigest()


def _member_digest(root: str, rel: str) -> str:
    """:func:`_file_digest` of the file ``rel`` of the (resolved) folder ``root``, with one stat
    for a regular file."""
    full = os.path.join(root, rel)
    try:
        st = os.stat(full)
    except OSError:
        st = None
    if st is None or not stat.S_ISREG(st.st_mode) or not os.access(full, os.R_OK):
        return _file_digest(Path(full))  # says what is wrong with it
    try:
        return stat_sha256(full, st)
    except OSError as e:
        raise DataError(f"cannot read data file {full}: {_reason(e)}") from None


def _file_digest(path: Path) -> str:
    """A data file's SHA-256; a FIFO, device or unreadable file is a DataError, never read."""
    checked = regular_file(path, what="data file", error=DataError)
    try:
        return file_sha256(checked)
    except OSError as e:
        raise DataError(f"cannot read data file {path}: {_reason(e)}") from None


def data_fingerprint(spec: str) -> str:
    """A cheap content identity of ``spec`` (hex SHA-256), computed without decoding images.

    Files (.zip, .npz): their bytes; folders: relative paths and bytes of their files; torchvision
    sets: the same over the data set's own folder (or file) under ROOT, plus name and split;
    builtins: their name, split and source version (scikit-learn and Pillow versions and the
    recipe module's hash, or Fashion-MNIST's IDX files). File hashes are memoised on (path, size,
    mtime), so a repeated call only stats files. Raises the same errors as
    :func:`~resque_core.data.sources.load_data` for a spec that cannot be found.
    """
    parsed = _parse_spec(spec)
    doc: dict[str, Any] = {"kind": parsed.kind}
    if parsed.kind == "folder":
        doc["tree"] = _tree_digest(parsed.path)
    elif parsed.kind in ("zip", "npz"):
        doc["sha256"] = _file_digest(parsed.path)
    elif parsed.kind == "torchvision":
        entry = TORCHVISION_DATASETS[parsed.name]
        target = parsed.path / entry.folder.format(split=parsed.split)
        if not target.exists():
            raise _torchvision_missing(parsed)
        doc.update(name=parsed.name, split=parsed.split, tree=_tree_digest(target))
    elif parsed.name == "fashion-mnist":
        files = _fashion_files(parsed.split)
        doc.update(name=parsed.name, split=parsed.split, files=[_file_digest(f) for f in files])
    else:
        doc.update(
            name=parsed.name,
            split=parsed.split,
            sklearn=metadata.version("scikit-learn"),
            pillow=metadata.version("pillow"),
            recipe=file_sha256(Path(synthetic.__file__)),
        )
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()
