"""Keras' random augmentation on the batch path (issue 11): the C batch
driver resizes each image into scratch and warps it into its slot.

The reference for every batch is the unaugmented batch (load_batch, same
size and interpolation) followed by fastseq.augment.apply_transform with the
parameters the iterator drew: equal exactly.  Against Keras itself (its
legacy ImageDataGenerator.apply_transform on load_img's output, through
scipy) the bound is issue 11's: max |diff| <= 1, mean |diff| <= 0.01."""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import pathlib
import warnings

import numpy as np
import pytest

pytest.importorskip("keras")

import fastseq  # noqa: E402
from fastseq import _native, augment  # noqa: E402
from fastseq.batch import _run, encode_paths, load_files  # noqa: E402
from fastseq.errors import ImageDecodeWarning  # noqa: E402
from fastseq.options import DecodeOptions  # noqa: E402
from _keras_helpers import keras_legacy, photo, save  # noqa: E402

IDG = fastseq.ImageDataGenerator
SIZE = (36, 44)

# Each of issue 11's section 1 arguments alone, and its inverse case: the
# value with which Keras leaves the image unchanged.
ALONE = {
    "rotation_range": (25, 0),
    "width_shift_range": (0.25, 0.0),
    "height_shift_range": ([-7, 5, 9], 0),
    "shear_range": (30.0, 0.0),
    "zoom_range": (0.3, [1, 1]),
    "horizontal_flip": (True, False),
    "vertical_flip": (True, False),
    "brightness_range": ((0.4, 0.8), None),
    "channel_shift_range": (40.0, 0.0),
}
RECIPE = dict(rotation_range=20, width_shift_range=0.2, height_shift_range=0.2,
              shear_range=0.2, zoom_range=0.2, horizontal_flip=True, fill_mode="nearest")
EVERYTHING = dict(RECIPE, vertical_flip=True, brightness_range=(0.7, 1.3),
                  channel_shift_range=25.0, fill_mode="reflect")


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> pathlib.Path:
    """Two classes of real encoded files: JPEGs of several sizes and
    subsamplings, a grayscale JPEG, PNG (RGB and RGBA) and BMP for the
    Pillow fallback."""
    root = tmp_path_factory.mktemp("augtree")
    specs = [("a/j0.jpg", (61, 80), "RGB", {}), ("a/j1.jpg", (97, 131), "RGB", {"subsampling": 0}),
             ("a/j2.jpg", (30, 22), "RGB", {}), ("a/gray.jpg", (50, 70), "L", {}),
             ("b/p0.png", (45, 45), "RGB", {}), ("b/p1.png", (64, 48), "RGBA", {}),
             ("b/c.bmp", (40, 90), "RGB", {}), ("b/j3.jpg", (120, 90), "RGB", {"quality": 70})]
    for k, (rel, (h, w), mode, kw) in enumerate(specs):
        save(root / rel, photo(h, w, 500 + k), mode, **kw)
    return root


def flow(tree, gen_kwargs, **kw):
    kw.setdefault("target_size", SIZE)
    kw.setdefault("batch_size", 8)
    kw.setdefault("shuffle", False)
    kw.setdefault("seed", 7)
    kw.setdefault("class_mode", None)
    kw.setdefault("dct_scaling", False)
    gen_kwargs = dict(gen_kwargs)
    gen_kwargs.setdefault("dtype", "float32")
    gen_kwargs.setdefault("data_format", "channels_last")
    return IDG(**gen_kwargs).flow_from_directory(str(tree), **kw)


def drawn(it, index_array):
    return it._augmenter.transforms(it._epoch, index_array)


def reference(it, index_array, color_mode="rgb", rescale=None):
    """Unaugmented batch + augment.apply_transform on each float32 image
    (Keras augments img_to_array's float32 array), then the rescale in
    float32 as Keras' standardize does."""
    base = fastseq.load_batch([it.filepaths[j] for j in index_array], it.target_size,
                              color_mode=color_mode, interpolation=it.interpolation,
                              dtype="float32", dct_scaling=False)
    gen = it.image_data_generator
    out = []
    for img, p in zip(base, drawn(it, index_array)):
        x = augment.apply_transform(img, p, data_format="channels_last", fill_mode=gen.fill_mode,
                                    cval=gen.cval, interpolation_order=gen.interpolation_order)
        if rescale:
            x = x * np.float32(rescale)
        out.append(x)
    return np.stack(out)


