"""The resampler's plan step (fs_resize_plan in csrc/resample.h) on its own.

The plan holds, per axis, the source range and fixed-point weights of every
output sample.  They must be Pillow's: the reference below recomputes them
from the algorithm of Pillow's precompute_coeffs and normalize_coeffs_8bpc
(libImaging/Resample.c), written out here in Python:

  scale = (in1 - in0) / out_size     (the box as C floats, subtracted in float)
  support = filter_support * max(scale, 1)
  ksize = ceil(support) * 2 + 1
  for output i: center = in0 + (i + 0.5) * scale
    xmin = max(int(center - support + 0.5), 0)
    xmax = min(int(center + support + 0.5), in_size)
    w[x] = filter((xmin + x - center + 0.5) / max(scale, 1)), x < xmax - xmin
    w /= sum(w) unless the sum is 0
    k[x] = int(w[x] * 2**PRECISION_BITS -+ 0.5)  (rounded away from 0)

with PRECISION_BITS = 32 - 8 - 2.  The plan drops zero weights at either end
of a range (they add nothing), so ranges are compared as dense rows over the
whole source axis.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from fastseq import _native
from fastseq.errors import ImageDecodeError

PRECISION_BITS = 32 - 8 - 2


def _f32(x: float) -> float:
    return float(np.float32(x))


def _box(x):
    return 1.0 if -0.5 < x <= 0.5 else 0.0


def _bilinear(x):
    x = abs(x)
    return 1.0 - x if x < 1.0 else 0.0


def _hamming(x):
    x = abs(x)
    if x == 0.0:
        return 1.0
    if x >= 1.0:
        return 0.0
    x = x * math.pi
    # Pillow's 0.54f and 0.46f are C float literals.
    return math.sin(x) / x * (_f32(0.54) + _f32(0.46) * math.cos(x))


def _bicubic(x, a=-0.5):
    x = abs(x)
    if x < 1.0:
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1
    if x < 2.0:
        return (((x - 5) * x + 8) * x - 4) * a
    return 0.0


def _sinc(x):
    if x == 0.0:
        return 1.0
    x = x * math.pi
    return math.sin(x) / x


def _lanczos(x):
    return _sinc(x) * _sinc(x / 3) if -3.0 <= x < 3.0 else 0.0


# fastseq's filter ids (fs_filter) -> (kernel, support)
FILTERS = {"box": (1, _box, 0.5), "bilinear": (2, _bilinear, 1.0),
           "hamming": (3, _hamming, 1.0), "bicubic": (4, _bicubic, 2.0),
           "lanczos": (5, _lanczos, 3.0)}


def pillow_axis(in_size, in0, in1, out_size, filt):
    """(scale, support, ksize, dense weights (out_size, in_size))."""
    _, kernel, fsupport = FILTERS[filt]
    in0, in1 = np.float32(in0), np.float32(in1)
    scale = float(in1 - in0) / out_size
    filterscale = max(scale, 1.0)
    support = fsupport * filterscale
    ksize = int(math.ceil(support)) * 2 + 1
    dense = np.zeros((out_size, in_size), np.int64)
    for i in range(out_size):
        center = float(in0) + (i + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), in_size) - xmin
        w = [kernel((x + xmin - center + 0.5) * (1.0 / filterscale)) for x in range(xmax)]
        ww = 0.0
        for v in w:          # in order, as C adds them (not math.fsum)
            ww += v
        for x, v in enumerate(w):
            if ww != 0.0:
                v /= ww
            dense[i, xmin + x] = int(-0.5 + v * (1 << PRECISION_BITS)) if v < 0 \
                else int(0.5 + v * (1 << PRECISION_BITS))
    return scale, support, ksize, dense


def plan_dense(ax, in_size):
    """The plan's weights of one axis as dense rows over the source axis."""
    n = len(ax["first"])
    dense = np.zeros((n, in_size), np.int64)
    for i in range(n):
        f, c = ax["first"][i], ax["count"][i]
        dense[i, f:f + c] = ax["coeffs"][i, :c]
    return dense


# (source w, h), box (x0, y0, x1, y1) or None for the whole image, (out w, h)
CASES = [
    ((500, 375), None, (224, 224)),                  # the usual downscale
    ((375, 500), None, (224, 224)),
    ((61, 37), None, (224, 224)),                    # upscale
    ((1000, 41), None, (33, 50)),                    # 30x across, upscale down
    ((3, 2), None, (1, 1)),
    ((1, 1), None, (2, 3)),
    ((400, 300), (10.3, 7.9, 301.7, 250.05), (64, 97)),   # fractional box
    ((400, 300), (0, 0, 333.3333, 299.99), (100, 100)),  # not exact in float32
    ((90, 80), (12, 20, 12, 60), (16, 16)),          # zero-width box
    ((300, 900), (0, 0, 300, 900), (300, 224)),      # width unchanged
]


