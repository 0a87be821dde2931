"""The run document: what a stored ranking or validation is, checked once where it comes in.

A run document is the JSON object that :func:`~resque_core.ranking.rank_plan` and
:func:`~resque_core.validation.validate_plan` keep in the :class:`~resque_core.store.runs.RunStore`
(``<cache>/runs/<run id>.json``) and that ``report --format json`` exports. Its schema is
declared here once, as the TypedDicts below: a key without ``NotRequired`` is one that readers
index directly; a ``NotRequired`` key is one they read with ``.get`` (older documents may lack
it). Keys not declared are kept unchecked (newer engines may add some), and so are the free-form
parts (``environment``, ``plan.run``, ``retrain_config`` apart from ``target_accuracy``).

:func:`check_run` is the one boundary validator: import, the History list, the run view and
every export format pass each document through it, so no malformed document reaches a renderer.
The small readers (:func:`scored`, :func:`failed`, :func:`measured`, :func:`energy_bases`, ...)
are the only places that filter results by their fields.
"""

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal, NotRequired, TypedDict

from .._typed_json import Checker, Misfit, Rule, child, shown, too_deep
from ..errors import ConfigError
from ..kinds import EstimatorKind as Kind

__all__ = [
    "MAX_DEPTH",
    "RUN_TYPES",
    "CalibrationDoc",
    "CandidateDoc",
    "CorrelationDoc",
    "CostDoc",
    "IntensityDoc",
    "PlanDoc",
    "PredictionDoc",
    "RankingDoc",
    "RetrainedDoc",
    "RunDoc",
    "ScoreDoc",
    "ValidationDoc",
    "check_run",
    "compat_mode",
    "energy_bases",
    "failed",
    "measured",
    "prediction_bases",
    "results",
    "scored",
    "unmeasured",
    "with_prediction",
]

MAX_DEPTH = 20
"""Deepest nesting of objects and lists a run document may have (the engine writes 6)."""


Interval = Annotated[list[float], Rule("a list of two numbers [low, high]", lambda v: len(v) == 2)]
Level = Annotated[float, Rule("a number between 0 and 1", lambda v: 0 < v < 1)]


# ----------------------------------------------------------------------------- the schema
class IntensityDoc(TypedDict):
    """Carbon intensity (:meth:`resque_core.measure.carbon.CarbonIntensity.to_dict`): g CO2e per
    kWh,
    where it comes from, its 1-sigma relative uncertainty and the facility's PUE."""

    g_per_kwh: float
    source: str
    location: str
    year: int | None
    relative_uncertainty: float
    pue: float


class CalibrationDoc(TypedDict):
    """RESQUE -> epochs line of one kind (:meth:`resque_core.cost.predict.Calibration.to_dict`)."""

    intercept: float
    slope: float
    residual_sd: float
    basis: str  # "calibrated" (local retrains) or "prior"
    n: int
    source: str
    kind: NotRequired[str]
    dof: NotRequired[float]
    loo_mae: NotRequired[float | None]
    loo_rmse: NotRequired[float | None]
    pearson_r: NotRequired[float | None]


class PredictionDoc(TypedDict):
    """Predicted cost of one candidate (:meth:`resque_core.cost.predict.Prediction.to_dict`):
    epochs,
    kWh and kg CO2e, each with its (low, high) interval at ``level``."""

    resque: float
    epochs: float
    epochs_interval: Interval
    energy_kwh: float
    energy_kwh_interval: Interval
    co2_kg: float
    co2_kg_interval: Interval
    level: Level
    basis: str  # "calibrated" or "prior"
    kwh_per_epoch: float
    energy_method: str
    energy_basis: str  # "measured", "partial", "estimate" or "replay"
    calibration: NotRequired[CalibrationDoc]
    intensity: NotRequired[dict[str, Any]]
    probe: NotRequired[dict[str, Any]]


class ScoreDoc(TypedDict):
    """One RESQUE result (:meth:`resque_core.scoring.scorer.Score.to_dict`); ``per_class`` keyed by
    class name; seconds of compute."""

    value: float
    per_class: dict[str, float]
    layer: str
    compute_seconds: float
    cached: bool
    kind: NotRequired[str]
    n_source: NotRequired[int]
    n_target: NotRequired[int]
    seconds: NotRequired[float]
    device: NotRequired[str]
    precision: NotRequired[str]
    key: NotRequired[str]
    variants: NotRequired[dict[str, float]]
    transfer: NotRequired[dict[str, float]]  # transferability scores, name -> value


