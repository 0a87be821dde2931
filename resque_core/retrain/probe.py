"""Energy of one retraining epoch, measured once per *workload* and scaled by batches.

The energy of an epoch depends on the model, the training procedure, the device and the number
and size of its batches, not on which images the batches hold. So candidates that train the same
model with the same procedure on the same device, at the same input size and with the same head
(every synthetic shift and real shifted set of one source: the model's own head; every task:
a new head, whatever its width, which changes one linear layer only, a negligible share of a
batch's work), share one :class:`Workload` probe
(:func:`workload_energy`): a few measured windows of real training give joules per training
batch and per evaluation batch (:class:`BatchEnergy`), and each candidate's epoch is those
figures times its own batch counts (:meth:`BatchEnergy.for_epoch`).

Windows last at least the meter's sampling period (:func:`meter_period`: codecarbon samples
about every second), except that a probe never runs more training batches than the cheapest
retraining it informs is predicted to need (at least one epoch): a probe that cost more than the
retraining would be pointless. A probe cut short that way says so in its ``note``.
:func:`probe_epoch_energy` is the one-data-set form used by tests and the benchmark.
"""

from __future__ import annotations

import math
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from torch import nn

from ..errors import Cancelled, ConfigError
from ..measure.energy import Meter
from ..measure.units import joules_to_kwh
from ..store.cache import canonical_key
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

if TYPE_CHECKING:
    from ..plans import Candidate, Plan
    from ..scoring.scorer import Scorer
    from ..store.cache import ResultStore

__all__ = [
    "BatchEnergy",
    "Workload",
    "meter_period",
    "probe_batch_energy",
    "probe_epoch_energy",
    "workload_energy",
    "workload_of",
]

_WARMUP_STEPS = 3
# Seconds between a meter's own readings: a window shorter than this is mostly interpolation.
_METER_PERIODS = {"codecarbon": 1.0, "nvml": 0.05, "replay": 0.0}
_PERIOD_MARGIN = 1.25  # windows this many sampling periods long

ProbeProgress = Callable[[int, int], None]
"""progress(batches done, batches planned) during a probe."""


def meter_period(meter: Meter) -> float:
    """The meter's sampling period in seconds (0 for a meter that reads exact counters)."""
    poll = getattr(meter, "poll_seconds", None)
    if isinstance(poll, int | float) and poll > 0:
        return float(poll)
    return _METER_PERIODS.get(meter.name, 1.0)


@dataclass(frozen=True)
class Workload:
    """What decides the energy of a training batch, and how many batches an epoch has.

    ``input_shape``: (channels, height, width) of a model input; ``head``: classes of a new
    head (a task), None for the model's own head; ``train_batches`` / ``eval_batches``: one
    epoch's training and held-out evaluation batches of this candidate."""

    input_shape: tuple[int, int, int]
    head: int | None
    train_batches: int
    eval_batches: int

    @property
    def probe_key(self) -> tuple[tuple[int, int, int], bool]:
        """What one probe serves: the input shape and whether a new head replaces the model's
        own. Tasks of every width share a probe: a head of 2 or of 100 classes is one linear
        layer, a negligible share of a training batch beside the layers before it."""
        return (self.input_shape, self.head is not None)

    def parts(self) -> dict[str, Any]:
        """The part of a probe's cache key that the data decides."""
        return {"input": list(self.input_shape), "head": "new" if self.head is not None else "own"}

    def describe(self) -> str:
        c, h, w = self.input_shape
        head = "the model's own head" if self.head is None else "a new head"
        return f"{c}×{h}×{w} inputs, {head}"

    @classmethod
    def of_data(cls, data: RetrainData, batch_size: int) -> Workload:
        """The workload of ready retraining data."""
        c, h, w = (int(v) for v in data.train_x.shape[1:])
        return cls(
            input_shape=(c, h, w),
            head=data.num_classes if data.new_head else None,
            train_batches=math.ceil(len(data.train_y) / batch_size),
            eval_batches=math.ceil(len(data.held_y) / _EVAL_BATCH),
        )


def workload_of(
    plan: Plan, candidate: Candidate, *, scorer: Scorer, config: RetrainConfig
) -> Workload:
    """A candidate's workload from its labels alone (no image is shifted or converted): the
    same rows, per-class cap and train / held-out split as
    :func:`~resque_core.retrain.candidates.candidate_data`."""
    from .. import data as data_mod

    space = scorer.workspace
    source_spec = plan.resolve(plan.source)
    if candidate.kind == "shift":
        images = space.dataset(source_spec)
        rows = data_mod.synthetic_shift_roles(images.labels.numpy(), seed=scorer.run.seed)[1]
    elif candidate.kind == "shifted_data":
        images = space.aligned(source_spec, plan.resolve(candidate.data))
        rows = np.arange(len(images.labels))
    else:
        images = space.dataset(plan.resolve(candidate.data))
        rows = np.arange(len(images.labels))
    labels = images.labels.numpy()[rows]
    if config.max_samples_per_class is not None:
        labels = labels[
            data_mod.subsample_per_class(labels, config.max_samples_per_class, seed=config.seed)
        ]
    frac = config.held_out_fraction
    train, held = data_mod.stratified_split(labels, (1 - frac, frac), seed=config.seed)
    pre = space.preprocess(images)
    return Workload(
        input_shape=(pre.channels, *pre.image_size),
        head=images.num_classes if candidate.kind == "task" else None,
        train_batches=math.ceil(len(train) / config.batch_size),
        eval_batches=math.ceil(len(held) / _EVAL_BATCH),
    )


