"""``rank``: score and rank every candidate of a plan, optionally by predicted cost."""

from __future__ import annotations

import argparse
import sys

from ._options import (
    _emit_json,
    _progress_printer,
    add_cache_option,
    add_compat_option,
    add_cost_options,
    add_executor_options,
    add_plan_options,
    cost_settings,
    doc_basis,
    load_plan_arg,
    open_executor,
    open_store,
    retrain_config,
    with_compat,
)
from ._registry import command


def _rank_options(p: argparse.ArgumentParser) -> None:
    add_plan_options(p)
    add_cache_option(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--order-by",
        default="resque",
        help="resque (within each kind, default); epochs, kwh, co2 (cost model, all kinds); or "
        "a transferability score, within each kind, highest first: logme, leep, nce, h_score, "
        "shrinkage_h_score, transrate, gbc",
    )
    p.add_argument(
        "--max-kwh", type=float, help="energy budget: flag candidates predicted above it, exit 3"
    )
    p.add_argument(
        "--max-co2-kg", type=float, help="CO2e budget: flag candidates predicted above it, exit 3"
    )
    add_compat_option(p)
    add_cost_options(p)
    add_executor_options(p)


@command("rank", "score and rank every candidate of a plan", _rank_options)
def _rank(args: argparse.Namespace) -> int:
    from ..cost.predict import CostOptions
    from ..ranking import COST_ORDERINGS, TRANSFER_ORDERINGS, rank_plan
    from ..store.runs import RunStore

    plan = with_compat(load_plan_arg(args), args)
    cost = None
    if args.order_by in COST_ORDERINGS or args.max_kwh is not None or args.max_co2_kg is not None:
        cost = CostOptions(
            settings=cost_settings(args),
            procedure=retrain_config(args, plan),
            meter=args.meter,
            cache_dir=args.cache_dir,
            max_kwh=args.max_kwh,
            max_co2_kg=args.max_co2_kg,
            probe_seconds=args.probe_seconds,
        )
    ranking = rank_plan(
        plan,
        store=open_store(args),
        runs=RunStore(args.cache_dir),
        progress=_progress_printer(True),
        ordered_by=args.order_by,
        cost=cost,
        executor=open_executor(args),
    )
    over = ranking.over_budget
    if args.json:
        doc = ranking.to_dict()
        keys = ("run_id", "seconds", "ordered_by", "rank_basis", "candidates", "cost")
        _emit_json({**{k: doc[k] for k in keys}, "over_budget": [r.candidate.id for r in over]})
        return 3 if over else 0
    print(f"plan: {plan.name}  ({len(plan.candidates)} candidates, {ranking.seconds:.1f} s)")
    print(f"order: {doc_basis(ranking)}")
    if plan.run.compat != "project":
        print(f"mode: {plan.run.compat} (the reference code's pipeline; see docs/METHOD.md)")
    cost_head = f"  {'epochs':>6} {'kWh':>10} {'kg CO2e':>10}" if cost else ""
    by_score = args.order_by if args.order_by in TRANSFER_ORDERINGS else None
    if by_score:
        cost_head += f"  {args.order_by[:10]:>10}"
    print(f"{'rank':>4}  {'kind':<5} {'id':<22} {'RESQUE':>8}{cost_head}  label")
    for r in ranking.ordered:
        if r.ok:
            p = r.prediction
            cols = ""
            if p is not None:
                cols = f"  {p.epochs:>6.1f} {p.energy_kwh:>10.3g} {p.co2_kg:>10.3g}"
            elif cost:
                cols = f"  {'-':>6} {'-':>10} {'-':>10}"
            if by_score:
                v = r.score.transfer.get(by_score)
                cols += f"  {v:>10.4g}" if v is not None else f"  {'-':>10}"
            flag = "  OVER BUDGET" if r.over_budget else ""
            print(
                f"{r.rank:>4}  {r.candidate.estimator:<5} {r.candidate.id:<22} "
                f"{r.score.value:>8.4f}{cols}  {r.candidate.title}{flag}"
            )
        else:
            print(
                f"{'-':>4}  {r.candidate.estimator:<5} {r.candidate.id:<22} {'failed':>8}  "
                f"{r.error}"
            )
    if cost is not None:
        basis = ", ".join(f"{k}: {v}" for k, v in ranking.cost["calibration_basis"].items())
        intensity = cost.settings.intensity
        print(
            f"cost model: {int(cost.settings.level * 100)}% intervals in --json; epochs from "
            f"{basis}; {intensity.g_per_kwh:.0f} g CO2e/kWh ({intensity.source}), "
            f"PUE {intensity.pue:g}"
        )
    print(f"run id: {ranking.run_id}")
    for r in over:
        print(f"over budget: {r.candidate.id}: {'; '.join(r.over_budget)}", file=sys.stderr)
    return 3 if over else 0
