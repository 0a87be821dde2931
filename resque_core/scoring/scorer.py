"""End-to-end scoring: (checkpoint, data, candidate) -> RESQUE value, cached by content.

:class:`Scorer` holds one checkpoint and the run settings. It loads the model only when a result
is not already in the :class:`~resque_core.store.cache.ResultStore`, keeps data sets and source-side
activation sums in memory, and caches them on disk too, so that many candidates of one plan share
the source-side work.

Order of operations for every image: uint8 -> [0, 1] float -> resize / channel conversion to the
model's input (:class:`~resque_core.data.preprocess.Preprocess`) -> synthetic shift (if any) ->
normalise -> model. Shift noise is drawn per fixed chunk of 256 selected images from a generator
seeded by (seed, chunk number), so results do not depend on the batch size.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch

from .. import data as data_mod
from .._util import regular_file
from ..data.shifts import ShiftSpec, parse_shift, shifted_chunks
from ..errors import Cancelled, CheckpointError, ConfigError, DataError
from ..limits import check_task_classes, model_input_size
from ..store.cache import ResultStore, canonical_key
from .estimators import ClassSums, resque_dist, resque_task_variants
from .features import Batch, class_sums, embeddings

if TYPE_CHECKING:  # checkpoints pulls in torchvision: imported only when a model is needed
    from ..model import LayerInfo, LoadedCheckpoint

__all__ = ["ModelConfig", "RunConfig", "Score", "Scorer", "resolve_device"]

Kind = Literal["dist", "task"]
Progress = Callable[[str, int, int], None]
"""progress(stage, done, total): called after every batch; stage names what is being computed."""


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
    caps a task's data set after that (stratified). ``flatten`` adds the un-pooled RESQUE_task
    variants. ``amp`` uses mixed precision on a GPU if the first batch agrees with fp32.
    ``seed`` is in [0, 2**32 - 1].
    """

    samples_per_class: int | None = None
    batch_size: int = 128
    device: str = "auto"
    seed: int = 0
    amp: bool = False
    max_task_samples: int = 5000
    flatten: bool = True

    def __post_init__(self):
        if self.samples_per_class is not None:
            _integer(self.samples_per_class, 1, MAX_SAMPLES, "samples per class")
        _integer(self.batch_size, 1, MAX_BATCH_SIZE, "batch size")
        _integer(self.seed, 0, MAX_SEED, "seed")
        _integer(self.max_task_samples, 2, MAX_SAMPLES, "max task samples")


@dataclass
class Score:
    """One RESQUE result. ``per_class`` is keyed by class name. For a task, ``n_source`` is 0 and
    ``n_target`` the number of task samples used. ``seconds`` is this request's compute time
    (a cache hit costs almost nothing); ``compute_seconds`` the time the value took to compute."""

    kind: Kind
    value: float
    per_class: dict[str, float]
    layer: str
    n_source: int
    n_target: int
    seconds: float
    compute_seconds: float
    cached: bool
    device: str
    precision: str
    key: str
    variants: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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