class CandidateDoc(TypedDict):
    """One candidate of a ranking (:meth:`resque_core.ranking.CandidateResult.to_dict`).
    ``status`` "ok" (scored: ``rank``, ``resque`` and ``score`` set) or "failed" (``error``
    says why)."""

    id: str
    kind: Kind
    label: str
    status: str
    rank: int | None
    resque: float | None
    candidate_kind: NotRequired[str]
    shift: NotRequired[str | None]
    severity: NotRequired[int | None]
    data: NotRequired[str]
    score: NotRequired[ScoreDoc | None]
    error: NotRequired[str | None]
    predicted: NotRequired[PredictionDoc | None]
    over_budget: NotRequired[list[str]]
    prediction_error: NotRequired[str | None]
    transfer: NotRequired[dict[str, float]]  # transferability scores (higher = better)


class CostDoc(TypedDict):
    """The cost model a ranking used: intervals at ``level``, budgets (kWh, kg CO2e) and where
    each kind's epochs came from (``calibration_basis``: kind -> "prior" | "calibrated")."""

    intensity: IntensityDoc
    level: Level
    max_kwh: NotRequired[float | None]
    max_co2_kg: NotRequired[float | None]
    calibration_basis: NotRequired[dict[str, str]]


class ModelDoc(TypedDict):
    """The plan's model, as far as the report shows it (other keys are kept unchecked)."""

    checkpoint: NotRequired[str]
    arch: NotRequired[str | None]
    num_classes: NotRequired[int | None]
    in_channels: NotRequired[int | None]
    image_size: NotRequired[list[int] | None]
    mean: NotRequired[list[float]]
    std: NotRequired[list[float]]


class PlanDoc(TypedDict):
    """The plan that was run (:meth:`resque_core.plans.Plan.to_dict`), as the report reads it."""

    name: NotRequired[str | None]
    model: NotRequired[ModelDoc]
    source: NotRequired[str | None]
    layer: NotRequired[str | None]
    run: NotRequired[dict[str, Any]]
    candidates: NotRequired[list[dict[str, Any]]]


class RankingDoc(TypedDict):
    """A stored ranking (:meth:`resque_core.ranking.Ranking.to_dict`). ``candidates`` in rank
    order, failed ones last; ``seconds`` of wall time; ``cost`` None without a cost model."""

    type: Literal["ranking"]
    plan: PlanDoc
    candidates: list[CandidateDoc]
    run_id: NotRequired[str | None]
    created: NotRequired[str]
    seconds: NotRequired[float]
    ordered_by: NotRequired[str]
    rank_basis: NotRequired[str]
    cancelled: NotRequired[bool]
    cost: NotRequired[CostDoc | None]
    environment: NotRequired[dict[str, Any]]


class EpochDoc(TypedDict):
    """One finished retraining epoch; accuracies are fractions."""

    held_accuracy: float


class RetrainDoc(TypedDict):
    """The full retraining record (:meth:`resque_core.retrain.config.RetrainResult.to_dict`)."""

    records: list[EpochDoc]


class ProbeDoc(TypedDict):
    """The energy probe behind a prediction
    (:meth:`resque_core.retrain.config.EnergyProbe.to_dict`)."""

    basis: NotRequired[str]


class RetrainedDoc(TypedDict):
    """One retrained candidate of a validation (:meth:`ValidationRun.to_dict` in
    :mod:`resque_core.validation`): the measured ``epochs``, kWh and kg CO2e (None when it
    failed before training) beside the prediction made before retraining."""

    candidate_id: str
    kind: Kind
    label: str
    resque: float | None
    status: str  # "completed", "cancelled" or "failed"
    epochs: int | None
    energy_kwh: float | None
    co2_kg: float | None
    energy_method: str | None
    stop_reason: str | None
    predicted: PredictionDoc | None
    error: str | None
    candidate_kind: NotRequired[str]
    energy_basis: NotRequired[str | None]
    grad_norm: NotRequired[float | None]
    param_change: NotRequired[float | None]
    reached_target: NotRequired[bool]
    censored: NotRequired[bool]
    seconds: NotRequired[float | None]
    probe: NotRequired[ProbeDoc | None]
    retrain: NotRequired[RetrainDoc]
    transfer: NotRequired[dict[str, float] | None]  # the candidate's transferability scores


