"""Group commit: index writes from many threads batched into few transactions.

Callers hand over one item and block until the transaction holding it has committed; while
one transaction commits, the next batch gathers, so a busy server commits many instances
per fsync and an idle one commits each at once (no added delay).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

Item = TypeVar("Item")
Result = TypeVar("Result")

_STOP = object()


class GroupCommitter(Generic[Item, Result]):
    """One writer thread applying ``write_batch`` to batches of submitted items."""

    def __init__(
        self,
        write_batch: Callable[[Sequence[Item]], Sequence[Result | Exception]],
        *,
        batch_max: int = 64,
        name: str = "index-writer",
    ) -> None:
        self._write_batch = write_batch
        self._batch_max = max(1, batch_max)
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, item: Item) -> Result:
        """Queue the item and wait until it is committed; re-raises its own failure."""
        future: Future[Result] = Future()
        self._queue.put((item, future))
        return future.result()

    def close(self) -> None:
        """Finish pending work and stop the writer thread."""
        self._queue.put(_STOP)
        self._thread.join(timeout=30)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is _STOP:
                return
            batch = [first]
            while len(batch) < self._batch_max:
                try:
                    extra = self._queue.get_nowait()
                except queue.Empty:
                    break
                if extra is _STOP:
                    stopping = True
                    break
                batch.append(extra)
            self._commit(batch)  # type: ignore[arg-type]

    def _commit(self, batch: list[tuple[Item, Future[Result]]]) -> None:
        try:
            results = self._write_batch([item for item, _ in batch])
        except Exception as exc:  # the whole transaction failed: every caller learns why
            log.error("index batch of %d failed: %s", len(batch), exc)
            for _, future in batch:
                future.set_exception(exc)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)
