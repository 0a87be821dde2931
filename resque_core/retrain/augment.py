"""Augmentation of training images, batched and seeded (``torch.Generator``), so it runs on any
device and a CPU run is reproducible bit for bit. Policies (:data:`~.config.AUGMENTATIONS`):

- ``project`` (the default): random horizontal flip, one bilinear affine warp with rotation within
  +-25 deg, scale 0.9-1.1 and translation up to 10%, then brightness and contrast jitter of +-20%
  (no shear, saturation or hue). Stored procedures before the reference policy existed call it
  ``reference``; :func:`~.config.stored_augmentation` reads that name back as ``project``.
- ``no_flip``: ``project`` without the flip (mirrored digits or letters are other symbols).
- ``reference``: the RESQUE reference code's noise-retraining transforms (its
  ``configurations/TFs/t_1.json``), in its order: ``RandomHorizontalFlip()``,
  ``RandomRotation(25)``, ``RandomAffine(degrees=20, shear=20, scale=(0.8, 1.2))``,
  ``ColorJitter(0.1, 0.1, 0.1, 0.1)``.
- ``reference_task``: its task-retraining transforms (``options/transforms/t1.json``): the same
  with affine scale 0.75-1.25 and colour jitter 0.25.
- ``none``.

The reference policies follow torchvision's semantics: rotation and affine are two separate
nearest-neighbour resamplings about the image centre with black fill; a single shear value is an
x-shear drawn from U(-20, 20) degrees; colour jitter applies brightness (scale), contrast (blend
with the image's mean grey), saturation (blend with the grey image) and hue (shift in HSV) in a
random order per image, with factors from U(1 - j, 1 + j) and a hue shift from U(-j, j) of a turn;
a one-channel image has no saturation or hue, as with PIL's "L" images. One difference remains:
the reference transforms 8-bit PIL images, so it rounds to 8 bits after each step; here the
images stay float in [0, 1].
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .config import Augmentation

__all__ = ["augment"]

_ROTATION_DEG, _SCALE, _TRANSLATE, _JITTER = 25.0, 0.1, 0.1, 0.2

# the reference's transforms: (rotation, affine degrees, shear, scale range, colour jitter)
_REFERENCE = {
    "reference": (25.0, 20.0, 20.0, (0.8, 1.2), 0.1),
    "reference_task": (25.0, 20.0, 20.0, (0.75, 1.25), 0.25),
}


def augment(x: torch.Tensor, policy: Augmentation, generator: torch.Generator) -> torch.Tensor:
    """Per-sample random augmentation of a batch [B, C, H, W] in [0, 1] (see the module
    docstring); the random draws come from the CPU ``generator`` whatever ``x``'s device, so
    results do not depend on the device's RNG."""
    if policy == "none":
        return x
    if policy in _REFERENCE:
        return _reference(x, _REFERENCE[policy], generator)
    b = x.shape[0]
    r = torch.rand(b, 7, generator=generator).to(device=x.device, dtype=x.dtype)
    if policy == "project":
        x = torch.where((r[:, 0] < 0.5)[:, None, None, None], x.flip(-1), x)
    angle = (r[:, 1] * 2 - 1) * math.radians(_ROTATION_DEG)
    scale = 1 + (r[:, 2] * 2 - 1) * _SCALE
    # affine_grid works in [-1, 1] coordinates: a shift of 10% of the side is 0.2 there
    tx, ty = (r[:, 3] * 2 - 1) * 2 * _TRANSLATE, (r[:, 4] * 2 - 1) * 2 * _TRANSLATE
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    brightness = 1 + (r[:, 5] * 2 - 1) * _JITTER
    contrast = 1 + (r[:, 6] * 2 - 1) * _JITTER
    x = x * brightness[:, None, None, None]
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return ((x - mean) * contrast[:, None, None, None] + mean).clamp_(0, 1)


def _uniform(u: torch.Tensor, low: float, high: float) -> torch.Tensor:
    return low + (high - low) * u


def _warp(x: torch.Tensor, inverse: torch.Tensor) -> torch.Tensor:
    """Resample ``x`` [B, C, H, W] about its centre: output pixel p (in pixels, from the
    centre) takes input pixel ``inverse[b] @ p``, nearest neighbour, black outside."""
    h, w = x.shape[-2:]
    to_norm = torch.tensor([2 / w, 2 / h], device=x.device, dtype=x.dtype)
    # affine_grid's [-1, 1] coordinates: theta = N @ inverse @ N^-1 keeps angles true on
    # non-square images
    theta2 = to_norm[None, :, None] * inverse / to_norm[None, None, :]
    theta = torch.cat([theta2, torch.zeros_like(theta2[:, :, :1])], dim=2)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)


def _rotation_inverse(angle: torch.Tensor) -> torch.Tensor:
    """Inverse of a rotation by ``angle`` (radians) [B] -> [B, 2, 2]."""
    c, s = torch.cos(angle), torch.sin(angle)
    return torch.stack([torch.stack([c, s], 1), torch.stack([-s, c], 1)], 1)


