"""Transferability scores in the reports: the ranking table, CSV columns, and the validation's
side-by-side correlations with the verdict on which score predicted epochs best."""

from __future__ import annotations

import csv
import io

from resque_core.report import render


def _ranking_doc() -> dict:
    def cand(i, kind, resque, transfer):
        score = {"value": resque, "per_class": {}, "layer": "fc", "compute_seconds": 0.1,
                 "cached": False, "kind": kind, "transfer": transfer}  # fmt: skip
        return {"id": f"c{i}", "kind": kind, "label": f"cand {i}", "status": "ok", "rank": i,
                "resque": resque, "score": score, "transfer": transfer}  # fmt: skip

    return {
        "type": "ranking",
        "plan": {"name": "p"},
        "candidates": [
            cand(1, "dist", 0.1, {"logme": 0.75, "leep": -0.5}),
            cand(2, "dist", 0.2, {"logme": 0.25}),
        ],
    }


def test_ranking_reports_show_the_scores():
    doc = _ranking_doc()
    md = render(doc, "md").decode()
    assert "Transferability scores" in md and "LogME (higher = better)" in md
    assert "RESQUE (lower = better)" in md and "0.75" in md
    rows = list(csv.DictReader(io.StringIO(render(doc, "csv").decode())))
    assert rows[0]["logme"] == "0.75" and rows[1]["leep"] == ""
    assert "LEEP (higher = better)" in render(doc, "html").decode()


def test_a_ranking_without_scores_has_no_such_table():
    doc = _ranking_doc()
    for c in doc["candidates"]:
        c.pop("transfer"), c["score"].pop("transfer")
    assert "Transferability scores" not in render(doc, "md").decode()
    assert "logme" not in render(doc, "csv").decode()
