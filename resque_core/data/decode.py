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

JPEGs are decoded by torchvision's libjpeg-turbo binding where torchvision is already imported
(scoring imports it with the model): three to four times faster than Pillow on small files and
the same pixels, which a check on first use confirms before it is relied on (:func:`_jpeg`).
Everything else, and any JPEG that binding refuses, goes through Pillow.
"""

from __future__ import annotations

import io
import math
import os
import sys
import warnings
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


def unreadable(where: str, e: BaseException) -> DataError:
    """The error for an image file (``where`` names it) that cannot be read or decoded."""
    return DataError(f"cannot read {where}: {e}; fix or remove it")


_WORKERS = max(1, min(8, os.cpu_count() or 1))
EARLY_PIXELS = 64 * 64
"""Images of at most this many pixels are decoded when their header is read."""
EARLY_BUDGET = 64 * 2**20
"""Bytes of such early pixels one set keeps at most (the rest are decoded when asked for)."""

Opener = Callable[[], "Path | io.BytesIO"]
"""Returns the image file (a path, or its bytes) when called; may raise DataError."""

_HEAD_BYTES = 1 << 16
"""Bytes of a file read with its header: a small image is usually whole in them."""
_JPEG_FRAMES = (0xC0, 0xC1, 0xC2)
"""Start-of-frame markers decoded by the fast path: baseline, extended and progressive
Huffman-coded JPEGs (lossless, hierarchical and arithmetic-coded ones go to Pillow)."""


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
    (filled by :func:`_read_headers`, one thread): each as uint8 [C, H, W], C = 1 for a
    greyscale image and 3 for a colour one."""

    def __init__(self) -> None:
        self.images: dict[int, np.ndarray] = {}
        self._left = EARLY_BUDGET

    def take_room(self, nbytes: int) -> bool:
        if nbytes > self._left:
            return False
        self._left -= nbytes
        return True

    def give_back(self, nbytes: int) -> None:
        """Return room taken for an image that was not kept after all."""
        self._left += nbytes

    def pop(self, i: int) -> np.ndarray | None:
        """The kept image at ``i``, forgotten here (its row is then held by the caller)."""
        return self.images.pop(i, None)


# ------------------------------------------------------------------ JPEG through torchvision
_TORCHVISION_DECODE_DEPRECATION = "The image decoding and encoding capabilities of TorchVision"
_jpeg_state: list[Callable[[bytes], np.ndarray] | None] = []
"""The fast JPEG decoder once it is checked ([decoder] or [None]); empty before."""


def _jpeg() -> Callable[[bytes], np.ndarray] | None:
    """torchvision's JPEG decoder (bytes -> uint8 [C, H, W]) once it has given Pillow's pixels on
    a colour 4:2:0 and a greyscale test image, else None. Not used before torchvision is
    imported: importing it only to read a data set would cost more (about 2 s) than it saves."""
    if _jpeg_state:
        return _jpeg_state[0]
    if "torchvision" not in sys.modules:
        return None
    try:
        import torch
        from torchvision.io import ImageReadMode, decode_jpeg
    except Exception:  # noqa: BLE001  - any failure to load the binding means Pillow decodes
        _jpeg_state.append(None)
        return None

    def decoder(data: bytes) -> np.ndarray:
        raw = torch.frombuffer(bytearray(data), dtype=torch.uint8)
        return decode_jpeg(raw, mode=ImageReadMode.UNCHANGED).numpy()

    # torchvision 0.29 warns on every call that its decoders move to TorchCodec; they are still
    # in 0.29 and the self-check guards their output. A filter on that message alone (a
    # catch_warnings block per call would not be thread-safe).
    warnings.filterwarnings("ignore", _TORCHVISION_DECODE_DEPRECATION, DeprecationWarning)

    _jpeg_state.append(decoder if _same_as_pillow(decoder) else None)
    return _jpeg_state[0]


def _same_as_pillow(decoder: Callable[[bytes], np.ndarray]) -> bool:
    """Whether ``decoder`` gives Pillow's pixels on small colour (4:2:0) and greyscale JPEGs."""
    y, x = np.mgrid[0:19, 0:26]
    rgb = np.stack([x * 9, y * 13, (x * y) % 256], axis=-1).astype(np.uint8)
    for img in (Image.fromarray(rgb), Image.fromarray(rgb[..., 1])):
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=80, subsampling=2)
        with Image.open(io.BytesIO(buf.getvalue())) as ref:
            expected = np.asarray(ref.convert(img.mode))
        try:
            got = decoder(buf.getvalue())
        except Exception:  # noqa: BLE001  - a decoder that fails here is not used
            return False
        got = got[0] if got.shape[0] == 1 else got.transpose(1, 2, 0)
        if got.shape != expected.shape or not np.array_equal(got, expected):
            return False
    return True


def _jpeg_frame(data: bytes) -> tuple[tuple[int, int], int] | None:
    """((W, H), components) from the frame header of a JPEG the fast path decodes (8-bit, one
    or three components, a frame marker of :data:`_JPEG_FRAMES`), else None. ``data`` is the
    file's start; the frame header precedes the scan, usually within the first kilobytes."""
    if data[:2] != b"\xff\xd8":
        return None
    pos, end = 2, len(data)
    while pos + 4 <= end:
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # markers without a length
            pos += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image or scan before any frame header
            return None
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if marker not in _JPEG_FRAMES or length < 8 or pos + 10 > end:
                return None
            precision, components = data[pos + 4], data[pos + 9]
            height = int.from_bytes(data[pos + 5 : pos + 7], "big")
            width = int.from_bytes(data[pos + 7 : pos + 9], "big")
            if precision != 8 or components not in (1, 3) or not width or not height:
                return None
            return (width, height), components
        if length < 2:
            return None
        pos += 2 + length
    return None


