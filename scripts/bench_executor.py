"""Executor benchmark: validation of 4 demo candidates on Ray workers vs the local executor.

    python scripts/bench_executor.py [--candidates noise-3,blur-3,contrast-3,digits-parity]
        [--workers 2] [--max-epochs 8] [--device cpu|cuda] [--out FILE]

Both sides retrain the same candidates with the same procedure, seed and device, each with a
fresh cache (so every energy probe and score is computed), one after the other in this process.
The Ray side runs on a local Ray started here with ``--workers`` CPUs (one CPU worker each) or,
with ``--device cuda``, with the machine's GPUs (one GPU worker each, never a fraction). Energy
comes from the replay meter (a fixed 30 W x wall time, not a measurement): the subject here is
wall time. Reported: both wall times, their ratio (Ray / local; below 1 = faster on Ray), the
Ray start-up time (not part of the Ray side's wall time, reported apart), and whether the
epochs agree.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from resque_core.cost.predict import CostSettings  # noqa: E402
from resque_core.executor import make_executor  # noqa: E402
from resque_core.measure.carbon import carbon_intensity  # noqa: E402
from resque_core.plans import DEMO_PLAN, load_plan  # noqa: E402
from resque_core.retrain import RetrainConfig  # noqa: E402
from resque_core.store.cache import ResultStore  # noqa: E402
from resque_core.store.runs import RunStore  # noqa: E402
from resque_core.validation import validate_plan  # noqa: E402


def _validate(plan, ids, config, cache: Path, executor):
    started = time.perf_counter()
    v = validate_plan(
        plan,
        candidates=ids,
        config=config,
        settings=CostSettings(carbon_intensity()),
        meter="replay",
        store=ResultStore(cache),
        runs=RunStore(cache),
        cache_dir=cache,
        recalibrate_after=False,
        executor=executor,
    )
    wall = time.perf_counter() - started
    return wall, [(r.candidate.id, r.result.epochs if r.result else r.error) for r in v.runs]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--candidates", default="noise-3,blur-3,contrast-3,digits-parity")
    ap.add_argument("--workers", type=int, default=2, help="CPU workers of the local Ray")
    ap.add_argument("--max-epochs", type=int, default=8)
    ap.add_argument("--device", default="cpu", help="cpu, or cuda (one Ray worker per GPU)")
    ap.add_argument("--out", help="also write the figures as JSON here")
    args = ap.parse_args()

    plan = load_plan(DEMO_PLAN)
    plan = replace(plan, run=replace(plan.run, device=args.device))
    ids = [c.strip() for c in args.candidates.split(",") if c.strip()]
    config = RetrainConfig(seed=plan.run.seed, device=args.device, max_epochs=args.max_epochs)
    gpus = torch.cuda.device_count() if args.device.startswith("cuda") else 0
    with tempfile.TemporaryDirectory() as tmp:
        local_wall, local_epochs = _validate(plan, ids, config, Path(tmp) / "local", None)
        print(f"local: {local_wall:.1f} s  {local_epochs}", flush=True)

        import ray

        t0 = time.perf_counter()
        ray.init(
            num_cpus=args.workers if not gpus else max(args.workers, gpus),
            num_gpus=gpus,
            include_dashboard=False,
            configure_logging=False,
            log_to_driver=False,
            runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}},
        )
        executor = make_executor("ray")
        startup = time.perf_counter() - t0
        where = executor.describe()
        ray_wall, ray_epochs = _validate(plan, ids, config, Path(tmp) / "ray", executor)
        print(f"{where}: {ray_wall:.1f} s  {ray_epochs}", flush=True)
        ray.shutdown()
    doc = {
        "candidates": ids,
        "max_epochs": args.max_epochs,
        "device": args.device,
        "ray": where,
        "local_wall_s": round(local_wall, 2),
        "ray_wall_s": round(ray_wall, 2),
        "ratio_ray_over_local": round(ray_wall / local_wall, 3),
        "ray_startup_s": round(startup, 2),
        "epochs_local": local_epochs,
        "epochs_ray": ray_epochs,
        "epochs_agree": local_epochs == ray_epochs,
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "torch_threads_local": torch.get_num_threads(),
            "gpus": [torch.cuda.get_device_name(i) for i in range(gpus)],
            "load_average": os.getloadavg(),
        },
    }
    print(json.dumps(doc, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
