"""Data sources, fingerprints, preprocessing and seeded splits, on tiny data made in tmp_path."""

import gzip
import os
import re
import stat
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from resque_core import limits
from resque_core.data import (
    FASHION_MNIST_CLASSES,
    ImageSet,
    Preprocess,
    data_fingerprint,
    load_data,
    parse_floats,
    parse_image_size,
    stratified_split,
    subsample_per_class,
    synthetic_shift_roles,
)
from resque_core.data import builtins as data_builtins
from resque_core.errors import ConfigError, DataError


def _raises(error, message):
    return pytest.raises(error, match=re.escape(message))


def _grey(seed: int, h: int = 5, w: int = 6) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(h, w), dtype=np.uint8)


def _folder(root: Path, per_class: int = 3) -> Path:
    """root/{cat,dog}/<i>.png: 5x6 greyscale PNGs, pixel content seeded by (class, i)."""
    for c, name in enumerate(("dog", "cat")):  # created out of order: classes must be sorted
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(_grey(10 * c + i)).save(root / name / f"{i}.png")
    return root


def _zip_of(folder: Path, zip_path: Path, prefix: str = "") -> Path:
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(folder.rglob("*.png")):
            zf.write(f, prefix + f.relative_to(folder).as_posix())
    return zip_path


def _zip_with(path: Path, name: str, payload: bytes = b"x", **info_attrs) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        info = zipfile.ZipInfo(name)
        info.compress_type = zipfile.ZIP_DEFLATED
        for k, v in info_attrs.items():
            setattr(info, k, v)
        zf.writestr(info, payload)
    return path


def _write_idx(path: Path, array: np.ndarray, *, gz: bool) -> None:
    raw = struct.pack(">BBBB", 0, 0, 8, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    raw += array.astype(np.uint8).tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        raw = gzip.compress(raw)
    path.write_bytes(raw)


def _mnist_files(folder: Path, *, gz: bool, n_train: int = 6, n_test: int = 4) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        rng = np.random.default_rng(n)
        _write_idx(folder / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 4, 3)), gz=gz)
        _write_idx(folder / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10, gz=gz)


# ----------------------------------------------------------------------------- folders and zips
def test_folder_loads_sorted_classes_grey_images(tmp_path):
    ds = load_data(str(_folder(tmp_path / "d")))
    assert ds.classes == ("cat", "dog") and ds.num_classes == 2 and len(ds) == 6
    assert ds.images.dtype == torch.uint8 and ds.images.shape == (6, 1, 5, 6)
    assert ds.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert np.array_equal(ds.images[0, 0].numpy(), _grey(10))  # cat/0.png
    assert np.array_equal(ds.images[3, 0].numpy(), _grey(0))  # dog/0.png
    assert torch.bincount(ds.labels).tolist() == [3, 3]
    assert ds.source == str(tmp_path / "d")


def test_folder_with_mixed_sizes_and_modes_becomes_rgb_of_one_size(tmp_path):
    root = tmp_path / "d"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    Image.fromarray(_grey(0, 8, 10)).save(root / "a" / "0.png")
    rgb = np.stack([_grey(1, 4, 4)] * 3, axis=-1)
    Image.fromarray(rgb).save(root / "b" / "0.png")
    ds = load_data(str(root))
    assert ds.images.shape == (2, 3, 8, 10)  # the first image's size; grey repeated to RGB
    assert torch.equal(ds.images[0, 0], ds.images[0, 2])
    assert np.array_equal(ds.images[0, 1].numpy(), _grey(0, 8, 10))
    assert load_data(str(root), image_size=(6, 7)).images.shape == (2, 3, 6, 7)
    # One-size sets keep their size whatever image_size says (Preprocess resizes for models).
    assert load_data(str(_folder(tmp_path / "e")), image_size=(3, 3)).images.shape[-2:] == (5, 6)


@pytest.mark.parametrize("prefix", ["", "top/"])
def test_zip_equals_its_folder(tmp_path, prefix):
    folder = _folder(tmp_path / "d")
    ds = load_data(str(_zip_of(folder, tmp_path / "d.zip", prefix)))
    ref = load_data(str(folder))
    assert ds.classes == ref.classes and torch.equal(ds.labels, ref.labels)
    assert torch.equal(ds.images, ref.images)


