"""Built-in prefetch of the Keras classes: the next batch's images are decoded
on a background thread while the current one is consumed.

Every test compares against ``prefetch=False`` or an independent decode, and
the loaders record which thread decoded each batch, so a prefetch that never
runs (or runs and is never used) fails here too.
"""

from __future__ import annotations

import gc
import os
import pickle
import threading
import time
import warnings

import numpy as np
import pytest

pytest.importorskip("keras")

import fastseq  # noqa: E402
from _keras_helpers import build_class_tree, photo, save  # noqa: E402

DIM = (12, 16)
PREFETCH_THREAD = "fastseq-prefetch"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = build_class_tree(tmp_path_factory.mktemp("prefetch"),
                            {"a": 8, "b": 7, "c": 6}, size=(26, 30), seed=5)
    paths = sorted(str(p) for p in root.rglob("*.jpg"))
    labels = np.array([{"a": 0, "b": 1, "c": 2}[p.rsplit("/", 2)[1]] for p in paths])
    return str(root), paths, labels


def ref_images(paths, interpolation="bilinear"):
    return np.concatenate([fastseq.load_batch([p], DIM, dtype="float32", rescale=1 / 255,
                                              interpolation=interpolation) for p in paths])


class Recording(fastseq.ImageSequence):
    """Records (thread name, sample indexes) of every load_images call."""

    def load_images(self, indexes):
        self.calls.append((threading.current_thread().name, list(map(int, indexes))))
        return super().load_images(indexes)


class RecordingDir(fastseq.DirectoryIterator):
    def load_images(self, indexes):
        self.calls.append((threading.current_thread().name, list(map(int, indexes))))
        return super().load_images(indexes)


def make_seq(paths, labels, cls=Recording, **kw):
    kw.setdefault("batch_size", 4)
    seq = cls(paths, labels, dim=DIM, seed=3, **kw)
    seq.calls = []
    return seq


def make_dir(root, **kw):
    kw.setdefault("batch_size", 4)
    it = RecordingDir(root, fastseq.ImageDataGenerator(rescale=1 / 255), target_size=DIM,
                      seed=3, **kw)
    it.calls = []
    return it


def keras_epochs(ds, epochs):
    """Iterate as Keras' adapter does with workers=1: the two-batch spec
    probe, then per epoch on_epoch_begin, batches in order, on_epoch_end."""
    out = [[ds[0], ds[1]]]
    for _ in range(epochs):
        ds.on_epoch_begin()
        out.append([ds[i] for i in range(len(ds))])
        ds.on_epoch_end()
    return out


def prefetch_threads():
    return [t for t in threading.enumerate() if t.name.startswith(PREFETCH_THREAD)]


@pytest.mark.parametrize("kind", ["seq", "dir"])
def test_sequential_epochs_identical_with_and_without_prefetch(files, kind):
    root, paths, labels = files
    make = (lambda **kw: make_seq(paths, labels, **kw)) if kind == "seq" else \
        (lambda **kw: make_dir(root, **kw))
    on, off = make(), make(prefetch=False)
    got, want = keras_epochs(on, 3), keras_epochs(off, 3)
    for epoch_on, epoch_off in zip(got, want):
        assert len(epoch_on) == len(epoch_off)
        for a, b in zip(epoch_on, epoch_off):
            for u, v in zip(a, b):
                assert u.dtype == v.dtype and u.shape == v.shape
                np.testing.assert_array_equal(u, v)          # bit-exact
    # and the reference decode of the order each epoch used
    assert [name for name, _ in off.calls] == ["MainThread"] * len(off.calls)
    ahead = [name for name, _ in on.calls if name.startswith(PREFETCH_THREAD)]
    # every batch after the first of an epoch comes from the prefetch
    assert len(ahead) >= 3 * (len(on) - 1)
    # one batch ahead at most: the probe's guess (batch 2) is the only extra
    assert len(on.calls) <= len(off.calls) + 1


