"""Command line: ``python -m resque_core <command> ...`` over the same engine as the app.

Exit codes: 0 success, 2 bad input (one ``error: ...`` line on stderr, no traceback),
3 a candidate is predicted over a budget (``rank --max-kwh / --max-co2-kg``), 130 interrupted.
Commands register themselves with :func:`command`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .errors import ResqueError

__all__ = ["command", "main"]

_COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[..., int]]] = {}


def command(name: str, help: str, configure: Callable[[argparse.ArgumentParser], None]):
    """Register ``fn(args) -> exit code`` as subcommand ``name`` with its argument setup."""

    def register(fn: Callable[[argparse.Namespace], int]):
        _COMMANDS[name] = (help, configure, fn)
        return fn

    return register


class _Parser(argparse.ArgumentParser):
    # argparse prints a usage block; users and scripts get the same one-line form as other errors.
    def error(self, message: str):
        self.exit(2, f"error: {message} (see --help)\n")


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


# ------------------------------------------------------------------ shared option groups
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
        "--cache-dir", help="result cache (default $RESQUE_CACHE_DIR or ~/.cache/resque)"
    )
    g.add_argument(
        "--no-cache", action="store_true", help="compute without reading or writing the cache"
    )
    g.add_argument("--json", action="store_true", help="print one JSON object")


def model_config(args: argparse.Namespace):
    from .data import parse_floats, parse_image_size
    from .pipeline import ModelConfig

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


def run_config(args: argparse.Namespace):
    from .pipeline import RunConfig

    return RunConfig(
        samples_per_class=args.samples_per_class,
        batch_size=args.batch_size,
        device=args.device,
        seed=args.seed,
    )


def open_store(args: argparse.Namespace):
    from .store import ResultStore

    if getattr(args, "no_cache", False):
        return None
    try:
        return ResultStore(args.cache_dir)
    except OSError as e:
        raise ResqueError(
            f"cannot open the cache directory {args.cache_dir!r}: {e.strerror}"
        ) from None


# ------------------------------------------------------------------ layers
def _layers_options(p: argparse.ArgumentParser) -> None:
    add_model_options(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")


@command(
    "layers", "list the layers RESQUE can read, with output shapes and defaults", _layers_options
)
def _layers(args: argparse.Namespace) -> int:
    from .checkpoints import default_layer
    from .pipeline import Scorer

    scorer = Scorer(model_config(args))
    layers = scorer.layers()
    defaults = {kind: default_layer(layers, kind) for kind in ("dist", "task")}
    if args.json:
        _emit_json(
            {
                "checkpoint": args.checkpoint,
                "sha256": scorer.checkpoint_sha256(),
                "layers": [
                    {"name": i.name, "type": i.type, "out_shape": list(i.out_shape)} for i in layers
                ],
                "default": defaults,
            }
        )
        return 0
    width = max(len(i.name) for i in layers)
    for info in layers:
        marks = [k for k, v in defaults.items() if v == info.name]
        tag = f"  <- default ({', '.join(marks)})" if marks else ""
        shape = "x".join(map(str, info.out_shape))
        print(f"{info.name:<{width}}  {info.type:<20} {shape}{tag}")
    return 0


# ------------------------------------------------------------------ score
def _score_options(p: argparse.ArgumentParser) -> None:
    add_model_options(p)
    p.add_argument(
        "--data",
        help="source data SPEC: path (folder, .zip, .npz), builtin:NAME, torchvision:NAME:ROOT",
    )
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--shift", help="synthetic shift NAME:SEVERITY (RESQUE_dist)")
    target.add_argument("--shifted-data", help="real shifted data SPEC (RESQUE_dist)")
    target.add_argument("--task-data", help="labelled data SPEC of a new task (RESQUE_task)")
    p.add_argument("--layer", help="layer name (see the layers command; default per estimator)")
    add_run_options(p)


@command("score", "RESQUE of one candidate (a shift or a new task)", _score_options)
def _score(args: argparse.Namespace) -> int:
    from .errors import ConfigError
    from .pipeline import Scorer

    if (args.shift or args.shifted_data) and not args.data:
        raise ConfigError("--data (the source data) is required with --shift / --shifted-data")
    scorer = Scorer(
        model_config(args),
        run_config(args),
        store=open_store(args),
        source_data=args.data,
        progress=_progress_printer(not args.json),
    )
    if args.shift:
        score = scorer.score_shift(args.data, args.shift, layer=args.layer)
    elif args.shifted_data:
        score = scorer.score_shifted_data(args.data, args.shifted_data, layer=args.layer)
    else:
        score = scorer.score_task(args.task_data, layer=args.layer)
    if args.json:
        _emit_json(score.to_dict())
        return 0
    label = "RESQUE_dist" if score.kind == "dist" else "RESQUE_task"
    print(f"{label} = {score.value:.6f}  (layer {score.layer}, device {score.device})")
    print(
        f"samples: source {score.n_source}, target {score.n_target}; "
        f"{'cached, ' if score.cached else ''}{score.seconds:.2f} s"
    )
    for name, value in score.variants.items():
        print(f"  variant {name:<20} {value:.6f}")
    return 0


# ------------------------------------------------------------------ rank
DEMO_PLAN = Path(__file__).resolve().parent.parent / "assets" / "demo" / "plan.json"


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


def _rank_options(p: argparse.ArgumentParser) -> None:
    add_plan_options(p)
    p.add_argument(
        "--cache-dir", help="result cache (default $RESQUE_CACHE_DIR or ~/.cache/resque)"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--order-by",
        default="resque",
        help="resque (within each kind, default), or epochs, kwh, co2 (cost model, all kinds)",
    )
    p.add_argument(
        "--max-kwh", type=float, help="energy budget: flag candidates predicted above it, exit 3"
    )
    p.add_argument(
        "--max-co2-kg", type=float, help="CO2e budget: flag candidates predicted above it, exit 3"
    )
    add_cost_options(p)


def add_cost_options(p: argparse.ArgumentParser) -> None:
    """Cost-model options shared by rank and validate (defaults live in the engine)."""
    g = p.add_argument_group("cost model (predicted epochs, kWh, CO2)")
    g.add_argument("--country", help="ISO-3 code for the carbon intensity (default: world average)")
    g.add_argument("--region", help="US state or Chinese province (with --country USA or CHN)")
    g.add_argument(
        "--carbon-intensity", type=float, metavar="G_PER_KWH", help="your own g CO2e/kWh"
    )
    g.add_argument("--pue", type=float, default=1.0, help="data-centre PUE (default 1.0)")
    g.add_argument(
        "--meter", default="auto", help="energy meter: auto (codecarbon), codecarbon, nvml, replay"
    )
    g.add_argument("--target-accuracy", type=float, help="held-out accuracy ending retraining")
    g.add_argument("--augment", help="retraining augmentation: reference, no_flip, none")
    g.add_argument("--optimizer", help="retraining optimizer: adam, adamw, sgd")
    g.add_argument("--lr", type=float, help="retraining learning rate")
    g.add_argument("--train-batch-size", type=int, help="retraining batch size")
    g.add_argument(
        "--probe-seconds",
        type=float,
        default=0.5,
        help="length of each of the 3 energy-probe windows per candidate (default 0.5)",
    )


def retrain_config(args: argparse.Namespace, plan, **limits):
    """The retraining procedure from the shared options (engine defaults where not given)."""
    from .retrain import RetrainConfig

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
    from .carbon import carbon_intensity
    from .cost import CostSettings

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
    from .plans import load_plan

    plan = load_plan(DEMO_PLAN if args.demo else args.plan)
    for text in plan.warnings:
        print(f"warning: {text}", file=sys.stderr)
    return plan.with_trust(args.trust_checkpoint)


@command("rank", "score and rank every candidate of a plan", _rank_options)
def _rank(args: argparse.Namespace) -> int:
    from .cost import CostOptions
    from .ranking import COST_ORDERINGS, rank_plan
    from .runs import RunStore

    plan = load_plan_arg(args)
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
    )
    over = ranking.over_budget
    if args.json:
        doc = ranking.to_dict()
        keys = ("run_id", "seconds", "ordered_by", "rank_basis", "candidates", "cost")
        _emit_json({**{k: doc[k] for k in keys}, "over_budget": [r.candidate.id for r in over]})
        return 3 if over else 0
    print(f"plan: {plan.name}  ({len(plan.candidates)} candidates, {ranking.seconds:.1f} s)")
    print(f"order: {doc_basis(ranking)}")
    cost_head = f"  {'epochs':>6} {'kWh':>10} {'kg CO2e':>10}" if cost else ""
    print(f"{'rank':>4}  {'kind':<5} {'id':<22} {'RESQUE':>8}{cost_head}  label")
    for r in ranking.ordered:
        if r.ok:
            p = r.prediction
            cols = ""
            if p is not None:
                cols = f"  {p.epochs:>6.1f} {p.energy_kwh:>10.3g} {p.co2_kg:>10.3g}"
            elif cost:
                cols = f"  {'-':>6} {'-':>10} {'-':>10}"
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


def doc_basis(ranking) -> str:
    from .ranking import ORDERINGS

    return ORDERINGS[ranking.ordered_by][0]


# ------------------------------------------------------------------ entry point
def build_parser() -> argparse.ArgumentParser:
    # Commands defined in their own modules register themselves on import.
    from . import cli_report, cli_validate  # noqa: F401

    parser = _Parser(prog="python -m resque_core", description="RESQUE model-reuse estimates")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name, (help_text, configure, _fn) in _COMMANDS.items():
        configure(sub.add_parser(name, help=help_text, description=help_text))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _COMMANDS[args.command][2](args)
    except ResqueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        # Permissions, a read-only or invalid cache dir, a full disk: the user's to fix.
        where = f" {e.filename}" if e.filename else ""
        print(f"error: cannot use{where}: {e.strerror or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
