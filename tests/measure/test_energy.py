"""Energy meters: the replay meter, NVML through a fake pynvml module, codecarbon's labels."""

import re
import sys
import time
import types

import pytest
import torch

from resque_core.errors import ConfigError, ResqueError
from resque_core.measure.energy import (
    CodecarbonMeter,
    EnergyReading,
    NvmlMeter,
    ReplayMeter,
    make_meter,
)


# ----------------------------------------------------------------------------- replay
def test_replay_watts_times_fixed_seconds_is_exact():
    meter = ReplayMeter(watts=36.0, seconds=100.0)
    with meter:
        meter.begin()
        reading = meter.end()
    assert reading == EnergyReading(
        3600.0,
        100.0,
        "replay (fixed 36 W x wall time; not a measurement)",
        "replay",
        {"replay": 3600.0},
    )
    assert reading.kwh == pytest.approx(0.001)
    assert reading.to_dict()["kwh"] == pytest.approx(0.001)


def test_replay_joules_cycle_and_the_session_opens_on_demand():
    meter = ReplayMeter(joules=[1.0, 2.0])
    got = []
    for _ in range(3):
        meter.begin()
        got.append(meter.end().joules)
    assert got == [1.0, 2.0, 1.0]
    assert meter.active
    meter.stop()
    assert not meter.active


def test_replay_watts_uses_wall_time_without_fixed_seconds():
    meter = ReplayMeter(watts=1000.0)
    meter.begin()
    time.sleep(0.02)
    reading = meter.end()
    assert reading.seconds >= 0.02
    assert reading.joules == pytest.approx(1000.0 * reading.seconds)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "a replay meter needs exactly one of watts or joules"),
        ({"watts": 1.0, "joules": [1.0]}, "a replay meter needs exactly one of watts or joules"),
        ({"watts": -1.0}, "replay watts must be >= 0, got -1.0"),
        ({"joules": []}, "replay joules must be a non-empty list of values >= 0"),
        ({"watts": 1.0, "seconds": -2.0}, "replay seconds must be >= 0, got -2.0"),
    ],
)
def test_replay_bad_arguments(kwargs, message):
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        ReplayMeter(**kwargs)


def test_windows_do_not_nest_and_must_be_opened():
    meter = ReplayMeter(watts=1.0)
    with pytest.raises(RuntimeError, match="no measurement window is open"):
        meter.end()
    meter.begin()
    with pytest.raises(RuntimeError, match="a measurement window is already open"):
        meter.begin()


# ----------------------------------------------------------------------------- NVML (fake)
class _FakeNVMLError(Exception):
    pass


def _fake_pynvml(*, counter: bool, init_fails: bool = False, watts: float = 100.0):
    """A stand-in for pynvml: GPU energy counters that advance 5 J per read, or (counter=False)
    no counter and a constant power draw."""
    state = {"mj": {}, "calls": [], "shutdown": 0}
    mod = types.ModuleType("pynvml")
    mod.NVMLError = _FakeNVMLError

    def init():
        if init_fails:
            raise _FakeNVMLError("NVML Shared Library Not Found")

    def by_index(i):
        state["calls"].append(("index", i))
        return f"gpu{i}"

    def by_uuid(u):
        state["calls"].append(("uuid", u))
        return u

    def energy(handle):
        if not counter:
            raise _FakeNVMLError("Not Supported")
        state["mj"][handle] = state["mj"].get(handle, 0) + 5000
        return state["mj"][handle]

    mod.nvmlInit = init
    mod.nvmlShutdown = lambda: state.__setitem__("shutdown", state["shutdown"] + 1)
    mod.nvmlDeviceGetHandleByIndex = by_index
    mod.nvmlDeviceGetHandleByUUID = by_uuid
    mod.nvmlDeviceGetTotalEnergyConsumption = energy
    mod.nvmlDeviceGetPowerUsage = lambda handle: int(watts * 1000)
    return mod, state