class CorrelationDoc(TypedDict):
    """RESQUE against one measure over ``n`` finished runs (None: too few to say)."""

    n: int
    pearson: float | None
    spearman: float | None
    kendall: float | None
    note: NotRequired[str]


class RetrainConfigDoc(TypedDict):
    """The retraining settings (:meth:`resque_core.retrain.config.RetrainConfig.to_dict`)."""

    target_accuracy: float


class ValidationDoc(TypedDict):
    """A stored validation (:meth:`resque_core.validation.Validation.to_dict`)."""

    type: Literal["validation"]
    plan: PlanDoc
    runs: list[RetrainedDoc]
    cancelled: bool
    calibration_key: str
    retrain_config: RetrainConfigDoc
    intensity: IntensityDoc
    level: Level
    correlation: dict[Kind, dict[str, CorrelationDoc]]
    calibration: dict[Kind, CalibrationDoc]
    run_id: NotRequired[str | None]
    created: NotRequired[str]
    seconds: NotRequired[float]
    checkpoint_sha256: NotRequired[str]
    # kind -> score ("resque" and each transferability score) -> measure -> correlation
    score_correlation: NotRequired[dict[Kind, dict[str, dict[str, CorrelationDoc]]]]
    procedure: NotRequired[dict[str, Any]]
    environment: NotRequired[dict[str, Any]]


RunDoc = RankingDoc | ValidationDoc
RUN_TYPES: dict[str, type] = {"ranking": RankingDoc, "validation": ValidationDoc}
"""Run type -> its schema."""

# What an object of each schema is, in messages.
_NAMES: dict[type, str] = {
    IntensityDoc: "a carbon intensity",
    CalibrationDoc: "a calibration",
    PredictionDoc: "a cost prediction",
    ScoreDoc: "a RESQUE score",
    CandidateDoc: "a candidate result",
    CostDoc: "the cost model's settings",
    ModelDoc: "the plan's model",
    PlanDoc: "the plan",
    EpochDoc: "an epoch record",
    RetrainDoc: "a retraining record",
    ProbeDoc: "an energy probe",
    RetrainedDoc: "a retrained candidate",
    CorrelationDoc: "a correlation",
    RetrainConfigDoc: "the retraining settings",
}


# ----------------------------------------------------------------------------- checking
def _scored_has_a_value(c: dict[str, Any], path: str) -> None:
    # A scored candidate is ranked, drawn and summed: it needs its rank, value and score.
    if c["status"] != "ok":
        return
    for key, what in (("rank", "an integer"), ("resque", "a number")):
        if c[key] is None:
            raise Misfit(child(path, key), f"{what} for a candidate with status 'ok'", None)
    if c.get("score") is None:
        raise Misfit(
            child(path, "score"),
            f"{_CHECKER.describe(ScoreDoc)} for a candidate with status 'ok'",
            None,
            missing="score" not in c,
        )


def _measured_has_costs(r: dict[str, Any], path: str) -> None:
    # A run with a number of epochs was measured: its energy and CO2e are summed.
    if r["epochs"] is None:
        return
    for key in ("energy_kwh", "co2_kg"):
        if r[key] is None:
            raise Misfit(child(path, key), "a number for a run with a number of epochs", None)


_CHECKER = Checker(_NAMES, {CandidateDoc: _scored_has_a_value, RetrainedDoc: _measured_has_costs})


