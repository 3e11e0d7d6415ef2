"""Resize parity with Pillow (and so with keras.utils.load_img, which uses
Pillow's filters): with dct_scaling=False, load_batch equals
PIL.Image.resize(size, filter) applied to Pillow's decode.  The brief allows
+-1; the resampler reproduces Pillow's fixed-point arithmetic, so the tests
hold it to exact equality.  With DCT scaling, a decode at 1/N equals
Pillow's draft() decode at 1/N, resized with the (fractional) crop box
divided by N."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

import fastseq
from conftest import encode, photo_like

FILTERS = {"nearest": Image.Resampling.NEAREST, "box": Image.Resampling.BOX,
           "bilinear": Image.Resampling.BILINEAR, "hamming": Image.Resampling.HAMMING,
           "bicubic": Image.Resampling.BICUBIC, "lanczos": Image.Resampling.LANCZOS}

# (source h, w) -> targets (h, w): downscale, upscale, mixed, odd, extreme.
CASES = [
    ((375, 500), [(224, 224), (100, 133), (17, 23)]),
    ((300, 451), [(224, 224), (600, 902), (150, 451)]),
    ((37, 61), [(224, 224), (37, 30), (5, 7)]),
    ((120, 900), [(64, 64), (120, 100)]),
    ((700, 90), [(32, 224), (1, 1)]),
]


@pytest.fixture(scope="module")
def jpegs():
    out = {}
    for i, (hw, _) in enumerate(CASES):
        out[hw] = encode(photo_like(*hw, seed=100 + i), "JPEG", quality=88)
    return out


def pil_reference(data, size_hw, filt, mode="RGB", box=None):
    with Image.open(io.BytesIO(data)) as im:
        im = im.convert(mode)
        r = im.resize((size_hw[1], size_hw[0]), FILTERS[filt], box=box)
        a = np.asarray(r)
    return a.reshape(a.shape[0], a.shape[1], -1)


@pytest.mark.parametrize("filt", list(FILTERS))
@pytest.mark.parametrize("src", [c[0] for c in CASES], ids=lambda s: f"{s[0]}x{s[1]}")
def test_resize_matches_pillow(jpegs, src, filt):
    targets = dict(CASES)[src]
    for tgt in targets:
        got = fastseq.decode_batch([jpegs[src]], tgt, interpolation=filt, dct_scaling=False)[0]
        ref = pil_reference(jpegs[src], tgt, filt)
        diff = np.abs(got.astype(int) - ref).max()
        assert diff == 0, f"{src}->{tgt} {filt}: max |diff| {diff}"


@pytest.mark.parametrize("filt", ["nearest", "bilinear", "bicubic", "lanczos"])
@pytest.mark.parametrize("color_mode,pil_mode", [("grayscale", "L"), ("rgba", "RGBA")])
def test_other_colour_modes_match_pillow(jpegs, filt, color_mode, pil_mode):
    src = (375, 500)
    got = fastseq.decode_batch([jpegs[src]], (97, 131), color_mode=color_mode,
                               interpolation=filt, dct_scaling=False)[0]
    np.testing.assert_array_equal(got, pil_reference(jpegs[src], (97, 131), filt, pil_mode))


def real_alpha_png(h, w, seed, mode="RGBA"):
    """A PNG whose alpha takes every kind of value: fully transparent
    stripes (alpha 0), opaque ones (255) and a ramp between, over a
    photo-like image, so colours are premultiplied, averaged across alpha
    edges and unpremultiplied on the way out."""
    rgba = photo_like(h, w, seed=seed, channels=4)
    rgba[:, : w // 6, 3] = 0
    rgba[:, w // 6: w // 3, 3] = 255
    rgba[h // 2: h // 2 + 3, :, 3] = 0
    im = Image.fromarray(rgba, "RGBA")
    return encode(np.asarray(im.convert(mode)), "PNG")


@pytest.mark.parametrize("filt", list(FILTERS))
@pytest.mark.parametrize("tgt", [(64, 80), (300, 190)], ids=["down", "up"])
@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_rgba_with_real_alpha_matches_pillow(filt, tgt, mode):
    """PNG with varying alpha (Pillow fallback): Pillow resizes RGBA
    premultiplied ("RGBa") and unpremultiplies the result.  uint8 output
    equals Pillow's; float32 output equals Keras' img_to_array of it times
    rescale (float32), which checks the unpremultiply of the float32 write."""
    data = real_alpha_png(211, 173, seed=7, mode=mode)
    ref = pil_reference(data, tgt, filt, "RGBA")
    assert ref[..., 3].min() == 0 and ref[..., 3].max() == 255
    assert len(np.unique(ref[..., 3])) > 20, "the alpha is not varied enough to test"
    got = fastseq.decode_batch([data], tgt, color_mode="rgba", interpolation=filt)[0]
    np.testing.assert_array_equal(got, ref)
    for scale, offset in [(1 / 255, 0.0), (1 / 127.5, -1.0), (1.0, 0.0)]:
        f = fastseq.decode_batch([data], tgt, color_mode="rgba", interpolation=filt,
                                 dtype="float32", rescale=scale, offset=offset)[0]
        assert f.dtype == np.float32
        np.testing.assert_array_equal(
            f, ref.astype(np.float32) * np.float32(scale) + np.float32(offset),
            err_msg=f"float32 rescale={scale} offset={offset}")
    crop = fastseq.decode_batch([data], tgt, color_mode="rgba", interpolation=filt,
                                dtype="float32", rescale=1 / 255, keep_aspect_ratio=True)[0]
    box = keras_crop_box(211, 173, tgt)
    np.testing.assert_array_equal(
        crop, pil_reference(data, tgt, filt, "RGBA", box=box).astype(np.float32)
        * np.float32(1 / 255))


@pytest.mark.parametrize("filt", list(FILTERS))
@pytest.mark.parametrize("tgt", [(224, 224), (100, 300), (300, 100)])
def test_keep_aspect_ratio_matches_keras_crop(jpegs, filt, tgt):
    """Keras' load_img(keep_aspect_ratio=True): integer centre crop box."""
    src = (375, 500)
    h, w = src
    crop_h = min(h, (w * tgt[0]) // tgt[1])
    crop_w = min(w, (h * tgt[1]) // tgt[0])
    y0, x0 = (h - crop_h) // 2, (w - crop_w) // 2
    box = (x0, y0, x0 + crop_w, y0 + crop_h)
    got = fastseq.decode_batch([jpegs[src]], tgt, interpolation=filt, dct_scaling=False,
                               keep_aspect_ratio=True)[0]
    np.testing.assert_array_equal(got, pil_reference(jpegs[src], tgt, filt, box=box))


def keras_crop_box(h, w, tgt):
    """Keras' load_img(keep_aspect_ratio=True) centre crop of an h x w image
    for target (th, tw): (x0, y0, x1, y1), integers."""
    crop_h = min(h, (w * tgt[0]) // tgt[1])
    crop_w = min(w, (h * tgt[1]) // tgt[0])
    y0, x0 = (h - crop_h) // 2, (w - crop_w) // 2
    return (x0, y0, x0 + crop_w, y0 + crop_h)


# DCT scaling with keep_aspect_ratio: the denominator d (1/2, 1/4, 1/8) is
# the largest that keeps the crop at least the target in both directions,
# libjpeg decodes ceil(w/d) x ceil(h/d), and the crop box is Keras' integer
# box on the full image divided by d, so it is fractional in the scaled image
# and Pillow's resize(box=...) handles the fraction.  Each case: source
# (h, w), target (h, w), the denominator it must pick; every box here has a
# coordinate that is not a multiple of d (checked by the test).
DCT_CROP_CASES = [
    ((375, 500), (40, 90), 4),       # box y 19 .. 74.5
    ((301, 457), (70, 200), 2),      # box y 35.5 .. 115, x .. 228.5
    ((301, 457), (20, 50), 8),       # box y 7.375 .. 30.125, x .. 57.125
    ((601, 203), (70, 12), 8),       # box x 6.25 .. 19.125
    ((257, 1021), (30, 31), 8),      # box x 47.25 .. 80.375, y .. 32.125
    ((480, 640), (90, 37), 4),       # box x 55.25 .. 104.5
    ((333, 250), (19, 41), 4),       # box y 27.25 .. 56, x .. 62.5
]


@pytest.fixture(scope="module")
def dct_crop_jpegs():
    """{(source (h, w), channels): JPEG bytes} for DCT_CROP_CASES, colour
    (4:2:0) and grayscale."""
    out = {}
    for k, ((h, w), _, _) in enumerate(DCT_CROP_CASES):
        for ch in (3, 1):
            out[(h, w), ch] = encode(photo_like(h, w, seed=300 + k, channels=ch), "JPEG",
                                     quality=90)
    return out


def pil_scaled_reference(data, tgt, filt, mode, denom, box):
    """Pillow's libjpeg scaled decode (draft() at 1/denom), convert to `mode`
    as Keras does, then resize the crop box divided by denom."""
    with Image.open(io.BytesIO(data)) as im:
        w, h = im.size
        im.draft("L" if im.mode == "L" else "RGB", (w // denom, h // denom))
        assert im.size == (-(-w // denom), -(-h // denom)), "draft() chose another scale"
        im = im.convert(mode)
        r = im.resize((tgt[1], tgt[0]), FILTERS[filt], box=tuple(b / denom for b in box))
        a = np.asarray(r)
    return a.reshape(a.shape[0], a.shape[1], -1)


@pytest.mark.parametrize("filt", list(FILTERS))
@pytest.mark.parametrize("channels", [3, 1], ids=["colour-jpeg", "gray-jpeg"])
@pytest.mark.parametrize("color_mode,pil_mode", [("rgb", "RGB"), ("grayscale", "L"),
                                                 ("rgba", "RGBA")])
def test_dct_scaling_with_keep_aspect_ratio_matches_scaled_pillow(
        dct_crop_jpegs, filt, channels, color_mode, pil_mode):
    for src, tgt, denom in DCT_CROP_CASES:
        box = keras_crop_box(*src, tgt)
        assert any(b % denom for b in box), f"{src}->{tgt}: box {box} is not fractional"
        data = dct_crop_jpegs[src, channels]
        got = fastseq.decode_batch([data], tgt, color_mode=color_mode, interpolation=filt,
                                   keep_aspect_ratio=True)[0]
        ref = pil_scaled_reference(data, tgt, filt, pil_mode, denom, box)
        np.testing.assert_array_equal(got, ref, err_msg=f"{src}->{tgt} at 1/{denom}, "
                                                        f"box {box}")
    # float32 output of the same path: the uint8 result, rescaled
    f = fastseq.decode_batch([data], tgt, color_mode=color_mode, interpolation=filt,
                             keep_aspect_ratio=True, dtype="float32", rescale=1 / 255)[0]
    np.testing.assert_array_equal(f, ref.astype(np.float32) * np.float32(1 / 255))


@pytest.mark.parametrize("scale,offset", [(1 / 255, 0.0), (1 / 127.5, -1.0), (1.0, 0.0)])
def test_float32_output_is_rescaled_uint8(jpegs, scale, offset):
    src = jpegs[(300, 451)]
    u8 = fastseq.decode_batch([src], (50, 70), dct_scaling=False)
    f = fastseq.decode_batch([src], (50, 70), dct_scaling=False, dtype="float32",
                             rescale=scale, offset=offset)
    assert f.dtype == np.float32
    ref = u8.astype(np.float32) * np.float32(scale) + np.float32(offset)
    np.testing.assert_array_equal(f, ref)


def psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


# PSNR of DCT-scaled decode + resize against the exact path (full decode +
# resize) on three photo-like images (1600x1200, 700x900, 460x500 -> 112x112),
# as the README states them (dB, rounded): every measured value must round
# into its filter's range.  Measured: bilinear 50.0/48.2/43.3, bicubic
# 49.1/47.7/42.4, lanczos 48.7/47.4/42.2, hamming 46.8/46.4/40.0, box
# 42.8/41.0/36.3, nearest 33.9/32.0/30.0 (it picks other source pixels).
README_DCT_PSNR = {"nearest": (30, 34), "box": (36, 43), "bilinear": (43, 50),
                   "hamming": (40, 47), "bicubic": (42, 49), "lanczos": (42, 49)}


@pytest.mark.parametrize("filt", list(FILTERS))
def test_dct_scaling_is_close_to_exact_path(filt):
    data = [encode(photo_like(h, w, seed=s), "JPEG", quality=90)
            for s, (h, w) in enumerate([(1200, 1600), (900, 700), (500, 460)])]
    tgt = (112, 112)
    fast, fails = fastseq.decode_batch(data, tgt, interpolation=filt, return_failed=True)
    exact = fastseq.decode_batch(data, tgt, interpolation=filt, dct_scaling=False)
    assert not fails
    lo, hi = README_DCT_PSNR[filt]
    for i in range(len(data)):
        assert not np.array_equal(fast[i], exact[i]), "DCT scaling was not used"
        assert lo - 0.5 <= psnr(fast[i], exact[i]) < hi + 0.5, (i, psnr(fast[i], exact[i]))


def test_dct_scaling_never_goes_below_target():
    """The scale is chosen so the decoded image is at least the target in
    both dimensions: 500x375 -> 224x224 must decode at full size."""
    data = encode(photo_like(375, 500, seed=1), "JPEG", quality=90)
    a = fastseq.decode_batch([data], (224, 224))
    b = fastseq.decode_batch([data], (224, 224), dct_scaling=False)
    np.testing.assert_array_equal(a, b)
    c = fastseq.decode_batch([data], (187, 112))[0]     # 375/2 >= 187: half scale
    np.testing.assert_array_equal(
        c, pil_scaled_reference(data, (187, 112), "bilinear", "RGB", 2, (0, 0, 500, 375)))
    e = fastseq.decode_batch([data], (93, 125))[0]      # 375/4 >= 93, 500/4 >= 125
    np.testing.assert_array_equal(
        e, pil_scaled_reference(data, (93, 125), "bilinear", "RGB", 4, (0, 0, 500, 375)))


# A grayscale JPEG written as RGB is decoded and resized as one channel and
# copied into three on the way out (a third of the work); the result must
# still be Pillow's convert("RGB") then resize, for every filter, both
# dtypes, and crops.
@pytest.fixture(scope="module")
def gray_jpeg():
    return encode(photo_like(375, 500, seed=11)[..., 1], "JPEG", quality=90)


@pytest.mark.parametrize("filt", list(FILTERS))
@pytest.mark.parametrize("tgt", [(224, 224), (97, 131), (375, 500), (600, 333)])
def test_grayscale_jpeg_as_rgb_matches_pillow(gray_jpeg, filt, tgt):
    got = fastseq.decode_batch([gray_jpeg], tgt, interpolation=filt, dct_scaling=False)[0]
    assert got.shape == (*tgt, 3)
    np.testing.assert_array_equal(got, pil_reference(gray_jpeg, tgt, filt, "RGB"))


@pytest.mark.parametrize("filt", ["nearest", "bilinear", "lanczos"])
def test_grayscale_jpeg_as_rgb_float32_and_crop(gray_jpeg, filt):
    tgt = (100, 300)
    ref = pil_reference(gray_jpeg, tgt, filt, "RGB").astype(np.float32)
    got = fastseq.decode_batch([gray_jpeg], tgt, interpolation=filt, dct_scaling=False,
                               dtype="float32", rescale=1 / 127.5, offset=-1.0)[0]
    np.testing.assert_array_equal(got, ref * np.float32(1 / 127.5) + np.float32(-1.0))
    crop = fastseq.decode_batch([gray_jpeg], tgt, interpolation=filt, dct_scaling=False,
                                keep_aspect_ratio=True)[0]
    h, w = 375, 500
    crop_h = min(h, (w * tgt[0]) // tgt[1])
    crop_w = min(w, (h * tgt[1]) // tgt[0])
    y0, x0 = (h - crop_h) // 2, (w - crop_w) // 2
    np.testing.assert_array_equal(
        crop, pil_reference(gray_jpeg, tgt, filt, "RGB", box=(x0, y0, x0 + crop_w, y0 + crop_h)))


# ------------------------------------------------------------ pass order
# Pillow's two resize passes each round to 8 bits, so their order shows in
# the pixels, and it changed: 9.2-12.2 always horizontal first, 12.3 vertical
# first for sources over 100x taller than wide, 13 vertical first when the
# height shrinks by more than twice as many pixels as the width.  fastseq
# reproduces the installed Pillow's order (fastseq.batch picks it from
# PIL.__version__).  The references below are built from two single-axis
# resizes, which every Pillow computes the same way, so all three orders are
# checked against whichever Pillow is installed.

from fastseq import _native  # noqa: E402
from fastseq.batch import _pillow_pass_order  # noqa: E402

# (source h, w) -> target (h, w), and which orders resize vertically first.
PASS_ORDER_CASES = [
    ((700, 90), (32, 224), {2}),        # Pillow 13's rule only
    ((1010, 10), (1000, 1), {1}),       # Pillow 12.3's rule only (> 100x tall)
    ((1010, 10), (300, 5), {1, 2}),     # both rules
    ((375, 500), (100, 133), set()),    # horizontal first everywhere
]


@pytest.mark.parametrize("version,order", [
    ("9.2.0", 0), ("10.4.0", 0), ("12.2.0", 0), ("12.3.0", 1), ("12.3.1", 1),
    ("13.0.0", 2), ("13.1.0.dev0", 2), ("14.0.0", 2), ("unparseable", 2)])
def test_pass_order_from_pillow_version(version, order):
    assert _pillow_pass_order(version) == order


def test_pass_order_in_force_is_the_installed_pillows():
    import PIL

    assert _native.resize_pass_order() == _pillow_pass_order(PIL.__version__)


@pytest.fixture
def restore_pass_order():
    before = _native.resize_pass_order()
    yield
    assert _native.set_resize_pass_order(before) == before


def _two_passes(data, tgt, filt, vertical_first):
    f = FILTERS[filt]
    with Image.open(io.BytesIO(data)) as im:
        im = im.convert("RGB")
        w0, h0 = im.size
        if vertical_first:
            r = im.resize((w0, tgt[0]), f).resize((tgt[1], tgt[0]), f)
        else:
            r = im.resize((tgt[1], h0), f).resize((tgt[1], tgt[0]), f)
        return np.asarray(r)


@pytest.mark.parametrize("filt", ["bilinear", "bicubic", "lanczos"])
@pytest.mark.parametrize("src,tgt,vfirst", PASS_ORDER_CASES,
                         ids=lambda v: "x".join(map(str, v)) if isinstance(v, tuple) else None)
def test_each_pass_order_matches_pillow(restore_pass_order, src, tgt, vfirst, filt):
    data = encode(photo_like(*src, seed=7), "JPEG", quality=90)
    refs = {v: _two_passes(data, tgt, filt, v) for v in (False, True)}
    if vfirst:
        # The case is only a check of the order if the two orders differ.
        assert np.abs(refs[True].astype(int) - refs[False]).max() > 0
    for order in (0, 1, 2):
        assert _native.set_resize_pass_order(order) == order
        got = fastseq.decode_batch([data], tgt, interpolation=filt, dct_scaling=False)[0]
        diff = np.abs(got.astype(int) - refs[order in vfirst]).max()
        assert diff == 0, f"order {order}: {src}->{tgt} {filt}: max |diff| {diff}"


def test_unknown_pass_order_is_refused(restore_pass_order):
    with pytest.raises(ValueError, match="pass order must be 0, 1 or 2"):
        _native.set_resize_pass_order(3)