@dataclass(frozen=True)
class BatchEnergy:
    """Measured energy and time of one training batch (mean and spread over ``repeats``
    windows) and of one evaluation batch, with what the probe itself cost.

    ``probe_seconds``: the probe's wall time (warm-up included); ``probe_joules``: the energy
    of its measured windows; ``window_seconds``: mean length of a training window;
    ``note``: why the windows are shorter than the meter's sampling period, if they are;
    ``workload``: the workload's description; ``reused``: read back from the result cache."""

    joules_per_train_batch: float
    joules_per_train_batch_sd: float
    seconds_per_train_batch: float
    joules_per_eval_batch: float
    seconds_per_eval_batch: float
    batches_measured: int
    repeats: int
    method: str
    basis: str
    probe_seconds: float
    probe_joules: float
    window_seconds: float
    note: str = ""
    workload: str = ""
    reused: bool = False

    @property
    def probe_kwh(self) -> float:
        return joules_to_kwh(self.probe_joules)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def for_epoch(self, train_batches: int, eval_batches: int) -> EnergyProbe:
        """One epoch of ``train_batches`` training and ``eval_batches`` evaluation batches."""
        return EnergyProbe(
            joules_per_epoch=self.joules_per_train_batch * train_batches
            + self.joules_per_eval_batch * eval_batches,
            joules_per_epoch_sd=self.joules_per_train_batch_sd * train_batches,
            seconds_per_epoch=self.seconds_per_train_batch * train_batches
            + self.seconds_per_eval_batch * eval_batches,
            train_batches_per_epoch=train_batches,
            eval_batches_per_epoch=eval_batches,
            batches_measured=self.batches_measured,
            repeats=self.repeats,
            method=self.method,
            basis=self.basis,
            probe_seconds=self.probe_seconds,
            probe_joules=self.probe_joules,
            workload=self.workload,
            window_seconds=self.window_seconds,
            note="; ".join(
                n for n in (self.note, "reused from the cache" if self.reused else "") if n
            ),
        )


