"""How well the checkpoint does on its own source data: a sanity check before any reuse.

:func:`held_out` picks a seeded, stratified part of a labelled set (the split
``scripts/build_zoo.py`` keeps out of the demo model's training, so the demo's accuracy here is
its true held-out accuracy); :func:`accuracy` is the model's top-1 accuracy on a set of images,
fed exactly as RESQUE feeds them (:class:`~resque_core.data.sources.Preprocess`).
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from ..data import ImageSet, Preprocess
from ..errors import ConfigError, DataError
from ..model.checkpoints import LoadedCheckpoint

__all__ = ["HELD_OUT_FRACTION", "accuracy", "held_out"]

HELD_OUT_FRACTION = 0.2


def held_out(
    labels: np.ndarray, *, fraction: float = HELD_OUT_FRACTION, seed: int = 0
) -> np.ndarray:
    """Sorted indices of a seeded, stratified ``fraction`` of a labelled set.

    ``labels``: [N] integer class labels. Same as scikit-learn's
    ``train_test_split(arange(N), test_size=fraction, stratify=labels, random_state=seed)``.
    """
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"the held-out fraction must be between 0 and 1, got {fraction}")
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) == 0:
        raise DataError(f"labels must be a non-empty 1-D array, got shape {labels.shape}")
    classes, counts = np.unique(labels, return_counts=True)
    if counts.min() < 2:
        rare = classes[counts.argmin()]
        raise DataError(
            f"class {rare} has a single image: a stratified held-out part needs at least 2 "
            "images per class"
        )
    n_held = int(np.ceil(fraction * len(labels)))
    if n_held < len(classes) or len(labels) - n_held < len(classes):
        raise DataError(
            f"{len(labels)} images are too few to hold out {fraction:.0%} with every one of the "
            f"{len(classes)} classes on both sides"
        )
    _, idx = train_test_split(
        np.arange(len(labels)), test_size=fraction, stratify=labels, random_state=seed
    )
    return np.sort(idx)


@torch.no_grad()
def accuracy(
    ckpt: LoadedCheckpoint,
    images: ImageSet,
    preprocess: Preprocess,
    *,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
) -> float:
    """Top-1 accuracy in [0, 1] of ``ckpt``'s model on ``images`` (labels are class indices of the
    data the model was trained on).

    The model must already be on ``device`` and in eval mode (it is not changed here; it may be
    shared between threads). Its output must be logits [B, K] with K = the data's classes.
    """
    if batch_size < 1:
        raise ConfigError(f"batch size must be at least 1, got {batch_size}")
    n = int(images.images.shape[0])
    if n == 0:
        raise DataError("no images to measure accuracy on")
    device = torch.device(device)
    correct = 0
    for start in range(0, n, batch_size):
        x = preprocess.normalize(
            preprocess.to_unit(images.images[start : start + batch_size], device=device)
        )
        logits = ckpt.model(x)
        if not isinstance(logits, torch.Tensor) or logits.ndim != 2:
            raise DataError(
                "the model does not return class scores [batch, classes]: accuracy needs a "
                "classifier"
            )
        if logits.shape[1] != images.num_classes:
            raise DataError(
                f"the model has {logits.shape[1]} outputs but the data has {images.num_classes} "
                "classes: measure accuracy on the data the model was trained on"
            )
        y = images.labels[start : start + batch_size].to(device)
        correct += int((logits.argmax(dim=1) == y).sum())
    return correct / n
