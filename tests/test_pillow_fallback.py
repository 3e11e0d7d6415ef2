"""The Pillow fallback (GIF, TIFF and the layouts the C decoders leave to
Pillow): the pixels of Pillow's own whole-image convert, read a band of rows
at a time, and the same max_memory limit as the C decoders, from the header,
before Pillow decodes."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

import fastseq
from fastseq.batch import _BAND_PIXELS

# 1500 columns: bands of 699 rows, so 1100 rows are one full band and a
# partial one; 300x200 is a single band.
BIG, SMALL = (1500, 1100), (300, 200)


def _image(mode, size, seed):
    rng = np.random.default_rng(seed)
    w, h = size
    if mode == "P":
        im = Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8)).convert("P")
        im.putpalette(rng.integers(0, 256, 768, dtype=np.uint8).tolist())
        return im
    if mode == "1":
        return Image.fromarray(rng.integers(0, 2, (h, w), dtype=np.uint8) * 255).convert("1")
    if mode in ("I;16", "I"):
        big = rng.integers(0, 1000, (h, w), dtype=np.uint16)
        return Image.fromarray(big if mode == "I;16" else big.astype(np.int32))
    if mode == "F":
        return Image.fromarray(rng.uniform(-10, 300, (h, w)).astype(np.float32))
    bands = len(Image.new(mode, (1, 1)).getbands())
    return Image.frombytes(mode, size, rng.integers(0, 256, h * w * bands, dtype=np.uint8)
                           .tobytes())


def _encode(mode, size, fmt, seed=0, **save):
    buf = io.BytesIO()
    _image(mode, size, seed).save(buf, fmt, **save)
    return buf.getvalue()


# (id, file mode as Pillow opens it, encoded bytes).  The GIF with a
# transparent index opens as "P" with info["transparency"], which a crop must
# keep for RGBA; the TIFFs cover the modes whose conversions differ.
CASES = [
    ("gif-P-transparent", "P", lambda size: _encode("P", size, "GIF", transparency=7)),
    ("gif-P", "P", lambda size: _encode("P", size, "GIF", seed=1)),
    ("tiff-RGB", "RGB", lambda size: _encode("RGB", size, "TIFF", seed=2)),
    ("tiff-RGBA", "RGBA", lambda size: _encode("RGBA", size, "TIFF", seed=3)),
    ("tiff-LA", "LA", lambda size: _encode("LA", size, "TIFF", seed=4)),
    ("tiff-CMYK", "CMYK", lambda size: _encode("CMYK", size, "TIFF", seed=5)),
    ("tiff-1", "1", lambda size: _encode("1", size, "TIFF", seed=6)),
    ("tiff-I;16", "I;16", lambda size: _encode("I;16", size, "TIFF", seed=7)),
    ("tiff-I", "I", lambda size: _encode("I", size, "TIFF", seed=8)),
    ("tiff-F", "F", lambda size: _encode("F", size, "TIFF", seed=9)),
]


@pytest.fixture(scope="module", params=CASES, ids=[c[0] for c in CASES])
def case(request):
    name, mode, make = request.param
    return name, mode, {size: make(size) for size in (BIG, SMALL)}


def test_the_big_fixtures_take_more_than_one_band():
    w, h = BIG
    assert w * h > _BAND_PIXELS and (_BAND_PIXELS // w) < h < 2 * (_BAND_PIXELS // w)
    assert SMALL[0] * SMALL[1] <= _BAND_PIXELS


@pytest.mark.parametrize("size", [BIG, SMALL], ids=["bands", "one-band"])
@pytest.mark.parametrize("color_mode", ["rgb", "grayscale", "rgba", None])
def test_decode_image_equals_pillows_whole_image_convert(case, size, color_mode):
    name, mode, data = case
    data = data[size]
    pil_mode = {"rgb": "RGB", "grayscale": "L", "rgba": "RGBA", None: None}[color_mode]
    with Image.open(io.BytesIO(data)) as im:
        assert im.mode == mode
        ref = np.asarray(im if pil_mode is None else im.convert(pil_mode))
    got = fastseq.decode_image(data, color_mode)
    assert got.dtype == ref.dtype
    assert got.shape == ref.shape[:2] + (ref.shape[2] if ref.ndim == 3 else 1,)
    np.testing.assert_array_equal(got.reshape(ref.shape), ref)


def test_load_batch_of_banded_fallback_images_equals_the_one_band_path(case, tmp_path):
    """A batch through the fallback pool: each slot is Pillow's convert of
    the whole image, resized by fastseq's kernels, as when decoded alone."""
    name, mode, data = case
    paths = []
    for i, size in enumerate((BIG, SMALL, BIG)):
        p = tmp_path / f"{i}.img"
        p.write_bytes(data[size])
        paths.append(p)
    batch = fastseq.load_batch(paths, (64, 48), color_mode="rgb")
    for i, size in enumerate((BIG, SMALL, BIG)):
        with Image.open(io.BytesIO(data[size])) as im:
            full = np.ascontiguousarray(np.asarray(im.convert("RGB")))
        one = fastseq.decode_batch([_as_ppm(full)], (64, 48), color_mode="rgb")[0]
        np.testing.assert_array_equal(batch[i], one)


