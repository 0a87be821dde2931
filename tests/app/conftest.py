"""Fixtures for the AppTest tests: tiny uploads made in memory.

Every test gets its own cache folder (the autouse fixture in tests/conftest.py sets
RESQUE_CACHE_DIR), so nothing here touches ~/.cache.
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from resque_core.data import load_data

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.fixture(autouse=True)
def data_roots(monkeypatch, tmp_path_factory):
    """The server's data roots for these tests: pytest's temporary folders (where the tests'
    checkpoints and data sets are written) and tests/fixtures. Outside them, paths are refused."""
    roots = [str(tmp_path_factory.getbasetemp()), str(FIXTURES)]
    monkeypatch.setenv("RESQUE_DATA_ROOTS", os.pathsep.join(roots))
    return roots


@pytest.fixture(scope="session")
def task_npz(tmp_path_factory) -> bytes:
    """A new task as .npz bytes: 3 classes of 20 letters (8x8 grey) from the built-in set."""
    letters = load_data("builtin:letters")
    keep = np.concatenate([np.flatnonzero(letters.labels.numpy() == c)[:20] for c in range(3)])
    buf = io.BytesIO()
    np.savez(
        buf,
        x=letters.images[keep, 0].numpy(),
        y=letters.labels[keep].numpy(),
        classes=np.array(letters.classes[:3]),
    )
    return buf.getvalue()


@pytest.fixture(scope="session")
def traversal_zip() -> bytes:
    """A zip whose member climbs out of its folder (../): must be refused, never extracted."""
    png = io.BytesIO()
    Image.new("L", (8, 8), 128).save(png, format="PNG")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("cats/a.png", png.getvalue())
        zf.writestr("../../evil/b.png", png.getvalue())
    return buf.getvalue()
