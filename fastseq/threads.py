"""The size of fastseq's native thread pool: the default (the CPUs this
process may use, or FASTSEQ_NUM_THREADS) and the public getter/setter.

Importing this module sizes the pool; it starts no thread (the pool starts
its workers at the first batch)."""

from __future__ import annotations

import os
import warnings

import numpy as np

from fastseq import _native

__all__ = ["usable_cpus", "set_num_threads", "get_num_threads"]


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask where the OS has
    one, else all of them)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _default_threads() -> int:
    env = os.environ.get("FASTSEQ_NUM_THREADS")
    if env:
        try:
            n = int(env)
            if n >= 1:
                return min(n, _native.MAX_THREADS)
        except ValueError:
            pass
        warnings.warn(f"ignoring invalid FASTSEQ_NUM_THREADS={env!r}", RuntimeWarning)
    return usable_cpus()


def set_num_threads(n: int) -> None:
    """Resize fastseq's native thread pool (waits for running batches).

    n: an int from 1 to 1024 (ValueError outside, TypeError for a non-int).
    In a forked child, an explicit call replaces the child's share of the
    parent's threads (see get_num_threads)."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"number of threads must be an int, got {type(n).__name__}")
    _native.set_num_threads(int(n))


def get_num_threads() -> int:
    """Size of fastseq's native thread pool.

    In a child forked from a process that had imported fastseq (Keras'
    use_multiprocessing=True, multiprocessing's fork context) the parent's
    size is shared out: max(1, parent size // live children of the parent),
    fixed at the child's first batch or first call of this function, so that
    the children together use the threads the parent would.  On Linux the
    children are counted from /proc; elsewhere each child keeps the parent's
    size."""
    return _native.get_num_threads()


_native.set_num_threads(_default_threads())
