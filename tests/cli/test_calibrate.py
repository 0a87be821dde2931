"""The calibrate command: its JSON contract on a tiny plan, and one-line errors (exit 2) for
bad input."""

import json
from pathlib import Path

import pytest

from resque_core.cli import main

ROOT = Path(__file__).resolve().parent.parent.parent
DEMO_CHECKPOINT = str(ROOT / "resque_core" / "demo" / "digits_small_cnn.pt")


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def tiny_plan(tmp_path):
    """Three shifts of the demo model on 6 digits per class, CPU."""
    plan = {
        "version": 1,
        "name": "tiny",
        "model": {
            "checkpoint": DEMO_CHECKPOINT,
            "arch": "small_cnn",
            "num_classes": 10,
            "in_channels": 1,
        },
        "source": "builtin:digits",
        "run": {"samples_per_class": 6, "device": "cpu", "flatten": False},
        "candidates": [
            {"id": "noise-1", "kind": "shift", "shift": "gaussian_noise:1"},
            {"id": "rotation-5", "kind": "shift", "shift": "rotation:5"},
            {"id": "contrast-5", "kind": "shift", "shift": "contrast:5"},
        ],
    }
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan), encoding="utf-8")
    return str(path)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--k", "0"], "--k must be at least 1"),
        (["--budget-minutes", "-1"], "--budget-minutes must be > 0"),
        (["--budget-kwh", "0"], "--budget-kwh must be > 0"),
    ],
)
def test_bad_calibrate_input_is_one_line_and_exit_2(capsys, tiny_plan, tmp_path, extra, message):
    code, out, err = run(
        capsys, "calibrate", "--plan", tiny_plan, "--cache-dir", str(tmp_path / "c"), *extra
    )
    assert code == 2 and out == ""
    assert err.startswith("error: ") and message in err and "Traceback" not in err


def test_both_budgets_are_refused_by_the_parser(capsys, tiny_plan):
    with pytest.raises(SystemExit) as e:
        main(["calibrate", "--plan", tiny_plan, "--budget-minutes", "1", "--budget-kwh", "1"])
    assert e.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_calibrate_json_says_what_it_retrained_fitted_and_spent(capsys, tiny_plan, tmp_path):
    code, out, _err = run(
        capsys,
        "calibrate",
        "--plan",
        tiny_plan,
        "--cache-dir",
        str(tmp_path / "c"),
        "--k",
        "2",
        "--max-epochs",
        "2",
        "--meter",
        "replay",
        "--probe-seconds",
        "0.01",
        "--json",
    )
    assert code == 0
    doc = json.loads(out)
    assert {"retrained", "calibration", "seconds", "measured", "estimate"} <= set(doc)
    assert 1 <= len(doc["retrained"]) <= 2
    assert set(doc["retrained"]) <= {"noise-1", "rotation-5", "contrast-5"}
    assert doc["seconds"] > 0 and doc["measured"]["seconds"] >= 0
    assert set(doc["calibration"]) == {"dist", "task"}
    assert "how" not in doc and "equal bands" in doc["chooser"]


def _option_strings(command: str) -> set[str]:
    import argparse

    from resque_core.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return {s for a in sub.choices[command]._actions for s in a.option_strings}


def test_calibrate_takes_every_retraining_option_validate_takes():
    own = {"--candidates", "--limit"}  # validate's own choice of candidates
    missing = _option_strings("validate") - own - _option_strings("calibrate")
    assert missing == set()
    assert {"--time-budget", "--max-epochs", "--augment", "--executor"} <= _option_strings(
        "calibrate"
    )