def probe_batch_energy(
    model: nn.Module,
    data: RetrainData,
    *,
    config: RetrainConfig | None = None,
    meter: Meter,
    seconds: float = 0.5,
    repeats: int = 3,
    min_batches: int = 5,
    max_batches: int | None = None,
    cancel: Callable[[], bool] | None = None,
    progress: ProbeProgress | None = None,
) -> BatchEnergy:
    """Measure ``repeats`` windows of real training on a throwaway copy of ``model`` (each at
    least ``seconds`` and the meter's sampling period long and at least ``min_batches``
    batches, at most one epoch's batches) and one window of evaluation; unmeasured warm-up steps
    first (optimizer state, allocator and kernel selection make the first steps slower).

    ``max_batches``: training batches the whole probe may run, warm-up included (the cheapest
    retraining it informs); windows end at their share of it even if shorter than asked.
    ``cancel`` is read after every batch (raises :class:`~resque_core.errors.Cancelled`)."""
    config = config or RetrainConfig()
    if repeats < 2:
        raise ConfigError(f"an energy probe needs at least 2 repeats for its spread, got {repeats}")
    if not seconds > 0:
        raise ConfigError(f"probe window must be > 0 s, got {seconds}")
    if min_batches < 1:
        raise ConfigError(f"probe windows need at least 1 batch, got {min_batches}")
    device = _resolve_device(config.device)
    _check_data(data)
    began_probe = time.perf_counter()
    net = prepare_model(
        model, num_classes=data.num_classes if data.new_head else None, seed=config.seed
    ).to(device)
    trainer = _Trainer(net, data, config, device)
    n_train = len(trainer.batches())
    n_eval = math.ceil(len(data.held_y) / _EVAL_BATCH)
    period = meter_period(meter)
    window = max(seconds, _PERIOD_MARGIN * period)
    warmup = _WARMUP_STEPS
    per_window = n_train
    if max_batches is not None:
        warmup = min(_WARMUP_STEPS, max(0, max_batches // (repeats + 1) - 1))
        per_window = max(1, min(n_train, (max_batches - warmup) // repeats))
    planned = warmup + per_window * repeats

    def stop_here(done_total: int) -> None:
        if progress is not None:
            progress(done_total, planned)
        if cancel is not None and cancel():
            raise Cancelled("cancelled during an energy probe")

    own_session = not meter.active
    meter.start()
    done_total = 0
    try:
        with _seeded_rng(device, config.seed):
            for idx in trainer.batches()[:warmup]:
                trainer.step(idx)
                done_total += 1
                stop_here(done_total)
            _sync(device)
            meter.begin()
            _evaluate(net, data, device, limit=n_eval)
            _sync(device)
            eval_reading = meter.end()
            per_batch, batch_seconds, window_lengths, measured = [], [], [], 0
            probe_joules = eval_reading.joules
            for _ in range(repeats):
                batches = iter(trainer.batches())
                _sync(device)
                meter.begin()
                began, done = time.perf_counter(), 0
                for idx in batches:
                    trainer.step(idx)
                    done += 1
                    if done >= per_window or (
                        done >= min_batches and time.perf_counter() - began >= window
                    ):
                        break
                _sync(device)
                reading = meter.end()
                done_total += done
                stop_here(done_total)
                measured += done
                probe_joules += reading.joules
                per_batch.append(reading.joules / done)
                batch_seconds.append(reading.seconds / done)
                window_lengths.append(reading.seconds)
    finally:
        if own_session:
            meter.stop()
    mean_window = float(np.mean(window_lengths))
    note = ""
    if mean_window < period:
        why = (
            f"the cheapest predicted retraining is {max_batches} batches"
            if max_batches is not None and per_window < n_train
            else f"an epoch is {n_train} batches"
        )
        note = (
            f"windows of {mean_window:.2g} s, shorter than the meter's {period:g} s sampling "
            f"period ({why}): the reading leans on the meter's interpolation"
        )
    return BatchEnergy(
        joules_per_train_batch=float(np.mean(per_batch)),
        joules_per_train_batch_sd=float(np.std(per_batch, ddof=1)),
        seconds_per_train_batch=float(np.mean(batch_seconds)),
        joules_per_eval_batch=eval_reading.joules / n_eval,
        seconds_per_eval_batch=eval_reading.seconds / n_eval,
        batches_measured=measured,
        repeats=repeats,
        method=eval_reading.method,
        basis=eval_reading.basis,
        probe_seconds=time.perf_counter() - began_probe,
        probe_joules=float(probe_joules),
        window_seconds=mean_window,
        note=note,
    )


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
    """The energy of one epoch of ``data``: :func:`probe_batch_energy` scaled by its batches,
    J/epoch = J/train batch x train batches + J/eval batch x eval batches."""
    config = config or RetrainConfig()
    batch = probe_batch_energy(
        model,
        data,
        config=config,
        meter=meter,
        seconds=seconds,
        repeats=repeats,
        min_batches=min_batches,
    )
    w = Workload.of_data(data, config.batch_size)
    return batch.for_epoch(w.train_batches, w.eval_batches)


def workload_energy(
    plan: Plan,
    candidate: Candidate,
    *,
    scorer: Scorer,
    config: RetrainConfig,
    meter: Meter,
    workload: Workload,
    store: ResultStore | None = None,
    data: RetrainData | None = None,
    seconds: float = 0.5,
    budget_epochs: float | None = None,
    cancel: Callable[[], bool] | None = None,
    progress: ProbeProgress | None = None,
) -> BatchEnergy:
    """The batch energy of ``workload``, from ``store`` when this machine already measured it
    with the same model, procedure, device and meter; else probed on ``candidate``'s data (one
    of the candidates with this workload) and stored. ``budget_epochs``: predicted epochs of the
    cheapest retraining with this workload (the probe runs at most that many epochs' training
    batches, and at least one epoch's worth is allowed)."""
    from ..scoring.scorer import resolve_device
    from .candidates import candidate_data

    key = canonical_key(
        "energy_workload",
        {
            "model": scorer.checkpoint_sha256(),
            "workload": workload.parts(),
            "procedure": config.procedure(),
            "device": str(resolve_device(config.device)),
            "meter": meter.name,
            "host": platform.node(),
        },
    )
    described = f"{workload.describe()} [{key[:10]}]"
    hit = store.get(key) if store is not None else None
    if hit is not None:
        return BatchEnergy(**{**hit[0], "reused": True, "workload": described})
    if data is None:
        data = candidate_data(
            plan, candidate, workspace=scorer.workspace, seed=scorer.run.seed, config=config
        )
    max_batches = None
    if budget_epochs is not None:
        rep = Workload.of_data(data, config.batch_size)
        max_batches = max(1, math.floor(max(1.0, budget_epochs) * rep.train_batches))
    batch = probe_batch_energy(
        scorer.checkpoint().model,
        data,
        config=config,
        meter=meter,
        seconds=seconds,
        max_batches=max_batches,
        cancel=cancel,
        progress=progress,
    )
    stored = {**batch.to_dict(), "reused": False, "workload": described}
    if store is not None:
        store.put(key, stored)
    return BatchEnergy(**stored)
