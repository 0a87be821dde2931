"""The ``validate`` command: retrain candidates for real and compare with the predictions.

    python -m resque_core validate (--plan FILE | --demo) [--trust-checkpoint] [--candidates ID,...]
        [--limit N] [--max-epochs N] [--time-budget S] [--cache-dir DIR] [--json]
        [cost-model options] [--executor local|ray] [--ray-address ADDR]

Text output: one row per retrained candidate (RESQUE, predicted and measured epochs / kWh /
CO2), the correlation table and the refitted calibrations. ``--json`` prints one object with
``run_id``, ``runs`` (each with ``candidate_id``, ``resque``, ``epochs``, ``energy_kwh``,
``co2_kg``, ``energy_method``, ``grad_norm``, ``param_change``, and ``predicted``: the
prediction made before retraining, with its intervals), ``correlation`` and ``calibration``.
A line per finished candidate goes to stderr either way.
"""

from __future__ import annotations

import argparse

from ._options import (
    _emit_json,
    add_plan_options,
    add_retrain_options,
    load_plan_arg,
    retrain_arguments,
)
from ._registry import command

__all__: list[str] = []


def _options(p: argparse.ArgumentParser) -> None:
    add_plan_options(p)
    p.add_argument("--candidates", help="comma-separated candidate ids to retrain")
    p.add_argument(
        "--limit",
        type=int,
        help="retrain N candidates spread over the RESQUE range (default: all of them)",
    )
    add_retrain_options(p)


def _interval(lo_hi) -> str:
    return f"[{lo_hi[0]:.3g}, {lo_hi[1]:.3g}]"


@command(
    "validate",
    "retrain candidates, measure epochs / energy / CO2, compare with the predictions",
    _options,
)
def _validate(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..validation import validate_plan

    plan = load_plan_arg(args)
    ids = None
    if args.candidates is not None:
        ids = [c.strip() for c in args.candidates.split(",") if c.strip()]
        if not ids:
            raise ConfigError("--candidates is empty: give ids separated by commas")
    validation = validate_plan(
        plan, candidates=ids, limit=args.limit, **retrain_arguments(args, plan)
    )
    doc = validation.to_dict()
    if args.json:
        keys = ("run_id", "seconds", "cancelled", "runs", "correlation", "calibration")
        _emit_json({k: doc[k] for k in keys})
        return 0
    _print_text(validation, doc)
    return 0


def _print_text(validation, doc) -> None:
    level = int(validation.settings.level * 100)
    print(f"plan: {validation.plan.name}  ({len(doc['runs'])} retrained, {doc['seconds']:.1f} s)")
    print(
        f"{'id':<20} {'kind':<4} {'RESQUE':>7}  {'epochs':>6} {'predicted':>18}  "
        f"{'kWh':>9} {'predicted':>20}  {'kg CO2e':>9}  stop"
    )
    for r in doc["runs"]:
        if r["epochs"] is None:
            print(f"{r['candidate_id']:<20} {r['kind']:<4} failed: {r['error']}")
            continue
        p = r["predicted"]
        epochs = f"{p['epochs']:>5.1f} {_interval(p['epochs_interval']):>12}"
        kwh = f"{p['energy_kwh']:>7.3g} {_interval(p['energy_kwh_interval']):>12}"
        print(
            f"{r['candidate_id']:<20} {r['kind']:<4} {r['resque']:>7.4f}  {r['epochs']:>6d} "
            f"{epochs}  {r['energy_kwh']:>9.3g} {kwh}  {r['co2_kg']:>9.3g}  {r['stop_reason']}"
        )
    methods = sorted({r["energy_method"] for r in doc["runs"] if r["energy_method"]})
    print(f"energy: {'; '.join(methods)}; predictions: {level}% intervals, made before retraining")
    print("correlation of RESQUE with each measure (Pearson / Spearman / Kendall, n):")
    for kind, table in doc["correlation"].items():
        for measure, c in table.items():
            if c["pearson"] is None:
                print(f"  {kind:<4} {measure:<13} n={c['n']}: {c['note']}")
            else:
                print(
                    f"  {kind:<4} {measure:<13} {c['pearson']:+.2f} / {c['spearman']:+.2f} / "
                    f"{c['kendall']:+.2f}  (n={c['n']})"
                )
    from ..report import calibration_line

    for kind, cal in doc["calibration"].items():
        loo = f", leave-one-out MAE {cal['loo_mae']:.2f} epochs" if cal["loo_mae"] else ""
        print(
            f"calibration {kind}: epochs = {calibration_line(cal['intercept'], cal['slope'])} "
            f"({cal['basis']}, n={cal['n']}{loo})"
        )
    print(f"run id: {doc['run_id']}")