# -- exactness against load_batch + apply_transform ------------------------------

CASES = {f"{k}={v[0]}": {k: v[0]} for k, v in ALONE.items()}
CASES["recipe"] = RECIPE
CASES["everything-order0-constant"] = dict(EVERYTHING, interpolation_order=0,
                                           fill_mode="constant", cval=40.0)


@pytest.mark.parametrize("color_mode", ["rgb", "grayscale", "rgba"])
@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_batch_equals_load_batch_then_apply_transform(tree, case, color_mode):
    it = flow(tree, CASES[case], color_mode=color_mode)
    idx = it.index_array[:8]
    np.testing.assert_array_equal(it[0], reference(it, idx, color_mode))


@pytest.mark.parametrize("rescale", [None, 1 / 255])
def test_fused_rescale_and_uint8_output(tree, rescale):
    it = flow(tree, dict(EVERYTHING, rescale=rescale))
    np.testing.assert_array_equal(it[0], reference(it, it.index_array[:8], rescale=rescale))
    # uint8 iterator: Keras augments float32 and casts into the batch (truncation).
    it8 = flow(tree, dict(EVERYTHING, dtype="uint8"))
    x8 = it8[0]
    assert x8.dtype == np.uint8
    np.testing.assert_array_equal(x8, reference(it8, it8.index_array[:8]).astype(np.uint8))


@pytest.mark.parametrize("dtype", ["uint8", "float32"])
@pytest.mark.parametrize("kind", ["file", "memory"])
def test_load_files_and_memory_sources(tree, dtype, kind):
    """The task array on every source kind (files, in-memory buffers, the
    Pillow fallback's pixels), for uint8 (Keras' uint8-array semantics) and
    float32 outputs."""
    paths = sorted(str(p) for p in tree.rglob("*.*"))
    aug = augment.BatchAugmenter(rows=SIZE[0], cols=SIZE[1], seed=3, array_dtype=dtype,
                                 **{k: v for k, v in EVERYTHING.items()
                                    if k not in ("channel_shift_range",)})
    idx = np.arange(len(paths))
    opts = DecodeOptions(SIZE, dtype=dtype, dct_scaling=False)
    if kind == "file":
        x, failures = load_files(encode_paths(paths), opts, warps=aug.warps(0, idx))
    else:
        bufs = [pathlib.Path(p).read_bytes() for p in paths]
        x = np.empty(opts.shape(len(bufs)), opts.dtype)
        failures = _run(_native.SRC_MEMORY, bufs, str, x, opts, opener=bufs.__getitem__,
                        warps=aug.warps(0, idx))
    assert failures == []
    base = fastseq.load_batch(paths, SIZE, dtype=dtype, dct_scaling=False)
    for img, got, p in zip(base, x, aug.transforms(0, idx)):
        want = augment.apply_transform(img, p, fill_mode="reflect")
        np.testing.assert_array_equal(got, want.astype(dtype))


# -- against Keras itself ----------------------------------------------------------

@pytest.mark.parametrize("case", ["recipe", "everything-order0-constant",
                                  "rotation_range=25", "zoom_range=0.3"])
def test_within_bound_of_keras_legacy_apply_transform(tree, case):
    pytest.importorskip("scipy")
    import keras

    kwargs = dict(CASES[case], rescale=1 / 255)
    it = flow(tree, kwargs, interpolation="bilinear")
    got = it[0]
    kgen = keras_legacy()(**{k: v for k, v in kwargs.items()}, data_format="channels_last")
    idx = it.index_array[:8]
    for j, g, p in zip(idx, got, drawn(it, idx)):
        img = keras.utils.load_img(it.filepaths[j], target_size=SIZE, interpolation="bilinear")
        x = keras.utils.img_to_array(img, data_format="channels_last")
        x = kgen.standardize(kgen.apply_transform(x, p))
        diff = np.abs(g.astype(np.float64) - x) * 255
        assert diff.max() <= 1.0 and diff.mean() <= 0.01, (it.filepaths[j], diff.max())


