"""The C affine warp (csrc/warp.c) and fastseq.augment against scipy.ndimage,
Keras' legacy ImageDataGenerator and Pillow.

scipy is only a reference here (fastseq never imports it); the parity tests
skip, saying why, where scipy or Keras' legacy preprocessing module is
missing.
"""
import numpy as np
import pytest
from PIL import Image, ImageEnhance

from fastseq import _native, augment

MODES = augment.FILL_MODES
SHAPES = [(1, 1), (1, 7), (6, 1), (6, 9), (9, 6), (16, 16)]


@pytest.fixture(scope="module")
def ndi():
    return pytest.importorskip(
        "scipy.ndimage", reason="scipy is the reference for the warp (pip install scipy)")


@pytest.fixture(scope="module")
def keras_idg():
    try:
        from keras.src.legacy.preprocessing.image import ImageDataGenerator
    except Exception as e:     # ImportError, or a backend that fails to load
        pytest.skip(f"Keras' legacy ImageDataGenerator is unavailable: {e!r}")
    return ImageDataGenerator


@pytest.fixture(scope="module")
def keras_apply(keras_idg, ndi):
    def apply(x, params, **kw):
        return keras_idg(**kw).apply_transform(x.copy(), params)
    return apply


def _image(rng, shape, channels, dtype, fractional=False):
    x = rng.integers(0, 256, (*shape, channels))
    if dtype == np.uint8:
        return x.astype(np.uint8)
    x = x.astype(np.float32)
    if fractional:
        x += rng.random(x.shape).astype(np.float32)
    return x


def _scipy_warp(ndi, x, m, order, mode, cval):
    return np.stack([ndi.affine_transform(x[..., k], m[:, :2], m[:, 2], order=order,
                                          mode=mode, cval=cval)
                     for k in range(x.shape[2])], axis=-1)


def _warp(x, m, order, mode, cval, out_dtype=None, **kw):
    out = np.empty(x.shape, out_dtype or x.dtype)
    kw.setdefault("quantize_u8", x.dtype == np.uint8)
    _native.warp_affine(np.ascontiguousarray(x), out, m.ravel(), order=order, fill_mode=mode,
                        cval=cval, **kw)
    return out


def _random_matrix(rng):
    kind = rng.integers(0, 3)
    a = rng.normal(size=(2, 2)) * rng.choice([0.3, 1.0, 3.0])
    off = rng.normal(size=2) * rng.choice([1.0, 5.0, 40.0])
    if kind == 1:          # integer-aligned: samples land on pixel centres and halves
        a = np.round(a)
        off = np.round(off * 2) / 2
    return np.column_stack([a, off])


# --- the kernel alone: bit-exact with scipy.ndimage.affine_transform ---------

@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("order", [0, 1])
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
@pytest.mark.parametrize("shape", SHAPES)
def test_kernel_equals_scipy_bit_for_bit(ndi, mode, order, dtype, shape):
    rng = np.random.default_rng([MODES.index(mode), order, shape[0], shape[1]])
    for trial in range(12):
        x = _image(rng, shape, int(rng.choice([1, 3, 4])), dtype, fractional=trial % 2 == 1)
        m = _random_matrix(rng)
        cval = float(rng.choice([0.0, 17.25, 300.0, -8.0]))
        got = _warp(x, m, order, mode, cval)
        ref = _scipy_warp(ndi, x, m, order, mode, cval)
        assert got.dtype == ref.dtype
        np.testing.assert_array_equal(got, ref, err_msg=f"m={m.tolist()} cval={cval}")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_boundary_rules_along_one_axis(ndi, mode, n):
    """scipy's modes sample by sample: constant is cval outside [0, n-1]
    (no blending with cval at the border), wrap has period n - 1, reflect is
    half-sample symmetric.  Coordinates every 1/8 pixel, far outside."""
    x = (np.arange(n, dtype=np.float32) * 10 + 5).reshape(1, n, 1)
    for c0 in np.arange(-3 * n - 2, 3 * n + 2, 0.125):
        m = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, c0]])     # every column samples c0
        for order in (0, 1):
            got = _warp(x, m, order, mode, -1.0)
            ref = _scipy_warp(ndi, x, m, order, mode, -1.0)
            assert got[0, 0, 0] == ref[0, 0, 0], (c0, order)


