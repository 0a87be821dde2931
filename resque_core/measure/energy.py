"""Energy meters behind one small interface; every reading says how it was obtained.

A meter has a *session* (``start()`` / ``stop()``, or ``with meter:``) that pays the set-up cost
once, and *windows* inside it (``begin()`` ... ``end()`` -> :class:`EnergyReading`), one per
training epoch or probe. Windows do not nest. The caller synchronises the accelerator before
``begin()`` and ``end()`` so queued GPU work lands in the right window.

Meters:

- :class:`NvmlMeter`: NVIDIA GPUs through NVML (``pynvml`` from ``nvidia-ml-py``): the
  driver's energy counter where the GPU has one (Volta and later), else power polled in a
  background thread and integrated (trapezoids). Only the GPUs the run uses; CPU and RAM are not
  counted (the reading says so).
- :class:`CodecarbonMeter`: codecarbon's ``OfflineEmissionsTracker`` (no network) over CPU, RAM
  and the run's GPUs, in ``process`` tracking mode. Without RAPL codecarbon's CPU power is TDP x
  load and its RAM power a constant: such readings are labelled estimates.
- :class:`ReplayMeter`: fixed watts x wall time, or recorded joules replayed in turn; for tests and
  demos without hardware. Its readings are labelled ``replay``.

:func:`make_meter` builds one by name (``auto`` = codecarbon).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from ..errors import ConfigError, ResqueError
from .units import joules_to_kwh, kwh_to_joules

__all__ = [
    "METERS",
    "Basis",
    "CodecarbonMeter",
    "EnergyReading",
    "Meter",
    "NvmlMeter",
    "ReplayMeter",
    "make_meter",
]

Basis = Literal["measured", "partial", "estimate", "replay"]
"""measured: every counted component is measured by hardware; partial: some are (e.g. RAPL CPU
with a constant RAM figure); estimate: modelled from TDP / load / constants; replay: not a
measurement at all (fake meter)."""

MeterName = Literal["auto", "codecarbon", "nvml", "replay"]
METERS: tuple[str, ...] = ("auto", "codecarbon", "nvml", "replay")


@dataclass(frozen=True)
class EnergyReading:
    """Energy over one window: ``joules`` in total, ``components`` in joules per part (``cpu``,
    ``ram``, ``gpu``), ``seconds`` of wall time, ``method`` = one line on how it was measured."""

    joules: float
    seconds: float
    method: str
    basis: Basis
    components: dict[str, float] = field(default_factory=dict)

    @property
    def kwh(self) -> float:
        return joules_to_kwh(self.joules)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "kwh": self.kwh}


class Meter(ABC):
    """Base class: session and window bookkeeping; subclasses implement the ``_`` hooks."""

    name: str = "meter"

    def __init__(self) -> None:
        self._active = False
        self._window_start: float | None = None

    # -- session
    @property
    def active(self) -> bool:
        return self._active

    def start(self) -> None:
        """Open the session (idempotent)."""
        if not self._active:
            self._open()
            self._active = True

    def stop(self) -> None:
        """Close the session (idempotent); an open window is dropped."""
        if self._active:
            self._window_start = None
            self._active = False
            self._close()

    def __enter__(self) -> Meter:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- windows
    def begin(self) -> None:
        """Start a measurement window (opens the session if needed)."""
        self.start()
        if self._window_start is not None:
            raise RuntimeError("a measurement window is already open: call end() first")
        self._begin()
        self._window_start = time.perf_counter()

    def end(self) -> EnergyReading:
        """Close the window and return what it used."""
        if self._window_start is None:
            raise RuntimeError("no measurement window is open: call begin() first")
        seconds = time.perf_counter() - self._window_start
        self._window_start = None
        return self._end(seconds)

    @property
    @abstractmethod
    def method(self) -> str:
        """How this meter measures (one line), known once the session is open."""

    def _open(self) -> None:  # noqa: B027 - optional hook: most meters need no set-up
        """Set-up cost paid once per session."""

    def _close(self) -> None:  # noqa: B027 - optional hook
        """Release what _open took."""

    @abstractmethod
    def _begin(self) -> None:
        """Start measuring a window."""

    @abstractmethod
    def _end(self, seconds: float) -> EnergyReading:
        """The energy since ``_begin``; ``seconds`` is the window's wall time."""