# -- each argument alone, and its inverse case -------------------------------------

@pytest.mark.parametrize("name", list(ALONE))
def test_each_argument_changes_images_and_its_inverse_does_not(tree, name):
    active, inverse = ALONE[name]
    plain = flow(tree, {})[0]
    changed = flow(tree, {name: active})
    assert changed._augmenter is not None
    x = changed[0]
    # Every image changes for the geometric and photometric ranges; a flip
    # only for the samples whose draw flips.
    moved = [not np.array_equal(a, b) for a, b in zip(x, plain)]
    if name.endswith("flip"):
        key = "flip_horizontal" if name == "horizontal_flip" else "flip_vertical"
        assert moved == [p[key] for p in drawn(changed, changed.index_array[:8])]
        assert any(moved)
    else:
        assert all(moved)
    same = flow(tree, {name: inverse})
    assert same._augmenter is None
    np.testing.assert_array_equal(same[0], plain)


def test_no_not_implemented_error_remains_for_section_1():
    gen = IDG(**EVERYTHING, cval=3.0, interpolation_order=0)
    assert gen.augments


# -- determinism ---------------------------------------------------------------------

def _epochs(it, n_epochs=2):
    out = []
    for _ in range(n_epochs):
        out.append([it[i] for i in range(len(it))])
        it.on_epoch_end()
    return out


def test_same_seed_same_epochs_across_runs_and_epochs_differ(tree):
    a = _epochs(flow(tree, RECIPE, batch_size=3, shuffle=True, seed=11))
    b = _epochs(flow(tree, RECIPE, batch_size=3, shuffle=True, seed=11))
    for ea, eb in zip(a, b):
        for xa, xb in zip(ea, eb):
            np.testing.assert_array_equal(xa, xb)
    c = flow(tree, RECIPE, batch_size=3, shuffle=False, seed=11)
    c0 = np.concatenate([c[i] for i in range(len(c))])
    c.on_epoch_end()
    c1 = np.concatenate([c[i] for i in range(len(c))])
    assert not np.array_equal(c0, c1)        # a new epoch draws anew
    other = flow(tree, RECIPE, batch_size=3, shuffle=False, seed=12)
    assert not np.array_equal(np.concatenate([other[i] for i in range(len(other))]), c0)


def test_draws_follow_sample_not_batch(tree):
    """Batch composition and order do not matter: the images of a sample are
    the same in any batch that holds it."""
    it = flow(tree, RECIPE, batch_size=8)
    full = it[0]
    small = flow(tree, RECIPE, batch_size=3)
    parts = np.concatenate([small[i] for i in range(len(small))])
    np.testing.assert_array_equal(parts, full)
    shuffled = flow(tree, RECIPE, batch_size=8, shuffle=True, seed=7)
    order = shuffled.index_array
    np.testing.assert_array_equal(shuffled[0], full[order])


@pytest.mark.parametrize("prefetch", [True, False])
def test_prefetched_batch_equals_batch_on_demand(tree, prefetch):
    on_demand = flow(tree, EVERYTHING, batch_size=2, prefetch=False)
    want = [on_demand[i] for i in range(len(on_demand))]
    it = flow(tree, EVERYTHING, batch_size=2, prefetch=prefetch, seed=None)
    it_seeded = flow(tree, EVERYTHING, batch_size=2, prefetch=prefetch)
    for i in range(len(it)):
        np.testing.assert_array_equal(it_seeded[i], want[i])
    # Without a seed: one OS-seeded stream per iterator, still identical
    # whether a batch was decoded ahead or not.
    first = [it[i] for i in range(len(it))]
    again = [it[i] for i in reversed(range(len(it)))][::-1]
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)