class Scorer:
    """Scores candidates against one checkpoint. Not thread-safe: one per session/thread."""

    def __init__(
        self,
        model: ModelConfig,
        run: RunConfig | None = None,
        *,
        store: ResultStore | None = None,
        checkpoint: LoadedCheckpoint | None = None,
        source_data: str | None = None,
        progress: Progress | None = None,
        cancel: Callable[[], bool] | None = None,
    ):
        self.model_config = model
        self.run = run or RunConfig()
        self.store = store
        self.progress = progress
        self.cancel = cancel
        self.device = resolve_device(self.run.device)
        self.source_data = source_data
        self._ckpt = checkpoint
        self._sha256: str | None = checkpoint.sha256 if checkpoint else None
        self._data: dict[str, data_mod.ImageSet] = {}
        self._fingerprints: dict[str, str] = {}
        self._layers: dict[tuple[int, int, int], list[LayerInfo]] = {}
        self._sums: dict[str, tuple[ClassSums, str]] = {}

    # ----------------------------------------------------------------- identities (cheap)
    def checkpoint_sha256(self) -> str:
        if self._sha256 is None:
            if self.store is not None:
                # Checked first: a FIFO or /dev/zero must be refused, never hashed.
                path = regular_file(
                    self.model_config.checkpoint, what="checkpoint", error=CheckpointError
                )
                self._sha256 = self.store.file_sha256(path)
            else:
                self._sha256 = self.checkpoint().sha256
        return self._sha256

    def fingerprint(self, spec: str) -> str:
        if spec not in self._fingerprints:
            self._fingerprints[spec] = data_mod.data_fingerprint(spec)
        return self._fingerprints[spec]

    def _model_key(self) -> dict[str, Any]:
        m = self.model_config
        return {
            "sha256": self.checkpoint_sha256(),
            "arch": m.arch,
            "num_classes": m.num_classes,
            "in_channels": m.in_channels,
            "image_size": m.image_size,
            "mean": m.mean,
            "std": m.std,
            "device": self.device.type,
            "amp": self.run.amp and self.device.type == "cuda",
        }

    # ----------------------------------------------------------------- heavy objects (lazy)
    def checkpoint(self) -> LoadedCheckpoint:
        if self._ckpt is None:
            from ..model.checkpoints import load_checkpoint

            m = self.model_config
            self._ckpt = load_checkpoint(
                m.checkpoint,
                arch=m.arch,
                num_classes=m.num_classes,
                in_channels=m.in_channels,
                trusted=m.trusted,
            )
            self._sha256 = self._ckpt.sha256
        if next(self._ckpt.model.parameters(), torch.empty(0)).device != self.device:
            self._ckpt.model.to(self.device)
        return self._ckpt

    def dataset(self, spec: str) -> data_mod.ImageSet:
        if spec not in self._data:
            self._data[spec] = data_mod.load_data(spec, image_size=self.model_config.image_size)
        return self._data[spec]

    def preprocess(self, images: data_mod.ImageSet) -> data_mod.Preprocess:
        """Inputs are resized to ``image_size``, else to the source data's native size (the size
        the model was trained on), else to ``images``' own size."""
        m = self.model_config
        native = self.dataset(self.source_data) if self.source_data else images
        size = m.image_size or tuple(native.images.shape[-2:])
        channels = self.checkpoint().in_channels
        return data_mod.Preprocess(image_size=size, channels=channels, mean=m.mean, std=m.std)

    def layers(self, image_size: tuple[int, int] | None = None) -> list[LayerInfo]:
        """Layers of the model for inputs of ``image_size`` (default: config or arch default)."""
        from ..model import list_layers

        ckpt = self.checkpoint()
        size = image_size or self.model_config.image_size or default_image_size(ckpt.arch)
        shape = (ckpt.in_channels, *size)
        if shape not in self._layers:
            self._layers[shape] = list_layers(ckpt, input_shape=shape)
        return self._layers[shape]

    def resolve_layer(self, layer: str | None, kind: Kind, image_size: tuple[int, int]) -> str:
        from ..model import default_layer

        layers = self.layers(image_size)
        if layer is None:
            return default_layer(layers, kind)
        names = {info.name for info in layers}
        if layer not in names:
            from .._util import unknown_name_message
            from ..errors import LayerError

            raise LayerError(unknown_name_message("layer", layer, names))
        return layer

    # ----------------------------------------------------------------- batching
    def _select(self, images: data_mod.ImageSet, idx: np.ndarray | None = None) -> np.ndarray:
        labels = images.labels.numpy()
        base = np.arange(len(labels)) if idx is None else idx
        keep = data_mod.subsample_per_class(
            labels[base], self.run.samples_per_class, seed=self.run.seed
        )
        return base[keep]

    def _batches(
        self,
        images: data_mod.ImageSet,
        idx: np.ndarray,
        pre: data_mod.Preprocess,
        shift: ShiftSpec | None,
        stage: str,
    ) -> Iterator[Batch]:
        bs = self.run.batch_size
        done = 0
        pending_x: torch.Tensor | None = None
        pending_y: torch.Tensor | None = None
        chunks = shifted_chunks(
            images.images,
            idx,
            shift,
            to_unit=lambda u: pre.to_unit(u, device=self.device),
            seed=self.run.seed,
        )
        for sel, x in chunks:
            x = pre.normalize(x)
            y = images.labels[sel]
            if pending_x is not None:
                x, y = torch.cat([pending_x, x]), torch.cat([pending_y, y])
            while x.shape[0] >= bs:
                yield x[:bs], y[:bs]
                x, y = x[bs:], y[bs:]
                done += bs
                self._tick(stage, done, len(idx))
            pending_x, pending_y = (x, y) if x.shape[0] else (None, None)
        if pending_x is not None:
            yield pending_x, pending_y
            self._tick(stage, len(idx), len(idx))

    def _tick(self, stage: str, done: int, total: int) -> None:
        if self.cancel is not None and self.cancel():
            raise Cancelled(f"cancelled while computing {stage}; nothing partial was stored")
        if self.progress is not None:
            self.progress(stage, done, total)

    # ----------------------------------------------------------------- cached pieces
    def _cached_sums(
        self,
        key_parts: dict[str, Any],
        images: data_mod.ImageSet,
        idx: np.ndarray,
        pre: data_mod.Preprocess,
        shift: ShiftSpec | None,
        layer: str,
        stage: str,
    ) -> tuple[ClassSums, str]:
        key = canonical_key("class_sums", key_parts)
        if key in self._sums:
            return self._sums[key]
        hit = self.store.get(key) if self.store is not None else None
        if hit is not None:
            meta, arrays = hit
            sums = ClassSums(*arrays["sums"].shape)
            sums.sums, sums.counts = arrays["sums"], arrays["counts"]
            result = (sums, meta["precision"])
        else:
            batches = self._batches(images, idx, pre, shift, stage)
            result = class_sums(
                self.checkpoint().model,
                layer,
                batches,
                num_classes=images.num_classes,
                amp=self.run.amp,
            )
            if self.store is not None:
                self.store.put(
                    key,
                    {"precision": result[1]},
                    {"sums": result[0].sums, "counts": result[0].counts},
                )
        self._sums[key] = result
        return result

    def _lookup(self, key: str, started: float) -> Score | None:
        hit = self.store.get(key) if self.store is not None else None
        if hit is None:
            return None
        meta = hit[0]
        return Score(**{**meta, "cached": True, "seconds": time.perf_counter() - started})

    def _finish(self, key: str, score: Score) -> Score:
        if self.store is not None:
            meta = score.to_dict()
            meta.pop("cached"), meta.pop("seconds")
            self.store.put(key, meta)
        return score

    # ----------------------------------------------------------------- public scoring
    def score_shift(self, data: str, shift: str | ShiftSpec, *, layer: str | None = None) -> Score:
        """RESQUE_dist of a synthetic corruption of ``data`` (reference roles: clean = split 0+2,
        shifted = corruption of split 1+2 of a seeded stratified 50/30/20 split)."""
        spec = parse_shift(shift) if isinstance(shift, str) else shift
        return self._score_dist(data, None, spec, layer)

    def score_shifted_data(
        self, data: str, shifted_data: str, *, layer: str | None = None
    ) -> Score:
        """RESQUE_dist between ``data`` and a real shifted data set with the same class names."""
        return self._score_dist(data, shifted_data, None, layer)

    def _score_dist(
        self, data: str, shifted: str | None, shift: ShiftSpec | None, layer: str | None
    ) -> Score:
        started = time.perf_counter()
        common = {
            "model": self._model_key(),
            "data": self.fingerprint(data),
            "layer": layer,
            "seed": self.run.seed,
            "samples_per_class": self.run.samples_per_class,
            "source": self.fingerprint(self.source_data) if self.source_data else None,
        }
        target_id = str(shift) if shift is not None else self.fingerprint(shifted)
        key = canonical_key("dist", {**common, "target": target_id})
        if (hit := self._lookup(key, started)) is not None:
            return hit

        source = self.dataset(data)
        pre = self.preprocess(source)
        resolved = self.resolve_layer(layer, "dist", pre.image_size)
        if shift is not None:
            clean_idx, shifted_idx = data_mod.synthetic_shift_roles(
                source.labels.numpy(), seed=self.run.seed
            )
            target, role = source, "clean"
        else:
            clean_idx, shifted_idx = None, None
            target, role = self._aligned(source, self.dataset(shifted), shifted), "all"
        src_idx = self._select(source, clean_idx)
        tgt_idx = self._select(target, shifted_idx)
        if len(src_idx) == 0 or len(tgt_idx) == 0:
            raise DataError("the source or shifted selection is empty: raise samples per class")
        src_sums, p1 = self._cached_sums(
            {**common, "role": role}, source, src_idx, pre, None, resolved, "source"
        )
        tgt_sums, p2 = self._cached_sums(
            {**common, "role": "target", "target": target_id},
            target,
            tgt_idx,
            pre,
            shift,
            resolved,
            "shifted",
        )
        value = resque_dist(src_sums.sums, tgt_sums.sums)
        elapsed = time.perf_counter() - started
        score = Score(
            kind="dist",
            value=value.value,
            per_class={source.classes[c]: v for c, v in value.per_class.items()},
            layer=resolved,
            n_source=int(src_sums.counts.sum()),
            n_target=int(tgt_sums.counts.sum()),
            seconds=elapsed,
            compute_seconds=elapsed,
            cached=False,
            device=str(self.device),
            precision="mixed" if "mixed" in (p1, p2) else "fp32",
            key=key,
        )
        return self._finish(key, score)

    @staticmethod
    def _aligned(
        source: data_mod.ImageSet, target: data_mod.ImageSet, spec: str
    ) -> data_mod.ImageSet:
        """``target`` relabelled to ``source``'s class indices, matching classes by name."""
        index = {name: i for i, name in enumerate(source.classes)}
        common = [name for name in target.classes if name in index]
        if not common:
            src, tgt = ", ".join(source.classes[:10]), ", ".join(target.classes[:10])
            raise DataError(
                f"the shifted data {spec!r} shares no class name with the source data "
                f"(source: {src}; shifted: {tgt})"
            )
        mapping = torch.tensor([index.get(name, -1) for name in target.classes])
        labels = mapping[target.labels]
        keep = torch.nonzero(labels >= 0).flatten()
        return replace(target.subset(keep), labels=labels[keep], classes=source.classes)

    def score_task(self, task_data: str, *, layer: str | None = None) -> Score:
        """RESQUE_task of a new task's labelled data (all four variants; headline: centroid,
        pooled)."""
        started = time.perf_counter()
        run = self.run
        key = canonical_key(
            "task",
            {
                "model": self._model_key(),
                "data": self.fingerprint(task_data),
                "layer": layer,
                "seed": run.seed,
                "samples_per_class": run.samples_per_class,
                "max_task_samples": run.max_task_samples,
                "flatten": run.flatten,
                "source": self.fingerprint(self.source_data) if self.source_data else None,
            },
        )
        if (hit := self._lookup(key, started)) is not None:
            return hit

        task = self.dataset(task_data)
        pre = self.preprocess(task)
        resolved = self.resolve_layer(layer, "task", pre.image_size)
        idx = self._select(task)
        if len(idx) > run.max_task_samples:
            per_class = max(1, run.max_task_samples // task.num_classes)
            labels = task.labels.numpy()[idx]
            idx = idx[data_mod.subsample_per_class(labels, per_class, seed=run.seed)]
        check_task_classes(len(np.unique(task.labels.numpy()[idx])))  # before any embedding
        batches = self._batches(task, idx, pre, None, "task")
        emb, precision = embeddings(
            self.checkpoint().model, resolved, batches, flatten=run.flatten, amp=run.amp
        )
        value = resque_task_variants(emb.pooled, emb.labels, flattened=emb.flattened, seed=run.seed)
        elapsed = time.perf_counter() - started
        score = Score(
            kind="task",
            value=value.value,
            per_class={task.classes[c]: v for c, v in value.per_class.items()},
            layer=resolved,
            n_source=0,
            n_target=len(emb.labels),
            seconds=elapsed,
            compute_seconds=elapsed,
            cached=False,
            device=str(self.device),
            precision=precision,
            key=key,
            variants=value.variants,
        )
        return self._finish(key, score)
