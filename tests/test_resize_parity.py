"""Resize parity with Pillow (and so with keras.utils.load_img, which uses
Pillow's filters): with dct_scaling=False, load_batch equals
PIL.Image.resize(size, filter) applied to Pillow's decode.  The brief allows
+-1; the resampler reproduces Pillow's fixed-point arithmetic, so the tests
hold it to exact equality."""

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


@pytest.mark.parametrize("filt", ["nearest", "bilinear", "bicubic"])
def test_rgba_with_real_alpha_matches_pillow(filt):
    """PNG with varying alpha: Pillow resizes RGBA premultiplied ("RGBa")."""
    data = encode(photo_like(211, 173, seed=7, channels=4), "PNG")
    got = fastseq.decode_batch([data], (64, 80), color_mode="rgba", interpolation=filt)[0]
    np.testing.assert_array_equal(got, pil_reference(data, (64, 80), filt, "RGBA"))


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
# resize), measured on these three photo-like images (1600x1200, 700x900,
# 460x500 -> 112x112): bilinear 50.0/48.2/43.3 dB, bicubic 49.1/47.7/42.4,
# lanczos 48.7/47.4/42.2, hamming 46.8/46.4/40.0, box 42.8/41.0/36.3,
# nearest 33.9/32.0/30.0 (it picks other source pixels).  Floors sit ~1 dB
# under the worst measured value.
DCT_PSNR_FLOOR = {"nearest": 29.0, "box": 35.0, "bilinear": 42.0, "hamming": 39.0,
                  "bicubic": 41.0, "lanczos": 41.0}


@pytest.mark.parametrize("filt", list(FILTERS))
def test_dct_scaling_is_close_to_exact_path(filt):
    data = [encode(photo_like(h, w, seed=s), "JPEG", quality=90)
            for s, (h, w) in enumerate([(1200, 1600), (900, 700), (500, 460)])]
    tgt = (112, 112)
    fast, fails = fastseq.decode_batch(data, tgt, interpolation=filt, return_failed=True)
    exact = fastseq.decode_batch(data, tgt, interpolation=filt, dct_scaling=False)
    assert not fails
    for i in range(len(data)):
        assert not np.array_equal(fast[i], exact[i]), "DCT scaling was not used"
        assert psnr(fast[i], exact[i]) >= DCT_PSNR_FLOOR[filt]


def test_dct_scaling_never_goes_below_target():
    """The scale is chosen so the decoded image is at least the target in
    both dimensions: 500x375 -> 224x224 must decode at full size."""
    data = encode(photo_like(375, 500, seed=1), "JPEG", quality=90)
    a = fastseq.decode_batch([data], (224, 224))
    b = fastseq.decode_batch([data], (224, 224), dct_scaling=False)
    np.testing.assert_array_equal(a, b)
    c = fastseq.decode_batch([data], (187, 112))        # 375/2 >= 187: half scale
    d = fastseq.decode_batch([data], (187, 112), dct_scaling=False)
    assert not np.array_equal(c, d)


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
# reproduces the installed Pillow's order (fastseq.core picks it from
# PIL.__version__).  The references below are built from two single-axis
# resizes, which every Pillow computes the same way, so all three orders are
# checked against whichever Pillow is installed.

from fastseq import _core  # noqa: E402
from fastseq.core import _pillow_pass_order  # noqa: E402

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

    assert _core.resize_pass_order() == _pillow_pass_order(PIL.__version__)


@pytest.fixture
def restore_pass_order():
    before = _core.resize_pass_order()
    yield
    assert _core.set_resize_pass_order(before) == before


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
        assert _core.set_resize_pass_order(order) == order
        got = fastseq.decode_batch([data], tgt, interpolation=filt, dct_scaling=False)[0]
        diff = np.abs(got.astype(int) - refs[order in vfirst]).max()
        assert diff == 0, f"order {order}: {src}->{tgt} {filt}: max |diff| {diff}"


def test_unknown_pass_order_is_refused(restore_pass_order):
    with pytest.raises(ValueError, match="pass order must be 0, 1 or 2"):
        _core.set_resize_pass_order(3)
