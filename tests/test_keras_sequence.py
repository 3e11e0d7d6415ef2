"""fastseq.ImageSequence: the tutorials' custom Keras generator on the C
core.  Also the buffer-safety tests (issue section 5) for both Keras
classes, through the PyDataset adapter's tf.data dataset that fit uses."""

from __future__ import annotations

import pathlib
import warnings

import numpy as np
import pytest

pytest.importorskip("keras")

import keras  # noqa: E402

import fastseq  # noqa: E402
from _keras_helpers import build_class_tree, needs_tensorflow, photo, save  # noqa: E402

DIM = (20, 24)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = build_class_tree(tmp_path_factory.mktemp("seq"), {"a": 9, "b": 8, "c": 6})
    paths = sorted(str(p) for p in root.rglob("*.jpg"))
    labels = np.array([{"a": 0, "b": 1, "c": 2}[p.rsplit("/", 2)[1]] for p in paths])
    return paths, labels


def ref_images(paths, dim=DIM, **kw):
    """Independent decode, one image per call."""
    kw.setdefault("dtype", "float32")
    kw.setdefault("interpolation", "bilinear")
    return np.concatenate([fastseq.load_batch([p], dim, **kw) for p in paths])


# -- the Sequence contract ------------------------------------------------------

def test_is_a_pydataset_and_batches_cover_the_data(files):
    paths, labels = files
    seq = fastseq.ImageSequence(paths, labels, batch_size=5, dim=DIM, shuffle=False)
    assert isinstance(seq, keras.utils.PyDataset) and isinstance(seq, keras.utils.Sequence)
    assert len(seq) == 5
    xs, ys = zip(*(seq[i] for i in range(len(seq))))
    assert [len(x) for x in xs] == [5, 5, 5, 5, 3]
    x, y = np.concatenate(xs), np.concatenate(ys)
    np.testing.assert_array_equal(x, ref_images(paths) * np.float32(1 / 255))
    assert x.dtype == np.float32 and x.shape == (23, *DIM, 3)
    assert y.dtype == np.float32 and y.shape == (23, 3)
    np.testing.assert_array_equal(y, np.eye(3, dtype=np.float32)[labels])
    assert seq.n_classes == 3


def test_index_errors(files):
    paths, labels = files
    seq = fastseq.ImageSequence(paths, labels, batch_size=10, dim=DIM)
    with pytest.raises(IndexError):
        seq[3]
    with pytest.raises(IndexError):
        seq[-4]
    with pytest.raises(TypeError):
        seq[1.0]
    assert len(seq[-1][0]) == 3 and len(seq[np.int64(0)][0]) == 10


def test_shuffle_is_deterministic_for_a_seed_and_reshuffles(files):
    paths, labels = files

    def epochs(seed, n=3):
        seq = fastseq.ImageSequence(paths, labels, batch_size=4, dim=DIM, seed=seed)
        out = []
        for _ in range(n):
            out.append(seq.indexes.copy())
            seq.on_epoch_end()
        return out

    a, b, c = epochs(11), epochs(11), epochs(12)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))
    assert not np.array_equal(a[0], a[1]) and not np.array_equal(a[1], a[2])
    for order in a:
        assert sorted(order) == list(range(len(paths)))


def test_batches_follow_the_epoch_order(files):
    paths, labels = files
    seq = fastseq.ImageSequence(paths, labels, batch_size=6, dim=DIM, seed=5,
                                label_mode="int", rescale=None)
    seq.on_epoch_end()
    order = seq.indexes
    x, y = seq[2]
    np.testing.assert_array_equal(x, ref_images([paths[i] for i in order[12:18]]))
    np.testing.assert_array_equal(y, labels[order[12:18]])


def test_no_shuffle_keeps_order_across_epochs(files):
    paths, labels = files
    seq = fastseq.ImageSequence(paths, labels, dim=DIM, shuffle=False)
    seq.on_epoch_end()
    np.testing.assert_array_equal(seq.indexes, np.arange(len(paths)))


