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
:class:`~resque_core.measure.energy.Meter`, with its method) and CO2.

Beside these headlines, the reference's own figures (:attr:`RetrainResult.reference_measures`):
the last batch's gradient norm, the mean over tensors of the per-tensor change
``|theta_e - theta_0| / sqrt(n)``, the training loop's energy alone (with
``RetrainConfig.meter_training``: training and evaluation are then two meter windows per epoch),
and the epochs counted its way: the reference trains one epoch before it first checks accuracy,
so a model already at the target counts 1 there and 0 here. A cancelled or failed run
returns the epochs it finished, and the energy of the unfinished epoch is still counted in the
total.

Candidate data: :mod:`.candidates`; augmentation: :mod:`.augment`; the energy probe that the
cost model extrapolates from: :mod:`.probe`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

import torch
from torch import nn

from ..measure.carbon import CarbonIntensity, carbon_intensity, emissions_kg
from ..measure.energy import EnergyReading, Meter, make_meter
from .config import EpochRecord, RetrainConfig, RetrainData, RetrainResult
from .trainer import (
    _check_data,
    _evaluate,
    _flat_params,
    _resolve_device,
    _rms_change,
    _seeded_rng,
    _sync,
    _Trainer,
    prepare_model,
)

if TYPE_CHECKING:
    from ..scoring.scorer import Progress


__all__ = ["retrain"]


class _Stop(Exception):
    """Raised inside an epoch when the user cancels."""


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
            split = _TrainingWindow(meter if config.meter_training else None)
            try:
                record, prev_params = _epoch(
                    trainer, epoch, start_params, prev_params, progress, cancel, split
                )
            except BaseException:
                # the unfinished epoch's energy was spent: count it in the total
                _sync(device)
                result.unfinished_kwh = meter.end().kwh + split.kwh
                raise
            _sync(device)
            reading = meter.end()
            record = _with_energy(record, reading, result.intensity, split)
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


class _TrainingWindow:
    """With a meter: closes the epoch's window when training ends (that reading is the training
    loop's energy) and opens another for the evaluation. Without one, does nothing."""

    def __init__(self, meter: Meter | None):
        self.meter = meter
        self.reading: EnergyReading | None = None

    def training_done(self, device: torch.device) -> None:
        if self.meter is not None:
            _sync(device)
            self.reading = self.meter.end()
            self.meter.begin()

    @property
    def kwh(self) -> float:
        return self.reading.kwh if self.reading is not None else 0.0


def _epoch(
    trainer: _Trainer,
    epoch: int,
    start_params: dict[str, torch.Tensor],
    prev_params: dict[str, torch.Tensor],
    progress: Progress | None,
    cancel: Callable[[], bool] | None,
    split: _TrainingWindow | None = None,
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
    if split is not None:
        split.training_done(dev)
    held_acc, held_loss = _evaluate(trainer.model, trainer.data, dev)
    change_start, per_tensor = _rms_change(trainer.model, start_params)
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
        param_change_tensor_mean=(
            sum(per_tensor.values()) / len(per_tensor) if per_tensor else None
        ),
    )
    return record, _flat_params(trainer.model)


def _with_energy(
    record: EpochRecord,
    reading: EnergyReading,
    intensity: CarbonIntensity,
    split: _TrainingWindow | None = None,
) -> EpochRecord:
    train = split.reading.kwh if split is not None and split.reading is not None else None
    kwh = reading.kwh + (train or 0.0)
    return replace(
        record, energy_kwh=kwh, co2_kg=emissions_kg(kwh, intensity), train_energy_kwh=train
    )
