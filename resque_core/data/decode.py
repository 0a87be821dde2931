"""Pillow images into one uint8 [N, C, H, W] tensor: sizes and modes unified, the size limits
and the memory budget of :mod:`resque_core.limits` checked before pixels are decoded.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .. import limits
from ..errors import DataError

__all__: list[str] = []

_GREY_MODES = ("1", "L", "LA")


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
