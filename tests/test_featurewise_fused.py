"""Featurewise centring and normalisation fused into the C write, per
channel (issue 12 section 3): every writer (the resize, the warp, the
identity copy of flow()'s array path) computes Keras' float32
``(v * rescale - mean_c) / (std_c + 1e-6)`` bit for bit, and the iterators
use it whenever that is Keras' arithmetic, with exact equality to Keras'
legacy generator."""

import warnings

import numpy as np
import pytest

from fastseq import _native
from fastseq.batch import encode_paths, load_files
from fastseq.options import DecodeOptions

keras = pytest.importorskip("keras")
K = pytest.importorskip("keras.src.legacy.preprocessing.image")

from fastseq import ImageDataGenerator as IDG  # noqa: E402

RNG = np.random.default_rng(12)
X = RNG.integers(0, 256, (20, 9, 7, 3)).astype(np.uint8)
XG = RNG.integers(0, 256, (20, 9, 7, 1)).astype(np.uint8)
Y = np.arange(20) % 2

STATS = [dict(featurewise_center=True),
         dict(featurewise_center=True, featurewise_std_normalization=True),
         dict(featurewise_std_normalization=True)]       # forces centring, as Keras
RESCALES = [None, 1 / 255.0, 0.37]
AUG = dict(rotation_range=25, zoom_range=0.2, horizontal_flip=True,
           width_shift_range=0.1)


