"""Option groups and argument readers shared by the commands (model, run, plan, cost)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..errors import ResqueError


def _emit_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=2, sort_keys=False, default=str)
    sys.stdout.write("\n")


def _progress_printer(enabled: bool):
    """A progress callback drawing one updating line on stderr (only when stderr is a TTY)."""
    if not (enabled and sys.stderr.isatty()):
        return None

    def show(stage: str, done: int, total: int) -> None:
        width = 30
        filled = int(width * done / max(total, 1))
        sys.stderr.write(f"\r{stage:>10} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return show


def add_model_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("checkpoint")
    g.add_argument(
        "--checkpoint",
        required=True,
        help="state_dict (.pt/.pth), TorchScript or torch.export file",
    )
    g.add_argument(
        "--arch",
        help="architecture of a state_dict (torchvision name or cifar_resnet18, small_cnn)",
    )
    g.add_argument(
        "--num-classes",
        type=int,
        help="classifier outputs (inferred from the state_dict if omitted)",
    )
    g.add_argument(
        "--in-channels", type=int, default=3, help="input channels of the model (default 3)"
    )
    g.add_argument(
        "--trust-checkpoint",
        action="store_true",
        help="allow a pickled model (runs code from the file!)",
    )
    g.add_argument(
        "--image-size", help="model input size, e.g. 32 or 32x28 (default: source data's size)"
    )
    g.add_argument("--mean", default="0.5", help="normalisation mean: one value or one per channel")
    g.add_argument("--std", default="0.5", help="normalisation std: one value or one per channel")


def add_run_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("run")
    g.add_argument("--samples-per-class", type=int, help="cap per class (default: all)")
    g.add_argument("--batch-size", type=int, default=128)
    g.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument(
        "--max-task-samples",
        type=_task_samples,
        default=5000,
        metavar="N|all",
        help="cap on a new task's samples, stratified (default 5000; 'all' = no cap); bounds "
        "k-means' memory and time. Not applied with --compat reference",
    )
    g.add_argument(
        "--flatten",
        action="store_true",
        help="tasks: also the un-pooled RESQUE_task variants (k-means on every activation "
        "value of the layer; slow and memory-heavy on early layers)",
    )
    add_compat_option(g)
    add_cache_option(g)
    g.add_argument(
        "--no-cache", action="store_true", help="compute without reading or writing the cache"
    )
    g.add_argument("--json", action="store_true", help="print one JSON object")


def model_config(args: argparse.Namespace):
    from ..data import parse_floats, parse_image_size
    from ..scoring.scorer import ModelConfig

    return ModelConfig(
        checkpoint=args.checkpoint,
        arch=args.arch,
        num_classes=args.num_classes,
        in_channels=args.in_channels,
        trusted=args.trust_checkpoint,
        image_size=parse_image_size(args.image_size) if args.image_size else None,
        mean=parse_floats(args.mean, name="--mean"),
        std=parse_floats(args.std, name="--std", positive=True),
    )


def _task_samples(text: str) -> int | None:
    if text.strip().lower() == "all":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a whole number or 'all', got {text!r}"
        ) from None


def add_compat_option(g) -> None:
    """``--compat project|reference``: the project's corrected pipeline (default) or the
    reference code's, to set results beside the paper's (docs/METHOD.md)."""
    g.add_argument(
        "--compat",
        choices=("project", "reference"),
        help="project (default): corrected corruptions and pooling; reference: the reference "
        "code's (noise wraps around, whole-pixel salt-and-pepper, scipy blur, 8-bit rounding, "
        "feature-axis pooling of token layers, every task sample); see docs/METHOD.md",
    )


def run_config(args: argparse.Namespace):
    from ..scoring.scorer import RunConfig

    return RunConfig(
        samples_per_class=args.samples_per_class,
        batch_size=args.batch_size,
        device=args.device,
        seed=args.seed,
        max_task_samples=args.max_task_samples,
        flatten=args.flatten,
        compat=args.compat or "project",
    )


def with_compat(plan, args: argparse.Namespace):
    """``plan`` in the mode of ``--compat`` when it is given, else as the plan says."""
    from dataclasses import replace

    if not getattr(args, "compat", None):
        return plan
    return replace(plan, run=replace(plan.run, compat=args.compat))


def open_store(args: argparse.Namespace):
    from ..store.cache import ResultStore

    if getattr(args, "no_cache", False):
        return None
    try:
        return ResultStore(args.cache_dir)
    except OSError as e:
        raise ResqueError(
            f"cannot open the cache directory {args.cache_dir!r}: {e.strerror}"
        ) from None


def add_cache_option(p) -> None:
    """``--cache-dir`` (a parser or an argument group)."""
    p.add_argument(
        "--cache-dir", help="result cache (default $RESQUE_CACHE_DIR or ~/.cache/resque)"
    )


def add_retrain_options(p: argparse.ArgumentParser) -> None:
    """What every retraining command (validate, calibrate) takes besides its own choice of
    candidates: per-run limits, the cache, ``--json``, the cost model and procedure, the
    executor."""
    p.add_argument("--max-epochs", type=int, help="stop each retraining after N epochs")
    p.add_argument("--time-budget", type=float, help="stop each retraining after S seconds")
    add_cache_option(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_cost_options(p)
    add_executor_options(p)


def retrain_arguments(args: argparse.Namespace, plan) -> dict[str, Any]:
    """The keyword arguments :func:`~resque_core.validation.validate_plan` and
    :func:`~resque_core.calibrating.calibrate_plan` share, from :func:`add_retrain_options`'
    options: procedure, cost settings, meter, stores, executor, a stderr line per run and
    progress on stderr unless ``--json``."""
    from ..store.runs import RunStore

    limits = {}
    if args.max_epochs is not None:
        limits["max_epochs"] = args.max_epochs
    if args.time_budget is not None:
        limits["time_budget_s"] = args.time_budget
    return {
        "config": retrain_config(args, plan, **limits),
        "settings": cost_settings(args),
        "meter": args.meter,
        "store": open_store(args),
        "runs": RunStore(args.cache_dir),
        "cache_dir": args.cache_dir,
        "probe_seconds": args.probe_seconds,
        "on_run": _run_line,
        "progress": _progress_printer(not args.json),
        "executor": open_executor(args),
    }


def _run_line(i: int, n: int, run) -> None:
    r = run.result
    what = (
        f"{r.epochs} epochs, {r.energy_kwh:.3g} kWh, {r.stop_reason}"
        if r is not None
        else f"failed: {run.error}"
    )
    print(f"[{i + 1}/{n}] {run.candidate.id}: {what}", file=sys.stderr, flush=True)


def add_plan_options(p: argparse.ArgumentParser) -> None:
    """``--plan FILE | --demo`` and ``--trust-checkpoint``, for every command that runs a plan: a
    plan file never grants trust, so the flag is the only way to allow a pickled model."""
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--plan", help="plan file (JSON, see README)")
    which.add_argument("--demo", action="store_true", help="the shipped demo plan")
    p.add_argument(
        "--trust-checkpoint",
        action="store_true",
        help="allow the plan's checkpoint to be a pickled model (runs code from the file!)",
    )


def add_cost_options(p: argparse.ArgumentParser) -> None:
    """Cost-model and retraining-procedure options shared by rank, validate and calibrate
    (defaults live in the engine)."""
    g = p.add_argument_group("cost model (predicted epochs, kWh, CO2)")
    g.add_argument("--country", help="ISO-3 code for the carbon intensity (default: world average)")
    g.add_argument(
        "--region",
        help="US state, Canadian province, Chinese province or Nordic bidding zone "
        "(with --country USA, CAN, CHN, SWE, NOR or FIN)",
    )
    g.add_argument(
        "--carbon-intensity", type=float, metavar="G_PER_KWH", help="your own g CO2e/kWh"
    )
    g.add_argument("--pue", type=float, default=1.0, help="data-centre PUE (default 1.0)")
    g.add_argument(
        "--meter", default="auto", help="energy meter: auto (codecarbon), codecarbon, nvml, replay"
    )
    g.add_argument("--target-accuracy", type=float, help="held-out accuracy ending retraining")
    g.add_argument(
        "--augment",
        help="retraining augmentation: project (default), no_flip, reference, reference_task "
        "(the reference code's noise / task transforms), none",
    )
    g.add_argument("--optimizer", help="retraining optimizer: adam, adamw, sgd")
    g.add_argument("--lr", type=float, help="retraining learning rate")
    g.add_argument("--train-batch-size", type=int, help="retraining batch size")
    g.add_argument(
        "--probe-seconds",
        type=float,
        default=0.5,
        help="length of each of the 3 energy-probe windows per candidate (default 0.5)",
    )


def add_executor_options(p: argparse.ArgumentParser) -> None:
    """``--executor local|ray`` and ``--ray-address``: where the units of work run."""
    g = p.add_argument_group("executor (where the work runs)")
    g.add_argument(
        "--executor",
        choices=("local", "ray"),
        default="local",
        help="local: this process (default); ray: a pool of Ray workers, one GPU or CPU each",
    )
    g.add_argument(
        "--ray-address",
        metavar="ADDR",
        help="with --executor ray: auto (the running cluster) or HOST:PORT of its head; "
        "default: start a local Ray with this machine's CPUs and GPUs",
    )


def open_executor(args: argparse.Namespace):
    """The executor of ``--executor`` / ``--ray-address`` (ray is imported only for ``ray``)."""
    from ..executor import make_executor

    return make_executor(args.executor, address=args.ray_address)


def retrain_config(args: argparse.Namespace, plan, **limits):
    """The retraining procedure from the shared options (engine defaults where not given)."""
    from ..retrain import RetrainConfig

    given = {
        "target_accuracy": args.target_accuracy,
        "augment": args.augment,
        "optimizer": args.optimizer,
        "lr": args.lr,
        "batch_size": args.train_batch_size,
    }
    chosen = {k: v for k, v in given.items() if v is not None}
    return RetrainConfig(seed=plan.run.seed, device=plan.run.device, **chosen, **limits)


def cost_settings(args: argparse.Namespace):
    from ..cost.predict import CostSettings
    from ..measure.carbon import carbon_intensity

    intensity = carbon_intensity(
        country=args.country,
        region=args.region,
        override_g_per_kwh=args.carbon_intensity,
        pue=args.pue,
    )
    return CostSettings(intensity)


def load_plan_arg(args: argparse.Namespace):
    """The plan of ``--plan`` / ``--demo`` with the trust of ``--trust-checkpoint``; what the
    plan file said but was ignored goes to stderr as ``warning: ...`` lines."""
    from ..plans import DEMO_PLAN, load_plan

    plan = load_plan(DEMO_PLAN if args.demo else args.plan)
    for text in plan.warnings:
        print(f"warning: {text}", file=sys.stderr)
    return plan.with_trust(args.trust_checkpoint)


def doc_basis(ranking) -> str:
    from ..ranking import ORDERINGS

    return ORDERINGS[ranking.ordered_by][0]
