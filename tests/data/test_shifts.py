"""Shifts: contract (shape, range, purity, seeding), parse errors, each corruption's effect."""

import math
import re

import numpy as np
import pytest
import torch
from torchvision.transforms.v2.functional import gaussian_blur

from resque_core.data.shifts import (
    SEVERITIES,
    SHIFT_CHUNK,
    ShiftSpec,
    apply_shift,
    available_shifts,
    parse_shift,
    shift_table,
    shifted_chunks,
)
from resque_core.errors import DataError, ShiftError

NAMES = [
    "brightness",
    "contrast",
    "fog",
    "gaussian_blur",
    "gaussian_noise",
    "impulse_noise",
    "jpeg",
    "pixelate",
    "rotation",
    "shot_noise",
]
RANDOM = {"fog", "gaussian_noise", "impulse_noise", "rotation", "shot_noise"}
AVAILABLE = "available: " + ", ".join(NAMES)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def images(n=4, c=3, h=16, w=16, seed=0) -> torch.Tensor:
    """Textured images in [0.1, 0.9]: room to move both ways without clamping."""
    return torch.rand(n, c, h, w, generator=gen(seed)) * 0.8 + 0.1


def shifted(x, name, severity, seed=1):
    return apply_shift(x, ShiftSpec(name, severity), generator=gen(seed))


# ------------------------------------------------------------------ registry and parsing


def test_registry_lists_every_shift_with_five_values():
    assert available_shifts() == NAMES
    table = shift_table()
    assert list(table) == NAMES
    for name, row in table.items():
        assert row["description"] and "\n" not in row["description"]
        assert row["parameter"]
        assert len(row["values"]) == len(SEVERITIES) == 5
        assert row["random"] == (name in RANDOM)
    assert table["gaussian_noise"]["values"] == (0.04, 0.06, 0.08, 0.09, 0.10)
    assert table["jpeg"]["values"] == (80, 65, 58, 50, 40)
    assert table["fog"]["values"][4] == (1.5, 1.75)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("gaussian_noise:3", ShiftSpec("gaussian_noise", 3)),
        ("Gaussian-Noise:1", ShiftSpec("gaussian_noise", 1)),
        ("SHOT_NOISE:5", ShiftSpec("shot_noise", 5)),
        (" jpeg : 2 ", ShiftSpec("jpeg", 2)),
    ],
)
def test_parse_shift_accepted_forms(text, expected):
    spec = parse_shift(text)
    assert spec == expected
    assert parse_shift(str(spec)) == spec


def test_spec_prints_as_name_colon_severity():
    assert str(ShiftSpec("impulse_noise", 4)) == "impulse_noise:4"


def test_unknown_name_message_names_the_closest_and_all():
    msg = (
        "unknown shift 'gausian_noise'; closest: gaussian_noise, gaussian_blur, shot_noise, "
        f"impulse_noise; {AVAILABLE}"
    )
    with pytest.raises(ShiftError, match=re.escape(msg)):
        parse_shift("gausian_noise:3")
    with pytest.raises(ShiftError, match=re.escape(msg)):
        ShiftSpec("gausian_noise", 3)


@pytest.mark.parametrize("severity", [0, 6, 7, -1])
def test_severity_out_of_range(severity):
    msg = f"severity {severity} is out of range for shift 'gaussian_noise': use 1-5"
    with pytest.raises(ShiftError, match=f"^{re.escape(msg)}$"):
        parse_shift(f"gaussian_noise:{severity}")
    with pytest.raises(ShiftError, match=f"^{re.escape(msg)}$"):
        ShiftSpec("gaussian_noise", severity)


@pytest.mark.parametrize("severity", [2.5, "3", True])
def test_spec_severity_must_be_an_int(severity):
    msg = f"severity {severity!r} of shift 'fog' is not an integer: use 1-5"
    with pytest.raises(ShiftError, match=f"^{re.escape(msg)}$"):
        ShiftSpec("fog", severity)


@pytest.mark.parametrize("text", ["gaussian_noise", "gaussian_noise:", "fog:high", ":3", "fog:1:2"])
def test_malformed_text_shows_the_form(text):
    msg = (
        f"cannot read shift {text!r}: write it as NAME:SEVERITY with SEVERITY 1-5, "
        "e.g. gaussian_noise:3"
    )
    with pytest.raises(ShiftError, match=f"^{re.escape(msg)}$"):
        parse_shift(text)


