"""The corruptions behind :mod:`resque_core.data.shifts`, registered by name with their
parameter at each severity and, for the reference pipeline, the reference code's variant.

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
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

__all__: list[str] = []  # private to the data room: shifts.py is the public face

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
