"""Measured retraining with the replay meter: stopping rules, cancellation, failures, heads."""

import re

import pytest
import torch
from torch import nn

from resque_core.errors import ConfigError, DataError
from resque_core.measure.carbon import carbon_intensity
from resque_core.measure.energy import ReplayMeter
from resque_core.plans import DEMO_DIR
from resque_core.retrain import (
    RetrainConfig,
    RetrainData,
    augment,
    prepare_model,
    probe_epoch_energy,
    retrain,
)

KWH = 3.6e6  # joules


def _model(classes: int = 3) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(16, classes),
    ).eval()


def _data(classes: int = 3, per_class: int = 20, new_head: bool = False) -> RetrainData:
    """Class k = a bright block in quadrant k plus noise: learnable in a few epochs."""
    g = torch.Generator().manual_seed(0)
    xs, ys = [], []
    for k in range(classes):
        x = torch.rand(per_class, 1, 8, 8, generator=g) * 0.3
        r, c = divmod(k % 4, 2)
        x[:, :, r * 4 : r * 4 + 4, c * 4 : c * 4 + 4] += 0.7
        xs.append(x.clamp(0, 1))
        ys.append(torch.full((per_class,), k))
    x, y = torch.cat(xs), torch.cat(ys)
    held = torch.arange(len(y)) % 5 == 0
    return RetrainData(
        x[~held], y[~held], x[held], y[held], classes, lambda t: (t - 0.5) / 0.5, new_head
    )


def _config(**kw) -> RetrainConfig:
    base = {"batch_size": 8, "augment": "none", "device": "cpu", "max_epochs": 3}
    return RetrainConfig(**{**base, **kw})


def _meter() -> ReplayMeter:
    return ReplayMeter(joules=[0.001 * KWH], seconds=1.0)  # 0.001 kWh per window


# ----------------------------------------------------------------------------- stopping
def test_target_met_before_training_needs_zero_epochs():
    res = retrain(_model(), _data(), config=_config(target_accuracy=0.01), meter=_meter())
    assert (res.status, res.epochs, res.reached_target) == ("completed", 0, True)
    assert res.stop_reason == "target accuracy 0.01 reached before training"
    assert res.energy_kwh == 0.0 and not res.censored


def test_target_reached_while_training():
    res = retrain(
        _model(),
        _data(),
        config=_config(target_accuracy=0.9, max_epochs=30, lr=1e-2),
        meter=_meter(),
    )
    assert res.reached_target and 1 <= res.epochs < 30
    assert res.records[-1].held_accuracy >= 0.9
    assert all(r.held_accuracy < 0.9 for r in res.records[:-1])
    assert res.initial_held_accuracy < 0.9


def test_max_epochs_is_censored():
    res = retrain(
        _model(), _data(), config=_config(target_accuracy=1.0, cutoffs=()), meter=_meter()
    )
    assert res.epochs == 3 and res.stop_reason == "max epochs (3) reached"
    assert res.censored and not res.reached_target


def test_cutoff_stops_a_plateau():
    # within 0.99 of an unreachable target from the start: stop 2 epochs later
    config = _config(target_accuracy=1.0, cutoffs=((0.99, 2),), max_epochs=10)
    res = retrain(_model(), _data(), config=config, meter=_meter())
    assert res.epochs == 2
    assert res.stop_reason == "cutoff 1: within 0.99 of the target for 2 epochs"
    assert not res.censored


def test_time_budget_stops_after_the_epoch_that_used_it():
    config = _config(target_accuracy=1.0, cutoffs=(), time_budget_s=1e-6)
    res = retrain(_model(), _data(), config=config, meter=_meter())
    assert res.epochs == 1 and res.stop_reason == "time budget of 1e-06 s used"
    assert res.censored


