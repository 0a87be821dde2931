"""Labelled image data sets from offline sources, preprocessing and seeded index splits.

A data SPEC is one string (the same in the CLI, plans and the app):

- ``path/to/folder``: ImageFolder layout, ``root/<class>/<image>`` (classes sorted by name, images
  in sub-folders of a class folder included, hidden files and ``__MACOSX`` skipped, files whose
  extension Pillow cannot open ignored, images directly in ``root`` ignored when class folders
  exist). A class folder without images stays a class (with no samples).
- ``data.zip``: a zip of such a folder, class folders at its top level or inside one top folder
  (stripped when every image lies two levels below it). Members are read in memory, never
  extracted; absolute paths, ``..`` components, symbolic links and zip bombs are refused.
- ``data.npz``: ``x`` (N, H, W) or (N, H, W, C) with C 1 or 3, ``y`` (N,) integer labels, optional
  ``classes`` (names, ``y`` indexes them; default "0", "1", ...). Shapes and dtypes are read from
  the members' .npy headers and checked before any array is allocated. ``x`` uint8 is kept; other
  integer types with values in 0..255 become uint8; floats in [0, 1] are kept as float32 and
  floats in [0, 255] (with a value above 1) are scaled by 1/255.
- ``torchvision:NAME:ROOT[:train|test]``: a torchvision data set already on disk under ROOT (the
  folder torchvision's ``root=`` would get). Never downloads.
- ``builtin:NAME``: see :data:`BUILTINS` (scikit-learn's digits, Fashion-MNIST from its Debian
  package, the demo sets of :mod:`resque_core.data.synthetic`).

Images keep their native size and channels. Sets whose images differ in size (folders, zips,
file-based torchvision sets) are resized with Pillow's bilinear filter (antialiased when
shrinking) to ``image_size`` or, by default, to the first image's size; greyscale images (Pillow
modes 1, L, LA) stay 1-channel unless the set mixes them with colour ones, then all become RGB.

Only regular files are opened (a FIFO or device is refused, never read); the size limits of
:mod:`resque_core.limits` (image width, height and pixels, decoded bytes against free memory,
class count against the number of images) are checked before the memory is allocated.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import json
import math
import os
import re
import stat
import struct
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from .. import limits
from .._util import file_sha256, regular_file, unknown_name_message
from ..errors import ConfigError, DataError
from . import synthetic as synthetic

__all__ = [
    "BUILTINS",
    "FASHION_MNIST_CLASSES",
    "TORCHVISION_DATASETS",
    "ImageSet",
    "Preprocess",
    "data_fingerprint",
    "load_data",
    "parse_floats",
    "parse_image_size",
    "stratified_split",
    "subsample_per_class",
    "synthetic_shift_roles",
]

BUILTINS: dict[str, str] = {
    "digits": "scikit-learn's 1,797 real handwritten 8x8 digits (10 classes)",
    "fashion-mnist": "Fashion-MNIST training split, 60,000 28x28 images (Debian package)",
    "fashion-mnist:test": "Fashion-MNIST test split, 10,000 28x28 images (Debian package)",
    **synthetic.DESCRIPTIONS,
}
"""``builtin:NAME`` data sets (name -> one-line description); nothing is downloaded."""

FASHION_MNIST_CLASSES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

_FASHION_DEFAULT_DIR = Path("/usr/share/datasets/fashion-mnist")
_FASHION_DIR_ENV = "RESQUE_FASHION_MNIST_DIR"
_FASHION_ROOT_ENV = "RESQUE_FASHION_MNIST_ROOT"


@dataclass(frozen=True)
class _TorchvisionSet:
    """How to open one torchvision data set: where its files lie under ROOT (``{split}`` is
    replaced by the split's value), and whether it takes ``train=`` or ``split=``."""

    folder: str
    split_arg: str  # "train" or "split"
    train_split: str = "train"
    extra: tuple[tuple[str, str], ...] = ()


TORCHVISION_DATASETS: dict[str, _TorchvisionSet] = {
    "CIFAR10": _TorchvisionSet("cifar-10-batches-py", "train"),
    "CIFAR100": _TorchvisionSet("cifar-100-python", "train"),
    "MNIST": _TorchvisionSet("MNIST/raw", "train"),
    "FashionMNIST": _TorchvisionSet("FashionMNIST/raw", "train"),
    "KMNIST": _TorchvisionSet("KMNIST/raw", "train"),
    "EMNIST": _TorchvisionSet("EMNIST/raw", "train", extra=(("split", "balanced"),)),
    "SVHN": _TorchvisionSet("{split}_32x32.mat", "split"),
    "STL10": _TorchvisionSet("stl10_binary", "split"),
    "GTSRB": _TorchvisionSet("gtsrb", "split"),
    "Flowers102": _TorchvisionSet("flowers-102", "split"),
    "Food101": _TorchvisionSet("food-101", "split"),
    "DTD": _TorchvisionSet("dtd", "split"),
    "Country211": _TorchvisionSet("country211", "split"),
    "StanfordCars": _TorchvisionSet("stanford_cars", "split"),
    "OxfordIIITPet": _TorchvisionSet("oxford-iiit-pet", "split", train_split="trainval"),
    "FGVCAircraft": _TorchvisionSet("fgvc-aircraft-2013b", "split", train_split="trainval"),
}
"""Supported ``torchvision:NAME`` data sets (names matched case-insensitively). EMNIST is its
"balanced" split (47 classes); images are as torchvision stores them (EMNIST's transposed)."""

_SPLITS = ("train", "test")
_GREY_MODES = ("1", "L", "LA")
_SKIPPED_NAMES = ("__MACOSX",)
_ACCEPTED = (
    "a folder with one sub-folder per class, a .zip of such a folder, an .npz with arrays x and "
    "y, builtin:NAME or torchvision:NAME:ROOT[:train|test]"
)


# --------------------------------------------------------------------------------- ImageSet
@dataclass(frozen=True, eq=False)
class ImageSet:
    """Labelled images in memory. Shared by caches: never modify its tensors in place.

    ``images``: uint8 [N, C, H, W] (C 1 or 3), or float32 in [0, 1] for float .npz input.
    ``labels``: int64 [N], indices into ``classes``. ``source``: the data spec it came from.
    Compared by identity (``eq=False``): tensors have no single truth value.
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]
    source: str
    _fingerprint: str | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        x, y = self.images, self.labels
        if x.ndim != 4 or x.shape[1] not in (1, 3) or x.dtype not in (torch.uint8, torch.float32):
            raise DataError(
                f"{self.source}: images must be uint8 or float32 [N, C, H, W] with C 1 or 3, "
                f"got {x.dtype} {list(x.shape)}"
            )
        if y.dtype != torch.int64 or y.shape != (x.shape[0],):
            raise DataError(
                f"{self.source}: labels must be int64 [{x.shape[0]}], got {y.dtype} {list(y.shape)}"
            )
        if len(y) and (int(y.min()) < 0 or int(y.max()) >= len(self.classes)):
            raise DataError(
                f"{self.source}: labels must lie in 0..{len(self.classes) - 1} (one per class "
                f"name), got {int(y.min())}..{int(y.max())}"
            )
        classes = tuple(str(c) for c in self.classes)
        first: dict[str, int] = {}
        for i, name in enumerate(classes):
            if name in first:
                raise DataError(
                    f"{self.source}: class name {name!r} is given twice (classes {first[name]} "
                    f"and {i}); give every class a unique name"
                )
            first[name] = i
        object.__setattr__(self, "classes", classes)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def subset(self, idx: torch.Tensor | np.ndarray | Sequence[int]) -> ImageSet:
        """The samples at ``idx`` (integer indices, or a boolean mask of length N), in that order;
        same classes and source."""
        index = torch.as_tensor(np.asarray(idx) if not isinstance(idx, torch.Tensor) else idx)
        if index.dtype == torch.bool:
            index = torch.nonzero(index).flatten()
        index = index.to(torch.int64)
        return ImageSet(self.images[index], self.labels[index], self.classes, self.source)

    def fingerprint(self) -> str:
        """Hex SHA-256 of the decoded content (image dtype, shape and bytes, labels, class
        names); computed once."""
        if self._fingerprint is None:
            h = hashlib.sha256()
            x = self.images.contiguous()
            h.update(f"{x.dtype}{list(x.shape)}".encode())
            h.update(x.numpy())
            h.update(self.labels.contiguous().numpy())
            h.update(json.dumps(list(self.classes)).encode())
            object.__setattr__(self, "_fingerprint", h.hexdigest())
        return self._fingerprint


# --------------------------------------------------------------------------------- spec parsing
@dataclass(frozen=True)
class _Spec:
    kind: str  # folder | zip | npz | torchvision | builtin
    path: Path | None = None
    name: str = ""
    split: str = "train"


def _parse_spec(spec: str) -> _Spec:
    text = spec.strip()
    if not text:
        raise DataError(f"the data spec is empty; give {_ACCEPTED}")
    if text.startswith("builtin:"):
        name = text.removeprefix("builtin:")
        if name not in BUILTINS:
            raise ConfigError(unknown_name_message("built-in data set", name, BUILTINS))
        base, _, split = name.partition(":")
        return _Spec("builtin", name=base, split=split or "train")
    if text.startswith("torchvision:"):
        return _parse_torchvision(text)
    path = Path(text).expanduser()
    try:
        mode = path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        raise DataError(f"data not found: {path}") from None
    except OSError as e:
        raise DataError(f"cannot read data {path}: {_reason(e)}") from None
    if stat.S_ISDIR(mode):
        return _Spec("folder", path=path)
    suffix = path.suffix.lower()
    if suffix not in (".zip", ".npz"):
        raise DataError(f"unsupported data file {str(path)!r}: expected {_ACCEPTED}")
    # A FIFO or device named *.npz would block or never end: refused before it is opened.
    return _Spec(suffix[1:], path=regular_file(path, what="data file", error=DataError))


def _reason(e: OSError) -> str:
    """The one-line cause of an OSError (``permission denied``, ``Input/output error``)."""
    if isinstance(e, PermissionError):
        return "permission denied"
    return e.strerror or str(e)


def _parse_torchvision(text: str) -> _Spec:
    usage = "use torchvision:NAME:ROOT or torchvision:NAME:ROOT:SPLIT (SPLIT train or test)"
    name, _, rest = text.removeprefix("torchvision:").partition(":")
    split = "train"
    head, sep, last = rest.rpartition(":")
    # A bare word after the last colon is a split; anything else (C:\data, /a:b/c) is the root.
    if sep and head and re.fullmatch(r"[A-Za-z]+", last):
        if last not in _SPLITS:
            raise ConfigError(f"unknown split {last!r} in {text!r}: {usage}")
        rest, split = head, last
    if not name or not rest:
        raise ConfigError(f"incomplete torchvision data spec {text!r}: {usage}")
    by_lower = {n.lower(): n for n in TORCHVISION_DATASETS}
    if name.lower() not in by_lower:
        raise ConfigError(
            unknown_name_message("torchvision data set", name, TORCHVISION_DATASETS)
            + " (other torchvision data sets: save them as a class-folder tree or an .npz)"
        )
    return _Spec(
        "torchvision", path=Path(rest).expanduser(), name=by_lower[name.lower()], split=split
    )


# --------------------------------------------------------------------------------- loading
def load_data(spec: str, *, image_size: tuple[int, int] | None = None) -> ImageSet:
    """Load the labelled images of ``spec`` (see the module docstring for the forms).

    ``image_size`` (H, W) applies only to sets whose images differ in size: they are all resized
    to it (default: the first image's size). Sets of one size keep it; resizing for a model is
    :meth:`Preprocess.to_unit`'s job. Raises DataError (missing, unreadable, unsafe or empty
    data) or ConfigError (unknown builtin or torchvision name, bad split).
    """
    size = None if image_size is None else limits.model_input_size(image_size)
    parsed = _parse_spec(spec)
    if parsed.kind == "folder":
        images, labels, classes = _load_folder(parsed.path, size)
    elif parsed.kind == "zip":
        images, labels, classes = _load_zip(parsed.path, size)
    elif parsed.kind == "npz":
        images, labels, classes = _load_npz(parsed.path)
    elif parsed.kind == "torchvision":
        images, labels, classes = _load_torchvision(parsed, size)
    else:
        images, labels, classes = _load_builtin(parsed)
    if images.shape[0] == 0:
        raise DataError(f"data {spec!r} contains no images")
    return ImageSet(images, labels, tuple(classes), spec)


class _Stack:
    """Accumulates Pillow images into one uint8 [N, C, H, W] tensor, unifying size and mode.

    ``count`` is how many images will be added: with the first image's size (and again when a
    colour image joins grey ones) the final tensor's bytes are checked against the memory budget
    before it grows. ``where`` names the data set in that error.
    """

    def __init__(self, image_size: tuple[int, int] | None, count: int, where: str):
        self._size = None if image_size is None else (image_size[1], image_size[0])  # PIL: W, H
        self._count = count
        self._where = where
        self._channels = 0
        self._first: tuple[int, int] | None = None
        self._target: tuple[int, int] | None = None  # set once the sizes turn out to differ
        self._arrays: list[np.ndarray] = []

    def add(self, img: Image.Image, where: str) -> None:
        """Decode ``img`` (opened lazily: only its header is read so far) after checking its
        size; ``where`` names the image in errors."""
        limits.check_image_dimensions(img.size, where)
        channels = 1 if img.mode in _GREY_MODES else 3
        if channels > self._channels:
            self._channels = channels
            w, h = self._first or img.size
            # A set of one size keeps it; a mixed set takes image_size: budget the larger.
            pixels = max(w * h, math.prod(self._size)) if self._size else w * h
            limits.check_decoded_bytes(self._count * channels * pixels, self._where)
        img = img.convert("L" if img.mode in _GREY_MODES else "RGB")
        if self._first is None:
            self._first = img.size
        elif self._target is None and img.size != self._first:
            self._target = self._size or self._first
            if self._target != self._first:
                self._arrays = [_resized(a, self._target) for a in self._arrays]
        if self._target is not None and img.size != self._target:
            img = img.resize(self._target, Image.Resampling.BILINEAR)
        self._arrays.append(np.asarray(img))

    def tensor(self) -> torch.Tensor:
        """The images as uint8 [N, C, H, W], copied one by one into a tensor allocated once (each
        decoded array is freed as it is copied: the peak stays about one data set)."""
        arrays = self._arrays
        if not arrays:
            return torch.empty(0, 1, 1, 1, dtype=torch.uint8)
        h, w = arrays[0].shape[:2]
        out = np.empty((len(arrays), self._channels, h, w), dtype=np.uint8)
        for i, a in enumerate(arrays):
            # A grey image among colour ones broadcasts to three channels.
            out[i] = a[None] if a.ndim == 2 else a.transpose(2, 0, 1)
            arrays[i] = None  # type: ignore[call-overload]
        self._arrays = []
        return torch.from_numpy(out)


def _resized(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return np.asarray(Image.fromarray(array).resize(size, Image.Resampling.BILINEAR))


_UNREADABLE = (OSError, ValueError, SyntaxError, EOFError)


def _add_image(stack: _Stack, source: Path | io.BytesIO, where: str) -> None:
    """Decode the image file ``source`` into ``stack``; DataError naming ``where`` (``image
    '/d/cat/0.png'``) if it cannot be read or is too large."""
    try:
        with Image.open(source) as img:
            stack.add(img, where)
    except Image.DecompressionBombError:
        raise limits.image_bomb_error(where) from None
    except _UNREADABLE as e:
        raise DataError(f"cannot read {where}: {e}; fix or remove it") from None


@functools.cache
def _image_extensions() -> frozenset[str]:
    return frozenset(
        ext.lower() for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN
    )


def _skipped(name: str) -> bool:
    return name.startswith(".") or name in _SKIPPED_NAMES


def _is_image(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in _image_extensions()


def _layout(
    files: list[str], dirs: set[str], where: str
) -> tuple[list[str], list[tuple[str, int]]]:
    """Classes (sorted top-level folders) and (relative path, label) of the image files in them;
    ``files`` are '/'-separated relative paths, ``dirs`` the top-level folder names."""
    classes = sorted(dirs | {f.split("/", 1)[0] for f in files if "/" in f})
    index = {c: i for i, c in enumerate(classes)}
    images = [(f, index[f.split("/", 1)[0]]) for f in sorted(files) if "/" in f and _is_image(f)]
    if not classes and any(_is_image(f) for f in files):
        raise DataError(
            f"{where} has images but no class folders: put each class's images in a sub-folder "
            "named after the class (root/<class>/<image>)"
        )
    if not images:
        raise DataError(f"{where} contains no images (expected root/<class>/<image> files)")
    return classes, images


def _walk(root: Path) -> tuple[list[str], set[str]]:
    """Non-hidden files under ``root`` ('/'-separated, relative) and its top-level folders.

    A folder that cannot be listed is a DataError (never an empty class). Entries that are no
    regular file (FIFOs, sockets, devices) are left out unless named like an image: those stay,
    to be refused by name when read.
    """

    def refuse(e: OSError) -> None:
        if Path(e.filename or root) == root:
            raise DataError(f"cannot read data folder {root}: {_reason(e)}")
        raise DataError(f"cannot read folder {e.filename} of data folder {root}: {_reason(e)}")

    files: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root, onerror=refuse):
        dirnames[:] = sorted(d for d in dirnames if not _skipped(d))
        rel = Path(dirpath).relative_to(root).as_posix()
        prefix = "" if rel == "." else rel + "/"
        files += [
            prefix + f
            for f in sorted(filenames)
            if not _skipped(f) and (_is_image(f) or _is_regular(Path(dirpath) / f))
        ]
    tops = {p.name for p in root.iterdir() if p.is_dir() and not _skipped(p.name)}
    return files, tops


def _is_regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(path.stat().st_mode)
    except OSError:
        return True  # kept: reading it names the problem (regular_file's message)


def _load_folder(
    root: Path, size: tuple[int, int] | None
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    files, tops = _walk(root)
    classes, images = _layout(files, tops, f"data folder '{root}'")
    stack = _Stack(size, len(images), f"data folder '{root}'")
    for rel, _ in images:
        path = regular_file(root / rel, what="image", error=DataError)
        _add_image(stack, path, f"image '{path}'")
    labels = torch.tensor([label for _, label in images], dtype=torch.int64)
    return stack.tensor(), labels, classes


def _load_zip(
    path: Path, size: tuple[int, int] | None
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise DataError(f"cannot read '{path}' as a zip archive: {e}") from None
    with zf:
        infos = zf.infolist()
        limits.check_zip_members(infos)
        members = {}
        dirs = set()
        for info in infos:
            parts = [p for p in re.split(r"[\\/]", info.filename) if p]
            if not parts or any(_skipped(p) for p in parts):
                continue
            if info.is_dir():
                dirs.add("/".join(parts))
            else:
                members["/".join(parts)] = info
        # One top folder holding the class folders: strip it (but not a lone class folder).
        tops = {m.split("/", 1)[0] for m in members}
        if len(tops) == 1 and all(m.count("/") >= 2 for m in members):
            top = next(iter(tops)) + "/"
            members = {m.removeprefix(top): info for m, info in members.items()}
            dirs = {d.removeprefix(top) for d in dirs if d.startswith(top)}
        top_dirs = {d.split("/", 1)[0] for d in dirs if d}
        classes, images = _layout(list(members), top_dirs, f"zip '{path}'")
        stack = _Stack(size, len(images), f"zip '{path}'")
        for rel, _ in images:
            info = members[rel]
            where = f"image member {info.filename!r} of '{path}'"
            try:
                raw = zf.read(info)
            except (zipfile.BadZipFile, RuntimeError, OSError, EOFError) as e:
                raise DataError(f"cannot read {where}: {e}; fix or remove it") from None
            _add_image(stack, io.BytesIO(raw), where)
    labels = torch.tensor([label for _, label in images], dtype=torch.int64)
    return stack.tensor(), labels, classes


_NPZ_KEYS = ("x", "y", "classes")


def _npy_header(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) from the .npy header of an .npz member, reading only the header."""
    with zf.open(info) as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f"member {info.filename!r} has .npy format version {version}")
    return tuple(int(s) for s in shape), dtype


