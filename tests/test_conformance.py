"""Conformance on the shared JPEG corpus (../shared/corpus/jpeg, see its README).

Rules from the corpus README: every JPEG Pillow decodes must decode to
exactly Pillow's pixels, mode and size; every file Pillow rejects must raise
a clear exception; non-JPEG rows go through the Pillow fallback.
"""

from __future__ import annotations

import numpy as np
import PIL
import pytest
from PIL import Image, UnidentifiedImageError

import fastseq
from conftest import CORPUS, CORPUS_MISSING, ROWS, corpus_params, is_jpeg_row

PIL_MODES = {"L": 1, "RGB": 3, "CMYK": 4}


def pillow_array(path, mode=None):
    try:
        im = Image.open(path)
    except UnidentifiedImageError as e:
        # The manifest's "ok" rows are Pillow 13's results; an older Pillow
        # (fastseq supports 9.2 on, and CI runs the oldest) may reject a file
        # with damaged metadata, e.g. 9.2 and pillow/truncated_exif_dpi.jpg.
        if int(PIL.__version__.split(".")[0]) < 13:
            pytest.skip(f"Pillow {PIL.__version__} cannot open {path.name}: {e}")
        raise
    with im:
        if mode and im.mode != mode:
            im = im.convert(mode)
        a = np.asarray(im)
    return a.reshape(a.shape[0], a.shape[1], -1)


def _ok(r):
    return r["pillow_result"].startswith("ok")


def _size(r):
    mode, wh = r["pillow_result"].split()[1:3]
    w, h = wh.rstrip(";").split("x")
    return mode, int(w), int(h)


@pytest.mark.parametrize("row", corpus_params(lambda r: is_jpeg_row(r) and _ok(r)))
def test_jpeg_decodes_exactly_like_pillow(row):
    path = CORPUS / row["file"]
    mode, w, h = _size(row)
    got = fastseq.decode_image(path)
    ref = pillow_array(path)
    assert got.shape == (h, w, PIL_MODES[mode])
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("row", corpus_params(lambda r: is_jpeg_row(r) and _ok(r)))
@pytest.mark.parametrize("color_mode,pil_mode", [("rgb", "RGB"), ("grayscale", "L"),
                                                 ("rgba", "RGBA")])
def test_batch_at_native_size_equals_pillow_convert(row, color_mode, pil_mode):
    """load_batch at the image's own size, without DCT scaling, is Keras'
    load_img: Pillow's decode converted to the colour mode."""
    path = CORPUS / row["file"]
    _, w, h = _size(row)
    batch = fastseq.load_batch([path, path], (h, w), color_mode=color_mode,
                               dct_scaling=False)
    ref = pillow_array(path, pil_mode)
    np.testing.assert_array_equal(batch[0], ref)
    np.testing.assert_array_equal(batch[1], ref)


@pytest.mark.parametrize("row", corpus_params(lambda r: is_jpeg_row(r) and not _ok(r)))
def test_files_pillow_rejects_raise(row):
    path = CORPUS / row["file"]
    with pytest.raises(fastseq.ImageDecodeError) as ei:
        fastseq.load_batch([path], (32, 32))
    e = ei.value
    assert e.source == str(path)
    assert str(path) in str(e)
    if "truncated" in row["pillow_result"]:
        assert e.code == "truncated"
        assert "truncated" in e.reason
    else:  # the 12-bit files
        assert e.code == "decode"
        assert "precision 12" in e.reason
    with pytest.raises(fastseq.ImageDecodeError):
        fastseq.decode_image(path)