def test_unseeded_shuffle_uses_numpys_global_generator(files):
    paths, labels = files
    keras.utils.set_random_seed(3)
    a = fastseq.ImageSequence(paths, labels, dim=DIM).indexes
    keras.utils.set_random_seed(3)
    b = fastseq.ImageSequence(paths, labels, dim=DIM).indexes
    np.testing.assert_array_equal(a, b)


# -- labels -------------------------------------------------------------------------

@pytest.mark.parametrize("mode,dtype,shape", [
    ("categorical", np.float32, (7, 3)), ("int", np.int32, (7,)),
    ("sparse", np.int32, (7,)),
])
def test_label_modes(files, mode, dtype, shape):
    paths, labels = files
    seq = fastseq.ImageSequence(paths, labels, batch_size=7, dim=DIM, shuffle=False,
                                label_mode=mode)
    _, y = seq[1]
    assert y.dtype == dtype and y.shape == shape
    got = y.argmax(1) if mode == "categorical" else y
    np.testing.assert_array_equal(got, labels[7:14])


def test_binary_labels(files):
    paths, _ = files
    lab = np.arange(len(paths)) % 2
    seq = fastseq.ImageSequence(paths, lab, batch_size=4, dim=DIM, shuffle=False,
                                label_mode="binary")
    _, y = seq[0]
    assert y.dtype == np.float32 and y.shape == (4, 1)
    np.testing.assert_array_equal(y[:, 0], [0, 1, 0, 1])
    with pytest.raises(ValueError, match="binary"):
        fastseq.ImageSequence(paths, np.arange(len(paths)) % 3, label_mode="binary")


def test_explicit_n_classes(files):
    paths, labels = files
    seq = fastseq.ImageSequence(paths, labels, n_classes=5, batch_size=3, dim=DIM)
    assert seq[0][1].shape == (3, 5)
    with pytest.raises(ValueError, match="n_classes=2"):
        fastseq.ImageSequence(paths, labels, n_classes=2)


@pytest.mark.parametrize("targets", [
    lambda n: np.linspace(0, 1, n, dtype=np.float32),                 # regression
    lambda n: (np.arange(n * 4).reshape(n, 4) % 3 == 0).astype(np.float32),  # multi-label
    lambda n: np.arange(n * 6, dtype=np.float64).reshape(n, 2, 3),
], ids=["regression", "multi-label", "3-d"])
def test_raw_targets(files, targets):
    paths, _ = files
    t = targets(len(paths))
    seq = fastseq.ImageSequence(paths, t, batch_size=5, dim=DIM, seed=1, label_mode="raw")
    _, y = seq[1]
    np.testing.assert_array_equal(y, t[seq.indexes[5:10]])
    assert y.dtype == t.dtype


def test_class_names_and_label_mapping(files):
    paths, labels = files
    names = np.array(["zebra", "ant", "moth"])[labels]
    seq = fastseq.ImageSequence(paths, list(names), batch_size=23, dim=DIM, shuffle=False,
                                label_mode="int")
    assert seq.class_names == ["ant", "moth", "zebra"]
    np.testing.assert_array_equal(seq[0][1], np.searchsorted(seq.class_names, names))
    mapping = {p: int(k) for p, k in zip(paths, labels)}
    by_dict = fastseq.ImageSequence(paths, mapping, batch_size=23, dim=DIM, shuffle=False)
    np.testing.assert_array_equal(by_dict[0][1].argmax(1), labels)


