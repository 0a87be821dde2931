"""resque_core: RESQUE (REpresentation Shift QUantifying Estimator) for model-reuse decisions.

The engine behind the dashboard and the CLI; it never imports streamlit. Typical use::

    from resque_core import ModelConfig, RunConfig, Scorer, ResultStore
    scorer = Scorer(ModelConfig("model.pt", arch="small_cnn"), RunConfig(seed=0),
                    store=ResultStore(), source_data="builtin:digits")
    scorer.score_shift("builtin:digits", "gaussian_noise:3").value
"""

from ._version import __version__
from .errors import (
    Cancelled,
    CheckpointError,
    ConfigError,
    DataError,
    LayerError,
    ResqueError,
    ShiftError,
)
from .scoring.estimators import ClassSums, resque_dist, resque_task, resque_task_variants

# The pipeline pulls in torch models, data and shifts: imported on first use, so that
# `import resque_core.errors` (or the CLI's --help) stays light.
_LAZY = {
    "ModelConfig": "pipeline",
    "RunConfig": "pipeline",
    "Score": "pipeline",
    "Scorer": "pipeline",
    "ResultStore": "store",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Cancelled",
    "CheckpointError",
    "ClassSums",
    "ConfigError",
    "DataError",
    "LayerError",
    "ModelConfig",
    "ResqueError",
    "ResultStore",
    "RunConfig",
    "Score",
    "Scorer",
    "ShiftError",
    "__version__",
    "resque_dist",
    "resque_task",
    "resque_task_variants",
]