@pytest.mark.parametrize("mode", MODES)
def test_coordinates_summed_in_scipys_order(ndi, mode):
    """Keras' 180-degree rotation leaves 1.2e-16 off the diagonal: whether a
    border sample lands at 0.0 or at -1e-16 (outside, for 'constant')
    depends on the order of the sum, offset first in scipy."""
    m = augment.affine_matrix(theta=180, rows=17, cols=17)
    x = np.arange(17 * 17, dtype=np.float32).reshape(17, 17, 1)
    for order in (0, 1):
        np.testing.assert_array_equal(_warp(x, m, order, mode, 128.0),
                                      _scipy_warp(ndi, x, m, order, mode, 128.0))


def test_constant_mode_is_cval_just_outside_the_border():
    x = np.full((1, 4, 1), 100, np.float32)
    for c0, want in [(-1e-9, 7.0), (0.0, 100.0), (3.0, 100.0), (3.0 + 1e-9, 7.0)]:
        m = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, c0]])
        assert _warp(x, m, 1, "constant", 7.0)[0, 0, 0] == want, c0


def test_wrap_has_period_n_minus_1():
    x = np.array([10, 20, 40, 80], np.float32).reshape(1, 4, 1)
    got = {c0: _warp(x, np.array([[1.0, 0, 0], [0, 0, c0]]), 0, "wrap", 0)[0, 0, 0]
           for c0 in (-1.0, -3.0, 3.0, 4.0, 6.0)}
    assert got == {-1.0: 40, -3.0: 80, 3.0: 80, 4.0: 20, 6.0: 10}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("order", [0, 1])
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_flips_as_index_maps_equal_np_flip_after_the_warp(mode, order, dtype):
    rng = np.random.default_rng(7)
    for shape in [(1, 1), (5, 8), (8, 5)]:
        x = _image(rng, shape, 3, dtype, fractional=True)
        m = _random_matrix(rng)
        plain = _warp(x, m, order, mode, 3.0)
        for fh, fv in [(1, 0), (0, 1), (1, 1)]:
            got = _warp(x, m, order, mode, 3.0, flip_h=fh, flip_v=fv)
            want = plain
            if fh:
                want = want[:, ::-1]
            if fv:
                want = want[::-1]
            np.testing.assert_array_equal(got, want)
        # Without a warp the flips act on the source itself.
        got = _warp(x, m, order, mode, 0.0, warp=False, flip_h=True, flip_v=True)
        np.testing.assert_array_equal(got, x[::-1, ::-1])


def test_float_output_fuses_rescale():
    rng = np.random.default_rng(3)
    x = _image(rng, (7, 9), 3, np.float32, fractional=True)
    m = _random_matrix(rng)
    plain = _warp(x, m, 1, "reflect", 0.0)
    got = _warp(x, m, 1, "reflect", 0.0, scale=np.float32(1 / 255), offset=np.float32(-0.5))
    np.testing.assert_array_equal(got, plain * np.float32(1 / 255) + np.float32(-0.5))


def test_uint8_source_into_float_output_keeps_keras_float32_values(ndi):
    """The batch path: a uint8 decode warped as Keras warps img_to_array's
    float32 copy (no rounding to uint8)."""
    rng = np.random.default_rng(4)
    x = _image(rng, (10, 12), 3, np.uint8)
    m = _random_matrix(rng)
    out = np.empty(x.shape, np.float32)
    _native.warp_affine(x, out, m.ravel(), order=1, fill_mode="nearest")
    np.testing.assert_array_equal(out, _scipy_warp(ndi, x.astype(np.float32), m, 1, "nearest", 0))


@pytest.fixture(params=[True, False], ids=["simd", "scalar"])
def warp_simd(request):
    """Each test twice: with the best warp the CPU has (AVX2 rows for uint8
    sources where available) and with the scalar code."""
    level = _native.set_warp_simd(request.param)
    yield level
    _native.set_warp_simd(True)


def test_simd_switch_reports_the_level():
    detected = _native.set_warp_simd(True)
    assert detected in ("avx2", "none") and _native.warp_simd() == detected
    try:
        assert _native.set_warp_simd(False) == "none" == _native.warp_simd()
    finally:
        _native.set_warp_simd(True)