def _load_npz(path: Path) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    save_hint = "save it with np.savez(path, x=images, y=labels)"
    unreadable = f"cannot read '{path}' as an .npz of arrays (x, y, optional classes as strings)"
    try:
        with zipfile.ZipFile(path) as zf:
            infos = {i.filename.removesuffix(".npy"): i for i in zf.infolist()}
            members = {k: infos[k] for k in _NPZ_KEYS if k in infos}
            headers = {k: _npy_header(zf, info) for k, info in members.items()}
            if "x" not in headers:
                raise DataError(f"'{path}' has no 'x' array (images); {save_hint}")
            if "y" not in headers:
                raise DataError(f"'{path}' has no 'y' array (labels); {save_hint}")
            _check_npz_headers(headers, path)
            arrays = {}
            for key, info in members.items():
                with zf.open(info) as f:
                    arrays[key] = np.lib.format.read_array(f, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, RuntimeError) as e:
        raise DataError(f"{unreadable}: {e}") from None
    x, y = arrays["x"], arrays["y"]
    n = len(y)
    if n and y.min() < 0:
        raise DataError(f"'{path}': labels must be >= 0, got {int(y.min())}")
    top = int(y.max()) if n else -1
    images = _npz_pixels(x, path)
    images = images[:, None] if images.ndim == 3 else images.transpose(0, 3, 1, 2)
    if "classes" in arrays:
        classes = _npz_class_names(arrays["classes"], path)
        if len(classes) <= top:
            raise DataError(
                f"'{path}': classes names {len(classes)} classes but y goes up to {top}"
            )
    else:
        # Labels up to 2**64 would name that many classes: bounded before the names are made.
        limits.check_class_count(top + 1, n, f"'{path}'", found=f"labels go up to {top:,}")
        classes = [str(i) for i in range(top + 1)]
    return (
        torch.from_numpy(np.ascontiguousarray(images)),
        torch.from_numpy(y.astype(np.int64)),
        classes,
    )


