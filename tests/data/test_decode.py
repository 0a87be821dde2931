"""Subsampled decoding: only the selected images are decoded, and they are the rows a decode of
the whole set gives (sizes and channels unified as for the whole set)."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from resque_core.data import decode, load_data, open_data, subsample_per_class
from resque_core.data.decode import _Stack


def _folder(tmp_path, *, mixed: bool):
    """Three classes of 12 images; with ``mixed``, sizes differ and one class is greyscale."""
    rng = np.random.default_rng(0)
    root = tmp_path / "data"
    for c, name in enumerate(("cat", "dog", "owl")):
        (root / name).mkdir(parents=True)
        for i in range(12):
            h, w = (20 + (i % 3) * 4, 24) if mixed else (16, 16)
            grey = mixed and c == 2
            shape = (h, w) if grey else (h, w, 3)
            img = Image.fromarray(rng.integers(0, 256, size=shape, dtype=np.uint8))
            img.save(root / name / f"{i:02d}.{'png' if i % 2 else 'jpg'}")
    return root


def _zip(root, tmp_path):
    path = tmp_path / "data.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for f in sorted(root.rglob("*.*")):
            zf.write(f, f.relative_to(root.parent).as_posix())
    return str(path)


def _stack_decode(root, size):
    """The whole set decoded one image at a time in order (the incremental decoder)."""
    files = sorted(root.rglob("*.*"))
    stack = _Stack(size, len(files), "test")
    for f in files:
        with Image.open(f) as img:
            stack.add(img, str(f))
    return stack.tensor()


@pytest.mark.parametrize("mixed", [False, True])
@pytest.mark.parametrize("as_zip", [False, True])
def test_subsampled_decoding_equals_decode_then_subsample(tmp_path, monkeypatch, mixed, as_zip):
    root = _folder(tmp_path, mixed=mixed)
    spec = _zip(root, tmp_path) if as_zip else str(root)
    size = (28, 28) if mixed else None
    whole = load_data(spec, image_size=size)
    assert torch.equal(whole.images, _stack_decode(root, size))
    if mixed:  # a mixed set takes image_size, and colour for all once one image has it
        assert whole.images.shape[1:] == (3, 28, 28)

    decoded = []
    real = decode._decode_one
    monkeypatch.setattr(decode, "EARLY_PIXELS", 0)  # no image decoded with its header here
    monkeypatch.setattr(
        decode, "_decode_one", lambda o, w, p, e=None: decoded.append(w) or real(o, w, p, e)
    )
    lazy = open_data(spec, image_size=size)
    assert decoded == [] and torch.equal(lazy.labels, whole.labels)
    idx = subsample_per_class(lazy.labels.numpy(), 3, seed=7)
    part = lazy.rows(idx)
    assert len(decoded) == len(idx) == 9  # only the subsample was decoded
    expected = whole.subset(idx)
    assert torch.equal(part.images, expected.images)
    assert torch.equal(part.labels, expected.labels) and part.classes == whole.classes

    # A second, overlapping request decodes only the new rows; the full set reuses them all.
    more = np.union1d(idx, np.arange(5))
    assert torch.equal(lazy.rows(more).images, whole.subset(more).images)
    assert len(decoded) == len(np.union1d(idx, np.arange(5)))
    assert torch.equal(lazy.full().images, whole.images)
    assert len(decoded) == len(whole)
    assert lazy.full() is lazy.full()


@pytest.mark.parametrize("mixed", [False, True])
@pytest.mark.parametrize("budget", [None, 5_000])
def test_small_images_decoded_with_their_headers_give_the_same_rows(
    tmp_path, monkeypatch, mixed, budget
):
    root = _folder(tmp_path, mixed=mixed)
    size = (28, 28) if mixed else None
    whole = _stack_decode(root, size)
    if budget is not None:  # room for a few images only: the others are read when asked for
        monkeypatch.setattr(decode, "EARLY_BUDGET", budget)
    reads = []
    real = decode._decode_one
    monkeypatch.setattr(
        decode,
        "_decode_one",
        lambda o, w, p, e=None: reads.append(e is None) or real(o, w, p, e),
    )
    lazy = open_data(str(root), image_size=size)
    idx = subsample_per_class(lazy.labels.numpy(), 5, seed=3)
    assert torch.equal(lazy.rows(idx).images, whole[torch.from_numpy(idx)])
    assert torch.equal(lazy.full().images, whole)
    assert len(reads) == len(whole)  # every row built once
    files_read = sum(reads)
    if budget is None:
        assert files_read == 0  # 36 small images: all decoded with their headers
    else:
        assert 0 < files_read < len(whole)
