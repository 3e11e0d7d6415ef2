"""Recycled batch buffers (csrc/bufpool.c, fastseq._native.BatchBuffer,
fastseq.batch.aligned_empty): a buffer is reused only once no array views
it, batches stay 64-byte aligned and writable, the pool is bounded, and a
forked child gets working buffers."""

from __future__ import annotations

import gc
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

import fastseq
from fastseq import _native
from fastseq.batch import aligned_empty

from conftest import photo_like

SHAPE = (16, 96, 128, 3)       # 2.4 MB of float32: pooled


@pytest.fixture
def pool():
    """A pool with a known limit, emptied before and after."""
    limit = _native.bufpool_stats()["limit"]
    _native.bufpool_set_limit(0)
    _native.bufpool_set_limit(256 << 20)
    yield
    _native.bufpool_set_limit(0)
    _native.bufpool_set_limit(limit)


def addr(a):
    return a.__array_interface__["data"][0]


@pytest.mark.parametrize("dtype,shape", [("float32", SHAPE), ("uint8", (16, 192, 128, 3)),
                                         ("float64", SHAPE)])     # 2.4, 1.2, 4.7 MB
def test_batches_are_aligned_writable_and_reused_when_unreferenced(pool, dtype, shape):
    a = aligned_empty(shape, dtype)
    assert a.shape == shape and a.dtype == np.dtype(dtype)
    assert a.flags.c_contiguous and a.flags.writeable and addr(a) % 64 == 0
    a[...] = 7
    p = addr(a)
    before = _native.bufpool_stats()
    del a
    assert _native.bufpool_stats()["kept_buffers"] == before["kept_buffers"] + 1
    b = aligned_empty(shape, dtype)
    assert addr(b) == p and _native.bufpool_stats()["reused"] == before["reused"] + 1


@pytest.mark.parametrize("view", ["slice", "reshape", "memoryview", "base_chain", "tolist_copy"])
def test_a_buffer_is_not_reused_while_anything_views_it(pool, view):
    a = aligned_empty(SHAPE, np.float32)
    a[...] = 3.5
    p = addr(a)
    keep = {"slice": lambda: a[2:5], "reshape": lambda: a.reshape(-1),
            "memoryview": lambda: memoryview(a), "base_chain": lambda: a.base,
            "tolist_copy": lambda: a.copy()}[view]()
    del a
    gc.collect()
    others = [aligned_empty(SHAPE, np.float32) for _ in range(3)]
    for o in others:
        o[...] = -1.0
    if view == "tolist_copy":        # a copy owns its memory: the buffer is free
        assert p in [addr(o) for o in others]
        assert np.all(keep == 3.5)
    else:
        assert p not in [addr(o) for o in others]
        assert np.all(np.asarray(keep).view(np.float32) == 3.5)


def test_the_pool_is_bounded(pool):
    nbytes = int(np.prod(SHAPE)) * 4
    arrays = [aligned_empty(SHAPE, np.float32) for _ in range(12)]
    del arrays
    s = _native.bufpool_stats()
    assert s["kept_buffers"] == 8              # FS_BUFPOOL_MAX_ENTRIES
    assert nbytes * 8 <= s["kept_bytes"] <= s["limit"]
    _native.bufpool_set_limit(3 * nbytes + nbytes // 2)     # 64-byte aligned: cap = nbytes
    assert _native.bufpool_stats()["kept_buffers"] == 3
    _native.bufpool_set_limit(0)                # keeps nothing
    assert _native.bufpool_stats()["kept_buffers"] == 0
    a = aligned_empty(SHAPE, np.float32)
    del a
    assert _native.bufpool_stats()["kept_bytes"] == 0


def test_a_much_larger_buffer_is_not_handed_out_for_a_small_batch(pool):
    big = aligned_empty((64,) + SHAPE[1:], np.float32)
    p = addr(big)
    del big
    small = aligned_empty(SHAPE, np.float32)          # a quarter of it
    assert addr(small) != p
    del small
    last = aligned_empty((33,) + SHAPE[1:], np.float32)  # a short last batch
    assert addr(last) == p


def test_small_arrays_do_not_use_the_pool(pool):
    before = _native.bufpool_stats()
    a = aligned_empty((4, 8, 8, 3), np.float32)
    assert addr(a) % 64 == 0 and a.base is not None
    assert _native.bufpool_stats()["allocated"] == before["allocated"]
    z = aligned_empty((0, 8, 8, 3), np.float32)
    assert z.shape == (0, 8, 8, 3)


def test_arguments_are_checked(pool):
    for bad in (-1, 1.5, True, "1"):
        with pytest.raises(ValueError, match="buffer pool limit must be an int >= 0"):
            _native.bufpool_set_limit(bad)
    with pytest.raises(ValueError, match="nbytes > 0"):
        _native.BatchBuffer(0)
    with pytest.raises(TypeError, match="not picklable"):
        pickle.dumps(_native.BatchBuffer(16))
    a = aligned_empty(SHAPE, np.float32)
    a[...] = 1.25
    b = pickle.loads(pickle.dumps(a))            # an array on it pickles its data
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("value,ok", [("0", True), ("64", True), ("", True),
                                      ("-1", False), ("lots", False)])
def test_env_limit(value, ok):
    code = ("import fastseq; from fastseq import _native; "
            "print(_native.bufpool_stats()['limit'])")
    env = dict(os.environ, FASTSEQ_BUFFER_POOL_MB=value)
    p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    if ok:
        assert p.returncode == 0, p.stderr
        want = (512 << 20) if value == "" else int(value) << 20
        assert int(p.stdout) == want
    else:
        assert p.returncode != 0
        assert "FASTSEQ_BUFFER_POOL_MB must be an integer >= 0, got %r" % value in p.stderr


def test_batches_from_the_pool_hold_the_right_pixels(pool, tmp_path):
    """Reused buffers are fully rewritten: a batch after a batch of other
    images equals the same batch made in a fresh buffer."""
    from PIL import Image
    paths = []
    for i in range(6):
        p = tmp_path / f"{i}.png"
        Image.fromarray(photo_like(70 + i, 90, seed=i)).save(p)
        paths.append(str(p))
    ref = fastseq.load_batch(paths[3:], (192, 256), dtype="float32")   # 1.77 MB: pooled
    assert ref.nbytes >= 1 << 20
    _native.bufpool_set_limit(0)
    _native.bufpool_set_limit(256 << 20)
    first = fastseq.load_batch(paths[:3], (192, 256), dtype="float32")
    p = addr(first)
    del first
    again = fastseq.load_batch(paths[3:], (192, 256), dtype="float32")
    assert addr(again) == p
    np.testing.assert_array_equal(again, ref)


@pytest.mark.skipif(not hasattr(os, "fork"),
                    reason="os.fork is not available on this platform (the test forks a child)")
def test_a_forked_child_gets_working_buffers(pool):
    kept = [aligned_empty(SHAPE, np.float32) for _ in range(2)]
    del kept                                     # the parent keeps two buffers
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:                                  # child: use and recycle them
        ok = 0
        try:
            for _ in range(20):
                a = aligned_empty(SHAPE, np.float32)
                a[...] = 2.0
                ok += int(a.sum() == 2.0 * a.size)
                del a
            s = _native.bufpool_stats()
            ok += int(s["reused"] >= 19)
        finally:
            os.write(w, bytes([ok]))
            os._exit(0)
    os.close(w)
    got = os.read(r, 1)
    os.close(r)
    os.waitpid(pid, 0)
    assert got == bytes([21])