def _check_npz_headers(headers: dict[str, tuple[tuple[int, ...], np.dtype]], path: Path) -> None:
    """Shapes, dtypes, image sizes, class count and the memory to decode, from the headers."""
    shape, dtype = headers["x"]
    if not (len(shape) == 3 or (len(shape) == 4 and shape[-1] in (1, 3))):
        raise DataError(
            f"'{path}': x has shape {shape}; expected (N, H, W) or (N, H, W, C) with C 1 or 3 "
            "(channels last)"
        )
    n = shape[0]
    y_shape, y_dtype = headers["y"]
    if y_shape != (n,) or not np.issubdtype(y_dtype, np.integer):
        raise DataError(
            f"'{path}': y must hold {n} integer labels (one per image), got {y_dtype} {y_shape}"
        )
    limits.check_image_dimensions((shape[2], shape[1]), f"each image of x in '{path}'")
    pixels = math.prod(shape)
    out_itemsize = 1 if dtype == np.uint8 or np.issubdtype(dtype, np.integer) else 4
    # x as stored and the tensor it becomes, the labels, and the class names.
    needed = pixels * (dtype.itemsize + out_itemsize) + n * (y_dtype.itemsize + 8)
    if "classes" in headers:
        c_shape, c_dtype = headers["classes"]
        if len(c_shape) != 1:
            raise DataError(f"'{path}': classes must be a 1-D array of names, got shape {c_shape}")
        limits.check_class_count(
            c_shape[0], n, f"'{path}'", found=f"'classes' holds {c_shape[0]:,} names"
        )
        needed += c_shape[0] * c_dtype.itemsize
    limits.check_decoded_bytes(needed, f"'{path}'")


