"""Validation study: retrain every candidate of a plan (default: the demo) and measure how well
RESQUE predicts the cost of retraining. The figures of docs/VALIDATION.md come from this script.

    python scripts/validation_study.py --out study.json --markdown study.md
    python scripts/validation_study.py --device cuda --meter nvml --out gpu.json   # on a GPU

It runs :func:`resque_core.validation.validate_plan` over all candidates (augmentation
``no_flip`` by default: mirrored digits are other symbols) with a fresh cache directory, so
every prediction made *before* retraining uses the documented priors, then analyses the runs:

- correlations of RESQUE with epochs, gradient norm, parameter change, kWh and CO2 (per kind);
- leave-one-out (LOO) prediction error of epochs (calibration refitted without the run) and of
  kWh (LOO epochs x the run's own energy probe), for runs that stopped on their own;
- coverage of the 80% intervals: LOO intervals (:func:`resque_core.cost.predict.predict_cost` with
  the
  LOO calibration and the run's probe) and the prior-based intervals actually issued;
- accuracy of the energy probe: measured kWh per epoch / probe's prediction.

The JSON output holds the validation document (every epoch of every run) plus this analysis;
``--markdown`` writes the tables pasted into docs/VALIDATION.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from resque_core.cost.predict import CostSettings, fit_calibration, predict_cost  # noqa: E402
from resque_core.measure.carbon import carbon_intensity  # noqa: E402
from resque_core.plans import DEMO_PLAN, load_plan  # noqa: E402
from resque_core.retrain import EnergyProbe, RetrainConfig  # noqa: E402
from resque_core.store.cache import ResultStore  # noqa: E402
from resque_core.store.runs import RunStore  # noqa: E402
from resque_core.validation import MEASURES, validate_plan  # noqa: E402


def _usable(run: dict) -> bool:
    return run["status"] == "completed" and not run["censored"] and run["probe"] is not None


def _probe(run: dict) -> EnergyProbe:
    return EnergyProbe(**{k: v for k, v in run["probe"].items() if k != "kwh_per_epoch"})


def _inside(value: float, interval: list[float] | tuple[float, float]) -> bool:
    return interval[0] - 1e-12 <= value <= interval[1] + 1e-12


def loo_analysis(runs: list[dict], settings: CostSettings) -> dict:
    """Per kind: LOO errors of epochs and kWh, LOO interval coverage, prior coverage."""
    out = {}
    for kind in ("dist", "task"):
        rows = [r for r in runs if r["kind"] == kind and _usable(r)]
        if len(rows) < 4:
            out[kind] = {"n": len(rows), "note": "needs 4+ usable runs for leave-one-out"}
            continue
        ep_err, kwh_err, kwh_rel, cover = [], [], [], {"epochs": 0, "energy_kwh": 0, "co2_kg": 0}
        for i, run in enumerate(rows):
            rest = rows[:i] + rows[i + 1 :]
            if len({r["resque"] for r in rest}) < 2:
                continue
            cal = fit_calibration(
                [r["resque"] for r in rest], [r["epochs"] for r in rest], kind=kind
            )
            pred = predict_cost(
                run["resque"], calibration=cal, probe=_probe(run), settings=settings
            )
            ep_err.append(pred.epochs - run["epochs"])
            kwh_err.append(pred.energy_kwh - run["energy_kwh"])
            if run["energy_kwh"] > 0:
                kwh_rel.append(abs(pred.energy_kwh - run["energy_kwh"]) / run["energy_kwh"])
            cover["epochs"] += _inside(run["epochs"], pred.epochs_interval)
            cover["energy_kwh"] += _inside(run["energy_kwh"], pred.energy_kwh_interval)
            cover["co2_kg"] += _inside(run["co2_kg"], pred.co2_kg_interval)
        n = len(ep_err)
        prior_cover = {
            m: sum(_inside(r[m], r["predicted"][f"{m}_interval"]) for r in rows) / len(rows)
            for m in ("epochs", "energy_kwh", "co2_kg")
        }
        full = fit_calibration([r["resque"] for r in rows], [r["epochs"] for r in rows], kind=kind)
        out[kind] = {
            "n": n,
            "fit": full.to_dict(),
            "loo_epochs_mae": float(np.mean(np.abs(ep_err))),
            "loo_epochs_rmse": float(np.sqrt(np.mean(np.square(ep_err)))),
            "mean_epochs": float(np.mean([r["epochs"] for r in rows])),
            "loo_kwh_mae": float(np.mean(np.abs(kwh_err))),
            "loo_kwh_median_rel_error": float(np.median(kwh_rel)) if kwh_rel else None,
            "mean_kwh": float(np.mean([r["energy_kwh"] for r in rows])),
            "loo_coverage": {k: v / n for k, v in cover.items()},
            "prior_coverage": prior_cover,
        }
    return out


def probe_accuracy(runs: list[dict]) -> dict:
    """Measured kWh per epoch divided by the probe's kWh per epoch, over runs with epochs."""
    ratios = [
        (r["energy_kwh"] / r["epochs"]) / r["probe"]["kwh_per_epoch"]
        for r in runs
        if r["status"] == "completed" and r["epochs"] and r["probe"]
    ]
    if not ratios:
        return {"n": 0}
    return {
        "n": len(ratios),
        "median_ratio": float(np.median(ratios)),
        "min_ratio": float(np.min(ratios)),
        "max_ratio": float(np.max(ratios)),
    }


