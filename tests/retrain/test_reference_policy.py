"""The ``reference`` augmentation policies are the reference code's torchvision transforms
(RandomHorizontalFlip, RandomRotation(25), RandomAffine(20, shear=20, scale), ColorJitter) with
the same random draws; ``project`` is the policy that was called ``reference`` before, to float
rounding; stored names read back to the right policy."""

import importlib

import pytest
import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from resque_core.retrain import AUGMENTATIONS, RetrainConfig, augment
from resque_core.retrain.config import stored_augmentation

policy_module = importlib.import_module("resque_core.retrain.augment")

NEAREST = InterpolationMode.NEAREST
SETTINGS = {  # (scale range, colour jitter) of the reference's two JSON configs
    "reference": ((0.8, 1.2), 0.1),
    "reference_task": ((0.75, 1.25), 0.25),
}


def images(c: int, n: int = 6, h: int = 9, w: int = 11, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, c, h, w, generator=torch.Generator().manual_seed(seed))


def by_torchvision(x: torch.Tensor, policy: str, seed: int) -> torch.Tensor:
    """The reference's transforms, image by image, with torchvision's own functions and the
    draws the policy makes (9 uniforms per image, then a random jitter order)."""
    (low, high), j = SETTINGS[policy]
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(x.shape[0], 9, generator=g)
    order = torch.argsort(torch.rand(x.shape[0], 4, generator=g), dim=1)

    def lerp(v, a, b):
        return float(a + (b - a) * v)

    out = []
    for img, r, perm in zip(x, u, order, strict=True):
        if r[0] < 0.5:
            img = TF.horizontal_flip(img)
        img = TF.rotate(img, lerp(r[1], -25, 25), interpolation=NEAREST)
        img = TF.affine(
            img,
            angle=lerp(r[2], -20, 20),
            translate=[0, 0],
            scale=lerp(r[3], low, high),
            shear=[lerp(r[4], -20, 20), 0.0],
            interpolation=NEAREST,
        )
        factors = [lerp(r[k], 1 - j, 1 + j) for k in (5, 6, 7)] + [lerp(r[8], -j, j)]
        adjust = [TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue]
        for k in perm.tolist():
            img = adjust[k](img, factors[k])
        out.append(img)
    return torch.stack(out)


@pytest.mark.parametrize("policy", ["reference", "reference_task"])
@pytest.mark.parametrize("channels", [1, 3])
def test_reference_policies_are_the_reference_transforms(policy, channels):
    x = images(channels)
    ours = augment(x, policy, torch.Generator().manual_seed(4))
    theirs = by_torchvision(x, policy, seed=4)
    # nearest resampling and the jitter agree to float rounding (the hue goes through HSV)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=2e-5)
    assert not torch.equal(ours, x)


def test_reference_policy_shears_and_rescales_which_project_does_not():
    # a centred bright square: project never shears, so its bright area's width and height
    # stay within its 0.9-1.1 scale; the reference's shear and 0.8-1.2 scale spread them wider
    x = torch.zeros(256, 1, 21, 21)
    x[:, :, 6:15, 6:15] = 1.0
    areas = {}
    for policy in ("project", "reference"):
        out = augment(x, policy, torch.Generator().manual_seed(0))
        areas[policy] = (out > 0.5).float().sum((1, 2, 3))
    assert areas["reference"].std() > 1.5 * areas["project"].std()


def test_project_policy_is_the_former_reference_policy():
    x = images(3, n=8, seed=1)
    out = augment(x, "project", torch.Generator().manual_seed(7)).double()
    for got, stored in (
        (out.mean((2, 3)), PROJECT_MEANS),
        (out[:, :, 4, 5], PROJECT_CENTRE),
        (out[:, :, 1, 2], PROJECT_PIXEL_1_2),
    ):
        torch.testing.assert_close(
            got, torch.tensor(stored, dtype=torch.float64), rtol=0, atol=2e-6
        )


