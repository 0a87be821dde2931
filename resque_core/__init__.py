"""resque_core: RESQUE (REpresentation Shift QUantifying Estimator) for model-reuse decisions.

The engine behind the dashboard and the CLI; it never imports streamlit. This package root is
its front door: the app, notebooks and scripts import the workflow from here, and anything more
specific from a room's ``__init__`` (``resque_core.data``, ``resque_core.scoring``, ...).
Typical use::

    from resque_core import DEMO_PLAN, ResultStore, load_plan, rank_plan
    ranking = rank_plan(load_plan(DEMO_PLAN), store=ResultStore())
    [(r.candidate.id, r.score.value) for r in ranking.results if r.ok]

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

# Everything else pulls in torch, models and data: imported on first use, so that
# `import resque_core` (and the CLI's --help) stays light. Rooms are named by their package, so a
# module moving inside a room changes nothing here.
_EXPORTS = {
    "plans": (
        "DEMO_PLAN",
        "PLAN_VERSION",
        "Candidate",
        "Plan",
        "check_model_inputs",
        "load_plan",
        "plan_from_dict",
        "save_plan",
    ),
    "ranking": (
        "COST_ORDERINGS",
        "ORDERINGS",
        "CandidateResult",
        "Ranking",
        "RankingJob",
        "rank_plan",
    ),
    "jobs": ("Job",),
    "validation": (
        "MEASURES",
        "Validation",
        "ValidationJob",
        "ValidationRun",
        "correlations",
        "recalibrate",
        "suggest_candidates",
        "validate_plan",
    ),
    "calibrating": ("Calibrated", "CalibrationJob", "calibrate", "calibrate_plan"),
    "scoring": (
        "ClassSums",
        "ModelConfig",
        "RunConfig",
        "Score",
        "Scorer",
        "resque_dist",
        "resque_task",
        "resque_task_variants",
        "source_accuracy",
    ),
    "store": ("ResultStore", "RunStore"),
    "report": ("export_run", "import_run", "load_run"),
}
_LAZY = {name: module for module, names in _EXPORTS.items() for name in names}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value  # later look-ups skip this hook
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "COST_ORDERINGS",
    "Calibrated",
    "CalibrationJob",
    "Cancelled",
    "Candidate",
    "CandidateResult",
    "CheckpointError",
    "ClassSums",
    "ConfigError",
    "DEMO_PLAN",
    "DataError",
    "LayerError",
    "MEASURES",
    "ModelConfig",
    "ORDERINGS",
    "PLAN_VERSION",
    "Plan",
    "Ranking",
    "Job",
    "RankingJob",
    "ResqueError",
    "ResultStore",
    "RunConfig",
    "RunStore",
    "Score",
    "Scorer",
    "ShiftError",
    "Validation",
    "ValidationJob",
    "ValidationRun",
    "__version__",
    "calibrate",
    "calibrate_plan",
    "check_model_inputs",
    "correlations",
    "export_run",
    "import_run",
    "load_plan",
    "load_run",
    "plan_from_dict",
    "rank_plan",
    "recalibrate",
    "resque_dist",
    "resque_task",
    "resque_task_variants",
    "save_plan",
    "source_accuracy",
    "suggest_candidates",
    "validate_plan",
]