def markdown(doc: dict, analysis: dict, meta: dict) -> str:
    lines = [
        f"Study run {doc['run_id']}: {meta['command']}",
        "",
        f"Machine: {meta['platform']}, {meta['cpu']}, torch threads {meta['threads']}, device "
        f"{meta['device']}; energy: {meta['energy_methods']}; carbon intensity "
        f"{doc['intensity']['g_per_kwh']:.0f} g CO2e/kWh ({doc['intensity']['source']}).",
        f"Wall time {doc['seconds']:.0f} s for {len(doc['runs'])} candidates.",
        "",
        "| candidate | kind | RESQUE | epochs | stop | grad norm | param change | kWh | g CO2e "
        "| predicted epochs (80%) | predicted kWh (80%) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(doc["runs"], key=lambda r: (r["kind"], r["resque"] or 0)):
        if r["epochs"] is None:
            lines.append(f"| {r['candidate_id']} | {r['kind']} | failed: {r['error']} |")
            continue
        p = r["predicted"]
        gn = f"{r['grad_norm']:.2f}" if r["grad_norm"] is not None else "-"
        pc = f"{r['param_change']:.4f}" if r["param_change"] is not None else "-"
        stop = "target" if r["reached_target"] else ("max" if r["censored"] else "cutoff")
        lines.append(
            f"| {r['candidate_id']} | {r['kind']} | {r['resque']:.4f} | {r['epochs']} | {stop} "
            f"| {gn} | {pc} | {r['energy_kwh']:.2e} | {r['co2_kg'] * 1000:.3f} "
            f"| {p['epochs']:.1f} [{p['epochs_interval'][0]:.1f}, {p['epochs_interval'][1]:.1f}] "
            f"| {p['energy_kwh']:.1e} [{p['energy_kwh_interval'][0]:.1e}, "
            f"{p['energy_kwh_interval'][1]:.1e}] |"
        )
    lines += [
        "",
        "| kind | measure | n | Pearson | Spearman | Kendall |",
        "|---|---|---|---|---|---|",
    ]
    for kind, table in doc["correlation"].items():
        for m in MEASURES:
            c = table[m]
            if c["pearson"] is None:
                lines.append(f"| {kind} | {m} | {c['n']} | - | - | - |")
            else:
                lines.append(
                    f"| {kind} | {m} | {c['n']} | {c['pearson']:+.2f} (p={c['pearson_p']:.2g}) "
                    f"| {c['spearman']:+.2f} (p={c['spearman_p']:.2g}) "
                    f"| {c['kendall']:+.2f} (p={c['kendall_p']:.2g}) |"
                )
    lines += [
        "",
        "| kind | n | fit (epochs =) | LOO MAE epochs (mean epochs) | LOO MAE kWh (mean kWh) "
        "| LOO median rel. kWh error | LOO 80% coverage epochs / kWh / CO2 "
        "| prior 80% coverage epochs / kWh / CO2 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for kind, a in analysis["loo"].items():
        if "fit" not in a:
            lines.append(f"| {kind} | {a['n']} | {a['note']} | | | | | |")
            continue
        f, lc, pc = a["fit"], a["loo_coverage"], a["prior_coverage"]
        rel = a["loo_kwh_median_rel_error"]
        lines.append(
            f"| {kind} | {a['n']} | {f['intercept']:.2f} + {f['slope']:.2f} x RESQUE "
            f"(s = {f['residual_sd']:.2f}) | {a['loo_epochs_mae']:.2f} ({a['mean_epochs']:.1f}) "
            f"| {a['loo_kwh_mae']:.1e} ({a['mean_kwh']:.1e}) "
            f"| {'-' if rel is None else f'{rel:.0%}'} "
            f"| {lc['epochs']:.0%} / {lc['energy_kwh']:.0%} / {lc['co2_kg']:.0%} "
            f"| {pc['epochs']:.0%} / {pc['energy_kwh']:.0%} / {pc['co2_kg']:.0%} |"
        )
    pa = analysis["probe"]
    if pa["n"]:
        lines += [
            "",
            f"Energy probe: measured kWh per epoch / probe's kWh per epoch over {pa['n']} runs: "
            f"median {pa['median_ratio']:.2f}, range {pa['min_ratio']:.2f} to "
            f"{pa['max_ratio']:.2f}.",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--plan", default=str(DEMO_PLAN), help="plan file (default: the demo plan)")
    p.add_argument("--cache-dir", required=True, help="fresh cache directory for this study")
    p.add_argument("--out", required=True, help="JSON output (validation document + analysis)")
    p.add_argument("--markdown", help="write the tables as Markdown here")
    p.add_argument("--device", default="cpu")
    p.add_argument("--meter", default="auto")
    p.add_argument("--augment", default="no_flip")
    p.add_argument("--target-accuracy", type=float, default=0.9)
    p.add_argument("--max-epochs", type=int, default=60)
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--country", help="ISO-3 code for the carbon intensity (default: world)")
    p.add_argument("--candidates", help="comma-separated ids (default: all)")
    args = p.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    plan = load_plan(args.plan)
    plan = replace(plan, run=replace(plan.run, device=args.device))
    config = RetrainConfig(
        augment=args.augment,
        target_accuracy=args.target_accuracy,
        max_epochs=args.max_epochs,
        seed=plan.run.seed,
        device=args.device,
    )
    settings = CostSettings(carbon_intensity(country=args.country))
    cache = Path(args.cache_dir)
    started = time.perf_counter()

    def report(i: int, n: int, run) -> None:
        r = run.result
        what = f"{r.epochs} epochs, {r.stop_reason}" if r else f"failed: {run.error}"
        print(
            f"[{i + 1}/{n}] {run.candidate.id}: {what} ({time.perf_counter() - started:.0f} s)",
            file=sys.stderr,
            flush=True,
        )

    validation = validate_plan(
        plan,
        candidates=args.candidates.split(",") if args.candidates else None,
        config=config,
        settings=settings,
        meter=args.meter,
        store=ResultStore(cache),
        runs=RunStore(cache),
        cache_dir=cache,
        on_run=report,
    )
    doc = validation.to_dict()
    analysis = {"loo": loo_analysis(doc["runs"], settings), "probe": probe_accuracy(doc["runs"])}
    meta = {
        "command": "python scripts/validation_study.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "platform": platform.platform(),
        "cpu": doc["environment"]["cpu"],
        "threads": torch.get_num_threads(),
        "device": args.device,
        "energy_methods": "; ".join(
            sorted({r["energy_method"] for r in doc["runs"] if r["energy_method"]})
        ),
    }
    Path(args.out).write_text(
        json.dumps({"meta": meta, "analysis": analysis, "validation": doc}, indent=1, default=str),
        encoding="utf-8",
    )
    text = markdown(doc, analysis, meta)
    if args.markdown:
        Path(args.markdown).write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
