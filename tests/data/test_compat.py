"""compat="reference": each corruption equals an independent numpy / scipy transcription of the
RESQUE reference code's formula (noise/noise.py, noisy_dataset.py) on small images; raw
parameter specs; the default pipeline's outputs pinned unchanged."""

import hashlib

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter
from torchvision.transforms import ToPILImage

from resque_core.data.shifts import (
    COMPAT_MODES,
    ShiftSpec,
    apply_shift,
    available_shifts,
    parse_shift,
    shift_table,
    shifted_chunks,
    to_8_bit,
)
from resque_core.errors import ShiftError


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def eight_bit_images(n=3, c=3, h=6, w=5, seed=0) -> torch.Tensor:
    """uint8 images read as ToTensor does (k / 255, float32), with black and white pixels."""
    g = gen(seed)
    k = torch.randint(0, 256, (n, c, h, w), generator=g)
    k[:, :, 0, 0], k[:, :, -1, -1] = 0, 255
    return k.to(torch.float32) / 255


def via_pil(image: np.ndarray) -> np.ndarray:
    """The reference's own conversion of one float image [C, H, W]: ToPILImage (x * 255 cast to
    uint8), then ToTensor (/ 255)."""
    pil = ToPILImage()(torch.from_numpy(np.ascontiguousarray(image)))
    arr = np.asarray(pil, dtype=np.uint8)
    arr = arr[:, :, None] if arr.ndim == 2 else arr
    return arr.transpose(2, 0, 1).astype(np.float32) / np.float32(255)


def wrapped(x: np.ndarray) -> np.ndarray:
    """trunc(x * 255) mod 256 / 255, written in numpy."""
    levels = np.mod(np.trunc(x * np.float32(255)).astype(np.int64), 256)
    return levels.astype(np.float32) / np.float32(255)


# ------------------------------------------------------------------ gaussian noise: the wrap


@pytest.mark.parametrize("sigma", [0.04, 0.1, 0.3])
def test_gaussian_noise_wraps_like_the_reference(sigma):
    x = eight_bit_images()
    noise = torch.randn(x.shape, generator=gen(7), dtype=x.dtype).numpy()  # the same draws
    out = apply_shift(
        x, ShiftSpec("gaussian_noise", level=sigma), generator=gen(7), compat="reference"
    )
    noisy = x.numpy() + np.float32(sigma) * noise  # add_gaussian_noise: x + randn * var
    expected = wrapped(noisy)
    np.testing.assert_array_equal(out.numpy(), expected)
    np.testing.assert_array_equal(out.numpy(), np.stack([via_pil(image) for image in noisy]))
    below = (noisy <= -1 / 255) & (noisy > -0.5)
    assert below.any()  # the black corner goes negative at these sigmas...
    assert (out.numpy()[below] > 0.5).all()  # ...and wraps to a bright value
    project = apply_shift(x, ShiftSpec("gaussian_noise", level=sigma), generator=gen(7))
    assert (project.numpy()[below] == 0).all()  # the default clamps instead


# ------------------------------------------------------------------ salt and pepper: whole pixels


@pytest.mark.parametrize("channels", [1, 3])
def test_salt_and_pepper_corrupts_whole_pixels_salt_last(channels):
    x = eight_bit_images(n=4, c=channels, h=7, w=6, seed=1)
    amount = 0.4
    g = gen(3)
    n, _, h, w = x.shape
    mask1 = (torch.rand((n, 1, h, w), generator=g) < amount / 2).numpy()[:, 0]
    mask2 = (torch.rand((n, 1, h, w), generator=g) < amount / 2).numpy()[:, 0]
    expected = x.numpy().copy()
    for i in range(n):  # add_salt_and_pepper, image by image, channel by channel
        for ch in range(channels):
            expected[i, ch][mask1[i]] = 0
            expected[i, ch][mask2[i]] = 1
    expected = np.stack([via_pil(image) for image in expected])
    out = apply_shift(
        x, ShiftSpec("impulse_noise", level=amount), generator=gen(3), compat="reference"
    )
    np.testing.assert_array_equal(out.numpy(), expected)
    assert (mask1 & mask2).any()  # both masks hit some pixel: salt won there
    hit = (out.numpy() != x.numpy()).any(axis=1)
    assert ((out.numpy() == 0).all(axis=1) | (out.numpy() == 1).all(axis=1))[hit].all()


