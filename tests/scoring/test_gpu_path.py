"""The GPU path (skipped without a CUDA GPU): chunks through pinned memory with non-blocking
copies, convolutional models in channels_last, AMP checked against fp32 — the values agree with
the CPU's. Run by scripts/gpu_check.sh on a machine with a GPU."""

from __future__ import annotations

import pytest
import torch

from resque_core.model.checkpoints import load_checkpoint
from resque_core.scoring import ModelConfig, RunConfig, Scorer

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]
DATA = "builtin:digits"


def _scorer(ckpt: str, device: str, **run) -> Scorer:
    cfg = ModelConfig(ckpt, arch="small_cnn", in_channels=1)
    return Scorer(cfg, RunConfig(device=device, seed=3, **run), source_data=DATA, transfer=False)


# Deterministic shifts agree to float error; noise is drawn on the device (same distribution,
# other draws), so it agrees to the noise's spread only.
@pytest.mark.parametrize(
    ("shift", "rel"), [("gaussian_blur:2", 1e-4), ("contrast:4", 1e-4), ("gaussian_noise:3", 0.05)]
)
def test_dist_on_the_gpu_equals_the_cpu(digits_checkpoint, shift, rel):
    cpu = _scorer(digits_checkpoint, "cpu").score_shift(DATA, shift)
    gpu_scorer = _scorer(digits_checkpoint, "cuda")
    gpu = gpu_scorer.score_shift(DATA, shift)
    assert gpu.device.startswith("cuda") and gpu.precision == "fp32"
    # channels_last on the scorer's own copy of a conv model, its inputs follow
    weight = gpu_scorer.checkpoint().model.features.conv1.weight
    assert weight.is_cuda and weight.is_contiguous(memory_format=torch.channels_last)
    assert (gpu.n_source, gpu.n_target) == (cpu.n_source, cpu.n_target)
    assert gpu.value == pytest.approx(cpu.value, rel=rel, abs=1e-6 if rel < 1e-3 else 2e-3)


def test_task_on_the_gpu_equals_the_cpu(digits_checkpoint):
    cpu = _scorer(digits_checkpoint, "cpu").score_task("builtin:digits-parity")
    gpu = _scorer(digits_checkpoint, "cuda").score_task("builtin:digits-parity")
    assert gpu.n_target == cpu.n_target
    assert gpu.value == pytest.approx(cpu.value, abs=1e-3)


def test_amp_is_checked_against_fp32(digits_checkpoint):
    fp32 = _scorer(digits_checkpoint, "cuda").score_shift(DATA, "gaussian_noise:2")
    amp = _scorer(digits_checkpoint, "cuda", amp=True).score_shift(DATA, "gaussian_noise:2")
    assert amp.precision in ("mixed", "fp32")  # fp32 when the first batch disagreed
    assert amp.value == pytest.approx(fp32.value, rel=0.02, abs=1e-3)


def test_a_shared_checkpoint_is_not_changed_by_the_gpu_path(digits_checkpoint):
    shared = load_checkpoint(digits_checkpoint, arch="small_cnn", in_channels=1)
    before = {k: v.clone() for k, v in shared.model.state_dict().items()}
    cfg = ModelConfig(digits_checkpoint, arch="small_cnn", in_channels=1)
    scorer = Scorer(cfg, RunConfig(device="cuda"), source_data=DATA, checkpoint=shared)
    scorer.score_shift(DATA, "gaussian_noise:1")
    assert {p.device.type for p in shared.model.parameters()} == {"cpu"}
    weight = shared.model.features.conv1.weight
    assert weight.is_contiguous()  # still the default layout
    assert all(torch.equal(before[k], v) for k, v in shared.model.state_dict().items())
