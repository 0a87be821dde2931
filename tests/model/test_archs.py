"""The architecture registry: the project's networks, torchvision's without downloads, and the
error for an unknown name."""

import re

import pytest
import torch
import torchvision
from torch import nn

from resque_core.errors import ConfigError
from resque_core.model.archs import available_archs, build_model, project_archs, register_arch


@pytest.fixture(autouse=True)
def _no_downloads(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a weight download was attempted")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)


def test_small_cnn_runs_on_8x8_greyscale_and_names_its_layers():
    torch.manual_seed(0)
    model = build_model("small_cnn", num_classes=10, in_channels=1).eval()
    assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
    names = [n for n, _ in model.named_modules()]
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    assert convs == ["features.conv1", "features.conv2", "features.conv3"]
    assert names[-1] == "fc" and isinstance(model.fc, nn.Linear)
    assert model.fc.out_features == 10


def test_small_cnn_takes_32x32_colour():
    model = build_model("small_cnn", num_classes=4, in_channels=3).eval()
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 4)


def test_cifar_resnet18_matches_torchvision_names_with_a_3x3_stem():
    ours = build_model("cifar_resnet18", num_classes=10, in_channels=3).eval()
    theirs = torchvision.models.resnet18(weights=None, num_classes=10).state_dict()
    mine = ours.state_dict()
    assert list(mine) == list(theirs)
    assert [k for k in mine if mine[k].shape != theirs[k].shape] == ["conv1.weight"]
    assert ours.conv1.kernel_size == (3, 3) and ours.conv1.stride == (1, 1)
    assert not hasattr(ours, "maxpool")
    assert ours(torch.zeros(1, 3, 32, 32)).shape == (1, 10)


def test_torchvision_resnet18_builds_without_weights():
    model = build_model("resnet18", num_classes=10).eval()
    assert isinstance(model, torchvision.models.ResNet)
    assert model.fc.out_features == 10
    with torch.inference_mode():
        assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 10)


def test_torchvision_model_gets_a_stem_for_other_channel_counts():
    model = build_model("squeezenet1_1", num_classes=5, in_channels=1).eval()
    stem = model.features[0]
    assert (stem.in_channels, stem.out_channels) == (1, 64)
    assert (stem.kernel_size, stem.stride) == ((3, 3), (2, 2))
    assert model(torch.zeros(1, 1, 32, 32)).shape == (1, 5)


def test_available_archs_lists_the_project_first_then_torchvision_classifiers():
    names = available_archs()
    assert names[: len(project_archs())] == ["cifar_resnet18", "small_cnn"]
    assert {"resnet18", "vit_b_16", "convnext_tiny"} <= set(names)
    assert "fasterrcnn_resnet50_fpn" not in names  # detection models are not classifiers
    assert len(names) == len(set(names))


def test_unknown_architecture_lists_the_closest_names():
    with pytest.raises(ConfigError) as err:
        build_model("resnt18", num_classes=10)
    message = str(err.value)
    assert message.startswith("unknown architecture 'resnt18'; closest: resnet18, ")
    assert message.endswith(f"({len(available_archs())} available)")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_classes": 0}, "num_classes must be a positive integer, got 0"),
        (
            {"num_classes": 10, "in_channels": 2.0},
            "in_channels must be a positive integer, got 2.0",
        ),
    ],
)
def test_bad_sizes_are_config_errors(kwargs, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        build_model("small_cnn", **kwargs)


def test_a_name_registers_once():
    with pytest.raises(
        ValueError, match=re.escape("architecture 'small_cnn' is already registered")
    ):
        register_arch("small_cnn")(lambda **kw: nn.Identity())
    assert project_archs() == ["cifar_resnet18", "small_cnn"]
