"""One model's training state, shared by the loop (:mod:`.loop`) and the energy probe
(:mod:`.probe`): the copy that is trained (:func:`prepare_model`), its optimizer, one seeded,
augmented optimisation step, held-out evaluation, parameter change, device and RNG handling.
"""

from __future__ import annotations

import copy
import math
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, DataError
from .augment import augment
from .config import RetrainConfig, RetrainData

__all__ = ["prepare_model"]

_EVAL_BATCH = 512


def _last_linear(model: nn.Module) -> tuple[str, nn.Linear]:
    found = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not found:
        raise ConfigError(
            "the model has no nn.Linear classifier head to replace for a new task; "
            "retrain it on a distribution shift, or export a model whose head is an nn.Linear"
        )
    return found[-1]


def prepare_model(model: nn.Module, *, num_classes: int | None = None, seed: int = 0) -> nn.Module:
    """A deep copy of ``model`` in train mode; with ``num_classes``, its last ``nn.Linear``
    replaced by a fresh one with that many outputs (PyTorch's default init, drawn from a
    generator seeded with ``seed``). ``model`` itself is never modified."""
    if not isinstance(model, nn.Module):
        raise ConfigError(f"retraining needs a torch nn.Module, got {type(model).__name__}")
    try:
        copied = copy.deepcopy(model)
    except Exception as e:  # TorchScript / exported programs may refuse to copy
        raise ConfigError(
            f"cannot copy this model for retraining ({type(e).__name__}: {e}); "
            "load it from a state_dict with --arch"
        ) from None
    if num_classes is not None:
        if num_classes < 2:
            raise ConfigError(f"a task needs at least 2 classes, got {num_classes}")
        name, old = _last_linear(copied)
        head = nn.Linear(
            old.in_features,
            num_classes,
            bias=old.bias is not None,
            device=old.weight.device,
            dtype=old.weight.dtype,
        )
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            weight = torch.empty(head.weight.shape)
            nn.init.kaiming_uniform_(weight, a=math.sqrt(5), generator=gen)
            head.weight.copy_(weight)
            if head.bias is not None:
                bound = 1 / math.sqrt(old.in_features)
                bias = torch.empty(head.bias.shape).uniform_(-bound, bound, generator=gen)
                head.bias.copy_(bias)
        parent_name, _, attr = name.rpartition(".")
        parent = copied.get_submodule(parent_name) if parent_name else copied
        setattr(parent, attr, head)
    for p in copied.parameters():
        p.requires_grad_(True)
    return copied.train()


def _optimizer(params, config: RetrainConfig) -> torch.optim.Optimizer:
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(
        params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def _evaluate(
    model: nn.Module, data: RetrainData, device: torch.device, limit: int | None = None
) -> tuple[float, float]:
    """(accuracy, mean loss) on the held-out split (first ``limit`` batches only, if given)."""
    model.eval()
    correct = torch.zeros((), device=device)
    loss = torch.zeros((), device=device, dtype=torch.float64)
    n = 0
    for i, start in enumerate(range(0, len(data.held_y), _EVAL_BATCH)):
        if limit is not None and i >= limit:
            break
        x = data.normalize(data.held_x[start : start + _EVAL_BATCH].to(device))
        y = data.held_y[start : start + _EVAL_BATCH].to(device)
        out = model(x)
        loss += F.cross_entropy(out, y, reduction="sum").double()
        correct += (out.argmax(dim=1) == y).sum()
        n += len(y)
    model.train()
    return float(correct) / max(n, 1), float(loss) / max(n, 1)


def _flat_params(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def _rms_change(model: nn.Module, ref: dict[str, torch.Tensor]) -> tuple[float, dict[str, float]]:
    total, count, per = 0.0, 0, {}
    for n, p in model.named_parameters():
        sq = float((p.detach() - ref[n]).double().pow(2).sum())
        per[n] = math.sqrt(sq / p.numel())
        total, count = total + sq, count + p.numel()
    return math.sqrt(total / max(count, 1)), per


class _Trainer:
    """One model's training state: optimizer, seeded generator (shuffling and augmentation)."""

    def __init__(self, model: nn.Module, data: RetrainData, config: RetrainConfig, device):
        self.model, self.data, self.config, self.device = model, data, config, device
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.optim = _optimizer(self.params, config)
        self.gen = torch.Generator().manual_seed(config.seed)

    def batches(self) -> list[torch.Tensor]:
        order = torch.randperm(len(self.data.train_y), generator=self.gen)
        bs = self.config.batch_size
        return [order[i : i + bs] for i in range(0, len(order), bs)]

    def step(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One optimisation step; (summed loss, correct count, gradient norm) as device tensors
        (no host sync per batch)."""
        x = self.data.train_x[idx].to(self.device)
        y = self.data.train_y[idx].to(self.device)
        x = self.data.normalize(augment(x, self.config.augment, self.gen))
        self.optim.zero_grad(set_to_none=True)
        out = self.model(x)
        loss = F.cross_entropy(out, y)
        loss.backward()
        grads = [p.grad for p in self.params if p.grad is not None]
        norm = torch.nn.utils.get_total_norm(grads) if grads else torch.zeros((), device=x.device)
        self.optim.step()
        correct = (out.detach().argmax(dim=1) == y).sum()
        return loss.detach() * len(y), correct, norm.detach()


def _resolve_device(name: str) -> torch.device:
    from ..scoring.scorer import resolve_device

    return resolve_device(name)


@contextmanager
def _seeded_rng(device: torch.device, seed: int):
    """Dropout and other global-RNG users inside the model draw from a forked, seeded state;
    the caller's global RNG state is restored afterwards."""
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def _check_data(data: RetrainData) -> None:
    if len(data.train_y) == 0 or len(data.held_y) == 0:
        raise DataError(
            f"the candidate has {len(data.train_y)} training and {len(data.held_y)} held-out "
            "samples; it needs at least one of each (add data or lower the held-out fraction)"
        )
    top = int(max(data.train_y.max(), data.held_y.max()))
    if top >= data.num_classes:
        raise DataError(
            f"a label ({top}) is out of range for {data.num_classes} classes; check the data"
        )
