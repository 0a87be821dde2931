"""Build the demo model zoo: the small CNN shipped in resque_core/demo/, reproducibly, on the CPU.

    python scripts/build_zoo.py                 # full build into resque_core/demo/ (~1 min)
    python scripts/build_zoo.py --fast --out D  # 1 epoch on a subset (tests, CI; a few seconds)
    python scripts/build_zoo.py --fashion       # also a Fashion-MNIST model, if it is installed

The digits model: ``small_cnn`` (1 input channel, 10 classes) trained on scikit-learn's
handwritten digits (8x8), inputs scaled to [0, 1] and normalised with mean 0.5 / std 0.5 (the
engine's :class:`~resque_core.data.preprocess.Preprocess` defaults, so the model sees exactly what
RESQUE
feeds it), on a seeded stratified 80/20 train / held-out split. Adam (lr 1e-3, weight decay 1e-5,
the reference's settings), batch 32, no augmentation. One CPU thread and deterministic algorithms
make the checkpoint bit-identical from run to run; ``manifest.json`` records data,
preprocessing, architecture, split, training settings and time, held-out accuracy, versions and
the checkpoint's SHA-256.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from resque_core._util import sha256_file  # noqa: E402
from resque_core._version import __version__  # noqa: E402
from resque_core.data import Preprocess, load_data, subsample_per_class  # noqa: E402
from resque_core.errors import ResqueError  # noqa: E402
from resque_core.model.archs import build_model  # noqa: E402
from resque_core.scoring.accuracy import HELD_OUT_FRACTION, held_out  # noqa: E402

DEMO_DIR = ROOT / "resque_core" / "demo"
ARCH = "small_cnn"
LR, WEIGHT_DECAY, BATCH_SIZE = 1e-3, 1e-5, 32


@dataclass(frozen=True)
class Recipe:
    """What to train: ``data`` spec, checkpoint file name, epochs of a full and of a fast build,
    and the training images per class a fast build keeps."""

    data: str
    file: str
    epochs: int
    fast_epochs: int = 1
    fast_per_class: int = 30


DIGITS = Recipe(data="builtin:digits", file="digits_small_cnn.pt", epochs=10)
FASHION = Recipe(data="builtin:fashion-mnist", file="fashion_small_cnn.pt", epochs=3)


def _inputs(pre: Preprocess, images: torch.Tensor) -> torch.Tensor:
    return pre.normalize(pre.to_unit(images, device=torch.device("cpu")))


@torch.no_grad()
def _accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    correct = sum(
        int((model(x[i : i + 512]).argmax(dim=1) == y[i : i + 512]).sum())
        for i in range(0, len(x), 512)
    )
    return correct / len(y)


def train(recipe: Recipe, *, out: Path, fast: bool, seed: int) -> dict:
    """Train one model and write its state_dict to ``out / recipe.file``; returns its manifest
    entry. Raises ResqueError if the data cannot be loaded."""
    torch.manual_seed(seed)
    data = load_data(recipe.data)
    labels = data.labels.numpy()
    # The engine's own held-out split, so that evaluate.accuracy on it is a true held-out score.
    held_idx = held_out(labels, fraction=HELD_OUT_FRACTION, seed=seed)
    train_idx = np.setdiff1d(np.arange(len(labels)), held_idx)
    if fast:
        train_idx = train_idx[
            subsample_per_class(labels[train_idx], recipe.fast_per_class, seed=seed)
        ]
    pre = Preprocess(image_size=tuple(data.images.shape[-2:]), channels=1)
    x_train = _inputs(pre, data.images[torch.from_numpy(train_idx)])
    y_train = data.labels[torch.from_numpy(train_idx)]
    x_held = _inputs(pre, data.images[torch.from_numpy(held_idx)])
    y_held = data.labels[torch.from_numpy(held_idx)]

    model = build_model(ARCH, num_classes=data.num_classes, in_channels=1)
    optim = torch.optim.Adam(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    gen = torch.Generator().manual_seed(seed)
    epochs = recipe.fast_epochs if fast else recipe.epochs
    started = time.perf_counter()
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(y_train), generator=gen)
        for i in range(0, len(order), BATCH_SIZE):
            batch = order[i : i + BATCH_SIZE]
            optim.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(model(x_train[batch]), y_train[batch])
            loss.backward()
            optim.step()
    seconds = time.perf_counter() - started
    accuracy = _accuracy(model, x_held, y_held)

    path = out / recipe.file
    torch.save(model.eval().state_dict(), path)
    return {
        "file": recipe.file,
        "sha256": sha256_file(path),
        "bytes": path.stat().st_size,
        "format": "state_dict",
        "arch": ARCH,
        "num_classes": data.num_classes,
        "in_channels": 1,
        "classes": list(data.classes),
        "data": recipe.data,
        "preprocessing": {
            "image_size": list(pre.image_size),
            "channels": 1,
            "scale": "uint8 / 255",
            "mean": list(pre.mean),
            "std": list(pre.std),
        },
        "split": {
            "kind": "stratified",
            "held_out_fraction": HELD_OUT_FRACTION,
            "seed": seed,
            "train": len(train_idx),
            "held_out": len(held_idx),
        },
        "training": {
            "optimizer": "Adam",
            "lr": LR,
            "weight_decay": WEIGHT_DECAY,
            "batch_size": BATCH_SIZE,
            "epochs": epochs,
            "augmentation": None,
            "seed": seed,
            "device": "cpu",
            "threads": torch.get_num_threads(),
            "deterministic": True,
            "fast": fast,
            "seconds": round(seconds, 2),
        },
        "held_out_accuracy": round(accuracy, 4),
    }


def _manifest(out: Path, entries: list[dict]) -> dict:
    """Merge ``entries`` into ``out/manifest.json`` (a model built earlier keeps its entry)."""
    path = out / "manifest.json"
    models = {}
    if path.exists():
        models = {m["file"]: m for m in json.loads(path.read_text(encoding="utf-8"))["models"]}
    models.update({m["file"]: m for m in entries})
    doc = {
        "version": 1,
        "built": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python scripts/build_zoo.py", *sys.argv[1:]]),
        "engine": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "models": sorted(models.values(), key=lambda m: m["file"]),
    }
    path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return doc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEMO_DIR, help="output folder")
    parser.add_argument("--fast", action="store_true", help="1 epoch on a subset (tests, CI)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--fashion",
        action="store_true",
        help="also a Fashion-MNIST model (Debian package dataset-fashion-mnist); skipped if absent",
    )
    args = parser.parse_args(argv)
    if args.seed < 0:
        parser.error(f"--seed must be a non-negative integer, got {args.seed}")

    # Bit-reproducible CPU training: one thread, deterministic kernels (restored afterwards, so
    # that calling main() from a test leaves the process as it was).
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    try:
        args.out.mkdir(parents=True, exist_ok=True)
        entries = [train(DIGITS, out=args.out, fast=args.fast, seed=args.seed)]
        if args.fashion:
            try:
                entries.append(train(FASHION, out=args.out, fast=args.fast, seed=args.seed))
            except ResqueError as e:
                print(f"skipped the Fashion-MNIST model: {e}")
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
    _manifest(args.out, entries)
    for m in entries:
        print(
            f"{args.out / m['file']}: held-out accuracy {m['held_out_accuracy']:.4f}, "
            f"{m['training']['epochs']} epochs in {m['training']['seconds']:.1f} s, "
            f"{m['bytes'] / 1024:.0f} KiB, sha256 {m['sha256'][:12]}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