def _augmentation_matrix(rng, rows, cols):
    """Keras-style draws, wider than the common recipe: most of the image
    interior, with borders on every side."""
    return augment.affine_matrix(
        theta=rng.uniform(-40, 40), tx=rng.uniform(-0.3, 0.3) * rows,
        ty=rng.uniform(-0.3, 0.3) * cols, shear=rng.uniform(-20, 20),
        zx=rng.uniform(0.6, 1.4), zy=rng.uniform(0.6, 1.4), rows=rows, cols=cols)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("order", [0, 1])
@pytest.mark.parametrize("channels", [1, 3, 4])
@pytest.mark.parametrize("shape", [(37, 53), (64, 61), (2, 3), (3, 1)])
def test_augmentation_sized_images_equal_scipy_bit_for_bit(ndi, warp_simd, mode, order,
                                                           channels, shape):
    """Images large enough for the AVX2 rows' every path: whole quads inside,
    quads clamped or filled at the borders, quads whose 8-byte loads would
    pass the source's end (the bottom-right corner), the row tails; and
    sources under 4 and 8 bytes.  uint8 sources into uint8 (scipy's
    rounding) and into float32 (Keras' float32 array, straight from the
    rows), with and without the fused scale."""
    rng = np.random.default_rng([MODES.index(mode), order, channels, *shape])
    for trial in range(6):
        x = _image(rng, shape, channels, np.uint8)
        m = (_augmentation_matrix(rng, *shape) if trial < 4 else
             np.array([[1.0, 0, shape[0] * 0.5 + 0.25], [0, 1.0, shape[1] * 0.5 + 0.5]]))
        cval = float(rng.choice([0.0, 17.25, 300.0]))
        flips = dict(flip_h=bool(trial & 1), flip_v=bool(trial & 2))
        ref = _scipy_warp(ndi, x.astype(np.float32), m, order, mode, cval)
        if flips["flip_h"]:
            ref = ref[:, ::-1]
        if flips["flip_v"]:
            ref = ref[::-1]
        got = _warp(x, m, order, mode, cval, out_dtype=np.float32, quantize_u8=False, **flips)
        np.testing.assert_array_equal(got, ref, err_msg=f"m={m.tolist()} cval={cval}")
        sc, of = np.float32(1 / 255), np.float32(-0.5)
        got = _warp(x, m, order, mode, cval, out_dtype=np.float32, quantize_u8=False,
                    scale=sc, offset=of, **flips)
        np.testing.assert_array_equal(got, ref * sc + of)
        got = _warp(x, m, order, mode, cval, **flips)     # uint8 array: scipy rounds
        want = _scipy_warp(ndi, x, m, order, mode, cval)
        if flips["flip_h"]:
            want = want[:, ::-1]
        if flips["flip_v"]:
            want = want[::-1]
        np.testing.assert_array_equal(got, want)


def test_warp_affine_rejects_bad_arguments():
    x = np.zeros((4, 4, 3), np.uint8)
    m = (1, 0, 0, 0, 1, 0)
    with pytest.raises(ValueError, match="overlap"):
        _native.warp_affine(x, x, m)
    with pytest.raises(TypeError, match="uint8 or float32"):
        _native.warp_affine(x.astype(np.int16), np.empty_like(x), m)
    with pytest.raises(ValueError, match="1, 3 or 4"):
        _native.warp_affine(np.zeros((4, 4, 2), np.uint8), np.zeros((4, 4, 2), np.uint8), m)
    with pytest.raises(ValueError, match="at least 1x1"):
        _native.warp_affine(np.zeros((0, 4, 3), np.uint8), np.zeros((4, 4, 3), np.uint8), m)
    with pytest.raises(ValueError, match="order"):
        _native.warp_affine(x, np.empty_like(x), m, order=3)
    with pytest.raises(ValueError, match="fill_mode"):
        _native.warp_affine(x, np.empty_like(x), m, fill_mode="mirror")
    with pytest.raises(ValueError, match="6 entries"):
        _native.warp_affine(x, np.empty_like(x), m[:4])
    # What only the C kernel checks comes back through _error_for.
    for bad in [(np.nan, 0, 0, 0, 1, 0), (1, 0, 2.0 ** 60, 0, 1, 0)]:
        with pytest.raises(Exception, match="invalid warp arguments"):
            _native.warp_affine(x, np.empty_like(x), bad)
    with pytest.raises(Exception, match="invalid warp arguments"):
        _native.warp_affine(x, np.empty((4, 5, 3), np.uint8), m, warp=False)
    # Pillow's blend computes in C float: a factor beyond FLT_MAX is inf there.
    with pytest.raises(Exception, match="invalid warp arguments"):
        _native.warp_affine(x, np.empty((4, 4, 3), np.float32), m, brightness=1e39)


