"""Pillow images into one uint8 [N, C, H, W] tensor: sizes and modes unified, the size limits
and the memory budget of :mod:`resque_core.limits` checked before pixels are decoded.

Files (folders, zips) go in two steps: :func:`_read_headers` reads every image's header (size
and mode) and :func:`_plan` fixes the set's final size and channels from them, so
:func:`_decode_rows` can decode any subset of the images, in parallel threads (Pillow releases
the GIL while it decodes), and give exactly the rows a decode of the whole set would. Small
images (up to :data:`EARLY_PIXELS` pixels, up to :data:`EARLY_BUDGET` bytes of them per set)
are decoded with their header, since opening the file costs more than decoding them: their rows
are then cut from the kept pixels instead of being read a second time. Sets that only come as
decoded images (torchvision's file-based sets) use :class:`_Stack`.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from .. import limits
from ..errors import DataError

if TYPE_CHECKING:  # torch is imported where tensors are made: reading headers needs none
    import torch

__all__: list[str] = []

_GREY_MODES = ("1", "L", "LA")
_UNREADABLE = (OSError, ValueError, SyntaxError, EOFError)
_WORKERS = max(1, min(8, os.cpu_count() or 1))
EARLY_PIXELS = 64 * 64
"""Images of at most this many pixels are decoded when their header is read."""
EARLY_BUDGET = 64 * 2**20
"""Bytes of such early pixels one set keeps at most (the rest are decoded when asked for)."""

Opener = Callable[[], "Path | io.BytesIO"]
"""Returns the image file (a path, or its bytes) when called; may raise DataError."""


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
        import torch

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


@dataclass(frozen=True)
class _Plan:
    """What every decoded image becomes: ``size`` (W, H) and ``channels`` (1 or 3)."""

    size: tuple[int, int]
    channels: int

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.channels, self.size[1], self.size[0])


class _Early:
    """Small images decoded with their headers, by position, within :data:`EARLY_BUDGET`
    (filled by :func:`_read_headers`, one thread)."""

    def __init__(self) -> None:
        self.images: dict[int, Image.Image] = {}
        self._left = EARLY_BUDGET

    def take_room(self, nbytes: int) -> bool:
        if nbytes > self._left:
            return False
        self._left -= nbytes
        return True

    def pop(self, i: int) -> Image.Image | None:
        """The kept image at ``i``, forgotten here (its row is then held by the caller)."""
        return self.images.pop(i, None)


def _header(
    opener: Opener, where: str, early: _Early | None = None, i: int = 0
) -> tuple[tuple[int, int], bool]:
    """(size (W, H), greyscale?) of one image from its header; a small image is also decoded
    into ``early`` (at ``i``, in "L" or "RGB") while the budget lasts."""
    try:
        with Image.open(opener()) as img:
            limits.check_image_dimensions(img.size, where)
            grey = img.mode in _GREY_MODES
            pixels = img.size[0] * img.size[1]
            small = early is not None and pixels <= EARLY_PIXELS
            if small and early.take_room(pixels * (1 if grey else 3)):
                early.images[i] = img.convert("L" if grey else "RGB")  # decoded, detached
            return img.size, grey
    except Image.DecompressionBombError:
        raise limits.image_bomb_error(where) from None
    except _UNREADABLE as e:
        raise DataError(f"cannot read {where}: {e}; fix or remove it") from None


def _read_headers(
    openers: Sequence[Opener], wheres: Sequence[str], early: _Early | None = None
) -> list[tuple[tuple[int, int], bool]]:
    """The headers of all images, in order; small images are kept decoded in ``early`` when
    given. One thread: reading a header is Python and system calls under the GIL, and so is
    most of decoding a small image (853 32x32 JPEGs: 30 ms of headers on one thread, 55 ms on
    two; with the early decode 77-124 ms against 114-150 ms)."""
    return [_header(openers[i], wheres[i], early, i) for i in range(len(openers))]


def _in_threads(fn: Callable[[int], None], n: int) -> None:
    """``fn(i)`` for every i in range(n), over ``_WORKERS`` threads that each take contiguous
    chunks (a task per image would cost about as much as reading a small one). The error of the
    lowest failing i is raised, as a loop would."""
    if n < 2 * _WORKERS:
        for i in range(n):
            fn(i)
        return
    bounds = np.linspace(0, n, 4 * _WORKERS + 1).astype(int)

    def chunk(j: int) -> None:
        for i in range(bounds[j], bounds[j + 1]):
            fn(i)

    with ThreadPoolExecutor(_WORKERS) as pool:
        for _ in pool.map(chunk, range(len(bounds) - 1)):
            pass


def _plan(
    headers: Sequence[tuple[tuple[int, int], bool]], image_size: tuple[int, int] | None
) -> _Plan:
    """The set's final size and channels, as a decode of the whole set in order gives them: a
    set of one size keeps it; a mixed set takes ``image_size`` (H, W) or the first image's size;
    grey images stay 1-channel unless the set holds a colour one."""
    first = headers[0][0]
    size = first
    if any(s != first for s, _ in headers):
        size = first if image_size is None else (image_size[1], image_size[0])
    channels = 1 if all(grey for _, grey in headers) else 3
    return _Plan(size, channels)


def _decode_one(
    opener: Opener, where: str, plan: _Plan, early: Image.Image | None = None
) -> np.ndarray:
    """One image as uint8 [C, H, W] of ``plan``'s shape (from ``early``, the image decoded with
    its header, when given: the file is not read again)."""
    try:
        with Image.open(opener()) if early is None else contextlib.nullcontext(early) as img:
            limits.check_image_dimensions(img.size, where)
            grey = img.mode in _GREY_MODES
            if not grey and plan.channels == 1:
                raise DataError(f"{where} changed while the data set was read; load it again")
            mode = "L" if grey else "RGB"
            if img.mode != mode:
                img = img.convert(mode)
            if img.size != plan.size:
                img = img.resize(plan.size, Image.Resampling.BILINEAR)
            a = np.asarray(img)
    except Image.DecompressionBombError:
        raise limits.image_bomb_error(where) from None
    except _UNREADABLE as e:
        raise DataError(f"cannot read {where}: {e}; fix or remove it") from None
    # A grey image among colour ones broadcasts to three channels.
    return np.broadcast_to(a[None], plan.shape) if a.ndim == 2 else a.transpose(2, 0, 1)


def _decode_rows(
    openers: Sequence[Opener],
    wheres: Sequence[str],
    plan: _Plan,
    where: str,
    early: Sequence[Image.Image | None] | None = None,
) -> torch.Tensor:
    """The images of ``openers`` as uint8 [N, C, H, W] of ``plan``'s shape, decoded in parallel
    threads after their bytes are checked against the memory budget (``where`` names the set);
    ``early[i]``, where given, is image i already decoded with its header."""
    import torch

    n = len(openers)
    limits.check_decoded_bytes(n * math.prod(plan.shape), where)
    out = np.empty((n, *plan.shape), dtype=np.uint8)

    def one(i: int) -> None:
        out[i] = _decode_one(openers[i], wheres[i], plan, early[i] if early else None)

    _in_threads(one, n)
    return torch.from_numpy(out)
