"""retrain: see docs/ARCHITECTURE.md."""

from .loop import (
    AUGMENTATIONS,
    OPTIMIZERS,
    EnergyProbe,
    EpochRecord,
    RetrainConfig,
    RetrainData,
    RetrainResult,
    augment,
    candidate_data,
    prepare_model,
    probe_epoch_energy,
    retrain,
)

__all__ = [
    "AUGMENTATIONS",
    "EnergyProbe",
    "EpochRecord",
    "OPTIMIZERS",
    "RetrainConfig",
    "RetrainData",
    "RetrainResult",
    "augment",
    "candidate_data",
    "prepare_model",
    "probe_epoch_energy",
    "retrain",
]