@pytest.mark.parametrize(
    "x",
    [torch.rand(2, 4, 8, 8), torch.rand(3, 8, 8), torch.zeros(1, 3, 8, 8, dtype=torch.uint8)],
    ids=["4-channels", "3-dims", "uint8"],
)
def test_bad_batch_is_rejected(x):
    msg = (
        "shifts need a float32 or float64 batch [N, C, H, W] with C 1 or 3, "
        f"got {x.dtype} {list(x.shape)}"
    )
    with pytest.raises(DataError, match=f"^{re.escape(msg)}$"):
        apply_shift(x, ShiftSpec("contrast", 1), generator=gen(0))


# ------------------------------------------------------------------ contract, every shift


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("severity", SEVERITIES)
@pytest.mark.parametrize("name", NAMES)
def test_contract(name, severity, channels):
    x = images(c=channels, h=12, w=16)
    before = x.clone()
    out = shifted(x, name, severity)
    assert out.shape == x.shape and out.dtype == x.dtype and out.device == x.device
    assert out.min() >= 0 and out.max() <= 1
    assert torch.equal(x, before), "input modified"
    assert not torch.equal(out, x), "shift did nothing"
    assert torch.equal(out, shifted(x, name, severity)), "not deterministic for one seed"
    if name in RANDOM:
        assert not torch.equal(out, shifted(x, name, severity, seed=2))
    else:
        assert torch.equal(out, shifted(x, name, severity, seed=2))


@pytest.mark.parametrize("name", NAMES)
def test_float64_and_empty_batches(name):
    x = images(n=2, h=8, w=8).double()
    out = shifted(x, name, 3)
    assert out.dtype == torch.float64 and out.min() >= 0 and out.max() <= 1
    empty = shifted(x[:0], name, 3)
    assert empty.shape == (0, 3, 8, 8) and empty.dtype == torch.float64


# ------------------------------------------------------------------ noise families


@pytest.mark.parametrize("name", ["gaussian_noise", "shot_noise", "impulse_noise"])
def test_noise_grows_with_severity(name):
    x = images(h=32, w=32)
    change = [(shifted(x, name, s) - x).abs().mean().item() for s in SEVERITIES]
    assert all(a < b for a, b in zip(change, change[1:], strict=False)), change


def test_gaussian_noise_clamps_instead_of_wrapping():
    zeros = torch.zeros(2, 3, 16, 16)
    low = shifted(zeros, "gaussian_noise", 5)
    # wrapping would turn small negative values into values near 1
    assert low.min() == 0 and 0 < low.max() < 0.6
    assert (low == 0).float().mean() == pytest.approx(0.5, abs=0.05)
    high = shifted(torch.ones(2, 3, 16, 16), "gaussian_noise", 5)
    assert high.max() == 1 and 0.4 < high.min() < 1


def test_gaussian_noise_has_the_severity_sigma():
    x = torch.full((4, 3, 32, 32), 0.5)
    for severity, sigma in zip(SEVERITIES, (0.04, 0.06, 0.08, 0.09, 0.10), strict=True):
        assert (shifted(x, "gaussian_noise", severity) - x).std().item() == pytest.approx(
            sigma, rel=0.05
        )


def test_shot_noise_variance_is_poisson():
    x = torch.full((4, 3, 32, 32), 0.5)
    out = shifted(x, "shot_noise", 3)  # 100 photons: counts ~ Poisson(50)
    counts = out * 100
    torch.testing.assert_close(counts, counts.round(), atol=1e-4, rtol=0)
    assert counts.mean().item() == pytest.approx(50, rel=0.02)
    assert counts.var().item() == pytest.approx(50, rel=0.1)


@pytest.mark.parametrize("severity", SEVERITIES)
def test_impulse_noise_hits_amount_with_salt_and_pepper_half_each(severity):
    amount = shift_table()["impulse_noise"]["values"][severity - 1]
    x = torch.full((4, 3, 32, 32), 0.5)
    out = shifted(x, "impulse_noise", severity)
    changed = out != 0.5
    assert changed.float().mean().item() == pytest.approx(amount, abs=0.005)
    assert set(out[changed].unique().tolist()) == {0.0, 1.0}
    salt = (out[changed] == 1).float().mean().item()
    assert salt == pytest.approx(0.5, abs=0.12)


# ------------------------------------------------------------------ deterministic shifts