def test_nvml_energy_counter_difference(monkeypatch):
    mod, state = _fake_pynvml(counter=True)
    monkeypatch.setitem(sys.modules, "pynvml", mod)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    with NvmlMeter([1]) as meter:
        meter.begin()
        reading = meter.end()
        assert meter.method == "NVML energy counter (GPU 1 only; CPU and RAM not counted)"
    # open probes the counter once (5 J), begin reads 10 J, end reads 15 J
    assert reading.joules == pytest.approx(5.0)
    assert reading.components == {"gpu1": pytest.approx(5.0)}
    assert reading.basis == "measured"
    assert state["calls"] == [("index", 1)] and state["shutdown"] == 1


def test_nvml_power_polling_integrates_watts(monkeypatch):
    mod, _ = _fake_pynvml(counter=False, watts=100.0)
    monkeypatch.setitem(sys.modules, "pynvml", mod)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    with NvmlMeter([0], poll_seconds=0.01) as meter:
        meter.begin()
        time.sleep(0.1)
        reading = meter.end()
        assert meter.method.startswith("NVML power polling every 0.01 s (GPU 0 only")
    # constant 100 W: the trapezoids sum to 100 W x (last sample - first sample)
    assert reading.joules == pytest.approx(100.0 * reading.seconds, rel=0.2)
    assert reading.joules > 5.0


def test_nvml_maps_cuda_visible_devices(monkeypatch):
    mod, state = _fake_pynvml(counter=True)
    monkeypatch.setitem(sys.modules, "pynvml", mod)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,GPU-abc")
    with NvmlMeter([0, 1]):
        pass
    assert state["calls"] == [("index", 3), ("uuid", "GPU-abc")]
    with pytest.raises(ConfigError, match=re.escape("GPU 2 is not visible")):
        NvmlMeter([2]).start()


def test_nvml_without_a_driver_says_what_to_use(monkeypatch):
    mod, _ = _fake_pynvml(counter=True, init_fails=True)
    monkeypatch.setitem(sys.modules, "pynvml", mod)
    with pytest.raises(ResqueError) as e:
        NvmlMeter([0]).start()
    assert str(e.value) == (
        "NVML is not available (NVML Shared Library Not Found): no NVIDIA driver or GPU here; "
        "use the codecarbon or replay meter"
    )


# ----------------------------------------------------------------------------- codecarbon
def _hw(name: str, **attrs):
    return type(name, (), attrs)()


@pytest.mark.parametrize(
    ("hardware", "method", "basis"),
    [
        (
            [_hw("RAM"), _hw("CPU", _mode="cpu_load")],
            "codecarbon estimate (CPU TDP x load, RAM constant)",
            "estimate",
        ),
        (
            [_hw("CPU", _mode="intel_rapl"), _hw("RAM")],
            "codecarbon partial estimate (CPU RAPL, RAM constant)",
            "partial",
        ),
        (
            [_hw("CPU", _mode="constant"), _hw("GPU"), _hw("RAM")],
            "codecarbon partial estimate (CPU TDP constant, GPU NVML, RAM constant)",
            "partial",
        ),
    ],
)
def test_codecarbon_labels_say_what_is_estimated(hardware, method, basis):
    tracker = types.SimpleNamespace(_hardware=hardware)
    assert CodecarbonMeter._describe(tracker) == (method, basis)


def test_codecarbon_measures_a_window_offline():
    with CodecarbonMeter() as meter:
        meter.begin()
        x = torch.randn(256, 256)
        for _ in range(50):
            x = torch.tanh(x @ x)
        reading = meter.end()
    assert reading.joules > 0
    assert reading.joules == pytest.approx(sum(reading.components.values()), rel=1e-6)
    assert reading.method.startswith("codecarbon") and "RAM constant" in reading.method
    assert reading.basis in ("estimate", "partial")


# ----------------------------------------------------------------------------- factory
def test_make_meter():
    assert isinstance(make_meter("auto"), CodecarbonMeter)
    assert make_meter("replay", replay_watts=5.0).watts == 5.0
    with pytest.raises(
        ConfigError,
        match="^"
        + re.escape("unknown meter 'rapl'; allowed: auto, codecarbon, nvml, replay")
        + "$",
    ):
        make_meter("rapl")
    with pytest.raises(
        ConfigError, match="^the nvml meter measures GPUs only: run on a CUDA device$"
    ):
        make_meter("nvml", device="cpu")
