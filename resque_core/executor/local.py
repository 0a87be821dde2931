"""The local executor: one worker, this process, items in order (the engine's own loop).

Nothing is retried, polled or caught here: an exception from a unit (a cancel raised by the
scorer's own check, a checkpoint error) leaves :meth:`LocalPool.map` exactly as it would leave
an inline loop, after the finished items were reported.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .base import Outcome, Setup, Work
from .records import Record

__all__ = ["LocalExecutor", "LocalPool"]


class LocalPool:
    def __init__(self, setup: Setup, shared: Any, store: Any):
        self._state = setup(shared, store)

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
        # ``known`` records are already in the caller's store; ``cancel`` is the units' own.
        out = []
        for i, item in enumerate(items):
            if on_start is not None:
                on_start(i)
            outcome = Outcome(i, work(self._state, item))
            out.append(outcome)
            if on_done is not None:
                on_done(outcome)
        return out

    def close(self) -> None:
        self._state = None

    def __enter__(self) -> LocalPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LocalExecutor:
    name = "local"
    remote = False

    def pool(self, setup: Setup, shared: Any, *, store: Any = None) -> LocalPool:
        return LocalPool(setup, shared, store)

    def describe(self) -> str:
        return "local (this process)"