@pytest.mark.parametrize("severity", SEVERITIES)
def test_blur_matches_torchvision_and_keeps_constants(severity):
    sigma = shift_table()["gaussian_blur"]["values"][severity - 1]
    x = images(h=16, w=12)
    expected = gaussian_blur(x, kernel_size=2 * math.ceil(3 * sigma) + 1, sigma=sigma)
    torch.testing.assert_close(shifted(x, "gaussian_blur", severity), expected)
    constant = torch.full((1, 3, 8, 8), 0.3)
    torch.testing.assert_close(shifted(constant, "gaussian_blur", severity), constant)


def test_contrast_keeps_channel_means_and_scales_deviations():
    x = images()
    for severity, factor in zip(SEVERITIES, (0.75, 0.5, 0.4, 0.3, 0.15), strict=True):
        out = shifted(x, "contrast", severity)
        torch.testing.assert_close(out.mean(dim=(2, 3)), x.mean(dim=(2, 3)))
        torch.testing.assert_close(out.std(dim=(2, 3)), factor * x.std(dim=(2, 3)))


def test_brightness_raises_hsv_value_and_keeps_hue_and_saturation():
    x = images()
    x[0, :, 0, 0] = 0.0  # a black pixel turns grey
    out = shifted(x, "brightness", 3)  # +0.15
    value, new_value = x.amax(dim=1), out.amax(dim=1)
    torch.testing.assert_close(new_value, (value + 0.15).clamp(max=1))
    lit = value > 0
    torch.testing.assert_close(
        (out / new_value[:, None])[lit[:, None].expand_as(x)],
        (x / value.clamp(min=1e-12)[:, None])[lit[:, None].expand_as(x)],
    )
    torch.testing.assert_close(out[0, :, 0, 0], torch.full((3,), 0.15))


def test_brightness_on_grey_is_additive():
    x = images(c=1)
    torch.testing.assert_close(shifted(x, "brightness", 5), (x + 0.3).clamp(max=1))


def test_pixelate_makes_blocks():
    x = images(n=1, c=1, h=32, w=32)
    out = shifted(x, "pixelate", 5)  # 32 * 0.65 -> 20 cells a side
    plane = out[0, 0]
    assert plane.unique(dim=0).shape[0] == 20 and plane.unique(dim=1).shape[1] == 20
    torch.testing.assert_close(out.mean(), x.mean(), atol=0.02, rtol=0)


def test_jpeg_is_an_8_bit_round_trip_that_degrades_with_severity():
    x = images(h=32, w=32)
    errors = []
    for severity in SEVERITIES:
        out = shifted(x, "jpeg", severity)
        torch.testing.assert_close(out * 255, (out * 255).round(), atol=1e-4, rtol=0)
        errors.append((out - x).abs().mean().item())
    assert errors[0] < errors[-1]


# ------------------------------------------------------------------ fog and rotation


def reference_plasma(side, decay, uniform):
    """make_cifar_c.py's plasma_fractal, with np.random.uniform replaced by ``uniform``."""
    m = np.zeros((side, side))
    step, wibble = side, 100.0

    def wibbled(a):
        return a / 4 + wibble * uniform(-wibble, wibble, a.shape)

    while step >= 2:
        corner = m[0:side:step, 0:side:step]
        sq = corner + np.roll(corner, shift=-1, axis=0)
        sq += np.roll(sq, shift=-1, axis=1)
        m[step // 2 : side : step, step // 2 : side : step] = wibbled(sq)
        dr = m[step // 2 : side : step, step // 2 : side : step]
        ul = m[0:side:step, 0:side:step]
        m[0:side:step, step // 2 : side : step] = wibbled(
            dr + np.roll(dr, 1, axis=0) + ul + np.roll(ul, -1, axis=1)
        )
        m[step // 2 : side : step, 0:side:step] = wibbled(
            dr + np.roll(dr, 1, axis=1) + ul + np.roll(ul, -1, axis=0)
        )
        step //= 2
        wibble /= decay
    m -= m.min()
    return m / m.max()


@pytest.mark.parametrize("severity", [1, 5])
def test_fog_is_the_reference_plasma_fractal(severity):
    intensity, decay = shift_table()["fog"]["values"][severity - 1]
    x = torch.full((1, 1, 32, 32), 0.5, dtype=torch.float64)
    out = shifted(x, "fog", severity, seed=7)
    # invert (x + intensity * fog) * peak / (peak + intensity) with x = peak = 0.5
    fog = (out[0, 0].numpy() * (0.5 + intensity) / 0.5 - 0.5) / intensity
    draws = gen(7)

    def uniform(low, high, shape):
        u = torch.rand((1, *shape), generator=draws, dtype=torch.float64)[0].numpy()
        return low + (high - low) * u

    np.testing.assert_allclose(fog, reference_plasma(32, decay, uniform), atol=1e-9)


def test_fog_covers_non_square_images_and_keeps_their_peak():
    x = torch.full((2, 3, 10, 24), 0.2)
    out = shifted(x, "fog", 4)
    # the reference rescales by peak / (peak + intensity): nothing exceeds the clean peak
    assert out.max() <= 0.2 + 1e-6 and out.std() > 0.01
    # one fog map per image, shared by its channels
    assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 0], out[:, 2])
    assert not torch.equal(out[0], out[1])


