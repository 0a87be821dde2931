"""``layers``: the layers RESQUE can read, with output shapes and the default per estimator."""

from __future__ import annotations

import argparse

from ._options import (
    _emit_json,
    add_model_options,
    model_config,
)
from ._registry import command


def _layers_options(p: argparse.ArgumentParser) -> None:
    add_model_options(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")


@command(
    "layers", "list the layers RESQUE can read, with output shapes and defaults", _layers_options
)
def _layers(args: argparse.Namespace) -> int:
    from ..model import default_layer
    from ..scoring.scorer import Scorer

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
