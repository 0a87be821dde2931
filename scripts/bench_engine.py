"""Engine benchmarks: prints ratios measured in one run (not a timed test; machines are noisy).

    python scripts/bench_engine.py [--n 512] [--batch-size 128] [--device cpu] [--out FILE]
        [--sections dist,kmeans,cache,transfer,models,rank] [--models NAME,...]

1. RESQUE_dist (synthetic gaussian noise) on a CIFAR-style ResNet-18 at 32x32 vs bare forward
   passes over the same number of images at the same batch size: target ratio <= 1.25.
2. The reference's per-sample approach (batch 1, per class), reimplemented here: same value.
3. k-means + ARI (RESQUE_task, centroid init) for N=10,000, D=512, K=10: target <= 2 s.
4. A repeated request served from the disk cache, in a new process: target <= 0.1 s of compute.
5. All transferability scores together (LogME, LEEP, NCE, H-score, shrinkage H-score, TransRate,
   GBC) for N=5,000, D=512, K=10 vs RESQUE_task's k-means + ARI on the same features: target
   ratio <= 2 (with the default threads, and with both sides on one thread).
6. ``models``: RESQUE_dist and RESQUE_task end to end (a new Scorer per round reading a folder of
   JPEGs: decoding, preprocessing, forward passes, estimator; the checkpoint is loaded once
   beforehand, the interpreter is not timed) vs bare forward passes of the whole model over the
   same images, already decoded and preprocessed, for torchvision resnet18 at 32x32, the CIFAR
   ResNet-18 at 32x32, resnet50 at 224 (N = 256), vit_b_16 at 224 (N = 128) and
   mobilenet_v3_small at 224: targets 1.25 (1.10 for resnet50 and vit_b_16).
7. ``rank``: ranking a 20-candidate plan (the source side shared) vs 20 independent score calls
   (each loading checkpoint and data anew): target ratio <= 0.6.
Sections 6 and 7 interleave their sides round by round and report the median of the per-round
ratios; ``cache`` reports the wall time of the second, cached `score` process (target <= 1 s).
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from resque_core.model.archs import build_model  # noqa: E402
from resque_core.scoring.estimators import resque_task  # noqa: E402
from resque_core.scoring.scorer import ModelConfig, RunConfig, Scorer  # noqa: E402
from resque_core.scoring.transfer import transfer_scores  # noqa: E402


def _best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def _make_data(tmp: Path, n_total: int, seed: int) -> str:
    rng = np.random.default_rng(seed)
    # Smooth random images (low-frequency blobs) so features are not pure noise.
    base = rng.normal(size=(n_total, 4, 4, 3))
    x = np.kron(base, np.ones((1, 8, 8, 1)))
    x = ((x - x.min()) / (x.max() - x.min()) * 255).astype(np.uint8)
    y = np.arange(n_total) % 10
    path = tmp / "bench.npz"
    np.savez(path, x=x, y=y)
    return str(path)


def bench_dist(tmp: Path, n: int, batch_size: int, device: str, repeats: int) -> dict:
    torch.manual_seed(0)
    model = build_model("cifar_resnet18", num_classes=10, in_channels=3).eval()
    ckpt = tmp / "resnet18.pt"
    torch.save(model.state_dict(), ckpt)
    # clean = 70% and shifted = 50% of the data (reference roles): size it so the two add to 2n.
    data = _make_data(tmp, int(round(2 * n / 1.2)), seed=1)
    cfg = ModelConfig(str(ckpt), arch="cifar_resnet18", num_classes=10)
    run = RunConfig(batch_size=batch_size, device=device, seed=0)

    scorer = Scorer(cfg, run, store=None, source_data=data)
    scorer.dataset(data)  # decode the file once; both sides then work from memory
    model_dev = scorer.checkpoint().model
    score = scorer.score_shift(data, "gaussian_noise:3")  # warm-up, also the value
    n_images = score.n_source + score.n_target

    def resque():
        s = Scorer(cfg, run, store=None, source_data=data, checkpoint=scorer.checkpoint())
        s._data = scorer._data  # same in-memory data set: time the estimator, not file I/O
        s.score_shift(data, "gaussian_noise:3")

    # The same images RESQUE reads: the clean role then the shifted role (the two roles share
    # part of the data, so this is more images than the file holds).
    from resque_core.data import synthetic_shift_roles

    dataset = scorer.dataset(data)
    clean_idx, shifted_idx = synthetic_shift_roles(dataset.labels.numpy(), seed=run.seed)
    both = torch.from_numpy(np.concatenate([clean_idx, shifted_idx]))
    assert len(both) == n_images, (len(both), n_images)
    pre = scorer.preprocess(dataset)
    prepared = pre.normalize(pre.to_unit(dataset.images[both], device=scorer.device))

    def bare():
        with torch.inference_mode():
            for i in range(0, n_images, batch_size):
                model_dev(prepared[i : i + batch_size])

    # Interleaved rounds, so that load from other processes hits both sides alike; the ratio is
    # the median of the per-round ratios, the times the best of the rounds.
    rounds = [(_best_of(bare, 1), _best_of(resque, 1)) for _ in range(repeats)]
    t_bare = min(b for b, _ in rounds)
    t_resque = min(r for _, r in rounds)
    ratio = float(np.median([r / b for b, r in rounds]))

    # The reference's approach: per class, batch size 1, hooks, numpy sums.
    def reference():
        return _reference_value(scorer, data)

    t0 = time.perf_counter()
    ref_value = reference()
    t_ref = time.perf_counter() - t0
    return {
        "images": n_images,
        "batch_size": batch_size,
        "bare_forward_s": t_bare,
        "resque_dist_s": t_resque,
        "ratio_resque_over_bare": ratio,
        "ratio_rounds": [r / b for b, r in rounds],
        "reference_per_sample_s": t_ref,
        "speedup_over_reference": t_ref / t_resque,
        "value": score.value,
        "reference_value": ref_value,
        "abs_diff": abs(score.value - ref_value),
    }


def _reference_value(scorer: Scorer, data: str) -> float:
    """RESQUE_dist as the reference computes it: per class, one image at a time."""
    from resque_core import data as data_mod
    from resque_core.data.shifts import parse_shift, shifted_chunks

    images = scorer.dataset(data)
    pre = scorer.preprocess(images)
    model = scorer.checkpoint().model
    layer = scorer.resolve_layer(None, "dist", pre.image_size)
    labels = images.labels.numpy()
    seed = scorer.run.seed
    clean_idx, shifted_idx = data_mod.synthetic_shift_roles(labels, seed=seed)
    # The engine's own shifted pixels: the same chunked, seeded loop the scorer runs.
    chunks = shifted_chunks(
        images.images,
        shifted_idx,
        parse_shift("gaussian_noise:3"),
        to_unit=lambda u: pre.to_unit(u, device=scorer.device),
        seed=seed,
    )
    shifted_x = torch.cat([pre.normalize(x) for _, x in chunks])
    clean_rows = images.images[torch.from_numpy(clean_idx)]
    clean_x = pre.normalize(pre.to_unit(clean_rows, device=scorer.device))

    acts = {}
    module = dict(model.named_modules())[layer]
    handle = module.register_forward_hook(lambda m, i, o: acts.__setitem__("a", o))
    angles = []
    try:
        for c in range(images.num_classes):
            sums = []
            for x, idx in ((clean_x, clean_idx), (shifted_x, shifted_idx)):
                total = None
                for i in np.flatnonzero(labels[idx] == c):
                    with torch.no_grad():
                        model(x[i : i + 1])
                    v = acts["a"][0].mean(dim=(1, 2)).double().cpu().numpy()
                    total = v if total is None else total + v
                sums.append(total / np.linalg.norm(total))
            cos = np.clip(np.dot(sums[0], sums[1]), -1, 1)
            angles.append(np.arccos(cos) / np.pi)
    finally:
        handle.remove()
    return float(np.mean(angles))


def bench_kmeans(repeats: int) -> dict:
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(10, 512)) * 2
    y = np.repeat(np.arange(10), 1000)
    # Overlapping clusters (RESQUE_task ~ 0.5), so that Lloyd's iterations have work to do.
    x = (centers[y] + rng.normal(scale=40.0, size=(10_000, 512))).astype(np.float32)
    t = _best_of(lambda: resque_task(x, y, seed=0), repeats)
    return {"n": 10_000, "d": 512, "k": 10, "seconds": t, "value": resque_task(x, y, seed=0)}


def bench_transfer(repeats: int) -> dict:
    """Every transferability score vs k-means + ARI on the same features, in interleaved rounds
    (the ratio is the median of the per-round ratios)."""
    rng = np.random.default_rng(0)
    n, d, k = 5000, 512, 10
    centers = rng.normal(size=(k, d)) * 2
    y = np.repeat(np.arange(k), n // k)
    x = (centers[y] + rng.normal(scale=40.0, size=(n, d))).astype(np.float32)
    # Source-model outputs for LEEP and NCE: 10 logits that lean towards the true class.
    logits = (rng.normal(size=(n, k)) + 2.0 * np.eye(k)[y]).astype(np.float32)
    from threadpoolctl import threadpool_limits

    out: dict = {"n": n, "d": d, "k": k}
    # Both sides with the default BLAS/OpenMP threads, then both on one thread: a multi-threaded
    # BLAS on a machine that other jobs load spends its time waiting for cores, one thread does
    # not; the one-thread ratio is the steadier figure.
    for label, limit in (("default_threads", None), ("one_thread", 1)):
        with threadpool_limits(limits=limit):
            rounds = []
            for _ in range(repeats):
                t_scores = _best_of(lambda: transfer_scores(x, y, logits), 1)
                t_kmeans = _best_of(lambda: resque_task(x, y, seed=0), 1)
                rounds.append((t_scores, t_kmeans))
        ratios = [s / km for s, km in rounds]
        out[label] = {
            "scores_s": min(s for s, _ in rounds),
            "kmeans_s": min(km for _, km in rounds),
            "ratio_scores_over_kmeans": float(np.median(ratios)),
            "ratio_rounds": ratios,
        }
    out["values"] = transfer_scores(x, y, logits)
    out["resque_task"] = resque_task(x, y, seed=0)
    return out


# name -> (architecture, image side, images RESQUE_dist reads (clean + shifted roles), rounds)
MODEL_CASES: dict[str, tuple[str, int, int, int]] = {
    "resnet18@32": ("resnet18", 32, 1024, 3),
    "cifar_resnet18@32": ("cifar_resnet18", 32, 512, 3),
    "resnet50@224": ("resnet50", 224, 256, 3),
    "vit_b_16@224": ("vit_b_16", 224, 128, 3),
    "mobilenet_v3_small@224": ("mobilenet_v3_small", 224, 256, 3),
}
TARGETS = {"resnet50@224": 1.10, "vit_b_16@224": 1.10}
# RESQUE alone: the transferability scores a scorer can add from the same passes are left out.
_RESQUE_ONLY = (
    {"transfer": False} if "transfer" in inspect.signature(Scorer.__init__).parameters else {}
)


def _jpeg_folder(root: Path, n: int, side: int, seed: int) -> str:
    """``n`` smooth random RGB images of ``side`` x ``side`` as JPEGs in 10 class folders."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    cells = max(2, side // 8)
    for i in range(n):
        blobs = rng.normal(size=(cells, cells, 3))
        x = np.kron(blobs, np.ones((side // cells + 1, side // cells + 1, 1)))[:side, :side]
        x = ((x - x.min()) / (x.max() - x.min() + 1e-9) * 255).astype(np.uint8)
        folder = root / f"class{i % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(x).save(folder / f"{i:05d}.jpg", quality=90)
    return str(root)


def _case(tmp: Path, name: str, device: str, batch_size: int):
    """(ModelConfig, RunConfig, loaded checkpoint, data folder, images RESQUE_dist reads)."""
    from resque_core.model.checkpoints import load_checkpoint

    arch, side, n_dist, _ = MODEL_CASES[name]
    torch.manual_seed(0)
    model = build_model(arch, num_classes=10, in_channels=3).eval()
    ckpt_path = tmp / f"{name}.pt"
    torch.save(model.state_dict(), ckpt_path)
    del model
    # The clean (70 %) and shifted (50 %) roles overlap: a set of n / 1.2 gives n images read.
    folder = _jpeg_folder(tmp / f"data-{name}", int(round(n_dist / 1.2)), side, seed=1)
    cfg = ModelConfig(str(ckpt_path), arch=arch, num_classes=10, image_size=(side, side))
    run = RunConfig(batch_size=batch_size, device=device, seed=0)
    ckpt = load_checkpoint(str(ckpt_path), arch=arch, num_classes=10)
    return cfg, run, ckpt, folder


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def bench_models(tmp: Path, names: list[str], batch_size: int, device: str) -> dict:
    """Section 6: RESQUE_dist and RESQUE_task end to end vs bare forward, per model."""
    out = {}
    for name in names:
        out[name] = _bench_model(tmp, name, batch_size, device)
        print(
            f"[models] {name}: dist {out[name]['ratio_dist']:.2f}, task "
            f"{out[name]['ratio_task']:.2f} (target {out[name]['target']})",
            file=sys.stderr,
        )
    return out


def _bench_model(tmp: Path, name: str, batch_size: int, device: str) -> dict:
    from resque_core.data import synthetic_shift_roles

    cfg, run, ckpt, folder = _case(tmp, name, device, batch_size)
    warm = Scorer(cfg, run, store=None, source_data=folder, checkpoint=ckpt, **_RESQUE_ONLY)
    dist_score = warm.score_shift(folder, "gaussian_noise:3")  # warm-up, and the value
    task_score = warm.score_task(folder)
    model = warm.checkpoint().model
    dataset = warm.dataset(folder)
    pre = warm.preprocess(dataset)
    clean_idx, shifted_idx = synthetic_shift_roles(dataset.labels.numpy(), seed=run.seed)
    both = torch.from_numpy(np.concatenate([clean_idx, shifted_idx]))
    assert len(both) == dist_score.n_source + dist_score.n_target
    x_dist = pre.normalize(pre.to_unit(dataset.images[both], device=warm.device))
    x_task = pre.normalize(pre.to_unit(dataset.images, device=warm.device))
    assert len(x_task) == task_score.n_target

    def bare(x: torch.Tensor) -> float:
        t0 = time.perf_counter()
        with torch.inference_mode():
            for i in range(0, len(x), batch_size):
                model(x[i : i + batch_size])
        _sync(device)
        return time.perf_counter() - t0

    def resque(kind: str) -> tuple[float, float]:
        # A new scorer: the folder is listed, decoded and preprocessed again, every round.
        s = Scorer(cfg, run, store=None, source_data=folder, checkpoint=ckpt, **_RESQUE_ONLY)
        t0 = time.perf_counter()
        if kind == "dist":
            score = s.score_shift(folder, "gaussian_noise:3")
        else:
            score = s.score_task(folder)
        _sync(device)
        return time.perf_counter() - t0, score.seconds

    rounds = []
    for _ in range(MODEL_CASES[name][3]):
        b_d = bare(x_dist)
        r_d, sec_d = resque("dist")
        b_t = bare(x_task)
        r_t, sec_t = resque("task")
        rounds.append(
            {
                "bare_dist": b_d,
                "dist": r_d,
                "dist_seconds": sec_d,
                "bare_task": b_t,
                "task": r_t,
                "task_seconds": sec_t,
            }
        )

    def med(side: str, bare_side: str) -> float:
        return float(np.median([r[side] / r[bare_side] for r in rounds]))

    return {
        "arch": cfg.arch,
        "image_side": cfg.image_size[0],
        "dist_images": len(x_dist),
        "task_images": len(x_task),
        "batch_size": batch_size,
        "dist_layer": dist_score.layer,
        "task_layer": task_score.layer,
        "dist_value": dist_score.value,
        "task_value": task_score.value,
        "target": TARGETS.get(name, 1.25),
        "ratio_dist": med("dist", "bare_dist"),
        "ratio_task": med("task", "bare_task"),
        "ratio_dist_seconds": med("dist_seconds", "bare_dist"),
        "ratio_task_seconds": med("task_seconds", "bare_task"),
        "rounds": rounds,
    }


_RANK_SHIFTS = (
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "gaussian_blur",
    "brightness",
    "contrast",
    "pixelate",
    "rotation",
    "jpeg",
    "fog",
)


def bench_rank(tmp: Path, batch_size: int, device: str, repeats: int, images: int) -> dict:
    """Section 7: one 20-candidate ranking vs 20 independent score calls (torchvision resnet18
    at 32x32; ``images``: what one RESQUE_dist reads)."""
    from resque_core.plans import plan_from_dict
    from resque_core.ranking import rank_plan
    from resque_core.store.cache import ResultStore
    from resque_core.store.runs import RunStore

    MODEL_CASES["rank:resnet18@32"] = ("resnet18", 32, images, repeats)
    cfg, run, _ckpt, folder = _case(tmp, "rank:resnet18@32", device, batch_size)
    shifts = [f"{n}:{sev}" for n in _RANK_SHIFTS for sev in (1, 4)]
    plan = plan_from_dict(
        {
            "version": 1,
            "name": "bench: 20 shifts",
            "model": {
                "checkpoint": cfg.checkpoint,
                "arch": cfg.arch,
                "num_classes": 10,
                "in_channels": 3,
                "image_size": list(cfg.image_size),
                "mean": [0.5],
                "std": [0.5],
            },
            "source": folder,
            "run": {"batch_size": batch_size, "device": device, "seed": 0},
            "candidates": [
                {"id": f"c{i:02d}", "kind": "shift", "shift": sh} for i, sh in enumerate(shifts)
            ],
        }
    )

    def ranked(i: int) -> float:
        d = tmp / f"rank-{i}"
        t0 = time.perf_counter()
        ranking = rank_plan(plan, store=ResultStore(d / "cache"), runs=RunStore(d / "cache"))
        _sync(device)
        assert all(r.ok for r in ranking.results), [r.error for r in ranking.results]
        return time.perf_counter() - t0

    def independent() -> float:
        t0 = time.perf_counter()
        for sh in shifts:
            Scorer(cfg, run, store=None, source_data=folder).score_shift(folder, sh)
        _sync(device)
        return time.perf_counter() - t0

    rounds = [(ranked(i), independent()) for i in range(repeats)]
    return {
        "candidates": len(shifts),
        "arch": cfg.arch,
        "images_in_source_set": len(Scorer(cfg, run, source_data=folder).dataset(folder)),
        "rank_s": [r for r, _ in rounds],
        "independent_s": [i for _, i in rounds],
        "ratio_rank_over_independent": float(np.median([r / i for r, i in rounds])),
        "target": 0.6,
    }


def bench_cache(tmp: Path) -> dict:
    torch.manual_seed(0)
    ckpt = tmp / "cnn.pt"
    torch.save(build_model("small_cnn", num_classes=10, in_channels=1).state_dict(), ckpt)
    cmd = [
        sys.executable,
        "-m",
        "resque_core",
        "score",
        "--checkpoint",
        str(ckpt),
        "--arch",
        "small_cnn",
        "--in-channels",
        "1",
        "--data",
        "builtin:digits",
        "--shift",
        "gaussian_noise:3",
        "--cache-dir",
        str(tmp / "cache"),
        "--json",
    ]
    out = []
    for _ in range(4):  # the first computes; the others are cache hits in new processes
        t0 = time.perf_counter()
        res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=True)
        out.append((json.loads(res.stdout), time.perf_counter() - t0))
    (cold, cold_wall), *warm_runs = out
    warm = warm_runs[0][0]
    probe = subprocess.run(
        [sys.executable, "-c", "import sys; import resque_core.cli; print('torch' in sys.modules)"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    return {
        "cold_compute_s": cold["seconds"],
        "cached_compute_s": warm["seconds"],
        "cached": all(w["cached"] for w, _ in warm_runs),
        "cold_process_wall_s": cold_wall,
        "cached_process_wall_s": float(np.median([t for _, t in warm_runs])),
        "cached_process_wall_rounds": [t for _, t in warm_runs],
        "cached_handler_wall_s": warm.get("wall_s"),
        "cli_import_loads_torch": probe.stdout.strip() == "True",
        "same_value": all(cold["value"] == w["value"] for w, _ in warm_runs),
    }


def bench_costs(tmp: Path, repeats: int) -> dict:
    """Section 'costs': the demo plan ranked cold (fresh cache) by RESQUE alone, then cold with
    predicted costs (energy probes, calibration signals; the Ranking page's cost options),
    alternating; the ratio is the median of the per-round ratios (goal: <= 2)."""
    from resque_core.cost import CostOptions, CostSettings
    from resque_core.measure.carbon import carbon_intensity
    from resque_core.plans import DEMO_PLAN, load_plan
    from resque_core.ranking import rank_plan
    from resque_core.retrain import RetrainConfig
    from resque_core.store.cache import ResultStore

    plan = load_plan(DEMO_PLAN)
    rounds = []
    for r in range(repeats):
        row = {}
        for side in ("ranking", "costs"):
            folder = tmp / f"costs-{r}-{side}"
            cost = None
            if side == "costs":
                cost = CostOptions(
                    settings=CostSettings(carbon_intensity()),
                    procedure=RetrainConfig(seed=plan.run.seed, device="cpu"),
                    cache_dir=str(folder),
                )
            t0 = time.perf_counter()
            ranking = rank_plan(plan, store=ResultStore(folder), cost=cost)
            row[side] = time.perf_counter() - t0
            row[f"{side}_scored"] = sum(1 for c in ranking.results if c.ok)
        row["ratio"] = row["costs"] / row["ranking"]
        rounds.append(row)
        print(f"[costs] round {r + 1}: {row}", file=sys.stderr)
    return {
        "candidates": len(plan.candidates),
        "rounds": rounds,
        "ratio_costs_over_ranking": float(np.median([x["ratio"] for x in rounds])),
        "target": 2.0,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=512, help="images per side (clean, shifted)")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", help="also write the results as JSON here")
    ap.add_argument(
        "--sections",
        default="dist,kmeans,cache,transfer,models,rank,costs",
        help="comma-separated: dist, kmeans, cache, transfer, models, rank, costs",
    )
    ap.add_argument("--models", default=",".join(MODEL_CASES), help="models for 'models'")
    ap.add_argument("--rounds", type=int, help="rounds per model in 'models' (default: per model)")
    ap.add_argument(
        "--rank-images", type=int, default=512, help="images one RESQUE_dist reads in 'rank'"
    )
    args = ap.parse_args()
    sections = set(args.sections.split(","))
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        results = {
            "machine": {
                "platform": platform.platform(),
                "cpu_threads": torch.get_num_threads(),
                "cpus": os.cpu_count(),
                "torch": torch.__version__,
                "device": args.device,
                "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            },
        }
        started = time.perf_counter()
        if "dist" in sections:
            results["dist"] = bench_dist(tmp, args.n, args.batch_size, args.device, args.repeats)
        if "kmeans" in sections:
            results["kmeans"] = bench_kmeans(args.repeats)
        if "cache" in sections:
            results["cache"] = bench_cache(tmp)
        if "transfer" in sections:
            results["transfer"] = bench_transfer(args.repeats)
        if "models" in sections:
            if args.rounds:
                for name, (arch, side, n, _) in list(MODEL_CASES.items()):
                    MODEL_CASES[name] = (arch, side, n, args.rounds)
            names = [m for m in args.models.split(",") if m]
            results["models"] = bench_models(tmp, names, args.batch_size, args.device)
        if "rank" in sections:
            results["rank"] = bench_rank(
                tmp, args.batch_size, args.device, min(args.repeats, 2), args.rank_images
            )
        if "costs" in sections:
            results["costs"] = bench_costs(tmp, args.repeats)
        results["total_s"] = time.perf_counter() - started
    print(json.dumps(results, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))
    _summary(results)


def _summary(results: dict) -> None:
    for name, m in results.get("models", {}).items():
        print(
            f"{name}: RESQUE_dist / bare = {m['ratio_dist']:.2f}, RESQUE_task / bare = "
            f"{m['ratio_task']:.2f} (target <= {m['target']}); {m['dist_images']} / "
            f"{m['task_images']} images"
        )
    if "rank" in results:
        r = results["rank"]
        print(
            f"rank of {r['candidates']} candidates / {r['candidates']} independent calls = "
            f"{r['ratio_rank_over_independent']:.2f} (target <= 0.6)"
        )
    if "dist" not in results:
        if "cache" in results:
            c = results["cache"]
            print(f"cache hit in a new process: {c['cached_process_wall_s']:.2f} s wall (<= 1)")
        return
    d = results["dist"]
    print(
        f"\nRESQUE_dist / bare forward = {d['ratio_resque_over_bare']:.3f} (target <= 1.25); "
        f"{d['images']} images, batch {d['batch_size']}; per-sample reference "
        f"{d['reference_per_sample_s']:.2f} s = {d['speedup_over_reference']:.1f}x slower, "
        f"|value diff| = {d['abs_diff']:.2e}"
    )
    if "kmeans" in results:
        print(
            f"k-means + ARI, N=10,000 D=512 K=10: {results['kmeans']['seconds']:.3f} s "
            "(target <= 2)"
        )
    if "cache" in results:
        c = results["cache"]
        print(
            f"cache hit in a new process: {c['cached_compute_s'] * 1000:.1f} ms of compute, "
            f"process wall {c['cached_process_wall_s']:.2f} s (target <= 1 s)"
        )
    for label, t in results.get("transfer", {}).items():
        if isinstance(t, dict) and "ratio_scores_over_kmeans" in t:
            print(
                f"all transferability scores / k-means + ARI, N=5,000 D=512 K=10, {label}: "
                f"{t['ratio_scores_over_kmeans']:.2f} (target <= 2); best times "
                f"{t['scores_s']:.3f} s vs {t['kmeans_s']:.3f} s"
            )


if __name__ == "__main__":
    main()
