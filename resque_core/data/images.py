"""Labelled images in memory: :class:`ImageSet` (uint8 or float32 [N, C, H, W], int64 labels,
class names, the spec they came from), and :class:`LazyImageSet` (the labels and class names of
a data set whose images are decoded only when asked for, each at most once)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import DataError

__all__ = ["ClassOverlap", "ImageSet", "LazyImageSet", "class_overlap"]


def _checked_labels(
    y: torch.Tensor, classes: Sequence[str], n: int, source: str
) -> tuple[str, ...]:
    """The class names as a tuple of str, after checking ``y`` (int64 [n], indices into them)
    and that no name is given twice; DataError naming ``source`` otherwise."""
    if y.dtype != torch.int64 or y.shape != (n,):
        raise DataError(f"{source}: labels must be int64 [{n}], got {y.dtype} {list(y.shape)}")
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= len(classes)):
        raise DataError(
            f"{source}: labels must lie in 0..{len(classes) - 1} (one per class "
            f"name), got {int(y.min())}..{int(y.max())}"
        )
    names = tuple(str(c) for c in classes)
    first: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in first:
            raise DataError(
                f"{source}: class name {name!r} is given twice (classes {first[name]} "
                f"and {i}); give every class a unique name"
            )
        first[name] = i
    return names


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
        classes = _checked_labels(y, self.classes, x.shape[0], self.source)
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


class LazyImageSet:
    """A data set's labels and class names, with its images decoded only when asked for.

    ``decode(positions)`` returns the images at the sorted int64 ``positions`` as a tensor of
    ``image_shape`` rows; it is called at most once per position: rows already decoded are kept
    (one decoded copy, shared by every caller), so a per-class subsample costs the decoding of
    that subsample only. A set that comes decoded passes ``images`` instead.
    """

    def __init__(
        self,
        labels: torch.Tensor,
        classes: Sequence[str],
        source: str,
        *,
        image_shape: tuple[int, int, int] | None = None,
        decode: Callable[[np.ndarray], torch.Tensor] | None = None,
        images: torch.Tensor | None = None,
    ):
        if (decode is None) == (images is None):
            raise ValueError("give either decode (with image_shape) or images")
        self.labels = labels
        self.classes = _checked_labels(labels, classes, len(labels), source)
        self.source = source
        self._decode = decode
        self._full: ImageSet | None = None
        self._have = np.empty(0, np.int64)  # sorted positions decoded so far
        self._pixels: torch.Tensor | None = None  # their rows, in that order
        if images is not None:
            self._full = ImageSet(images, labels, self.classes, source)
            image_shape = tuple(images.shape[1:])
        self.image_shape: tuple[int, int, int] = image_shape  # type: ignore[assignment]

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def full(self) -> ImageSet:
        """Every image (decoding those not decoded yet); the same object on every call."""
        if self._full is None:
            self._decode_missing(np.arange(len(self), dtype=np.int64))
            pixels = self._pixels  # now every row, in order
            if pixels is None:
                pixels = torch.empty(0, *self.image_shape, dtype=torch.uint8)
            self._full = ImageSet(pixels, self.labels, self.classes, self.source)
            self._have, self._pixels = np.empty(0, np.int64), None  # the full set holds them
        return self._full

    def _decode_missing(self, pos: np.ndarray) -> None:
        """Decode the rows of ``pos`` not decoded yet, keeping all rows sorted by position."""
        missing = np.setdiff1d(pos, self._have)
        if len(missing):
            new = self._decode(missing)  # type: ignore[misc]
            have = np.concatenate([self._have, missing])
            pixels = new if self._pixels is None else torch.cat([self._pixels, new])
            order = np.argsort(have, kind="stable")
            self._have, self._pixels = have[order], pixels[torch.from_numpy(order)]

    def rows(self, positions: np.ndarray | Sequence[int]) -> ImageSet:
        """The images at ``positions`` (in that order), decoding only those not decoded yet."""
        pos = np.asarray(positions, dtype=np.int64).reshape(-1)
        if self._full is not None:
            if len(pos) == len(self) and np.array_equal(pos, np.arange(len(self))):
                return self._full
            return self._full.subset(pos)
        if len(pos) and (pos.min() < 0 or pos.max() >= len(self)):
            raise IndexError(f"positions outside 0..{len(self) - 1}")
        if len(pos) == len(self) and np.array_equal(pos, np.arange(len(self))):
            return self.full()  # every row, in order: no second copy of the set
        self._decode_missing(pos)
        at = torch.from_numpy(np.searchsorted(self._have, pos))
        assert self._pixels is not None or not len(pos)
        images = (
            self._pixels[at]
            if self._pixels is not None
            else torch.empty(0, *self.image_shape, dtype=torch.uint8)
        )
        return ImageSet(images, self.labels[torch.from_numpy(pos)], self.classes, self.source)


@dataclass(frozen=True)
class ClassOverlap:
    """How the class names of real shifted data meet the source's: ``shared`` (in the shifted
    data's order), ``only_shifted`` (its rows are left out) and ``only_source`` (classes the
    shifted data does not test)."""

    shared: tuple[str, ...]
    only_shifted: tuple[str, ...]
    only_source: tuple[str, ...]

    def notes(self) -> list[str]:
        """What the overlap means for the score, in words (empty when the classes match)."""

        def some(names: tuple[str, ...]) -> str:
            shown = ", ".join(names[:5])
            return shown + (f" and {len(names) - 5} more" if len(names) > 5 else "")

        out = []
        if self.only_shifted:
            out.append(
                f"{len(self.only_shifted)} class(es) of the shifted data are not source classes "
                f"and are left out: {some(self.only_shifted)}"
            )
        if self.only_source:
            out.append(
                f"{len(self.only_source)} source class(es) have no images in the shifted data, "
                f"so the score says nothing about them: {some(self.only_source)}"
            )
        return out


def class_overlap(
    source_classes: Sequence[str], shifted_classes: Sequence[str], where: str
) -> ClassOverlap:
    """Match real shifted data (``where`` names it) to the source by class name; a DataError if
    they share no name."""
    source = set(source_classes)
    shared = tuple(c for c in shifted_classes if c in source)
    if not shared:
        src, tgt = ", ".join(source_classes[:10]), ", ".join(shifted_classes[:10])
        raise DataError(
            f"the shifted data {where} shares no class name with the source data "
            f"(source: {src}; shifted: {tgt})"
        )
    seen = set(shifted_classes)
    return ClassOverlap(
        shared=shared,
        only_shifted=tuple(c for c in shifted_classes if c not in source),
        only_source=tuple(c for c in source_classes if c not in seen),
    )
