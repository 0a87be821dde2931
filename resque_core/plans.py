"""Plan files: one JSON document that fully describes a comparison.

Schema (version 1)::

    {
      "version": 1,
      "name": "digits demo",
      "model": {"checkpoint": "model.pt", "arch": "small_cnn", "num_classes": 10,
                "in_channels": 1, "image_size": [8, 8], "mean": [0.5], "std": [0.5]},
      "source": "builtin:digits",            # the data the model was trained on
      "layer": null,                         # null = each estimator's default layer
      "run": {"samples_per_class": 100, "batch_size": 128, "device": "auto", "seed": 0,
              "max_task_samples": 5000, "flatten": false, "amp": false},
              # optional: "compat": "reference" reproduces the reference code (docs/METHOD.md);
              # "max_task_samples": null uses every task sample
      "candidates": [
        {"id": "gauss-3", "kind": "shift", "shift": "gaussian_noise:3", "label": "...", "note": ""},
        {"id": "gauss-raw", "kind": "shift", "shift": "gaussian_noise@0.05"},   # a raw sigma
        {"id": "cam-b", "kind": "shifted_data", "data": "new_camera/", ...},
        {"id": "letters", "kind": "task", "data": "builtin:letters", ...}
      ]
    }

Relative paths (checkpoint, data) are resolved against the plan file's folder when the plan is
run; the plan keeps them as written, so load -> save -> load is the identity.

A plan never grants trust to its checkpoint: whether a pickled model may run its code is the
choice of the person running the plan (``--trust-checkpoint``, the app's "Trust this file"
switch), applied with :meth:`Plan.with_trust`. Earlier plans carry ``"trusted": false`` in
``model``, which is read and dropped; ``"trusted": true`` is dropped with a warning in
:attr:`Plan.warnings`. :meth:`Plan.to_dict` never writes the field.

:func:`plan_from_dict` is the one validator for plan documents: every field's type, integer
ranges (through :class:`~resque_core.scoring.scorer.RunConfig` and
:class:`~resque_core.scoring.scorer.ModelConfig`), text lengths (:data:`MAX_LABEL_CHARS`,
:data:`MAX_NOTE_CHARS`, :data:`MAX_PATH_CHARS`) and :data:`MAX_CANDIDATES`; no field nests, so a
nested value is a type error. :func:`load_plan` also refuses files over :data:`MAX_PLAN_BYTES`,
non-regular files, and JSON nested too deeply for the parser.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

from . import limits
from ._util import regular_file
from .data.shifts import COMPAT_MODES, parse_shift
from .errors import ConfigError
from .scoring.scorer import ModelConfig, RunConfig, Scorer

__all__ = [
    "DEMO_PLAN",
    "MAX_CANDIDATES",
    "MAX_LABEL_CHARS",
    "MAX_NOTE_CHARS",
    "MAX_PATH_CHARS",
    "MAX_PLAN_BYTES",
    "PLAN_VERSION",
    "TRUST_IGNORED",
    "Candidate",
    "Plan",
    "check_model_inputs",
    "load_plan",
    "plan_from_dict",
    "save_plan",
]

PLAN_VERSION = 1
# The embedded demo (a small CNN on scikit-learn's digits); see demo/README.md beside this file.
DEMO_DIR = Path(__file__).resolve().parent / "demo"
DEMO_PLAN = DEMO_DIR / "plan.json"
CandidateKind = Literal["shift", "shifted_data", "task"]
KINDS: tuple[str, ...] = ("shift", "shifted_data", "task")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

MAX_LABEL_CHARS = 200
"""Longest name, label, architecture, layer, device or shift text in a plan."""
MAX_NOTE_CHARS = 2_000
"""Longest candidate note."""
MAX_PATH_CHARS = 4_096
"""Longest checkpoint path or data spec (Linux's PATH_MAX)."""
MAX_CANDIDATES = 1_000
"""Most candidates in one plan."""
MAX_PLAN_BYTES = 16 * 2**20
"""Largest plan file :func:`load_plan` reads (a plan of MAX_CANDIDATES long candidates is ~7 MB)."""
_MAX_NESTING = 3  # plan -> candidates -> candidate, plan -> model -> image_size

TRUST_IGNORED = (
    "plan field 'model.trusted' is ignored: a plan cannot grant trust to its checkpoint; give it "
    "at run time with --trust-checkpoint (CLI) or the 'Trust this file' switch on the Checkpoint "
    "page (app)"
)
"""The warning for a plan that says ``"trusted": true`` (see :attr:`Plan.warnings`)."""


@dataclass(frozen=True)
class Candidate:
    """One reuse option: a synthetic ``shift`` of the source data, real ``shifted_data`` in the
    source's label space, or a new ``task`` (labelled data, new label space)."""

    id: str
    kind: CandidateKind
    shift: str | None = None
    data: str | None = None
    label: str = ""
    note: str = ""

    @property
    def estimator(self) -> Literal["dist", "task"]:
        return "task" if self.kind == "task" else "dist"

    @property
    def title(self) -> str:
        return self.label or self.shift or self.data or self.id


@dataclass(frozen=True)
class Plan:
    """A validated plan. ``warnings``: what was read but ignored (one sentence each), for the
    caller to show; not part of the plan (never compared, never written)."""

    name: str
    model: ModelConfig
    source: str
    candidates: tuple[Candidate, ...]
    run: RunConfig = field(default_factory=RunConfig)
    layer: str | None = None
    base_dir: str = field(default=".", compare=False)
    warnings: tuple[str, ...] = field(default=(), compare=False)

    def resolve(self, spec: str) -> str:
        """A data spec or file path with relative paths taken against the plan's folder."""
        if spec.startswith(("builtin:", "torchvision:")):
            if spec.startswith("torchvision:"):
                parts = spec.split(":")
                if len(parts) >= 3 and not os.path.isabs(parts[2]):
                    parts[2] = str(Path(self.base_dir) / parts[2])
                return ":".join(parts)
            return spec
        return spec if os.path.isabs(spec) else str(Path(self.base_dir) / spec)

    def resolved_model(self) -> ModelConfig:
        return replace(self.model, checkpoint=self.resolve(self.model.checkpoint))

    def scorer(self, store: Any = None, **options: Any) -> Scorer:
        """The scorer of this plan's model, run settings and source data (paths resolved);
        ``store`` and ``options`` (``progress``, ``cancel``, ``checkpoint``...) go to
        :class:`~resque_core.scoring.scorer.Scorer`."""
        return Scorer(
            self.resolved_model(),
            self.run,
            store=store,
            source_data=self.resolve(self.source),
            **options,
        )

    def with_trust(self, trusted: bool) -> Plan:
        """This plan with the checkpoint trust given by the person running it (a CLI flag, the
        app's switch): True lets a pickled whole model load, which runs code from the file."""
        return replace(self, model=replace(self.model, trusted=bool(trusted)))

    def candidate(self, cid: str) -> Candidate:
        for c in self.candidates:
            if c.id == cid:
                return c
        raise ConfigError(
            f"no candidate {cid!r} in the plan; ids: {', '.join(c.id for c in self.candidates)}"
        )

    def to_dict(self) -> dict[str, Any]:
        """The plan document (schema version 1), without trust: a saved plan, the plan of a
        stored run and the app's session copy never carry it."""
        model = asdict(self.model)
        del model["trusted"]
        model["image_size"] = list(self.model.image_size) if self.model.image_size else None
        model["mean"], model["std"] = list(self.model.mean), list(self.model.std)
        return {
            "version": PLAN_VERSION,
            "name": self.name,
            "model": model,
            "source": self.source,
            "layer": self.layer,
            "run": _run_doc(self.run),
            "candidates": [
                {k: v for k, v in asdict(c).items() if v not in (None, "")} for c in self.candidates
            ],
        }


def _run_doc(run: RunConfig) -> dict[str, Any]:
    """The plan's ``run`` section; ``compat`` only when it is not the default, so a plan in the
    default mode writes the document it always wrote (and keeps its stored-run content key)."""
    doc = asdict(run)
    if doc.get("compat") == "project":
        del doc["compat"]
    return doc


def _clip(text: str) -> str:
    """``text`` cut to 40 characters for a message."""
    return text if len(text) <= 40 else text[:37] + "..."


def _shown(value: Any) -> str:
    """A short JSON rendering of a bad value for a message (never recursive)."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        return f"an integer of {value.bit_length()} bits"
    if isinstance(value, str):
        return json.dumps(_clip(value))
    if value is None or isinstance(value, bool | int | float | str):
        return json.dumps(value)
    return type(value).__name__


def _expect(obj: Any, typ: type | tuple[type, ...], where: str, what: str) -> Any:
    if not isinstance(obj, typ) or (isinstance(obj, bool) and bool not in _as_tuple(typ)):
        raise ConfigError(f"plan field {where!r} must be {what}, got {_shown(obj)}")
    return obj


def _as_tuple(typ: type | tuple[type, ...]) -> tuple[type, ...]:
    return typ if isinstance(typ, tuple) else (typ,)


def _text(obj: Any, where: str, what: str, limit: int) -> str:
    """``obj`` as a string of at most ``limit`` characters, else ConfigError naming ``where``."""
    _expect(obj, str, where, what)
    if len(obj) > limit:
        raise ConfigError(
            f"plan field {where!r} is {len(obj):,} characters long; the limit is {limit:,}"
        )
    return obj


def _unknown_keys(d: dict, allowed: set[str], where: str) -> None:
    extra = sorted(str(k) for k in d if k not in allowed)
    if extra:
        name = f"{where}.{_clip(extra[0])}" if where else _clip(extra[0])
        raise ConfigError(f"unknown plan field {name!r}; allowed: {', '.join(sorted(allowed))}")


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _floats(value: Any, where: str) -> tuple[float, ...]:
    """A number or a non-empty list of numbers, as floats (ModelConfig checks their range)."""
    values = value if isinstance(value, list) else [value]
    if not values or not all(_number(v) for v in values):
        raise ConfigError(
            f"plan field {where!r} must be a number or a list of numbers, got {_shown(value)}"
        )
    # An integer beyond float's range stands for infinity, which ModelConfig refuses by name.
    return tuple(
        float(v) if not isinstance(v, int) or v.bit_length() < 1024 else float("inf")
        for v in values
    )


def _model(d: Any) -> tuple[ModelConfig, tuple[str, ...]]:
    """The model section and the warnings it raised."""
    _expect(d, dict, "model", "an object")
    allowed = {f.name for f in fields(ModelConfig)}
    _unknown_keys(d, allowed, "model")
    if "checkpoint" not in d:
        raise ConfigError("plan field 'model.checkpoint' is required (a checkpoint file path)")
    kw: dict[str, Any] = {
        "checkpoint": _text(d["checkpoint"], "model.checkpoint", "a path", MAX_PATH_CHARS)
    }
    if d.get("arch") is not None:
        kw["arch"] = _text(d["arch"], "model.arch", "an architecture name", MAX_LABEL_CHARS)
    for key in ("num_classes", "in_channels"):
        if d.get(key) is not None:
            kw[key] = _expect(d[key], int, f"model.{key}", "an integer")
    warnings: tuple[str, ...] = ()
    # Schema v1 wrote "trusted"; trust is the runner's choice, so the field is read and dropped.
    if "trusted" in d and _expect(d["trusted"], bool, "model.trusted", "true or false"):
        warnings = (TRUST_IGNORED,)
    if d.get("image_size") is not None:
        size = d["image_size"]
        if isinstance(size, int) and not isinstance(size, bool):
            size = [size, size]
        if not (
            isinstance(size, list)
            and len(size) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) for v in size)
        ):
            raise ConfigError(
                "plan field 'model.image_size' must be an integer or [height, width], "
                f"got {_shown(d['image_size'])}"
            )
        kw["image_size"] = (size[0], size[1])
    for key in ("mean", "std"):
        if key in d:
            kw[key] = _floats(d[key], f"model.{key}")
    return ModelConfig(**kw), warnings


_PLAN_WORDS = {k: f"plan field 'model.{k}'" for k in ("image_size", "mean", "std")}


def check_model_inputs(
    model: ModelConfig, batch_size: int, *, names: Mapping[str, str] | None = None
) -> None:
    """Checks of the model's input settings that need no file: a normalisation ``mean`` and
    ``std`` of one value or one per input channel (when ``in_channels`` is known), and an image
    size whose batch of inputs fits in memory (:func:`~resque_core.limits.check_input_batch`).
    ``names``: how messages name each field (default: the plan's field names; the app passes
    its labels). Shared by plan files, the command line's plans and the app's Checkpoint page."""
    words = {**_PLAN_WORDS, **(names or {})}
    channels = model.in_channels
    if channels:
        for key in ("mean", "std"):
            values = getattr(model, key)
            if len(values) not in (1, channels):
                raise ConfigError(
                    f"{words[key]} has {len(values)} values for a model with {channels} input "
                    f"channel{'s' if channels != 1 else ''}: give one value, or {channels} "
                    "(one per channel)"
                )
    if model.image_size:
        limits.check_input_batch(
            model.image_size, channels or 1, batch_size, name=words["image_size"]
        )


def _run(d: Any) -> RunConfig:
    _expect(d, dict, "run", "an object")
    types = {
        "samples_per_class": (int, type(None)),
        "batch_size": int,
        "device": str,
        "seed": int,
        "amp": bool,
        "max_task_samples": (int, type(None)),
        "flatten": bool,
        "compat": str,
    }
    _unknown_keys(d, set(types), "run")
    kw = {
        k: _expect(
            v,
            types[k],
            f"run.{k}",
            types[k].__name__ if isinstance(types[k], type) else "an integer or null",
        )
        for k, v in d.items()
    }
    if "device" in kw:
        _text(kw["device"], "run.device", "str", MAX_LABEL_CHARS)
    if "compat" in kw and kw["compat"] not in COMPAT_MODES:
        raise ConfigError(
            f"plan field 'run.compat' is {_shown(kw['compat'])}; allowed: {', '.join(COMPAT_MODES)}"
        )
    return RunConfig(**kw)


def _candidate(d: Any, i: int, seen: set[str]) -> Candidate:
    where = f"candidates[{i}]"
    _expect(d, dict, where, "an object")
    _unknown_keys(d, {f.name for f in fields(Candidate)}, where)
    cid = _expect(d.get("id"), str, f"{where}.id", "a string")
    if not _ID.match(cid):
        raise ConfigError(
            f"plan field '{where}.id' is {_clip(cid)!r}: use letters, digits, '.', '_' or '-' "
            "(max 64)"
        )
    if cid in seen:
        raise ConfigError(f"plan field '{where}.id': duplicate candidate id {cid!r}")
    seen.add(cid)
    kind = d.get("kind")
    if not isinstance(kind, str) or kind not in KINDS:
        raise ConfigError(
            f"plan field '{where}.kind' is {_shown(kind)}; allowed: {', '.join(KINDS)}"
        )
    shift = d.get("shift")
    data = d.get("data")
    if kind == "shift":
        parse_shift(_text(shift, f"{where}.shift", "NAME:SEVERITY or NAME@VALUE", MAX_LABEL_CHARS))
        if data is not None:
            raise ConfigError(f"plan field '{where}.data' is not used by a 'shift' candidate")
    else:
        what = "a data spec (path, builtin:NAME, torchvision:...)"
        if not _text(data, f"{where}.data", what, MAX_PATH_CHARS):
            raise ConfigError(f"plan field '{where}.data' is empty; give {what}")
        if shift is not None:
            raise ConfigError(f"plan field '{where}.shift' is only for 'shift' candidates")
    label = _text(d.get("label", ""), f"{where}.label", "a string", MAX_LABEL_CHARS)
    note = _text(d.get("note", ""), f"{where}.note", "a string", MAX_NOTE_CHARS)
    return Candidate(id=cid, kind=kind, shift=shift, data=data, label=label, note=note)


def plan_from_dict(d: Any, *, base_dir: str | os.PathLike = ".") -> Plan:
    """Validate a plan document; ConfigError (or ShiftError for a shift) names the first bad
    field and what it allows. The plan's checkpoint is untrusted (see :meth:`Plan.with_trust`)."""
    _expect(d, dict, "plan", "a JSON object")
    _unknown_keys(d, {"version", "name", "model", "source", "layer", "run", "candidates"}, "")
    version = d.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version != PLAN_VERSION:
        raise ConfigError(
            f"plan field 'version' is {_shown(version)}; this engine reads version {PLAN_VERSION}"
        )
    if "source" not in d:
        raise ConfigError("plan field 'source' is required (the source data spec)")
    cands = _expect(d.get("candidates"), list, "candidates", "a list of candidates")
    if len(cands) > MAX_CANDIDATES:
        raise ConfigError(
            f"plan field 'candidates' has {len(cands):,} candidates; the limit is "
            f"{MAX_CANDIDATES:,}: split the comparison into several plans"
        )
    seen: set[str] = set()
    layer = d.get("layer")
    if layer is not None:
        _text(layer, "layer", "a layer name or null", MAX_LABEL_CHARS)
    model, warnings = _model(d.get("model"))
    run = _run(d.get("run", {}))
    check_model_inputs(model, run.batch_size)
    return Plan(
        name=_text(d.get("name", "untitled"), "name", "a string", MAX_LABEL_CHARS),
        model=model,
        source=_text(d["source"], "source", "a data spec", MAX_PATH_CHARS),
        candidates=tuple(_candidate(c, i, seen) for i, c in enumerate(cands)),
        run=run,
        layer=layer,
        base_dir=str(base_dir),
        warnings=warnings,
    )


def load_plan(path: str | os.PathLike) -> Plan:
    """Read and validate a plan file (JSON, at most :data:`MAX_PLAN_BYTES`); a FIFO or device
    is refused without being read."""
    p = regular_file(path, what="plan", error=ConfigError, max_bytes=MAX_PLAN_BYTES)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read plan {p}: {e}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"plan {p} is not valid JSON: {e.msg} at line {e.lineno}") from None
    except RecursionError:
        raise ConfigError(
            f"plan {p} is nested too deeply to be a plan "
            f"(a plan nests at most {_MAX_NESTING} levels)"
        ) from None
    except ValueError:  # Python refuses to read integers of more digits than this
        raise ConfigError(
            f"plan {p} holds an integer of more than {sys.get_int_max_str_digits():,} digits; "
            "no plan field takes one"
        ) from None
    return plan_from_dict(doc, base_dir=p.resolve().parent)


def save_plan(plan: Plan, path: str | os.PathLike) -> None:
    """Write ``plan`` as indented JSON (relative paths stay as written; no trust)."""
    Path(path).write_text(json.dumps(plan.to_dict(), indent=2) + "\n", encoding="utf-8")
