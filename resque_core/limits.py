"""Resource limits on untrusted input: every limit's value, its check and its error text.

Each check runs before the memory or time it guards is spent: image sizes are read from the
file's header before any pixel is decoded, an .npz member's shape and dtype from its .npy header
before the array is allocated, a k-means run is refused before it starts. ``docs/LIMITS.md``
lists every limit with its value, its exact message and why it has that value. Data problems
raise :class:`~resque_core.errors.DataError`, option values
:class:`~resque_core.errors.ConfigError`.
"""

from __future__ import annotations

import re
import stat
import time
import zipfile
from collections.abc import Sequence
from typing import Any

import numpy as np

from .errors import ConfigError, DataError

__all__ = [
    "CLASS_COUNT_FLOOR",
    "KMEANS_CHUNK_WORK",
    "KMEANS_MAX_ITER",
    "KMEANS_MAX_SECONDS",
    "KMEANS_MAX_WORK",
    "MAX_IMAGE_PIXELS",
    "MAX_IMAGE_SIDE",
    "MAX_INPUT_SIDE",
    "MAX_TASK_CLASSES",
    "MEMORY_FALLBACK_BYTES",
    "MEMORY_FRACTION",
    "ZIP_MAX_BYTES",
    "ZIP_MAX_MEMBERS",
    "ZIP_MAX_RATIO",
    "ZIP_RATIO_MIN_BYTES",
    "KMeansClock",
    "check_class_count",
    "check_decoded_bytes",
    "check_image_dimensions",
    "check_input_batch",
    "check_kmeans_work",
    "check_task_classes",
    "check_zip_members",
    "image_bomb_error",
    "memory_budget",
    "model_input_size",
]

# ------------------------------------------------------------------------------ images
MAX_IMAGE_SIDE = 16_384
"""Largest width or height of one image file, in pixels (JPEG's own maximum is 65,535)."""

MAX_IMAGE_PIXELS = 50_000_000
"""Largest width x height of one image file: a 50-megapixel photo decodes to 150 MB as RGB.
Below Pillow's own warning threshold (89,478,485), so a refused image is refused here, in our
words; Pillow's DecompressionBombError (over twice that) is turned into the same message."""

# ------------------------------------------------------------------------------ memory
MEMORY_FRACTION = 0.5
"""Share of the memory available now (MemAvailable) one data set may take while it is decoded."""

MEMORY_FALLBACK_BYTES = 4 * 1024**3
"""The decoding budget where /proc/meminfo cannot be read (not Linux): 4 GiB."""

# ------------------------------------------------------------------------------ labels
CLASS_COUNT_FLOOR = 1_000
"""A data set may have as many classes as images, and at least this many whatever its size (a
small sample of ImageNet keeps its 1,000 class names). Per-class sums take K x D floats."""

# ------------------------------------------------------------------------------ model input
MAX_INPUT_SIDE = 1_024
"""Largest model input height or width: a batch of 128 RGB float32 inputs of 1,024 x 1,024 is
1.5 GiB already; classification models take 224 to 600."""

# ------------------------------------------------------------------------------ k-means
MAX_TASK_CLASSES = 1_000
"""Most classes a new task may have for RESQUE_task's k-means (one cluster per class)."""

KMEANS_MAX_ITER = 300
"""Most Lloyd iterations per k-means run (scikit-learn's default, stated here)."""

KMEANS_MAX_SECONDS = 120.0
"""Wall-clock bound of one k-means run (one of the up to four RESQUE_task variants)."""

KMEANS_MAX_WORK = 10**12
"""Most multiply-adds of one Lloyd iteration (samples x clusters x dimensions): the clock is read
between iterations, so one iteration must itself stay short (about a minute on two cores)."""

KMEANS_CHUNK_WORK = 2 * 10**10
"""Multiply-adds run between two reads of the clock (a few seconds); not a limit. A run that
fits in one chunk is one plain scikit-learn fit, bit for bit."""

# ------------------------------------------------------------------------------ zip archives
ZIP_MAX_MEMBERS = 200_000
"""Most members of a data zip."""

ZIP_MAX_BYTES = 2 * 1024**3
"""Most bytes a data zip's members may expand to in all."""

ZIP_MAX_RATIO = 200
"""Largest compression ratio of one zip member (images hardly compress)."""

ZIP_RATIO_MIN_BYTES = 1024**2
"""The ratio applies from this member size up: small members cannot bomb (the total bounds many
of them), and tiny flat images can compress beyond the ratio."""


