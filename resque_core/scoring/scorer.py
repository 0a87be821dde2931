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

import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch

from .. import data as data_mod
from ..data.shifts import ShiftSpec, parse_shift, shifted_chunks
from ..errors import Cancelled, DataError
from ..limits import check_task_classes
from ..store.cache import ResultStore, canonical_key
from .config import ModelConfig, RunConfig, default_image_size, resolve_device
from .estimators import ClassSums, resque_dist, resque_task_variants
from .features import Batch, Samples, class_sums, embeddings
from .transfer import TRANSFER_SCORES, transfer_scores
from .workspace import Workspace

if TYPE_CHECKING:  # checkpoints pulls in torchvision: imported only when a model is needed
    from ..model import LayerInfo, LoadedCheckpoint

__all__ = [
    "ModelConfig",
    "RunConfig",
    "Score",
    "Scorer",
    "Workspace",
    "default_image_size",
    "resolve_device",
]

Kind = Literal["dist", "task"]
Progress = Callable[[str, int, int], None]
"""progress(stage, done, total): called after every batch; stage names what is being computed."""


@dataclass
class Score:
    """One RESQUE result. ``per_class`` is keyed by class name. For a task, ``n_source`` is 0 and
    ``n_target`` the number of task samples used. ``seconds`` is this request's compute time:
    decoding and preprocessing the selected images, the forward passes and the estimator (a
    cache hit: the look-up); loading the checkpoint (its imports included) and hashing the
    inputs for the cache key are not in it. ``wall_s`` is the request's wall time, everything
    included. ``compute_seconds`` is the compute time the value took when it was computed.
    ``transfer``: the transferability scores of the same data (:mod:`.transfer`; name -> value,
    higher = better), from the same forward passes, each cached under its own key namespace
    (``transfer.<name>``); a score the data cannot support is absent."""

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
    wall_s: float = 0.0
    transfer: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _needs_outputs(names: tuple[str, ...]) -> bool:
    """Whether any of the transferability scores ``names`` reads the model's outputs."""
    return any(TRANSFER_SCORES[n].needs == "outputs" for n in names)


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
        workspace: Workspace | None = None,
        progress: Progress | None = None,
        cancel: Callable[[], bool] | None = None,
        transfer: bool = True,
    ):
        """``workspace``: the checkpoint and data sets to work on, shared with retraining and
        probing; by default a new one for ``model``, ``checkpoint`` (already loaded, e.g. the
        app's cached copy, which is never moved) and ``source_data``. ``transfer``: also compute
        the transferability scores (LogME, LEEP, ...) from the same forward passes."""
        self.model_config = model
        self.run = run or RunConfig()
        self.store = store
        self.progress = progress
        self.cancel = cancel
        self.workspace = workspace or Workspace(
            model,
            device=resolve_device(self.run.device),
            store=store,
            checkpoint=checkpoint,
            source_data=source_data,
        )
        self.device = self.workspace.device
        self.source_data = self.workspace.source_data
        self._sums: dict[str, tuple[ClassSums, str]] = {}
        self.transfer = transfer
        self._channels_last = False  # set by _prepare_model on a GPU

    # ------------------------------------------------ the workspace's objects, for the scorer
    def checkpoint_sha256(self) -> str:
        return self.workspace.checkpoint_sha256()

    def fingerprint(self, spec: str) -> str:
        return self.workspace.fingerprint(spec)

    def checkpoint(self) -> LoadedCheckpoint:
        return self.workspace.checkpoint()

    def dataset(self, spec: str) -> data_mod.ImageSet:
        return self.workspace.dataset(spec)

    def preprocess(self, images: data_mod.ImageSet) -> data_mod.Preprocess:
        return self.workspace.preprocess(images)

    def layers(self, image_size: tuple[int, int] | None = None) -> list[LayerInfo]:
        return self.workspace.layers(image_size)

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

    # ----------------------------------------------------------------- device
    def _prepare_model(self) -> None:
        """Load the checkpoint onto the device (a fixed cost, kept out of ``seconds``). On a GPU
        a convolutional model the workspace owns goes to channels_last memory format (cuDNN's
        faster NHWC kernels; the values are the same up to summation order); its inputs follow
        in :meth:`_batches`."""
        model = self.checkpoint().model
        self._channels_last = False
        if self.device.type == "cuda" and any(
            isinstance(m, torch.nn.Conv2d) for m in model.modules()
        ):
            if self.workspace._owned:  # a shared model (the app's) is never changed
                model.to(memory_format=torch.channels_last)
            self._channels_last = True

    def _to_device(self, chunk: torch.Tensor) -> torch.Tensor:
        """A CPU chunk of images on the scorer's device: on a GPU through pinned memory with a
        non-blocking copy, so the copy overlaps the work queued before it."""
        if self.device.type != "cuda" or chunk.device.type == "cuda":
            return chunk
        return chunk.pin_memory().to(self.device, non_blocking=True)

    # ----------------------------------------------------------------- batching
    def _select(self, images: data_mod.ImageSet, idx: np.ndarray | None = None) -> np.ndarray:
        return self._select_labels(images.labels.numpy(), idx)

    def _select_labels(self, labels: np.ndarray, idx: np.ndarray | None = None) -> np.ndarray:
        """Positions (among ``idx``, default all) of the per-class subsample of ``labels``."""
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
            to_unit=lambda u: pre.to_unit(self._to_device(u), device=self.device),
            seed=self.run.seed,
            compat=self.run.compat,
        )
        for sel, x in chunks:
            x = pre.normalize(x, inplace=True)  # each chunk is a new tensor (indexed copy)
            if self._channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
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
        samples: Samples | None = None,
    ) -> tuple[ClassSums, str]:
        """``samples``: also keep per-sample rows from the pass (then the pass always runs; the
        sums it gives are the same as a stored copy's)."""
        key = canonical_key("class_sums", key_parts)
        if key in self._sums and samples is None:
            return self._sums[key]
        hit = self.store.get(key) if self.store is not None and samples is None else None
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
                compat=self.run.compat,
                samples=samples,
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
        looked_up = time.perf_counter()
        hit = self.store.get(key) if self.store is not None else None
        if hit is None:
            return None
        meta = hit[0]
        now = time.perf_counter()
        times = {"seconds": now - looked_up, "wall_s": now - started}
        return Score(**{**meta, "cached": True, **times})

    def _finish(self, key: str, score: Score) -> Score:
        if self.store is not None:
            meta = score.to_dict()
            meta.pop("cached"), meta.pop("seconds"), meta.pop("wall_s")
            meta.pop("transfer")  # each transferability score is stored under its own key
            self.store.put(key, meta)
        return score

    # ----------------------------------------------------------------- transferability scores
    def _transfer_keys(self, parts: dict[str, Any]) -> dict[str, str]:
        """Score name -> cache key (namespace ``transfer.<name>``); none when switched off."""
        if not self.transfer:
            return {}
        return {name: canonical_key(f"transfer.{name}", parts) for name in TRANSFER_SCORES}

    def _transfer_cached(self, keys: dict[str, str]) -> tuple[dict[str, float], tuple[str, ...]]:
        """(stored values, names still to compute). A stored None is a score the data could not
        support: known, not recomputed, not shown."""
        found: dict[str, float] = {}
        missing: list[str] = []
        for name, key in keys.items():
            hit = self.store.get(key) if self.store is not None else None
            if hit is None:
                missing.append(name)
            elif hit[0].get("value") is not None:
                found[name] = float(hit[0]["value"])
        return found, tuple(missing)

    def _transfer_compute(
        self, keys: dict[str, str], missing: tuple[str, ...], emb: Any
    ) -> dict[str, float]:
        """The ``missing`` scores of embeddings ``emb`` (:class:`Embeddings`), each stored."""
        values = transfer_scores(emb.pooled, emb.labels, emb.outputs, names=missing)
        if self.store is not None:
            for name in missing:
                self.store.put(keys[name], {"value": values.get(name)})
        return values

    def _task_cap(self, labels: np.ndarray, num_classes: int) -> np.ndarray:
        """Positions kept when ``labels`` are capped at ``max_task_samples`` (stratified)."""
        cap = self.run.task_sample_cap
        if cap is None or len(labels) <= cap:
            return np.arange(len(labels))
        per_class = max(1, cap // num_classes)
        return data_mod.subsample_per_class(labels, per_class, seed=self.run.seed)

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
            **self.run.key_parts(),
        }
        target_id = str(shift) if shift is not None else self.fingerprint(shifted)
        key = canonical_key("dist", {**common, "target": target_id})
        # Transferability scores of the shifted data (source label space), from the same pass
        # over the shifted images, on per-sample embeddings capped like a task's.
        tkeys = self._transfer_keys(
            {**common, "target": target_id, "max_task_samples": self.run.max_task_samples}
        )
        known, missing = self._transfer_cached(tkeys)
        hit = self._lookup(key, started)
        if hit is not None and not missing:
            hit.transfer = known
            return hit

        self._prepare_model()
        computing = time.perf_counter()
        if shift is not None:
            # Rows are chosen from the labels, then only those are decoded (one copy, shared
            # by every candidate of this source); indices below are into the decoded rows.
            lazy = self.workspace.lazy(data)
            labels = lazy.labels.numpy()
            clean_idx, shifted_idx = data_mod.synthetic_shift_roles(labels, seed=self.run.seed)
            src_idx = self._select_labels(labels, clean_idx)
            tgt_idx = self._select_labels(labels, shifted_idx)
            rows = np.union1d(src_idx, tgt_idx)
            source = lazy.rows(rows)
            src_idx, tgt_idx = np.searchsorted(rows, src_idx), np.searchsorted(rows, tgt_idx)
            target, role = source, "clean"
        else:
            source = self.dataset(data)
            target, role = self.workspace.aligned(data, shifted), "all"
            src_idx, tgt_idx = self._select(source), self._select(target)
        pre = self.preprocess(source)
        resolved = self.resolve_layer(layer, "dist", pre.image_size)
        if len(src_idx) == 0 or len(tgt_idx) == 0:
            raise DataError("the source or shifted selection is empty: raise samples per class")
        samples = None
        if missing:
            keep = np.zeros(len(tgt_idx), dtype=bool)
            keep[self._task_cap(target.labels.numpy()[tgt_idx], target.num_classes)] = True
            samples = Samples(keep, outputs=_needs_outputs(missing))
        if hit is None:
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
            samples,
        )
        if samples is not None:
            known = {**known, **self._transfer_compute(tkeys, missing, samples.result())}
        if hit is not None:  # RESQUE was stored; only the transferability scores were missing
            hit.transfer = known
            hit.seconds = time.perf_counter() - started
            return hit
        value = resque_dist(src_sums.sums, tgt_sums.sums)
        done = time.perf_counter()
        elapsed = done - computing
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
            wall_s=done - started,
            transfer=known,
        )
        return self._finish(key, score)

    def score_task(self, task_data: str, *, layer: str | None = None) -> Score:
        """RESQUE_task of a new task's labelled data (centroid and k-means++ variants on pooled
        embeddings, on flattened ones too with ``run.flatten``; headline: centroid, pooled)."""
        started = time.perf_counter()
        run = self.run
        parts = {
            "model": self._model_key(),
            "data": self.fingerprint(task_data),
            "layer": layer,
            "seed": run.seed,
            "samples_per_class": run.samples_per_class,
            "max_task_samples": run.task_sample_cap,
            "source": self.fingerprint(self.source_data) if self.source_data else None,
            **run.key_parts(),
        }
        key = canonical_key("task", {**parts, "flatten": run.flatten})
        tkeys = self._transfer_keys(parts)
        known, missing = self._transfer_cached(tkeys)
        hit = self._lookup(key, started)
        if hit is not None and not missing:
            hit.transfer = known
            return hit

        self._prepare_model()
        computing = time.perf_counter()
        lazy = self.workspace.lazy(task_data)
        all_labels = lazy.labels.numpy()
        idx = self._select_labels(all_labels)
        cap = run.task_sample_cap
        if cap is not None and len(idx) > cap:
            per_class = max(1, cap // lazy.num_classes)
            idx = idx[data_mod.subsample_per_class(all_labels[idx], per_class, seed=run.seed)]
        check_task_classes(len(np.unique(all_labels[idx])))  # before any image is decoded
        task = lazy.rows(idx)  # only the selected images are decoded
        idx = np.arange(len(idx))
        pre = self.preprocess(task)
        resolved = self.resolve_layer(layer, "task", pre.image_size)
        batches = self._batches(task, idx, pre, None, "task")
        emb, precision = embeddings(
            self.checkpoint().model,
            resolved,
            batches,
            flatten=run.flatten and hit is None,
            amp=run.amp,
            outputs=_needs_outputs(missing),
            compat=run.compat,
        )
        value = None  # RESQUE first: its own checks (e.g. two classes) speak before the scores'
        if hit is None:
            value = resque_task_variants(
                emb.pooled, emb.labels, flattened=emb.flattened, seed=run.seed
            )
        if missing:  # the same pass's embeddings (and outputs) give the transferability scores
            known = {**known, **self._transfer_compute(tkeys, missing, emb)}
        if value is None:  # RESQUE was stored; only the transferability scores were missing
            hit.transfer = known
            hit.seconds = time.perf_counter() - started
            return hit
        done = time.perf_counter()
        elapsed = done - computing
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
            wall_s=done - started,
            transfer=known,
        )
        return self._finish(key, score)