def test_zip_with_a_single_class_folder_keeps_it(tmp_path):
    root = tmp_path / "d"
    (root / "only").mkdir(parents=True)
    Image.fromarray(_grey(0)).save(root / "only" / "0.png")
    assert load_data(str(_zip_of(root, tmp_path / "d.zip"))).classes == ("only",)


# ----------------------------------------------------------------------------- npz
@pytest.mark.parametrize(
    ("x", "channels"),
    [
        (np.arange(4 * 5 * 6, dtype=np.uint8).reshape(4, 5, 6), 1),
        (np.arange(4 * 5 * 6 * 3, dtype=np.uint8).reshape(4, 5, 6, 3), 3),
        (np.zeros((4, 5, 6, 1), dtype=np.uint8), 1),
    ],
)
def test_npz_uint8_shapes(tmp_path, x, channels):
    path = tmp_path / "d.npz"
    np.savez(path, x=x, y=np.array([0, 1, 1, 2]))
    ds = load_data(str(path))
    assert ds.images.shape == (4, channels, 5, 6) and ds.images.dtype == torch.uint8
    assert ds.classes == ("0", "1", "2") and ds.labels.tolist() == [0, 1, 1, 2]
    if channels == 3:
        assert torch.equal(ds.images[1, 2], torch.from_numpy(x[1, :, :, 2]))


def test_npz_floats_in_unit_range_kept_and_0_255_scaled(tmp_path):
    x = np.random.default_rng(0).random((3, 4, 4)).astype(np.float64)
    np.savez(tmp_path / "a.npz", x=x, y=[0, 1, 0], classes=np.array(["no", "yes"]))
    np.savez(tmp_path / "b.npz", x=x * 255, y=[0, 1, 0])
    a, b = load_data(str(tmp_path / "a.npz")), load_data(str(tmp_path / "b.npz"))
    assert a.images.dtype == torch.float32 and a.classes == ("no", "yes")
    assert torch.allclose(a.images[:, 0], torch.from_numpy(x).float())
    assert torch.allclose(b.images, a.images, atol=1e-6)


def test_npz_errors(tmp_path):
    np.savez(tmp_path / "noy.npz", x=np.zeros((2, 3, 3), np.uint8))
    with _raises(
        DataError,
        f"'{tmp_path / 'noy.npz'}' has no 'y' array (labels); save it with "
        "np.savez(path, x=images, y=labels)",
    ):
        load_data(str(tmp_path / "noy.npz"))
    np.savez(tmp_path / "neg.npz", x=np.full((2, 3, 3), -2.0), y=[0, 1])
    with _raises(DataError, "float x must lie in [0, 1] or [0, 255], got [-2, -2]"):
        load_data(str(tmp_path / "neg.npz"))
    np.savez(tmp_path / "chw.npz", x=np.zeros((2, 3, 4, 4), np.uint8), y=[0, 1])
    with _raises(DataError, "x has shape (2, 3, 4, 4); expected (N, H, W) or (N, H, W, C)"):
        load_data(str(tmp_path / "chw.npz"))
    np.savez(tmp_path / "empty.npz", x=np.zeros((0, 3, 3), np.uint8), y=np.zeros(0, np.int64))
    with _raises(DataError, f"data {str(tmp_path / 'empty.npz')!r} contains no images"):
        load_data(str(tmp_path / "empty.npz"))


# ----------------------------------------------------------------------------- builtins
def test_builtin_digits_are_sklearns_digits_on_the_uint8_scale():
    from sklearn.datasets import load_digits

    ds = load_data("builtin:digits")
    assert ds.images.shape == (1797, 1, 8, 8) and ds.images.dtype == torch.uint8
    assert ds.classes == tuple(str(d) for d in range(10))
    bunch = load_digits()
    assert np.array_equal(ds.labels.numpy(), bunch.target)
    assert np.array_equal(ds.images[:, 0].numpy(), np.rint(bunch.images * 255 / 16))


def test_builtin_demo_set_loads():
    ds = load_data("builtin:digits-parity")
    assert ds.classes == ("even", "odd") and ds.images.shape == (1797, 1, 8, 8)


