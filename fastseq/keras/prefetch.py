"""One batch decoded ahead, on one background thread.

fastseq decodes a batch on its own native pool with the GIL released, so a
single Python thread that calls ``load_images`` for the next batch is enough
to keep the pool busy while Keras consumes the current one; Keras' workers
are not needed for that.

Invariants:

- **Exactness.** A prefetched result is served only for the same key it was
  computed for (the datasets use the sample indexes themselves, and discard
  the pending job at every epoch boundary), so a wrong guess, a random
  access or a reshuffle can only cost a wasted decode, never a wrong batch.
- **Bounded memory.** One executor thread and one pending job: at any time at
  most one batch is being decoded or held here.  A job that was guessed
  wrong is cancelled if it has not started; if it has, its result is
  dropped when it finishes, and the next job waits behind it on the same
  thread.
- **Fork and pickle.** A forked child has the parent's objects but not its
  threads: the first use in a new process drops them (never waits on them)
  and starts afresh.  Pickled copies carry none of this state.
- **Errors** raised by the job are re-raised when its batch is requested;
  ``on_error="warn"`` warnings are replayed then too (see
  :func:`fastseq.errors.collect_warnings`), so they come with the batch that has the
  file and never for a batch that is not served.

Imports no Keras.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Hashable

from fastseq.errors import collect_warnings

__all__ = ["Prefetcher", "MISS"]

#: Returned by :meth:`Prefetcher.claim` when nothing was computed for the key.
MISS = object()


class Prefetcher:
    """A slot for one result computed ahead on a background thread."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        # Also what a forked child does on first use: the parent's lock may
        # have been held by a thread that does not exist here, and its
        # executor's thread is gone, so both are replaced, never used.
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._pending: tuple[Hashable, Future] | None = None

    def _check_process(self) -> None:
        if self._pid != os.getpid():
            self._reset()

    def claim(self, key: Hashable) -> Any:
        """The job computed for `key`, as a Future, or :data:`MISS`.
        Whatever else was pending is discarded."""
        self._check_process()
        with self._lock:
            pending, self._pending = self._pending, None
        if pending is None:
            return MISS
        if pending[0] == key:
            return pending[1]
        pending[1].cancel()
        return MISS

    def submit(self, key: Hashable, fn: Callable[..., Any], *args: Any) -> None:
        """Start computing ``fn(*args)`` for `key` in the background,
        replacing (and cancelling) any pending job."""
        self._check_process()
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    max_workers=1, thread_name_prefix="fastseq-prefetch")
            old = self._pending
            self._pending = (key, self._executor.submit(collect_warnings, fn, args))
        if old is not None:
            old[1].cancel()

    def discard(self) -> None:
        """Forget the pending job (cancelled if it has not started)."""
        self._check_process()
        with self._lock:
            pending, self._pending = self._pending, None
        if pending is not None:
            pending[1].cancel()

    def close(self) -> None:
        """Discard the pending job and let the thread exit (it finishes the
        job it is running first; this does not wait for it)."""
        self._check_process()
        self.discard()
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)

    def __del__(self) -> None:
        # The executor's thread also exits by itself once the executor is
        # garbage; closing here makes that immediate.  In a forked child the
        # executor is the parent's and must not be touched.
        try:
            if self._pid == os.getpid() and self._executor is not None:
                self._executor.shutdown(wait=False, cancel_futures=True)
        except Exception:
            pass

    def __getstate__(self) -> dict:
        raise TypeError("a Prefetcher holds a thread and is not picklable; "
                        "datasets drop it when pickled")