def _npz_class_names(names: np.ndarray, path: Path) -> list[str]:
    """Class names as str: bytes must be UTF-8."""
    out = []
    for i, c in enumerate(names.tolist()):
        if isinstance(c, bytes):
            try:
                c = c.decode()
            except UnicodeDecodeError:
                raise DataError(
                    f"'{path}': class name {i} is not UTF-8 text ({c[:40]!r}); save the names "
                    "as str"
                ) from None
        out.append(str(c))
    return out


def _npz_pixels(x: np.ndarray, path: Path) -> np.ndarray:
    """uint8 as is; other integers in 0..255 -> uint8; floats in [0, 1] -> float32 as is;
    floats in [0, 255] -> float32 / 255."""
    if x.dtype == np.uint8:
        return x
    if x.size == 0:
        return x.astype(np.uint8)
    if np.issubdtype(x.dtype, np.integer):
        lo, hi = int(x.min()), int(x.max())
        if lo < 0 or hi > 255:
            raise DataError(f"'{path}': integer x must lie in 0..255, got {lo}..{hi}")
        return x.astype(np.uint8)
    if not np.issubdtype(x.dtype, np.floating):
        raise DataError(f"'{path}': x has dtype {x.dtype}; expected uint8 or float")
    if not np.isfinite(x).all():
        raise DataError(f"'{path}': x holds NaN or infinite values")
    lo, hi = float(x.min()), float(x.max())
    if lo >= 0 and hi <= 1:
        return x.astype(np.float32)
    if lo >= 0 and hi <= 255:
        return (x / 255).astype(np.float32)
    raise DataError(f"'{path}': float x must lie in [0, 1] or [0, 255], got [{lo:g}, {hi:g}]")


