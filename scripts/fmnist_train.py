"""Build the Fashion-MNIST study's inputs on the CPU in about a minute: a small CNN, four tasks
made from regrouped labels (plus one task from other data), and the plan that ranks them.

    python scripts/fmnist_train.py --out /tmp/fmnist

Needs the Debian package ``dataset-fashion-mnist`` (``builtin:fashion-mnist``); nothing is
downloaded. Writes into ``--out``:

- ``fmnist_small_cnn.pt``: ``small_cnn`` (1 channel, 10 classes) trained on a seeded, stratified
  subset of the *training* split (``--per-class`` images per class, default 500), Adam (lr 1e-3,
  weight decay 1e-5), batch 64, ``--epochs`` epochs (default 3), no augmentation, one thread;
- ``task-*.npz``: tasks on *test-split* images (never seen in training), ``--task-per-class``
  images per original class, relabelled: ``top-bottom-shoe-bag`` (4 groups), ``upper-body``
  (2 groups), ``parity`` (label mod 2: an arbitrary split), ``mod3`` (label mod 3) and
  ``digits`` (scikit-learn's handwritten digits, 8x8 resized by the engine: other data);
- ``plan.json``: source ``builtin:fashion-mnist:test`` capped at ``--source-per-class`` images
  per class; shifts: seven corruption families at severities 1, 3 and 5; the five tasks;
- ``manifest.json``: what was trained, on what, how long it took and its held-out accuracy.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from resque_core._util import sha256_file  # noqa: E402
from resque_core.data import Preprocess, load_data, subsample_per_class  # noqa: E402
from resque_core.model.archs import build_model  # noqa: E402

FAMILIES = (
    "gaussian_noise",
    "impulse_noise",
    "gaussian_blur",
    "contrast",
    "rotation",
    "pixelate",
    "fog",
)
SEVERITIES = (1, 3, 5)
GROUPS = {
    # T-shirt, Trouser, Pullover, Dress, Coat, Sandal, Shirt, Sneaker, Bag, Ankle boot
    "top-bottom-shoe-bag": ((0, 2, 4, 6), (1, 3), (5, 7, 9), (8,)),
    "upper-body": ((0, 2, 4, 6), (1, 3, 5, 7, 8, 9)),
    "parity": ((0, 2, 4, 6, 8), (1, 3, 5, 7, 9)),
    "mod3": ((0, 3, 6, 9), (1, 4, 7), (2, 5, 8)),
}


def _inputs(pre: Preprocess, images: torch.Tensor) -> torch.Tensor:
    return pre.normalize(pre.to_unit(images, device=torch.device("cpu")))


@torch.no_grad()
def _accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    hits = sum(
        int((model(x[i : i + 512]).argmax(1) == y[i : i + 512]).sum())
        for i in range(0, len(x), 512)
    )
    return hits / len(y)


def train(out: Path, *, per_class: int, epochs: int, seed: int) -> dict:
    torch.manual_seed(seed)
    data = load_data("builtin:fashion-mnist")
    labels = data.labels.numpy()
    keep = subsample_per_class(labels, per_class, seed=seed)
    rng = np.random.default_rng(seed)
    rng.shuffle(keep)
    n_held = len(keep) // 5
    held, fit = keep[:n_held], keep[n_held:]
    pre = Preprocess(image_size=(28, 28), channels=1)
    x_fit, y_fit = _inputs(pre, data.images[fit]), data.labels[fit]
    x_held, y_held = _inputs(pre, data.images[held]), data.labels[held]
    model = build_model("small_cnn", num_classes=10, in_channels=1)
    optim = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-5)
    gen = torch.Generator().manual_seed(seed)
    started = time.perf_counter()
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(y_fit), generator=gen)
        for i in range(0, len(order), 64):
            b = order[i : i + 64]
            optim.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(model(x_fit[b]), y_fit[b]).backward()
            optim.step()
    seconds = time.perf_counter() - started
    path = out / "fmnist_small_cnn.pt"
    torch.save(model.eval().state_dict(), path)
    return {
        "file": path.name,
        "sha256": sha256_file(path),
        "arch": "small_cnn",
        "data": "builtin:fashion-mnist (training split)",
        "train_images": len(fit),
        "held_out_images": len(held),
        "epochs": epochs,
        "seconds": round(seconds, 1),
        "held_out_accuracy": round(_accuracy(model, x_held, y_held), 4),
        "seed": seed,
    }


def tasks(out: Path, *, per_class: int, seed: int) -> dict[str, str]:
    test = load_data("builtin:fashion-mnist:test")
    labels = test.labels.numpy()
    # the plan's source caps the test split per class with the run's seed; tasks take other rows
    rows = subsample_per_class(labels, per_class, seed=seed + 1)
    x = test.images.numpy()[rows][:, 0]
    written = {}
    for name, groups in GROUPS.items():
        lookup = {c: g for g, members in enumerate(groups) for c in members}
        y = np.array([lookup[int(v)] for v in labels[rows]], dtype=np.int64)
        path = out / f"task-{name}.npz"
        np.savez(path, x=x, y=y, classes=np.array([f"group {g}" for g in range(len(groups))]))
        written[name] = str(path)
    return written


def plan(out: Path, *, task_files: dict[str, str], source_per_class: int, seed: int) -> Path:
    candidates = [
        {"id": f"{fam}-{sev}", "kind": "shift", "shift": f"{fam}:{sev}"}
        for fam in FAMILIES
        for sev in SEVERITIES
    ]
    candidates += [{"id": name, "kind": "task", "data": path} for name, path in task_files.items()]
    candidates.append({"id": "digits", "kind": "task", "data": "builtin:digits"})
    doc = {
        "version": 1,
        "name": "Fashion-MNIST small CNN: calibration study",
        "model": {
            "checkpoint": "fmnist_small_cnn.pt",
            "arch": "small_cnn",
            "num_classes": 10,
            "in_channels": 1,
            "image_size": [28, 28],
            "mean": [0.5],
            "std": [0.5],
        },
        "source": "builtin:fashion-mnist:test",
        "run": {"samples_per_class": source_per_class, "batch_size": 256, "seed": seed},
        "candidates": candidates,
    }
    path = out / "plan.json"
    path.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--per-class", type=int, default=500, help="training images per class")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--task-per-class", type=int, default=60, help="task images per class")
    p.add_argument("--source-per-class", type=int, default=200, help="source images per class")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = train(args.out, per_class=args.per_class, epochs=args.epochs, seed=args.seed)
    finally:
        torch.set_num_threads(threads)
    files = tasks(args.out, per_class=args.task_per_class, seed=args.seed)
    path = plan(args.out, task_files=files, source_per_class=args.source_per_class, seed=args.seed)
    manifest = {"model": model, "tasks": files, "plan": str(path)}
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n", "utf-8")
    print(json.dumps(model))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