# ----------------------------------------------------------------------------- replay
class ReplayMeter(Meter):
    """A fake meter: ``watts`` x wall time, or ``joules`` replayed one per window (cycling).

    With ``seconds`` set, each window reports that many seconds instead of the wall time, which
    makes readings (and everything computed from them) exactly reproducible in tests.
    """

    name = "replay"

    def __init__(
        self,
        *,
        watts: float | None = None,
        joules: Sequence[float] | None = None,
        seconds: float | None = None,
    ):
        super().__init__()
        if (watts is None) == (joules is None):
            raise ConfigError("a replay meter needs exactly one of watts or joules")
        if watts is not None and not watts >= 0:
            raise ConfigError(f"replay watts must be >= 0, got {watts}")
        if joules is not None and (not joules or any(not j >= 0 for j in joules)):
            raise ConfigError("replay joules must be a non-empty list of values >= 0")
        if seconds is not None and not seconds >= 0:
            raise ConfigError(f"replay seconds must be >= 0, got {seconds}")
        self.watts = watts
        self.joules = tuple(float(j) for j in joules) if joules is not None else None
        self.seconds = seconds
        self._next = 0

    @property
    def method(self) -> str:
        if self.watts is not None:
            return f"replay (fixed {self.watts:g} W x wall time; not a measurement)"
        return f"replay ({len(self.joules)} recorded readings; not a measurement)"

    def _begin(self) -> None:
        """Nothing to read: the reading is made up at the end."""

    def _end(self, seconds: float) -> EnergyReading:
        seconds = self.seconds if self.seconds is not None else seconds
        if self.watts is not None:
            joules = self.watts * seconds
        else:
            joules = self.joules[self._next % len(self.joules)]
            self._next += 1
        return EnergyReading(joules, seconds, self.method, "replay", {"replay": joules})


# ----------------------------------------------------------------------------- NVML
def _nvml():
    try:
        import pynvml
    except ImportError:
        raise ResqueError(
            "the NVML meter needs the nvidia-ml-py package (module pynvml): "
            "pip install nvidia-ml-py, or use the codecarbon or replay meter"
        ) from None
    return pynvml