def test_salt_and_pepper_touches_fewer_pixels_in_the_reference_mode():
    x = torch.full((8, 3, 32, 32), 128 / 255)
    spec = ShiftSpec("impulse_noise", level=0.05)
    touched = {
        mode: float(
            (apply_shift(x, spec, generator=gen(0), compat=mode) != x).any(1).float().mean()
        )
        for mode in COMPAT_MODES
    }
    # per value (project): 1 - 0.95**3 = 14.3 % of pixels; whole pixels: 1 - 0.975**2 = 4.9 %
    assert touched["project"] == pytest.approx(0.143, abs=0.015)
    assert touched["reference"] == pytest.approx(0.049, abs=0.01)


# ------------------------------------------------------------------ blur: scipy, edge-repeating


@pytest.mark.parametrize(("sigma", "h", "w"), [(0.7, 6, 5), (1.0, 3, 4), (2.5, 9, 9)])
def test_blur_is_scipys_gaussian_filter_with_reflect_edges(sigma, h, w):
    x = eight_bit_images(n=2, c=3, h=h, w=w, seed=2)
    spec = ShiftSpec("gaussian_blur", level=sigma)
    blurred = np.stack(
        [
            np.stack([gaussian_filter(ch, sigma=sigma, mode="reflect") for ch in image])
            for image in x.numpy()
        ]
    )
    blurred = np.clip(blurred, 0, 1)  # add_gaussian_blur clamps
    expected = np.stack([via_pil(image) for image in blurred])
    out = apply_shift(x, spec, generator=gen(0), compat="reference").numpy()
    # scipy sums in another order: where its value lies within 1e-5 of an 8-bit boundary, the
    # truncation may fall either side; everywhere else the two agree exactly
    scaled = blurred * 255
    boundary = np.abs(scaled - np.round(scaled)) < 1e-5
    assert boundary.mean() < 0.05
    np.testing.assert_array_equal(out[~boundary], expected[~boundary])
    assert np.abs(out - expected).max() <= 1 / 255 + 1e-7
    # and the radius is 4 sigma with repeated edges: the default (3 sigma, mirror) differs
    project = apply_shift(x, spec, generator=gen(0)).numpy()
    assert np.abs(project - blurred).max() > 1e-3


def test_blur_before_the_8_bit_step_agrees_with_scipy_to_float_precision():
    from resque_core.data import shifts

    x = eight_bit_images(n=1, c=3, h=5, w=7, seed=4).double()
    core = shifts._REFERENCE_FNS["gaussian_blur"](x, 1.3, gen(0)).numpy()
    expected = np.stack([gaussian_filter(ch, sigma=1.3, mode="reflect") for ch in x.numpy()[0]])
    np.testing.assert_allclose(core[0], expected, rtol=0, atol=1e-12)


# ------------------------------------------------------------------ 8-bit truncation everywhere


@pytest.mark.parametrize("name", ["contrast", "brightness", "pixelate", "shot_noise", "fog"])
def test_other_shifts_are_the_project_formula_truncated_to_8_bits(name):
    x = eight_bit_images(seed=5)
    spec = ShiftSpec(name, 3)
    project = apply_shift(x, spec, generator=gen(9)).numpy()
    out = apply_shift(x, spec, generator=gen(9), compat="reference").numpy()
    np.testing.assert_array_equal(out, np.stack([via_pil(image) for image in project]))
    assert np.all(np.abs(out * 255 - np.round(out * 255)) < 1e-4)  # multiples of 1/255


def test_to_8_bit_truncates_and_wraps():
    x = torch.tensor([-0.2, -0.001, 0.0, 0.5, 0.99999, 1.0, 1.2, 2.3])
    expected = np.array([205, 0, 0, 127, 254, 255, 50, 74]) / 255
    np.testing.assert_allclose(to_8_bit(x).numpy(), expected, rtol=0, atol=1e-7)
    assert not torch.signbit(to_8_bit(x)).any()