def _size(nbytes: float) -> str:
    """``1.7 GiB`` or ``12.0 MiB``: a memory figure a person reads at a glance."""
    if nbytes >= 1024**3:
        return f"{nbytes / 1024**3:,.1f} GiB"
    return f"{nbytes / 1024**2:,.1f} MiB"


# ------------------------------------------------------------------------------ checks: images
def _image_limits() -> str:
    return (
        f"images may have at most {MAX_IMAGE_SIDE:,} pixels a side and {MAX_IMAGE_PIXELS:,} "
        "in all; refused as a possible decompression bomb: shrink the image or remove it"
    )


def check_image_dimensions(size: tuple[int, int], where: str) -> None:
    """Refuse an image of ``size`` (width, height), read from its header, before decoding it.

    ``where`` names the image (``image '/d/cat/0.png'``).
    """
    width, height = size
    if max(width, height) > MAX_IMAGE_SIDE or width * height > MAX_IMAGE_PIXELS:
        raise DataError(f"{where} is {width:,} x {height:,} pixels; {_image_limits()}")


def image_bomb_error(where: str) -> DataError:
    """The error for Pillow's DecompressionBombError (raised before the header reaches us)."""
    return DataError(f"{where} is over {MAX_IMAGE_PIXELS:,} pixels; {_image_limits()}")