def _torchvision_missing(spec: _Spec) -> DataError:
    entry = TORCHVISION_DATASETS[spec.name]
    expected = entry.folder.format(split=spec.split)
    return DataError(
        f"torchvision dataset {spec.name} not found under {spec.path}: expected {expected} there; "
        "place the files there (download elsewhere) — nothing is downloaded"
    )


def _load_torchvision(
    spec: _Spec, size: tuple[int, int] | None
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    import torchvision.datasets

    entry = TORCHVISION_DATASETS[spec.name]
    if not spec.path.is_dir():
        raise _torchvision_missing(spec)
    kwargs: dict[str, Any] = dict(entry.extra)
    if entry.split_arg == "train":
        kwargs["train"] = spec.split == "train"
    else:
        kwargs["split"] = entry.train_split if spec.split == "train" else spec.split
    try:
        ds = getattr(torchvision.datasets, spec.name)(str(spec.path), download=False, **kwargs)
    except ImportError as e:
        raise DataError(
            f"torchvision dataset {spec.name} needs the Python package {e.name!r}: install it"
        ) from None
    except (RuntimeError, OSError, ValueError):
        raise _torchvision_missing(spec) from None
    array = getattr(ds, "data", None)
    images = torch.as_tensor(array) if isinstance(array, np.ndarray | torch.Tensor) else None
    if images is not None and images.dtype == torch.uint8 and images.ndim in (3, 4):
        if images.ndim == 3:
            images = images[:, None]
        elif images.shape[1] not in (1, 3):  # channels last (CIFAR)
            images = images.permute(0, 3, 1, 2)
        targets = getattr(ds, "targets", None)
        targets = getattr(ds, "labels", None) if targets is None else targets
        labels = torch.as_tensor(np.asarray(targets), dtype=torch.int64)
        images = images.contiguous()
    else:
        # File-based sets (GTSRB, Flowers102, ...): decode every image like a folder. Their
        # loader decodes before we see the image: Pillow's own bomb check guards that step.
        where = f"torchvision dataset {spec.name} under {spec.path}"
        stack, targets = _Stack(size, len(ds), where), []
        for i in range(len(ds)):
            try:
                img, target = ds[i]
            except Image.DecompressionBombError:
                raise limits.image_bomb_error(f"image {i} of {where}") from None
            except _UNREADABLE as e:
                raise DataError(f"cannot read image {i} of {where}: {e}") from None
            stack.add(img, f"image {i} of {where}")
            targets.append(int(target))
        images, labels = stack.tensor(), torch.tensor(targets, dtype=torch.int64)
    n_classes = int(labels.max()) + 1 if len(labels) else 0
    names = list(getattr(ds, "classes", None) or [])
    if len(names) >= n_classes:
        return images, labels, [str(c) for c in names]
    where = f"torchvision dataset {spec.name} under {spec.path}"
    limits.check_class_count(
        n_classes, len(labels), where, found=f"labels go up to {n_classes - 1:,}"
    )
    return images, labels, [str(i) for i in range(n_classes)]


def _load_builtin(spec: _Spec) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    if spec.name == "fashion-mnist":
        image_file, label_file = _fashion_files(spec.split)
        x, y = _read_idx(image_file), _read_idx(label_file)
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y) or (len(y) and y.max() >= 10):
            raise DataError(
                f"Fashion-MNIST files {image_file} and {label_file} do not match: images "
                f"{x.shape}, labels {y.shape}; reinstall dataset-fashion-mnist"
            )
        images = torch.from_numpy(x.copy()[:, None])
        return images, torch.from_numpy(y.astype(np.int64)), list(FASHION_MNIST_CLASSES)
    if spec.name == "digits":
        # synthetic's digits: load_digits' 0..16 counts as round(v * 255 / 16), [1797, 1, 8, 8].
        x, y = synthetic._digits()
        return torch.from_numpy(x.copy()), torch.from_numpy(y.copy()), [str(d) for d in range(10)]
    x, y, classes = synthetic.SYNTHETIC[spec.name]()
    return torch.from_numpy(x), torch.from_numpy(y), list(classes)


