"""Augmentation of training images, batched and seeded (``torch.Generator``), so it runs on any
device and a CPU run is reproducible bit for bit: ``reference`` = random horizontal flip, rotation
within +-25 deg, affine scale 0.9-1.1 and translation up to 10%, brightness and contrast jitter of
+-20% (the reference's flip / rotation / affine / colour jitter; hue and saturation are not
jittered); ``no_flip`` = the same without the flip (mirrored digits or letters are other symbols);
``none``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .config import Augmentation

__all__ = ["augment"]

_ROTATION_DEG, _SCALE, _TRANSLATE, _JITTER = 25.0, 0.1, 0.1, 0.2


def augment(x: torch.Tensor, policy: Augmentation, generator: torch.Generator) -> torch.Tensor:
    """Per-sample random augmentation of a batch [B, C, H, W] in [0, 1] (see the module
    docstring); the random draws come from the CPU ``generator`` whatever ``x``'s device, so
    results do not depend on the device's RNG."""
    if policy == "none":
        return x
    b = x.shape[0]
    r = torch.rand(b, 7, generator=generator).to(device=x.device, dtype=x.dtype)
    if policy == "reference":
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