def test_no_labels_gives_x_only(files):
    paths, _ = files
    for seq in (fastseq.ImageSequence(paths, batch_size=4, dim=DIM),
                fastseq.ImageSequence(paths, batch_size=4, dim=DIM, label_mode=None)):
        x = seq[0]
        assert isinstance(x, np.ndarray) and x.shape == (4, *DIM, 3)


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(labels="short"), ValueError, "one label per path"),
    (dict(labels="scalar"), ValueError, "one label per path"),
    (dict(label_mode="onehot"), ValueError, "label_mode"),
    (dict(label_mode=None, labels="same"), ValueError, "label_mode=None"),
    (dict(labels="2d"), ValueError, "label_mode='raw'"),
    (dict(labels="float"), ValueError, "label_mode='raw'"),
    (dict(labels="negative"), ValueError, ">= 0"),
    (dict(labels="dict-missing"), ValueError, "no entry"),
    (dict(n_channels=2), ValueError, "n_channels"),
    (dict(dtype="uint8"), ValueError, "rescale=None"),
    (dict(interpolation="cubic"), ValueError, "interpolation"),
    (dict(batch_size=0), ValueError, "batch_size"),
    (dict(seed=1.5), TypeError, "seed"),
    (dict(on_error="skip"), ValueError, "on_error"),
    (dict(dim=(0, 3)), ValueError, "target_size"),
    (dict(workers_typo=2), TypeError, "workers_typo"),
])
def test_invalid_arguments(files, kwargs, exc, match):
    paths, labels = files
    special = {"same": labels, "2d": np.eye(3)[labels], "float": labels + 0.5,
               "negative": labels - 1, "dict-missing": {paths[0]: 0}, "scalar": np.array(5),
               "short": [0, 1]}
    kwargs = dict(kwargs, labels=special[kwargs.get("labels", "same")])
    with pytest.raises(exc, match=match):
        fastseq.ImageSequence(paths, **kwargs)


@pytest.mark.parametrize("one", ["one.jpg", b"one.jpg", pathlib.Path("one.jpg")])
def test_single_path_is_refused(one):
    with pytest.raises(TypeError) as ei:
        fastseq.ImageSequence(one)
    assert str(ei.value) == "paths must be a sequence of image paths, not a single path"


def test_paths_that_are_not_a_sequence_are_a_type_error_naming_them():
    with pytest.raises(TypeError) as ei:
        fastseq.ImageSequence(123, [0])
    assert str(ei.value) == "paths must be a sequence of image paths, got int"


# -- images -------------------------------------------------------------------------

@pytest.mark.parametrize("n_channels,color_mode", [(1, "grayscale"), (3, "rgb"), (4, "rgba")])
def test_channels(files, n_channels, color_mode):
    paths, labels = files
    seq = fastseq.ImageSequence(paths[:4], labels[:4], batch_size=4, dim=DIM,
                                n_channels=n_channels, shuffle=False)
    x, _ = seq[0]
    assert x.shape == (4, *DIM, n_channels)
    np.testing.assert_array_equal(
        x, ref_images(paths[:4], color_mode=color_mode) * np.float32(1 / 255))


def test_uint8_and_options(files):
    paths, labels = files
    seq = fastseq.ImageSequence(paths[:3], labels[:3], dim=(16, 16), shuffle=False,
                                dtype="uint8", rescale=None, interpolation="nearest",
                                keep_aspect_ratio=True, dct_scaling=False)
    x, _ = seq[0]
    assert x.dtype == np.uint8
    np.testing.assert_array_equal(x, fastseq.load_batch(
        paths[:3], (16, 16), interpolation="nearest", keep_aspect_ratio=True,
        dct_scaling=False))


def test_decode_errors_name_the_file(tmp_path):
    good = save(tmp_path / "good.jpg", photo(20, 20, 0))
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xdb garbage")
    seq = fastseq.ImageSequence([str(good), str(bad)], [0, 1], dim=(8, 8), shuffle=False)
    with pytest.raises(fastseq.ImageDecodeError, match="bad.jpg") as e:
        seq[0]
    assert e.value.source == str(bad)
    quiet = fastseq.ImageSequence([str(good), str(bad)], [0, 1], dim=(8, 8), shuffle=False,
                                  on_error="ignore")
    x, y = quiet[0]
    assert x[0].any() and not x[1].any() and y.shape == (2, 2)
    missing = fastseq.ImageSequence([str(tmp_path / "gone.jpg")], dim=(8, 8))
    with pytest.raises(fastseq.ImageDecodeError, match="gone.jpg.*No such file"):
        missing[0]