def _read(
    opener: Opener, where: str, limit: int | None = None
) -> tuple[bytes, bool, Path | io.BytesIO]:
    """The file's bytes (its first ``limit`` and a byte more, when given), whether they are the
    whole file, and what Pillow should open should the fast path not apply: the path itself (so
    that its errors name the file) or the bytes already in memory."""
    src = opener()
    if isinstance(src, io.BytesIO):
        return src.getvalue(), True, src
    try:
        with open(src, "rb") as f:
            data = f.read() if limit is None else f.read(limit + 1)
    except OSError as e:
        raise unreadable(where, e) from None
    return data, limit is None or len(data) <= limit, src


def _fast_decode(
    data: bytes, where: str, frame: tuple[tuple[int, int], int] | None = None
) -> np.ndarray | None:
    """``data`` decoded by the fast JPEG path as uint8 [C, H, W] (size checked first, unless
    ``frame``, its checked frame header, is given), or None where that path does not apply or
    fails (Pillow then decodes, or says what is wrong)."""
    decoder = _jpeg()
    if decoder is None:
        return None
    if frame is None:
        frame = _jpeg_frame(data)
        if frame is None:
            return None
        limits.check_image_dimensions(frame[0], where)
    try:
        a = decoder(data)
    except RuntimeError:
        return None
    return a if a.shape == (frame[1], frame[0][1], frame[0][0]) else None


def _header(
    opener: Opener, where: str, early: _Early | None = None, i: int = 0
) -> tuple[tuple[int, int], bool]:
    """(size (W, H), greyscale?) of one image from its header; a small image is also decoded
    into ``early`` (at ``i``) while the budget lasts."""
    src: Path | io.BytesIO | None = None
    if early is not None and _jpeg() is not None:
        data, whole, src = _read(opener, where, _HEAD_BYTES)
        frame = _jpeg_frame(data)
        if frame is not None:
            (w, h), components = frame
            limits.check_image_dimensions((w, h), where)
            nbytes = w * h * components
            if not (whole and w * h <= EARLY_PIXELS and early.take_room(nbytes)):
                return (w, h), components == 1  # decoded when its row is asked for
            a = _fast_decode(data, where, frame)
            if a is not None:
                early.images[i] = a
                return (w, h), components == 1
            early.give_back(nbytes)  # Pillow reads it below and says what is wrong
        if isinstance(src, io.BytesIO):
            src.seek(0)
    try:
        with Image.open(opener() if src is None else src) as img:
            limits.check_image_dimensions(img.size, where)
            grey = img.mode in _GREY_MODES
            pixels = img.size[0] * img.size[1]
            small = early is not None and pixels <= EARLY_PIXELS
            if small and early.take_room(pixels * (1 if grey else 3)):
                early.images[i] = _chw(np.asarray(img.convert("L" if grey else "RGB")))
            return img.size, grey
    except Image.DecompressionBombError:
        raise limits.image_bomb_error(where) from None
    except _UNREADABLE as e:
        raise unreadable(where, e) from None


def _chw(a: np.ndarray) -> np.ndarray:
    """A Pillow array (H, W) or (H, W, 3) as [C, H, W]."""
    return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)


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
    opener: Opener, where: str, plan: _Plan, early: np.ndarray | None = None
) -> np.ndarray:
    """One image as uint8 [C, H, W] of ``plan``'s shape (from ``early``, the image decoded with
    its header, when given: the file is not read again)."""
    a, src = early, None
    if a is None and _jpeg() is not None:
        data, _, src = _read(opener, where)
        a = _fast_decode(data, where)
        if isinstance(src, io.BytesIO):
            src.seek(0)
    if a is None:
        a = _pillow_decode(opener() if src is None else src, where)
    grey = a.shape[0] == 1
    if not grey and plan.channels == 1:
        raise DataError(f"{where} changed while the data set was read; load it again")
    if (a.shape[2], a.shape[1]) != plan.size:
        a = _chw(_resized(a[0] if grey else a.transpose(1, 2, 0), plan.size))
    # A grey image among colour ones broadcasts to three channels.
    return np.broadcast_to(a, plan.shape) if grey else a


def _pillow_decode(src: Path | io.BytesIO, where: str) -> np.ndarray:
    """The image file ``src`` decoded by Pillow as uint8 [C, H, W] (C = 1 for greyscale)."""
    try:
        with Image.open(src) as img:
            limits.check_image_dimensions(img.size, where)
            mode = "L" if img.mode in _GREY_MODES else "RGB"
            return _chw(np.asarray(img if img.mode == mode else img.convert(mode)))
    except Image.DecompressionBombError:
        raise limits.image_bomb_error(where) from None
    except _UNREADABLE as e:
        raise unreadable(where, e) from None


def _decode_rows(
    openers: Sequence[Opener],
    wheres: Sequence[str],
    plan: _Plan,
    where: str,
    early: Sequence[np.ndarray | None] | None = None,
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
