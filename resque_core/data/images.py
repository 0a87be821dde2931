"""Labelled images in memory: :class:`ImageSet` (uint8 or float32 [N, C, H, W], int64 labels,
class names, the spec they came from)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import DataError

__all__ = ["ImageSet"]


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