def test_shifted_chunks_use_the_chosen_pipeline():
    images = (torch.arange(2 * 1 * 4 * 4) * 7 % 256).to(torch.uint8).view(2, 1, 4, 4)
    rows = np.array([1, 0])
    spec = parse_shift("gaussian_noise@0.2")

    def chunks(compat):
        return next(
            shifted_chunks(
                images, rows, spec, to_unit=lambda u: u.float() / 255, seed=3, compat=compat
            )
        )[1]

    x = images[torch.from_numpy(rows)].float() / 255
    g = torch.Generator().manual_seed(3 * 1_000_003)
    assert torch.equal(chunks("reference"), apply_shift(x, spec, generator=g, compat="reference"))
    assert not torch.equal(chunks("reference"), chunks("project"))
    with pytest.raises(ShiftError, match="unknown compat mode 'paper'"):
        chunks("paper")


# ------------------------------------------------------------------ raw parameters


def test_raw_parameter_specs_read_print_and_equal_their_severity():
    spec = parse_shift("Gaussian-Noise@0.080")
    assert spec == ShiftSpec("gaussian_noise", level=0.08)
    assert str(spec) == "gaussian_noise@0.08" and parse_shift(str(spec)) == spec
    assert spec.value == 0.08 and spec.severity is None
    assert str(parse_shift("jpeg@50")) == "jpeg@50" and parse_shift("jpeg@50.0").value == 50
    x = eight_bit_images(seed=6)
    same = [apply_shift(x, s, generator=gen(1)) for s in (spec, parse_shift("gaussian_noise:3"))]
    assert torch.equal(*same)
    assert all(row["raw"] for name, row in shift_table().items() if name != "fog")
    assert shift_table()["fog"]["raw"] is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("gaussian_noise@-0.1", "raw sigma -0.1 of shift 'gaussian_noise' is out of range"),
        ("gaussian_noise@nan", "out of range: use a number from 0 to 1"),
        ("jpeg@50.5", "use a whole number from 1 to 100"),
        ("gaussian_blur@0", "use a number above 0 up to 20"),
        ("fog@0.5", "shift 'fog' has no single raw parameter"),
        ("gaussian_noise@", "write it as NAME@VALUE"),
        ("@0.1", "write it as NAME@VALUE"),
    ],
)
def test_bad_raw_parameters_say_what_is_allowed(text, message):
    with pytest.raises(ShiftError, match=message.replace("(", r"\(")):
        parse_shift(text)


def test_a_spec_takes_a_severity_or_a_level_not_both():
    with pytest.raises(ShiftError, match="a severity or a raw value, not both"):
        ShiftSpec("gaussian_noise", 3, level=0.08)


# ------------------------------------------------------------------ the default stays the same

# sha256 (first 16 hex digits) of each shift's default output at severity 3 on the images below,
# computed with the shifts module as it was before raw parameters and compat existed (CPU, this
# torch build): the default pipeline must keep every bit.
PINNED = {
    "brightness": "d979098dbe3a80aa",
    "contrast": "f367e46f20ad60db",
    "fog": "c03dc519a575569f",
    "gaussian_blur": "635695908d6688df",
    "gaussian_noise": "9e80d4eb3f6c2305",
    "impulse_noise": "14b949969b21a179",
    "jpeg": "4f585ad05972dbcd",
    "pixelate": "73591fb71f59df0d",
    "rotation": "036cd700af92daff",
    "shot_noise": "d22cb75ebed0f8ab",
}


@pytest.mark.parametrize("name", sorted(PINNED))
def test_default_pipeline_outputs_are_unchanged(name):
    assert sorted(PINNED) == available_shifts()
    x = torch.rand(3, 3, 9, 7, generator=gen(5))
    out = apply_shift(x, ShiftSpec(name, 3), generator=gen(11))
    assert hashlib.sha256(out.numpy().tobytes()).hexdigest()[:16] == PINNED[name]