@pytest.mark.parametrize("gz", [True, False])
def test_fashion_mnist_from_the_env_folder(tmp_path, monkeypatch, gz):
    _mnist_files(tmp_path / "idx", gz=gz)
    monkeypatch.setenv("RESQUE_FASHION_MNIST_DIR", str(tmp_path / "idx"))
    train, test = load_data("builtin:fashion-mnist"), load_data("builtin:fashion-mnist:test")
    assert train.images.shape == (6, 1, 4, 3) and test.images.shape == (4, 1, 4, 3)
    assert train.classes == FASHION_MNIST_CLASSES and test.labels.tolist() == [0, 1, 2, 3]
    assert data_fingerprint("builtin:fashion-mnist") != data_fingerprint(
        "builtin:fashion-mnist:test"
    )


@pytest.mark.skipif(
    not (data_builtins._FASHION_DEFAULT_DIR / "t10k-images-idx3-ubyte.gz").exists(),
    reason="Debian's dataset-fashion-mnist is not installed (README's test command installs it)",
)
def test_the_installed_fashion_mnist_test_split(monkeypatch):
    monkeypatch.delenv("RESQUE_FASHION_MNIST_DIR", raising=False)
    test = load_data("builtin:fashion-mnist:test")
    assert test.images.shape == (10_000, 1, 28, 28) and test.classes == FASHION_MNIST_CLASSES
    assert np.bincount(test.labels.numpy()).tolist() == [1000] * 10


def test_fashion_mnist_from_a_torchvision_root(tmp_path, monkeypatch):
    monkeypatch.setattr(data_builtins, "_FASHION_DEFAULT_DIR", tmp_path / "none")
    monkeypatch.delenv("RESQUE_FASHION_MNIST_DIR", raising=False)
    _mnist_files(tmp_path / "tv" / "FashionMNIST" / "raw", gz=False)
    monkeypatch.setenv("RESQUE_FASHION_MNIST_ROOT", str(tmp_path / "tv"))
    assert len(load_data("builtin:fashion-mnist")) == 6


def test_fashion_mnist_missing(tmp_path, monkeypatch):
    monkeypatch.setattr(data_builtins, "_FASHION_DEFAULT_DIR", tmp_path / "none")
    monkeypatch.setenv("RESQUE_FASHION_MNIST_DIR", str(tmp_path))
    monkeypatch.delenv("RESQUE_FASHION_MNIST_ROOT", raising=False)
    with _raises(
        DataError,
        "Fashion-MNIST is not installed: run `sudo apt-get install dataset-fashion-mnist` or set "
        f"RESQUE_FASHION_MNIST_DIR to a folder with its IDX files (looked in: {tmp_path}, "
        f"{tmp_path / 'none'})",
    ):
        load_data("builtin:fashion-mnist")


# ----------------------------------------------------------------------------- torchvision
def test_torchvision_mnist_from_its_root(tmp_path):
    _mnist_files(tmp_path / "MNIST" / "raw", gz=False)
    train = load_data(f"torchvision:MNIST:{tmp_path}")
    test = load_data(f"torchvision:mnist:{tmp_path}:test")  # names match case-insensitively
    assert train.images.shape == (6, 1, 4, 3) and test.images.shape == (4, 1, 4, 3)
    assert len(train.classes) == 10 and test.labels.tolist() == [0, 1, 2, 3]
    fp = data_fingerprint(f"torchvision:MNIST:{tmp_path}")
    assert fp != data_fingerprint(f"torchvision:MNIST:{tmp_path}:test")


@pytest.mark.parametrize("make_root", [False, True])
def test_torchvision_missing_files(tmp_path, make_root):
    root = tmp_path if make_root else Path("/nonexistent")
    with _raises(
        DataError,
        f"torchvision dataset CIFAR10 not found under {root}: expected cifar-10-batches-py there; "
        "place the files there (download elsewhere) — nothing is downloaded",
    ):
        load_data(f"torchvision:CIFAR10:{root}")


def test_torchvision_unknown_name_and_split():
    with _raises(ConfigError, "unknown torchvision data set 'ImageNet'; available: CIFAR10, "):
        load_data("torchvision:ImageNet:/data")
    with _raises(ConfigError, "unknown split 'val' in 'torchvision:CIFAR10:/data:val'"):
        load_data("torchvision:CIFAR10:/data:val")


