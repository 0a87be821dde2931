"""The run-document schema: check_run accepts every document the engine has written and refuses
a malformed one with one line naming the field and what it allows; the typed readers.

tests/fixtures/runs/ holds runs stored by the engine itself (``rank`` / ``validate`` on a
five-candidate digits plan with the replay meter), one file per engine version:

- ``ranking-07dff8b.json``: before the cost model (no ``cost`` key, ordered by RESQUE);
- ``ranking-kwh-cee0db6.json``, ``validation-cee0db6.json``: the first cost model and validation;
- ``ranking-kwh-cbc6ee8.json``, ``validation-cbc6ee8.json``: the engine just before the schema
  was declared (one candidate is labelled ``Blur <b>3</b> & co``; one task is missing on disk).
"""

import copy
import json
import os
import re
import threading
import time
from pathlib import Path
from types import MappingProxyType

import pytest

from resque_core.errors import ConfigError
from resque_core.report import export as report
from resque_core.store import documents as docs
from resque_core.store.documents import check_run
from resque_core.store.runs import RunStore

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "runs"
STORED = sorted(p.name for p in FIXTURES.glob("*.json"))


def _doc(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


@pytest.fixture
def ranking() -> dict:
    return _doc("ranking-kwh-cbc6ee8.json")


@pytest.fixture
def validation() -> dict:
    return _doc("validation-cbc6ee8.json")


def test_the_fixtures_cover_both_run_types_and_three_engine_versions():
    assert STORED == [
        "ranking-07dff8b.json",
        "ranking-kwh-cbc6ee8.json",
        "ranking-kwh-cee0db6.json",
        "validation-cbc6ee8.json",
        "validation-cee0db6.json",
    ]
    assert "cost" not in _doc("ranking-07dff8b.json")


# ----------------------------------------------------------------------------- accepted
@pytest.mark.parametrize("name", STORED)
def test_a_stored_run_passes_unchanged_as_a_copy(name):
    doc = _doc(name)
    checked = check_run(doc)
    assert checked == doc
    assert json.dumps(checked) == json.dumps(doc)  # same key order: exports read the same
    results = checked["candidates" if doc["type"] == "ranking" else "runs"]
    results[0]["label"] = "changed"
    assert doc == _doc(name)  # the caller's document is not touched


@pytest.mark.parametrize("name", STORED)
def test_a_stored_run_renders_in_every_format_and_reimports(name, tmp_path, monkeypatch):
    monkeypatch.setenv("BROWSER_PATH", str(tmp_path / "none"))  # the text PDF: fast
    doc = _doc(name)
    for fmt in report.FORMATS:
        assert report.render(doc, fmt)
    assert json.loads(report.render(doc, "json")) == doc
    cache = tmp_path / "cache"
    assert report.import_run(FIXTURES / name, cache_dir=cache) == doc["run_id"]
    assert RunStore(cache).load(doc["run_id"]) == doc
    assert report.import_run(report.render(doc, "json"), cache_dir=cache) == doc["run_id"]


def test_a_read_only_mapping_is_accepted_and_comes_back_as_plain_data(ranking):
    frozen = MappingProxyType({**ranking, "extra": (1, 2)})
    checked = check_run(frozen)
    assert type(checked) is dict and checked["extra"] == [1, 2]
    assert {k: v for k, v in checked.items() if k != "extra"} == ranking


# ----------------------------------------------------------------------------- readers
@pytest.mark.parametrize(
    ("name", "scored", "failed"),
    [
        ("ranking-07dff8b.json", ["noise-1", "blur-3", "parity", "letters"], ["missing"]),
        ("ranking-kwh-cee0db6.json", ["noise-1", "parity", "blur-3", "letters"], ["missing"]),
        ("ranking-kwh-cbc6ee8.json", ["noise-1", "parity", "letters", "blur-3"], ["missing"]),
    ],
)
def test_scored_and_failed_keep_the_stored_order(name, scored, failed):
    doc = _doc(name)
    assert [c["id"] for c in docs.scored(doc)] == scored
    assert [c["id"] for c in docs.failed(doc)] == failed
    # a list of candidates works as well as the document
    assert docs.scored(doc["candidates"]) == docs.scored(doc)
    assert docs.results(doc) is doc["candidates"]


@pytest.mark.parametrize(
    ("name", "measured", "unmeasured"),
    [
        ("validation-cee0db6.json", ["noise-1", "blur-3", "parity"], []),
        ("validation-cbc6ee8.json", ["noise-1", "blur-3", "parity"], ["missing"]),
    ],
)
def test_measured_and_unmeasured(name, measured, unmeasured):
    doc = _doc(name)
    assert [r["candidate_id"] for r in docs.measured(doc)] == measured
    assert [r["candidate_id"] for r in docs.unmeasured(doc)] == unmeasured
    assert len(docs.with_prediction(docs.results(doc))) == len(measured)


def test_bases_come_from_the_fields_that_record_them(ranking, validation):
    assert docs.energy_bases(ranking) == {"replay"} == docs.energy_bases(validation)
    assert docs.prediction_bases(ranking) == {"prior"} == docs.prediction_bases(validation)
    old = _doc("ranking-07dff8b.json")
    assert docs.energy_bases(old) == set() == docs.prediction_bases(old)
    # a candidate's own name is not where a basis is recorded
    named = copy.deepcopy(old)
    named["candidates"][0].update(id="replay", label="estimate prior")
    assert docs.energy_bases(named) == set() == docs.prediction_bases(named)
    calibrated = copy.deepcopy(ranking)
    for c in docs.with_prediction(calibrated["candidates"]):
        c["predicted"].update(basis="calibrated", energy_basis="measured")
    calibrated["cost"]["calibration_basis"] = {"dist": "calibrated", "task": "calibrated"}
    assert docs.prediction_bases(calibrated) == {"calibrated"}
    assert docs.energy_bases(calibrated) == {"measured"}


# ----------------------------------------------------------------------------- refused
def _key(container, part: str):
    return int(part) if isinstance(container, list) else part


def _set(path: str, value):
    """Set the field at ``path`` (dotted; list indices as numbers)."""

    def mutate(doc):
        *parents, last = path.split(".")
        for part in parents:
            doc = doc[_key(doc, part)]
        doc[_key(doc, last)] = value

    return mutate


def _delete(path: str):
    def mutate(doc):
        *parents, last = path.split(".")
        for part in parents:
            doc = doc[_key(doc, part)]
        del doc[_key(doc, last)]

    return mutate


RANKING_CASES = [
    (
        _set("candidates.1", None),
        "ranking run document field 'candidates[1]' must be an object (a candidate result), "
        "got null",
    ),
    (
        _delete("candidates.0.label"),
        "ranking run document field 'candidates[0].label' is missing; it must be a string",
    ),
    (
        _set("candidates.0.resque", "0.02"),
        "ranking run document field 'candidates[0].resque' must be a number or null, got \"0.02\"",
    ),
    (
        _set("cost", "cheap"),
        "ranking run document field 'cost' must be an object (the cost model's settings) or "
        'null, got "cheap"',
    ),
    (
        _set("run_id", 20261201),
        "ranking run document field 'run_id' must be a string or null, got 20261201",
    ),
    (
        _set("candidates.0.resque", None),
        "ranking run document field 'candidates[0].resque' must be a number for a candidate "
        "with status 'ok', got null",
    ),
    (
        _delete("candidates.0.score"),
        "ranking run document field 'candidates[0].score' is missing; it must be an object "
        "(a RESQUE score) for a candidate with status 'ok'",
    ),
    (
        _set("candidates.0.resque", True),
        "ranking run document field 'candidates[0].resque' must be a number or null, got true",
    ),
    (
        _set("candidates.2.kind", "both"),
        "ranking run document field 'candidates[2].kind' must be one of 'dist', 'task', "
        'got "both"',
    ),
    (
        _set("candidates.0.predicted.epochs_interval", [1.0]),
        "ranking run document field 'candidates[0].predicted.epochs_interval' must be a list "
        "of two numbers [low, high], got a list",
    ),
    (
        _set("cost.level", 80),
        "ranking run document field 'cost.level' must be a number between 0 and 1, got 80",
    ),
    (
        _set("candidates.0.score.per_class.0", "wide"),
        "ranking run document field 'candidates[0].score.per_class.0' must be a number, "
        'got "wide"',
    ),
    (
        _set("plan.model.image_size", 8),
        "ranking run document field 'plan.model.image_size' must be a list of integers or null, "
        "got 8",
    ),
    (
        _set("candidates.0.rank", "x" * 100),
        "ranking run document field 'candidates[0].rank' must be an integer or null, "
        f'got "{"x" * 36}...',
    ),
    (
        _set("candidates", {"0": {}}),
        "ranking run document field 'candidates' must be a list of objects (each a candidate "
        "result), got an object",
    ),
]

VALIDATION_CASES = [
    (
        _set("runs.0.epochs", 1.5),
        "validation run document field 'runs[0].epochs' must be an integer or null, got 1.5",
    ),
    (
        _set("runs.1.energy_kwh", None),
        "validation run document field 'runs[1].energy_kwh' must be a number for a run with a "
        "number of epochs, got null",
    ),
    (
        _set("correlation.both", {}),
        "validation run document field 'correlation' must be an object keyed by one of 'dist', "
        "'task', got key \"both\"",
    ),
    (
        _delete("calibration_key"),
        "validation run document field 'calibration_key' is missing; it must be a string",
    ),
    (
        _set("runs.1.retrain.records.0", {"epoch": 1}),
        "validation run document field 'runs[1].retrain.records[0].held_accuracy' is missing; "
        "it must be a number",
    ),
    (
        _set("intensity", None),
        "validation run document field 'intensity' must be an object (a carbon intensity), "
        "got null",
    ),
]


@pytest.mark.parametrize(("mutate", "message"), RANKING_CASES)
def test_a_malformed_ranking_is_refused_naming_the_field(ranking, mutate, message):
    mutate(ranking)
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        check_run(ranking)


@pytest.mark.parametrize(("mutate", "message"), VALIDATION_CASES)
def test_a_malformed_validation_is_refused_naming_the_field(validation, mutate, message):
    mutate(validation)
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        check_run(validation)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ([1, 2], "a run document must be a JSON object, got list"),
        (
            {"candidates": []},
            "not a RESQUE run: it has no 'type' field; export the run again from the History "
            "page or with `report --format json`",
        ),
        (
            {"type": "score"},
            "not a RESQUE run: type 'score'; expected one of ranking, validation",
        ),
        (
            {"type": ["ranking"]},
            "not a RESQUE run: type a list; expected one of ranking, validation",
        ),
    ],
)
def test_what_is_not_a_run_at_all(doc, message):
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        check_run(doc)


