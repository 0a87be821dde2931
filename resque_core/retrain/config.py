"""Settings and records of a retraining run.

:class:`RetrainConfig` (how to fine-tune, validated once), :class:`RetrainData` (a candidate's
train / held-out tensors), :class:`EpochRecord` (one finished epoch), :class:`RetrainResult`
(a whole run) and :class:`EnergyProbe` (one epoch's energy extrapolated from a few batches).
The procedure they describe is in :mod:`resque_core.retrain.loop`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from ..errors import ConfigError
from ..measure.carbon import CarbonIntensity, emissions_kg
from ..measure.units import joules_to_kwh

__all__ = [
    "AUGMENTATIONS",
    "OPTIMIZERS",
    "EnergyProbe",
    "EpochRecord",
    "RetrainConfig",
    "RetrainData",
    "RetrainResult",
    "stored_augmentation",
]

Optimizer = Literal["adam", "adamw", "sgd"]
Augmentation = Literal["project", "no_flip", "reference", "reference_task", "none"]
OPTIMIZERS: tuple[str, ...] = ("adam", "adamw", "sgd")
AUGMENTATIONS: tuple[str, ...] = ("project", "no_flip", "reference", "reference_task", "none")
"""Augmentation policies (:mod:`~resque_core.retrain.augment`): ``project`` (default) and
``no_flip`` are this project's; ``reference`` and ``reference_task`` the reference code's noise and
task retraining transforms; ``none``."""

# How a policy is written in a stored procedure (calibration keys, stored configs). ``project``
# keeps the name it was stored under before the reference policies existed ("reference"), so every
# calibration measured with it still matches; the reference policies get names no older document
# uses.
_STORED_AUGMENTATION = {"project": "reference", "reference": "reference_t1"}
_READ_AUGMENTATION = {stored: name for name, stored in _STORED_AUGMENTATION.items()}


def stored_augmentation(name: str) -> str:
    """The policy a stored procedure's ``augment`` names: ``"reference"`` in a stored procedure is
    today's ``project`` policy (the name it had before), ``"reference_t1"`` the reference code's;
    other names are themselves."""
    return _READ_AUGMENTATION.get(name, name)


Status = Literal["completed", "cancelled", "failed"]


@dataclass(frozen=True)
class RetrainConfig:
    """How to fine-tune. Defaults are the reference's optimiser settings (Adam, lr 1e-3, weight
    decay 1e-5, batch 32, all layers) with the project's augmentation (``project``: flip,
    rotation, scale and shift, brightness and contrast); ``augment="reference"`` (or
    ``"reference_task"``) uses the reference code's transforms instead (docs/METHOD.md).

    ``target_accuracy``: held-out accuracy that ends training. Default 0.9: high enough that a model
    hurt by a shift has to recover (the demo model's clean held-out accuracy is ~0.97), reachable on
    every demo candidate well before ``max_epochs``. ``cutoffs``: pairs (acc_diff, epochs), see
    :mod:`~resque_core.retrain.loop`; default ((0.02, 10), (0.05, 20)) ends runs that plateau just
    under the target. ``max_epochs``: 250 as in the reference (validation runs usually pass less).
    ``time_budget_s``: None = no limit. ``max_samples_per_class`` caps the candidate data (None =
    all of it). ``device``: auto, cpu, cuda or cuda:N. ``meter_training``: also meter the
    training loop alone, as the reference meters it (each epoch then takes two meter windows,
    training and evaluation, and its energy is their sum; :attr:`EpochRecord.train_energy_kwh`).
    """

    optimizer: Optimizer = "adam"
    lr: float = 1e-3
    weight_decay: float = 1e-5
    momentum: float = 0.9
    batch_size: int = 32
    augment: Augmentation = "project"
    target_accuracy: float = 0.9
    cutoffs: tuple[tuple[float, int], ...] = ((0.02, 10), (0.05, 20))
    max_epochs: int = 250
    time_budget_s: float | None = None
    held_out_fraction: float = 0.2
    max_samples_per_class: int | None = None
    seed: int = 0
    device: str = "auto"
    meter_training: bool = False

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
        it): calibrations are kept per procedure. The augmentation is written under its stored
        name (:func:`stored_augmentation` reads it back), so ``project`` procedures keep the keys
        they had when the policy was called ``reference``."""
        d = self.to_dict()
        for limit in ("max_epochs", "time_budget_s", "device", "meter_training"):
            d.pop(limit)
        d["augment"] = _STORED_AUGMENTATION.get(self.augment, self.augment)
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
    time of training + evaluation; energy of the same window in kWh, CO2 in kg CO2e.

    The reference's own figures, beside these: ``grad_norm_last`` (it logs the last batch's
    norm), ``param_change_tensor_mean`` (the mean over parameter tensors of each tensor's
    ``|theta_e - theta_0| / sqrt(n)``, its per-tensor change) and ``train_energy_kwh`` (the
    training loop alone, as it meters; None unless :attr:`RetrainConfig.meter_training`)."""

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
    param_change_tensor_mean: float | None = None
    train_energy_kwh: float | None = None

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
    def reference_measures(self) -> dict[str, Any]:
        """The run's figures as the reference code reports them, beside the headlines above:
        ``epochs`` counted its way (a model already at the target counts 1: it trains one epoch
        before it checks), the last epoch's last-batch gradient norm, the last epoch's mean
        per-tensor parameter change from the start, and the training loop's energy alone (None
        unless every epoch metered it, see :attr:`RetrainConfig.meter_training`)."""
        last = self.records[-1] if self.records else None
        train = [r.train_energy_kwh for r in self.records]
        return {
            "epochs": max(1, self.epochs) if self.reached_target else self.epochs,
            "grad_norm_last": last.grad_norm_last if last else None,
            "param_change_tensor_mean": last.param_change_tensor_mean if last else None,
            "train_energy_kwh": (
                sum(train) if train and all(t is not None for t in train) else None
            ),
        }

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
            "reference_measures": self.reference_measures,
        }


@dataclass(frozen=True)
class EnergyProbe:
    """Energy of one epoch extrapolated from a few measured training and evaluation batches.

    ``joules_per_epoch`` is the mean over ``repeats`` windows, ``joules_per_epoch_sd`` their
    standard deviation (the probe's spread); ``seconds_per_epoch`` likewise from wall time.
    ``probe_seconds`` / ``probe_joules``: wall time and measured energy of the probe itself;
    ``workload``: the key of the workload it measured (candidates with the same model, procedure,
    device, input size and head share one probe); ``window_seconds``: mean length of a measured
    window; ``note``: why the windows are shorter than the meter's sampling period, if they are.
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
    # What the probe itself cost and whose workload it measured (absent in older records).
    probe_seconds: float | None = None
    probe_joules: float | None = None
    workload: str = ""
    window_seconds: float | None = None
    note: str = ""

    @property
    def kwh_per_epoch(self) -> float:
        return joules_to_kwh(self.joules_per_epoch)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "kwh_per_epoch": self.kwh_per_epoch}