def _fashion_dirs() -> list[Path]:
    dirs = []
    if os.environ.get(_FASHION_DIR_ENV):
        dirs.append(Path(os.environ[_FASHION_DIR_ENV]).expanduser())
    dirs.append(_FASHION_DEFAULT_DIR)
    if os.environ.get(_FASHION_ROOT_ENV):
        dirs.append(Path(os.environ[_FASHION_ROOT_ENV]).expanduser() / "FashionMNIST" / "raw")
    return dirs


def _fashion_files(split: str) -> tuple[Path, Path]:
    """(images, labels) IDX files of a Fashion-MNIST split, gzipped (Debian) or raw
    (torchvision), from the first folder of :func:`_fashion_dirs` that has both."""
    prefix = "train" if split == "train" else "t10k"
    dirs = _fashion_dirs()
    for folder in dirs:
        found = []
        for kind in ("images-idx3", "labels-idx1"):
            name = f"{prefix}-{kind}-ubyte"
            found += [p for p in (folder / name, folder / f"{name}.gz") if p.is_file()][:1]
        if len(found) == 2:
            return found[0], found[1]
    looked = ", ".join(str(d) for d in dirs)
    raise DataError(
        "Fashion-MNIST is not installed: run `sudo apt-get install dataset-fashion-mnist` or set "
        f"{_FASHION_DIR_ENV} to a folder with its IDX files (looked in: {looked})"
    )