# ----------------------------------------------------------------------------- bad input
def test_missing_path_and_unsupported_file(tmp_path):
    with _raises(DataError, f"data not found: {tmp_path / 'nope'}"):
        load_data(str(tmp_path / "nope"))
    (tmp_path / "d.tar").write_bytes(b"")
    with _raises(
        DataError,
        f"unsupported data file '{tmp_path / 'd.tar'}': expected a folder with one sub-folder per "
        "class, a .zip of such a folder, an .npz with arrays x and y, builtin:NAME or "
        "torchvision:NAME:ROOT[:train|test]",
    ):
        data_fingerprint(str(tmp_path / "d.tar"))


def test_empty_folder_and_folder_without_class_folders(tmp_path):
    (tmp_path / "empty" / "cls").mkdir(parents=True)
    with _raises(
        DataError,
        f"data folder '{tmp_path / 'empty'}' contains no images (expected root/<class>/<image> "
        "files)",
    ):
        load_data(str(tmp_path / "empty"))
    (tmp_path / "flat").mkdir()
    Image.fromarray(_grey(0)).save(tmp_path / "flat" / "0.png")
    with _raises(
        DataError,
        f"data folder '{tmp_path / 'flat'}' has images but no class folders: put each class's "
        "images in a sub-folder named after the class (root/<class>/<image>)",
    ):
        load_data(str(tmp_path / "flat"))


def test_unreadable_image_is_named(tmp_path):
    root = _folder(tmp_path / "d")
    (root / "cat" / "9.png").write_bytes(b"not a png")
    with _raises(DataError, f"cannot read image '{root / 'cat' / '9.png'}': "):
        load_data(str(root))


@pytest.mark.parametrize(
    ("name", "attrs", "message"),
    [
        ("../evil.png", {}, "zip member '../evil.png' escapes the archive; refused"),
        ("a/../../evil.png", {}, "zip member 'a/../../evil.png' escapes the archive; refused"),
        ("/etc/evil.png", {}, "zip member '/etc/evil.png' is an absolute path; refused"),
        (
            "a/link.png",
            {"create_system": 3, "external_attr": (stat.S_IFLNK | 0o777) << 16},
            "zip member 'a/link.png' is a symbolic link; refused",
        ),
    ],
)
def test_unsafe_zip_members_are_refused(tmp_path, name, attrs, message):
    path = _zip_with(tmp_path / "d.zip", name, **attrs)
    with _raises(DataError, message):
        load_data(str(path))


def test_zip_bomb_ratio_and_member_count(tmp_path, monkeypatch):
    path = _zip_with(tmp_path / "bomb.zip", "a/zeros.png", bytes(10 * 1024 * 1024))
    size = zipfile.ZipFile(path).getinfo("a/zeros.png").compress_size
    with _raises(
        DataError,
        f"zip member 'a/zeros.png' expands {10 * 1024 * 1024 / size:,.0f}x (10,485,760 bytes "
        f"from {size:,}); refused as a possible zip bomb (limit 200x)",
    ):
        load_data(str(path))
    monkeypatch.setattr(limits, "ZIP_MAX_MEMBERS", 2)
    folder_zip = _zip_of(_folder(tmp_path / "d"), tmp_path / "d.zip")
    with _raises(DataError, "zip has 6 members (limit 2); refused as a possible zip bomb"):
        load_data(str(folder_zip))


def test_unknown_builtin():
    with _raises(
        ConfigError,
        "unknown built-in data set 'digit'; closest: digits, digits-mod3, digits-parity; "
        "available: digits, digits-mod3, digits-parity, fashion-mnist, fashion-mnist:test, "
        "letters, shapes",
    ):
        load_data("builtin:digit")


# ----------------------------------------------------------------------------- fingerprints
def test_imageset_fingerprint_is_stable_and_pixel_sensitive(tmp_path):
    root = _folder(tmp_path / "d")
    a, b = load_data(str(root)), load_data(str(root))
    assert a.fingerprint() == b.fingerprint() == a.fingerprint()
    img = _grey(10)
    img[0, 0] ^= 1
    Image.fromarray(img).save(root / "cat" / "0.png")
    assert load_data(str(root)).fingerprint() != a.fingerprint()


