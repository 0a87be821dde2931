"""NVIDIA GPUs as NVML reports them (name, memory, live power draw), for the Settings page.

``pynvml`` comes from the ``nvidia-ml-py`` package. Without an NVIDIA driver (the common case:
laptops, CI) ``nvmlInit`` raises ``NVMLError``; :func:`gpus` then returns None and the app runs
on the CPU.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["GpuInfo", "gpus"]


@dataclass(frozen=True)
class GpuInfo:
    """One GPU: memory in bytes, power in watts (None where the GPU does not report it)."""

    index: int
    name: str
    memory_total_bytes: int
    memory_used_bytes: int
    power_watts: float | None
    power_limit_watts: float | None


def _milliwatts(read: Callable[[Any], int], handle: Any, error: type[Exception]) -> float | None:
    try:
        return read(handle) / 1000.0
    except error:
        return None


def gpus() -> list[GpuInfo] | None:
    """The NVIDIA GPUs of this machine, or None when there is no NVIDIA GPU or driver."""
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return None
    try:
        found = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            name = pynvml.nvmlDeviceGetName(handle)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            found.append(
                GpuInfo(
                    index=i,
                    name=name.decode() if isinstance(name, bytes) else str(name),
                    memory_total_bytes=int(memory.total),
                    memory_used_bytes=int(memory.used),
                    power_watts=_milliwatts(
                        pynvml.nvmlDeviceGetPowerUsage, handle, pynvml.NVMLError
                    ),
                    power_limit_watts=_milliwatts(
                        pynvml.nvmlDeviceGetEnforcedPowerLimit, handle, pynvml.NVMLError
                    ),
                )
            )
        return found
    except pynvml.NVMLError:
        return None
    finally:
        pynvml.nvmlShutdown()
