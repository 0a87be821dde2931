"""Energy of one retraining epoch, extrapolated from a few measured batches
(:func:`probe_epoch_energy`); the cost model's energy per epoch."""

from __future__ import annotations

import math
import time

import numpy as np
from torch import nn

from ..errors import ConfigError
from ..measure.energy import Meter
from .config import EnergyProbe, RetrainConfig, RetrainData
from .trainer import (
    _EVAL_BATCH,
    _check_data,
    _evaluate,
    _resolve_device,
    _seeded_rng,
    _sync,
    _Trainer,
    prepare_model,
)

__all__ = ["probe_epoch_energy"]

_WARMUP_STEPS = 3


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
