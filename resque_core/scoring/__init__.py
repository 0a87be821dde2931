"""scoring: see docs/ARCHITECTURE.md."""

from .accuracy import HELD_OUT_FRACTION, accuracy, held_out, source_accuracy
from .estimators import (
    ClassSums,
    DistValue,
    TaskValue,
    class_angles,
    resque_dist,
    resque_task,
    resque_task_variants,
)
from .features import Batch, Embeddings, class_sums, embeddings, pool
from .scorer import ModelConfig, RunConfig, Score, Scorer, default_image_size, resolve_device
from .transfer import TRANSFER_SCORES, TransferScore, transfer_scores
from .workspace import Workspace

__all__ = [
    "Batch",
    "ClassSums",
    "DistValue",
    "Embeddings",
    "HELD_OUT_FRACTION",
    "ModelConfig",
    "RunConfig",
    "Score",
    "Scorer",
    "TRANSFER_SCORES",
    "TaskValue",
    "TransferScore",
    "Workspace",
    "accuracy",
    "class_angles",
    "class_sums",
    "default_image_size",
    "embeddings",
    "held_out",
    "pool",
    "resolve_device",
    "resque_dist",
    "resque_task",
    "resque_task_variants",
    "source_accuracy",
    "transfer_scores",
]
