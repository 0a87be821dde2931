"""What a model's input looks like (:class:`Preprocess`: size, channels, mean and std) and the
parsers of its CLI and app settings (:func:`parse_floats`, :func:`parse_image_size`)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import torch

from .. import limits
from ..errors import ConfigError, DataError

__all__ = ["Preprocess", "parse_floats", "parse_image_size"]

_LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601, as Pillow's RGB -> L


def _per_channel(values: Any, channels: int, what: str, *, positive: bool) -> tuple[float, ...]:
    try:
        vals = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        vals = ()
    if len(vals) not in (1, channels) or not all(math.isfinite(v) for v in vals):
        raise ConfigError(
            f"{what} must be 1 or {channels} finite numbers (one per channel), got {values!r}"
        )
    if positive and min(vals) <= 0:
        raise ConfigError(f"{what} values must be positive, got {values!r}")
    return vals * channels if len(vals) == 1 else vals


@dataclass(frozen=True)
class Preprocess:
    """What the model's input looks like: size ``image_size`` (H, W), ``channels`` (1 or 3),
    and per-channel ``mean``/``std`` for :meth:`normalize` (default 0.5 / 0.5, the reference's
    ``Normalize(0.5, 0.5)``). One mean/std value is expanded to every channel, so equal settings
    compare equal."""

    image_size: tuple[int, int]
    channels: int = 3
    mean: tuple[float, ...] = (0.5,)
    std: tuple[float, ...] = (0.5,)

    def __post_init__(self) -> None:
        size = limits.model_input_size(self.image_size)
        if self.channels not in (1, 3) or isinstance(self.channels, bool):
            raise ConfigError(f"channels must be 1 or 3, got {self.channels!r}")
        c = int(self.channels)
        object.__setattr__(self, "image_size", size)
        object.__setattr__(self, "channels", c)
        object.__setattr__(self, "mean", _per_channel(self.mean, c, "mean", positive=False))
        object.__setattr__(self, "std", _per_channel(self.std, c, "std", positive=True))

    def to_unit(
        self, images: torch.Tensor, *, device: torch.device | str | None = None
    ) -> torch.Tensor:
        """uint8 or float images [N, 1|3, H', W'] -> float32 [N, channels, H, W] in [0, 1].

        uint8 is divided by 255, float is used as is. Resized (bilinear, antialiased) only when
        the size differs; grey -> RGB repeats the channel, RGB -> grey is the BT.601 luma
        0.299 R + 0.587 G + 0.114 B. Moved to ``device`` first (uint8 is 4x cheaper to move).
        """
        if images.ndim != 4 or images.shape[1] not in (1, 3):
            raise DataError(f"images must be [N, C, H, W] with C 1 or 3, got {list(images.shape)}")
        if device is not None:
            images = images.to(device)
        if images.dtype == torch.uint8:
            x = images.to(torch.float32).div_(255)  # a new tensor: divided where it lies
        elif images.is_floating_point():
            x = images.to(torch.float32)
        else:
            raise DataError(f"images must be uint8 or float, got {images.dtype}")
        if x.shape[1] == 3 and self.channels == 1:  # shrink channels before resizing: cheaper
            weights = torch.tensor(_LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
            x = (x * weights).sum(dim=1, keepdim=True)
        if tuple(x.shape[-2:]) != self.image_size:
            x = torch.nn.functional.interpolate(
                x, size=self.image_size, mode="bilinear", align_corners=False, antialias=True
            )
        if x.shape[1] == 1 and self.channels == 3:
            x = x.expand(-1, 3, -1, -1).contiguous()
        return x

    def notes(self, shape: tuple[int, ...]) -> list[str]:
        """What :meth:`to_unit` does to images of ``shape`` (C, H, W) on their way to the model,
        in words for the user: grey <-> colour and up- or downscaling (empty when nothing)."""
        c, h, w = (int(v) for v in shape[-3:])
        out = []
        if c == 1 and self.channels == 3:
            out.append("grey images: the one channel is repeated into the model's three")
        elif c == 3 and self.channels == 1:
            out.append("colour images: turned grey (luma) for the model's one channel")
        th, tw = self.image_size
        if (h, w) != (th, tw):
            factor = max(th / h, tw / w)
            if factor > 1:
                out.append(
                    f"{h}×{w} images are upscaled {factor:.3g}× to the model's {th}×{tw}: they "
                    "hold less detail than the images the model learned from"
                )
            else:
                out.append(f"{h}×{w} images are downscaled to the model's {th}×{tw}")
        return out

    def normalize(self, x: torch.Tensor, *, inplace: bool = False) -> torch.Tensor:
        """(x - mean) / std per channel, for float [N, channels, H, W]; ``inplace`` overwrites
        ``x`` (same values, no second copy of the batch) for a caller that owns it."""
        if x.ndim != 4 or x.shape[1] != self.channels:
            raise DataError(f"expected [N, {self.channels}, H, W] inputs, got {list(x.shape)}")
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        if inplace:
            return x.sub_(mean).div_(std)
        return (x - mean) / std

    def as_dict(self) -> dict[str, Any]:
        """Canonical JSON-ready form: image_size [H, W], channels, per-channel mean and std."""
        return {
            "image_size": list(self.image_size),
            "channels": self.channels,
            "mean": list(self.mean),
            "std": list(self.std),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Preprocess:
        """Inverse of :meth:`as_dict` (``mean``/``std`` optional); ConfigError on other keys."""
        keys = {"image_size", "channels", "mean", "std"}
        if not isinstance(d, dict) or "image_size" not in d or set(d) - keys:
            raise ConfigError(
                f"preprocessing must be a mapping with image_size and optional channels, mean, "
                f"std; got {d!r}"
            )
        return cls(**d)


def parse_floats(text: str, *, name: str, positive: bool = False) -> tuple[float, ...]:
    """``"0.5"`` or ``"0.229,0.224,0.225"`` -> floats; ``positive`` rejects values <= 0 (for a
    std). ``name`` is the flag named in the ConfigError."""
    try:
        values = tuple(float(v) for v in str(text).split(","))
        ok = all(math.isfinite(v) for v in values)
    except ValueError:
        ok = False
    if not ok:
        raise ConfigError(
            f"{name} must be one number or comma-separated numbers (e.g. 0.5 or "
            f"0.229,0.224,0.225), got {text!r}"
        )
    if positive and min(values) <= 0:
        raise ConfigError(f"{name} values must be positive, got {text!r}")
    return values


def parse_image_size(text: str, *, name: str = "--image-size") -> tuple[int, int]:
    """``"32"`` -> (32, 32); ``"32x28"`` or ``"32,28"`` -> (32, 28) as (height, width), each at
    most :data:`~resque_core.limits.MAX_INPUT_SIDE`."""
    m = re.fullmatch(r"\s*(\d+)\s*(?:[x,X]\s*(\d+)\s*)?", str(text))
    size = (int(m[1]), int(m[2] or m[1])) if m else (0, 0)
    if min(size) < 1:
        raise ConfigError(
            f"{name} must be N or HxW with positive integers (e.g. 32 or 32x28), got {text!r}"
        )
    return limits.model_input_size(size, name=name)
