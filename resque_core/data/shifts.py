"""Synthetic distribution shifts: seeded corruptions of image batches at severities 1-5 or at a
raw parameter value (``gaussian_noise:3`` is sigma 0.08; ``gaussian_noise@0.08`` says so directly).

Every shift maps a float batch ``x`` [N, C, H, W] in [0, 1] (C = 1 or 3, float32 or float64, on
any device) to a new batch of the same shape, dtype and device, clamped to [0, 1]. All randomness
is drawn from the caller's ``torch.Generator`` (on ``x``'s device): the same generator state and
input give the same output, bit for bit on CPU. The input is never modified.

How each corruption is computed, and where it differs from CIFAR-10-C and from the RESQUE
reference code: :mod:`resque_core.data.corruptions`. See docs/METHOD.md for the measured size
of each difference.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .._util import unknown_name_message
from ..errors import DataError, ShiftError
from .corruptions import _REFERENCE_FNS, _SHIFTS, _Shift

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
    raw = "@" in text
    name, _, value = text.partition("@" if raw else ":")
    name = name.strip().lower().replace("-", "_")
    try:
        level = (float if raw else int)(value)
    except ValueError:
        level = None
    if not name or level is None:
        how = (
            "NAME@VALUE with the shift's raw parameter, e.g. gaussian_noise@0.08, or "
            "NAME:SEVERITY, e.g. gaussian_noise:3"
            if raw
            else "NAME:SEVERITY with SEVERITY 1-5, e.g. gaussian_noise:3"
        )
        raise ShiftError(f"cannot read shift {text!r}: write it as {how}")
    return ShiftSpec(name, level=level) if raw else ShiftSpec(name, level)


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