def _read_idx(path: Path) -> np.ndarray:
    """An IDX file of unsigned bytes (gzipped or not) as a numpy array of its dimensions."""
    bad = f"'{path}' is not an IDX file of unsigned bytes"
    try:
        raw = regular_file(path, what="IDX file", error=DataError).read_bytes()
    except OSError as e:
        raise DataError(f"cannot read IDX file {path}: {_reason(e)}") from None
    if raw[:2] == b"\x1f\x8b":
        budget, _ = limits.memory_budget()
        try:
            with gzip.GzipFile(fileobj=io.BytesIO(raw)) as gz:
                raw = gz.read(budget + 1)  # bounded: a gzip bomb stops at the budget
        except (OSError, EOFError) as e:
            raise DataError(f"{bad} (broken gzip: {e})") from None
        if len(raw) > budget:
            limits.check_decoded_bytes(len(raw), f"IDX file '{path}'")
    if len(raw) < 4 or raw[:3] != b"\x00\x00\x08":
        raise DataError(bad)
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{bad} (truncated header)")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    count = math.prod(dims)
    if len(raw) - header != count:
        raise DataError(f"{bad} (expected {count:,} values for shape {dims})")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


# --------------------------------------------------------------------------------- fingerprints
def _tree_digest(path: Path) -> str:
    """A file's SHA-256, or for a folder the SHA-256 over its top-level folder names and the
    sorted (relative path, SHA-256) of its non-hidden files."""
    if not path.is_dir():
        return _file_digest(path)
    files, tops = _walk(path)
    entries = [["dir", d] for d in sorted(tops)] + [
        ["file", f, _file_digest(path / f)] for f in files
    ]
    return hashlib.sha256(json.dumps(entries).encode()).hexdigest()


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
    mtime), so a repeated call only stats files. Raises the same errors as :func:`load_data` for
    a spec that cannot be found.
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


# --------------------------------------------------------------------------------- preprocessing
_LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601, as Pillow's RGB -> L


def _per_channel(values: Any, channels: int, what: str, *, positive: bool) -> tuple[float, ...]:
    try:
        vals = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        vals = ()
    if len(vals) not in (1, channels) or not all(math.isfinite(v) for v in vals):
        raise ConfigError(
            f"{what} must be 1 or {channels} finite numbers (one per channel), got {values!r}"
        )
    if positive and min(vals) <= 0:
        raise ConfigError(f"{what} values must be positive, got {values!r}")
    return vals * channels if len(vals) == 1 else vals