# ------------------------------------------------------------------------------ checks: memory
def _mem_available() -> int | None:
    """MemAvailable from /proc/meminfo in bytes, or None where it cannot be read."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def memory_budget() -> tuple[int, str]:
    """(bytes one data set may take while decoded, how that figure was found)."""
    available = _mem_available()
    if available is None:
        return MEMORY_FALLBACK_BYTES, "the fixed budget where free memory is unknown"
    share = f"{MEMORY_FRACTION:.0%}"
    return int(available * MEMORY_FRACTION), f"{share} of the {_size(available)} available now"


def check_decoded_bytes(nbytes: int, where: str) -> None:
    """Refuse data whose decoding would take ``nbytes`` bytes of memory, before allocating it."""
    budget, basis = memory_budget()
    if nbytes > budget:
        raise DataError(
            f"{where} would take {_size(nbytes)} of memory to decode, over the limit of "
            f"{_size(budget)} ({basis}); use fewer or smaller images"
        )


def check_input_batch(
    image_size: tuple[int, int], channels: int, batch_size: int, *, name: str = "image_size"
) -> None:
    """Refuse a model input so large that one batch of it, as float32, would not fit in the
    memory budget (before the layer outputs, which take more)."""
    height, width = image_size
    nbytes = int(batch_size) * int(channels) * int(height) * int(width) * 4
    budget, basis = memory_budget()
    if nbytes > budget:
        raise ConfigError(
            f"{name} {height} x {width}: one batch of {batch_size:,} such images with "
            f"{channels} channel(s) takes {_size(nbytes)} as model input alone, over the limit "
            f"of {_size(budget)} ({basis}); give a smaller image size or batch size"
        )


# ------------------------------------------------------------------------------ checks: labels
def check_class_count(count: int, n_samples: int, where: str, *, found: str) -> None:
    """Refuse a data set of ``count`` classes for ``n_samples`` images beyond the class limit
    (``max(n_samples, CLASS_COUNT_FLOOR)``), before any per-class structure is allocated.

    ``found`` says where the count came from (``"labels go up to 9"``, ``"10 class names"``).
    """
    limit = max(n_samples, CLASS_COUNT_FLOOR)
    if count > limit:
        raise DataError(
            f"{where}: {found}, that is {count:,} classes for {n_samples:,} images; a data set "
            f"may have at most {limit:,} classes (one per image, or {CLASS_COUNT_FLOOR:,}): "
            "number the classes 0..K-1"
        )


# ------------------------------------------------------------------------------ checks: model
def model_input_size(value: Any, *, name: str = "image_size") -> tuple[int, int]:
    """``value`` as (height, width) after checking it is two positive integers of at most
    :data:`MAX_INPUT_SIDE`; ConfigError naming ``name`` otherwise."""
    try:
        values = tuple(value)
    except TypeError:
        values = ()
    if len(values) != 2 or not all(
        isinstance(v, int | np.integer) and not isinstance(v, bool) and v > 0 for v in values
    ):
        raise ConfigError(f"{name} must be two positive integers (height, width), got {value!r}")
    height, width = int(values[0]), int(values[1])
    if max(height, width) > MAX_INPUT_SIDE:
        raise ConfigError(
            f"{name} {height} x {width} is over the limit of {MAX_INPUT_SIDE:,} pixels a side "
            "for the model's input; give a smaller size (e.g. 224)"
        )
    return height, width


# ------------------------------------------------------------------------------ checks: k-means
def check_task_classes(count: int) -> None:
    """Refuse a new task of ``count`` classes for k-means before any embedding is computed."""
    if count > MAX_TASK_CLASSES:
        raise DataError(
            f"the new task has {count:,} classes; RESQUE_task clusters at most "
            f"{MAX_TASK_CLASSES:,} (one k-means cluster per class): use a task with fewer classes"
        )


def check_kmeans_work(n_samples: int, dim: int, clusters: int) -> None:
    """Refuse a k-means run whose Lloyd iterations would each exceed :data:`KMEANS_MAX_WORK`."""
    check_task_classes(clusters)
    work = n_samples * dim * clusters
    if work > KMEANS_MAX_WORK:
        raise DataError(
            f"k-means on {n_samples:,} embeddings of {dim:,} values with {clusters:,} clusters "
            f"needs {work:.1e} multiply-adds per iteration, over the limit of "
            f"{KMEANS_MAX_WORK:.0e}; use fewer samples (max task samples) or classes, or leave "
            "out the flattened variants (no --flatten; plan run.flatten false)"
        )


class KMeansClock:
    """The time and iteration bound of one k-means run on [N, D] embeddings with K clusters.

    Run :meth:`next_chunk` Lloyd iterations, then :meth:`advance` by the iterations run: it
    raises DataError once :data:`KMEANS_MAX_SECONDS` have passed with iterations left.
    ``exhausted`` is True once :data:`KMEANS_MAX_ITER` iterations have run.
    """

    def __init__(self, n_samples: int, dim: int, clusters: int):
        self._shape = (n_samples, dim, clusters)
        per_iteration = max(1, n_samples * dim * clusters)
        self.chunk = int(min(KMEANS_MAX_ITER, max(1, KMEANS_CHUNK_WORK // per_iteration)))
        self.iterations = 0
        self._started = time.monotonic()

    @property
    def exhausted(self) -> bool:
        return self.iterations >= KMEANS_MAX_ITER

    def next_chunk(self) -> int:
        """Iterations for the next fit: ``chunk``, or what is left of :data:`KMEANS_MAX_ITER`."""
        return min(self.chunk, KMEANS_MAX_ITER - self.iterations)

    def advance(self, done: int) -> None:
        self.iterations += done
        elapsed = time.monotonic() - self._started
        if elapsed > KMEANS_MAX_SECONDS and not self.exhausted:
            n, d, k = self._shape
            raise DataError(
                f"k-means on {n:,} embeddings of {d:,} values with {k:,} clusters did not "
                f"converge within {KMEANS_MAX_SECONDS:g} s (stopped after {self.iterations:,} "
                f"of at most {KMEANS_MAX_ITER:,} Lloyd iterations); use fewer samples (max task "
                "samples) or classes, or leave out the flattened variants (no --flatten; plan "
                "run.flatten false)"
            )


# ------------------------------------------------------------------------------ checks: zips
def check_zip_members(infos: Sequence[zipfile.ZipInfo]) -> None:
    """Refuse a data zip with too many members, unsafe names (absolute, ``..``, symbolic links)
    or members that expand too far, from its central directory alone (nothing is read)."""
    if len(infos) > ZIP_MAX_MEMBERS:
        raise DataError(
            f"zip has {len(infos):,} members (limit {ZIP_MAX_MEMBERS:,}); refused as a possible "
            "zip bomb"
        )
    total = 0
    for info in infos:
        name = info.filename
        parts = re.split(r"[\\/]", name)
        if name.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", name):
            raise DataError(f"zip member {name!r} is an absolute path; refused")
        if ".." in parts:
            raise DataError(f"zip member {name!r} escapes the archive; refused")
        if info.create_system == 3 and stat.S_ISLNK(info.external_attr >> 16):
            raise DataError(f"zip member {name!r} is a symbolic link; refused")
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size >= ZIP_RATIO_MIN_BYTES and ratio > ZIP_MAX_RATIO:
            raise DataError(
                f"zip member {name!r} expands {ratio:,.0f}x ({info.file_size:,} bytes from "
                f"{info.compress_size:,}); refused as a possible zip bomb (limit "
                f"{ZIP_MAX_RATIO}x)"
            )
        total += info.file_size
        if total > ZIP_MAX_BYTES:
            raise DataError(
                f"zip expands to more than {ZIP_MAX_BYTES / 1024**3:g} GiB (at member "
                f"{name!r}); refused as a possible zip bomb"
            )