def check_run(doc: Any) -> RunDoc:
    """``doc`` checked against the run-document schema, as a plain copy (objects as dicts,
    lists as lists; every key kept, none added).

    Raises :class:`~resque_core.errors.ConfigError` naming the first field that does not fit
    and what it may be, e.g. ``ranking run document field 'candidates[0].label' must be a
    string, got null``. Accepts every document the engine has written (rankings with or without
    a cost model, validations).
    """
    if not isinstance(doc, Mapping):
        raise ConfigError(f"a run document must be a JSON object, got {type(doc).__name__}")
    deep = too_deep(doc, MAX_DEPTH)
    if deep is not None:
        where = ".".join(deep.split(".")[:3])
        raise ConfigError(
            f"run document is nested more than {MAX_DEPTH} levels deep (at {where!r}); "
            "a RESQUE run is not: export it again"
        )
    kind = doc.get("type")
    if kind is None:
        raise ConfigError(
            "not a RESQUE run: it has no 'type' field; export the run again from the History "
            "page or with `report --format json`"
        )
    if not isinstance(kind, str) or kind not in RUN_TYPES:
        named = repr(kind) if isinstance(kind, str) else shown(kind)
        raise ConfigError(f"not a RESQUE run: type {named}; expected one of {', '.join(RUN_TYPES)}")
    try:
        return _CHECKER.check(doc, RUN_TYPES[kind])
    except Misfit as bad:
        if bad.missing:
            raise ConfigError(
                f"{kind} run document field {bad.path!r} is missing; it must be {bad.allowed}"
            ) from None
        raise ConfigError(
            f"{kind} run document field {bad.path!r} must be {bad.allowed}, got {bad.got}"
        ) from None


# ----------------------------------------------------------------------------- readers
def compat_mode(doc: RunDoc) -> str:
    """The pipeline a run used (``plan.run.compat``): ``"reference"`` (the reference code's
    corruptions and pooling) or ``"project"``, the default, which documents from before the
    field existed also used."""
    run = (doc.get("plan") or {}).get("run") or {}
    mode = run.get("compat", "project")
    return mode if isinstance(mode, str) and mode else "project"


def results(doc: RunDoc) -> list[CandidateDoc] | list[RetrainedDoc]:
    """A ranking's candidates or a validation's retrained candidates."""
    return doc["candidates"] if doc["type"] == "ranking" else doc["runs"]


def _candidates(run: RankingDoc | Sequence[CandidateDoc]) -> Sequence[CandidateDoc]:
    return run["candidates"] if isinstance(run, Mapping) else run


def scored(run: RankingDoc | Sequence[CandidateDoc]) -> list[CandidateDoc]:
    """The candidates (of a ranking document, or a list of them) that were scored, in the
    order given (a stored ranking's: rank order)."""
    return [c for c in _candidates(run) if c["status"] == "ok"]


def failed(run: RankingDoc | Sequence[CandidateDoc]) -> list[CandidateDoc]:
    """The candidates that could not be scored (their ``error`` says why)."""
    return [c for c in _candidates(run) if c["status"] != "ok"]


def _runs(run: ValidationDoc | Sequence[RetrainedDoc]) -> Sequence[RetrainedDoc]:
    return run["runs"] if isinstance(run, Mapping) else run


def measured(run: ValidationDoc | Sequence[RetrainedDoc]) -> list[RetrainedDoc]:
    """The retrained candidates (of a validation document, or a list of them) with measured
    epochs, kWh and kg CO2e."""
    return [r for r in _runs(run) if r["epochs"] is not None]


def unmeasured(run: ValidationDoc | Sequence[RetrainedDoc]) -> list[RetrainedDoc]:
    """The retrained candidates that failed before any measurement (``error`` says why)."""
    return [r for r in _runs(run) if r["epochs"] is None]


def with_prediction(items: Sequence[CandidateDoc] | Sequence[RetrainedDoc]) -> list:
    """The candidates or runs that carry a cost prediction."""
    return [c for c in items if c.get("predicted")]


def prediction_bases(doc: RunDoc) -> set[str]:
    """Where the document's predicted epochs come from: a subset of {"prior", "calibrated"},
    from each prediction's ``basis`` and the ranking's ``cost.calibration_basis``."""
    bases = {p["predicted"]["basis"] for p in with_prediction(results(doc))}
    if doc["type"] == "ranking":
        bases |= set(((doc.get("cost") or {}).get("calibration_basis") or {}).values())
    return bases


def energy_bases(doc: RunDoc) -> set[str]:
    """How the document's energy figures were obtained: the ``energy_basis`` of predictions and
    measured retrainings and the ``basis`` of energy probes ("measured", "partial", "estimate",
    "replay"; empty strings left out)."""
    bases = {p["predicted"]["energy_basis"] for p in with_prediction(results(doc))}
    if doc["type"] == "validation":
        for r in doc["runs"]:
            bases.add(r.get("energy_basis") or "")
            bases.add((r.get("probe") or {}).get("basis") or "")
    return bases - {""}