def test_thread_counts_and_worker_threads(tree):
    want = _epochs(flow(tree, EVERYTHING, batch_size=3))
    old = fastseq.get_num_threads()
    try:
        for n in (1, 2):
            fastseq.set_num_threads(n)
            got = _epochs(flow(tree, EVERYTHING, batch_size=3))
            for ea, eb in zip(want, got):
                for xa, xb in zip(ea, eb):
                    np.testing.assert_array_equal(xa, xb)
    finally:
        fastseq.set_num_threads(old)
    # workers=2: Keras' threads call __getitem__ concurrently.
    it = flow(tree, EVERYTHING, batch_size=3, workers=2)
    with concurrent.futures.ThreadPoolExecutor(2) as ex:
        got = list(ex.map(it.__getitem__, range(len(it))))
    for xa, xb in zip(want[0], got):
        np.testing.assert_array_equal(xa, xb)


def _child_batches(it):
    return [it[i] for i in range(len(it))]


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_use_multiprocessing_workers_draw_the_same(tree, method):
    it = flow(tree, EVERYTHING, batch_size=3, seed=None)
    it.on_epoch_end()           # epoch 1, OS-drawn seed: both travel to the child
    want = _child_batches(it)
    ctx = multiprocessing.get_context(method)
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=ctx) as ex:
        got = ex.submit(_child_batches, it).result(timeout=300)
    for xa, xb in zip(want, got):
        np.testing.assert_array_equal(xa, xb)


def test_fit_with_workers_and_multiprocessing_gives_the_same_batches(tree):
    """Keras' own PyDataset adapter, threads and processes: the batches it
    delivers for epoch 0 equal the in-process ones."""
    from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter

    want = np.concatenate(_child_batches(flow(tree, EVERYTHING, batch_size=3)))
    for kw in (dict(workers=2), dict(workers=2, use_multiprocessing=True)):
        it = flow(tree, EVERYTHING, batch_size=3, **kw)
        adapter = PyDatasetAdapter(it, shuffle=False)
        got = np.concatenate([np.asarray(b[0] if isinstance(b, tuple) else b)
                              for b in adapter.get_numpy_iterator()])
        adapter.on_epoch_end()
        np.testing.assert_array_equal(got, want)


# -- fill modes, layouts, errors -----------------------------------------------------

@pytest.mark.parametrize("fill_mode", augment.FILL_MODES)
def test_every_fill_mode_at_borders(tree, fill_mode):
    # A shift of 15 pixels either way: a band of every image is filled.
    it = flow(tree, dict(width_shift_range=[15], fill_mode=fill_mode, cval=99.0))
    x = it[0]
    np.testing.assert_array_equal(x, reference(it, it.index_array[:8]))
    plain = flow(tree, {})[0]
    for img, src, p in zip(x, plain, drawn(it, it.index_array[:8])):
        band = img[:, :15] if p["tx"] < 0 else img[:, -15:]
        edge = src[:, :1] if p["tx"] < 0 else src[:, -1:]
        if fill_mode == "constant":
            assert np.all(band == 99.0)
        elif fill_mode == "nearest":
            np.testing.assert_array_equal(band, np.broadcast_to(edge, band.shape))
        else:
            assert not np.all(band == band[:, :1])


def test_channels_first(tree):
    last = flow(tree, EVERYTHING)[0]
    first = flow(tree, dict(EVERYTHING, data_format="channels_first"))[0]
    assert first.shape == (8, 3) + SIZE
    np.testing.assert_array_equal(first, last.transpose(0, 3, 1, 2))