# ----------------------------------------------------------------------------- records
def test_records_carry_measures_energy_and_co2():
    intensity = carbon_intensity(override_g_per_kwh=400.0, pue=1.5)
    res = retrain(
        _model(),
        _data(),
        config=_config(target_accuracy=1.0, cutoffs=()),
        meter=_meter(),
        intensity=intensity,
    )
    assert [r.epoch for r in res.records] == [1, 2, 3]
    for r in res.records:
        assert r.energy_kwh == pytest.approx(0.001)
        assert r.co2_kg == pytest.approx(0.001 * 400 * 1.5 / 1000)
        assert r.grad_norm > 0 and r.grad_norm_last > 0
        assert 0 <= r.train_accuracy <= 1 and r.train_loss > 0 and r.held_loss > 0
        assert 0 < r.param_change_prev <= r.param_change_start + 1e-12 or r.epoch > 1
    # RMS change from the start grows; from the previous epoch it is one step's change
    starts = [r.param_change_start for r in res.records]
    assert starts == sorted(starts) and starts[0] == pytest.approx(res.records[0].param_change_prev)
    assert res.energy_kwh == pytest.approx(0.003)
    assert res.co2_kg == pytest.approx(0.003 * 0.6)
    assert res.energy_method.startswith("replay") and res.energy_basis == "replay"
    assert res.param_change == starts[-1]
    assert set(res.param_change_per_tensor) == {"0.weight", "0.bias", "4.weight", "4.bias"}
    doc = res.to_dict()
    assert doc["epochs"] == 3 and len(doc["records"]) == 3 and doc["censored"]


def test_reproducible_and_the_callers_model_is_untouched():
    model = _model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    config = _config(target_accuracy=1.0, cutoffs=(), augment="reference", max_epochs=2)
    a = retrain(model, _data(), config=config, meter=_meter())
    b = retrain(model, _data(), config=config, meter=_meter())
    strip = [(r.train_loss, r.held_accuracy, r.grad_norm, r.param_change_start) for r in a.records]
    assert strip == [
        (r.train_loss, r.held_accuracy, r.grad_norm, r.param_change_start) for r in b.records
    ]
    assert not model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


# ----------------------------------------------------------------------------- partial runs
def test_cancel_keeps_finished_epochs_and_the_unfinished_energy():
    calls = []

    def cancel():
        calls.append(1)
        return len(calls) == 8 + 3  # 6 batches per epoch of 48 at batch 8: mid-epoch 2

    config = _config(target_accuracy=1.0, cutoffs=(), max_epochs=5)
    res = retrain(_model(), _data(), config=config, meter=_meter(), cancel=cancel)
    assert res.status == "cancelled" and res.stop_reason == "cancelled by the user"
    assert res.epochs == 1
    assert res.unfinished_kwh == pytest.approx(0.001)
    assert res.energy_kwh == pytest.approx(0.002)
    assert res.param_change_per_tensor  # measured up to the cancel


class _Fails(nn.Module):
    """Raises on its ``after``-th forward call."""

    def __init__(self, after: int):
        super().__init__()
        self.net, self.after, self.calls = _model(), after, 0

    def forward(self, x):
        self.calls += 1
        if self.calls == self.after:
            raise RuntimeError("out of memory (simulated)")
        return self.net(x)


def test_a_crash_keeps_what_was_measured():
    # forward calls: 1 initial evaluation, 6 steps + 1 evaluation per epoch -> 10 = epoch 2
    config = _config(target_accuracy=1.0, cutoffs=(), max_epochs=5)
    res = retrain(_Fails(after=10), _data(), config=config, meter=_meter())
    assert res.status == "failed"
    assert res.error == "RuntimeError: out of memory (simulated)"
    assert res.epochs == 1 and res.unfinished_kwh == pytest.approx(0.001)


def test_progress_and_epoch_callbacks():
    seen, epochs = [], []
    retrain(
        _model(),
        _data(),
        config=_config(target_accuracy=1.0, cutoffs=(), max_epochs=2),
        meter=_meter(),
        progress=lambda s, d, t: seen.append((s, d, t)),
        on_epoch=lambda r: epochs.append(r.epoch),
    )
    assert epochs == [1, 2]
    assert seen[0] == ("epoch 1", 1, 6) and seen[-1] == ("epoch 2", 6, 6)


