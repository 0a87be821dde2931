"""Where the units of work of a ranking or a validation run: in this process, or on Ray.

A unit is one call ``work(state, item)``; ``state`` is built once per worker by ``setup(shared,
store)`` (a scorer that loads the checkpoint once, say). Two executors:

- ``local`` (the default, :class:`~resque_core.executor.local.LocalExecutor`): one worker, this
  process, items in order; exceptions propagate as if the loop were written inline, and the
  worker's store is the caller's result cache. This is how the engine has always run.
- ``ray`` (:mod:`resque_core.executor._ray`): a pool of Ray actors, one whole GPU each when the
  cluster has GPUs (never a fraction: NVML energy is per device), else one CPU each. Workers
  never write the result cache: each gets a :class:`~resque_core.executor.records.WorkerStore`
  and the driver writes what it recorded. A worker that dies is retried once, then the item is
  reported as failed (:class:`Outcome` with ``error``) and the others go on; ``cancel()`` is
  polled by the driver, which then stops the running workers, drops the queued items and raises
  :class:`~resque_core.errors.Cancelled` after reporting the finished ones.

Importing this package never imports ray; only :func:`make_executor` with ``"ray"`` does.
"""

from __future__ import annotations

from ..errors import ConfigError
from .base import Executor, Outcome, Pool, Setup, Work
from .records import Record, WorkerStore, write_records

__all__ = [
    "EXECUTORS",
    "Executor",
    "Outcome",
    "Pool",
    "Record",
    "Setup",
    "Work",
    "WorkerStore",
    "make_executor",
    "write_records",
]

EXECUTORS: tuple[str, ...] = ("local", "ray")
"""Executor names accepted by :func:`make_executor` (and ``--executor``)."""


def make_executor(name: str = "local", *, address: str | None = None) -> Executor:
    """The executor called ``name``. ``address`` (ray only): ``auto`` or ``HOST:PORT`` of an
    existing cluster; None starts a local Ray with this machine's CPUs and GPUs."""
    if name == "local":
        if address is not None:
            raise ConfigError("--ray-address needs --executor ray")
        from .local import LocalExecutor

        return LocalExecutor()
    if name == "ray":
        from ._ray import RayExecutor

        return RayExecutor(address=address)
    raise ConfigError(f"unknown executor {name!r}; allowed: {', '.join(EXECUTORS)}")
