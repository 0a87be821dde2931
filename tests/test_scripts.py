"""The scripts in scripts/ import against the engine as it is (a moved name breaks them before
anyone runs a study), and the side-by-side table prints from a stored validation document."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = sorted((ROOT / "scripts").glob("*.py"))


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(f"script_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)  # top-level imports only: every script has a main guard
    return module


@pytest.mark.parametrize("path", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_every_script_imports(path):
    module = _load(path)
    assert callable(getattr(module, "main", None)), f"{path.name} has no main()"


def test_transfer_table_prints_every_score_beside_resque():
    table = _load(ROOT / "scripts" / "transfer_table.py")
    doc = json.loads((ROOT / "tests/fixtures/runs/validation-cee0db6.json").read_text())
    runs = []
    for i, r in enumerate(doc["runs"] * 3):  # enough finished runs for a correlation
        r = dict(r, candidate_id=f"{r['candidate_id']}-{i}", epochs=i, grad_norm=float(i))
        r["transfer"] = {"logme": -float(i), "leep": float(i % 2)}
        runs.append(r)
    text = table.table({"runs": runs})
    assert "| RESQUE_dist | RESQUE |" in text and "| RESQUE_dist | LogME |" in text
    assert "Spearman with epochs (n)" in text
