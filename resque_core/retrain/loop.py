"""Measured retraining: fine-tune a copy of a checkpoint on a candidate and record what it costs.

Procedure (METHOD.md, the reference's retraining, with the defaults of :class:`RetrainConfig`):
a deep copy of the model (the caller's model is never touched), all layers trained; for a new
task the classifier head (the last ``nn.Linear``) is replaced by a fresh, seeded one with K
outputs. Every epoch: one pass over the shuffled training split with augmentation, then the
held-out split is evaluated. Training stops when held-out accuracy reaches the target; cutoff k
stops it ``epochs_k`` epochs after accuracy first came within ``acc_diff_k`` of the target; and it
stops at ``max_epochs`` or after the first epoch that ends past ``time_budget_s``. Held-out
accuracy is also measured before the first epoch: a model that already meets the target needs
0 epochs.

Per epoch (:class:`EpochRecord`): train / held-out accuracy and mean loss, global L2 gradient
norm (mean over the epoch's batches, and the last batch's as in the reference), RMS parameter
change from the start and from the previous epoch, wall time, energy (from a
:class:`~resque_core.measure.energy.Meter`, with its method) and CO2. A cancelled or failed run
returns
the epochs it finished, and the energy of the unfinished epoch is still counted in the total.

Candidate data (:func:`candidate_data`): for a synthetic shift, the images the
:class:`~resque_core.scoring.scorer.Scorer` corrupts and scores (the shifted role of the source
data,
same preprocessing, the same :func:`~resque_core.data.shifts.shifted_chunks` with the run's seed);
for real shifted data, those images relabelled to the source classes by name; for a task, the
task's data. Each is split per class 80/20 into train / held-out (seeded,
:func:`~resque_core.data.sources.stratified_split`).

Augmentation is batched and seeded (``torch.Generator``), so it runs on any device and a CPU run
is reproducible bit for bit: ``reference`` = random horizontal flip, rotation within +-25 deg,
affine scale 0.9-1.1 and translation up to 10%, brightness and contrast jitter of +-20% (the
reference's flip / rotation / affine / colour jitter; hue and saturation are not jittered);
``no_flip`` = the same without the flip (mirrored digits or letters are other symbols);
``none``.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, DataError
from ..measure.carbon import CarbonIntensity, carbon_intensity, emissions_kg
from ..measure.energy import EnergyReading, Meter, make_meter
from ..measure.units import joules_to_kwh

if TYPE_CHECKING:
    from ..plans import Candidate, Plan
    from ..scoring.scorer import Progress, Scorer

__all__ = [
    "AUGMENTATIONS",
    "OPTIMIZERS",
    "EnergyProbe",
    "EpochRecord",
    "RetrainConfig",
    "RetrainData",
    "RetrainResult",
    "augment",
    "candidate_data",
    "prepare_model",
    "probe_epoch_energy",
    "retrain",
]

Optimizer = Literal["adam", "adamw", "sgd"]
Augmentation = Literal["reference", "no_flip", "none"]
OPTIMIZERS: tuple[str, ...] = ("adam", "adamw", "sgd")
AUGMENTATIONS: tuple[str, ...] = ("reference", "no_flip", "none")
Status = Literal["completed", "cancelled", "failed"]
_EVAL_BATCH = 512
_WARMUP_STEPS = 3
_ROTATION_DEG, _SCALE, _TRANSLATE, _JITTER = 25.0, 0.1, 0.1, 0.2


@dataclass(frozen=True)
class RetrainConfig:
    """How to fine-tune. Defaults are the reference's (Adam, lr 1e-3, weight decay 1e-5, batch
    32, flip / rotation / affine / colour-jitter augmentation, all layers).

    ``target_accuracy``: held-out accuracy that ends training. Default 0.9: high enough that a
    model hurt by a shift has to recover (the demo model's clean held-out accuracy is ~0.97),
    reachable on every demo candidate well before ``max_epochs``. ``cutoffs``: pairs
    (acc_diff, epochs), see the module docstring; default ((0.02, 10), (0.05, 20)) ends runs that
    plateau just under the target. ``max_epochs``: 250 as in the reference (validation runs
    usually pass less). ``time_budget_s``: None = no limit. ``max_samples_per_class`` caps the
    candidate data (None = all of it). ``device``: auto, cpu, cuda or cuda:N.
    """

    optimizer: Optimizer = "adam"
    lr: float = 1e-3
    weight_decay: float = 1e-5
    momentum: float = 0.9
    batch_size: int = 32
    augment: Augmentation = "reference"
    target_accuracy: float = 0.9
    cutoffs: tuple[tuple[float, int], ...] = ((0.02, 10), (0.05, 20))
    max_epochs: int = 250
    time_budget_s: float | None = None
    held_out_fraction: float = 0.2
    max_samples_per_class: int | None = None
    seed: int = 0
    device: str = "auto"

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(
                f"unknown optimizer {self.optimizer!r}; allowed: {', '.join(OPTIMIZERS)}"
            )
        if self.augment not in AUGMENTATIONS:
            raise ConfigError(
                f"unknown augmentation {self.augment!r}; allowed: {', '.join(AUGMENTATIONS)}"
            )
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"learning rate must be > 0, got {self.lr}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ConfigError(f"weight decay must be >= 0, got {self.weight_decay}")
        if self.batch_size < 1:
            raise ConfigError(f"batch size must be at least 1, got {self.batch_size}")
        if not 0 < self.target_accuracy <= 1:
            raise ConfigError(f"target accuracy must be in (0, 1], got {self.target_accuracy}")
        for diff, epochs in self.cutoffs:
            if not 0 < diff < 1 or epochs < 1:
                raise ConfigError(
                    f"cutoff ({diff}, {epochs}) must be (accuracy difference in (0, 1), "
                    "epochs >= 1)"
                )
        if self.max_epochs < 1:
            raise ConfigError(f"max epochs must be at least 1, got {self.max_epochs}")
        if self.time_budget_s is not None and not self.time_budget_s > 0:
            raise ConfigError(f"time budget must be > 0 seconds, got {self.time_budget_s}")
        if not 0 < self.held_out_fraction < 1:
            raise ConfigError(f"held-out fraction must be in (0, 1), got {self.held_out_fraction}")
        if self.max_samples_per_class is not None and self.max_samples_per_class < 2:
            raise ConfigError(
                f"max samples per class must be at least 2, got {self.max_samples_per_class}"
            )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["cutoffs"] = [list(c) for c in self.cutoffs]
        return d

    def procedure(self) -> dict[str, Any]:
        """The settings that decide how many epochs a run needs (not the limits that truncate
        it): calibrations are kept per procedure."""
        d = self.to_dict()
        for limit in ("max_epochs", "time_budget_s", "device"):
            d.pop(limit)
        return d


@dataclass(frozen=True)
class RetrainData:
    """A candidate's data ready for fine-tuning.

    ``train_x`` [N, C, H, W] and ``held_x`` [M, C, H, W]: float32 in [0, 1] at the model's input
    size, shift applied, not normalised (augmentation works in [0, 1]); ``train_y`` [N],
    ``held_y`` [M]: int64 class indices < ``num_classes``. ``normalize`` maps [0, 1] images to
    model inputs. ``new_head``: replace the classifier with ``num_classes`` outputs (a task).
    """

    train_x: torch.Tensor
    train_y: torch.Tensor
    held_x: torch.Tensor
    held_y: torch.Tensor
    num_classes: int
    normalize: Callable[[torch.Tensor], torch.Tensor]
    new_head: bool = False
    description: str = ""


@dataclass(frozen=True)
class EpochRecord:
    """One finished epoch. Accuracies are fractions; losses mean cross-entropy per sample;
    ``grad_norm`` the mean over batches of the global L2 gradient norm, ``grad_norm_last`` the
    last batch's (the reference's figure); ``param_change_*`` the RMS over all parameters of
    (theta_e - theta_ref), i.e. sqrt(sum of squares / number of parameters); ``seconds`` wall
    time of training + evaluation; energy of the same window in kWh, CO2 in kg CO2e."""

    epoch: int
    train_accuracy: float
    train_loss: float
    held_accuracy: float
    held_loss: float
    grad_norm: float
    grad_norm_last: float
    param_change_start: float
    param_change_prev: float
    seconds: float
    energy_kwh: float
    co2_kg: float
    lr: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RetrainResult:
    """A retraining run. ``epochs`` = finished epochs; ``energy_kwh`` includes the unfinished
    epoch of a cancelled or failed run (``unfinished_kwh``). ``grad_norm`` = mean over epochs of
    the per-epoch ``grad_norm``; ``param_change`` = the last epoch's RMS change from the start.
    ``param_change_per_tensor``: that change per parameter tensor."""

    status: Status
    stop_reason: str
    reached_target: bool
    config: RetrainConfig
    records: list[EpochRecord]
    initial_held_accuracy: float
    initial_held_loss: float
    n_train: int
    n_held: int
    num_classes: int
    new_head: bool
    device: str
    energy_method: str
    energy_basis: str
    intensity: CarbonIntensity
    seconds: float = 0.0
    unfinished_kwh: float = 0.0
    error: str | None = None
    param_change_per_tensor: dict[str, float] = field(default_factory=dict)

    @property
    def epochs(self) -> int:
        return len(self.records)

    @property
    def energy_kwh(self) -> float:
        return sum(r.energy_kwh for r in self.records) + self.unfinished_kwh

    @property
    def co2_kg(self) -> float:
        return emissions_kg(self.energy_kwh, self.intensity)

    @property
    def grad_norm(self) -> float | None:
        return float(np.mean([r.grad_norm for r in self.records])) if self.records else None

    @property
    def param_change(self) -> float | None:
        return self.records[-1].param_change_start if self.records else None

    @property
    def censored(self) -> bool:
        """Stopped by a limit (max epochs, time budget) before the target or a cutoff: the
        epochs it needs are at least ``epochs``, not exactly."""
        return self.status == "completed" and self.stop_reason.startswith(("max epochs", "time"))

    @property
    def final_held_accuracy(self) -> float:
        return self.records[-1].held_accuracy if self.records else self.initial_held_accuracy

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "stop_reason": self.stop_reason,
            "reached_target": self.reached_target,
            "censored": self.censored,
            "epochs": self.epochs,
            "energy_kwh": self.energy_kwh,
            "co2_kg": self.co2_kg,
            "energy_method": self.energy_method,
            "energy_basis": self.energy_basis,
            "grad_norm": self.grad_norm,
            "param_change": self.param_change,
            "initial_held_accuracy": self.initial_held_accuracy,
            "initial_held_loss": self.initial_held_loss,
            "final_held_accuracy": self.final_held_accuracy,
            "n_train": self.n_train,
            "n_held": self.n_held,
            "num_classes": self.num_classes,
            "new_head": self.new_head,
            "device": self.device,
            "seconds": self.seconds,
            "unfinished_kwh": self.unfinished_kwh,
            "error": self.error,
            "intensity": self.intensity.to_dict(),
            "config": self.config.to_dict(),
            "records": [r.to_dict() for r in self.records],
            "param_change_per_tensor": self.param_change_per_tensor,
        }


@dataclass(frozen=True)
class EnergyProbe:
    """Energy of one epoch extrapolated from a few measured training and evaluation batches.

    ``joules_per_epoch`` is the mean over ``repeats`` windows, ``joules_per_epoch_sd`` their
    standard deviation (the probe's spread); ``seconds_per_epoch`` likewise from wall time.
    """

    joules_per_epoch: float
    joules_per_epoch_sd: float
    seconds_per_epoch: float
    train_batches_per_epoch: int
    eval_batches_per_epoch: int
    batches_measured: int
    repeats: int
    method: str
    basis: str

    @property
    def kwh_per_epoch(self) -> float:
        return joules_to_kwh(self.joules_per_epoch)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "kwh_per_epoch": self.kwh_per_epoch}


# ----------------------------------------------------------------------------- model
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


# ----------------------------------------------------------------------------- augmentation
def augment(x: torch.Tensor, policy: Augmentation, generator: torch.Generator) -> torch.Tensor:
    """Per-sample random augmentation of a batch [B, C, H, W] in [0, 1] (see the module
    docstring); the random draws come from the CPU ``generator`` whatever ``x``'s device, so
    results do not depend on the device's RNG."""
    if policy == "none":
        return x
    b = x.shape[0]
    r = torch.rand(b, 7, generator=generator).to(device=x.device, dtype=x.dtype)
    if policy == "reference":
        x = torch.where((r[:, 0] < 0.5)[:, None, None, None], x.flip(-1), x)
    angle = (r[:, 1] * 2 - 1) * math.radians(_ROTATION_DEG)
    scale = 1 + (r[:, 2] * 2 - 1) * _SCALE
    # affine_grid works in [-1, 1] coordinates: a shift of 10% of the side is 0.2 there
    tx, ty = (r[:, 3] * 2 - 1) * 2 * _TRANSLATE, (r[:, 4] * 2 - 1) * 2 * _TRANSLATE
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    brightness = 1 + (r[:, 5] * 2 - 1) * _JITTER
    contrast = 1 + (r[:, 6] * 2 - 1) * _JITTER
    x = x * brightness[:, None, None, None]
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return ((x - mean) * contrast[:, None, None, None] + mean).clamp_(0, 1)


# ----------------------------------------------------------------------------- loops
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


class _Stop(Exception):
    """Raised inside an epoch when the user cancels."""


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


def retrain(
    model: nn.Module,
    data: RetrainData,
    *,
    config: RetrainConfig | None = None,
    meter: Meter | None = None,
    intensity: CarbonIntensity | None = None,
    on_epoch: Callable[[EpochRecord], None] | None = None,
    progress: Progress | None = None,
    cancel: Callable[[], bool] | None = None,
) -> RetrainResult:
    """Fine-tune a copy of ``model`` on ``data`` and measure every epoch (see the module doc).

    ``meter``: default codecarbon (opened and closed here unless already open); ``intensity``:
    default world average. ``on_epoch(record)`` after each epoch; ``progress(stage, done, total)``
    after each batch; ``cancel()`` is polled after each batch. Never raises for a problem inside
    the training loop: the result's ``status`` is ``failed`` with ``error`` set.
    """
    config = config or RetrainConfig()
    device = _resolve_device(config.device)
    intensity = intensity or carbon_intensity()
    meter = meter or make_meter("auto", device=device)
    _check_data(data)
    net = prepare_model(
        model, num_classes=data.num_classes if data.new_head else None, seed=config.seed
    ).to(device)
    own_session = not meter.active
    meter.start()
    result = RetrainResult(
        status="completed",
        stop_reason="",
        reached_target=False,
        config=config,
        records=[],
        initial_held_accuracy=0.0,
        initial_held_loss=0.0,
        n_train=len(data.train_y),
        n_held=len(data.held_y),
        num_classes=data.num_classes,
        new_head=data.new_head,
        device=str(device),
        energy_method=meter.method,
        energy_basis="",
        intensity=intensity,
    )
    started = time.perf_counter()
    try:
        with _seeded_rng(device, config.seed):
            _run(net, data, config, device, meter, result, on_epoch, progress, cancel)
    finally:
        result.seconds = time.perf_counter() - started
        if own_session:
            meter.stop()
    return result


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


def _run(
    net: nn.Module,
    data: RetrainData,
    config: RetrainConfig,
    device: torch.device,
    meter: Meter,
    result: RetrainResult,
    on_epoch: Callable[[EpochRecord], None] | None,
    progress: Progress | None,
    cancel: Callable[[], bool] | None,
) -> None:
    trainer = _Trainer(net, data, config, device)
    start_params = _flat_params(net)
    prev_params = start_params
    try:
        acc, loss = _evaluate(net, data, device)
        result.initial_held_accuracy, result.initial_held_loss = acc, loss
        first_within: list[int | None] = [None] * len(config.cutoffs)
        if _stop_reason(acc, 0, config, first_within, result):
            return
        t0 = time.perf_counter()
        for epoch in range(1, config.max_epochs + 1):
            _sync(device)
            meter.begin()
            try:
                record, prev_params = _epoch(
                    trainer, epoch, start_params, prev_params, progress, cancel
                )
            except BaseException:
                # the unfinished epoch's energy was spent: count it in the total
                _sync(device)
                result.unfinished_kwh = meter.end().kwh
                raise
            _sync(device)
            reading = meter.end()
            record = _with_energy(record, reading, result.intensity)
            result.energy_basis = reading.basis
            result.records.append(record)
            if on_epoch is not None:
                on_epoch(record)
            if _stop_reason(record.held_accuracy, epoch, config, first_within, result):
                return
            if config.time_budget_s is not None and time.perf_counter() - t0 > config.time_budget_s:
                result.stop_reason = f"time budget of {config.time_budget_s:g} s used"
                return
        result.stop_reason = f"max epochs ({config.max_epochs}) reached"
    except _Stop:
        result.status = "cancelled"
        result.stop_reason = "cancelled by the user"
    except Exception as e:  # keep what was measured; the caller sees status + error
        result.status = "failed"
        result.stop_reason = "failed"
        result.error = f"{type(e).__name__}: {e}"
    finally:
        _, result.param_change_per_tensor = _rms_change(net, start_params)


def _stop_reason(
    acc: float,
    epoch: int,
    config: RetrainConfig,
    first_within: list[int | None],
    result: RetrainResult,
) -> bool:
    if acc >= config.target_accuracy:
        result.reached_target = True
        result.stop_reason = f"target accuracy {config.target_accuracy:g} reached" + (
            " before training" if epoch == 0 else ""
        )
        return True
    for k, (diff, patience) in enumerate(config.cutoffs):
        if first_within[k] is None and acc >= config.target_accuracy - diff:
            first_within[k] = epoch
        if first_within[k] is not None and epoch - first_within[k] >= patience:
            result.stop_reason = (
                f"cutoff {k + 1}: within {diff:g} of the target for {patience} epochs"
            )
            return True
    return False


def _epoch(
    trainer: _Trainer,
    epoch: int,
    start_params: dict[str, torch.Tensor],
    prev_params: dict[str, torch.Tensor],
    progress: Progress | None,
    cancel: Callable[[], bool] | None,
) -> tuple[EpochRecord, dict[str, torch.Tensor]]:
    began = time.perf_counter()
    batches = trainer.batches()
    dev = trainer.device
    loss_sum = torch.zeros((), device=dev, dtype=torch.float64)
    correct = torch.zeros((), device=dev)
    norm_sum = torch.zeros((), device=dev, dtype=torch.float64)
    last_norm = torch.zeros((), device=dev)
    for i, idx in enumerate(batches):
        loss, right, last_norm = trainer.step(idx)
        loss_sum += loss.double()
        correct += right
        norm_sum += last_norm.double()
        if cancel is not None and cancel():
            raise _Stop
        if progress is not None:
            progress(f"epoch {epoch}", i + 1, len(batches))
    n = len(trainer.data.train_y)
    held_acc, held_loss = _evaluate(trainer.model, trainer.data, dev)
    change_start, _ = _rms_change(trainer.model, start_params)
    change_prev, _ = _rms_change(trainer.model, prev_params)
    record = EpochRecord(
        epoch=epoch,
        train_accuracy=float(correct) / n,
        train_loss=float(loss_sum) / n,
        held_accuracy=held_acc,
        held_loss=held_loss,
        grad_norm=float(norm_sum) / len(batches),
        grad_norm_last=float(last_norm),
        param_change_start=change_start,
        param_change_prev=change_prev,
        seconds=time.perf_counter() - began,
        energy_kwh=0.0,
        co2_kg=0.0,
        lr=trainer.optim.param_groups[0]["lr"],
    )
    return record, _flat_params(trainer.model)


def _with_energy(
    record: EpochRecord, reading: EnergyReading, intensity: CarbonIntensity
) -> EpochRecord:
    return replace(record, energy_kwh=reading.kwh, co2_kg=emissions_kg(reading.kwh, intensity))


# ----------------------------------------------------------------------------- probe
def probe_epoch_energy(
    model: nn.Module,
    data: RetrainData,
    *,
    config: RetrainConfig | None = None,
    meter: Meter,
    seconds: float = 0.5,
    repeats: int = 3,
    min_batches: int = 5,
) -> EnergyProbe:
    """Measure ``repeats`` windows of real training (each at least ``seconds`` long and
    ``min_batches`` batches, at most one epoch's batches) and one window of evaluation on a
    throwaway copy of ``model``, and extrapolate to one epoch: J/epoch = J/train batch x train
    batches + J/eval batch x eval batches. Unmeasured warm-up steps first (optimizer state,
    allocator, kernel selection make the first steps slower than the rest)."""
    config = config or RetrainConfig()
    if repeats < 2:
        raise ConfigError(f"an energy probe needs at least 2 repeats for its spread, got {repeats}")
    if not seconds > 0:
        raise ConfigError(f"probe window must be > 0 s, got {seconds}")
    if min_batches < 1:
        raise ConfigError(f"probe windows need at least 1 batch, got {min_batches}")
    device = _resolve_device(config.device)
    _check_data(data)
    net = prepare_model(
        model, num_classes=data.num_classes if data.new_head else None, seed=config.seed
    ).to(device)
    trainer = _Trainer(net, data, config, device)
    n_train = len(trainer.batches())
    n_eval = math.ceil(len(data.held_y) / _EVAL_BATCH)
    own_session = not meter.active
    meter.start()
    try:
        with _seeded_rng(device, config.seed):
            for idx in trainer.batches()[:_WARMUP_STEPS]:
                trainer.step(idx)
            _sync(device)
            meter.begin()
            _evaluate(net, data, device, limit=n_eval)
            _sync(device)
            eval_reading = meter.end()
            per_eval = eval_reading.joules / n_eval
            eval_seconds = eval_reading.seconds / n_eval
            epoch_joules, epoch_seconds, measured = [], [], 0
            for _ in range(repeats):
                batches = iter(trainer.batches())
                _sync(device)
                meter.begin()
                began, done = time.perf_counter(), 0
                for idx in batches:
                    trainer.step(idx)
                    done += 1
                    if done >= min_batches and time.perf_counter() - began >= seconds:
                        break
                _sync(device)
                reading = meter.end()
                measured += done
                epoch_joules.append(reading.joules / done * n_train + per_eval * n_eval)
                epoch_seconds.append(reading.seconds / done * n_train + eval_seconds * n_eval)
    finally:
        if own_session:
            meter.stop()
    return EnergyProbe(
        joules_per_epoch=float(np.mean(epoch_joules)),
        joules_per_epoch_sd=float(np.std(epoch_joules, ddof=1)),
        seconds_per_epoch=float(np.mean(epoch_seconds)),
        train_batches_per_epoch=n_train,
        eval_batches_per_epoch=n_eval,
        batches_measured=measured,
        repeats=repeats,
        method=eval_reading.method,
        basis=eval_reading.basis,
    )


# ----------------------------------------------------------------------------- data
def candidate_data(
    plan: Plan,
    candidate: Candidate,
    *,
    scorer: Scorer,
    config: RetrainConfig | None = None,
) -> RetrainData:
    """The candidate's images, split stratified into train / held-out by
    ``config.held_out_fraction`` with ``config.seed``. For a synthetic shift these are the
    images the scorer corrupts and scores: the shifted role of the source data
    (:func:`~resque_core.data.sources.synthetic_shift_roles`, the run's seed), through
    :func:`~resque_core.data.shifts.shifted_chunks` with the run's seed.
    ``config.max_samples_per_class``
    then picks rows of that set without redrawing their noise. Images are shifted on the scorer's
    device and returned on the CPU; the scorer supplies data loading, preprocessing, the device
    and the checkpoint's input channels."""
    from ..data import sources as data_mod
    from ..data.shifts import parse_shift, shifted_chunks
    from ..scoring.scorer import Scorer

    config = config or RetrainConfig()
    source_spec = plan.resolve(plan.source)
    shift = None
    if candidate.kind == "shift":
        images = scorer.dataset(source_spec)
        shift = parse_shift(candidate.shift)
        rows = data_mod.synthetic_shift_roles(images.labels.numpy(), seed=scorer.run.seed)[1]
    elif candidate.kind == "shifted_data":
        images = Scorer._aligned(
            scorer.dataset(source_spec),
            scorer.dataset(plan.resolve(candidate.data)),
            candidate.data,
        )
        rows = np.arange(len(images.labels))
    else:
        images = scorer.dataset(plan.resolve(candidate.data))
        rows = np.arange(len(images.labels))
    pre = scorer.preprocess(images)
    keep = rows
    if config.max_samples_per_class is not None:
        labels = images.labels.numpy()[rows]
        keep = rows[
            data_mod.subsample_per_class(labels, config.max_samples_per_class, seed=config.seed)
        ]
    # Noise depends on a row's position in the sequence shifted and on the generator's device:
    # a shift runs along the whole role on the scorer's device, as scored, and the cap drops
    # rows afterwards; unshifted data converts only the kept rows.
    chunks = shifted_chunks(
        images.images,
        rows if shift is not None else keep,
        shift,
        to_unit=lambda u: pre.to_unit(u, device=scorer.device),
        seed=scorer.run.seed,
    )
    kept = [x[torch.from_numpy(np.isin(sel.numpy(), keep)).to(x.device)].cpu() for sel, x in chunks]
    unit = torch.cat(kept) if kept else torch.empty(0)
    y = images.labels[torch.from_numpy(keep)].long()
    frac = config.held_out_fraction
    train, held = data_mod.stratified_split(y.numpy(), (1 - frac, frac), seed=config.seed)
    train_t, held_t = torch.from_numpy(train), torch.from_numpy(held)
    return RetrainData(
        train_x=unit[train_t],
        train_y=y[train_t],
        held_x=unit[held_t],
        held_y=y[held_t],
        num_classes=images.num_classes,
        normalize=pre.normalize,
        new_head=candidate.kind == "task",
        description=f"{candidate.id}: {candidate.title}",
    )
