"""Batched forward passes that turn images into per-class activation sums or embeddings.

Inputs arrive as already prepared, normalised batches (see :mod:`resque_core.scoring.scorer`); this
module only runs the model up to the chosen layer (:func:`resque_core.model.hooks.tap` cuts the
forward
pass short there), reduces each activation to a vector (:func:`pool`) and accumulates.
Nothing here mutates the model: it must already be in eval mode on the right device.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext

import numpy as np
import torch
from torch import nn

from ..model.hooks import tap
from .estimators import ClassSums

__all__ = ["Batch", "Embeddings", "Samples", "class_sums", "embeddings", "pool"]

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
    samples: Samples | None = None,
) -> tuple[ClassSums, str]:
    """Per-class sums of pooled activations of ``layer`` over all batches (``compat``: how a
    token sequence is pooled, see :func:`pool`).

    Returns (sums: ClassSums [num_classes, D], precision used: "fp32" | "mixed"). Memory is
    independent of the number of images, unless ``samples`` also keeps per-sample rows from the
    same forward passes (see :class:`Samples`).
    """
    _check_eval(model)
    acc: ClassSums | None = None
    want_outputs = samples is not None and samples.outputs
    with (
        tap(model, layer, stop=not want_outputs) as run,
        _model_outputs(model, want_outputs) as last_output,
        torch.inference_mode(),
    ):
        forward = _Forward(run, amp, compat)
        for x, y in batches:
            feats = pool(forward(x), compat=compat)
            if samples is not None:
                samples.add(feats, y, last_output())
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
    """Pooled embeddings [N, C], optionally the flattened maps [N, C*H*W], labels [N], and
    optionally the model's own outputs [N, Z] (its logits, for LEEP and NCE)."""

    def __init__(
        self,
        pooled: np.ndarray,
        flattened: np.ndarray | None,
        labels: np.ndarray,
        outputs: np.ndarray | None = None,
    ):
        self.pooled = pooled
        self.flattened = flattened
        self.labels = labels
        self.outputs = outputs


@contextmanager
def _model_outputs(model: nn.Module, enabled: bool) -> Iterator[Callable[[], torch.Tensor | None]]:
    """Yield ``last() -> the model's own output of this thread's latest forward pass`` (first
    tensor, detached, flattened to [B, Z]; None if disabled or the output holds no tensor).
    The layer tap must not stop the pass early for this to see anything."""
    if not enabled:
        yield lambda: None
        return
    owner = threading.get_ident()
    seen: list[torch.Tensor | None] = [None]

    def hook(_module: nn.Module, _inputs: object, output: object) -> None:
        if threading.get_ident() != owner:
            return
        items = output if isinstance(output, (tuple, list)) else (output,)
        first = next((t for t in items if isinstance(t, torch.Tensor)), None)
        seen[0] = None if first is None or first.ndim < 1 else first.detach().flatten(1)

    handle = model.register_forward_hook(hook)
    try:
        yield lambda: seen[0]
    finally:
        handle.remove()


class Samples:
    """Per-sample rows kept during a pass: pooled embeddings, labels and (with ``outputs``) the
    model's outputs, for the samples ``keep`` marks (bool [N] over the pass's sample order;
    None = every sample). :meth:`result` gives them as :class:`Embeddings` (float32)."""

    def __init__(self, keep: np.ndarray | None = None, *, outputs: bool = False):
        self.keep = None if keep is None else np.asarray(keep, dtype=bool)
        self.outputs = outputs
        self._seen = 0
        self._pooled: list[np.ndarray] = []
        self._labels: list[np.ndarray] = []
        self._out: list[np.ndarray] | None = [] if outputs else None

    def add(self, pooled: torch.Tensor, labels: torch.Tensor, out: torch.Tensor | None) -> None:
        b = pooled.shape[0]
        rows = slice(None)
        if self.keep is not None:
            rows = np.flatnonzero(self.keep[self._seen : self._seen + b])
        self._seen += b
        self._pooled.append(pooled.cpu().numpy()[rows])
        self._labels.append(labels.cpu().numpy()[rows])
        if self._out is not None:
            if out is None or out.shape[0] != b:
                self._out = None  # the model's output is not one row per sample: no LEEP/NCE
            else:
                self._out.append(out.float().cpu().numpy()[rows])

    def result(self) -> Embeddings:
        if not self._pooled:
            raise ValueError("no batches: the data selection is empty")
        outputs = None
        if self._out:
            outputs = np.concatenate(self._out).astype(np.float32, copy=False)
        return Embeddings(
            np.concatenate(self._pooled).astype(np.float32, copy=False),
            None,
            np.concatenate(self._labels).astype(np.int64, copy=False),
            outputs,
        )


def embeddings(
    model: nn.Module,
    layer: str,
    batches: Iterable[Batch],
    *,
    flatten: bool = False,
    amp: bool = False,
    compat: str = "project",
    outputs: bool = False,
) -> tuple[Embeddings, str]:
    """Embeddings of every sample at ``layer`` (float32, on the host), and the precision used
    (``compat``: how a token sequence is pooled, see :func:`pool`).

    ``outputs``: also keep the model's own outputs (the forward pass then runs to the end
    instead of stopping at ``layer``; still one pass per batch)."""
    _check_eval(model)
    pooled, flat, labels, outs = [], [], [], []
    with (
        tap(model, layer, stop=not outputs) as run,
        _model_outputs(model, outputs) as last_output,
        torch.inference_mode(),
    ):
        forward = _Forward(run, amp, compat)
        for x, y in batches:
            a = forward(x)
            pooled.append(pool(a, compat=compat).cpu().numpy())
            if flatten:
                flat.append(a.flatten(1).cpu().numpy())
            labels.append(y.cpu().numpy())
            if outputs:
                o = last_output()
                outs.append(None if o is None or o.shape[0] != a.shape[0] else o.float().cpu())
    if not pooled:
        raise ValueError("no batches: the data selection is empty")
    out = Embeddings(
        np.concatenate(pooled).astype(np.float32, copy=False),
        np.concatenate(flat).astype(np.float32, copy=False) if flatten else None,
        np.concatenate(labels).astype(np.int64, copy=False),
        None
        if not outs or any(o is None for o in outs)
        else torch.cat(outs).numpy().astype(np.float32, copy=False),
    )
    return out, forward.precision