def test_served_batches_match_an_independent_decode(files):
    _, paths, labels = files
    seq = make_seq(paths, labels, label_mode="int")
    ref = ref_images(paths)
    for _ in range(2):
        seq.on_epoch_begin()
        order = seq.indexes
        x = np.concatenate([seq[i][0] for i in range(len(seq))])
        np.testing.assert_array_equal(x, ref[order])
        seq.on_epoch_end()


def test_random_access_never_serves_a_wrong_batch(files):
    """shuffle=False: batch i is always the order's slice i, whatever the
    request order; the walking runs in there are served from the prefetch."""
    _, paths, labels = files
    seq = make_seq(paths, labels, shuffle=False, label_mode="int")
    ref = ref_images(paths)
    order = seq.indexes.copy()
    for i in [0, 1, 3, 2, 2, 5, 0, -1, 4, 1, 2, 3]:
        x, y = seq[i]
        j = i % len(seq)
        want = order[j * 4:(j + 1) * 4]
        np.testing.assert_array_equal(x, ref[want])
        np.testing.assert_array_equal(y, labels[want])
    np.testing.assert_array_equal(seq.indexes, order)
    # the sequential runs in there (0->1, 2->3...) were served from the prefetch
    assert any(name.startswith(PREFETCH_THREAD) for name, _ in seq.calls)


def test_an_unshuffled_random_order_costs_no_wasted_decodes(files):
    """With shuffle=False batch i must hold the order's slice i, so a
    random request order cannot be served from the prefetch: it guesses only
    after 0 or a sequential pair, a few wasted decodes per epoch at most."""
    _, paths, labels = files
    seq = make_seq(paths, labels, batch_size=2, shuffle=False, label_mode="int")   # 11 batches
    ref = ref_images(paths)
    rng = np.random.default_rng(0)
    served = 0
    for _ in range(3):
        seq.on_epoch_begin()
        for i in rng.permutation(len(seq)):
            x, _ = seq[int(i)]
            np.testing.assert_array_equal(x, ref[i * 2:(i + 1) * 2])
            served += 1
        seq.on_epoch_end()
    wasted = len(seq.calls) - served
    assert wasted <= 3 * 3


def make_pair(files, kind, **kw):
    """A prefetching dataset and a prefetch=False twin, plus the twin's
    batch for given sample indexes (the unprefetched path end to end)."""
    root, paths, labels = files
    if kind == "seq":
        on, off = (make_seq(paths, labels, label_mode="int", prefetch=p, **kw)
                   for p in (True, False))

        def reference(idx):
            return off.process_batch(off.load_images(idx), off.make_labels(idx), idx)
    else:
        on, off = (make_dir(root, prefetch=p, **kw) for p in (True, False))

        def reference(idx):
            return off._get_batches_of_transformed_samples(idx)
    return on, reference


def request_orders(n, seed):
    """Per epoch: Keras' probe (0, 1) before on_epoch_begin, then a random
    permutation of the batches with some batches asked for again."""
    rng = np.random.default_rng(seed)
    for _ in range(4):
        order = [int(i) for i in rng.permutation(n)]
        for _ in range(3):                   # repeats of already served batches
            pos = int(rng.integers(1, len(order) + 1))
            order.insert(pos, order[int(rng.integers(0, pos))])
        yield order


@pytest.mark.parametrize("kind", ["seq", "dir"])
@pytest.mark.parametrize("batch_size", [3, 4])       # 7 full batches; 5 full + 1 of 1
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_shuffled_random_order_serves_each_sample_once(files, kind, batch_size, seed):
    """fit(shuffle=True) asks in a random order: the batch decoded ahead is
    served for the batch asked for (their slices swapped), and still every
    sample comes exactly once per epoch, repeated requests give the same
    batch, and images and labels are those of the served indexes."""
    on, reference = make_pair(files, kind, batch_size=batch_size)
    n_samples, n = on.n if kind == "dir" else len(on.paths), len(on)
    for requests in request_orders(n, seed):
        on[0], on[1]                         # the spec probe
        on.on_epoch_begin()
        before = on.indexes
        frozen = before.copy()
        first = {}
        for i in requests:
            got = on[i]
            idx = on.batch_indexes(i).copy()     # what batch i holds once served
            want = reference(idx)
            for u, v in zip(got, want):
                assert u.dtype == v.dtype and u.shape == v.shape
                np.testing.assert_array_equal(u, v)
            if i in first:                   # asked again: the same samples
                np.testing.assert_array_equal(idx, first[i])
            first.setdefault(i, idx)
            assert len(idx) == min(batch_size, n_samples - i * batch_size)
        served = np.concatenate([first[i] for i in range(n)])
        np.testing.assert_array_equal(np.sort(served), np.arange(n_samples))
        np.testing.assert_array_equal(before, frozen)        # never swapped in place
        on.on_epoch_end()


