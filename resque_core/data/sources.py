"""Labelled image data sets from offline sources: the spec forms and their loaders.

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
- ``builtin:NAME``: see :data:`~resque_core.data.specs.BUILTINS` (scikit-learn's digits,
  Fashion-MNIST from its Debian package, the demo sets of :mod:`resque_core.data.synthetic`).

Images keep their native size and channels. Sets whose images differ in size (folders, zips,
file-based torchvision sets) are resized with Pillow's bilinear filter (antialiased when
shrinking) to ``image_size`` or, by default, to the first image's size; greyscale images (Pillow
modes 1, L, LA) stay 1-channel unless the set mixes them with colour ones, then all become RGB.

Only regular files are opened (a FIFO or device is refused, never read); the size limits of
:mod:`resque_core.limits` (image width, height and pixels, decoded bytes against free memory,
class count against the number of images) are checked before the memory is allocated.
"""

from __future__ import annotations

import io
import math
import os
import re
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from .. import limits
from .._util import regular_file
from ..errors import DataError
from .builtins import _load_builtin, _load_torchvision
from .decode import Opener, _decode_rows, _Early, _plan, _read_headers, unreadable
from .images import ImageSet, LazyImageSet
from .listing import _layout, _skipped, _walk
from .specs import _parse_spec

__all__ = ["load_data", "open_data"]


def load_data(spec: str, *, image_size: tuple[int, int] | None = None) -> ImageSet:
    """Load the labelled images of ``spec`` (see the module docstring for the forms).

    ``image_size`` (H, W) applies only to sets whose images differ in size: they are all resized
    to it (default: the first image's size). Sets of one size keep it; resizing for a model is
    :meth:`~resque_core.data.preprocess.Preprocess.to_unit`'s job. Raises DataError (missing,
    unreadable, unsafe or empty data) or ConfigError (unknown builtin or torchvision name, bad
    split).
    """
    return open_data(spec, image_size=image_size).full()


def open_data(spec: str, *, image_size: tuple[int, int] | None = None) -> LazyImageSet:
    """The labels and class names of ``spec``, its images decoded when asked for
    (:meth:`~resque_core.data.images.LazyImageSet.rows`): folders and zips read only the image
    headers here, so a subsample decodes only its own images, in parallel threads, and gets the
    rows a decode of the whole set would give. Other forms come decoded. Same arguments and
    errors as :func:`load_data`.
    """
    size = None if image_size is None else limits.model_input_size(image_size)
    parsed = _parse_spec(spec)
    if parsed.kind == "folder":
        lazy = _open_folder(parsed.path, size, spec)
    elif parsed.kind == "zip":
        lazy = _open_zip(parsed.path, size, spec)
    else:
        if parsed.kind == "npz":
            images, labels, classes = _load_npz(parsed.path)
        elif parsed.kind == "torchvision":
            images, labels, classes = _load_torchvision(parsed, size)
        else:
            images, labels, classes = _load_builtin(parsed)
        lazy = LazyImageSet(labels, tuple(classes), spec, images=images)
    if len(lazy) == 0:
        raise DataError(f"data {spec!r} contains no images")
    return lazy


def _lazy_files(
    openers: list[Opener],
    wheres: list[str],
    labels: list[int],
    classes: list[str],
    size: tuple[int, int] | None,
    spec: str,
    where: str,
) -> LazyImageSet:
    """A lazily decoded set of image files: headers read now (small images decoded with them),
    pixels when asked for."""
    early = _Early()
    plan = _plan(_read_headers(openers, wheres, early), size)

    def decode(positions: np.ndarray) -> torch.Tensor:
        picked = [int(p) for p in positions]
        return _decode_rows(
            [openers[p] for p in picked],
            [wheres[p] for p in picked],
            plan,
            where,
            early=[early.pop(p) for p in picked],
        )

    return LazyImageSet(
        torch.tensor(labels, dtype=torch.int64),
        tuple(classes),
        spec,
        image_shape=plan.shape,
        decode=decode,
    )


def _open_folder(root: Path, size: tuple[int, int] | None, spec: str) -> LazyImageSet:
    files, tops = _walk(root)
    where = f"data folder '{root}'"
    classes, images = _layout(files, tops, where)

    def opener(path: str) -> Callable[[], Path]:
        return lambda: regular_file(path, what="image", error=DataError)

    # Paths joined as strings once (a Path per image costs more than reading a small one).
    paths = [os.path.join(root, rel) for rel, _ in images]
    return _lazy_files(
        [opener(path) for path in paths],
        [f"image '{path}'" for path in paths],
        [label for _, label in images],
        classes,
        size,
        spec,
        where,
    )


def _open_zip(path: Path, size: tuple[int, int] | None, spec: str) -> LazyImageSet:
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise DataError(f"cannot read '{path}' as a zip archive: {e}") from None
    # Kept open while the set lives (members are read when decoded); ZipFile reads are
    # thread-safe. A zip that changes on disk meanwhile is read as it was opened.
    try:
        return _zip_members(zf, path, size, spec)
    except BaseException:
        zf.close()
        raise


def _zip_members(
    zf: zipfile.ZipFile, path: Path, size: tuple[int, int] | None, spec: str
) -> LazyImageSet:
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

    def opener(info: zipfile.ZipInfo) -> Callable[[], io.BytesIO]:
        def read() -> io.BytesIO:
            try:
                return io.BytesIO(zf.read(info))
            except (zipfile.BadZipFile, RuntimeError, OSError, EOFError) as e:
                where = f"image member {info.filename!r} of '{path}'"
                raise unreadable(where, e) from None

        return read

    return _lazy_files(
        [opener(members[rel]) for rel, _ in images],
        [f"image member {members[rel].filename!r} of '{path}'" for rel, _ in images],
        [label for _, label in images],
        classes,
        size,
        spec,
        f"zip '{path}'",
    )


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