@pytest.mark.parametrize("filt", list(FILTERS))
@pytest.mark.parametrize("src,box,out", CASES,
                         ids=[f"{s[0]}x{s[1]}-{b}-{o[0]}x{o[1]}" for s, b, o in CASES])
def test_plan_coefficients_are_pillows(src, box, out, filt):
    (sw, sh), (ow, oh) = src, out
    box = box or (0, 0, sw, sh)
    plan = _native._resize_plan(sw, sh, 3, box, FILTERS[filt][0], ow, oh)
    for name, in_size, in0, in1, out_size in (("h", sw, box[0], box[2], ow),
                                              ("v", sh, box[1], box[3], oh)):
        ax = plan[name]
        unchanged = out_size == in_size and in0 == 0 and _f32(in1) == out_size
        if unchanged:
            assert ax is None, name
            continue
        scale, support, ksize, dense = pillow_axis(in_size, in0, in1, out_size, filt)
        assert (ax["scale"], ax["support"], ax["ksize"]) == (scale, support, ksize), name
        got = plan_dense(ax, in_size)
        np.testing.assert_array_equal(got, dense, err_msg=f"{name} axis")
        # Ranges are trimmed to their non-zero ends, and the span covers them.
        first, count, k = ax["first"], ax["count"], ax["coeffs"]
        for i in np.nonzero(count)[0]:
            assert k[i, 0] != 0 and k[i, count[i] - 1] != 0
        used = count > 0
        if used.any():
            assert ax["span"] == (first[used].min(), (first + count)[used].max())


# (source w, h) -> (out w, h): Pillow 13 goes vertical first when the height
# shrinks by more than twice as many pixels as the width.
ORDER = [((500, 375), (224, 224), False), ((300, 900), (224, 224), True),
         ((500, 776), (224, 224), False),   # 552 > 2 * 276 is false
         ((500, 777), (224, 224), True),
         ((300, 900), (300, 224), False),   # one pass only
         ((300, 900), (600, 100), True),    # width grows, height shrinks
         ((300, 900), (100, 1000), False)]  # height grows


@pytest.mark.parametrize("src,out,vfirst", ORDER)
def test_plan_pass_order(src, out, vfirst):
    plan = _native._resize_plan(*src, 3, (0, 0, *src), 2, *out)
    assert plan["vertical_first"] is vfirst


@pytest.fixture
def simd_off():
    _native.set_resize_simd(False)
    try:
        yield
    finally:
        _native.set_resize_simd(True)


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_plan_without_simd_is_scalar(simd_off, channels):
    plan = _native._resize_plan(500, 375, channels, (0, 0, 500, 375), 4, 224, 224)
    assert (plan["h_kernel"], plan["v_kernel"]) == ("scalar", "scalar")


# (source w, h, channels) -> the horizontal kernel the plan picks with AVX2
KERNELS = [((500, 375, 1), (224, 224), "quads"),   # 2.2x: windows fit quads
           ((500, 375, 3), (224, 224), "quads"),
           ((500, 375, 4), (224, 224), "quads"),
           ((1000, 300, 3), (224, 224), "pixels"),  # 4.5x: RGB quads stop early
           ((1000, 300, 4), (224, 224), "quads"),   # an RGBA quad is one pixel
           ((1000, 41, 1), (33, 50), "scalar")]     # 30x: no quad fits, no L pixel kernel


@pytest.mark.skipif(_native.set_resize_simd(True) == "none", reason="no AVX2")
@pytest.mark.parametrize("src,out,kernel", KERNELS)
def test_plan_kernel_choice_with_avx2(src, out, kernel):
    w, h, c = src
    plan = _native._resize_plan(w, h, c, (0, 0, w, h), 2, *out)
    assert (plan["h_kernel"], plan["v_kernel"]) == (kernel, "avx2")


def test_plan_premultiplies_only_rgba():
    assert _native._resize_plan(50, 40, 4, (0, 0, 50, 40), 2, 20, 20, premultiply=True)["premultiply"]
    assert not _native._resize_plan(50, 40, 3, (0, 0, 50, 40), 2, 20, 20, premultiply=True)["premultiply"]


def test_plan_rejects_a_kernel_too_wide_to_size():
    # A 2^31-pixel row shrunk to one pixel: the lanczos support (3 * 2^31
    # source pixels) cannot be counted in an int; refused before allocating.
    n = 2**31 - 1
    with pytest.raises(ImageDecodeError) as e:
        _native._resize_plan(n, 1, 1, (0, 0, n, 1), 5, 1, 1)
    assert e.value.code == "too_large"


@pytest.mark.parametrize("box", [(-1, 0, 10, 10), (0, 0, 11, 10), (5, 0, 4, 10),
                                 (0, float("nan"), 10, 10)])
def test_plan_rejects_boxes_pillow_rejects(box):
    with pytest.raises(ImageDecodeError):
        _native._resize_plan(10, 10, 3, box, 2, 5, 5)
