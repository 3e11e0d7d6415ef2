"""ImageDataGenerator.flow / fastseq.NumpyArrayIterator (issue 12 sections 1
and 5): parity with keras.src.legacy.preprocessing.image for every mode
without augmentation (labels and pixels equal), the augmented batches equal
to fastseq's tested apply_transform (the C warp) on each image for its
draws, and model.fit end to end."""

import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

keras = pytest.importorskip("keras")
K = pytest.importorskip("keras.src.legacy.preprocessing.image")

import fastseq  # noqa: E402
from fastseq import ImageDataGenerator as IDG  # noqa: E402

RNG = np.random.default_rng(12)
X8 = RNG.integers(0, 256, (23, 7, 9, 3)).astype(np.uint8)
XF = (RNG.random((23, 7, 9, 3)) * 300 - 20).astype(np.float32)
Y = np.arange(23) % 3
W = RNG.random(23)
MISC = RNG.random((23, 5))


def pairs(kw, x, y=None, **flow):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f = IDG(**kw).flow(x, y, **flow)
        k = K.ImageDataGenerator(**kw).flow(x, y, **flow)
    return f, k


def assert_same(a, b):
    if isinstance(b, (tuple, list)):
        assert type(a) is type(b) and len(a) == len(b)
        for u, v in zip(a, b):
            assert_same(u, v)
    else:
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)


GENERATORS = [{}, dict(rescale=1 / 255.0), dict(dtype="float64"), dict(dtype="uint8"),
              dict(samplewise_center=True, samplewise_std_normalization=True, rescale=0.5),
              dict(preprocessing_function=lambda a: a * 2 - 3, rescale=0.25),
              dict(data_format="channels_first", rescale=2.0)]


@pytest.mark.parametrize("kw", GENERATORS, ids=lambda kw: ",".join(kw) or "plain")
@pytest.mark.parametrize("x", [X8, XF], ids=["uint8", "float32"])
@pytest.mark.parametrize("mode", ["x", "xy", "xyw", "misc", "misc-list"])
def test_unaugmented_batches_equal_keras(kw, x, mode):
    if kw.get("data_format") == "channels_first":
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    y = None if mode == "x" else Y
    flow = dict(batch_size=5, shuffle=False)
    if mode == "xyw":
        flow["sample_weight"] = W
    if mode == "misc":
        x = (x, MISC)
    elif mode == "misc-list":
        x = (x, [MISC, Y * 2])
    f, k = pairs(kw, x, y, **flow)
    assert isinstance(f, fastseq.NumpyArrayIterator) and isinstance(f, keras.utils.PyDataset)
    assert len(f) == len(k) == 5
    for i in range(len(k)):
        assert_same(f[i], k[i])
    np.testing.assert_array_equal(f.x, k.x)
    assert f.x.dtype == k.x.dtype


@pytest.mark.parametrize("subset", ["training", "validation"])
@pytest.mark.parametrize("mode", ["x", "xy", "xyw"])
def test_subsets_equal_keras(subset, mode):
    y = None if mode == "x" else Y
    flow = dict(batch_size=4, shuffle=False, subset=subset)
    if mode == "xyw":
        flow["sample_weight"] = W
    f, k = pairs(dict(validation_split=0.3), (X8, MISC), y, **flow)
    assert f.n == k.n == (6 if subset == "validation" else 17)
    for i in range(len(k)):
        assert_same(f[i], k[i])


def test_keras_errors_and_warnings():
    gen, kgen = IDG(validation_split=0.5), K.ImageDataGenerator(validation_split=0.5)
    ysorted = np.repeat([0, 1], 10)
    cases = [((X8, ysorted), dict(subset="training")),
             ((X8, Y), dict(subset="bogus")),
             ((X8, Y[:3]), {}),
             ((X8, Y), dict(sample_weight=W[:4])),
             (((X8, MISC[:2]), Y), {}),
             ((X8[0], None), {})]
    for (x, y), kw in cases:
        if y is not None and len(y) == 20:
            x = X8[:20]
        with pytest.raises(ValueError) as ke:
            kgen.flow(x, y, **kw)
        with pytest.raises(ValueError) as fe:
            gen.flow(x, y, **kw)
        assert str(fe.value) == str(ke.value)
    # ignore_class_split lets a sorted array through, as in Keras.
    it = gen.flow(X8[:20], ysorted, subset="training", ignore_class_split=True, shuffle=False)
    assert it.n == 10 and set(it.y) == {1}
    with pytest.warns(UserWarning, match=r"\(5 channels\)"):
        gen.flow(np.zeros((2, 4, 4, 5)))
    with pytest.raises(TypeError, match="dct_scaling"):
        gen.flow(X8, dct_scaling=False)


