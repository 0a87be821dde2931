"""One kind of background job for every long computation a UI or a notebook watches.

A :class:`Job` runs one engine call (a ranking, a validation, a calibration) in a daemon thread
and keeps the state a reader polls: the current stage and its batches, whether it still runs,
how long it took, and at the end ``result`` (the call's JSON document) or ``error`` (a message;
the worker never raises). :meth:`Job.cancel` sets the event the call reads after every batch.
The worker only replaces attributes (lists are replaced, never mutated), so a reader in another
thread always sees a consistent value. A job holds the plan and the call's keyword ``options``;
subclasses say which call runs (:meth:`Job._call`) and keep the per-item state their callbacks
receive.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from typing import Any

from .errors import ResqueError

__all__ = ["Job"]


class Job(ABC):
    """A background computation on ``plan`` with progress, cancel and one outcome (``result``
    or ``error``); ``options`` are the engine call's keyword arguments except the callbacks."""

    name = "resque-job"

    def __init__(self, plan: Any, **options: Any) -> None:
        self.plan = plan
        self.options = options
        self.stage, self.stage_done, self.stage_total = "", 0, 0
        self.result: dict[str, Any] | None = None
        self.error: str | None = None
        self.started = time.perf_counter()
        self.ended: float | None = None
        self.cancel_event = threading.Event()
        self.finished = threading.Event()
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------- for the reader
    @property
    def running(self) -> bool:
        """Started and not finished yet."""
        return self._thread is not None and not self.finished.is_set()

    @property
    def cancelling(self) -> bool:
        return self.cancel_event.is_set()

    @property
    def elapsed(self) -> float:
        """Seconds since the job was created (frozen when it ends)."""
        return (self.ended or time.perf_counter()) - self.started

    def start(self) -> Job:
        self._thread = threading.Thread(target=self._work, name=self.name, daemon=True)
        self._thread.start()
        return self

    def cancel(self) -> None:
        """Stop within one batch; what finished is kept."""
        self.cancel_event.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job ends (or ``timeout`` seconds); True if it ended."""
        return self.finished.wait(timeout)

    # ----------------------------------------------------------------- for the worker
    def _progress(self, stage: str, done: int, total: int) -> None:
        self.stage, self.stage_done, self.stage_total = stage, done, total

    @abstractmethod
    def _call(self) -> dict[str, Any]:
        """The engine call, with this job's callbacks and ``cancel=self.cancel_event.is_set``;
        returns its JSON document."""

    def _finish(self) -> None:
        """Runs in the worker once the call has returned or failed (before ``finished``);
        nothing by default."""
        return None

    def _work(self) -> None:
        try:
            self.result = self._call()
        except ResqueError as e:
            self.error = str(e)
        except Exception as e:  # noqa: BLE001 - a worker must always report and finish
            self.error = f"unexpected error ({type(e).__name__}): {e}"
        finally:
            self._finish()
            self.ended = time.perf_counter()
            self.finished.set()