def test_a_deeply_nested_document_is_refused_without_recursing(ranking):
    deep: dict = {}
    inner = deep
    for _ in range(100_000):  # far beyond the interpreter's recursion limit
        inner["a"] = {}
        inner = inner["a"]
    ranking["plan"]["run"] = deep
    message = (
        f"run document is nested more than {docs.MAX_DEPTH} levels deep (at 'plan.run.a'); "
        "a RESQUE run is not: export it again"
    )
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        check_run(ranking)


# ----------------------------------------------------------------------------- import
def test_import_refuses_a_malformed_run_in_one_line_and_stores_nothing(ranking, tmp_path):
    ranking["candidates"][1] = None
    message = (
        "ranking run document field 'candidates[1]' must be an object (a candidate result), "
        "got null"
    )
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        report.import_run(json.dumps(ranking).encode(), cache_dir=tmp_path)
    path = tmp_path / "run.json"
    path.write_text(json.dumps(ranking), encoding="utf-8")
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        report.import_run(path, cache_dir=tmp_path)
    assert RunStore(tmp_path).list() == []


def test_import_refuses_json_nested_past_the_parsers_limit(tmp_path):
    text = b'{"type": "ranking", "plan": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"
    message = "the uploaded file is nested too deeply to be a RESQUE run: export it again"
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        report.import_run(text, cache_dir=tmp_path)


def test_import_refuses_a_fifo_at_once(tmp_path):
    fifo = tmp_path / "run.json"
    os.mkfifo(fifo)
    result: list = []

    def attempt():
        try:
            report.import_run(fifo, cache_dir=tmp_path)
        except ConfigError as e:
            result.append(str(e))

    started = time.perf_counter()
    worker = threading.Thread(target=attempt, daemon=True)  # a read would block forever
    worker.start()
    worker.join(5)
    assert result == [
        f"run file {fifo} is not a regular file (a device, FIFO or socket); give a file"
    ]
    assert time.perf_counter() - started < 1.0


def test_import_refuses_an_oversized_export_before_parsing_it(ranking, tmp_path, monkeypatch):
    monkeypatch.setattr(report, "_MAX_IMPORT_BYTES", 2**20)
    big = json.dumps({**ranking, "padding": "x" * 2**21}).encode()
    message = "the uploaded file is 2 MiB, over the limit of 1 MiB for a run export"
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        report.import_run(big, cache_dir=tmp_path)
    path = tmp_path / "big.json"
    path.write_bytes(big)
    message = f"run file {path} is 2 MiB, over the limit of 1 MiB"
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        report.import_run(path, cache_dir=tmp_path)
