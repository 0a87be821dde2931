"""Scoring settings: which checkpoint and how to preprocess for it (:class:`ModelConfig`), how to
sample and run (:class:`RunConfig`), and the device. Both configs are frozen and check their
values when built, so CLI flags, plan files and the app share one rule and one message."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from ..data.shifts import COMPAT_MODES
from ..errors import ConfigError
from ..limits import model_input_size

__all__ = ["ModelConfig", "RunConfig", "default_image_size", "resolve_device"]


# Allowed ranges (inclusive) of the integer settings, checked when a config is built, so that CLI
# flags, plan files and the app share one rule and one message.
MAX_SEED = 2**32 - 1  # scikit-learn's k-means and stratified splits take 32-bit seeds
MAX_BATCH_SIZE = 65_536
MAX_SAMPLES = 1_000_000_000  # per class or per task; no data set needs a larger cap
MAX_CLASSES = 100_000  # classifier outputs (ImageNet-21k has 21,843)
MAX_CHANNELS = 64  # input channels, and values of a per-channel mean or std


def _integer(value: Any, low: int, high: int, what: str) -> None:
    """ConfigError unless ``value`` is an int (not a bool) in ``[low, high]``."""
    if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        got = type(value).__name__
    else:  # beyond 128 bits the digits say nothing more (and past 4,300 Python refuses them)
        got = (
            str(value) if value.bit_length() <= 128 else f"an integer of {value.bit_length()} bits"
        )
    raise ConfigError(f"{what} must be an integer from {low:,} to {high:,}, got {got}")


def _norm_values(values: Any, what: str, *, positive: bool) -> None:
    """ConfigError unless ``values`` is a tuple of 1 to MAX_CHANNELS finite numbers (> 0 if
    ``positive``)."""
    numbers = isinstance(values, tuple) and all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in values
    )
    shown = type(values).__name__
    if numbers:
        # float() of an int beyond 1e308 overflows: such a value is as unusable as infinity.
        floats = [
            float(v) if not isinstance(v, int) or v.bit_length() < 1024 else math.inf
            for v in values
        ]
        if 1 <= len(floats) <= MAX_CHANNELS and all(
            math.isfinite(v) and (v > 0 or not positive) for v in floats
        ):
            return
        shown = ", ".join(f"{v:g}" for v in floats[:8]) + (", ..." if len(floats) > 8 else "")
    kind = "positive finite numbers" if positive else "finite numbers"
    raise ConfigError(
        f"normalisation {what} must be 1 to {MAX_CHANNELS} {kind} (one, or one per channel), "
        f"got {shown or 'none'}"
    )


@dataclass(frozen=True)
class ModelConfig:
    """Which checkpoint, how to build it, and how to preprocess its inputs.

    ``image_size`` None = the source data's native size; ``channels`` None = the model's input
    channels. ``mean``/``std``: one value or one per channel (the reference uses 0.5 / 0.5).
    ``trusted`` allows a pickled whole model (its code runs when loaded): the person running the
    comparison sets it (``--trust-checkpoint``, the app's switch); a plan file never carries it.
    """

    checkpoint: str
    arch: str | None = None
    num_classes: int | None = None
    in_channels: int = 3
    trusted: bool = False
    image_size: tuple[int, int] | None = None
    mean: tuple[float, ...] = (0.5,)
    std: tuple[float, ...] = (0.5,)

    def __post_init__(self) -> None:
        if self.num_classes is not None:
            _integer(self.num_classes, 1, MAX_CLASSES, "the number of classes")
        _integer(self.in_channels, 1, MAX_CHANNELS, "input channels")
        if self.image_size is not None:  # an input of 40,000 pixels a side would need 40 GB
            model_input_size(self.image_size)
        _norm_values(self.mean, "mean", positive=False)
        _norm_values(self.std, "std", positive=True)


@dataclass(frozen=True)
class RunConfig:
    """Sampling and execution settings.

    ``samples_per_class`` caps each class of every data set (None = all). ``max_task_samples``
    caps a task's data set after that (stratified, the same number per class; None = all): it
    bounds k-means' memory and time on large tasks, and the reference code has no such cap.
    ``flatten`` adds the un-pooled RESQUE_task variants (k-means on every activation value of
    the layer: slow and memory-heavy on early layers; off by default). ``amp`` uses mixed
    precision on a GPU if the first batch agrees with fp32. ``seed`` is in [0, 2**32 - 1].

    ``compat``: ``"project"`` (default) or ``"reference"``, which reproduces the reference code
    for comparison with the paper: its corruption pipeline
    (:mod:`~resque_core.data.shifts`: unclamped noise with the uint8 wrap, whole-pixel
    salt-and-pepper, scipy's blur, 8-bit truncation), feature-axis pooling of token layers, and
    every task sample (``max_task_samples`` is not applied). docs/METHOD.md lists each difference.
    """

    samples_per_class: int | None = None
    batch_size: int = 128
    device: str = "auto"
    seed: int = 0
    amp: bool = False
    max_task_samples: int | None = 5000
    flatten: bool = False
    compat: str = "project"

    def __post_init__(self):
        if self.samples_per_class is not None:
            _integer(self.samples_per_class, 1, MAX_SAMPLES, "samples per class")
        _integer(self.batch_size, 1, MAX_BATCH_SIZE, "batch size")
        _integer(self.seed, 0, MAX_SEED, "seed")
        if self.max_task_samples is not None:
            _integer(self.max_task_samples, 2, MAX_SAMPLES, "max task samples")
        if self.compat not in COMPAT_MODES:
            raise ConfigError(
                f"unknown compat mode {self.compat!r}; allowed: {', '.join(COMPAT_MODES)}"
            )

    @property
    def task_sample_cap(self) -> int | None:
        """The cap on a task's samples that applies: ``max_task_samples``, none in reference
        mode."""
        return None if self.compat == "reference" else self.max_task_samples

    def key_parts(self) -> dict[str, Any]:
        """What the mode adds to a cache key: nothing in the default mode (so its keys, and
        every value cached under them, stay as they were), ``{"compat": mode}`` otherwise."""
        return {} if self.compat == "project" else {"compat": self.compat}


def resolve_device(name: str) -> torch.device:
    """ "auto" -> the first CUDA GPU if there is one, else the CPU; "cpu"; "cuda" / "cuda:N"."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError):
        raise ConfigError(f"unknown device {name!r}: use auto, cpu, cuda or cuda:N") from None
    if dev.type not in ("cpu", "cuda"):
        raise ConfigError(f"unsupported device {name!r}: use auto, cpu, cuda or cuda:N")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r} requested but no CUDA GPU is available; use cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(
                f"device {name!r} does not exist: {torch.cuda.device_count()} GPU(s) available"
            )
    return dev


def default_image_size(arch: str | None) -> tuple[int, int]:
    """Input size used to list layers when no data is given: 224 for torchvision, else 32."""
    from ..model.archs import project_archs

    return (32, 32) if arch is None or arch in project_archs() else (224, 224)
