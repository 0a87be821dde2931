"""The checkpoint and data sets one plan works on (:class:`Workspace`), loaded once and shared by
scoring, retraining and the energy probe.

A workspace owns what it loads. A checkpoint passed in (the app's cached copy, shared by every
browser session) is never moved or mutated: if it sits on another device than the one asked
for, the workspace works on a private copy on that device.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import TYPE_CHECKING

import torch

from .. import data as data_mod
from .._util import regular_file
from ..errors import CheckpointError
from .config import ModelConfig, default_image_size

if TYPE_CHECKING:  # checkpoints pulls in torchvision: imported only when a model is needed
    from ..model import LayerInfo, LoadedCheckpoint
    from ..store.cache import ResultStore

__all__ = ["Workspace"]


def _model_device(ckpt: LoadedCheckpoint) -> torch.device | None:
    param = next(ckpt.model.parameters(), None)
    return None if param is None else param.device


class Workspace:
    """One checkpoint (loaded on first use, on ``device``) and the data sets read for it, by spec.

    ``source_data`` is the spec of the data the model was trained on: its native image size is
    the default input size. ``store`` (optional) provides the file-hash memo, so that a cache hit
    can be answered from the checkpoint's SHA-256 without loading the model. Not thread-safe.
    """

    def __init__(
        self,
        model: ModelConfig,
        *,
        device: torch.device,
        store: ResultStore | None = None,
        checkpoint: LoadedCheckpoint | None = None,
        source_data: str | None = None,
    ):
        self.model_config = model
        self.device = device
        self.source_data = source_data
        self._store = store
        self._ckpt = checkpoint
        self._owned = checkpoint is None
        self._sha256: str | None = checkpoint.sha256 if checkpoint else None
        self._data: dict[str, data_mod.ImageSet] = {}
        self._lazy: dict[str, data_mod.LazyImageSet] = {}
        self._fingerprints: dict[str, str] = {}
        self._layers: dict[tuple[int, ...], list[LayerInfo]] = {}

    # ----------------------------------------------------------------- identities (cheap)
    def checkpoint_sha256(self) -> str:
        """The checkpoint file's SHA-256, without loading the model when a store is given."""
        if self._sha256 is None:
            if self._store is not None:
                # Checked first: a FIFO or /dev/zero must be refused, never hashed.
                path = regular_file(
                    self.model_config.checkpoint, what="checkpoint", error=CheckpointError
                )
                self._sha256 = self._store.file_sha256(path)
            else:
                self._sha256 = self.checkpoint().sha256
        return self._sha256

    def fingerprint(self, spec: str) -> str:
        if spec not in self._fingerprints:
            self._fingerprints[spec] = data_mod.data_fingerprint(spec)
        return self._fingerprints[spec]

    # ----------------------------------------------------------------- heavy objects (lazy)
    def checkpoint(self) -> LoadedCheckpoint:
        """The loaded checkpoint, its model on :attr:`device` and in eval mode."""
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
        on = _model_device(self._ckpt)
        if on is not None and on != self.device:
            if not self._owned:  # someone else's model: work on a copy, leave theirs where it is
                self._ckpt = replace(self._ckpt, model=copy.deepcopy(self._ckpt.model))
                self._owned = True
            self._ckpt.model.to(self.device)
        return self._ckpt

    def dataset(self, spec: str) -> data_mod.ImageSet:
        if spec not in self._data:
            self._data[spec] = self.lazy(spec).full()
        return self._data[spec]

    def lazy(self, spec: str) -> data_mod.LazyImageSet:
        """``spec``'s labels and class names, its images decoded only as rows are asked for
        (each at most once; :meth:`dataset` is the same images, all of them)."""
        if spec not in self._lazy:
            self._lazy[spec] = data_mod.open_data(spec, image_size=self.model_config.image_size)
        return self._lazy[spec]

    def aligned(self, source_spec: str, shifted_spec: str) -> data_mod.ImageSet:
        """The real shifted data ``shifted_spec`` relabelled to the source's class indices,
        matching classes by name; rows of classes the source lacks are dropped."""
        source, target = self.dataset(source_spec), self.dataset(shifted_spec)
        data_mod.class_overlap(source.classes, target.classes, repr(shifted_spec))
        index = {name: i for i, name in enumerate(source.classes)}
        mapping = torch.tensor([index.get(name, -1) for name in target.classes])
        labels = mapping[target.labels]
        keep = torch.nonzero(labels >= 0).flatten()
        return replace(target.subset(keep), labels=labels[keep], classes=source.classes)

    def preprocess(self, images: data_mod.ImageSet) -> data_mod.Preprocess:
        """Inputs are resized to ``image_size``, else to the source data's native size (the size
        the model was trained on), else to ``images``' own size."""
        m = self.model_config
        native = (
            self.lazy(self.source_data).image_shape if self.source_data else images.images.shape
        )
        size = m.image_size or tuple(native[-2:])
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
