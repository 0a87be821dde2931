"""The Ray executor: a pool of actors, each holding one ``setup`` state, fed one item at a time.

Only this module imports ray. The driver keeps the queue itself (one item in flight per actor),
so that cancelling drops queued items that never started, and a worker that dies is noticed per
item: the item goes back to the front of the queue once on a fresh actor, and a second death is
that item's failure. Each actor takes one whole GPU when the cluster has GPUs (NVML energy is
per device, so never a fraction), else one CPU.

``address``: None starts a local Ray with this machine's CPUs and GPUs (or joins the one this
process already started); ``auto`` or ``HOST:PORT`` joins an existing cluster, to which the
``resque_core`` package is shipped as a runtime-env module (the other packages must be installed
on the nodes). Data, plan and checkpoint paths are opened by the workers: they must be reachable
from every node (docs/SCALING.md).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

try:
    import ray
    from ray.exceptions import ActorDiedError, RayActorError, RayTaskError, WorkerCrashedError
except ImportError:  # pragma: no cover - ray is in requirements.txt
    ray = None

from ..errors import Cancelled, ConfigError, ResqueError
from .base import Outcome, Setup, Work
from .records import Record, WorkerStore, write_records

__all__ = ["RayExecutor", "RayPool"]

POLL_SECONDS = 0.1
"""How often the driver looks at ``cancel()`` while units run."""
ATTEMPTS = 2
"""A unit whose worker dies is tried this many times in all."""

_DIED = (ActorDiedError, RayActorError, WorkerCrashedError) if ray is not None else ()


class _Worker:
    """One Ray actor: a state built once, units run on it, records handed back with each."""

    def __init__(self, setup: Setup, shared: Any):
        self.store = WorkerStore()
        self.state = setup(shared, self.store)

    def run(self, work: Work, item: Any, known: Sequence[Record]) -> tuple[Any, list[Record]]:
        self.store.add(known)
        try:
            return work(self.state, item), self.store.take()
        finally:
            self.store.take()

    def pid(self) -> int:
        return os.getpid()


class RayPool:
    def __init__(self, setup: Setup, shared: Any, store: Any, options: dict[str, Any], size: int):
        self._actor_cls = ray.remote(_Worker).options(max_restarts=0, **options)
        self._shared = ray.put(shared)
        self._setup = setup
        self._store = store
        self._size = size
        self._idle: list[Any] = []
        self._all: list[Any] = []

    def _new_actor(self):
        actor = self._actor_cls.remote(self._setup, self._shared)
        self._all.append(actor)
        return actor

    def _kill(self, actor) -> None:
        ray.kill(actor, no_restart=True)
        if actor in self._all:
            self._all.remove(actor)

    def pids(self) -> list[int]:
        """Process ids of the live workers (for tests and diagnostics)."""
        return ray.get([a.pid.remote() for a in self._all])

    def map(
        self,
        work: Work,
        items: Sequence[Any],
        *,
        known: Sequence[Record] = (),
        on_start: Callable[[int], None] | None = None,
        on_done: Callable[[Outcome], None] | None = None,
        cancel: Callable[[], bool] | None = None,
    ) -> list[Outcome]:
        known_ref = ray.put(list(known))
        work_ref = ray.put(work)
        queue = deque(range(len(items)))
        attempts = [0] * len(items)
        outcomes: dict[int, Outcome] = {}
        running: dict[Any, tuple[int, Any]] = {}
        while len(self._all) < min(self._size, len(items)):
            self._idle.append(self._new_actor())
        while queue or running:
            if cancel is not None and cancel():
                self._stop(running)
                raise Cancelled(
                    f"cancelled: {len(outcomes)} of {len(items)} finished and kept, the rest "
                    "stopped"
                )
            while queue and self._idle:
                i = queue.popleft()
                actor = self._idle.pop()
                attempts[i] += 1
                if attempts[i] == 1 and on_start is not None:
                    on_start(i)
                running[actor.run.remote(work_ref, items[i], known_ref)] = (i, actor)
            ready, _ = ray.wait(list(running), num_returns=1, timeout=POLL_SECONDS)
            for ref in ready:
                i, actor = running.pop(ref)
                try:
                    value, records = ray.get(ref)
                except _DIED as e:
                    if getattr(e, "actor_init_failed", False):
                        # setup itself failed: every worker would, so no retry
                        self._stop(running)
                        raise ResqueError(f"a worker could not start: {_reason(e)}") from None
                    self._kill(actor)
                    self._idle.append(self._new_actor())
                    if attempts[i] < ATTEMPTS:
                        queue.appendleft(i)
                        continue
                    outcome = Outcome(
                        i,
                        error=f"the worker died {attempts[i]} times: {_reason(e)}",
                        attempts=attempts[i],
                    )
                except RayTaskError as e:
                    self._stop(running)
                    cause = getattr(e, "cause", None)
                    if isinstance(cause, Exception):
                        raise cause from None
                    raise
                else:
                    self._idle.append(actor)
                    write_records(self._store, records)
                    outcome = Outcome(i, value, attempts=attempts[i], records=records)
                outcomes[i] = outcome
                if on_done is not None:
                    on_done(outcome)
        return [outcomes[i] for i in range(len(items))]

    def _stop(self, running: dict[Any, tuple[int, Any]]) -> None:
        """Kill the actors still running a unit (their partial work is dropped)."""
        for _i, actor in running.values():
            self._kill(actor)
        running.clear()

    def close(self) -> None:
        for actor in list(self._all):
            self._kill(actor)
        self._idle = []

    def __enter__(self) -> RayPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _reason(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:200] if text else type(e).__name__


class RayExecutor:
    name = "ray"
    remote = True

    def __init__(self, address: str | None = None, *, cpus_per_worker: int = 1):
        if ray is None:
            raise ConfigError(
                "the ray executor needs ray: pip install ray==2.60.0 (or use --executor local)"
            )
        if cpus_per_worker < 1:
            raise ConfigError(f"CPUs per worker must be at least 1, got {cpus_per_worker}")
        self.address = address
        self.cpus_per_worker = cpus_per_worker
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {
                "include_dashboard": False,
                "configure_logging": False,
                "log_to_driver": False,
            }
            if address is not None:
                package = Path(__file__).resolve().parent.parent
                kwargs["runtime_env"] = {"py_modules": [str(package)]}
            try:
                ray.init(address=address, **kwargs)
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise ResqueError(
                    f"cannot reach the Ray cluster at {address!r}: {_reason(e)} (start one with "
                    "`ray start --head`, or leave out --ray-address for a local Ray)"
                ) from None

    def resources(self) -> tuple[int, int]:
        """(GPUs, CPUs) of the cluster, whole units."""
        res = ray.cluster_resources()
        return int(res.get("GPU", 0)), int(res.get("CPU", 0))

    def pool(self, setup: Setup, shared: Any, *, store: Any = None) -> RayPool:
        gpus, cpus = self.resources()
        if gpus >= 1:
            options, size = {"num_gpus": 1, "num_cpus": self.cpus_per_worker}, gpus
        else:
            options = {"num_cpus": self.cpus_per_worker}
            size = max(1, cpus // self.cpus_per_worker)
        return RayPool(setup, shared, store, options, size)

    def describe(self) -> str:
        gpus, cpus = self.resources()
        where = self.address or "local Ray"
        unit = f"{gpus} GPU workers (1 GPU each)" if gpus else f"{cpus} CPU workers"
        return f"ray ({where}: {unit})"