@pytest.mark.parametrize(("severity", "degrees"), [(1, 5), (3, 15), (5, 30)])
def test_rotation_turns_by_the_severity_angle_either_way(severity, degrees):
    x = torch.zeros(8, 1, 33, 33)
    x[:, :, 15:18, 26:29] = 1.0  # a blob 11 px right of the centre (16, 16)
    out = shifted(x, "rotation", severity)
    rows, cols = torch.meshgrid(torch.arange(33.0), torch.arange(33.0), indexing="ij")
    mass = out[:, 0].sum(dim=(1, 2))
    r = (out[:, 0] * rows).sum(dim=(1, 2)) / mass - 16
    c = (out[:, 0] * cols).sum(dim=(1, 2)) / mass - 16
    angles = torch.rad2deg(torch.atan2(-r, c))  # counter-clockwise positive, rows point down
    assert torch.allclose(angles.abs(), torch.tensor(float(degrees)), atol=1.0), angles
    assert (angles > 0).any() and (angles < 0).any()
    assert mass.sub(9).abs().max() < 0.5  # bilinear keeps the blob's mass


def test_rotation_fills_corners_with_black():
    out = shifted(torch.ones(2, 3, 16, 16), "rotation", 5)
    assert torch.equal(out[:, :, 0, 0], torch.zeros(2, 3))
    assert torch.equal(out[:, :, 8, 8], torch.ones(2, 3))


# ------------------------------------------------------------------ GPU


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("name", NAMES)
def test_gpu_batches_stay_on_the_gpu_and_are_seeded(name):
    x = images(c=3, h=24, w=24).cuda()

    def run(seed):
        g = torch.Generator(device="cuda").manual_seed(seed)
        return apply_shift(x, ShiftSpec(name, 4), generator=g)

    out = run(1)
    assert out.device == x.device and out.dtype == x.dtype
    assert out.min() >= 0 and out.max() <= 1
    assert torch.equal(out, run(1))
    if name not in RANDOM:
        torch.testing.assert_close(out.cpu(), shifted(x.cpu(), name, 4), atol=1e-5, rtol=0)


# ----------------------------------------------------------------------------- shifted chunks
def _unit(u: torch.Tensor) -> torch.Tensor:
    return u.to(torch.float32) / 255


def test_shifted_chunks_seed_each_chunk_by_seed_and_chunk_number():
    images = torch.randint(0, 256, (700, 1, 4, 4), generator=gen(0), dtype=torch.uint8)
    rows = np.arange(699, -1, -2)  # an order of its own: chunks follow it, not the row numbers
    spec = ShiftSpec("gaussian_noise", 4)
    chunks = list(shifted_chunks(images, rows, spec, to_unit=_unit, seed=7))
    assert [len(sel) for sel, _ in chunks] == [SHIFT_CHUNK, len(rows) - SHIFT_CHUNK]
    for k, (sel, x) in enumerate(chunks):
        assert (
            sel.dtype == torch.int64
            and sel.tolist() == rows[k * SHIFT_CHUNK :][:SHIFT_CHUNK].tolist()
        )
        expected = apply_shift(_unit(images[sel]), spec, generator=gen(7 * 1_000_003 + k))
        assert torch.equal(x, expected)
    other_seed = torch.cat(
        [x for _, x in shifted_chunks(images, rows, spec, to_unit=_unit, seed=8)]
    )
    assert not torch.equal(torch.cat([x for _, x in chunks]), other_seed)


def test_shifted_chunks_without_a_shift_are_the_unit_images():
    images = torch.randint(0, 256, (300, 1, 4, 4), generator=gen(1), dtype=torch.uint8)
    rows = np.array([5, 3, 299, 0])
    ((sel, x),) = shifted_chunks(images, rows, None, to_unit=_unit, seed=0)
    assert sel.tolist() == [5, 3, 299, 0] and torch.equal(x, _unit(images[rows]))
    assert list(shifted_chunks(images, np.empty(0, np.int64), None, to_unit=_unit, seed=0)) == []
