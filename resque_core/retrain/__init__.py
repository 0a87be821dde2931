"""retrain: fine-tune a copy of a checkpoint on a candidate and measure what it costs.

config (settings and records), augment (seeded batch augmentation), trainer (the model copy, its
optimizer, one step, evaluation), loop (epochs, stopping rules, :func:`retrain`), probe (energy
of one epoch from a few batches, once per workload), candidates (a candidate's train /
held-out data). See docs/ARCHITECTURE.md.
"""

from .augment import augment
from .candidates import candidate_data
from .config import (
    AUGMENTATIONS,
    OPTIMIZERS,
    EnergyProbe,
    EpochRecord,
    RetrainConfig,
    RetrainData,
    RetrainResult,
)
from .loop import retrain
from .probe import (
    BatchEnergy,
    Workload,
    meter_period,
    probe_batch_energy,
    probe_epoch_energy,
    workload_energy,
    workload_of,
)
from .trainer import prepare_model

__all__ = [
    "AUGMENTATIONS",
    "BatchEnergy",
    "EnergyProbe",
    "EpochRecord",
    "OPTIMIZERS",
    "Workload",
    "RetrainConfig",
    "RetrainData",
    "RetrainResult",
    "augment",
    "candidate_data",
    "meter_period",
    "prepare_model",
    "probe_batch_energy",
    "probe_epoch_energy",
    "retrain",
    "workload_energy",
    "workload_of",
]
