"""Seeded fuzz of plan documents: every field of the demo plan deleted, nulled, retyped, nested
deeply, made huge or NaN. The validator answers each variant with a Plan or one of the project's
own errors (one line), never another exception; a variant that passes survives a round trip."""

from __future__ import annotations

import copy
import json
import random
from typing import Any

from resque_core.errors import ResqueError
from resque_core.plans import DEMO_PLAN, load_plan, plan_from_dict


def _demo() -> dict[str, Any]:
    """The demo plan with one candidate of each kind (its 29 candidates repeat two shapes)."""
    doc = json.loads(DEMO_PLAN.read_text())
    shift = next(c for c in doc["candidates"] if c["kind"] == "shift")
    task = next(c for c in doc["candidates"] if c["kind"] == "task")
    shifted = {"id": "camera", "kind": "shifted_data", "data": "camera/", "label": "new camera"}
    doc["candidates"] = [shift, {**shifted, "note": "n"}, task]
    return doc


DEMO = _demo()
Path_ = tuple[str | int, ...]


def _deep(levels: int) -> list:
    """A list nested ``levels`` deep, built without recursion."""
    value: list = []
    for _ in range(levels):
        value = [value]
    return value


REPLACEMENTS: dict[str, Any] = {
    "empty string": "",
    "string": "x",
    "long string": "x" * 10_000,
    "shift string": "gaussian_noise:3",
    "0": 0,
    "-1": -1,
    "1": 1,
    "2**31": 2**31,
    "2**63": 2**63,
    "-2**63": -(2**63),
    "10**400": 10**400,
    "1.5": 1.5,
    "1e308": 1e308,
    "inf": float("inf"),
    "-inf": float("-inf"),
    "NaN": float("nan"),
    "true": True,
    "false": False,
    "[]": [],
    "[1, 2]": [1, 2],
    "[null]": [None],
    "{}": {},
    "object": {"a": 1},
    "list 5,000 deep": _deep(5_000),
}


def _paths(value: Any, prefix: Path_ = ()) -> list[Path_]:
    """Every key or index path inside ``value`` (not the root)."""
    out: list[Path_] = []
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, child in items:
        out.append((*prefix, key))
        if isinstance(child, dict | list):
            out += _paths(child, (*prefix, key))
    return out


def _parent(doc: Any, path: Path_) -> Any:
    for key in path[:-1]:
        doc = doc[key]
    return doc


def _variants(seed: int) -> list[tuple[str, Any]]:
    """(description, document): per field deletion, null, a deep nest, a wrapped value and four
    seeded replacements; plus whole-document replacements."""
    rng = random.Random(seed)
    out: list[tuple[str, Any]] = [(f"document = {k}", v) for k, v in REPLACEMENTS.items()]
    for path in _paths(DEMO):
        changes: list[tuple[str, Any]] = [
            ("null", None),
            ("nested", _deep(5_000)),
            ("deep dict", {"a": {"b": {"c": _deep(100)}}}),
        ]
        changes += [(f"= {k}", REPLACEMENTS[k]) for k in rng.sample(sorted(REPLACEMENTS), 4)]
        doc = copy.deepcopy(DEMO)
        parent = _parent(doc, path)
        changes.append(("wrapped", [parent[path[-1]]]))
        for what, value in changes:
            doc = copy.deepcopy(DEMO)
            _parent(doc, path)[path[-1]] = value
            out.append((f"{path} {what}", doc))
        doc = copy.deepcopy(DEMO)
        del _parent(doc, path)[path[-1]]
        out.append((f"{path} deleted", doc))
    return out


def test_every_plan_mutation_is_a_plan_or_one_of_our_errors(tmp_path):
    variants = _variants(seed=16)
    assert len(variants) > 300
    passed = refused = 0
    for what, doc in variants:
        try:
            plan = plan_from_dict(doc)
        except ResqueError as e:
            refused += 1
            message = str(e)
            assert "\n" not in message and 0 < len(message) < 400, (what, message)
        except Exception as e:  # noqa: BLE001 - the point of the test
            raise AssertionError(f"{what}: {type(e).__name__}: {e}"[:500]) from None
        else:
            passed += 1
            assert plan_from_dict(plan.to_dict()) == plan, what
            assert "trusted" not in plan.to_dict()["model"], what
    # Both outcomes occur: the validator neither accepts nor refuses everything.
    assert passed > 20 and refused > 200, (passed, refused)


def test_plan_files_of_mutated_documents_are_plans_or_our_errors(tmp_path):
    """The same variants written as files (those JSON can write), read by load_plan."""
    path = tmp_path / "plan.json"
    for what, doc in _variants(seed=17)[::3]:
        try:
            path.write_text(json.dumps(doc))
        except RecursionError:
            path.write_text("[" * 100_000)
        try:
            load_plan(path)
        except ResqueError as e:
            assert "\n" not in str(e), (what, str(e))
        except Exception as e:  # noqa: BLE001 - the point of the test
            raise AssertionError(f"{what}: {type(e).__name__}: {e}"[:500]) from None
