"""The ``calibrate`` command: retrain a few chosen candidates so that ``rank`` can predict the
cost of every other one on this model.

    python -m resque_core calibrate (--plan FILE | --demo) [--k N]
        [--budget-minutes M | --budget-kwh E] [--max-epochs N] [--time-budget S]
        [--cache-dir DIR] [--json]
        [cost-model and retraining-procedure options, as for validate]
        [--executor local|ray] [--ray-address ADDR]

It scores the plan, measures energy probes, chooses up to ``k`` candidates (spread over each
kind's RESQUE range and over shift families, cheap ones preferred, within the budget), retrains
them, refits the calibration of this checkpoint and procedure and stores it. Text output: what
was chosen and why, one line per retrained candidate, the calibration's basis per kind (form,
n, leave-one-out error beside the mean's), and what it cost. ``--json`` prints one object with
``retrained`` (candidate ids), ``calibration`` (per kind), ``basis``, ``estimate`` and
``measured`` cost, ``seconds`` and ``run_id``.
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
    p.add_argument(
        "--k", type=int, default=5, help="retrain at most N candidates (default 5)", metavar="N"
    )
    budget = p.add_mutually_exclusive_group()
    budget.add_argument(
        "--budget-minutes", type=float, help="spend at most M minutes retraining", metavar="M"
    )
    budget.add_argument(
        "--budget-kwh", type=float, help="spend at most E kWh retraining (estimated)", metavar="E"
    )
    add_retrain_options(p)


@command(
    "calibrate",
    "retrain a few chosen candidates, fit the cost model on this checkpoint, store it",
    _options,
)
def _calibrate(args: argparse.Namespace) -> int:
    from ..calibrating import CHOOSER_RULE, calibrate_plan
    from ..errors import ConfigError

    if args.k < 1:
        raise ConfigError(f"--k must be at least 1, got {args.k}")
    for name in ("budget_minutes", "budget_kwh"):
        value = getattr(args, name)
        if value is not None and not value > 0:
            raise ConfigError(f"--{name.replace('_', '-')} must be > 0, got {value}")
    plan = load_plan_arg(args)
    result = calibrate_plan(
        plan,
        k=args.k,
        budget_seconds=args.budget_minutes * 60 if args.budget_minutes is not None else None,
        budget_kwh=args.budget_kwh,
        **retrain_arguments(args, plan),
    )
    doc = result.to_dict()
    if args.json:
        keys = (
            "retrained",
            "calibration",
            "basis",
            "chooser",
            "estimate",
            "measured",
            "seconds",
            "cancelled",
            "stopped_at_budget",
            "run_id",
        )
        _emit_json({k: doc[k] for k in keys})
        return 130 if result.cancelled else 0
    print(f"plan: {plan.name}")
    print(f"chosen: {', '.join(result.retrained) or 'none'}")
    print(f"  how: {CHOOSER_RULE}")
    for r in doc["runs"]:
        if r["epochs"] is None:
            print(f"  {r['candidate_id']:<20} failed: {r['error']}")
        else:
            cut = " (cut short: not used in the fit)" if r["censored"] else ""
            print(
                f"  {r['candidate_id']:<20} RESQUE {r['resque']:.4f}  {r['epochs']} epochs  "
                f"{r['energy_kwh']:.3g} kWh{cut}"
            )
    for kind, text in doc["basis"].items():
        print(f"calibration {kind}: {text}")
    m, e = doc["measured"], doc["estimate"]
    print(
        f"cost of calibrating: {m.get('seconds', 0):.1f} s retraining, "
        f"{m.get('kwh', 0):.3g} kWh, {m.get('co2_kg', 0):.3g} kg CO2e "
        f"(estimated beforehand: {e.get('seconds', 0):.0f} s, {e.get('kwh', 0):.3g} kWh); "
        f"{doc['seconds']:.1f} s in all"
    )
    if result.stopped_at_budget:
        print("stopped: the budget was spent; runs cut short are not in the fit")
    print(f"run id: {doc['run_id']}")
    return 130 if result.cancelled else 0
