"""The executor interface: an item's :class:`Outcome`, a worker :class:`Pool`, an
:class:`Executor` (see the package docstring for the two kinds)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from .records import Record

__all__ = ["Executor", "Outcome", "Pool", "Setup", "Work"]


@dataclass
class Outcome:
    """What became of item ``index``: its ``value``, or ``error`` (the worker died on every
    attempt); ``attempts``: how many workers it took; ``records``: the cache records a remote
    worker made for it (already written to the pool's store; empty locally)."""

    index: int
    value: Any = None
    error: str | None = None
    attempts: int = 1
    records: list[Record] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None


Setup = Callable[[Any, Any], Any]
"""``setup(shared, store)``: a worker's state, built once per worker."""
Work = Callable[[Any, Any], Any]
"""``work(state, item)``: one unit; returns a picklable value."""


class Pool(Protocol):
    """Workers holding one ``setup`` state each, reused by every :meth:`map` of the pool."""

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
        """Run ``work`` on every item; outcomes in item order. ``known``: cache records every
        worker may read (sent once through the object store). ``on_done`` is called on the
        driver as each item finishes, after its records were written to the pool's store."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> Pool: ...

    def __exit__(self, *exc: object) -> None: ...


class Executor(Protocol):
    name: str
    remote: bool
    """True when units run in other processes (callbacks and the caller's store do not reach
    them)."""

    def pool(self, setup: Setup, shared: Any, *, store: Any = None) -> Pool:
        """Workers built by ``setup(shared, worker_store)``; ``store``: the driver's result cache
        (local: the workers' store itself; remote: where the driver writes their records)."""
        ...

    def describe(self) -> str:
        """One line: where the work runs (for run documents and the CLI)."""
        ...