def _as_ppm(rgb):
    """The same pixels as a binary PPM (decoded in C, exactly)."""
    h, w, _ = rgb.shape
    return b"P6 %d %d 255\n" % (w, h) + rgb.tobytes()


def _need(mode, size, pil_mode):
    """max_memory's estimate, written out: Pillow's storage takes 1 byte a
    pixel for P/L/1, 2 for I;16 and 4 for the rest (RGB padded); the packed
    copies take bands x band size.  With more than one band: the decoded
    image, the array, one band's crop, conversion, and packed copy twice."""
    store = {"P": 1, "L": 1, "1": 1, "I;16": 2}
    packed = {"P": 1, "L": 1, "1": 1, "LA": 2, "I;16": 2, "RGB": 3}
    w, h = size
    out = pil_mode or mode
    band = min(h, _BAND_PIXELS // w) * w
    banded = band < w * h
    return (w * h * store.get(mode, 4)
            + (w * h * packed.get(out, 4) + band * store.get(mode, 4) if banded else 0)
            + (band * store.get(out, 4) if out != mode else 0)
            + 2 * band * packed.get(out, 4))


@pytest.mark.parametrize("size", [BIG, SMALL], ids=["bands", "one-band"])
@pytest.mark.parametrize("color_mode", ["rgb", "grayscale", "rgba"])
def test_max_memory_refuses_before_pillow_decodes(case, size, color_mode):
    name, mode, data = case
    data = data[size]
    pil_mode = {"rgb": "RGB", "grayscale": "L", "rgba": "RGBA"}[color_mode]
    need = _need(mode, size, pil_mode)
    kw = dict(color_mode=color_mode, on_error="ignore", return_failed=True)
    out, failed = fastseq.decode_batch([data], (16, 16), max_memory=need - 1, **kw)
    assert [(f.code, f.reason) for f in failed] == [
        ("memory_limit", f"decoding needs {need} bytes, over max_memory={need - 1}")]
    assert not out.any()
    _, failed = fastseq.decode_batch([data], (16, 16), max_memory=need, **kw)
    assert failed == []
    with pytest.raises(fastseq.ImageDecodeError) as ei:
        fastseq.decode_image(data, color_mode, max_memory=need - 1)
    assert ei.value.code == "memory_limit"
    fastseq.decode_image(data, color_mode, max_memory=need)


def test_max_memory_for_16_bit_grayscale_resized_by_pillow(tmp_path):
    """The Keras iterators resize 16/32-bit grayscale in Pillow's own mode
    (DecodeOptions.wide_gray): the decoded image, its resize in that mode and
    the resize's float32 copy."""
    from fastseq.batch import encode_paths, load_files
    from fastseq.options import DecodeOptions

    p = tmp_path / "a.tif"
    p.write_bytes(_encode("I;16", BIG, "TIFF"))
    need = BIG[0] * BIG[1] * 2 + 40 * 30 * (2 + 4)
    for limit in (need - 1, need):
        # "nearest": Pillow 9.2 resizes I;16 with no other filter.
        opts = DecodeOptions((40, 30), color_mode="grayscale", dtype="float32",
                             interpolation="nearest", wide_gray=True, on_error="ignore",
                             max_memory=limit)
        out, failed = load_files(encode_paths([str(p)]), opts)
        if limit < need:
            assert [(f.code, f.reason) for f in failed] == [
                ("memory_limit", f"decoding needs {need} bytes, over max_memory={limit}")]
        else:
            assert failed == [] and out.shape == (1, 40, 30, 1) and out.max() > 255


def test_a_tiny_gif_with_a_huge_screen_costs_its_estimate_not_three_times_it():
    """The libFuzzer finding that made this path banded: a 120-byte GIF whose
    logical screen is 10537x10537 (111 Mpx, under max_pixels) decoded by
    Pillow as "L".  Converted whole to RGB and copied by numpy it held the
    converted image and twice its packed copy: 1.06 GiB at once (2.1 GB for
    a batch of two).  Measured in a child process on a 4000x3000 GIF of
    noise (every page touched), the peak stays within the estimate."""
    child = textwrap.dedent("""
        import io, resource, sys, numpy as np
        from PIL import Image
        import fastseq
        rng = np.random.default_rng(0)
        im = Image.fromarray(rng.integers(0, 256, (3000, 4000), dtype=np.uint8))
        buf = io.BytesIO(); im.convert("P").save(buf, "GIF"); data = buf.getvalue()
        del im, buf
        warm = io.BytesIO(); Image.new("P", (8, 8)).save(warm, "GIF")
        fastseq.decode_image(warm.getvalue(), "rgb")      # imports and first-use costs
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        out = fastseq.decode_image(data, "rgb")
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print((after - before) * 1024, out.nbytes)
    """)
    r = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    grown, array = map(int, r.stdout.split())
    need = _need("P", (4000, 3000), "RGB")
    assert array == 4000 * 3000 * 3
    # Pages the child held before (its own buffers) can only make the growth
    # smaller; the whole-image path grew by the estimate plus ~2 arrays.
    assert grown <= need + (4 << 20), (grown, need)
