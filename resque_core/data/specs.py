"""Data specs: the names a spec may use and parsing a spec string into what it names.

The spec forms are described in :mod:`resque_core.data.sources`. :data:`BUILTINS` and
:data:`TORCHVISION_DATASETS` are the ``builtin:NAME`` and ``torchvision:NAME`` catalogues; a
parsed spec (kind, path, name, split) is what the loaders and the fingerprint read.
"""

from __future__ import annotations

import re
import stat
from dataclasses import dataclass
from pathlib import Path

from .._util import regular_file, unknown_name_message
from ..errors import ConfigError, DataError
from . import synthetic

__all__ = ["BUILTINS", "TORCHVISION_DATASETS"]

BUILTINS: dict[str, str] = {
    "digits": "scikit-learn's 1,797 real handwritten 8x8 digits (10 classes)",
    "fashion-mnist": "Fashion-MNIST training split, 60,000 28x28 images (Debian package)",
    "fashion-mnist:test": "Fashion-MNIST test split, 10,000 28x28 images (Debian package)",
    **synthetic.DESCRIPTIONS,
}
"""``builtin:NAME`` data sets (name -> one-line description); nothing is downloaded."""


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
_ACCEPTED = (
    "a folder with one sub-folder per class, a .zip of such a folder, an .npz with arrays x and "
    "y, builtin:NAME or torchvision:NAME:ROOT[:train|test]"
)


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