def gens(kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return IDG(**kw), K.ImageDataGenerator(**kw)


def keras_standardize(x, mean, std, rescale):
    """Keras' own standardize on each image of a float32 batch."""
    k = K.ImageDataGenerator(featurewise_center=mean is not None,
                             featurewise_std_normalization=std is not None, rescale=rescale)
    k.mean, k.std = mean, std
    return np.stack([k.standardize(xi.copy()) for xi in x])


def reference(x, channels, rescale, center, normalize, seed):
    """Keras' float32 steps on x, with per-channel statistics drawn from seed."""
    r = np.random.default_rng(seed)
    mean = (r.random((1, 1, channels)) * 0.6).astype(np.float32)
    std = (r.random((1, 1, channels)) * 0.5 + 0.05).astype(np.float32)
    out = x.astype(np.float32)
    if rescale:
        out *= rescale
    if center:
        out -= mean
    if normalize:
        out /= std + 1e-6
    return out, (mean.ravel() if center else np.zeros(channels, np.float32),
                 (std + 1e-6).ravel() if normalize else np.ones(channels, np.float32))


# -- the C writers -----------------------------------------------------------

@pytest.mark.parametrize("channels", [1, 3, 4])
@pytest.mark.parametrize("rescale", RESCALES)
@pytest.mark.parametrize("center,normalize", [(True, False), (True, True), (False, True)])
@pytest.mark.parametrize("simd", [True, False])
def test_warp_writer_is_keras_float32_ops(channels, rescale, center, normalize, simd):
    src = RNG.integers(0, 256, (19, 23, channels)).astype(np.uint8)
    ref, norm = reference(src, channels, rescale, center, normalize, channels)
    out = np.empty(src.shape, np.float32)
    _native.warp_affine(src, out, (1, 0, 0, 0, 1, 0), warp=False, scale=rescale or 1.0,
                        norm=norm)
    np.testing.assert_array_equal(out, ref)
    # A real warp, AVX2 rows and scalar rows: the same write after the warp.
    level = _native.set_warp_simd(simd)
    try:
        plain = np.empty(src.shape, np.float32)
        m = (0.93, 0.12, 1.5, -0.08, 1.07, -0.6)
        _native.warp_affine(src, plain, m, fill_mode="reflect")
        fused = np.empty(src.shape, np.float32)
        _native.warp_affine(src, fused, m, fill_mode="reflect", scale=rescale or 1.0, norm=norm)
    finally:
        _native.set_warp_simd(True)
    assert level in (_native.warp_simd(), "none") or not simd
    ref, _ = reference(plain, channels, rescale, center, normalize, channels)
    np.testing.assert_array_equal(fused, ref)


@pytest.fixture(scope="module")
def pngs(tmp_path_factory):
    from PIL import Image

    d = tmp_path_factory.mktemp("fw")
    paths = {}
    for mode, arr in (("RGB", X), ("L", XG[..., 0])):
        paths[mode] = []
        for i in range(6):
            p = d / f"{mode}_{i}.png"
            Image.fromarray(arr[i]).save(p)
            paths[mode].append(str(p))
    return paths


@pytest.mark.parametrize("color_mode,mode,channels",
                         [("rgb", "RGB", 3), ("grayscale", "L", 1), ("rgb", "L", 3),
                          ("rgba", "RGB", 4)])
@pytest.mark.parametrize("size", [(9, 7), (5, 4), (13, 11)])
@pytest.mark.parametrize("rescale", RESCALES)
def test_resize_writer_is_keras_float32_ops(pngs, color_mode, mode, channels, size, rescale):
    """The resize writer (and its L-as-RGB expansion and same-size copy)."""
    args = dict(color_mode=color_mode, interpolation="bilinear", dtype="float32",
                rescale=rescale)
    enc = encode_paths(pngs[mode])
    plain, _ = load_files(enc, DecodeOptions(size, **args))
    ref, norm = reference(plain, channels, None, True, True, 7)
    fused, fails = load_files(enc, DecodeOptions(size, featurewise=norm, **args))
    assert not fails
    np.testing.assert_array_equal(fused, ref)


def test_featurewise_option_is_checked():
    with pytest.raises(ValueError, match="float32"):
        DecodeOptions((4, 4), featurewise=([0] * 3, [1] * 3))
    with pytest.raises(ValueError, match="3 mean"):
        DecodeOptions((4, 4), dtype="float32", featurewise=([0] * 2, [1] * 3))
    with pytest.raises(TypeError):
        DecodeOptions((4, 4), dtype="float32", featurewise=5)
    o = DecodeOptions((4, 4), dtype="float32", featurewise=(np.zeros(3), [1, 2, 3]))
    assert o.featurewise == ((0.0,) * 3, (1.0, 2.0, 3.0))
    import pickle

    assert pickle.loads(pickle.dumps(o)) == o


# -- the iterators -----------------------------------------------------------

@pytest.mark.parametrize("stats", STATS, ids=["center", "both", "std"])
@pytest.mark.parametrize("rescale", RESCALES)
@pytest.mark.parametrize("x", [X, XG, X.astype(np.float32)], ids=["rgb", "gray", "f32"])
def test_flow_unaugmented_fused_equals_keras(stats, rescale, x):
    f, k = gens(dict(stats, rescale=rescale))
    f.fit(x)
    k.fit(x)
    np.testing.assert_array_equal(f.mean, k.mean)
    np.testing.assert_array_equal(f.std, k.std)
    fi = f.flow(x, Y, batch_size=6, shuffle=False)
    ki = k.flow(x, Y, batch_size=6, shuffle=False)
    assert fi._fused_norm() is not None      # the C write took the statistics
    for i in range(len(ki)):
        (a, ya), (b, yb) = fi[i], ki[i]
        np.testing.assert_array_equal(ya, yb)
        assert a.dtype == b.dtype == np.float32
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("stats", STATS, ids=["center", "both", "std"])
@pytest.mark.parametrize("rescale", [None, 1 / 255.0])
@pytest.mark.parametrize("x", [X, XG], ids=["rgb", "gray"])
@pytest.mark.parametrize("simd", [True, False])
def test_flow_augmented_fused_equals_keras_standardize(stats, rescale, x, simd):
    """Augmented: the same draws without the statistics, then Keras' own
    standardize, equal the fused batch bit for bit."""
    f, _ = gens(dict(stats, rescale=rescale, **AUG))
    f.fit(x)
    g, _ = gens(dict(rescale=rescale, **AUG))
    level = _native.set_warp_simd(simd)
    try:
        a = f.flow(x, batch_size=20, shuffle=False, seed=3, prefetch=False)[0]
        plain = g.flow(x, batch_size=20, shuffle=False, seed=3, prefetch=False)[0]
    finally:
        _native.set_warp_simd(True)
    del level
    b = keras_standardize(plain, f.mean if f.featurewise_center else None,
                          f.std if f.featurewise_std_normalization else None, None)
    assert not np.array_equal(plain, a)
    np.testing.assert_array_equal(a, b)


def _folder(tmp_path, arr, mode):
    from PIL import Image

    for c in ("a", "b"):
        (tmp_path / c).mkdir()
        for i in range(4):
            img = Image.fromarray(arr[i + (c == "b") * 4].squeeze())
            img.save(tmp_path / c / f"{i}.png")


@pytest.mark.parametrize("stats", STATS, ids=["center", "both", "std"])
@pytest.mark.parametrize("rescale", [None, 1 / 255.0])
@pytest.mark.parametrize("color_mode,arr", [("rgb", X), ("grayscale", XG)])
@pytest.mark.parametrize("size", [(9, 7), (6, 5)])
def test_directory_fused_equals_keras(tmp_path, stats, rescale, color_mode, arr, size):
    _folder(tmp_path, arr, color_mode)
    f, k = gens(dict(stats, rescale=rescale))
    f.fit(arr)
    k.fit(arr)
    kw = dict(target_size=size, color_mode=color_mode, shuffle=False, batch_size=8,
              interpolation="bilinear")
    fi = f.flow_from_directory(tmp_path, **kw)
    assert fi._fused_norm() is not None
    a, ya = fi[0]
    b, yb = k.flow_from_directory(tmp_path, **kw)[0]
    np.testing.assert_array_equal(ya, yb)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("color_mode,arr", [("rgb", X), ("grayscale", XG)])
def test_directory_augmented_fused_equals_keras_standardize(tmp_path, color_mode, arr):
    _folder(tmp_path, arr, color_mode)
    kw = dict(target_size=(6, 5), color_mode=color_mode, shuffle=False, batch_size=8,
              seed=2, prefetch=False)
    f, _ = gens(dict(featurewise_center=True, featurewise_std_normalization=True,
                     rescale=1 / 255.0, **AUG))
    f.fit(arr)
    g, _ = gens(dict(rescale=1 / 255.0, **AUG))
    a = f.flow_from_directory(tmp_path, **kw)[0][0]
    plain = g.flow_from_directory(tmp_path, **kw)[0][0]
    np.testing.assert_array_equal(a, keras_standardize(plain, f.mean, f.std, None))


def test_statistics_read_per_batch_as_keras(tmp_path):
    """fit() after the iterator was made, and a batch decoded ahead with the
    old statistics, give Keras' batches; a float64 mean set by hand (not
    float32 arithmetic) keeps numpy's path, still equal to Keras."""
    _folder(tmp_path, X, "rgb")
    f, k = gens(dict(featurewise_center=True, featurewise_std_normalization=True,
                     rescale=1 / 255.0))
    kw = dict(target_size=(9, 7), shuffle=False, batch_size=4)
    fi = f.flow_from_directory(tmp_path, **kw)
    ki = k.flow_from_directory(tmp_path, **kw)
    fa = f.flow(X, batch_size=5, shuffle=False)
    ka = k.flow(X, batch_size=5, shuffle=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        np.testing.assert_array_equal(fi[0][0], ki[0][0])   # unfit: rescale only
        np.testing.assert_array_equal(fa[0], ka[0])
    for sample in (X[:10], X[10:]):
        f.fit(sample)
        k.fit(sample)
        for i in (1, 0):
            np.testing.assert_array_equal(fi[i][0], ki[i][0])
        for i in (1, 0, 2):
            np.testing.assert_array_equal(fa[i], ka[i])
    for g in (f, k):
        g.mean = np.array([0.2, 0.4, 0.6]).reshape(1, 1, 3)        # float64, by hand
    assert fi._fused_norm() is None and fa._fused_norm() is None
    np.testing.assert_array_equal(fi[1][0], ki[1][0])
    np.testing.assert_array_equal(fa[1], ka[1])
