"""The shift preview: one image per class, as the model sees it, then shifted at each severity."""

import re

import numpy as np
import pytest
import torch

from resque_core.data import Preprocess, apply_shift, parse_shift, shift_preview
from resque_core.errors import ShiftError


def tiny_set(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 [12, 1, 6, 6] images, labels 2, 0, 1 repeated (class 2 comes first)."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (12, 1, 6, 6), generator=g, dtype=torch.uint8)
    return images, torch.tensor([2, 0, 1] * 4)


def to_unit(size=(4, 4), channels=3):
    return Preprocess(image_size=size, channels=channels).to_unit


def test_one_image_per_class_in_class_order_as_the_model_sees_it():
    images, labels = tiny_set()
    original, shifted, rows = shift_preview(
        images, labels, "gaussian_noise", (1, 4), to_unit=to_unit(), n=2, seed=3
    )
    assert rows.dtype == np.int64 and rows.shape == (2,)
    assert labels[torch.from_numpy(rows)].tolist() == [0, 1]  # the first n classes, sorted
    assert original.dtype == np.float32 and original.shape == (2, 3, 4, 4)
    expected = to_unit()(images[torch.from_numpy(rows)])
    assert np.array_equal(original, expected.numpy())
    assert sorted(shifted) == [1, 4]
    for severity, out in shifted.items():
        gen = torch.Generator().manual_seed(3)
        ref = apply_shift(expected, parse_shift(f"gaussian_noise:{severity}"), generator=gen)
        assert np.array_equal(out, ref.numpy())
    assert not np.array_equal(shifted[1], shifted[4])


def test_same_seed_same_pictures_other_seed_other_picks_or_noise():
    images, labels = tiny_set()
    a = shift_preview(images, labels, "shot_noise", (2,), to_unit=to_unit(), seed=5)
    b = shift_preview(images, labels, "shot_noise", (2,), to_unit=to_unit(), seed=5)
    c = shift_preview(images, labels, "shot_noise", (2,), to_unit=to_unit(), seed=6)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1][2], b[1][2])
    assert np.array_equal(a[2], b[2])
    assert not (np.array_equal(a[2], c[2]) and np.array_equal(a[1][2], c[1][2]))


def test_n_larger_than_the_classes_shows_each_class_once_and_inputs_stay_untouched():
    images, labels = tiny_set()
    before = images.clone()
    _, shifted, rows = shift_preview(
        images, labels.numpy(), "contrast", (5,), to_unit=to_unit(channels=1), n=10
    )
    assert sorted(labels[torch.from_numpy(rows)].tolist()) == [0, 1, 2]
    assert shifted[5].shape == (3, 1, 4, 4)
    assert torch.equal(images, before)


def test_unknown_shift_or_severity_is_the_shift_parser_message():
    images, labels = tiny_set()
    with pytest.raises(ShiftError, match=re.escape("severity 6 is out of range for shift 'fog'")):
        shift_preview(images, labels, "fog", (1, 6), to_unit=to_unit())
    with pytest.raises(ShiftError, match=r"^unknown shift 'fgo'; closest: fog"):
        shift_preview(images, labels, "fgo", (1,), to_unit=to_unit())
