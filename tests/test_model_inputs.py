"""Model input settings checked where they are entered, shared by plan files and the app:
mean / std length against the input channels, and a batch of inputs that fits in memory."""

import pytest

from resque_core.errors import ConfigError
from resque_core.limits import check_input_batch, memory_budget
from resque_core.plans import check_model_inputs, plan_from_dict
from resque_core.scoring.scorer import ModelConfig


def _plan(**model):
    return {
        "version": 1,
        "model": {"checkpoint": "m.pt", "arch": "small_cnn", "in_channels": 3, **model},
        "source": "builtin:digits",
        "candidates": [{"id": "n", "kind": "shift", "shift": "gaussian_noise:1"}],
    }


def test_a_mean_of_the_wrong_length_is_refused_when_the_plan_is_read():
    with pytest.raises(ConfigError) as e:
        plan_from_dict(_plan(mean=[0.5, 0.5]))
    assert str(e.value) == (
        "plan field 'model.mean' has 2 values for a model with 3 input channels: give one "
        "value, or 3 (one per channel)"
    )
    # one value, or one per channel, pass
    plan = plan_from_dict(_plan(mean=[0.5], std=[0.2, 0.2, 0.2]))
    assert plan.model.std == (0.2, 0.2, 0.2)


def test_the_app_names_its_own_fields():
    model = ModelConfig(checkpoint="m.pt", in_channels=1, std=(0.2, 0.3))
    with pytest.raises(ConfigError, match=r"^Normalisation std has 2 values for a model with 1 "):
        check_model_inputs(model, 32, names={"std": "Normalisation std"})


def test_a_batch_of_inputs_must_fit_in_memory():
    budget, _ = memory_budget()
    # the largest side allowed, with a batch big enough to pass any budget of this machine
    batch = budget // (3 * 1024 * 1024 * 4) + 1
    with pytest.raises(ConfigError, match=r"^Image size 1024 x 1024: one batch of [\d,]+ such"):
        check_input_batch((1024, 1024), 3, batch, name="Image size")
    check_input_batch((32, 32), 3, 256)
