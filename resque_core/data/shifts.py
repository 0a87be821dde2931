"""Synthetic distribution shifts: seeded corruptions of image batches at severities 1-5 or at a
raw parameter value (``gaussian_noise:3`` is sigma 0.08; ``gaussian_noise@0.08`` says so directly).

Every shift maps a float batch ``x`` [N, C, H, W] in [0, 1] (C = 1 or 3, float32 or float64, on
any device) to a new batch of the same shape, dtype and device, clamped to [0, 1]. All randomness
is drawn from the caller's ``torch.Generator`` (on ``x``'s device): the same generator state and
input give the same output, bit for bit on CPU. The input is never modified.

Names and parameter values follow CIFAR-10-C: D. Hendrycks and T. Dietterich, "Benchmarking
Neural Network Robustness to Common Corruptions and Perturbations", ICLR 2019, script
``ImageNet-C/create_c/make_cifar_c.py`` (github.com/hendrycks/robustness), with pixels in [0, 1]
instead of [0, 255]. Where this module differs, and why:

- Every result is clamped to [0, 1]. The RESQUE reference code adds noise and casts to uint8
  without clamping, so values wrap around (-0.2 becomes 205); see METHOD.md.
- impulse_noise draws one mask with probability ``amount`` and makes each hit salt or pepper
  with p = 0.5 (as scikit-image's ``random_noise(mode="s&p")`` used by CIFAR-10-C does), per
  value, i.e. per pixel and channel. The RESQUE reference draws two masks of ``amount / 2`` and
  lets salt overwrite pepper, which biases the image brighter.
- gaussian_blur truncates the kernel at radius ceil(3 sigma) with reflect padding; scikit-image
  truncates at 4 sigma with nearest-edge padding. The weight beyond 3 sigma is under 0.3 %.
- brightness adds ``delta`` to the HSV value, in closed form: with hue and saturation fixed,
  RGB is linear in V = max(R, G, B), so ``rgb * min(V + delta, 1) / V`` (black becomes grey
  ``delta``). For C = 1 this is exactly ``min(x + delta, 1)``.
- contrast pulls every value toward its image's per-channel mean (the reference's mean over
  H and W of one image).
- pixelate: area downsampling (the reference's PIL BOX filter) to ``int(side * factor)``, then
  nearest upsampling, so the blocks keep hard edges.
- fog: the reference's diamond-square plasma fractal (same recurrence, random numbers from the
  generator), one map per image shared by its channels, drawn on the smallest power-of-two square
  that covers the image and cropped to it (CIFAR-10-C: 32, ImageNet-C: 256 cropped to 224).
- rotation is not a CIFAR-10-C corruption: angles are this project's choice, each image turned by
  +angle or -angle (random sign), bilinear, with black (zero) fill in the uncovered corners.
- jpeg encodes and decodes with PIL at ``quality``, as the reference does, one image at a time on
  CPU (also for GPU batches, so results do not depend on the device). torchvision's
  encode_jpeg/decode_jpeg would avoid the copy but are deprecated since torchvision 0.29 and warn
  on every call.

Two pipelines (``compat``): ``"project"`` (the default, everything above) and ``"reference"``,
which reproduces the RESQUE reference code's corruptions for comparison with the paper's numbers:

- gaussian_noise: ``x + sigma * N(0, 1)`` without clamping, then the 8-bit conversion below, so
  values outside [0, 1] wrap around (-0.2 -> 205 / 255, 1.2 -> 50 / 255);
- impulse_noise: two masks over whole pixels (H x W, shared by all channels), each hit with
  probability ``amount / 2``; the first sets the pixel to 0, the second to 1 (salt overwrites
  pepper);
- gaussian_blur: per channel, scipy.ndimage.gaussian_filter's kernel (radius
  ``int(4 sigma + 0.5)``) with its ``mode="reflect"`` edges (the edge pixel is repeated:
  ``d c b a | a b c d | d c b a``), computed in float64, then clamped to [0, 1];
- every other shift: the project's formula, clamped to [0, 1] (the reference has no other shift);
- then every corrupted image is converted to 8 bits as torchvision's ``ToPILImage`` does for a
  float tensor, ``trunc(x * 255) mod 256`` (truncation, not rounding), and read back as
  ``value / 255``.

See docs/METHOD.md for the measured size of each difference.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .._util import unknown_name_message
from ..errors import DataError, ShiftError

__all__ = [
    "COMPAT_MODES",
    "SEVERITIES",
    "SHIFT_CHUNK",
    "ShiftSpec",
    "apply_shift",
    "available_shifts",
    "parse_shift",
    "shift_preview",
    "shift_table",
    "shifted_chunks",
]

SEVERITIES = (1, 2, 3, 4, 5)
COMPAT_MODES: tuple[str, ...] = ("project", "reference")
"""Corruption pipelines: the project's (default) and the reference code's (see the module doc)."""
SHIFT_CHUNK = 256
"""Selected images per noise generator in :func:`shifted_chunks` (part of the seeding: changing
it changes every random shift's pixels)."""

# fn(x, value, generator) -> corrupted x (not yet clamped)
_ShiftFn = Callable[[torch.Tensor, object, torch.Generator], torch.Tensor]


@dataclass(frozen=True)
class _Shift:
    fn: _ShiftFn
    param: str
    values: tuple
    doc: str
    random: bool
    # raw parameter values accepted after "@": (low, high, low included); None = severities only
    raw: tuple[float, float, bool] | None
    integer: bool


_SHIFTS: dict[str, _Shift] = {}
_REFERENCE_FNS: dict[str, _ShiftFn] = {}


def _register(
    name: str,
    *,
    param: str,
    values: tuple,
    doc: str,
    random: bool = False,
    raw: tuple[float, float, bool] | None = None,
    integer: bool = False,
):
    """Add a shift under ``name``; ``values[s - 1]`` is its parameter at severity ``s``; ``raw``
    the range of a raw parameter (``name@value``), ``integer`` whether it must be a whole
    number."""

    def add(fn: _ShiftFn) -> _ShiftFn:
        _SHIFTS[name] = _Shift(fn, param, tuple(values), doc, random, raw, integer)
        return fn

    return add


def _reference(name: str):
    """Register the reference code's version of shift ``name`` (used with compat="reference")."""

    def add(fn: _ShiftFn) -> _ShiftFn:
        _REFERENCE_FNS[name] = fn
        return fn

    return add


def _raw_range_text(shift: _Shift) -> str:
    assert shift.raw is not None
    low, high, closed = shift.raw
    kind = "a whole number" if shift.integer else "a number"
    return f"{kind} {'from' if closed else 'above'} {low:g} {'to' if closed else 'up to'} {high:g}"


def _check_compat(compat: str) -> None:
    if compat not in COMPAT_MODES:
        raise ShiftError(f"unknown compat mode {compat!r}; allowed: {', '.join(COMPAT_MODES)}")


@dataclass(frozen=True)
class ShiftSpec:
    """One shift at one severity, ``ShiftSpec("gaussian_noise", 3)``, or at a raw parameter
    value, ``ShiftSpec("gaussian_noise", level=0.08)``. ``str()`` gives ``"gaussian_noise:3"`` or
    ``"gaussian_noise@0.08"``, which :func:`parse_shift` reads back (the shortest text of the
    value, so equal values print alike)."""

    name: str
    severity: int | None = None
    level: float | None = None

    def __post_init__(self) -> None:
        if self.name not in _SHIFTS:
            raise ShiftError(unknown_name_message("shift", self.name, _SHIFTS))
        if self.level is not None:
            if self.severity is not None:
                raise ShiftError(f"shift {self.name!r} takes a severity or a raw value, not both")
            self._check_level()
            return
        if isinstance(self.severity, bool) or not isinstance(self.severity, int):
            raise ShiftError(
                f"severity {self.severity!r} of shift {self.name!r} is not an integer: use 1-5"
            )
        if self.severity not in SEVERITIES:
            raise ShiftError(
                f"severity {self.severity} is out of range for shift {self.name!r}: use 1-5"
            )

    def _check_level(self) -> None:
        shift = _SHIFTS[self.name]
        if shift.raw is None:
            raise ShiftError(
                f"shift {self.name!r} has no single raw parameter (it takes {shift.param}): "
                f"give a severity, e.g. {self.name}:3"
            )
        level = self.level
        number = isinstance(level, int | float) and not isinstance(level, bool)
        low, high, closed = shift.raw
        ok = (
            number
            and math.isfinite(level)
            and (low <= level if closed else low < level)
            and level <= high
            and (not shift.integer or float(level).is_integer())
        )
        if not ok:
            raise ShiftError(
                f"raw {shift.param} {level!r} of shift {self.name!r} is out of range: use "
                f"{_raw_range_text(shift)}, e.g. {self.name}@{_level_text(shift.values[2])}"
            )
        # one canonical value per number: 0.08 and 0.080 are the same spec (and cache key)
        value = int(level) if shift.integer else float(level)
        object.__setattr__(self, "level", value)

    @property
    def value(self):
        """The shift's parameter: the severity's table value, or the raw level."""
        if self.level is not None:
            return self.level
        return _SHIFTS[self.name].values[self.severity - 1]

    def __str__(self) -> str:
        if self.level is not None:
            return f"{self.name}@{_level_text(self.level)}"
        return f"{self.name}:{self.severity}"


def _level_text(level) -> str:
    return str(level) if isinstance(level, int) else repr(float(level))


def parse_shift(text: str) -> ShiftSpec:
    """``"gaussian_noise:3"`` -> ``ShiftSpec("gaussian_noise", 3)``; ``"gaussian_noise@0.08"``
    -> ``ShiftSpec("gaussian_noise", level=0.08)`` (a raw parameter value).

    Names are case-insensitive and may use ``-`` for ``_``; spaces around the parts are ignored.
    """
    text = str(text)
    if "@" in text:
        name, _, raw = text.partition("@")
        name = name.strip().lower().replace("-", "_")
        try:
            level = float(raw)
        except ValueError:
            level = None
        if not name or level is None:
            raise ShiftError(
                f"cannot read shift {text!r}: write it as NAME@VALUE with the shift's raw "
                "parameter, e.g. gaussian_noise@0.08, or NAME:SEVERITY, e.g. gaussian_noise:3"
            )
        return ShiftSpec(name, level=level)
    name, _, severity = text.partition(":")
    name = name.strip().lower().replace("-", "_")
    try:
        level = int(severity)
    except ValueError:
        level = None
    if not name or level is None:
        raise ShiftError(
            f"cannot read shift {text!r}: write it as NAME:SEVERITY with SEVERITY 1-5, "
            "e.g. gaussian_noise:3"
        )
    return ShiftSpec(name, level)


def available_shifts() -> list[str]:
    """Names of all shifts, sorted."""
    return sorted(_SHIFTS)


def shift_table() -> dict[str, dict]:
    """For docs and the app: ``{name: {"description", "parameter", "values", "random"}}``.

    ``values`` holds the parameter at severities 1-5 in order; ``random`` says whether the shift
    draws from the generator (otherwise it is a fixed function of the image); ``raw`` the values
    a raw parameter (``name@value``) may take, in words, or None where only severities exist.
    """
    return {
        name: {
            "description": s.doc,
            "parameter": s.param,
            "values": s.values,
            "random": s.random,
            "raw": _raw_range_text(s) if s.raw is not None else None,
        }
        for name, s in sorted(_SHIFTS.items())
    }


def apply_shift(
    x: torch.Tensor,
    spec: ShiftSpec,
    *,
    generator: torch.Generator,
    compat: str = "project",
) -> torch.Tensor:
    """Corrupt a batch: float ``x`` [N, C, H, W] in [0, 1], C = 1 or 3 -> new tensor, same shape,
    dtype and device, in [0, 1]. ``generator`` lives on ``x.device`` and is the only source of
    randomness; it advances by the draws made. ``x`` is not modified. ``compat="reference"``:
    the reference code's corruption and 8-bit conversion (module doc); the result is then a
    multiple of 1/255."""
    _check_compat(compat)
    if x.ndim != 4 or x.shape[1] not in (1, 3) or x.dtype not in (torch.float32, torch.float64):
        raise DataError(
            "shifts need a float32 or float64 batch [N, C, H, W] with C 1 or 3, "
            f"got {x.dtype} {list(x.shape)}"
        )
    if x.shape[0] == 0:
        return x.clone()
    shift = _SHIFTS[spec.name]
    if compat == "reference":
        fn = _REFERENCE_FNS.get(spec.name, shift.fn)
        out = fn(x, spec.value, generator)
        if spec.name != "gaussian_noise":  # the reference's noise is not clamped: it wraps
            out = out.clamp(0.0, 1.0)
        return to_8_bit(out)
    out = shift.fn(x, spec.value, generator)
    return out.clamp(0.0, 1.0)


def to_8_bit(x: torch.Tensor) -> torch.Tensor:
    """The reference's float -> uint8 -> float round trip (torchvision's ``ToPILImage`` then
    ``ToTensor``): ``(trunc(x * 255) mod 256) / 255`` in ``x``'s dtype. Values in [0, 1] are
    truncated to the 8-bit level below; values outside wrap around. Written out, not cast, so a
    GPU gives the same wrap as the CPU."""
    levels = torch.remainder(torch.trunc(x * 255), 256) + 0.0  # + 0.0 turns -0.0 into 0.0
    return levels / 255


def shifted_chunks(
    images: torch.Tensor,
    rows: np.ndarray,
    spec: ShiftSpec | None,
    *,
    to_unit: Callable[[torch.Tensor], torch.Tensor],
    seed: int,
    compat: str = "project",
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The selected images in [0, 1] with the shift applied: the one seeded shift loop that
    scoring, retraining and the benchmark share.

    ``images`` uint8 (or float) [N, C, H, W]; ``rows`` int [M], the selected indices in the order
    they are used; ``spec`` None = no shift; ``to_unit`` maps a chunk of ``images`` to float
    [n, C', H', W'] in [0, 1] on the device the work runs on
    (:meth:`~resque_core.data.sources.Preprocess.to_unit`). Yields ``(rows_k, x_k)`` for consecutive
    chunks of :data:`SHIFT_CHUNK` rows: ``rows_k`` int64 [n] (CPU), ``x_k`` [n, C', H', W'].
    Chunk k's randomness comes from a generator on ``x_k``'s device seeded with
    ``seed * 1_000_003 + k``, so the pixels depend on (images, rows, spec, seed) only, never on
    how the caller batches them afterwards. ``compat`` picks the corruption pipeline
    (:func:`apply_shift`); images without a shift are the same in both.
    """
    _check_compat(compat)
    for chunk_no, start in enumerate(range(0, len(rows), SHIFT_CHUNK)):
        sel = torch.from_numpy(np.asarray(rows[start : start + SHIFT_CHUNK], dtype=np.int64))
        x = to_unit(images[sel])
        if spec is not None:
            gen = torch.Generator(device=x.device)
            gen.manual_seed(seed * 1_000_003 + chunk_no)
            x = apply_shift(x, spec, generator=gen, compat=compat)
        yield sel, x


def shift_preview(
    images: torch.Tensor,
    labels: torch.Tensor | np.ndarray,
    shift: str,
    severities: Sequence[int],
    *,
    to_unit: Callable[[torch.Tensor], torch.Tensor],
    n: int = 4,
    seed: int = 0,
) -> tuple[np.ndarray, dict[int, np.ndarray], np.ndarray]:
    """A few images before and after ``shift`` at each of ``severities``, for a preview.

    ``images`` uint8 (or float) [N, C, H, W] with ``labels`` int [N]; ``shift`` a shift name;
    ``to_unit`` maps images to float [k, C', H', W'] in [0, 1] as the model sees them
    (:meth:`~resque_core.data.Preprocess.to_unit`). Picks one image of each of the first
    ``n`` classes present (seeded by ``seed``), so the rows show different classes. Returns
    ``(original, shifted, rows)``: float32 [k, C', H', W'] in [0, 1]; {severity: the same images
    shifted, same shape}, each drawn from a generator seeded with ``seed``; int64 [k] the indices
    of the picked images in ``images``.
    """
    specs = [parse_shift(f"{shift}:{severity}") for severity in severities]
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    rows = np.array(
        [int(rng.choice(np.flatnonzero(labels == c))) for c in np.unique(labels)[:n]],
        dtype=np.int64,
    )
    x = to_unit(images[torch.from_numpy(rows)])
    shifted = {}
    for spec in specs:
        gen = torch.Generator(device=x.device).manual_seed(seed)
        shifted[spec.severity] = apply_shift(x, spec, generator=gen).cpu().numpy()
    return x.cpu().numpy(), shifted, rows


def _uniform(x: torch.Tensor, generator: torch.Generator, shape=None) -> torch.Tensor:
    shape = x.shape if shape is None else shape
    return torch.rand(shape, generator=generator, device=x.device, dtype=x.dtype)


@_register(
    "gaussian_noise",
    param="sigma",
    values=(0.04, 0.06, 0.08, 0.09, 0.10),
    raw=(0.0, 1.0, True),
    doc="Additive Gaussian noise with standard deviation sigma, per pixel and channel.",
    random=True,
)
def _gaussian_noise(x, sigma, generator):
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return x + sigma * noise


@_register(
    "shot_noise",
    param="photons",
    values=(500, 250, 100, 75, 50),
    raw=(0.0, 1e6, False),
    doc="Poisson (photon-counting) noise: Poisson(x * photons) / photons; fewer = noisier.",
    random=True,
)
def _shot_noise(x, photons, generator):
    return torch.poisson(x * photons, generator=generator) / photons


@_register(
    "impulse_noise",
    param="amount",
    values=(0.01, 0.02, 0.03, 0.05, 0.07),
    raw=(0.0, 1.0, True),
    doc="Salt and pepper: a fraction `amount` of values set to 0 or 1, half each.",
    random=True,
)
def _impulse_noise(x, amount, generator):
    hit = _uniform(x, generator) < amount
    salt = (_uniform(x, generator) < 0.5).to(x.dtype)
    return torch.where(hit, salt, x)


@_reference("impulse_noise")
def _impulse_noise_reference(x, amount, generator):
    # whole pixels: one [N, 1, H, W] draw per mask, shared by the channels; salt after pepper
    n, _, h, w = x.shape
    pepper = _uniform(x, generator, (n, 1, h, w)) < amount / 2
    salt = _uniform(x, generator, (n, 1, h, w)) < amount / 2
    x = torch.where(pepper, torch.zeros_like(x), x)
    return torch.where(salt, torch.ones_like(x), x)


@_register(
    "gaussian_blur",
    param="sigma",
    values=(0.4, 0.6, 0.7, 0.8, 1.0),
    raw=(0.0, 20.0, False),
    doc="Gaussian blur with standard deviation sigma in pixels (reflect padding).",
)
def _gaussian_blur(x, sigma, generator):
    n, c, h, w = x.shape
    # Reflect padding needs a pad smaller than the side; only tiny images hit this bound.
    radius = min(math.ceil(3 * sigma), h - 1, w - 1)
    t = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    kernel = torch.exp(-0.5 * (t / sigma) ** 2)
    kernel = kernel / kernel.sum()
    planes = F.pad(x.reshape(n * c, 1, h, w), (radius,) * 4, mode="reflect")
    planes = F.conv2d(planes, kernel.view(1, 1, -1, 1))
    planes = F.conv2d(planes, kernel.view(1, 1, 1, -1))
    return planes.reshape(n, c, h, w)


def _symmetric_index(size: int, radius: int, device) -> torch.Tensor:
    """Source index of each of ``size + 2 * radius`` padded positions with edge-repeating
    reflection (scipy's ``mode="reflect"``: d c b a | a b c d | d c b a), for any radius."""
    i = torch.arange(-radius, size + radius, device=device) % (2 * size)
    return torch.where(i >= size, 2 * size - 1 - i, i)


@_reference("gaussian_blur")
def _gaussian_blur_reference(x, sigma, generator):
    # scipy.ndimage.gaussian_filter's defaults: truncate 4.0, so radius int(4 sigma + 0.5)
    n, c, h, w = x.shape
    radius = int(4.0 * sigma + 0.5)
    t = torch.arange(-radius, radius + 1, device=x.device, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (t / sigma) ** 2)
    kernel = kernel / kernel.sum()
    planes = x.reshape(n * c, 1, h, w).double()
    planes = planes.index_select(2, _symmetric_index(h, radius, x.device))
    planes = F.conv2d(planes, kernel.view(1, 1, -1, 1))
    # scipy keeps the pass over rows in the input's dtype before the pass over columns
    planes = planes.to(x.dtype).double()
    planes = planes.index_select(3, _symmetric_index(w, radius, x.device))
    planes = F.conv2d(planes, kernel.view(1, 1, 1, -1))
    return planes.reshape(n, c, h, w).to(x.dtype)


@_register(
    "contrast",
    param="factor",
    values=(0.75, 0.5, 0.4, 0.3, 0.15),
    raw=(0.0, 1.0, True),
    doc="Lower contrast: values pulled toward the image's per-channel mean by `factor`.",
)
def _contrast(x, factor, generator):
    mean = x.mean(dim=(2, 3), keepdim=True)
    return (x - mean) * factor + mean


@_register(
    "brightness",
    param="delta",
    values=(0.05, 0.1, 0.15, 0.2, 0.3),
    raw=(0.0, 1.0, True),
    doc="Brighter: `delta` added to the HSV value (to the grey level for 1 channel).",
)
def _brightness(x, delta, generator):
    value = x.amax(dim=1, keepdim=True)
    brighter = (value + delta).clamp(max=1.0)
    return torch.where(value > 0, x * (brighter / value.clamp(min=1e-12)), brighter)


@_register(
    "pixelate",
    param="factor",
    values=(0.95, 0.9, 0.85, 0.75, 0.65),
    raw=(0.0, 1.0, False),
    doc="Pixelation: area-downsampled to `factor` of the size, then blown up (nearest).",
)
def _pixelate(x, factor, generator):
    h, w = x.shape[-2:]
    small = F.interpolate(x, size=(max(1, int(h * factor)), max(1, int(w * factor))), mode="area")
    return F.interpolate(small, size=(h, w), mode="nearest")


def _plasma(n: int, side: int, decay: float, like: torch.Tensor, generator) -> torch.Tensor:
    """``n`` diamond-square fractals [n, side, side] in [0, 1]; ``side`` is a power of two.

    The recurrence of make_cifar_c.py's ``plasma_fractal``: the random offset at each level is
    ``wibble * U(-wibble, wibble)``, and ``wibble`` is divided by ``decay`` per level; the map
    wraps around at its edges (np.roll there, torch.roll here)."""
    m = torch.zeros(n, side, side, device=like.device, dtype=like.dtype)
    step, wibble = side, 100.0

    def wibbled_mean(total: torch.Tensor) -> torch.Tensor:
        offset = wibble * wibble * (2 * _uniform(like, generator, total.shape) - 1)
        return total / 4 + offset

    while step >= 2:
        half = step // 2
        corners = m[:, ::step, ::step]
        square = corners + corners.roll(-1, 1)
        m[:, half::step, half::step] = wibbled_mean(square + square.roll(-1, 2))
        centres, corners = m[:, half::step, half::step], m[:, ::step, ::step]
        across = centres + centres.roll(1, 1) + corners + corners.roll(-1, 2)
        down = centres + centres.roll(1, 2) + corners + corners.roll(-1, 1)
        m[:, ::step, half::step] = wibbled_mean(across)
        m[:, half::step, ::step] = wibbled_mean(down)
        step //= 2
        wibble /= decay
    m = m - m.amin(dim=(1, 2), keepdim=True)
    return m / m.amax(dim=(1, 2), keepdim=True)


@_register(
    "fog",
    param="(intensity, decay)",
    values=((0.2, 3.0), (0.5, 3.0), (0.75, 2.5), (1.0, 2.0), (1.5, 1.75)),
    doc="Fog: a plasma fractal added with `intensity`; lower decay = rougher fog.",
    random=True,
)
def _fog(x, params, generator):
    intensity, decay = params
    n, _, h, w = x.shape
    side = max(2, 1 << (max(h, w) - 1).bit_length())
    fog = _plasma(n, side, decay, x, generator)[:, None, :h, :w]
    peak = x.amax(dim=(1, 2, 3), keepdim=True)
    # rescaled as the reference does: the image's peak under the densest fog maps to the peak
    return (x + intensity * fog) * peak / (peak + intensity)


@_register(
    "rotation",
    param="degrees",
    values=(5, 10, 15, 20, 30),
    raw=(0.0, 180.0, True),
    doc="Rotation by +/- `degrees` (random sign per image), bilinear, black corners.",
    random=True,
)
def _rotation(x, degrees, generator):
    # torchvision is imported on use: it is slow to import and only rotation needs it.
    from torchvision.transforms.v2.functional import InterpolationMode, rotate

    positive = _uniform(x, generator, (x.shape[0], 1, 1, 1)) < 0.5
    turn = [rotate(x, sign * degrees, interpolation=InterpolationMode.BILINEAR) for sign in (1, -1)]
    return torch.where(positive, *turn)


@_register(
    "jpeg",
    param="quality",
    values=(80, 65, 58, 50, 40),
    raw=(1.0, 100.0, True),
    integer=True,
    doc="JPEG compression artefacts: an 8-bit encode/decode round trip at `quality`.",
)
def _jpeg(x, quality, generator):
    # [N, H, W, C] uint8; a grey image drops its channel axis for PIL's "L" mode
    pixels = (x * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    decoded = []
    for image in pixels:
        buffer = io.BytesIO()
        Image.fromarray(image.squeeze(2) if image.shape[2] == 1 else image).save(
            buffer, format="JPEG", quality=quality
        )
        decoded.append(np.asarray(Image.open(buffer)).reshape(image.shape))
    out = torch.from_numpy(np.stack(decoded)).permute(0, 3, 1, 2)
    return out.to(device=x.device, dtype=x.dtype) / 255