# --- brightness: Pillow's blend arithmetic ----------------------------------

FACTORS = [0.0, 1e-7, 0.3, 0.5, 0.7, 0.999, 1.0, 1.0000001, 1.3, 1.5, 2.7, 10.0, -0.5, 1e38]


@pytest.mark.parametrize("factor", FACTORS)
def test_brightness_equals_pillow_on_every_value(factor):
    im = Image.fromarray(np.arange(256, dtype=np.uint8).reshape(16, 16), "L")
    want = np.asarray(ImageEnhance.Brightness(im).enhance(factor)).ravel()
    got = [_native._brightness_u8(v, factor) for v in range(256)]
    assert got == want.tolist()


@pytest.mark.parametrize("factor", [0.0, 0.45, 1.0, 1.8])
def test_brightness_keeps_alpha_like_pillow(factor):
    rng = np.random.default_rng(5)
    x = rng.integers(0, 256, (6, 7, 4)).astype(np.uint8)
    want = np.asarray(ImageEnhance.Brightness(Image.fromarray(x, "RGBA")).enhance(factor))
    got = augment.apply_transform(x, {"brightness": factor})
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, want.astype(np.float32))


# --- apply_transform: parity with Keras' own ---------------------------------

def _random_params(rng, shape):
    rows, cols = shape
    p = {"theta": float(rng.uniform(-180, 180)),
         "tx": float(rng.uniform(-1.5, 1.5) * cols), "ty": float(rng.uniform(-1.5, 1.5) * rows),
         "shear": float(rng.uniform(-40, 40)),
         "zx": float(rng.uniform(0.5, 1.6)), "zy": float(rng.uniform(0.5, 1.6)),
         "flip_horizontal": bool(rng.integers(0, 2)), "flip_vertical": bool(rng.integers(0, 2))}
    if rng.random() < 0.5:
        p["channel_shift_intensity"] = float(rng.uniform(-60, 60))
    if rng.random() < 0.5:
        p["brightness"] = float(rng.uniform(0.2, 1.8))
    return p


SPECIAL = [
    {"theta": 90}, {"theta": -90}, {"theta": 180}, {"theta": 270},
    {"tx": 40}, {"ty": -33}, {"tx": 1000.5, "ty": -7},
    {"zx": 1, "zy": 1}, {"zx": 2.0, "zy": 0.5}, {"shear": 45},
    {"flip_horizontal": True}, {"flip_vertical": True},
    {"flip_horizontal": True, "flip_vertical": True, "theta": 90},
    {"channel_shift_intensity": 30.0}, {"channel_shift_intensity": -300.0},
    {"brightness": 0.0}, {"brightness": 0.5}, {"brightness": 1.7},
    {"theta": 90, "channel_shift_intensity": 12.5, "brightness": 1.2, "flip_horizontal": True},
]

# Measured (scipy 1.17, Keras 3.15): every case below is bit-identical to
# Keras except a uint8 image with a channel shift and no brightness, where
# Keras' result is float64 and the kernel's float32 (|diff| < 1e-5).
TIGHT = 1e-4


def _check(got, ref, label):
    assert got.shape == ref.shape and got.dtype == ref.dtype, label
    d = np.abs(got.astype(np.float64) - ref.astype(np.float64))
    assert d.max() <= 1.0 and d.mean() <= 0.01, label          # the bound
    assert d.max() <= TIGHT, f"{label}: max |diff| {d.max()}"  # what is measured
    return d.max(), d.mean()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("order", [0, 1])