def test_kwargs_reach_pydataset(files):
    paths, labels = files
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        seq = fastseq.ImageSequence(paths, labels, workers=2, use_multiprocessing=True,
                                    max_queue_size=3)
        assert (seq.workers, seq.use_multiprocessing, seq.max_queue_size) == (2, True, 3)


# -- subclassing --------------------------------------------------------------------

class Weighted(fastseq.ImageSequence):
    """The README's example: integer targets from the file names and a
    per-batch step that adds sample weights, on the unchanged fast path."""

    def make_labels(self, indexes):
        return np.array([int("_b_" in self.paths[i]) for i in indexes], dtype=np.float32)

    def process_batch(self, x, y, indexes):
        x -= 0.5                    # x belongs to this batch alone
        weights = np.where(y > 0, 2.0, 1.0).astype(np.float32)
        return x, y, weights


def test_subclass_hooks(tmp_path):
    paths = [str(save(tmp_path / f"img_{c}_{i}.jpg", photo(30, 30, i)))
             for i, c in enumerate("aabab")]
    seq = Weighted(paths, batch_size=5, dim=(8, 8), shuffle=False)
    x, y, w = seq[0]
    np.testing.assert_array_equal(y, [0, 0, 1, 0, 1])
    np.testing.assert_array_equal(w, [1, 1, 2, 1, 2])
    np.testing.assert_array_equal(x, ref_images(paths, (8, 8)) * np.float32(1 / 255) - 0.5)


def test_name_mangled_data_generation_is_the_private_driver(files):
    paths, labels = files
    seq = fastseq.ImageSequence(paths, labels, batch_size=4, dim=DIM, shuffle=False)
    x, y = seq._ImageSequence__data_generation(np.array([3, 1]))
    np.testing.assert_array_equal(x, ref_images([paths[3], paths[1]]) * np.float32(1 / 255))
    np.testing.assert_array_equal(y.argmax(1), labels[[3, 1]])


# -- buffer safety (issue section 5) --------------------------------------------------

def _collect_through_adapter(dataset, epochs=2, extra_prefetch=8):
    """Iterate `dataset` as model.fit does on the TensorFlow backend: the
    PyDataset adapter's tf.data dataset (enqueuer threads when workers > 1,
    tf.data prefetch otherwise) with further prefetching on top, keeping
    every batch alive as a tensor until all epochs are done."""
    from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter

    adapter = PyDatasetAdapter(dataset, shuffle=False)
    ds = adapter.get_tf_dataset().prefetch(extra_prefetch)
    held = []
    for _ in range(epochs):
        adapter.on_epoch_begin()
        order = dataset.indexes.copy()
        held.append((order, [batch for batch in ds]))
        adapter.on_epoch_end()
    return held


@needs_tensorflow
@pytest.mark.parametrize("workers,max_queue_size", [(1, 10), (2, 2), (2, 16)])
def test_batches_handed_to_keras_are_never_overwritten_sequence(files, workers,
                                                                max_queue_size):
    paths, labels = files
    seq = fastseq.ImageSequence(paths, labels, batch_size=3, dim=DIM, seed=0,
                                workers=workers, max_queue_size=max_queue_size)
    reference = ref_images(paths) * np.float32(1 / 255)
    eye = np.eye(3, dtype=np.float32)
    for order, batches in _collect_through_adapter(seq, epochs=3):
        assert len(batches) == len(seq) == 8
        x = np.concatenate([b[0].numpy() for b in batches])
        y = np.concatenate([b[1].numpy() for b in batches])
        np.testing.assert_array_equal(x, reference[order])
        np.testing.assert_array_equal(y, eye[labels[order]])


@needs_tensorflow
@pytest.mark.parametrize("workers", [1, 3])
def test_batches_handed_to_keras_are_never_overwritten_directory(files, workers):
    paths, _ = files
    root = paths[0].rsplit("/", 2)[0]
    it = fastseq.ImageDataGenerator(rescale=1 / 255).flow_from_directory(
        root, target_size=DIM, batch_size=4, seed=1, interpolation="bilinear",
        workers=workers, max_queue_size=3)
    reference = ref_images(it.filepaths) * np.float32(1 / 255)
    for order, batches in _collect_through_adapter(it, epochs=2):
        x = np.concatenate([b[0].numpy() for b in batches])
        np.testing.assert_array_equal(x, reference[order])
        y = np.concatenate([b[1].numpy() for b in batches])
        np.testing.assert_array_equal(y.argmax(1), it.classes[order])


