"""Plan files: one JSON document that fully describes a comparison.

Schema (version 1)::

    {
      "version": 1,
      "name": "digits demo",
      "model": {"checkpoint": "model.pt", "arch": "small_cnn", "num_classes": 10,
                "in_channels": 1, "image_size": [8, 8], "mean": [0.5], "std": [0.5],
                "trusted": false},
      "source": "builtin:digits",            # the data the model was trained on
      "layer": null,                         # null = each estimator's default layer
      "run": {"samples_per_class": 100, "batch_size": 128, "device": "auto", "seed": 0,
              "max_task_samples": 5000, "flatten": true, "amp": false},
      "candidates": [
        {"id": "gauss-3", "kind": "shift", "shift": "gaussian_noise:3", "label": "...", "note": ""},
        {"id": "cam-b", "kind": "shifted_data", "data": "new_camera/", ...},
        {"id": "letters", "kind": "task", "data": "builtin:letters", ...}
      ]
    }

Relative paths (checkpoint, data) are resolved against the plan file's folder when the plan is
run; the plan keeps them as written, so load -> save -> load is the identity.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

from .errors import ConfigError
from .pipeline import ModelConfig, RunConfig
from .shifts import parse_shift

__all__ = [
    "PLAN_VERSION",
    "Candidate",
    "Plan",
    "load_plan",
    "plan_from_dict",
    "save_plan",
]

PLAN_VERSION = 1
CandidateKind = Literal["shift", "shifted_data", "task"]
KINDS: tuple[str, ...] = ("shift", "shifted_data", "task")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


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
    name: str
    model: ModelConfig
    source: str
    candidates: tuple[Candidate, ...]
    run: RunConfig = field(default_factory=RunConfig)
    layer: str | None = None
    base_dir: str = field(default=".", compare=False)

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

    def candidate(self, cid: str) -> Candidate:
        for c in self.candidates:
            if c.id == cid:
                return c
        raise ConfigError(
            f"no candidate {cid!r} in the plan; ids: {', '.join(c.id for c in self.candidates)}"
        )

    def to_dict(self) -> dict[str, Any]:
        model = asdict(self.model)
        model["image_size"] = list(self.model.image_size) if self.model.image_size else None
        model["mean"], model["std"] = list(self.model.mean), list(self.model.std)
        return {
            "version": PLAN_VERSION,
            "name": self.name,
            "model": model,
            "source": self.source,
            "layer": self.layer,
            "run": asdict(self.run),
            "candidates": [
                {k: v for k, v in asdict(c).items() if v not in (None, "")} for c in self.candidates
            ],
        }


def _expect(obj: Any, typ: type | tuple[type, ...], where: str, what: str) -> Any:
    if not isinstance(obj, typ) or (isinstance(obj, bool) and bool not in _as_tuple(typ)):
        raise ConfigError(f"plan field {where!r} must be {what}, got {json.dumps(obj)}")
    return obj


def _as_tuple(typ: type | tuple[type, ...]) -> tuple[type, ...]:
    return typ if isinstance(typ, tuple) else (typ,)


def _unknown_keys(d: dict, allowed: set[str], where: str) -> None:
    extra = sorted(set(d) - allowed)
    if extra:
        name = f"{where}.{extra[0]}" if where else extra[0]
        raise ConfigError(f"unknown plan field {name!r}; allowed: {', '.join(sorted(allowed))}")


def _floats(value: Any, where: str) -> tuple[float, ...]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (float(value),)
    _expect(value, list, where, "a number or a list of numbers")
    if not value or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        raise ConfigError(f"plan field {where!r} must be a number or a list of numbers")
    return tuple(float(v) for v in value)


def _model(d: Any) -> ModelConfig:
    _expect(d, dict, "model", "an object")
    allowed = {f.name for f in fields(ModelConfig)}
    _unknown_keys(d, allowed, "model")
    if "checkpoint" not in d:
        raise ConfigError("plan field 'model.checkpoint' is required (a checkpoint file path)")
    kw: dict[str, Any] = {"checkpoint": _expect(d["checkpoint"], str, "model.checkpoint", "a path")}
    if d.get("arch") is not None:
        kw["arch"] = _expect(d["arch"], str, "model.arch", "an architecture name")
    for key in ("num_classes", "in_channels"):
        if d.get(key) is not None:
            kw[key] = _expect(d[key], int, f"model.{key}", "an integer")
    if "trusted" in d:
        kw["trusted"] = _expect(d["trusted"], bool, "model.trusted", "true or false")
    if d.get("image_size") is not None:
        size = d["image_size"]
        if isinstance(size, int) and not isinstance(size, bool):
            size = [size, size]
        if not (
            isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) for v in size)
        ):
            raise ConfigError("plan field 'model.image_size' must be an integer or [height, width]")
        kw["image_size"] = (size[0], size[1])
    for key in ("mean", "std"):
        if key in d:
            kw[key] = _floats(d[key], f"model.{key}")
    return ModelConfig(**kw)


def _run(d: Any) -> RunConfig:
    _expect(d, dict, "run", "an object")
    types = {
        "samples_per_class": (int, type(None)),
        "batch_size": int,
        "device": str,
        "seed": int,
        "amp": bool,
        "max_task_samples": int,
        "flatten": bool,
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
    return RunConfig(**kw)


def _candidate(d: Any, i: int, seen: set[str]) -> Candidate:
    where = f"candidates[{i}]"
    _expect(d, dict, where, "an object")
    _unknown_keys(d, {f.name for f in fields(Candidate)}, where)
    cid = _expect(d.get("id"), str, f"{where}.id", "a string")
    if not _ID.match(cid):
        raise ConfigError(
            f"plan field '{where}.id' is {cid!r}: use letters, digits, '.', '_' or '-' (max 64)"
        )
    if cid in seen:
        raise ConfigError(f"plan field '{where}.id': duplicate candidate id {cid!r}")
    seen.add(cid)
    kind = d.get("kind")
    if kind not in KINDS:
        raise ConfigError(
            f"plan field '{where}.kind' is {json.dumps(kind)}; allowed: {', '.join(KINDS)}"
        )
    shift = d.get("shift")
    data = d.get("data")
    if kind == "shift":
        parse_shift(_expect(shift, str, f"{where}.shift", "NAME:SEVERITY"))
        if data is not None:
            raise ConfigError(f"plan field '{where}.data' is not used by a 'shift' candidate")
    else:
        _expect(data, str, f"{where}.data", "a data spec (path, builtin:NAME, torchvision:...)")
        if shift is not None:
            raise ConfigError(f"plan field '{where}.shift' is only for 'shift' candidates")
    label = _expect(d.get("label", ""), str, f"{where}.label", "a string")
    note = _expect(d.get("note", ""), str, f"{where}.note", "a string")
    return Candidate(id=cid, kind=kind, shift=shift, data=data, label=label, note=note)


def plan_from_dict(d: Any, *, base_dir: str | os.PathLike = ".") -> Plan:
    """Validate a plan document; ConfigError names the first bad field and what it allows."""
    _expect(d, dict, "plan", "a JSON object")
    _unknown_keys(d, {"version", "name", "model", "source", "layer", "run", "candidates"}, "")
    version = d.get("version")
    if version != PLAN_VERSION:
        raise ConfigError(
            f"plan field 'version' is {json.dumps(version)}; "
            f"this engine reads version {PLAN_VERSION}"
        )
    if "source" not in d:
        raise ConfigError("plan field 'source' is required (the source data spec)")
    cands = _expect(d.get("candidates"), list, "candidates", "a list of candidates")
    seen: set[str] = set()
    layer = d.get("layer")
    if layer is not None:
        _expect(layer, str, "layer", "a layer name or null")
    return Plan(
        name=_expect(d.get("name", "untitled"), str, "name", "a string"),
        model=_model(d.get("model")),
        source=_expect(d["source"], str, "source", "a data spec"),
        candidates=tuple(_candidate(c, i, seen) for i, c in enumerate(cands)),
        run=_run(d.get("run", {})),
        layer=layer,
        base_dir=str(base_dir),
    )


def load_plan(path: str | os.PathLike) -> Plan:
    """Read and validate a plan file (JSON)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"plan not found: {p}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read plan {p}: {e}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"plan {p} is not valid JSON: {e.msg} at line {e.lineno}") from None
    return plan_from_dict(doc, base_dir=p.resolve().parent)


def save_plan(plan: Plan, path: str | os.PathLike) -> None:
    """Write ``plan`` as indented JSON (relative paths stay as written)."""
    Path(path).write_text(json.dumps(plan.to_dict(), indent=2) + "\n", encoding="utf-8")