@pytest.mark.parametrize("kind", ["seq", "dir"])
def test_a_shuffled_random_order_is_served_from_the_prefetch(files, kind):
    """The point of the swap: with N batches asked for in a random order,
    the calling thread decodes about one of them per epoch (the first), not
    N; the short last batch can add one more."""
    for batch_size, extra in [(3, 0), (4, 1)]:
        on, _ = make_pair(files, kind, batch_size=batch_size)
        rng = np.random.default_rng(batch_size)
        on[0], on[1]
        on.calls.clear()
        for _ in range(4):
            on.on_epoch_begin()
            for i in rng.permutation(len(on)):
                on[int(i)]
            on.on_epoch_end()
        main = [name for name, _ in on.calls if name == "MainThread"]
        ahead = [name for name, _ in on.calls if name.startswith(PREFETCH_THREAD)]
        assert len(main) <= 4 * (1 + extra)
        assert len(ahead) >= 4 * (len(on) - 1 - extra)


def test_no_swap_without_shuffle_or_with_keras_workers(files):
    _, paths, labels = files
    rng = np.random.default_rng(7)
    for kw in ({"shuffle": False}, {"workers": 2}, {"prefetch": False}):
        seq = make_seq(paths, labels, label_mode="int", **kw)
        order = seq.indexes
        for i in rng.permutation(len(seq)):
            x, y = seq[int(i)]
            np.testing.assert_array_equal(y, labels[order[i * 4:(i + 1) * 4]])
        assert seq.indexes is order


def test_a_second_pass_without_an_epoch_boundary_repeats_the_batches(files):
    """Batches served once keep their samples until the epoch ends, whatever
    is asked for afterwards."""
    _, paths, labels = files
    seq = make_seq(paths, labels, label_mode="int")
    rng = np.random.default_rng(3)
    seq.on_epoch_begin()
    first = {}
    for i in rng.permutation(len(seq)):
        first[int(i)] = seq[int(i)][1]
    for i in rng.permutation(len(seq)):
        np.testing.assert_array_equal(seq[int(i)][1], first[int(i)])
    seq.on_epoch_end()                       # a new epoch: a new record of served batches
    assert not seq._served


class Gated(Recording):
    """Prefetched decodes wait for `gate`: lets a test reshuffle while the
    decode of the old order's next batch is still running."""

    def load_images(self, indexes):
        if threading.current_thread().name.startswith(PREFETCH_THREAD):
            self.started.set()
            assert self.gate.wait(10)
        return super().load_images(indexes)


@pytest.mark.parametrize("finished", [False, True])
def test_reshuffle_discards_the_batch_decoded_with_the_old_order(files, finished):
    _, paths, labels = files
    seq = make_seq(paths, labels, cls=Gated, label_mode="int")
    seq.gate, seq.started = threading.Event(), threading.Event()
    ref = ref_images(paths)
    seq[0]                                   # starts decoding batch 1, old order
    assert seq.started.wait(10)
    if finished:                             # the old order's batch 1 is ready
        seq.gate.set()
        seq._prefetcher._pending[1].result(timeout=10)
    old = seq.indexes
    seq.on_epoch_end()
    assert not np.array_equal(seq.indexes, old)
    seq.gate.set()
    x, y = seq[1]
    new = seq.indexes[4:8]
    np.testing.assert_array_equal(x, ref[new])
    np.testing.assert_array_equal(y, labels[new])