def _grey(x: torch.Tensor) -> torch.Tensor:
    """ITU-R 601 grey [B, 1, H, W] of RGB (torchvision's weights); a grey image is itself."""
    if x.shape[1] == 1:
        return x
    weights = torch.tensor([0.2989, 0.587, 0.114], device=x.device, dtype=x.dtype)
    return (x * weights[None, :, None, None]).sum(1, keepdim=True)


def _hue_shift(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """RGB [B, 3, H, W] with its HSV hue turned by ``shift`` [B] (fractions of a turn)."""
    r, g, b = x.unbind(1)
    maxc, minc = x.amax(1), x.amin(1)
    delta = maxc - minc
    safe = torch.where(delta > 0, delta, torch.ones_like(delta))
    hue = torch.where(
        maxc == r,
        ((g - b) / safe) % 6,
        torch.where(maxc == g, (b - r) / safe + 2, (r - g) / safe + 4),
    )
    hue = torch.where(delta > 0, hue / 6, torch.zeros_like(hue))
    hue = (hue + shift[:, None, None]) % 1.0
    sat = torch.where(
        maxc > 0, delta / torch.where(maxc > 0, maxc, torch.ones_like(maxc)), 0 * maxc
    )
    value = maxc
    sector = torch.floor(hue * 6)
    frac = hue * 6 - sector
    sector = sector.long() % 6
    p = value * (1 - sat)
    q = value * (1 - sat * frac)
    t = value * (1 - sat * (1 - frac))
    table = torch.stack(
        [
            torch.stack([value, t, p], 1),
            torch.stack([q, value, p], 1),
            torch.stack([p, value, t], 1),
            torch.stack([p, q, value], 1),
            torch.stack([t, p, value], 1),
            torch.stack([value, p, q], 1),
        ]
    )  # [6, B, 3, H, W]
    index = sector[None, :, None].expand(1, -1, 3, -1, -1)
    return table.gather(0, index)[0]


def _jitter(x: torch.Tensor, amount: float, u: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """ColorJitter(amount, amount, amount, amount) with per-image factors from ``u`` [B, 4]
    and per-image op order ``order`` [B, 4] (a permutation of 0..3)."""
    b = x.shape[0]
    factors = _uniform(u[:, :3], 1 - amount, 1 + amount)
    factors = factors.clamp_min(0)[:, :, None, None, None]
    hue = _uniform(u[:, 3], -amount, amount)
    rows = torch.arange(b, device=x.device)

    def brightness(img):
        return (img * factors[:, 0]).clamp(0, 1)

    def contrast(img):
        mean = _grey(img).mean(dim=(1, 2, 3), keepdim=True)
        return (factors[:, 1] * img + (1 - factors[:, 1]) * mean).clamp(0, 1)

    def saturation(img):
        if img.shape[1] == 1:
            return img
        return (factors[:, 2] * img + (1 - factors[:, 2]) * _grey(img)).clamp(0, 1)

    def hue_op(img):
        return img if img.shape[1] == 1 else _hue_shift(img, hue)

    ops = (brightness, contrast, saturation, hue_op)
    for step in range(4):
        options = torch.stack([op(x) for op in ops])  # [4, B, C, H, W]
        x = options[order[:, step], rows]
    return x


def _reference(x: torch.Tensor, params: tuple, generator: torch.Generator) -> torch.Tensor:
    rotation, degrees, shear, (low, high), amount = params
    b = x.shape[0]
    u = torch.rand(b, 9, generator=generator)
    order = torch.argsort(torch.rand(b, 4, generator=generator), dim=1)
    u = u.to(device=x.device, dtype=x.dtype)
    order = order.to(x.device)
    flip = (u[:, 0] < 0.5)[:, None, None, None]
    x = torch.where(flip, x.flip(-1), x)
    # RandomRotation(rotation): one nearest resampling; torchvision's rotate(a) is affine(-a)
    x = _warp(x, _rotation_inverse(-torch.deg2rad(_uniform(u[:, 1], -rotation, rotation))))
    # RandomAffine(degrees, shear=shear, scale=(low, high)): A = s R(a) [[1, -tan sx], [0, 1]]
    angle = torch.deg2rad(_uniform(u[:, 2], -degrees, degrees))
    scale = _uniform(u[:, 3], low, high)
    tan_shear = torch.tan(torch.deg2rad(_uniform(u[:, 4], -shear, shear)))
    one, zero = torch.ones_like(scale), torch.zeros_like(scale)
    shear_inverse = torch.stack([torch.stack([one, tan_shear], 1), torch.stack([zero, one], 1)], 1)
    inverse = shear_inverse @ _rotation_inverse(angle) / scale[:, None, None]
    x = _warp(x, inverse)
    return _jitter(x, amount, u[:, 5:9], order)
