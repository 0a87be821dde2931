"""cost: see docs/ARCHITECTURE.md.

predict (the calibration record, priors, storage, predictions with intervals, energy probes of
candidates), signals (forward-pass inputs per candidate), forms (model forms and their choice by
leave-one-out error), conformal (intervals from leave-one-out residuals), chooser (which
candidates a calibration retrains), calibration (fitting a chosen form, applying calibrations to
a ranking, the offer to calibrate).
"""

from .calibration import (
    DEFAULT_K,
    MIN_RUNS,
    apply_calibrations,
    calibration_offer,
    calibration_rows,
    describe,
    fit_model,
    guess_epochs,
)
from .chooser import Option, choose_for_calibration
from .conformal import conformal_band
from .forms import FORMS, FormChoice, select_form
from .predict import (
    CALIBRATION_FILE,
    LEVEL,
    MIN_POINTS,
    PRIORS,
    Calibration,
    CandidateCost,
    CostOptions,
    CostSettings,
    Prediction,
    calibration_key,
    fit_calibration,
    load_calibrations,
    over_budget,
    predict_candidates,
    predict_cost,
    probe_candidate,
    save_calibrations,
)
from .signals import Signals, candidate_signals, family_of

__all__ = [
    "CALIBRATION_FILE",
    "Calibration",
    "CandidateCost",
    "CostOptions",
    "CostSettings",
    "DEFAULT_K",
    "FORMS",
    "FormChoice",
    "LEVEL",
    "MIN_POINTS",
    "MIN_RUNS",
    "Option",
    "PRIORS",
    "Prediction",
    "Signals",
    "apply_calibrations",
    "calibration_key",
    "calibration_offer",
    "calibration_rows",
    "candidate_signals",
    "choose_for_calibration",
    "conformal_band",
    "describe",
    "family_of",
    "fit_calibration",
    "fit_model",
    "guess_epochs",
    "load_calibrations",
    "over_budget",
    "predict_candidates",
    "predict_cost",
    "probe_candidate",
    "save_calibrations",
    "select_form",
]
