"""Measure how far the project's default pipeline is from the reference code's, on the demo.

Prints, as Markdown tables for docs/METHOD.md:

1. RESQUE of the demo's noise, salt-and-pepper and blur candidates (severities 1-5) in both compat
   modes, and the ratio reference / project;
2. pixel-level differences of the corruptions on the demo's digits (fraction of pixels touched by
   salt-and-pepper, largest difference of the two blurs, on the border and inside, and the
   8-bit truncation's largest change);
3. one short retraining of the demo model on the ``letters`` task per augmentation policy
   (project, reference_task) with the headline measures and the reference's own beside them.

Usage: python scripts/compat_study.py [--epochs 2] [--device cpu] [--meter auto]
Deterministic on CPU apart from wall time and energy.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import torch

from resque_core.data.shifts import ShiftSpec, apply_shift, to_8_bit
from resque_core.plans import DEMO_PLAN, load_plan
from resque_core.scoring.scorer import Scorer

SHIFTS = ("gaussian_noise", "impulse_noise", "gaussian_blur", "contrast")


def resque_table(plan, device: str) -> None:
    rows = {}
    for mode in ("project", "reference"):
        run = replace(plan.run, device=device, compat=mode)
        scorer = Scorer(plan.resolved_model(), run, source_data=plan.resolve(plan.source))
        for name in SHIFTS:
            for severity in range(1, 6):
                spec = ShiftSpec(name, severity)
                value = scorer.score_shift(plan.resolve(plan.source), spec).value
                rows.setdefault((name, severity, spec.value), {})[mode] = value
        for task in ("builtin:letters", "builtin:digits-parity"):
            rows.setdefault((task, "", ""), {})[mode] = scorer.score_task(task).value
    print("| candidate | parameter | project | reference | reference / project |")
    print("|---|---|---|---|---|")
    for (name, severity, value), v in rows.items():
        label = f"{name}:{severity}" if severity else name
        ratio = v["reference"] / v["project"]
        print(f"| {label} | {value} | {v['project']:.4f} | {v['reference']:.4f} | {ratio:.2f} |")


def pixel_table(plan) -> None:
    from resque_core.data import load_data

    images = load_data(plan.resolve(plan.source)).images[:512].float() / 255
    g = torch.Generator().manual_seed(0)
    rows = []
    spec = ShiftSpec("impulse_noise", level=0.05)
    for mode in ("project", "reference"):
        out = apply_shift(images, spec, generator=g, compat=mode)
        rows.append((f"salt-and-pepper 0.05, {mode}: pixels changed", (out != images).float()))
    grey = torch.rand(256, 3, 32, 32, generator=g)
    for mode in ("project", "reference"):
        out = apply_shift(grey, spec, generator=g, compat=mode)
        touched = (out != to_8_bit(grey) if mode == "reference" else out != grey).any(1)
        rows.append((f"salt-and-pepper 0.05, {mode}: RGB pixels touched", touched.float()))
    print("| measure | value |")
    print("|---|---|")
    for label, mask in rows:
        print(f"| {label} | {100 * float(mask.mean()):.1f} % |")
    for sigma in (0.4, 1.0):
        spec = ShiftSpec("gaussian_blur", level=sigma)
        a = apply_shift(images, spec, generator=g)
        b = apply_shift(images, spec, generator=g, compat="reference")
        diff = (a - b).abs()
        border = diff.clone()
        border[..., 1:-1, 1:-1] = 0
        inner = diff[..., 1:-1, 1:-1]
        print(
            f"| blur sigma {sigma}: largest difference, border / inside (8-bit levels) | "
            f"{float(border.max()) * 255:.1f} / {float(inner.max()) * 255:.1f} |"
        )
    unit = torch.rand(10_000, generator=g)
    print(
        f"| 8-bit truncation of [0, 1] values: mean / largest change (levels) | "
        f"{float((unit - to_8_bit(unit)).mean()) * 255:.2f} / "
        f"{float((unit - to_8_bit(unit)).max()) * 255:.2f} |"
    )


def retrain_table(plan, epochs: int, device: str, meter_name: str) -> None:
    from resque_core.measure.energy import make_meter
    from resque_core.retrain import RetrainConfig, candidate_data, retrain
    from resque_core.scoring.config import resolve_device
    from resque_core.scoring.workspace import Workspace

    run = replace(plan.run, device=device)
    workspace = Workspace(
        plan.resolved_model(), device=resolve_device(device), source_data=plan.resolve(plan.source)
    )
    # a new task: the demo model already meets any target on its own shifted digits
    candidate = plan.candidate("letters")
    print(
        "| policy | epochs | grad norm: mean over batches / last batch | "
        "param change: pooled RMS / mean per tensor | kWh: epoch / training loop | s |"
    )
    print("|---|---|---|---|---|---|")
    for policy in ("project", "reference_task"):
        config = RetrainConfig(
            augment=policy,
            max_epochs=epochs,
            target_accuracy=1.0,
            cutoffs=(),
            device=device,
            meter_training=True,
        )
        data = candidate_data(plan, candidate, workspace=workspace, seed=run.seed, config=config)
        started = time.perf_counter()
        meter = make_meter(meter_name, device=workspace.device)
        res = retrain(workspace.checkpoint().model, data, config=config, meter=meter)
        ref = res.reference_measures
        if not res.records:
            print(f"| {policy} | 0 | {res.status}: {res.stop_reason} {res.error or ''} |")
            continue
        last = res.records[-1]
        print(
            f"| {policy} | {res.epochs} | {last.grad_norm:.3g} / {last.grad_norm_last:.3g} | "
            f"{last.param_change_start:.3g} / {ref['param_change_tensor_mean']:.3g} | "
            f"{res.energy_kwh:.3g} / {ref['train_energy_kwh']:.3g} ({res.energy_basis}) | "
            f"{time.perf_counter() - started:.0f} |"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--meter", default="auto")
    p.add_argument("--skip-retrain", action="store_true")
    args = p.parse_args()
    plan = load_plan(DEMO_PLAN)
    resque_table(plan, args.device)
    print()
    pixel_table(plan)
    if not args.skip_retrain:
        print()
        retrain_table(plan, args.epochs, args.device, args.meter)


if __name__ == "__main__":
    main()
