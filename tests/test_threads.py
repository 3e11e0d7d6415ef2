"""The GIL is released, concurrent callers are safe and share one pool, and
the pool survives fork()."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import fastseq
from conftest import encode, photo_like


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("thr")
    paths = []
    for i in range(24):
        p = d / f"{i:02d}.jpg"
        p.write_bytes(encode(photo_like(480 + 8 * i, 640 - 4 * i, seed=i), quality=85 + i % 10,
                             subsampling=i % 3))
        paths.append(p)
    return paths


def test_gil_is_released_during_a_batch(files):
    """A pure-Python thread keeps counting while a long load_batch runs."""
    ticks = []
    running = threading.Event()
    stop = threading.Event()

    def spin():
        running.set()
        n = 0
        while not stop.is_set():
            n += 1
            if n % 1000 == 0:
                ticks.append(time.perf_counter())

    fastseq.load_batch(files, (224, 224), dct_scaling=False)     # warm the pool
    t = threading.Thread(target=spin)
    t.start()
    running.wait()
    start = time.perf_counter()
    batch = files * 6
    fastseq.load_batch(batch, (224, 224), dct_scaling=False)
    end = time.perf_counter()
    stop.set()
    t.join()
    during = [x for x in ticks if start <= x <= end]
    # The call took a while, and the Python thread ran through it: with the
    # GIL held it would make no progress until the call returned.
    assert end - start > 0.05
    assert len(during) > 50
    # progress spread over the call, not only at its edges
    mid = [x for x in during if start + (end - start) * 0.25 <= x <= start + (end - start) * 0.75]
    assert len(mid) > 10


def test_concurrent_callers_get_serial_results(files):
    serial = {
        "a": fastseq.load_batch(files, (96, 96)),
        "b": fastseq.load_batch(files[::-1], (64, 80), interpolation="bicubic", dtype="float32",
                                rescale=1 / 255),
        "c": fastseq.load_batch(files[::2], (50, 50), color_mode="grayscale",
                                interpolation="lanczos", dct_scaling=False),
    }
    calls = {
        "a": lambda: fastseq.load_batch(files, (96, 96)),
        "b": lambda: fastseq.load_batch(files[::-1], (64, 80), interpolation="bicubic",
                                        dtype="float32", rescale=1 / 255),
        "c": lambda: fastseq.load_batch(files[::2], (50, 50), color_mode="grayscale",
                                        interpolation="lanczos", dct_scaling=False),
    }
    errors = []

    def worker(key, reps):
        try:
            for _ in range(reps):
                np.testing.assert_array_equal(calls[key](), serial[key])
        except BaseException as e:          # pragma: no cover - reported below
            errors.append((key, e))

    threads = [threading.Thread(target=worker, args=(k, 4)) for k in "abcabc"]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    assert not errors, errors


def test_concurrent_callers_share_one_pool(files):
    n = fastseq.get_num_threads()
    try:
        fastseq.set_num_threads(2)        # a fresh pool: fresh statistics
        from fastseq import _native
        created = _native.pool_stats()["pools_created"]   # the next batch creates it
        assert _native.pool_stats()["live_threads"] == 0
        threads = [threading.Thread(target=fastseq.load_batch, args=(files, (64, 64)))
                   for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        from fastseq import _native
        s = _native.pool_stats()
        assert s["live_threads"] == 2
        assert 1 <= s["peak_busy"] <= 2        # never more busy than the pool size
        assert s["pools_created"] == created + 1   # the six callers shared one pool
        assert s["tasks_run"] == 6 * len(files)
        assert s["tasks_skipped"] == 0
    finally:
        fastseq.set_num_threads(n)


def test_set_num_threads_while_batches_run(files):
    n = fastseq.get_num_threads()
    stop = threading.Event()
    errors = []
    ref = fastseq.load_batch(files[:6], (32, 32))

    def loop():
        try:
            while not stop.is_set():
                np.testing.assert_array_equal(fastseq.load_batch(files[:6], (32, 32)), ref)
        except BaseException as e:     # pragma: no cover
            errors.append(e)

    t = threading.Thread(target=loop)
    t.start()
    try:
        for k in (1, 3, 2, 1, 4):
            fastseq.set_num_threads(k)
            time.sleep(0.02)
            assert fastseq.get_num_threads() == k
    finally:
        stop.set()
        t.join(60)
        fastseq.set_num_threads(n)
    assert not errors


def _child_load(paths, q):
    try:
        b = fastseq.load_batch(paths, (48, 48))
        from fastseq import _native
        q.put((b, _native.pool_stats(), fastseq.get_num_threads()))
    except BaseException as e:           # pragma: no cover
        q.put(e)


def test_forked_child_gets_a_working_pool(files):
    ref = fastseq.load_batch(files, (48, 48))      # the parent's pool is running
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    procs = [ctx.Process(target=_child_load, args=(files, q)) for _ in range(3)]
    for p in procs:
        p.start()
    results = [q.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    for r in results:
        assert not isinstance(r, BaseException), r
        batch, stats, child_threads = r
        np.testing.assert_array_equal(batch, ref)
        assert stats["pools_created"] == 1      # re-created in the child
        # the child's share of the parent's threads (exact sizes: the tests
        # below, which fork all children before any of them decodes)
        assert stats["live_threads"] == child_threads
        assert 1 <= child_threads <= fastseq.get_num_threads()
    # and the parent's pool still works
    np.testing.assert_array_equal(fastseq.load_batch(files, (48, 48)), ref)


def test_fork_while_other_threads_decode(files):
    """fork() from one thread while others are inside load_batch: the fork
    waits for their batches, and the child never deadlocks."""
    script = textwrap.dedent(f"""
        import os, sys, threading, fastseq
        paths = {[str(p) for p in files]!r}
        stop = threading.Event()
        def loop():
            while not stop.is_set():
                fastseq.load_batch(paths, (64, 64))
        ts = [threading.Thread(target=loop) for _ in range(3)]
        for t in ts: t.start()
        for i in range(15):
            pid = os.fork()
            if pid == 0:
                b = fastseq.load_batch(paths[:4], (32, 32))
                os._exit(0 if b.shape == (4, 32, 32, 3) and b.any() else 3)
            _, status = os.waitpid(pid, 0)
            if os.waitstatus_to_exitcode(status) != 0:
                print('child failed', status); sys.exit(1)
        stop.set()
        for t in ts: t.join()
        print('ok')
    """)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                       timeout=180)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stdout + r.stderr[-2000:]


# --- signals -----------------------------------------------------------------

def _run(script, timeout=180, **kw):
    return subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True,
                          text=True, timeout=timeout, **kw)


# The synchronous signals a fault in a worker raises, with faulthandler's name.
CRASH_SIGNALS = [
    ("SIGSEGV", "Segmentation fault"),
    ("SIGBUS", "Bus error"),
    ("SIGFPE", "Floating point exception"),
    ("SIGILL", "Illegal instruction"),
    ("SIGABRT", "Aborted"),
]


@pytest.mark.parametrize("name,text", CRASH_SIGNALS, ids=[n for n, _ in CRASH_SIGNALS])
def test_crash_in_a_worker_reaches_faulthandler(name, text):
    """A fatal signal raised on a worker thread reaches the process's handler
    (here faulthandler's), which reports it before the process dies.  With
    the signal blocked in workers, it stayed pending and nothing was said (a
    real fault then killed the process with an empty stderr)."""
    r = _run(f"""
        import faulthandler, signal, sys
        import fastseq
        from fastseq import _native
        faulthandler.enable()
        _native._debug_crash_in_worker(signal.{name})
        print("survived")
    """)
    sig = getattr(signal, name)
    if "AddressSanitizer:DEADLYSIGNAL" in r.stderr:
        # The sanitizer build (tools/sanitize.sh): ASan's handler runs after
        # faulthandler's and ends the process with its own exit status.
        assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    else:
        assert r.returncode == -sig, (r.returncode, r.stdout, r.stderr)
    assert "survived" not in r.stdout
    assert f"Fatal Python error: {text}" in r.stderr, r.stderr


def test_debug_crash_rejects_other_signals():
    from fastseq import _native
    with pytest.raises(ValueError, match="not a crash signal"):
        _native._debug_crash_in_worker(signal.SIGINT)


def _mask_bits(names):
    return {n: 1 << (getattr(signal, n) - 1) for n in names}


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs Linux /proc")
def test_worker_signal_mask(files):
    """Workers block the asynchronous signals (they must reach Python's main
    thread) and leave the synchronous ones deliverable."""
    r = _run(f"""
        import os, fastseq
        def tids():
            return set(os.listdir("/proc/self/task"))
        before = tids()
        fastseq.load_batch({[str(p) for p in files[:4]]!r}, (32, 32))   # starts the pool
        for tid in sorted(tids() - before):
            with open(f"/proc/self/task/{{tid}}/status") as f:
                blk = [l.split()[1] for l in f if l.startswith("SigBlk:")][0]
            print(int(blk, 16))
        print("threads", fastseq.get_num_threads())
    """)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split()
    masks = [int(x) for x in lines[:-2]]
    assert len(masks) == int(lines[-1])          # exactly the pool's workers
    for mask in masks:
        for n, bit in _mask_bits(["SIGSEGV", "SIGBUS", "SIGFPE", "SIGILL", "SIGABRT",
                                  "SIGTRAP", "SIGSYS"]).items():
            assert not mask & bit, f"{n} blocked in a worker"
        for n, bit in _mask_bits(["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGCHLD",
                                  "SIGUSR1", "SIGALRM", "SIGPIPE"]).items():
            assert mask & bit, f"{n} not blocked in a worker"


@pytest.fixture(scope="module")
def big_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("big")
    paths = []
    for i in range(4):
        p = d / f"big{i}.jpg"
        p.write_bytes(encode(photo_like(1800, 2400, seed=100 + i), quality=92))
        paths.append(str(p))
    return paths


def test_ctrl_c_stops_a_batch_early(big_files):
    """SIGINT during a long batch raises KeyboardInterrupt after the images in
    flight, not at the end of the batch; the images not started are skipped;
    the pool, and fork, still work afterwards."""
    n = 600
    r = _run(f"""
        import os, signal, sys, threading, time
        import numpy as np
        import fastseq
        from fastseq import _native
        paths = {big_files!r}
        size = (224, 224)
        ref = fastseq.load_batch(paths, size, dct_scaling=False)
        before = _native.pool_stats()
        timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
        t0 = time.perf_counter()
        timer.start()
        try:
            fastseq.load_batch(paths * {n // 4}, size, dct_scaling=False)
            print("not interrupted"); sys.exit(1)
        except KeyboardInterrupt:
            pass
        late = time.perf_counter() - t0 - 0.3
        after = _native.pool_stats()
        ran = after["tasks_run"] - before["tasks_run"]
        skipped = after["tasks_skipped"] - before["tasks_skipped"]
        # the pool still works, and so does fork
        np.testing.assert_array_equal(fastseq.load_batch(paths, size, dct_scaling=False), ref)
        pid = os.fork()
        if pid == 0:
            b = fastseq.load_batch(paths, size, dct_scaling=False)
            os._exit(0 if np.array_equal(b, ref) else 3)
        _, status = os.waitpid(pid, 0)
        print(ran, skipped, os.waitstatus_to_exitcode(status), f"{{late:.3f}}")
    """)
    assert r.returncode == 0, r.stdout + r.stderr
    ran, skipped, child, late = r.stdout.split()
    ran, skipped = int(ran), int(skipped)
    assert ran + skipped == n                  # every task ran or was skipped, once
    assert skipped > n // 2, (ran, skipped)    # stopped long before the end
    assert int(child) == 0


# --- fork: the children share the parent's threads ---------------------------

FORK_SPLIT = textwrap.dedent("""
    import json, multiprocessing as mp, os, sys
    import fastseq
    from fastseq import _native
    paths, cases = json.loads(sys.argv[1])

    def child(_):
        fastseq.load_batch(paths, (32, 32))
        return os.getpid(), fastseq.get_num_threads(), _native.pool_stats()["live_threads"]

    def child_sets(_):
        fastseq.set_num_threads(3)             # explicit in the child: wins
        fastseq.load_batch(paths, (32, 32))
        return os.getpid(), fastseq.get_num_threads(), _native.pool_stats()["live_threads"]

    out = []
    for parent, workers, explicit in cases:
        fastseq.set_num_threads(parent)
        fastseq.load_batch(paths, (32, 32))    # the parent's pool is running
        with mp.get_context("fork").Pool(workers) as pool:
            res = pool.map(child_sets if explicit else child, range(4 * workers), chunksize=1)
        out.append([parent, workers, explicit, fastseq.get_num_threads(),
                    sorted({(t, live) for _, t, live in res})])
    print(json.dumps(out))
""")


def test_forked_pool_workers_share_the_parents_threads(files):
    """multiprocessing.Pool (what Keras' use_multiprocessing=True uses) forks
    all its workers before any runs a task: each gets max(1, parent // workers)
    threads, so together they use what the parent would."""
    cases = [(2, 4, False), (8, 2, False), (3, 2, False), (1, 3, False), (2, 1, False),
             (2, 2, True)]
    r = subprocess.run(
        [sys.executable, "-c", FORK_SPLIT, json.dumps([[str(p) for p in files[:4]], cases])],
        capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads(r.stdout)
    for (parent, workers, explicit, parent_after, seen), case in zip(got, cases):
        assert parent_after == parent              # the parent's own size is unchanged
        want = 3 if explicit else max(1, parent // workers)
        # every task saw the same size, in get_num_threads and in the live pool
        assert seen == [[want, want]], (case, seen)


# --- set_num_threads arguments -----------------------------------------------

@pytest.mark.parametrize("n", [0, -1, 1025, 2**31, 2**40, -2**40, 2**70, np.int64(2**40)],
                         ids=str)
def test_set_num_threads_out_of_range_is_a_value_error(n):
    before = fastseq.get_num_threads()
    with pytest.raises(ValueError, match=rf"^number of threads must be between 1 and 1024, got {n}$"):
        fastseq.set_num_threads(n)
    assert fastseq.get_num_threads() == before


@pytest.mark.parametrize("n", [True, 2.0, "2", None], ids=repr)
def test_set_num_threads_non_int_is_a_type_error(n):
    with pytest.raises(TypeError, match="number of threads must be an int, got "):
        fastseq.set_num_threads(n)


@pytest.mark.parametrize("n", [1, 1024, np.int32(3)], ids=repr)
def test_set_num_threads_accepts_the_range(n):
    before = fastseq.get_num_threads()
    try:
        fastseq.set_num_threads(n)
        assert fastseq.get_num_threads() == int(n)
    finally:
        fastseq.set_num_threads(before)