class NvmlMeter(Meter):
    """GPU energy of the CUDA devices ``devices`` (torch indices, mapped through
    ``CUDA_VISIBLE_DEVICES``): energy counters where supported, else power polled every
    ``poll_seconds`` and integrated."""

    name = "nvml"

    def __init__(self, devices: Sequence[int] = (0,), *, poll_seconds: float = 0.05):
        super().__init__()
        if not devices:
            raise ConfigError("the NVML meter needs at least one GPU index")
        if not poll_seconds > 0:
            raise ConfigError(f"NVML poll interval must be > 0 s, got {poll_seconds}")
        self.devices = tuple(int(d) for d in devices)
        self.poll_seconds = poll_seconds
        self._handles: list[Any] = []
        self._counter: list[bool] = []
        self._start_mj: list[int] = []
        self._samples: list[list[tuple[float, float]]] = []
        self._stop_polling = threading.Event()
        self._poller: threading.Thread | None = None

    def _handle(self, nvml, cuda_index: int):
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        if visible:
            entries = [e.strip() for e in visible.split(",") if e.strip()]
            if cuda_index >= len(entries):
                raise ConfigError(
                    f"GPU {cuda_index} is not visible (CUDA_VISIBLE_DEVICES={visible!r})"
                )
            entry = entries[cuda_index]
            if entry.isdigit():
                return nvml.nvmlDeviceGetHandleByIndex(int(entry))
            return nvml.nvmlDeviceGetHandleByUUID(entry)
        return nvml.nvmlDeviceGetHandleByIndex(cuda_index)

    def _open(self) -> None:
        nvml = _nvml()
        try:
            nvml.nvmlInit()
        except nvml.NVMLError as e:
            raise ResqueError(
                f"NVML is not available ({e}): no NVIDIA driver or GPU here; "
                "use the codecarbon or replay meter"
            ) from None
        try:
            self._handles = [self._handle(nvml, d) for d in self.devices]
            self._counter = []
            for h in self._handles:
                try:
                    nvml.nvmlDeviceGetTotalEnergyConsumption(h)
                    self._counter.append(True)
                except nvml.NVMLError:
                    self._counter.append(False)
        except nvml.NVMLError as e:
            nvml.nvmlShutdown()
            raise ResqueError(f"NVML cannot open GPU(s) {list(self.devices)}: {e}") from None
        except ConfigError:
            nvml.nvmlShutdown()
            raise

    def _close(self) -> None:
        self._stop_poller()
        _nvml().nvmlShutdown()
        self._handles = []

    @property
    def method(self) -> str:
        gpus = ", ".join(str(d) for d in self.devices)
        if self._counter and all(self._counter):
            how = "energy counter"
        elif self._counter and not any(self._counter):
            how = f"power polling every {self.poll_seconds:g} s"
        elif self._counter:
            how = "energy counter / power polling"
        else:
            how = "energy counter or power polling"
        return f"NVML {how} (GPU {gpus} only; CPU and RAM not counted)"

    def _poll(self) -> None:
        nvml = _nvml()
        while True:
            now = time.perf_counter()
            for i, h in enumerate(self._handles):
                if not self._counter[i]:
                    self._samples[i].append((now, nvml.nvmlDeviceGetPowerUsage(h) / 1000.0))
            if self._stop_polling.wait(self.poll_seconds):
                return

    def _stop_poller(self) -> None:
        if self._poller is not None:
            self._stop_polling.set()
            self._poller.join()
            self._poller = None

    def _begin(self) -> None:
        nvml = _nvml()
        self._start_mj = [
            nvml.nvmlDeviceGetTotalEnergyConsumption(h) if c else 0
            for h, c in zip(self._handles, self._counter, strict=True)
        ]
        self._samples = [[] for _ in self._handles]
        if not all(self._counter):
            self._stop_polling.clear()
            self._poller = threading.Thread(target=self._poll, name="nvml-power", daemon=True)
            self._poller.start()

    def _end(self, seconds: float) -> EnergyReading:
        nvml = _nvml()
        end_mj = [
            nvml.nvmlDeviceGetTotalEnergyConsumption(h) if c else 0
            for h, c in zip(self._handles, self._counter, strict=True)
        ]
        if self._poller is not None:
            # one last sample so the integral spans the whole window
            now = time.perf_counter()
            for i, h in enumerate(self._handles):
                if not self._counter[i]:
                    self._samples[i].append((now, nvml.nvmlDeviceGetPowerUsage(h) / 1000.0))
            self._stop_poller()
        components: dict[str, float] = {}
        for i, d in enumerate(self.devices):
            if self._counter[i]:
                joules = (end_mj[i] - self._start_mj[i]) / 1000.0
            else:
                s = self._samples[i]
                joules = sum(
                    (t1 - t0) * (w0 + w1) / 2 for (t0, w0), (t1, w1) in zip(s, s[1:], strict=False)
                )
            components[f"gpu{d}"] = joules
        return EnergyReading(sum(components.values()), seconds, self.method, "measured", components)


# ----------------------------------------------------------------------------- codecarbon
_CPU_MODES = {
    "intel_rapl": ("CPU RAPL", True),
    "windows_emi": ("CPU Windows EMI (RAPL)", True),
    "intel_power_gadget": ("CPU Intel Power Gadget", True),
    "apple_powermetrics": ("CPU powermetrics", True),
    "cpu_load": ("CPU TDP x load", False),
    "constant": ("CPU TDP constant", False),
}
# codecarbon needs a country to start offline; its own CO2 figure is not used (see carbon.py)
_CODECARBON_COUNTRY = "USA"