def test_on_error_warn_zero_fills_failed_slot(tmp_path):
    for k in range(3):
        save(tmp_path / "c" / f"ok{k}.jpg", photo(40, 50, 900 + k))
    (tmp_path / "c" / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    it = flow(tmp_path, EVERYTHING, on_error="warn", batch_size=4)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        x = it[0]
    assert [issubclass(m.category, ImageDecodeWarning) for m in w] == [True]
    bad = it.filenames.index("c/bad.jpg")
    assert not x[bad].any()
    ok = [i for i in range(4) if i != bad]
    np.testing.assert_array_equal(x[ok], reference(it, np.array(ok)))


def test_preprocessing_function_runs_after_augmentation(tree):
    calls = []

    def pre(a):
        calls.append(a.copy())
        return a + 1

    it = flow(tree, dict(RECIPE, preprocessing_function=pre, rescale=0.5))
    x = it[0]
    ref = reference(it, it.index_array[:8])
    np.testing.assert_array_equal(np.stack(calls), ref)
    np.testing.assert_array_equal(x, ((ref + 1) * 0.5).astype(np.float32))


# -- Keras' methods on the generator ------------------------------------------------

def test_generator_methods_delegate_to_fastseq_augment():
    gen = IDG(**EVERYTHING, data_format="channels_last")
    p = gen.get_random_transform((20, 30, 3), seed=5)
    ranges = {k: v for k, v in EVERYTHING.items() if k != "fill_mode"}
    assert p == augment.get_random_transform((20, 30, 3), 5, data_format="channels_last",
                                             **dict(ranges, zoom_range=gen.zoom_range))
    x = photo(20, 30, 1).astype(np.float32)
    np.testing.assert_array_equal(gen.apply_transform(x, p),
                                  augment.apply_transform(x, p, fill_mode="reflect"))
    np.testing.assert_array_equal(gen.random_transform(x, seed=5), gen.apply_transform(x, p))


# -- ImageSequence(augment=) ---------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "uint8"])
@pytest.mark.parametrize("as_dict", [True, False])
def test_image_sequence_augment(tree, dtype, as_dict):
    paths = sorted(str(p) for p in tree.rglob("*.*"))
    ranges = {k: v for k, v in EVERYTHING.items() if k != "channel_shift_range"}
    aug = ranges if as_dict else IDG(**ranges)
    rescale = 1 / 255 if dtype == "float32" else None
    seq = fastseq.ImageSequence(paths, batch_size=4, dim=SIZE, shuffle=True, seed=2,
                                dtype=dtype, rescale=rescale, dct_scaling=False,
                                augment=aug, label_mode=None)
    base = fastseq.load_batch(paths, SIZE, dtype=dtype, dct_scaling=False)
    idx = seq.batch_indexes(0)
    want = []
    for j, p in zip(idx, seq._augmenter.transforms(0, idx)):
        y = augment.apply_transform(base[j], p, fill_mode="reflect")
        want.append(y * np.float32(rescale) if rescale else y)
    np.testing.assert_array_equal(seq[0], np.stack(want).astype(dtype))


def test_image_sequence_augment_refuses_non_transforms(tree):
    with pytest.raises(ValueError, match="rescale"):
        fastseq.ImageSequence([str(next(tree.rglob("*.jpg")))], augment=dict(rescale=0.5))
    with pytest.raises(TypeError, match="augment"):
        fastseq.ImageSequence([str(next(tree.rglob("*.jpg")))], augment=3)


# -- prefetch against epoch boundaries (review findings) ----------------------------

def test_a_batch_decoded_ahead_draws_from_the_epoch_it_was_submitted_in(tree):
    """The prefetch thread may run a job after on_epoch_end has moved the
    epoch on (tf.data asks for batches while fit ends an epoch when
    steps_per_epoch is set): the job still draws the submitting epoch's
    augmentation, and is filed under that epoch, so it is never served in
    the next one."""
    it = flow(tree, RECIPE, batch_size=4)
    idx = it.batch_indexes(0)
    epoch0 = it.load_images(idx)
    it.on_epoch_end()
    assert it._epoch == 1
    ahead = it._load_ahead(idx, 0)          # as a job submitted in epoch 0
    np.testing.assert_array_equal(ahead, epoch0)
    assert not np.array_equal(it.load_images(idx), epoch0)
    assert it._key(idx, 0) != it._key(idx, 1)


def test_index_array_is_assignable_as_in_keras(tree):
    """Keras' Iterator.index_array is a plain attribute; a subclass's
    _set_index_array may assign it, and the batches follow."""
    class Reversed(fastseq.DirectoryIterator):
        def _set_index_array(self):
            self.index_array = np.arange(self.n)[::-1].copy()

    rev = Reversed(str(tree), IDG(dtype="float32", data_format="channels_last"),
                   target_size=SIZE, batch_size=4, shuffle=True, seed=3, class_mode=None,
                   dct_scaling=False)
    rev.on_epoch_end()
    np.testing.assert_array_equal(rev.index_array, np.arange(rev.n)[::-1])
    np.testing.assert_array_equal(rev[0], rev.load_images(np.arange(rev.n)[::-1][:4]))


@pytest.mark.parametrize("kwargs", [
    dict(rotation_range=20, width_shift_range=0.2, height_shift_range=0.2, shear_range=0.2,
         zoom_range=0.2, horizontal_flip=True),
    dict(zoom_range=[1, 1], horizontal_flip=True, vertical_flip=True),   # no warp at all
    dict(rotation_range=180, width_shift_range=7, height_shift_range=[-3.0, 0.0, 4.5]),
    dict(rotation_range=30, channel_shift_range=40.0),
    dict(shear_range=10, brightness_range=(0.5, 1.5)),
])
@pytest.mark.parametrize("array_dtype", [np.float32, np.uint8])
def test_batch_rows_equal_warp_row_per_image(kwargs, array_dtype):
    """The batch rows (built without warp_row when nothing photometric is
    drawn) equal warp_row's for every image, bit for bit."""
    aug = augment.BatchAugmenter(rows=13, cols=21, array_dtype=array_dtype, seed=9, **kwargs)
    for epoch in range(3):
        ts = aug.transforms(epoch, np.arange(40))
        want = np.stack([augment.warp_row(p, 13, 21, array_dtype) for p in ts])
        got, _ = aug.warps(epoch, np.arange(40))
        np.testing.assert_array_equal(got, want)
    assert aug.rows_for([]).shape == (0, _native.WARP_NCOLS)


def test_batch_rows_reject_transforms_beyond_2_52_like_warp_row():
    aug = augment.BatchAugmenter(rows=8, cols=8, zoom_range=0.1, seed=1)
    ts = aug.transforms(0, np.arange(3))
    ts[1] = dict(ts[1], tx=2.0 ** 60)
    with pytest.raises(ValueError, match="beyond 2"):
        augment.warp_row(ts[1], 8, 8)
    with pytest.raises(ValueError, match=r"send pixels beyond 2\*\*52"):
        aug.rows_for(ts)


@pytest.mark.parametrize("rows,cols", [(32, 32), (13, 21)])
def test_affine_matrices_equal_affine_matrix_per_image(rows, cols):
    """The batch matrices (grouped by which factors Keras multiplies, one
    stacked matmul per product) equal affine_matrix image by image, bit for
    bit, for every pattern of identity factors (None: the identity row)."""
    r = np.random.default_rng(rows)
    n = 4000
    p = dict(theta=r.uniform(-180, 180, n), tx=r.uniform(-20, 20, n), ty=r.uniform(-9, 9, n),
             shear=r.uniform(-45, 45, n), zx=r.uniform(0.5, 1.5, n), zy=r.uniform(0.5, 1.5, n))
    pattern = r.integers(0, 16, n)
    p["theta"][pattern & 1 == 0] = 0
    p["tx"][pattern & 2 == 0] = 0
    p["ty"][pattern & 2 == 0] = 0
    p["shear"][pattern & 4 == 0] = 0
    p["zx"][pattern & 8 == 0] = 1
    p["zy"][pattern & 8 == 0] = 1
    mats, warp = augment.affine_matrices(**p, rows=rows, cols=cols)
    assert set(np.unique(pattern)) == set(range(16)) and warp.sum() < n
    for i in range(n):
        m = augment.affine_matrix(**{k: v[i] for k, v in p.items()}, rows=rows, cols=cols)
        if m is None:
            assert not warp[i]
            np.testing.assert_array_equal(mats[i], [[1, 0, 0], [0, 1, 0]])
        else:
            assert warp[i]
            np.testing.assert_array_equal(mats[i], m)