@pytest.mark.parametrize("channels", [1, 3, 4])
@pytest.mark.parametrize("shape", [(17, 17), (13, 21), (1, 1)])
@pytest.mark.parametrize("dtype", [np.float32, np.uint8])
def test_apply_transform_matches_keras(keras_apply, mode, order, channels, shape, dtype):
    rng = np.random.default_rng([MODES.index(mode), order, channels, shape[1],
                                 int(dtype == np.uint8)])
    cases = [_random_params(rng, shape) for _ in range(6)] + SPECIAL
    for i, params in enumerate(cases):
        x = _image(rng, shape, channels, dtype)
        cval = float(rng.choice([0.0, 128.0, 300.0]))
        kw = dict(fill_mode=mode, cval=cval, interpolation_order=order)
        ref = keras_apply(x, params, **kw)
        got = augment.apply_transform(x, params, **kw)
        _check(got, ref, f"case {i} {params} {kw}")


@pytest.mark.parametrize("params", [
    {"brightness": 1.4},
    {"channel_shift_intensity": np.float64(20.25), "brightness": 0.8},
    {"channel_shift_intensity": 20.25, "brightness": 0.8, "theta": 30},
])
def test_brightness_rescales_values_outside_0_255_like_keras(keras_apply, params):
    """apply_brightness_shift scales an image leaving [0, 255] to 0..255,
    truncates, blends and scales back, in float32 or float64 as numpy
    promotes (an np.float64 intensity makes the array float64)."""
    rng = np.random.default_rng(11)
    x = (rng.random((9, 11, 3)) * 450 - 50).astype(np.float32)
    ref = keras_apply(x, params)
    got = augment.apply_transform(x, params)
    _check(got, ref, str(params))


@pytest.mark.parametrize("params", [{"theta": 33, "tx": 3, "zx": 1.2},
                                   {"flip_vertical": True, "channel_shift_intensity": 9.0}])
def test_channels_first_matches_keras(keras_apply, params):
    rng = np.random.default_rng(12)
    x = rng.integers(0, 256, (3, 8, 11)).astype(np.float32)
    ref = keras_apply(x, params, data_format="channels_first")
    got = augment.apply_transform(x, params, data_format="channels_first")
    _check(got, ref, str(params))
    last = augment.apply_transform(np.moveaxis(x, 0, -1), params, data_format="channels_last")
    np.testing.assert_array_equal(np.moveaxis(got, 0, -1), last)


def test_identity_parameters_return_the_image():
    x = np.random.default_rng(0).integers(0, 256, (5, 6, 3)).astype(np.uint8)
    got = augment.apply_transform(x, {"theta": 0, "zx": 1, "zy": 1, "tx": 0})
    assert got is not x and got.dtype == np.uint8
    np.testing.assert_array_equal(got, x)


# --- get_random_transform ----------------------------------------------------

RANGES = [
    dict(rotation_range=20, width_shift_range=0.2, height_shift_range=0.1, shear_range=0.2,
         zoom_range=0.2, horizontal_flip=True),
    dict(width_shift_range=7, height_shift_range=3, vertical_flip=True),
    dict(width_shift_range=[-5, 2, 9], height_shift_range=(0.25, 0.5), zoom_range=[0.8, 1.1]),
    dict(channel_shift_range=40.0, brightness_range=(0.5, 1.5), horizontal_flip=True,
         vertical_flip=True, zoom_range=[1, 1]),
    dict(width_shift_range=12.5, height_shift_range=0.99, data_format="channels_first"),
    dict(),
]


@pytest.mark.parametrize("ranges", RANGES)
def test_random_draws_equal_keras_with_the_shift_axes_swapped(keras_idg, ranges):
    shape = (3, 30, 40) if ranges.get("data_format") == "channels_first" else (30, 40, 3)
    state = np.random.get_state()
    for seed in range(25):
        want = keras_idg(**ranges).get_random_transform(shape, seed=seed)
        want["tx"], want["ty"] = want["ty"], want["tx"]
        got = augment.get_random_transform(shape, seed=seed, **ranges)
        assert got == want, seed
    np.random.set_state(state)