class CodecarbonMeter(Meter):
    """CPU + RAM (+ the run's GPUs, ``gpu_ids``) energy from codecarbon's offline tracker.

    One tracker per session (starting it costs ~2 s); each window is a codecarbon task.
    """

    name = "codecarbon"

    def __init__(self, *, gpu_ids: Sequence[int] | None = None):
        super().__init__()
        self.gpu_ids = list(gpu_ids) if gpu_ids is not None else []
        self._tracker: Any = None
        self._method = "codecarbon (not started)"
        self._basis: Basis = "estimate"

    def _open(self) -> None:
        os.environ.setdefault("CODECARBON_LOG_LEVEL", "error")
        try:
            from codecarbon import OfflineEmissionsTracker
        except ImportError:
            raise ResqueError(
                "the codecarbon meter needs the codecarbon package: pip install codecarbon, "
                "or use the replay meter"
            ) from None
        logging.getLogger("codecarbon").setLevel(logging.ERROR)
        tracker = OfflineEmissionsTracker(
            country_iso_code=_CODECARBON_COUNTRY,
            output_methods=[],
            save_to_file=False,
            log_level="error",
            tracking_mode="process",
            gpu_ids=self.gpu_ids or None,
        )
        tracker.start()
        self._tracker = tracker
        self._method, self._basis = self._describe(tracker)

    @staticmethod
    def _describe(tracker: Any) -> tuple[str, Basis]:
        parts: list[tuple[int, str]] = []
        measured: list[bool] = []
        for hw in getattr(tracker, "_hardware", []):
            kind = type(hw).__name__
            if kind == "CPU":
                label, ok = _CPU_MODES.get(
                    getattr(hw, "_mode", ""), (f"CPU {getattr(hw, '_mode', '?')}", False)
                )
                parts.append((0, label))
                measured.append(ok)
            elif kind == "RAM":
                parts.append((2, "RAM constant"))
                measured.append(False)
            elif kind == "AppleSiliconChip":
                parts.append((1, f"Apple {getattr(hw, 'chip_part', 'chip')} powermetrics"))
                measured.append(True)
            elif "GPU" in kind:
                parts.append((1, "GPU NVML"))
                measured.append(True)
        what = ", ".join(label for _order, label in sorted(parts))
        if measured and all(measured):
            return f"codecarbon ({what})", "measured"
        if any(measured):
            return f"codecarbon partial estimate ({what})", "partial"
        return f"codecarbon estimate ({what})", "estimate"

    def _close(self) -> None:
        tracker, self._tracker = self._tracker, None
        if tracker is not None:
            if getattr(tracker, "_active_task", None) is not None:
                tracker.stop_task()
            tracker.stop()

    @property
    def method(self) -> str:
        return self._method

    def _begin(self) -> None:
        self._tracker.start_task("window")

    def _end(self, seconds: float) -> EnergyReading:
        data = self._tracker.stop_task()
        if data is None:
            raise ResqueError("codecarbon returned no measurement for the window; see its log")
        components = {
            "cpu": kwh_to_joules(float(data.cpu_energy)),
            "ram": kwh_to_joules(float(data.ram_energy)),
            "gpu": kwh_to_joules(float(data.gpu_energy)),
        }
        joules = kwh_to_joules(float(data.energy_consumed))
        return EnergyReading(joules, seconds, self._method, self._basis, components)


# ----------------------------------------------------------------------------- factory
def make_meter(name: str = "auto", *, device: Any = "cpu", replay_watts: float = 30.0) -> Meter:
    """A meter by name for a run on ``device`` (a torch device or its name): ``auto``
    (= codecarbon), ``codecarbon``, ``nvml`` (CUDA devices only), ``replay`` (fixed
    ``replay_watts`` x wall time). GPU meters cover only the run's GPU."""
    import torch

    dev = torch.device(device)
    gpu_ids = []
    if dev.type == "cuda":
        gpu_ids = [dev.index if dev.index is not None else torch.cuda.current_device()]
    if name in ("auto", "codecarbon"):
        return CodecarbonMeter(gpu_ids=gpu_ids or None)
    if name == "nvml":
        if not gpu_ids:
            raise ConfigError("the nvml meter measures GPUs only: run on a CUDA device")
        return NvmlMeter(gpu_ids)
    if name == "replay":
        return ReplayMeter(watts=replay_watts)
    raise ConfigError(f"unknown meter {name!r}; allowed: {', '.join(METERS)}")