AUG = dict(rotation_range=25, width_shift_range=0.2, height_shift_range=2, shear_range=8,
           zoom_range=0.2, horizontal_flip=True, vertical_flip=True, fill_mode="reflect")
AUGS = [AUG, dict(AUG, rescale=1 / 255.0), dict(AUG, channel_shift_range=30.0),
        dict(AUG, brightness_range=(0.7, 1.2)), dict(AUG, fill_mode="constant", cval=7.5),
        dict(AUG, interpolation_order=0, samplewise_center=True),
        dict(AUG, dtype="uint8"), dict(AUG, data_format="channels_first")]


@pytest.mark.parametrize("kw", AUGS, ids=range(len(AUGS)))
@pytest.mark.parametrize("x", [X8, XF], ids=["uint8", "float32"])
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_augmented_batches_are_the_warp_of_each_image(kw, x, channels):
    """Each image is apply_transform(x[j].astype(dtype), draws of (seed,
    epoch, j)) then standardize, as Keras' NumpyArrayIterator computes it."""
    x = x[..., :channels] if channels < 4 else np.concatenate([x, x[..., :1]], axis=-1)
    cf = kw.get("data_format") == "channels_first"
    if cf:
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    gen = IDG(**kw)
    it = gen.flow(x, Y, batch_size=6, seed=5, shuffle=True, prefetch=False)
    for epoch in range(2):
        for i in range(len(it)):
            idx = it.index_array[i * 6:(i + 1) * 6]
            bx, by = it[i]
            np.testing.assert_array_equal(by, Y[idx])
            params = it._augmenter.transforms(epoch, idx)
            dtype = np.dtype(gen.dtype)
            for b, j, p in zip(bx, idx, params):
                xj = np.asarray(x[j], dtype=dtype)
                ref = gen.standardize(gen.apply_transform(xj, p).astype(dtype))
                assert b.dtype == dtype
                np.testing.assert_array_equal(b, ref)
        it.on_epoch_end()


def test_augmentation_reads_the_array_in_place_and_repeats():
    gen = IDG(**AUG)
    a = gen.flow(X8, batch_size=8, seed=1, shuffle=False)
    b = gen.flow(X8.astype(np.float32), batch_size=8, seed=1, shuffle=False, prefetch=False)
    assert a._warp_src is X8                 # no converted copy
    assert a._x is None and a.x.dtype == np.float32
    for i in range(len(a)):
        np.testing.assert_array_equal(a[i], b[i])
    first = a[0]
    a.on_epoch_end()
    assert not np.array_equal(a[0], first)   # redrawn in a new epoch


def test_shuffled_epochs_cover_each_sample_once():
    it = IDG(**AUG).flow(X8, Y, batch_size=4, seed=9)
    ids = np.arange(23)
    it2 = IDG().flow(X8, ids, batch_size=4, seed=9)
    for _ in range(2):
        seen = np.concatenate([it2[i][1] for i in range(len(it2))])
        assert sorted(seen) == list(ids)
        it2.on_epoch_end()
    assert len(it) == 6


def test_next_and_save_to_dir(tmp_path):
    it = IDG(**AUG).flow(X8, Y, batch_size=10, seed=2, save_to_dir=str(tmp_path),
                         save_prefix="p", save_format="png")
    bx, _ = next(it)
    assert bx.shape == (10, 7, 9, 3)
    assert len(list(tmp_path.glob("p_*.png"))) == 10


CHILD = r'''
import json, sys
import numpy as np
import keras
from fastseq import ImageDataGenerator
keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
x = rng.integers(0, 256, (40, 8, 8, 3)).astype(np.uint8)
y = keras.utils.to_categorical(np.arange(40) % 2, 2)
out = {}
for name, kw in [("one", {}), ("threads", dict(workers=2)),
                 ("processes", dict(workers=2, use_multiprocessing=True))]:
    gen = ImageDataGenerator(rescale=1 / 255.0, rotation_range=10, horizontal_flip=True)
    it = gen.flow(x, y, batch_size=8, seed=1, **kw)
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten(),
                              keras.layers.Dense(2, activation="softmax")])
    model.compile("sgd", "categorical_crossentropy")
    h = model.fit(it, epochs=2, verbose=0)
    out[name] = h.history["loss"]
json.dump(out, open(sys.argv[1], "w"))
'''


def test_model_fit_end_to_end(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    repo = os.path.dirname(os.path.dirname(os.path.abspath(fastseq.__file__)))
    env = dict(os.environ, PYTHONPATH=repo)
    proc = subprocess.run([sys.executable, str(script), str(tmp_path / "r.json")],
                          capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    r = json.loads((tmp_path / "r.json").read_text())
    assert set(r) == {"one", "threads", "processes"}
    for losses in r.values():
        assert len(losses) == 2 and all(np.isfinite(losses))