def test_new_epoch_with_an_unchanged_order_recomputes(files):
    """shuffle=False keeps the order, but a batch decoded before an epoch
    boundary is still not served after it (load_images may depend on the
    epoch)."""
    _, paths, labels = files

    class Epochal(Recording):
        epoch = 0

        def load_images(self, indexes):
            return super().load_images(indexes) + self.epoch

        def on_epoch_end(self):
            super().on_epoch_end()
            self.epoch += 1

    seq = make_seq(paths, labels, cls=Epochal, shuffle=False, label_mode="int")
    ref = ref_images(paths)
    seq[0]                                   # prefetches batch 1 for epoch 0
    seq._prefetcher._pending[1].result(timeout=10)
    seq.on_epoch_end()
    np.testing.assert_array_equal(seq[1][0], ref[4:8] + 1)


def test_an_order_swapped_in_without_on_epoch_end_is_followed(files):
    """A subclass that draws its own order (class-balanced sampling, say)
    may assign `indexes` directly: the batch decoded for the old order's
    next position is not served for the new one."""
    _, paths, labels = files
    seq = make_seq(paths, labels, label_mode="int")
    ref = ref_images(paths)
    seq[0]                                   # prefetches the old order's batch 1
    seq._prefetcher._pending[1].result(timeout=10)
    seq.indexes = seq.indexes[::-1].copy()
    x, y = seq[1]
    np.testing.assert_array_equal(x, ref[seq.indexes[4:8]])
    np.testing.assert_array_equal(y, labels[seq.indexes[4:8]])


def test_an_error_while_prefetching_surfaces_with_its_batch(tmp_path):
    paths = [str(save(tmp_path / f"{i:02d}.jpg", photo(20, 20, i))) for i in range(8)]
    bad = tmp_path / "05.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not a jpeg at all")
    seq = fastseq.ImageSequence(paths, batch_size=3, dim=DIM, shuffle=False, label_mode=None)
    seq[0]                                   # prefetch of batch 1 (holding 05.jpg) fails
    job = seq._prefetcher._pending[1]
    assert isinstance(job.exception(timeout=10), fastseq.ImageDecodeError)
    with pytest.raises(fastseq.ImageDecodeError) as e:
        seq[1]
    assert e.value.source.endswith("05.jpg") and "05.jpg" in str(e.value)
    np.testing.assert_array_equal(seq[2], ref_images(paths[6:]))
    # a failed prefetch that is not asked for is never reported
    seq[0]
    seq.on_epoch_end()
    np.testing.assert_array_equal(seq[2], ref_images(paths[6:]))


