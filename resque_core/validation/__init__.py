"""Validate a plan by retraining: predict, retrain for real, compare, correlate, recalibrate.

:func:`validate_plan` scores the plan's candidates (cached), picks the ones to retrain (given
ids, or :func:`suggest_candidates`: a spread over each kind's RESQUE range), and for each one
measures an energy probe, records the cost model's prediction *before* retraining, then
fine-tunes a copy of the checkpoint (:func:`~resque_core.retrain.loop.retrain`) with one energy
meter
session for all runs. Afterwards it computes the correlations of RESQUE with every measure
(:func:`correlations`), refits the calibrations from every stored validation run of the same
checkpoint and procedure (:func:`recalibrate`), and stores the whole run as a JSON document with
``"type": "validation"`` in the :class:`~resque_core.store.runs.RunStore`.

Which runs count: correlations use runs that finished (``status`` completed); calibrations use
those that also stopped on their own (target or cutoff), not ones cut short by ``max_epochs`` or
the time budget, whose epoch counts are only lower bounds (``censored``).
"""

from .run import Validation, ValidationJob, ValidationRun, validate_plan
from .stats import MEASURES, correlations, recalibrate, score_correlations, suggest_candidates

__all__ = [
    "MEASURES",
    "Validation",
    "ValidationJob",
    "ValidationRun",
    "correlations",
    "recalibrate",
    "score_correlations",
    "suggest_candidates",
    "validate_plan",
]
