"""``score``: RESQUE of one candidate (a shift, real shifted data or a new task)."""

from __future__ import annotations

import argparse

from ._options import (
    _emit_json,
    _progress_printer,
    add_model_options,
    add_run_options,
    model_config,
    open_store,
    run_config,
)
from ._registry import command


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
    from ..errors import ConfigError
    from ..scoring.scorer import Scorer

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