# ----------------------------------------------------------------------------- task heads
def test_task_replaces_the_head_with_k_outputs_on_a_copy():
    model = _model(classes=3)
    data = _data(classes=4, new_head=True)
    res = retrain(
        model, data, config=_config(target_accuracy=1.0, cutoffs=(), max_epochs=1), meter=_meter()
    )
    assert res.new_head and res.num_classes == 4 and res.status == "completed"
    assert model[4].out_features == 3  # the caller's head is untouched


def test_prepare_model_seeds_the_new_head():
    model = _model()
    a = prepare_model(model, num_classes=5, seed=7)
    b = prepare_model(model, num_classes=5, seed=7)
    c = prepare_model(model, num_classes=5, seed=8)
    assert a[4].out_features == 5 and a.training
    assert torch.equal(a[4].weight, b[4].weight) and torch.equal(a[4].bias, b[4].bias)
    assert not torch.equal(a[4].weight, c[4].weight)
    assert torch.equal(a[0].weight, model[0].weight) and a[0].weight is not model[0].weight
    bound = 1 / 4  # 1 / sqrt(in_features = 16)
    assert a[4].weight.abs().max() <= bound and a[4].bias.abs().max() <= bound


def test_head_replacement_needs_a_linear():
    conv_only = nn.Sequential(nn.Conv2d(1, 3, 8), nn.Flatten())
    with pytest.raises(ConfigError) as e:
        prepare_model(conv_only, num_classes=4)
    assert str(e.value) == (
        "the model has no nn.Linear classifier head to replace for a new task; retrain it on a "
        "distribution shift, or export a model whose head is an nn.Linear"
    )
    with pytest.raises(ConfigError, match="^a task needs at least 2 classes, got 1$"):
        prepare_model(_model(), num_classes=1)


# ----------------------------------------------------------------------------- augmentation
def test_augmentation_is_seeded_bounded_and_per_sample():
    x = _data().train_x[:16]
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    a, b = augment(x, "reference", g1), augment(x, "reference", g2)
    assert torch.equal(a, b) and a.shape == x.shape
    assert a.min() >= 0 and a.max() <= 1
    assert not torch.equal(a, x)
    assert augment(x, "none", g1) is x
    # one image repeated gets different transforms
    same = x[:1].repeat(4, 1, 1, 1)
    out = augment(same, "no_flip", torch.Generator().manual_seed(0))
    assert not torch.equal(out[0], out[1])


# ----------------------------------------------------------------------------- probe
def test_probe_extrapolates_batches_to_an_epoch():
    # windows: evaluation 100 J (1 eval batch), then 3 training windows of 800 J each; with a
    # long window every training window covers the whole epoch (6 batches)
    meter = ReplayMeter(joules=[100.0, 800.0, 800.0, 800.0], seconds=2.0)
    probe = probe_epoch_energy(_model(), _data(), config=_config(), meter=meter, seconds=60.0)
    assert (probe.train_batches_per_epoch, probe.eval_batches_per_epoch) == (6, 1)
    assert probe.joules_per_epoch == pytest.approx(900.0)
    assert probe.joules_per_epoch_sd == 0.0 and probe.batches_measured == 18
    assert probe.seconds_per_epoch == pytest.approx(4.0)
    assert probe.kwh_per_epoch == pytest.approx(900 / 3.6e6)
    assert probe.basis == "replay" and not meter.active


# ----------------------------------------------------------------------------- input checks
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"optimizer": "lion"}, "unknown optimizer 'lion'; allowed: adam, adamw, sgd"),
        (
            {"augment": "mixup"},
            "unknown augmentation 'mixup'; allowed: project, no_flip, reference, reference_task, "
            "none",
        ),
        ({"lr": 0.0}, "learning rate must be > 0, got 0.0"),
        ({"target_accuracy": 1.5}, "target accuracy must be in (0, 1], got 1.5"),
        (
            {"cutoffs": ((0.5, 0),)},
            "cutoff (0.5, 0) must be (accuracy difference in (0, 1), epochs >= 1)",
        ),
        ({"max_epochs": 0}, "max epochs must be at least 1, got 0"),
        ({"time_budget_s": 0.0}, "time budget must be > 0 seconds, got 0.0"),
        ({"batch_size": 0}, "batch size must be at least 1, got 0"),
        ({"held_out_fraction": 1.0}, "held-out fraction must be in (0, 1), got 1.0"),
    ],
)
def test_config_messages(kwargs, message):
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        RetrainConfig(**kwargs)