@pytest.mark.parametrize("row", corpus_params(lambda r: "truncated-ok" in r["pillow_result"]))
def test_truncated_files_decode_when_allowed(row, monkeypatch):
    """allow_truncated=True is Pillow's LOAD_TRUNCATED_IMAGES: the same
    pixels (the decoded part, then libjpeg's fill), also through a batch."""
    from PIL import ImageFile
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    path = CORPUS / row["file"]
    mode, wh = row["pillow_result"].split("truncated-ok ")[1].split()[:2]
    w, h = map(int, wh.split("x"))
    got = fastseq.decode_image(path, allow_truncated=True)
    assert got.shape == (h, w, PIL_MODES[mode])
    np.testing.assert_array_equal(got, pillow_array(path))
    for color_mode, pil_mode in [("rgb", "RGB"), ("grayscale", "L"), ("rgba", "RGBA")]:
        batch = fastseq.load_batch([path], (16, 16), allow_truncated=True, color_mode=color_mode,
                                   interpolation="bilinear", dct_scaling=False)
        with Image.open(path) as im:
            ref = np.asarray(im.convert(pil_mode).resize((16, 16), Image.Resampling.BILINEAR))
        np.testing.assert_array_equal(batch[0], ref.reshape(16, 16, -1), err_msg=color_mode)


@pytest.mark.parametrize("row", corpus_params(lambda r: not is_jpeg_row(r)))
def test_non_jpeg_rows_use_the_pillow_fallback(row):
    path = CORPUS / row["file"]
    mode, w, h = _size(row)
    np.testing.assert_array_equal(fastseq.decode_image(path, "rgb"), pillow_array(path, "RGB"))
    batch = fastseq.load_batch([path], (h, w), dct_scaling=False)
    np.testing.assert_array_equal(batch[0], pillow_array(path, "RGB"))
    gray = fastseq.load_batch([path], (h, w), color_mode="grayscale")
    np.testing.assert_array_equal(gray[0], pillow_array(path, "L"))


@pytest.mark.parametrize("row", corpus_params(lambda r: "libjpeg-turbo warning" in r["notes"]
                                              and _ok(r)))
def test_files_with_libjpeg_warnings_decode(row):
    path = CORPUS / row["file"]
    np.testing.assert_array_equal(fastseq.decode_image(path), pillow_array(path))


PIXEL_EQUAL_GROUPS = [
    ["libjpeg-turbo/testimgint.jpg", "libjpeg-turbo/testimgari.jpg", "libjpeg-turbo/testimgp.jpg"],
    ["pillow/photoshop-200dpi.jpg", "pillow/photoshop-200dpi-broken.jpg",
     "pillow/exif-200dpcm.jpg", "pillow/exif-dpi-zerodivision.jpg",
     "pillow/no-dpi-in-exif.jpg", "pillow/invalid-exif.jpg", "pillow/exif-ifd-offset.jpg"],
    ["pillow/flower2.jpg", "pillow/jpeg_ff00_header.jpg"],
    ["pillow/pil_sample_rgb.jpg", "pillow/truncated_app14.jpg"],
    ["pillow/iptc.jpg", "pillow/iptc_roundUp.jpg"],
    ["pillow/exif_typeerror.jpg", "pillow/exif_gps_typeerror.jpg"],
    ["pillow/sugarshack.mpo", "pillow/sugarshack_bad_mpo_header.jpg",
     "pillow/sugarshack_ifd_offset.mpo", "pillow/sugarshack_no_data.mpo"],
]


@pytest.mark.skipif(CORPUS is None, reason=CORPUS_MISSING)
@pytest.mark.parametrize("group", PIXEL_EQUAL_GROUPS, ids=lambda g: g[0])
def test_pixel_equal_groups_without_pillow(group):
    first = fastseq.decode_image(CORPUS / group[0])
    for other in group[1:]:
        np.testing.assert_array_equal(fastseq.decode_image(CORPUS / other), first)


@pytest.mark.skipif(CORPUS is None, reason=CORPUS_MISSING)
def test_whole_corpus_in_one_batch_reports_each_failure():
    rows = [r for r in ROWS if is_jpeg_row(r) or r["file"].endswith((".png", ".bmp", ".ppm"))]
    paths = [CORPUS / r["file"] for r in rows]
    batch, failed = fastseq.load_batch(paths, (48, 40), on_error="ignore",
                                       return_failed=True)
    expected = {i for i, r in enumerate(rows) if not _ok(r)}
    assert {f.index for f in failed} == expected
    for f in failed:
        assert f.source == str(paths[f.index])
        assert not batch[f.index].any()
    for i in range(len(rows)):
        if i not in expected:   # failures do not disturb their neighbours
            np.testing.assert_array_equal(batch[i], fastseq.load_batch([paths[i]], (48, 40))[0])