@pytest.mark.parametrize("ranges", [
    dict(rotation_range=25, shear_range=10, zoom_range=0.3, horizontal_flip=True,
         vertical_flip=True, channel_shift_range=30.0, brightness_range=[0.6, 1.4]),
    # (No shifts: Keras' swapped shift draws give other images by design.)
    dict(zoom_range=[0.7, 1.2], rotation_range=90, fill_mode="reflect"),
])
def test_random_transform_matches_keras(keras_idg, ndi, ranges):
    kw = {k: ranges[k] for k in ("fill_mode",) if k in ranges}
    draw = {k: v for k, v in ranges.items() if k not in kw}
    x = np.random.default_rng(2).integers(0, 256, (24, 24, 3)).astype(np.float32)
    state = np.random.get_state()
    for seed in range(10):
        ref = keras_idg(**ranges).random_transform(x.copy(), seed=seed)
        got = augment.random_transform(x, seed, **kw, **draw)
        _check(got, ref, f"seed {seed}")
    np.random.set_state(state)


def test_random_draws_never_touch_numpys_global_generator():
    state = np.random.get_state()
    a = augment.get_random_transform((8, 8, 3), seed=5, rotation_range=30, zoom_range=0.3)
    b = augment.get_random_transform((8, 8, 3), rng=np.random.default_rng(5), rotation_range=30)
    c = augment.get_random_transform((8, 8, 3), rng=np.random.default_rng(5), rotation_range=30)
    after = np.random.get_state()
    assert all(np.array_equal(u, v) for u, v in zip(state, after))
    assert b == c and a["theta"] != 0 and b["theta"] != 0


def test_width_shift_range_moves_the_image_horizontally():
    x = np.zeros((20, 30, 1), np.float32)
    x[10, 15] = 255
    for seed in range(5):
        p = augment.get_random_transform(x.shape, seed=seed, width_shift_range=0.3)
        assert p["ty"] == 0 and p["tx"] != 0
        y = augment.apply_transform(x, p, interpolation_order=0, fill_mode="constant")
        rows, cols = np.nonzero(y[..., 0])
        # |tx| <= 9: the pixel stays in view, on its row, moved by tx columns.
        assert rows.tolist() == [10]
        assert abs(cols[0] - (15 - p["tx"])) <= 0.5


@pytest.mark.parametrize("kwargs,match", [
    (dict(interpolation_order=2), "0 .*1"),
    (dict(interpolation_order=True), "0 .*1"),
    (dict(fill_mode="mirror"), "'constant', 'nearest', 'reflect', 'wrap'"),
    (dict(data_format="NHWC"), "channels_last"),
])
def test_apply_transform_argument_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        augment.apply_transform(np.zeros((4, 4, 3), np.uint8), {"theta": 10}, **kwargs)


@pytest.mark.parametrize("x,params,exc,match", [
    (np.zeros((4, 4), np.uint8), {}, ValueError, "multi-channel 2D"),
    (np.zeros((4, 4, 2), np.uint8), {}, ValueError, "1, 3 or 4 channels"),
    (np.zeros((4, 4, 3), np.int32), {}, TypeError, "uint8 or floating"),
    (np.zeros((4, 4, 3), np.uint8), {"theta": float("nan")}, ValueError, "'theta' must be finite"),
    (np.zeros((4, 4, 3), np.uint8), {"tx": 1e300}, ValueError, "beyond 2\\*\\*52"),
    (np.zeros((4, 4, 3), np.uint8), {"brightness": "x"}, ValueError, "'brightness' must be"),
    (np.zeros((4, 4, 3), np.uint8), {"brightness": 1e39}, ValueError, "finite as a float32"),
])
def test_apply_transform_input_errors(x, params, exc, match):
    with pytest.raises(exc, match=match):
        augment.apply_transform(x, params)


@pytest.mark.parametrize("kwargs,match", [
    (dict(zoom_range=[1, 2, 3]), "`zoom_range` should be a float"),
    (dict(brightness_range=0.5), "`brightness_range should be tuple"),
    (dict(width_shift_range={"a": 1}), "shift ranges should be"),
    (dict(seed=1, rng=np.random.default_rng(1)), "either seed or rng"),
])
def test_get_random_transform_argument_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        augment.get_random_transform((4, 4, 3), **kwargs)
