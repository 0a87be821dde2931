"""End to end: checkpoint + data + candidate -> RESQUE, cached by content."""

import numpy as np
import pytest

from resque_core.scoring.scorer import ModelConfig, RunConfig, Scorer
from resque_core.store.cache import ResultStore


def _scorer(ckpt, tmp_path=None, **run):
    store = ResultStore(tmp_path / "c") if tmp_path is not None else None
    cfg = ModelConfig(ckpt, arch="small_cnn", in_channels=1)
    return Scorer(cfg, RunConfig(**run), store=store, source_data="builtin:digits")


def test_dist_grows_with_severity_for_noise_blur_and_impulse(digits_checkpoint):
    scorer = _scorer(digits_checkpoint)
    for shift in ("gaussian_noise", "gaussian_blur", "impulse_noise"):
        values = [scorer.score_shift("builtin:digits", f"{shift}:{s}").value for s in (1, 3, 5)]
        assert values[0] < values[1] < values[2], (shift, values)
        assert all(0 <= v <= 1 for v in values)


def test_dist_result_fields(digits_checkpoint):
    score = _scorer(digits_checkpoint).score_shift("builtin:digits", "gaussian_noise:2")
    assert score.kind == "dist" and not score.cached
    assert set(score.per_class) == {str(d) for d in range(10)}
    # clean = split 0 + 2 (70%), shifted = split 1 + 2 (50%) of 1,797 digits
    assert abs(score.n_source - 0.7 * 1797) < 15 and abs(score.n_target - 0.5 * 1797) < 15
    assert score.layer == "features.conv3" or score.layer.endswith("conv3")
    assert score.device == "cpu" and score.precision == "fp32"


def test_batch_size_does_not_change_the_value(digits_checkpoint):
    # 40 per class = 400 images: several 256-image shift chunks, batches that straddle them.
    run = {"samples_per_class": 40}
    a = _scorer(digits_checkpoint, batch_size=7, **run).score_shift(
        "builtin:digits", "shot_noise:4"
    )
    b = _scorer(digits_checkpoint, batch_size=300, **run).score_shift(
        "builtin:digits", "shot_noise:4"
    )
    assert a.value == pytest.approx(b.value, abs=1e-6)


def test_identical_real_shift_is_zero(digits_checkpoint, digits_npz):
    score = _scorer(digits_checkpoint).score_shifted_data("builtin:digits", digits_npz)
    assert score.value == pytest.approx(0.0, abs=1e-5)
    assert score.n_source == score.n_target == 1797


def test_repeat_in_a_new_scorer_comes_from_the_cache_without_loading(digits_checkpoint, tmp_path):
    first = _scorer(digits_checkpoint, tmp_path).score_shift("builtin:digits", "contrast:3")
    again = _scorer(digits_checkpoint, tmp_path)
    hit = again.score_shift("builtin:digits", "contrast:3")
    assert hit.cached and hit.value == first.value and hit.per_class == first.per_class
    assert again.workspace._ckpt is None  # the model was never loaded
    assert hit.seconds < first.compute_seconds


def test_source_side_is_shared_between_shift_candidates(digits_checkpoint, tmp_path):
    scorer = _scorer(digits_checkpoint, tmp_path)
    scorer.score_shift("builtin:digits", "gaussian_noise:1")
    n_after_first = len(scorer._sums)
    scorer.score_shift("builtin:digits", "gaussian_noise:2")
    assert len(scorer._sums) == n_after_first + 1  # only the shifted side was added


def test_task_variants_and_relabel_invariance(digits_checkpoint, tmp_path):
    from resque_core.data import load_data

    digits = load_data("builtin:digits")
    x = digits.images[:, 0].numpy()
    y = digits.labels.numpy()
    parity = tmp_path / "parity.npz"
    np.savez(parity, x=x, y=y % 2)
    swapped = tmp_path / "swapped.npz"
    np.savez(swapped, x=x, y=1 - y % 2)
    pooled_only = _scorer(digits_checkpoint).score_task(str(parity))
    assert set(pooled_only.variants) == {"centroid/pooled", "k-means++/pooled"}  # the default
    scorer = _scorer(digits_checkpoint, flatten=True)
    score = scorer.score_task(str(parity))
    assert score.kind == "task" and score.n_target == 1797 and score.n_source == 0
    assert set(score.variants) == {
        "centroid/pooled",
        "k-means++/pooled",
        "centroid/flattened",
        "k-means++/flattened",
    }
    assert score.value == pooled_only.value  # the headline does not depend on the option
    assert 0 <= score.value < 2
    assert scorer.score_task(str(swapped)).value == pytest.approx(score.value, abs=1e-9)
    # The model's own label space clusters much better than a parity split of it.
    assert scorer.score_task("builtin:digits").value < score.value


def test_samples_per_class_caps_each_class(digits_checkpoint):
    score = _scorer(digits_checkpoint, samples_per_class=20).score_task("builtin:digits")
    assert score.n_target == 200