def test_numpy_iterator_batches_are_independent(files):
    """The numpy path (JAX/NumPy backends) with enqueuer threads: arrays
    received earlier are unchanged after the whole epoch."""
    from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter

    paths, labels = files
    seq = fastseq.ImageSequence(paths, labels, batch_size=2, dim=DIM, shuffle=False,
                                workers=2, max_queue_size=2)
    adapter = PyDatasetAdapter(seq, shuffle=False)
    adapter.on_epoch_begin()
    got = [b[0] for b in adapter.get_numpy_iterator()]
    adapter.on_epoch_end()
    np.testing.assert_array_equal(np.concatenate(got), ref_images(paths) * np.float32(1 / 255))


def _aligned_empty(shape, align=64):
    nbytes = int(np.prod(shape)) * 4
    raw = np.empty(nbytes + align, np.uint8)
    start = (-raw.ctypes.data) % align
    return raw[start:start + nbytes].view(np.float32).reshape(shape)


class _ReusesBuffers(fastseq.ImageSequence):
    """A deliberately unsafe loader: two preallocated batches, reused in
    turn (what a naive ring buffer smaller than the queues would do).

    The buffers are 64-byte aligned because TensorFlow then wraps a numpy
    array returned by the generator without copying it (observed with TF
    2.21); with ordinary allocations that happens only for the ones that
    happen to be aligned, which is what makes such a bug intermittent.
    """

    def load_images(self, indexes):
        if not hasattr(self, "_ring"):
            self._ring = [_aligned_empty((self.batch_size, *self.dim, 3)) for _ in range(2)]
            self._turn = 0
        self._turn += 1
        out = self._ring[self._turn % 2][:len(indexes)]
        out[...] = super().load_images(indexes)
        return out


@needs_tensorflow
@pytest.mark.parametrize("workers", [1, 2])
def test_the_buffer_check_catches_reused_buffers(files, workers):
    """Guards the tests above: the same check fails for a loader that
    reuses its buffers, so their passing means something."""
    paths, labels = files
    seq = _ReusesBuffers(paths, labels, batch_size=3, dim=DIM, seed=0, workers=workers)
    reference = ref_images(paths) * np.float32(1 / 255)
    (order, batches), = _collect_through_adapter(seq, epochs=1)
    x = np.concatenate([b[0].numpy() for b in batches])
    assert (x != reference[order]).any()


def test_pathlike_paths_and_mapping_keyed_by_them(files):
    import pathlib
    import pickle

    paths, labels = files
    objs = [pathlib.Path(p) for p in paths]
    seq = fastseq.ImageSequence(objs, dict(zip(objs, labels.tolist())), batch_size=23,
                                dim=DIM, shuffle=False, label_mode="int")
    assert seq.paths == paths
    x, y = seq[0]
    np.testing.assert_array_equal(y, labels)
    copy = pickle.loads(pickle.dumps(seq))
    np.testing.assert_array_equal(copy[0][0], x)


def test_batches_are_fresh_and_64_byte_aligned(files):
    """Aligned so that TensorFlow wraps them without a copy (see the
    module's docstring); fresh, so that this sharing is safe."""
    paths, labels = files
    seq = fastseq.ImageSequence(paths, labels, batch_size=5, dim=(7, 9), shuffle=False)
    it = fastseq.ImageDataGenerator(data_format="channels_first").flow_from_directory(
        paths[0].rsplit("/", 2)[0], target_size=(7, 9), batch_size=5, class_mode="input")
    batches = [seq[0][0], seq[0][0], seq[4][0], *it[0], it[1][0]]
    for x in batches:
        assert x.ctypes.data % 64 == 0 and x.flags.c_contiguous and x.flags.writeable
    assert len({x.ctypes.data for x in batches}) == len(batches)
