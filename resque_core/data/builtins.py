"""Data sets that need no file of the user's: torchvision sets already on disk, Fashion-MNIST
from its Debian package (IDX files), scikit-learn's digits and the demo sets of
:mod:`resque_core.data.synthetic`. Nothing is downloaded.
"""

from __future__ import annotations

import gzip
import io
import math
import os
import struct
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from .. import limits
from .._util import regular_file
from ..errors import DataError
from . import synthetic
from .decode import _UNREADABLE, _Stack
from .specs import TORCHVISION_DATASETS, _reason, _Spec

if TYPE_CHECKING:  # torch is imported by the loaders: finding the files needs none
    import torch

__all__ = ["FASHION_MNIST_CLASSES"]

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
    import torch
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
    import torch

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