def test_warnings_of_a_prefetched_batch_come_when_it_is_served(tmp_path):
    paths = [str(save(tmp_path / f"{i:02d}.jpg", photo(20, 20, i))) for i in range(6)]
    (tmp_path / "04.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg at all")
    seq = fastseq.ImageSequence(paths, batch_size=3, dim=DIM, shuffle=False,
                                label_mode=None, on_error="warn")
    with warnings.catch_warnings(record=True) as early:
        warnings.simplefilter("always")
        seq[0]
        seq._prefetcher._pending[1].result(timeout=10)
    assert not [w for w in early if w.category is fastseq.ImageDecodeWarning]
    with warnings.catch_warnings(record=True) as served:
        warnings.simplefilter("always")
        x = seq[1]
    msgs = [str(w.message) for w in served if w.category is fastseq.ImageDecodeWarning]
    assert len(msgs) == 1 and "04.jpg" in msgs[0] and "batch index 1" in msgs[0]
    # the same text as load_batch's own warning, from an unprefetched decode
    with warnings.catch_warnings(record=True) as direct:
        warnings.simplefilter("always")
        fastseq.load_batch(paths[3:6], DIM, on_error="warn")
    assert msgs == [str(w.message) for w in direct if w.category is fastseq.ImageDecodeWarning]
    assert not x[1].any() and x[0].any() and x[2].any()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_restarts_the_prefetch(files):
    """As in a use_multiprocessing worker: the parent's prefetch thread (and
    the job it holds) do not exist in the child, which must neither wait for
    them nor serve their batch."""
    _, paths, labels = files
    seq = make_seq(paths, labels, cls=Gated, label_mode="int")
    seq.gate, seq.started = threading.Event(), threading.Event()
    ref = ref_images(paths)
    seq[0]
    assert seq.started.wait(10)              # the parent's job is running, held
    order = seq.indexes
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:                             # child
        code = 1
        try:
            os.close(r)
            seq.gate.set()                   # the child's own jobs run freely
            ok = True
            for i in range(len(seq)):
                x, _ = seq[i]
                ok &= np.array_equal(x, ref[order[i * 4:(i + 1) * 4]])
            ahead = [n for n, _ in seq.calls[1:] if n.startswith(PREFETCH_THREAD)]
            os.write(w, f"{int(ok)} {len(ahead)}".encode())
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    deadline = time.monotonic() + 60
    while True:                              # a child stuck on the parent's job hangs
        done, status = os.waitpid(pid, os.WNOHANG)
        if done or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    if not done:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    with os.fdopen(r) as f:
        answer = f.read()
    seq.gate.set()
    assert done, "the forked child hung (waiting for the parent's prefetch?)"
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, answer
    ok, ahead = map(int, answer.split())
    assert ok == 1
    assert ahead >= len(seq) - 2             # the child prefetched on its own thread
    np.testing.assert_array_equal(seq[1][0], ref[order[4:8]])


def test_pickled_copies_drop_the_thread_and_still_prefetch(files):
    root, paths, labels = files
    for ds in (make_seq(paths, labels, label_mode="int"), make_dir(root)):
        ds[0]
        assert ds._prefetcher is not None
        copy = pickle.loads(pickle.dumps(ds))
        assert copy._prefetcher is None and copy.prefetch
        copy.calls = []
        a = [copy[i] for i in range(len(copy))]
        b = [ds[i] for i in range(len(ds))]
        for u, v in zip(a, b):
            np.testing.assert_array_equal(u[0], v[0])
            np.testing.assert_array_equal(u[1], v[1])
        assert any(n.startswith(PREFETCH_THREAD) for n, _ in copy.calls)


def test_no_thread_outlives_the_dataset(files):
    root, paths, labels = files
    before = set(prefetch_threads())
    for make in (lambda: make_seq(paths, labels), lambda: make_dir(root)):
        ds = make()
        for i in range(len(ds)):
            ds[i]
        assert set(prefetch_threads()) - before, "no prefetch thread ran"
        del ds
        gc.collect()
        deadline = time.monotonic() + 10
        while set(prefetch_threads()) - before and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not set(prefetch_threads()) - before, "a prefetch thread outlived its dataset"


def test_off_with_prefetch_false_or_keras_workers(files):
    root, paths, labels = files
    for ds in (make_seq(paths, labels, prefetch=False), make_seq(paths, labels, workers=2),
               make_dir(root, prefetch=False), make_dir(root, workers=3)):
        for i in range(len(ds)):
            ds[i]
        assert ds._prefetcher is None
        assert [n for n, _ in ds.calls] == ["MainThread"] * len(ds)
    with pytest.raises(TypeError, match="prefetch"):
        fastseq.ImageSequence(paths, labels, dim=DIM, prefetch="yes")
    with pytest.raises(TypeError, match="prefetch"):
        fastseq.ImageDataGenerator().flow_from_directory(root, target_size=DIM, prefetch=1)


def test_save_to_dir_writes_only_served_batches(files, tmp_path):
    root, _, _ = files
    it = fastseq.ImageDataGenerator().flow_from_directory(
        root, target_size=DIM, batch_size=4, shuffle=False, save_to_dir=str(tmp_path))
    it[0]
    it._prefetcher._pending[1].result(timeout=10)    # batch 1 decoded, not served
    assert len(os.listdir(tmp_path)) == 4