def test_data_fingerprint_follows_content_not_mtime(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((2, 3, 3), np.uint8), y=[0, 1])
    path = tmp_path / "d.npz"
    before = data_fingerprint(str(path))
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert data_fingerprint(str(path)) == before
    np.savez(path, x=np.ones((2, 3, 3), np.uint8), y=[0, 1])
    assert data_fingerprint(str(path)) != before

    root = _folder(tmp_path / "f")
    folder_fp = data_fingerprint(str(root))
    (root / "bird").mkdir()  # an empty class folder is a class: the identity changes
    assert data_fingerprint(str(root)) != folder_fp
    assert data_fingerprint("builtin:digits") == data_fingerprint("builtin:digits")
    assert data_fingerprint("builtin:digits") != data_fingerprint("builtin:digits-parity")


# ----------------------------------------------------------------------------- ImageSet
def test_imageset_subset_and_validation():
    ds = ImageSet(
        torch.arange(4 * 4, dtype=torch.uint8).reshape(4, 1, 2, 2),
        torch.tensor([0, 1, 1, 2]),
        ("a", "b", "c"),
        "t",
    )
    part = ds.subset(np.array([3, 0]))
    assert part.labels.tolist() == [2, 0] and part.images[0, 0, 0, 0] == 12
    assert ds.subset(torch.tensor([True, False, True, False])).labels.tolist() == [0, 1]
    assert torch.bincount(part.labels, minlength=3).tolist() == [1, 0, 1]
    with _raises(DataError, "t: labels must lie in 0..1 (one per class name), got 0..2"):
        ImageSet(ds.images, ds.labels, ("a", "b"), "t")


# ----------------------------------------------------------------------------- Preprocess
def test_preprocess_grey_to_rgb_resize_and_normalize():
    pre = Preprocess(image_size=(4, 6), channels=3, mean=(0.5,), std=(0.25,))
    assert pre.mean == (0.5, 0.5, 0.5) and pre.std == (0.25, 0.25, 0.25)
    x = pre.to_unit(torch.full((2, 1, 8, 12), 51, dtype=torch.uint8))
    assert x.shape == (2, 3, 4, 6) and x.dtype == torch.float32
    assert torch.allclose(x, torch.full_like(x, 0.2))
    assert torch.allclose(pre.normalize(x), torch.full_like(x, (0.2 - 0.5) / 0.25))
    same = Preprocess(image_size=(8, 12), channels=1).to_unit(torch.ones(1, 1, 8, 12) * 0.3)
    assert torch.equal(same, torch.ones(1, 1, 8, 12) * 0.3)  # floats as is, no resize


def test_preprocess_rgb_to_grey_uses_bt601_luma_and_per_channel_stats():
    rgb = torch.tensor([255, 0, 0], dtype=torch.uint8).view(1, 3, 1, 1).expand(1, 3, 2, 2)
    grey = Preprocess(image_size=(2, 2), channels=1).to_unit(rgb)
    assert torch.allclose(grey, torch.full((1, 1, 2, 2), 0.299))
    pre = Preprocess(image_size=(1, 1), channels=3, mean=(0.1, 0.2, 0.3), std=(1, 2, 4))
    out = pre.normalize(torch.ones(1, 3, 1, 1))
    assert torch.allclose(out.flatten(), torch.tensor([0.9, 0.4, 0.175]))
    x = torch.rand(2, 3, 5, 5, generator=torch.Generator().manual_seed(0))
    copy = pre.normalize(x)
    assert not torch.equal(copy, x)  # the default leaves its input alone
    inplace = pre.normalize(x, inplace=True)
    assert inplace is x and torch.equal(inplace, copy)  # the same values, bit for bit