@dataclass(frozen=True)
class Preprocess:
    """What the model's input looks like: size ``image_size`` (H, W), ``channels`` (1 or 3),
    and per-channel ``mean``/``std`` for :meth:`normalize` (default 0.5 / 0.5, the reference's
    ``Normalize(0.5, 0.5)``). One mean/std value is expanded to every channel, so equal settings
    compare equal."""

    image_size: tuple[int, int]
    channels: int = 3
    mean: tuple[float, ...] = (0.5,)
    std: tuple[float, ...] = (0.5,)

    def __post_init__(self) -> None:
        size = limits.model_input_size(self.image_size)
        if self.channels not in (1, 3) or isinstance(self.channels, bool):
            raise ConfigError(f"channels must be 1 or 3, got {self.channels!r}")
        c = int(self.channels)
        object.__setattr__(self, "image_size", size)
        object.__setattr__(self, "channels", c)
        object.__setattr__(self, "mean", _per_channel(self.mean, c, "mean", positive=False))
        object.__setattr__(self, "std", _per_channel(self.std, c, "std", positive=True))

    def to_unit(
        self, images: torch.Tensor, *, device: torch.device | str | None = None
    ) -> torch.Tensor:
        """uint8 or float images [N, 1|3, H', W'] -> float32 [N, channels, H, W] in [0, 1].

        uint8 is divided by 255, float is used as is. Resized (bilinear, antialiased) only when
        the size differs; grey -> RGB repeats the channel, RGB -> grey is the BT.601 luma
        0.299 R + 0.587 G + 0.114 B. Moved to ``device`` first (uint8 is 4x cheaper to move).
        """
        if images.ndim != 4 or images.shape[1] not in (1, 3):
            raise DataError(f"images must be [N, C, H, W] with C 1 or 3, got {list(images.shape)}")
        if device is not None:
            images = images.to(device)
        if images.dtype == torch.uint8:
            x = images.to(torch.float32) / 255
        elif images.is_floating_point():
            x = images.to(torch.float32)
        else:
            raise DataError(f"images must be uint8 or float, got {images.dtype}")
        if x.shape[1] == 3 and self.channels == 1:  # shrink channels before resizing: cheaper
            weights = torch.tensor(_LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
            x = (x * weights).sum(dim=1, keepdim=True)
        if tuple(x.shape[-2:]) != self.image_size:
            x = torch.nn.functional.interpolate(
                x, size=self.image_size, mode="bilinear", align_corners=False, antialias=True
            )
        if x.shape[1] == 1 and self.channels == 3:
            x = x.expand(-1, 3, -1, -1).contiguous()
        return x

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """(x - mean) / std per channel, for float [N, channels, H, W]."""
        if x.ndim != 4 or x.shape[1] != self.channels:
            raise DataError(f"expected [N, {self.channels}, H, W] inputs, got {list(x.shape)}")
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        return (x - mean) / std

    def as_dict(self) -> dict[str, Any]:
        """Canonical JSON-ready form: image_size [H, W], channels, per-channel mean and std."""
        return {
            "image_size": list(self.image_size),
            "channels": self.channels,
            "mean": list(self.mean),
            "std": list(self.std),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Preprocess:
        """Inverse of :meth:`as_dict` (``mean``/``std`` optional); ConfigError on other keys."""
        keys = {"image_size", "channels", "mean", "std"}
        if not isinstance(d, dict) or "image_size" not in d or set(d) - keys:
            raise ConfigError(
                f"preprocessing must be a mapping with image_size and optional channels, mean, "
                f"std; got {d!r}"
            )
        return cls(**d)


def parse_floats(text: str, *, name: str, positive: bool = False) -> tuple[float, ...]:
    """``"0.5"`` or ``"0.229,0.224,0.225"`` -> floats; ``positive`` rejects values <= 0 (for a
    std). ``name`` is the flag named in the ConfigError."""
    try:
        values = tuple(float(v) for v in str(text).split(","))
        ok = all(math.isfinite(v) for v in values)
    except ValueError:
        ok = False
    if not ok:
        raise ConfigError(
            f"{name} must be one number or comma-separated numbers (e.g. 0.5 or "
            f"0.229,0.224,0.225), got {text!r}"
        )
    if positive and min(values) <= 0:
        raise ConfigError(f"{name} values must be positive, got {text!r}")
    return values


def parse_image_size(text: str, *, name: str = "--image-size") -> tuple[int, int]:
    """``"32"`` -> (32, 32); ``"32x28"`` or ``"32,28"`` -> (32, 28) as (height, width), each at
    most :data:`~resque_core.limits.MAX_INPUT_SIDE`."""
    m = re.fullmatch(r"\s*(\d+)\s*(?:[x,X]\s*(\d+)\s*)?", str(text))
    size = (int(m[1]), int(m[2] or m[1])) if m else (0, 0)
    if min(size) < 1:
        raise ConfigError(
            f"{name} must be N or HxW with positive integers (e.g. 32 or 32x28), got {text!r}"
        )
    return limits.model_input_size(size, name=name)


# --------------------------------------------------------------------------------- index splits
def _labels_1d(labels: np.ndarray) -> np.ndarray:
    y = np.asarray(labels)
    if y.ndim != 1:
        raise DataError(f"labels must be a 1-D array, got shape {y.shape}")
    return y


def stratified_split(
    labels: np.ndarray, fractions: Sequence[float] = (0.5, 0.3, 0.2), *, seed: int
) -> list[np.ndarray]:
    """Split sample indices into ``len(fractions)`` parts with every class's share.

    Per class (in sorted label order), a permutation from ``default_rng(seed)`` is cut at
    ``floor(n_c * cumulative fraction + 0.5)`` (round half up; the last cut is n_c), so each
    part holds ``n_c * fraction`` samples of class c within one. Every index lands in exactly one
    part; parts are sorted int64 arrays. ConfigError unless fractions are >= 0 and sum to 1.
    """
    fr = np.asarray(fractions, dtype=np.float64)
    if fr.ndim != 1 or len(fr) == 0 or (fr < 0).any() or abs(fr.sum() - 1) > 1e-9:
        raise ConfigError(
            f"split fractions must be non-negative numbers that sum to 1, got {tuple(fractions)}"
        )
    y = _labels_1d(labels)
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[] for _ in fr]
    cumulative = np.cumsum(fr)
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        cuts = np.floor(cumulative * len(idx) + 0.5).astype(np.int64)
        cuts[-1] = len(idx)
        for k, piece in enumerate(np.split(idx, cuts[:-1])):
            parts[k].append(piece)
    return [
        np.sort(np.concatenate(p)).astype(np.int64) if p else np.empty(0, np.int64) for p in parts
    ]


def subsample_per_class(labels: np.ndarray, n: int | None, *, seed: int) -> np.ndarray:
    """Sorted positions of at most ``n`` samples per class, drawn with ``default_rng(seed)``
    (classes in sorted order); ``None`` = all positions."""
    y = _labels_1d(labels)
    if n is None:
        return np.arange(len(y), dtype=np.int64)
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ConfigError(f"samples per class must be a positive integer or None, got {n!r}")
    rng = np.random.default_rng(seed)
    keep = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        keep.append(idx if len(idx) <= n else rng.choice(idx, size=n, replace=False))
    return np.sort(np.concatenate(keep)).astype(np.int64) if keep else np.empty(0, np.int64)


def synthetic_shift_roles(labels: np.ndarray, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The reference's roles for a synthetic shift, from a stratified 50/30/20 split:
    (clean = parts 0 + 2, shifted = parts 1 + 2), each sorted. Part 2 is in both roles."""
    first, second, shared = stratified_split(labels, (0.5, 0.3, 0.2), seed=seed)
    return np.sort(np.concatenate([first, shared])), np.sort(np.concatenate([second, shared]))