# What the policy gave when it was named "reference" (the module of that time): per image and
# channel, the mean, the centre pixel (4, 5) and pixel (1, 2). Compared to float rounding
# rather than by a digest of the bits: the bilinear warp's last bits differ between CPUs
# (an Intel Xeon and an AMD EPYC give different digests for the same code).
PROJECT_MEANS = [
    (0.448074, 0.462934, 0.464714),
    (0.409970, 0.445888, 0.381531),
    (0.363335, 0.374952, 0.347413),
    (0.565700, 0.514358, 0.534678),
    (0.503162, 0.490173, 0.436418),
    (0.469692, 0.499305, 0.469638),
    (0.462294, 0.401584, 0.429891),
    (0.374852, 0.369745, 0.380047),
]
PROJECT_CENTRE = [
    (0.416908, 0.608635, 0.280416),
    (0.295683, 0.308979, 0.563306),
    (0.226453, 0.306708, 0.292366),
    (0.209605, 0.583373, 0.358268),
    (0.346602, 0.570443, 0.637113),
    (0.429192, 0.626937, 0.653552),
    (0.301339, 0.103294, 0.518506),
    (0.315165, 0.556222, 0.212608),
]
PROJECT_PIXEL_1_2 = [
    (0.402386, 0.731356, 0.534682),
    (0.381939, 0.469119, 0.345955),
    (0.665082, 0.680778, 0.611417),
    (0.844597, 0.403140, 0.749436),
    (0.439638, 0.279861, 0.668188),
    (0.207456, 0.906026, 0.293015),
    (0.622997, 0.175021, 0.776284),
    (0.454079, 0.580484, 0.507833),
]


def test_policy_names_and_stored_names():
    assert AUGMENTATIONS == ("project", "no_flip", "reference", "reference_task", "none")
    assert RetrainConfig().augment == "project"
    # the project policy keeps its stored name, so calibrations measured with it still match
    assert RetrainConfig().procedure()["augment"] == "reference"
    assert RetrainConfig(augment="reference").procedure()["augment"] == "reference_t1"
    for name in AUGMENTATIONS:
        stored = RetrainConfig(augment=name).procedure()["augment"]
        assert stored_augmentation(stored) == name
    assert policy_module.augment is augment


# ----------------------------------------------------------------------------- measures
KWH = 3.6e6  # joules


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(16, 3),
    ).eval()


def _data():
    from resque_core.retrain import RetrainData

    g = torch.Generator().manual_seed(0)
    x = torch.rand(45, 1, 8, 8, generator=g)
    y = torch.arange(45) % 3
    for k in range(3):
        x[y == k, :, :4, k * 2 : k * 2 + 3] += 0.6
    x = x.clamp(0, 1)
    held = torch.arange(45) % 5 == 0
    return RetrainData(x[~held], y[~held], x[held], y[held], 3, lambda t: (t - 0.5) / 0.5)


def _config(**kw) -> RetrainConfig:
    base = {"batch_size": 8, "augment": "none", "device": "cpu", "max_epochs": 2, "cutoffs": ()}
    return RetrainConfig(**{**base, "target_accuracy": 1.0, **kw})


def test_reference_measures_sit_beside_the_headlines():
    from resque_core.measure.energy import ReplayMeter
    from resque_core.retrain import retrain

    # training windows 0.003 kWh, evaluation windows 0.001 kWh, alternating
    meter = ReplayMeter(joules=[0.003 * KWH, 0.001 * KWH], seconds=1.0)
    res = retrain(_model(), _data(), config=_config(meter_training=True), meter=meter)
    assert res.epochs == 2 and res.status == "completed"
    for r in res.records:
        assert r.train_energy_kwh == pytest.approx(0.003)
        assert r.energy_kwh == pytest.approx(0.004)  # the headline still covers both windows
    ref = res.reference_measures
    assert ref["train_energy_kwh"] == pytest.approx(0.006)
    assert res.energy_kwh == pytest.approx(0.008)
    last = res.records[-1]
    assert ref["grad_norm_last"] == last.grad_norm_last > 0
    per_tensor = res.param_change_per_tensor
    assert ref["param_change_tensor_mean"] == pytest.approx(
        sum(per_tensor.values()) / len(per_tensor)
    )
    # the pooled RMS weights tensors by size; the per-tensor mean weights them equally
    assert ref["param_change_tensor_mean"] != pytest.approx(last.param_change_start)
    assert res.to_dict()["reference_measures"] == ref


def test_without_meter_training_one_window_per_epoch_and_no_training_energy():
    from resque_core.measure.energy import ReplayMeter
    from resque_core.retrain import retrain

    meter = ReplayMeter(joules=[0.001 * KWH], seconds=1.0)
    res = retrain(_model(), _data(), config=_config(), meter=meter)
    assert [r.energy_kwh for r in res.records] == pytest.approx([0.001, 0.001])
    assert res.reference_measures["train_energy_kwh"] is None
    assert all(r.train_energy_kwh is None for r in res.records)
    assert "meter_training" not in _config(meter_training=True).procedure()


def test_a_model_already_at_the_target_counts_one_epoch_the_reference_way():
    from resque_core.measure.energy import ReplayMeter
    from resque_core.retrain import retrain

    meter = ReplayMeter(joules=[1.0], seconds=1.0)
    res = retrain(_model(), _data(), config=_config(target_accuracy=0.01), meter=meter)
    assert res.epochs == 0 and res.reached_target
    assert res.reference_measures["epochs"] == 1
