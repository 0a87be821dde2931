#!/usr/bin/env bash
# One short run on a machine with a CUDA GPU (under 8 minutes): the GPU tests, then the GPU
# benchmark (scripts/bench_engine.py --device cuda). Everything it measures lands in one JSON
# file, $OUT/gpu_check.json (OUT defaults to docs/gpu), with the raw benchmark output beside it,
# so one device run fills the GPU rows of docs/BENCHMARKS.md.
#
#   OUT=/some/dir scripts/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-docs/gpu}"
mkdir -p "$out"
started=$(date +%s)

if ! python -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu_check: no CUDA GPU visible to torch; nothing measured" >&2
    exit 3
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader \
    > "$out/nvidia_smi.txt" 2>&1 || true

# 1. GPU tests: the scorer's GPU path, CUDA corruptions, accuracy on a GPU (at most 4 minutes).
timeout 240 python -m pytest -q -p no:cacheprovider -m gpu \
    tests/scoring/test_gpu_path.py tests/data/test_shifts.py \
    --junitxml="$out/gpu_tests.xml" > "$out/gpu_tests.txt" 2>&1
tests_rc=$?
timeout 60 python -m pytest -q -p no:cacheprovider tests/scoring/test_accuracy.py \
    -k "gpu" >> "$out/gpu_tests.txt" 2>&1
accuracy_rc=$?

# 2. GPU benchmark: the five models, the 20-candidate ranking, the cache hit (at most 5 minutes).
timeout 300 python scripts/bench_engine.py --device cuda --sections models,rank,cache \
    --repeats 3 --rank-images 1024 --out "$out/bench_gpu.json" > "$out/bench_gpu.log" 2>&1
bench_rc=$?

python - "$out" "$tests_rc" "$accuracy_rc" "$bench_rc" "$started" <<'PY'
import json, sys, time
from pathlib import Path

out, tests_rc, accuracy_rc, bench_rc, started = sys.argv[1:]
out = Path(out)
bench = {}
if (out / "bench_gpu.json").is_file():
    bench = json.loads((out / "bench_gpu.json").read_text())
summary = {
    "gpu": (out / "nvidia_smi.txt").read_text().strip(),
    "gpu_tests_exit_code": int(tests_rc),
    "gpu_tests_tail": (out / "gpu_tests.txt").read_text().strip().splitlines()[-3:],
    "accuracy_gpu_test_exit_code": int(accuracy_rc),
    "bench_exit_code": int(bench_rc),
    "wall_s": time.time() - int(started),
    "models": {
        name: {k: m[k] for k in ("ratio_dist", "ratio_task", "target", "dist_images",
                                 "task_images", "dist_layer", "task_layer")}
        for name, m in bench.get("models", {}).items()
    },
    "rank": bench.get("rank"),
    "cache": bench.get("cache"),
    "machine": bench.get("machine"),
}
(out / "gpu_check.json").write_text(json.dumps(summary, indent=2))
print(json.dumps(summary, indent=2))
PY
[ "$tests_rc" -eq 0 ] && [ "$bench_rc" -eq 0 ]
