"""Batched forward passes that turn images into per-class activation sums or embeddings.

Inputs arrive as already prepared, normalised batches (see :mod:`resque_core.scoring.scorer`); this
module only runs the model up to the chosen layer (:func:`resque_core.model.hooks.tap` cuts the
forward
pass short there), reduces each activation to a vector (:func:`pool`) and accumulates.
Nothing here mutates the model: it must already be in eval mode on the right device.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import nullcontext

import numpy as np
import torch
from torch import nn

from ..model.hooks import tap
from .estimators import ClassSums

__all__ = ["Batch", "Embeddings", "class_sums", "embeddings", "pool"]

Batch = tuple[torch.Tensor, torch.Tensor]
"""(images [B, C, H, W] float, normalised, on the model's device; labels [B] int64, any device)."""

# Mixed precision is accepted only if the first batch's pooled features agree with fp32 this well
# (max abs difference relative to the fp32 features' max abs value).
AMP_TOLERANCE = 1e-2


def pool(a: torch.Tensor, *, compat: str = "project") -> torch.Tensor:
    """Reduce a batch of activations to vectors [B, D].

    [B, C, H, W] (conv map) -> mean over H*W -> [B, C]; [B, T, D] (token sequence) -> mean over the
    T tokens -> [B, D]; [B, D] stays. The reference code averages a ViT's feature axis instead of
    its tokens, a defect reproduced only with ``compat="reference"`` ([B, T, D] -> [B, T]);
    conv maps and vectors pool the same in both modes.
    """
    if a.ndim == 4:
        return a.mean(dim=(2, 3))
    if a.ndim == 3:
        return a.mean(dim=2) if compat == "reference" else a.mean(dim=1)
    if a.ndim == 2:
        return a
    raise ValueError(f"cannot pool an activation of shape {tuple(a.shape)}")


def _check_eval(model: nn.Module) -> None:
    if model.training:
        raise ValueError("the model must be in eval mode (call .eval() once after loading)")


def _autocast(device: torch.device, amp: bool):
    if amp and device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    return nullcontext()


class _Forward:
    """Layer output for a batch, with optional mixed precision verified once against fp32."""

    def __init__(
        self, run: Callable[[torch.Tensor], torch.Tensor], amp: bool, compat: str = "project"
    ):
        self.run = run
        self.amp = amp
        self.compat = compat
        self.checked = not amp
        self.amp_error: float | None = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if not self.amp:
            return self.run(x).float()
        with _autocast(x.device, True):
            out = self.run(x).float()
        if not self.checked:
            self.checked = True
            ref = self.run(x).float()
            pooled_ref = pool(ref, compat=self.compat)
            scale = pooled_ref.abs().max().clamp_min(1e-12)
            self.amp_error = float((pool(out, compat=self.compat) - pooled_ref).abs().max() / scale)
            if self.amp_error > AMP_TOLERANCE:
                self.amp = False
                return ref
        return out

    @property
    def precision(self) -> str:
        return "mixed" if self.amp else "fp32"


def class_sums(
    model: nn.Module,
    layer: str,
    batches: Iterable[Batch],
    *,
    num_classes: int,
    amp: bool = False,
    compat: str = "project",
) -> tuple[ClassSums, str]:
    """Per-class sums of pooled activations of ``layer`` over all batches (``compat``: how a
    token sequence is pooled, see :func:`pool`).

    Returns (sums: ClassSums [num_classes, D], precision used: "fp32" | "mixed"). Memory is
    independent of the number of images.
    """
    _check_eval(model)
    acc: ClassSums | None = None
    with tap(model, layer) as run, torch.inference_mode():
        forward = _Forward(run, amp, compat)
        for x, y in batches:
            feats = pool(forward(x), compat=compat)
            # Summing on the device first keeps the host transfer at [K, D] per batch.
            y_dev = y.to(feats.device)
            part = torch.zeros(
                num_classes, feats.shape[1], dtype=torch.float64, device=feats.device
            )
            part.index_add_(0, y_dev, feats.double())
            if acc is None:
                acc = ClassSums(num_classes, feats.shape[1])
            acc.sums += part.cpu().numpy()
            acc.counts += np.bincount(y.cpu().numpy(), minlength=num_classes)
    if acc is None:
        raise ValueError("no batches: the data selection is empty")
    return acc, forward.precision


class Embeddings:
    """Pooled embeddings [N, C], optionally the flattened maps [N, C*H*W], and labels [N]."""

    def __init__(self, pooled: np.ndarray, flattened: np.ndarray | None, labels: np.ndarray):
        self.pooled = pooled
        self.flattened = flattened
        self.labels = labels


def embeddings(
    model: nn.Module,
    layer: str,
    batches: Iterable[Batch],
    *,
    flatten: bool = False,
    amp: bool = False,
    compat: str = "project",
) -> tuple[Embeddings, str]:
    """Embeddings of every sample at ``layer`` (float32, on the host), and the precision used
    (``compat``: how a token sequence is pooled, see :func:`pool`)."""
    _check_eval(model)
    pooled, flat, labels = [], [], []
    with tap(model, layer) as run, torch.inference_mode():
        forward = _Forward(run, amp, compat)
        for x, y in batches:
            a = forward(x)
            pooled.append(pool(a, compat=compat).cpu().numpy())
            if flatten:
                flat.append(a.flatten(1).cpu().numpy())
            labels.append(y.cpu().numpy())
    if not pooled:
        raise ValueError("no batches: the data selection is empty")
    out = Embeddings(
        np.concatenate(pooled).astype(np.float32, copy=False),
        np.concatenate(flat).astype(np.float32, copy=False) if flatten else None,
        np.concatenate(labels).astype(np.int64, copy=False),
    )
    return out, forward.precision
