"""Side-by-side table of docs/VALIDATION.md: RESQUE and every transferability score against
each measured quantity, from a validation run document (or a validation_study.py JSON).

    python scripts/validation_study.py --cache-dir /tmp/study --out study.json
    python scripts/transfer_table.py study.json

Prints Markdown: per kind, one row per score with its Spearman correlation (n) against epochs,
gradient norm, parameter change and kWh, and one line per kind naming the score whose
correlation with epochs was strongest in its predicting direction (positive for RESQUE, which is
lower-is-better; negative for the others, which are higher-is-better).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from resque_core.kinds import ESTIMATOR_INDEX  # noqa: E402
from resque_core.report.transfer_blocks import best_epochs_predictor  # noqa: E402
from resque_core.scoring.transfer import TRANSFER_SCORES  # noqa: E402
from resque_core.validation import score_correlations  # noqa: E402

MEASURES = ("epochs", "grad_norm", "param_change", "energy_kwh")


def _title(name: str) -> str:
    return "RESQUE" if name == "resque" else TRANSFER_SCORES[name].title


def table(doc: dict) -> str:
    # Recomputed from the runs, so a document stored before the field existed works too.
    corr = score_correlations(doc["runs"])
    lines = [
        "| index | score | " + " | ".join(f"Spearman with {m} (n)" for m in MEASURES) + " |",
        "|---|---|" + "---|" * len(MEASURES),
    ]
    verdicts = []
    for kind, scores in corr.items():
        for name, by_measure in scores.items():
            cells = []
            for m in MEASURES:
                c = by_measure.get(m) or {}
                rho = c.get("spearman")
                shown = f"{rho:+.2f}" if rho is not None else "-"
                cells.append(f"{shown} ({c.get('n')})")
            head = f"| {ESTIMATOR_INDEX[kind]} | {_title(name)} | "
            lines.append(head + " | ".join(cells) + " |")
        verdicts.append(best_epochs_predictor(kind, scores, _title))
    return "\n".join(lines) + "\n\n" + "\n".join(f"- {v}" for v in verdicts if v) + "\n"


def main() -> None:
    doc = json.loads(Path(sys.argv[1]).read_text())
    print(table(doc.get("validation", doc)))


if __name__ == "__main__":
    main()
