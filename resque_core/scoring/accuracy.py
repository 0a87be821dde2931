"""How well the checkpoint does on its own source data: a sanity check before any reuse.

:func:`held_out` picks a seeded, stratified part of a labelled set (the split
``scripts/build_zoo.py`` keeps out of the demo model's training, so the demo's accuracy here is
its true held-out accuracy); :func:`accuracy` is the model's top-1 accuracy on a set of images,
fed exactly as RESQUE feeds them (:class:`~resque_core.data.Preprocess`);
:func:`source_accuracy` is that accuracy on the held-out part of a plan's source data, kept in the
result store.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from ..data import ImageSet, Preprocess, data_fingerprint, load_data
from ..errors import ConfigError, DataError
from ..model.checkpoints import LoadedCheckpoint
from ..store import ResultStore, canonical_key
from .scorer import ModelConfig, RunConfig, Scorer

__all__ = ["HELD_OUT_FRACTION", "accuracy", "held_out", "source_accuracy"]

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


def _weights_device(ckpt: LoadedCheckpoint) -> torch.device:
    """Where the model's weights are (CPU for a model without any)."""
    for tensor in itertools.chain(ckpt.model.parameters(), ckpt.model.buffers()):
        return tensor.device
    return torch.device("cpu")


def source_accuracy(
    model: ModelConfig,
    run: RunConfig,
    source: str,
    *,
    store: ResultStore,
    checkpoint: LoadedCheckpoint | None = None,
    images: ImageSet | None = None,
) -> tuple[float, int]:
    """(top-1 accuracy in [0, 1], number of images) of ``model`` on the seeded
    :data:`HELD_OUT_FRACTION` held-out part (:func:`held_out`, ``run.seed``) of the data spec
    ``source``, fed at ``model.image_size`` (else the source's own size) with its mean and std.

    Kept in ``store`` under a ``source_accuracy`` key of the checkpoint's content, the model
    settings, the data's fingerprint, the fraction and the seed; a hit loads neither the model nor
    the data. ``checkpoint``: the model already loaded (e.g. one shared between sessions): it is
    run where its weights are and never moved; without it the checkpoint is loaded onto
    ``run.device``. ``images``: ``source`` as :func:`~resque_core.data.load_data` returns it
    (native size), to reuse a loaded copy; else it is loaded here.
    """
    scorer = Scorer(model, run, store=store, checkpoint=checkpoint)
    key = canonical_key(
        "source_accuracy",
        {
            "sha256": scorer.checkpoint_sha256(),
            "arch": model.arch,
            "num_classes": model.num_classes,
            "in_channels": model.in_channels,
            "image_size": model.image_size,
            "mean": model.mean,
            "std": model.std,
            "data": data_fingerprint(source),
            "held_out": HELD_OUT_FRACTION,
            "seed": run.seed,
        },
    )
    hit = store.get(key)
    if hit is not None:
        return float(hit[0]["accuracy"]), int(hit[0]["n"])
    # A shared model stays where its owner put it; one loaded here goes to the run's device.
    ckpt = checkpoint if checkpoint is not None else scorer.checkpoint()
    data = images if images is not None else load_data(source)
    idx = held_out(data.labels.numpy(), fraction=HELD_OUT_FRACTION, seed=run.seed)
    preprocess = Preprocess(
        image_size=model.image_size or tuple(data.images.shape[-2:]),
        channels=ckpt.in_channels,
        mean=model.mean,
        std=model.std,
    )
    value = accuracy(
        ckpt,
        data.subset(torch.from_numpy(idx)),
        preprocess,
        batch_size=run.batch_size,
        device=_weights_device(ckpt),
    )
    store.put(key, {"accuracy": value, "n": len(idx)})
    return value, len(idx)