def test_preprocess_dict_round_trip():
    pre = Preprocess(image_size=(32, 28), channels=1, mean=(0.1,), std=(0.3,))
    doc = pre.as_dict()
    assert doc == {"image_size": [32, 28], "channels": 1, "mean": [0.1], "std": [0.3]}
    assert Preprocess.from_dict(doc) == pre
    with _raises(ConfigError, "preprocessing must be a mapping with image_size"):
        Preprocess.from_dict({"image_size": [2, 2], "size": 3})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"channels": 2}, "channels must be 1 or 3, got 2"),
        ({"std": (0.0,)}, "std values must be positive, got (0.0,)"),
        ({"std": (0.5, -1.0, 0.5)}, "std values must be positive, got (0.5, -1.0, 0.5)"),
        (
            {"mean": (0.1, 0.2)},
            "mean must be 1 or 3 finite numbers (one per channel), got (0.1, 0.2)",
        ),
        ({"image_size": (0, 4)}, "image_size must be two positive integers (height, width)"),
    ],
)
def test_preprocess_validation(kwargs, message):
    with _raises(ConfigError, message):
        Preprocess(**{"image_size": (4, 4), "channels": 3, **kwargs})


def test_parse_floats_and_image_size():
    assert parse_floats("0.5", name="--mean") == (0.5,)
    assert parse_floats(" 0.229, 0.224,0.225", name="--std", positive=True) == (
        0.229,
        0.224,
        0.225,
    )
    with _raises(
        ConfigError,
        "--mean must be one number or comma-separated numbers (e.g. 0.5 or 0.229,0.224,0.225), "
        "got '0.5,abc'",
    ):
        parse_floats("0.5,abc", name="--mean")
    with _raises(ConfigError, "--std values must be positive, got '0.5,0'"):
        parse_floats("0.5,0", name="--std", positive=True)
    assert parse_image_size("32") == (32, 32)
    assert parse_image_size("32x28") == parse_image_size("32,28") == (32, 28)
    with _raises(
        ConfigError,
        "--image-size must be N or HxW with positive integers (e.g. 32 or 32x28), got '32x'",
    ):
        parse_image_size("32x")


# ----------------------------------------------------------------------------- splits
LABELS = np.repeat(np.arange(3), [10, 20, 7])


def test_stratified_split_proportions_cover_and_determinism():
    parts = stratified_split(LABELS, (0.5, 0.3, 0.2), seed=0)
    all_idx = np.concatenate(parts)
    assert np.array_equal(np.sort(all_idx), np.arange(len(LABELS)))  # disjoint and complete
    assert all(np.array_equal(p, np.sort(p)) for p in parts)
    counts = [np.bincount(LABELS[p], minlength=3).tolist() for p in parts]
    # Cuts at floor(n * cumulative + 0.5): 7 -> 4 (3.5 up), 6 (5.6), 7.
    assert counts == [[5, 10, 4], [3, 6, 2], [2, 4, 1]]
    again = stratified_split(LABELS, (0.5, 0.3, 0.2), seed=0)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again, strict=True))
    other = stratified_split(LABELS, (0.5, 0.3, 0.2), seed=1)
    assert not np.array_equal(parts[0], other[0])
    with _raises(ConfigError, "split fractions must be non-negative numbers that sum to 1"):
        stratified_split(LABELS, (0.5, 0.3), seed=0)


def test_subsample_per_class():
    idx = subsample_per_class(LABELS, 8, seed=0)
    assert np.bincount(LABELS[idx]).tolist() == [8, 8, 7]
    assert np.array_equal(idx, np.sort(idx)) and len(np.unique(idx)) == len(idx)
    assert np.array_equal(idx, subsample_per_class(LABELS, 8, seed=0))
    assert not np.array_equal(idx, subsample_per_class(LABELS, 8, seed=1))
    assert np.array_equal(subsample_per_class(LABELS, None, seed=0), np.arange(len(LABELS)))
    with _raises(ConfigError, "samples per class must be a positive integer or None, got 0"):
        subsample_per_class(LABELS, 0, seed=0)


def test_synthetic_shift_roles_share_the_20_percent_part():
    first, second, shared = stratified_split(LABELS, seed=3)
    clean, shifted = synthetic_shift_roles(LABELS, seed=3)
    assert np.array_equal(clean, np.sort(np.concatenate([first, shared])))
    assert np.array_equal(shifted, np.sort(np.concatenate([second, shared])))
    assert np.array_equal(np.intersect1d(clean, shifted), shared)