def test_data_checks():
    d = _data()
    bad = RetrainData(d.train_x, d.train_y + 5, d.held_x, d.held_y, 3, d.normalize)
    with pytest.raises(DataError, match=re.escape("a label (7) is out of range for 3 classes")):
        retrain(_model(), bad, config=_config(), meter=_meter())
    empty = RetrainData(d.train_x, d.train_y, d.held_x[:0], d.held_y[:0], 3, d.normalize)
    with pytest.raises(DataError, match=re.escape("the candidate has 48 training and 0 held-out")):
        retrain(_model(), empty, config=_config(), meter=_meter())


# ----------------------------------------------------------------------------- candidate data
DEMO_CHECKPOINT = str(DEMO_DIR / "digits_small_cnn.pt")


def _digits_plan(candidate: dict, **run):
    """The shipped demo model on the built-in digits, with one candidate."""
    from resque_core.plans import plan_from_dict

    return plan_from_dict(
        {
            "version": 1,
            "name": "digits",
            "model": {
                "checkpoint": DEMO_CHECKPOINT,
                "arch": "small_cnn",
                "num_classes": 10,
                "in_channels": 1,
                "image_size": [8, 8],
            },
            "source": "builtin:digits",
            "run": {"device": "cpu", "batch_size": 100, **run},
            "candidates": [candidate],
        }
    )


def _rows(x: torch.Tensor, y: torch.Tensor) -> list[bytes]:
    """Each (label, image) pair as bytes, sorted: equal lists = the same images, bit for bit."""
    flat = x.reshape(len(x), -1).numpy()
    return sorted(
        int(label).to_bytes(8, "little") + row.tobytes() for label, row in zip(y, flat, strict=True)
    )


def test_retraining_a_shift_sees_exactly_the_images_that_were_scored(monkeypatch):
    from resque_core.retrain import candidate_data
    from resque_core.scoring import scorer as pipeline
    from resque_core.scoring.scorer import Scorer

    # seed 3: the seed term of the per-chunk noise seeds counts, not only the chunk number
    plan = _digits_plan({"id": "noise", "kind": "shift", "shift": "gaussian_noise:5"}, seed=3)
    fed = []
    real = pipeline.class_sums

    def recording(model, layer, batches, **kw):
        batches = list(batches)
        fed.append(batches)
        return real(model, layer, iter(batches), **kw)

    monkeypatch.setattr(pipeline, "class_sums", recording)
    scorer = Scorer(plan.resolved_model(), plan.run, source_data=plan.source)
    scorer.score_shift(plan.source, plan.candidates[0].shift)
    clean, shifted = fed  # source (clean role) first, then the corrupted role
    scored = _rows(torch.cat([x for x, _ in shifted]), torch.cat([y for _, y in shifted]))

    ws, seed = scorer.workspace, scorer.run.seed
    data = candidate_data(plan, plan.candidates[0], workspace=ws, seed=seed, config=_config())
    seen = _rows(
        data.normalize(torch.cat([data.train_x, data.held_x])),
        torch.cat([data.train_y, data.held_y]),
    )
    # the corrupted role: 896 of the 1,797 digits, four noise chunks; none of the clean-only part
    assert len(seen) == len(scored) == 896
    assert seen == scored
    assert seen != _rows(torch.cat([x for x, _ in clean]), torch.cat([y for _, y in clean]))

    # a retraining cap picks rows of that corrupted set; their pixels stay the scored ones
    capped = candidate_data(
        plan, plan.candidates[0], workspace=ws, seed=seed, config=_config(max_samples_per_class=20)
    )
    few = _rows(
        capped.normalize(torch.cat([capped.train_x, capped.held_x])),
        torch.cat([capped.train_y, capped.held_y]),
    )
    assert len(few) == 200 and set(few) <= set(scored)
