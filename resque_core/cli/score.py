"""``score``: RESQUE of one candidate (a shift, real shifted data or a new task).

A repeated request is answered from the cache before torch is imported: the request's identity
is its options plus the content hashes of the checkpoint (remembered by the store per path,
size and mtime) and of the data specs (:func:`~resque_core.data.data_fingerprint`, torch-free),
and whether a GPU is visible (``--device auto``); it maps to the answer the full run printed
(namespace ``cli.score``). Anything else (a miss, a file that changed) takes the full path.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

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
    target.add_argument("--shift", help="synthetic shift NAME:SEVERITY or NAME@VALUE (RESQUE_dist)")
    target.add_argument("--shifted-data", help="real shifted data SPEC (RESQUE_dist)")
    target.add_argument("--task-data", help="labelled data SPEC of a new task (RESQUE_task)")
    p.add_argument("--layer", help="layer name (see the layers command; default per estimator)")
    add_run_options(p)


# Options that do not change the answer (where it is kept, how it is printed).
_NOT_IN_REQUEST = ("json", "cache_dir", "no_cache", "command")
_DATA_OPTIONS = ("data", "shifted_data", "task_data")


def _gpu_visible() -> list[Any]:
    """What decides ``--device auto`` without importing torch: the NVIDIA device node and
    CUDA_VISIBLE_DEVICES (a change in either is another request)."""
    return [os.path.exists("/dev/nvidiactl"), os.environ.get("CUDA_VISIBLE_DEVICES")]


def _request_key(args: argparse.Namespace, store) -> str | None:
    """The cache key of this request's answer, from options and content hashes (no torch);
    None when an input cannot be hashed here (the full path then reports it)."""
    from .._util import regular_file
    from ..data.fingerprint import data_fingerprint
    from ..errors import CheckpointError, ResqueError
    from ..store.cache import canonical_key

    parts: dict[str, Any] = {
        k: v
        for k, v in sorted(vars(args).items())
        if k not in _NOT_IN_REQUEST and (v is None or isinstance(v, str | int | float | bool))
    }
    try:
        ckpt = regular_file(args.checkpoint, what="checkpoint", error=CheckpointError)
        parts["checkpoint"] = store.file_sha256(ckpt)
        for name in _DATA_OPTIONS:
            if parts.get(name):
                parts[name] = data_fingerprint(parts[name])
    except (ResqueError, OSError):
        return None
    parts["gpu"] = _gpu_visible()
    return canonical_key("cli.score", parts)


def _answer(doc: dict[str, Any], as_json: bool) -> int:
    if as_json:
        _emit_json(doc)
        return 0
    label = "RESQUE_dist" if doc["kind"] == "dist" else "RESQUE_task"
    print(f"{label} = {doc['value']:.6f}  (layer {doc['layer']}, device {doc['device']})")
    print(
        f"samples: source {doc['n_source']}, target {doc['n_target']}; "
        f"{'cached, ' if doc['cached'] else ''}{doc['seconds']:.2f} s"
    )
    for name, value in doc.get("variants", {}).items():
        print(f"  variant {name:<20} {value:.6f}")
    return 0


@command("score", "RESQUE of one candidate (a shift or a new task)", _score_options)
def _score(args: argparse.Namespace) -> int:
    from ..errors import ConfigError

    started = time.perf_counter()
    if (args.shift or args.shifted_data) and not args.data:
        raise ConfigError("--data (the source data) is required with --shift / --shifted-data")
    store = open_store(args)
    request = _request_key(args, store) if store is not None else None
    if request is not None and (hit := store.get(request)) is not None:
        looked_up = time.perf_counter()
        doc = {**hit[0], "cached": True}
        doc["seconds"] = time.perf_counter() - looked_up
        doc["wall_s"] = time.perf_counter() - started
        return _answer(doc, args.json)

    from ..scoring.scorer import Scorer

    scorer = Scorer(
        model_config(args),
        run_config(args),
        store=store,
        source_data=args.data,
        progress=_progress_printer(not args.json),
    )
    if args.shift:
        score = scorer.score_shift(args.data, args.shift, layer=args.layer)
    elif args.shifted_data:
        score = scorer.score_shifted_data(args.data, args.shifted_data, layer=args.layer)
    else:
        score = scorer.score_task(args.task_data, layer=args.layer)
    doc = score.to_dict()
    doc["wall_s"] = time.perf_counter() - started
    if request is not None:
        store.put(request, {k: v for k, v in doc.items() if k not in ("seconds", "wall_s")})
    return _answer(doc, args.json)
