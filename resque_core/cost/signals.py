"""What forward passes tell about a candidate before any retraining: the cost model's inputs.

:class:`Signals` per candidate: RESQUE, the spread of its per-class values, the shift family
(``task`` for a new task, ``shifted_data`` for real shifted data) and the source model's
accuracy on the candidate's held-out data *before* training:

- for a shift (the model keeps its head) it is exactly the accuracy the retraining loop measures
  before its first epoch, on the same held-out split: a candidate already at the target
  accuracy needs 0 epochs (``at_target``), a fact, not a prediction;
- for a task (a new head) it is a nearest-centroid accuracy on the features that feed the
  model's last linear layer (centroids from the candidate's train split, scored on its
  held-out split): how separable the new classes already are.

:func:`candidate_signals` computes them (one forward pass over the candidate's data) and keeps
them in the result store under their own namespace.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from ..data.shifts import parse_shift
from ..retrain import RetrainConfig, RetrainData, candidate_data
from ..store.cache import canonical_key

if TYPE_CHECKING:
    from ..plans import Candidate, Plan
    from ..scoring.scorer import Scorer
    from ..store.cache import ResultStore

__all__ = ["Signals", "candidate_signals", "family_of"]

_BATCH = 256


@dataclass(frozen=True)
class Signals:
    """One candidate's forward-pass signals (module doc). ``start_accuracy`` None: not
    measured; ``head_kept``: the retraining keeps the model's head (shifts), so
    ``start_accuracy`` is the loop's own starting accuracy."""

    resque: float
    family: str = "task"
    spread: float = 0.0
    start_accuracy: float | None = None
    target_accuracy: float = 1.0
    head_kept: bool = False

    @property
    def gap(self) -> float:
        """max(0, target - accuracy before training); 0 when not measured."""
        if self.start_accuracy is None:
            return 0.0
        return max(0.0, self.target_accuracy - self.start_accuracy)

    @property
    def at_target(self) -> bool:
        """The retraining loop will stop before its first epoch."""
        return (
            self.head_kept
            and self.start_accuracy is not None
            and self.start_accuracy >= self.target_accuracy
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Signals:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def family_of(candidate: Candidate) -> str:
    if candidate.kind == "shift":
        return parse_shift(candidate.shift).name
    return "shifted_data" if candidate.kind == "shifted_data" else "task"


def _spread(per_class: dict[str, float]) -> float:
    values = [v for v in per_class.values() if math.isfinite(v)]
    return float(np.std(values)) if len(values) > 1 else 0.0


@torch.no_grad()
def _head_accuracy(model: nn.Module, data: RetrainData, device: torch.device) -> float:
    model.eval()
    hits = 0
    for start in range(0, len(data.held_y), _BATCH):
        x = data.normalize(data.held_x[start : start + _BATCH].to(device))
        hits += int((model(x).argmax(1).cpu() == data.held_y[start : start + _BATCH]).sum())
    return hits / max(len(data.held_y), 1)


def _last_linear(model: nn.Module) -> nn.Linear | None:
    found = None
    for m in model.modules():
        if isinstance(m, nn.Linear):
            found = m
    return found


@torch.no_grad()
def _features(model: nn.Module, layer: nn.Module, x: torch.Tensor, normalize, device) -> np.ndarray:
    grabbed: list[torch.Tensor] = []
    hook = layer.register_forward_pre_hook(lambda _m, inp: grabbed.append(inp[0].flatten(1)))
    try:
        model.eval()
        for start in range(0, len(x), _BATCH):
            model(normalize(x[start : start + _BATCH].to(device)))
    finally:
        hook.remove()
    return torch.cat(grabbed).double().cpu().numpy()


def _centroid_accuracy(model: nn.Module, data: RetrainData, device: torch.device) -> float | None:
    layer = _last_linear(model)
    if layer is None:
        return None
    train = _features(model, layer, data.train_x, data.normalize, device)
    held = _features(model, layer, data.held_x, data.normalize, device)
    ty, hy = data.train_y.numpy(), data.held_y.numpy()
    classes = np.unique(ty)
    centroids = np.stack([train[ty == c].mean(0) for c in classes])
    d = ((held[:, None, :] - centroids[None]) ** 2).sum(-1)
    return float((classes[d.argmin(1)] == hy).mean())


def candidate_signals(
    plan: Plan,
    candidate: Candidate,
    *,
    resque: float,
    per_class: dict[str, float] | None,
    scorer: Scorer,
    config: RetrainConfig,
    store: ResultStore | None = None,
    data: RetrainData | None = None,
) -> Signals:
    """The candidate's :class:`Signals` (module doc); the accuracy part comes from ``store``
    when the same model, data and split were measured before."""
    head_kept = candidate.kind != "task"
    target = (
        candidate.shift
        if candidate.kind == "shift"
        else scorer.fingerprint(plan.resolve(candidate.data))
    )
    key = canonical_key(
        "cost_signals",
        {
            "model": scorer.checkpoint_sha256(),
            "source": scorer.fingerprint(plan.resolve(plan.source)),
            "kind": candidate.kind,
            "target": target,
            "seed": scorer.run.seed,
            "split": [config.held_out_fraction, config.seed, config.max_samples_per_class],
        },
    )
    hit = store.get(key) if store is not None else None
    if hit is not None:
        accuracy = hit[0]["start_accuracy"]
    else:
        if data is None:
            data = candidate_data(
                plan, candidate, workspace=scorer.workspace, seed=scorer.run.seed, config=config
            )
        # the scorer's own copy, on its device; evaluation only, no weight changes
        device = scorer.device
        model = scorer.checkpoint().model
        if head_kept:
            accuracy = _head_accuracy(model, data, device)
        else:
            accuracy = _centroid_accuracy(model, data, device)
        if store is not None:
            store.put(key, {"start_accuracy": accuracy})
    return Signals(
        resque=float(resque),
        family=family_of(candidate),
        spread=_spread(per_class or {}),
        start_accuracy=accuracy,
        target_accuracy=config.target_accuracy,
        head_kept=head_kept,
    )
