"""Seeded mutations of real run documents: each field deleted, retyped, nested or nulled, then
passed through check_run and, when it passes, through every export format and the app's table
builders. The only exception allowed is check_run's one-line ConfigError: a document it accepts
must render.

The documents are runs stored by the engine (tests/fixtures/runs/, see test_documents.py).
"""

import copy
import json
import random
from pathlib import Path
from typing import Any

import pytest

from resque_core.errors import ConfigError
from resque_core.report import export as report
from resque_core.store.documents import check_run
from ui import views, widgets

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "runs"
SEED = 20261201
VARIANTS = 200  # per document
# Accepted variants also rendered as HTML (0.1-0.5 s each: the charts are drawn): the first
# ones that changed what the charts read (candidates, runs), then a few others.
HTML_OF_CHART_INPUTS, HTML_OF_OTHERS = 10, 2
OPS = ("delete", "retype", "nest", "null")
OTHER_VALUES: tuple[Any, ...] = ("text", 7, -1, 2.5, 1e308, True, [], {}, [1, "a"], {"k": 1})


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """The path (keys and indices) of every value inside ``value``."""
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return []
    out = []
    for k, v in items:
        out.append((*prefix, k))
        out += _paths(v, (*prefix, k))
    return out


def _mutated(doc: dict, path: tuple, op: str, rng: random.Random) -> dict:
    out = copy.deepcopy(doc)
    parent = out
    for k in path[:-1]:
        parent = parent[k]
    key, value = path[-1], parent[path[-1]]
    if op == "delete":
        del parent[key]
    elif op == "null":
        parent[key] = None
    elif op == "nest":
        parent[key] = rng.choice([[value], {"value": value}])
    else:
        parent[key] = rng.choice([v for v in OTHER_VALUES if type(v) is not type(value)])
    return out


def _app_tables(doc: dict) -> None:
    """The table rows the Ranking, Validation and History pages build from a document."""
    if doc["type"] == "ranking":
        widgets.ranking_rows(doc["candidates"])
    else:
        labels = {r["candidate_id"]: r["label"] for r in doc["runs"]}
        views.validation_rows(doc["runs"], labels)
        views.correlation_rows(doc["correlation"])
        views.calibration_rows(doc["calibration"])


@pytest.mark.parametrize("name", ["ranking-kwh-cbc6ee8.json", "validation-cbc6ee8.json"])
def test_mutated_documents_are_refused_in_one_line_or_render(name, tmp_path, monkeypatch):
    monkeypatch.setenv("BROWSER_PATH", str(tmp_path / "none"))  # the text PDF: fast, offline
    doc = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    rng = random.Random(f"{SEED}-{name}")
    cases = [(path, op) for path in _paths(doc) for op in OPS]
    problems, refused, accepted = [], 0, 0
    html_left = {True: HTML_OF_CHART_INPUTS, False: HTML_OF_OTHERS}
    for path, op in rng.sample(cases, VARIANTS):
        variant = _mutated(doc, path, op, rng)
        where = f"{op} {'.'.join(map(str, path))}"
        try:
            check_run(variant)
        except ConfigError as e:
            refused += 1
            if "\n" in str(e) or "run" not in str(e):
                problems.append(f"{where}: unclear refusal {e}")
            continue
        except Exception as e:  # noqa: BLE001 - any other exception is the finding
            problems.append(f"{where}: check_run raised {type(e).__name__}: {e}")
            continue
        accepted += 1
        formats = ["md", "csv", "json", "pdf"]
        chart_input = path[0] in ("candidates", "runs")
        if html_left[chart_input]:
            html_left[chart_input] -= 1
            formats.append("html")
        for fmt in formats:
            try:
                report.render(variant, fmt)
            except Exception as e:  # noqa: BLE001
                problems.append(f"{where}: {fmt} export raised {type(e).__name__}: {e}")
        try:
            _app_tables(variant)
        except Exception as e:  # noqa: BLE001
            problems.append(f"{where}: app tables raised {type(e).__name__}: {e}")
    assert problems == []
    # both outcomes are exercised: declared fields refused, free-form ones rendered
    assert refused >= 40 and accepted >= 40, (refused, accepted)
