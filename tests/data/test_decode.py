"""Subsampled decoding: only the selected images are decoded, and they are the rows a decode of
the whole set gives (sizes and channels unified as for the whole set)."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from resque_core.data import decode, load_data, open_data, subsample_per_class
from resque_core.data.decode import _Stack
from resque_core.errors import DataError


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


# ------------------------------------------------------------------ JPEG through torchvision
def _jpeg_folder(tmp_path):
    """JPEGs of every kind the fast path takes (colour with each chroma subsampling, greyscale,
    progressive, small and large) beside a PNG and a CMYK JPEG, which Pillow decodes."""
    rng = np.random.default_rng(5)
    root = tmp_path / "jpegs"
    kinds = [
        dict(size=(12, 9), subsampling=0),
        dict(size=(31, 17), subsampling=1),
        dict(size=(32, 32), subsampling=2, progressive=True),
        dict(size=(80, 70), subsampling=2),  # over EARLY_PIXELS: decoded when asked for
        dict(size=(7, 5), grey=True),
        dict(size=(90, 65), grey=True, progressive=True),
    ]
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
        for i, kind in enumerate(kinds):
            w, h = kind["size"]
            shape = (h, w) if kind.get("grey") else (h, w, 3)
            smooth = np.cumsum(rng.integers(0, 9, size=shape), axis=0) % 256
            img = Image.fromarray(smooth.astype(np.uint8))
            opts = {k: v for k, v in kind.items() if k in ("subsampling", "progressive")}
            img.save(root / name / f"{i}.jpg", quality=int(rng.integers(20, 96)), **opts)
        Image.fromarray(rng.integers(0, 256, (10, 10, 3), dtype=np.uint8)).save(
            root / name / "p.png"
        )
        Image.fromarray(rng.integers(0, 256, (10, 10, 4), dtype=np.uint8), "CMYK").save(
            root / name / "k.jpg"
        )
    return root


@pytest.fixture
def fast_jpeg(monkeypatch):
    """The fast JPEG path checked afresh (torchvision imported), counting the images it decodes."""
    import torchvision  # noqa: F401  - the fast path is used only once torchvision is imported

    monkeypatch.setattr(decode, "_jpeg_state", [])
    real = decode._jpeg()
    assert real is not None, "torchvision's JPEG decoder should give Pillow's pixels here"
    calls = []
    monkeypatch.setattr(decode, "_jpeg_state", [lambda data: calls.append(1) or real(data)])
    return calls


@pytest.mark.parametrize("budget", [None, 0])
@pytest.mark.parametrize("size", [None, (24, 24)])
def test_fast_jpeg_path_gives_pillows_rows(tmp_path, monkeypatch, fast_jpeg, budget, size):
    root = _jpeg_folder(tmp_path)
    whole = _stack_decode(root, size)  # Pillow, one image at a time
    if budget is not None:  # no early decode: every image read when its row is asked for
        monkeypatch.setattr(decode, "EARLY_BUDGET", budget)
    lazy = open_data(str(root), image_size=size)
    idx = np.array([0, 3, 5, 8, 11, 14, 15])
    assert torch.equal(lazy.rows(idx).images, whole[torch.from_numpy(idx)])
    assert torch.equal(lazy.full().images, whole)
    assert len(fast_jpeg) == 12  # the six baseline/progressive JPEGs of each class, once each

    monkeypatch.setattr(decode, "_jpeg_state", [None])  # Pillow only
    assert torch.equal(open_data(str(root), image_size=size).full().images, whole)


@pytest.mark.parametrize("cut", [2, 40, -30])
def test_a_broken_jpeg_gets_pillows_error_on_either_path(tmp_path, monkeypatch, cut):
    root = tmp_path / "d"
    (root / "x").mkdir(parents=True)
    rng = np.random.default_rng(1)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(
            root / "x" / f"{i}.jpg"
        )
    bad = root / "x" / "1.jpg"
    bad.write_bytes(bad.read_bytes()[:cut])
    messages = []
    for state in ([], [None]):
        import torchvision  # noqa: F401

        monkeypatch.setattr(decode, "_jpeg_state", list(state))
        with pytest.raises(DataError) as e:
            open_data(str(root)).full()
        messages.append(str(e.value))
    assert messages[0] == messages[1]
    assert str(bad) in messages[0] and "fix or remove it" in messages[0]


def test_a_decoder_that_differs_from_pillow_is_not_used(monkeypatch):
    import torchvision.io

    monkeypatch.setattr(decode, "_jpeg_state", [])
    real = torchvision.io.decode_jpeg
    monkeypatch.setattr(torchvision.io, "decode_jpeg", lambda *a, **k: real(*a, **k) ^ 1)
    assert decode._jpeg() is None
    monkeypatch.setattr(decode, "_jpeg_state", [])
    monkeypatch.setattr(torchvision.io, "decode_jpeg", real)
    assert decode._jpeg() is not None


def test_jpeg_frame_header_is_read_only_for_what_the_fast_path_decodes():
    def jpeg(mode, shape, **opts):
        buf = io.BytesIO()
        Image.fromarray(np.zeros(shape, dtype=np.uint8), mode).save(buf, "JPEG", **opts)
        return buf.getvalue()

    assert decode._jpeg_frame(jpeg("RGB", (7, 11, 3))) == ((11, 7), 3)
    assert decode._jpeg_frame(jpeg("L", (5, 3), progressive=True)) == ((3, 5), 1)
    assert decode._jpeg_frame(jpeg("CMYK", (4, 4, 4))) is None  # four components: Pillow
    data = jpeg("RGB", (7, 11, 3))
    sof = data.index(b"\xff\xc0")
    arithmetic = data[:sof] + b"\xff\xc9" + data[sof + 2 :]
    assert decode._jpeg_frame(arithmetic) is None
    assert decode._jpeg_frame(data[: sof + 6]) is None  # header cut inside the frame
    assert decode._jpeg_frame(b"\x89PNG\r\n\x1a\n") is None


@pytest.mark.parametrize("budget", [None, 0])
def test_an_oversized_jpeg_is_refused_from_its_header_on_the_fast_path(
    tmp_path, monkeypatch, fast_jpeg, budget
):
    from resque_core import limits

    root = tmp_path / "d"
    (root / "x").mkdir(parents=True)
    for i, side in enumerate((8, 40, 8)):
        Image.fromarray(np.full((side, side, 3), 90, dtype=np.uint8)).save(root / "x" / f"{i}.jpg")
    if budget is not None:
        monkeypatch.setattr(decode, "EARLY_BUDGET", budget)
    monkeypatch.setattr(limits, "MAX_IMAGE_PIXELS", 1_000)  # 40 x 40 is over it
    with pytest.raises(DataError, match=r"1\.jpg' is 40 x 40 pixels") as e:
        open_data(str(root)).full()
    assert str(tmp_path) in str(e.value)
    assert len(fast_jpeg) <= 1  # the 40 x 40 image is never decoded (8 x 8 ones may be)
