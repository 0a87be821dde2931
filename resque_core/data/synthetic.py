"""Offline task data sets for the demo, generated deterministically on first use.

Every set is returned as plain numpy arrays ``(images uint8 [N, 1, 8, 8], labels int64 [N],
classes tuple[str, ...])``, samples ordered by class. Letters and shapes are drawn with the recipe
of scikit-learn's handwritten digits (the UCI "optdigits" preprocessing): a white-on-black 32x32
bitmap, binarised, then the "on" pixels counted in non-overlapping 4x4 blocks, which gives an 8x8
image of integers 0..16. Counts map to uint8 as ``round(count * 255 / 16)``, the mapping used for
the digits themselves, so every set here lives on the same pixel scale as ``builtin:digits``.

Generation is seeded (numpy ``default_rng``) and uses only Pillow's bundled font, so the arrays are
identical on every machine with the same Pillow; each set takes well under a second and is kept in
memory after its first use (callers get copies, so they may modify them).

``SYNTHETIC`` maps a data set name to a zero-argument loader with the default size and seed;
``DESCRIPTIONS`` gives one line per name.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..errors import ConfigError

__all__ = [
    "DESCRIPTIONS",
    "SYNTHETIC",
    "Arrays",
    "digits_mod3",
    "digits_parity",
    "letters",
    "shapes",
]

Arrays = tuple[np.ndarray, np.ndarray, tuple[str, ...]]
"""(images uint8 [N, 1, H, W], labels int64 [N], class names)."""

LETTERS: tuple[str, ...] = tuple("ABCDEFGHIJ")
SHAPES: tuple[str, ...] = ("circle", "ring", "square", "triangle", "plus", "cross")
_CANVAS = 32  # bitmap side before block counting (as in optdigits)
_BLOCK = 4  # 32 / 4 = 8x8 output
_GLYPH_CANVAS = 64  # letters are rendered larger, then cropped and fitted into the 32x32 bitmap
_FONT_SIZE = 40


def _check_options(per_class: int, seed: int) -> None:
    if isinstance(per_class, bool) or not isinstance(per_class, int) or per_class < 1:
        raise ConfigError(f"per_class must be a positive integer, got {per_class!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")


def _block_counts(bitmap: Image.Image) -> np.ndarray:
    """32x32 greyscale bitmap -> [8, 8] int64 counts (0..16) of pixels >= 128 per 4x4 block."""
    on = np.asarray(bitmap, dtype=np.uint8) >= 128
    n = _CANVAS // _BLOCK
    return on.reshape(n, _BLOCK, n, _BLOCK).sum(axis=(1, 3))


def _counts_to_uint8(counts: np.ndarray) -> np.ndarray:
    """Counts 0..16 [N, H, W] -> uint8 [N, 1, H, W], ``round(count * 255 / 16)``."""
    return np.rint(np.asarray(counts, dtype=np.float64) * (255 / 16)).astype(np.uint8)[:, None]


def _copy(arrays: Arrays) -> Arrays:
    images, labels, classes = arrays
    return images.copy(), labels.copy(), classes


@lru_cache(maxsize=4)
def _letters(per_class: int, seed: int) -> Arrays:
    rng = np.random.default_rng(seed)
    font = ImageFont.load_default(size=_FONT_SIZE)
    mid = _GLYPH_CANVAS // 2
    glyphs: dict[tuple[str, int], Image.Image] = {}
    counts = []
    for letter in LETTERS:
        for _ in range(per_class):
            stroke = int(rng.integers(2, 5))
            if (letter, stroke) not in glyphs:
                im = Image.new("L", (_GLYPH_CANVAS, _GLYPH_CANVAS))
                draw = ImageDraw.Draw(im)
                draw.text((mid, mid), letter, font=font, fill=255, anchor="mm", stroke_width=stroke)
                glyphs[letter, stroke] = im
            im = glyphs[letter, stroke].rotate(
                float(rng.uniform(-12, 12)), resample=Image.Resampling.BILINEAR
            )
            im = im.crop(im.getbbox())
            # Fit the glyph's box into the bitmap like optdigits' size normalisation, with jitter.
            h = int(rng.integers(24, 31))
            w = round(im.width * h / im.height * float(rng.uniform(0.85, 1.15)))
            w = min(30, max(6, w))
            im = im.resize((w, h), Image.Resampling.BILINEAR)
            bitmap = Image.new("L", (_CANVAS, _CANVAS))
            x0 = int(np.clip((_CANVAS - w) // 2 + rng.integers(-2, 3), 0, _CANVAS - w))
            y0 = int(np.clip((_CANVAS - h) // 2 + rng.integers(-1, 2), 0, _CANVAS - h))
            bitmap.paste(im, (x0, y0))
            counts.append(_block_counts(bitmap))
    labels = np.repeat(np.arange(len(LETTERS), dtype=np.int64), per_class)
    return _counts_to_uint8(np.stack(counts)), labels, LETTERS


def letters(*, per_class: int = 150, seed: int = 0) -> Arrays:
    """The letters A-J (a notMNIST-like task), 8x8 like the digits; ``per_class`` images each.

    Recipe: each letter is drawn with Pillow's bundled TrueType font (size 40, stroke width 2-4 px)
    on a 64x64 canvas, rotated by U(-12, 12) degrees, cropped to its ink, resized to a height of
    24-30 px with its width scaled by U(0.85, 1.15) (clipped to 6-30 px), pasted near the centre of
    a 32x32 bitmap (offset up to 2 px across, 1 px down), then reduced to 8x8 by counting "on"
    pixels per 4x4 block (0..16). Returns uint8 [10 * per_class, 1, 8, 8], int64 labels 0..9 and
    classes ``("A", ..., "J")``.
    """
    _check_options(per_class, seed)
    return _copy(_letters(per_class, seed))


def _rotated(
    points: np.ndarray, angle: float, centre: tuple[float, float]
) -> list[tuple[float, float]]:
    c, s = math.cos(angle), math.sin(angle)
    rot = points @ np.array([[c, s], [-s, c]])
    return [(float(x + centre[0]), float(y + centre[1])) for x, y in rot]


def _draw_shape(draw: ImageDraw.ImageDraw, name: str, rng: np.random.Generator) -> None:
    r = float(rng.uniform(9, 14))  # half-size in bitmap pixels
    centre = (float(16 + rng.uniform(-2, 2)), float(16 + rng.uniform(-2, 2)))
    width = int(rng.integers(3, 6))  # stroke width, like a pen stroke of the digits
    angle = float(rng.uniform(-0.35, 0.35))  # radians, about +-20 degrees
    cx, cy = centre
    box = (cx - r, cy - r, cx + r, cy + r)
    if name == "circle":
        draw.ellipse(box, fill=255)
    elif name == "ring":
        draw.ellipse(box, outline=255, width=width)
    elif name == "square":
        corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * r * 0.85
        draw.polygon(_rotated(corners, angle, centre), outline=255, width=width)
    elif name == "triangle":
        corners = np.array([[0, -1], [0.95, 0.7], [-0.95, 0.7]]) * r
        draw.polygon(_rotated(corners, angle, centre), fill=255)
    else:  # plus: arms along the axes; cross: the same turned by 45 degrees
        turn = angle + (math.pi / 4 if name == "cross" else 0.0)
        arms = np.array([[-1, 0], [1, 0], [0, -1], [0, 1]]) * r
        a, b, c, d = _rotated(arms, turn, centre)
        draw.line([a, b], fill=255, width=width)
        draw.line([c, d], fill=255, width=width)


@lru_cache(maxsize=4)
def _shapes(per_class: int, seed: int) -> Arrays:
    rng = np.random.default_rng(seed)
    counts = []
    for name in SHAPES:
        for _ in range(per_class):
            bitmap = Image.new("L", (_CANVAS, _CANVAS))
            _draw_shape(ImageDraw.Draw(bitmap), name, rng)
            counts.append(_block_counts(bitmap))
    labels = np.repeat(np.arange(len(SHAPES), dtype=np.int64), per_class)
    return _counts_to_uint8(np.stack(counts)), labels, SHAPES


def shapes(*, per_class: int = 150, seed: int = 0) -> Arrays:
    """Six geometric shapes, 8x8 like the digits; ``per_class`` images each.

    Recipe: on a 32x32 black bitmap, a shape of half-size U(9, 14) px centred within 2 px of the
    middle, with a stroke width of 3-5 px and a rotation of U(-20, 20) degrees: ``circle`` (filled
    disc), ``ring`` (circle outline), ``square`` (outline, side 1.7 x half-size), ``triangle``
    (filled, apex up), ``plus`` (two axis-aligned strokes) and ``cross`` (the plus turned by 45
    degrees); then "on" pixels are counted per 4x4 block (0..16). Returns uint8
    [6 * per_class, 1, 8, 8], int64 labels 0..5 and classes
    ``("circle", "ring", "square", "triangle", "plus", "cross")``.
    """
    _check_options(per_class, seed)
    return _copy(_shapes(per_class, seed))


@lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return _counts_to_uint8(bunch.images), bunch.target.astype(np.int64)


def _relabelled(modulus: int, classes: tuple[str, ...]) -> Arrays:
    images, digits = _digits()
    order = np.argsort(digits % modulus, kind="stable")
    return images[order].copy(), (digits[order] % modulus).astype(np.int64), classes


def digits_parity() -> Arrays:
    """scikit-learn's 1,797 handwritten digits relabelled even/odd: a new label space (2 classes,
    ``("even", "odd")``) on images the model has seen the kind of. Images are the digits'
    0..16 counts as uint8 [1797, 1, 8, 8] (``round(count * 255 / 16)``), samples grouped by
    class, original order kept within a class. No randomness."""
    return _relabelled(2, ("even", "odd"))


def digits_mod3() -> Arrays:
    """scikit-learn's handwritten digits relabelled by the remainder of the digit divided by 3:
    3 classes ``("0-3-6-9", "1-4-7", "2-5-8")``, uint8 [1797, 1, 8, 8], grouped by class as in
    :func:`digits_parity`. No randomness."""
    return _relabelled(3, ("0-3-6-9", "1-4-7", "2-5-8"))


SYNTHETIC: dict[str, Callable[[], Arrays]] = {
    "letters": letters,
    "shapes": shapes,
    "digits-parity": digits_parity,
    "digits-mod3": digits_mod3,
}

DESCRIPTIONS: dict[str, str] = {
    "letters": "letters A-J drawn like the 8x8 digits (10 classes x 150, seeded; notMNIST-like)",
    "shapes": "six geometric shapes drawn like the 8x8 digits (6 classes x 150, seeded)",
    "digits-parity": "scikit-learn's digits relabelled even / odd (2 classes, 1,797 images)",
    "digits-mod3": "scikit-learn's digits relabelled by digit mod 3 (3 classes, 1,797 images)",
}
