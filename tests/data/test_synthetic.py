"""Synthetic demo data sets: documented shapes, classes and counts, determinism, pixel scale."""

import hashlib
import re

import numpy as np
import pytest
from sklearn.datasets import load_digits

from resque_core.data import synthetic as synthetic
from resque_core.errors import ConfigError

DOCUMENTED = {
    "letters": (1500, tuple("ABCDEFGHIJ"), [150] * 10),
    "shapes": (900, ("circle", "ring", "square", "triangle", "plus", "cross"), [150] * 6),
    "digits-parity": (1797, ("even", "odd"), [891, 906]),
    "digits-mod3": (1797, ("0-3-6-9", "1-4-7", "2-5-8"), [722, 542, 533]),
}
DIGIT_LEVELS = set(np.rint(np.arange(17) * 255 / 16).astype(int).tolist())


def test_registry_and_descriptions_name_the_same_sets():
    assert set(synthetic.SYNTHETIC) == set(DOCUMENTED)
    assert set(synthetic.DESCRIPTIONS) == set(DOCUMENTED)
    assert all(d and "\n" not in d for d in synthetic.DESCRIPTIONS.values())


@pytest.mark.parametrize("name", sorted(DOCUMENTED))
def test_documented_shapes_classes_and_counts(name):
    n, classes, per_class = DOCUMENTED[name]
    images, labels, got_classes = synthetic.SYNTHETIC[name]()
    assert images.shape == (n, 1, 8, 8) and images.dtype == np.uint8
    assert labels.shape == (n,) and labels.dtype == np.int64
    assert got_classes == classes
    assert np.bincount(labels, minlength=len(classes)).tolist() == per_class
    # Samples are grouped by class, and pixels stay on the digits' 17-level scale.
    assert np.all(np.diff(labels) >= 0)
    assert set(np.unique(images).tolist()) <= DIGIT_LEVELS
    assert images.max() == 255 and images.min() == 0


@pytest.mark.parametrize("name", ["letters", "shapes"])
def test_drawn_sets_are_deterministic_per_seed_and_vary_with_it(name):
    generate = getattr(synthetic, f"_{name}").__wrapped__  # bypass the in-memory cache
    a, b, c = generate(20, 3), generate(20, 3), generate(20, 4)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
    assert np.array_equal(a[1], c[1])


@pytest.mark.parametrize(
    ("name", "digest"),
    [
        ("letters", "e86d8164fbfe3df461cf95a116b29ad09b10ce97756be07ec3d11a98741f7daf"),
        ("shapes", "0c8d8268dbc6f657d57b62b63ada477398facfd063b4b9c33f4d8dac63e646cb"),
    ],
)
def test_default_sets_are_bit_identical_to_the_published_ones(name, digest):
    # Pins the exact pixels (Pillow, and the FreeType it bundles, are pinned): a change here
    # changes every demo result, so it must be deliberate (update the digest and say why).
    images, labels, _ = synthetic.SYNTHETIC[name]()
    assert hashlib.sha256(images.tobytes() + labels.tobytes()).hexdigest() == digest


@pytest.mark.parametrize("name", ["letters", "shapes"])
def test_classes_are_learnable_and_distinct(name):
    images, labels, classes = synthetic.SYNTHETIC[name]()
    x = images.reshape(len(images), -1).astype(np.float64)
    train = np.arange(len(x)) % 3 != 0
    centroids = np.stack([x[train & (labels == k)].mean(axis=0) for k in range(len(classes))])
    nearest = ((x[~train, None] - centroids[None]) ** 2).sum(axis=2).argmin(axis=1)
    accuracy = (nearest == labels[~train]).mean()
    assert accuracy > 0.7, f"{name}: nearest-centroid accuracy {accuracy:.2f}"
    # Samples within a class vary (seeded jitter), not one image repeated.
    assert len(np.unique(x[labels == 0], axis=0)) > 100


def test_digit_relabellings_keep_the_digit_images():
    bunch = load_digits()
    expected = np.rint(bunch.images * (255 / 16)).astype(np.uint8)
    for name, modulus in (("digits-parity", 2), ("digits-mod3", 3)):
        images, labels, _ = synthetic.SYNTHETIC[name]()
        order = np.argsort(bunch.target % modulus, kind="stable")
        assert np.array_equal(images[:, 0], expected[order])
        assert np.array_equal(labels, bunch.target[order] % modulus)


def test_callers_get_copies():
    images, labels, _ = synthetic.letters()
    images[:] = 0
    labels[:] = 0
    again, again_labels, _ = synthetic.letters()
    assert again.max() == 255 and again_labels.max() == 9


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"per_class": 0}, "per_class must be a positive integer, got 0"),
        ({"per_class": 2.5}, "per_class must be a positive integer, got 2.5"),
        ({"seed": -1}, "seed must be a non-negative integer, got -1"),
        ({"seed": True}, "seed must be a non-negative integer, got True"),
    ],
)
@pytest.mark.parametrize("fn", [synthetic.letters, synthetic.shapes])
def test_bad_options_are_refused(fn, kwargs, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        fn(**kwargs)
