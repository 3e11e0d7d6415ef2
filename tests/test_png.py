"""PNG: decoded natively (csrc/png_decode.c) into exactly Pillow's pixels.

Every colour type, bit depth, interlace method and tRNS variant is written
here by a small PNG writer (zlib + struct), so that each combination exists
whatever Pillow's encoder supports, and compared with
``PIL.Image.open(f).convert(mode)`` (what keras.utils.load_img gives).
"""

from __future__ import annotations

import io
import shutil
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
from PIL import Image

import fastseq
from fastseq import _native

# The reference, Image.convert of a palette image with a tRNS of several
# entries, warns that such images "should be converted to RGBA".
pytestmark = pytest.mark.filterwarnings(
    "ignore:Palette images with Transparency expressed in bytes:UserWarning")

SIG = b"\x89PNG\r\n\x1a\n"
CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}
ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4),
         (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
MODES = {"rgb": "RGB", "grayscale": "L", "rgba": "RGBA"}
W, H = 13, 7      # odd sizes: partial bytes at 1/2/4 bits, partial Adam7 passes


def chunk(ctype: bytes, data: bytes, crc: int | None = None) -> bytes:
    if crc is None:
        crc = zlib.crc32(ctype + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + ctype + data + struct.pack(">I", crc)


def _scanlines(rows, depth, filt=0):
    out = bytearray()
    for row in rows:
        out.append(filt)
        if depth < 8:
            acc = nbits = 0
            for v in row:
                acc, nbits = (acc << depth) | v, nbits + depth
                if nbits == 8:
                    out.append(acc)
                    acc = nbits = 0
            if nbits:
                out.append(acc << (8 - nbits))
        elif depth == 8:
            out += bytes(row)
        else:
            out += struct.pack(f">{len(row)}H", *row)
    return bytes(out)


def image_data(samples: np.ndarray, depth: int, interlace: bool) -> bytes:
    """The filtered (filter type 0) scanlines of `samples` (h, w, channels)."""
    h, w, _ = samples.shape
    if not interlace:
        return _scanlines([list(r.reshape(-1)) for r in samples], depth)
    raw = b""
    for x0, y0, dx, dy in ADAM7:
        sub = samples[y0::dy, x0::dx]
        if sub.shape[0] and sub.shape[1]:
            raw += _scanlines([list(r.reshape(-1)) for r in sub], depth)
    return raw


def make_png(samples, ctype, depth, interlace=False, plte=None, trns=None,
             before_idat=b"", idat=None):
    h, w, _ = samples.shape
    ihdr = struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, int(interlace))
    png = SIG + chunk(b"IHDR", ihdr) + before_idat
    if plte is not None:
        png += chunk(b"PLTE", bytes(np.asarray(plte, np.uint8).reshape(-1)))
    if trns is not None:
        png += chunk(b"tRNS", trns)
    if idat is None:
        idat = zlib.compress(image_data(samples, depth, interlace))
    return png + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def random_case(ctype, depth, interlace, trns_kind, seed):
    """(png bytes, id): random samples of the full range of `depth`, and for
    trns_kind "hit" a tRNS value that some pixels have."""
    rng = np.random.default_rng(seed)
    top = (1 << depth) - 1
    plte = trns = None
    if ctype == 3:
        n = min(1 << depth, 7 + seed % 5)
        plte = rng.integers(0, 256, (n, 3))
        samples = rng.integers(0, n, (H, W, 1))
        if trns_kind == "hit":
            trns = bytes(rng.integers(0, 256, max(1, n - 2)).astype(np.uint8))
        elif trns_kind == "single":      # Pillow's "one transparent index" form
            trns = b"\xff" * (n // 2) + b"\x00"
    else:
        # 16-bit samples near the 8-bit boundary too: Pillow clips gray to 255
        # and keeps the high byte of colour.
        samples = rng.integers(0, top + 1, (H, W, CHANNELS[ctype]))
        if depth == 16:
            samples[::2, ::3] = rng.integers(0, 300, samples[::2, ::3].shape)
        if trns_kind == "hit" and ctype == 0:
            trns = struct.pack(">H", int(samples[1, 2, 0]))
        elif trns_kind == "hit" and ctype == 2:
            trns = struct.pack(">3H", *(int(v) for v in samples[3, 4]))
        elif trns_kind == "small" and ctype in (0, 2):
            # a value under 256 in a 16-bit or scaled image: what Pillow
            # compares with its 8-bit pixels
            v = int(samples[0, 0, 0]) if depth == 8 else 1
            trns = struct.pack(">H", v) if ctype == 0 else struct.pack(">3H", v, v, v)
            if depth == 16:
                samples[2, 5] = v
    png = make_png(samples, ctype, depth, interlace, plte, trns)
    return png


def all_cases():
    cases = []
    for ctype, depths in DEPTHS.items():
        for depth in depths:
            for interlace in (False, True):
                kinds = ["none"]
                if ctype in (0, 2):
                    kinds += ["hit", "small"]
                if ctype == 3:
                    kinds += ["hit", "single"]
                for kind in kinds:
                    cases.append(pytest.param(
                        ctype, depth, interlace, kind,
                        id=f"ct{ctype}-{depth}bit-{'adam7' if interlace else 'flat'}-trns_{kind}"))
    return cases


def pillow(png: bytes, pil_mode: str | None) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as im:
        if pil_mode is not None:
            im = im.convert(pil_mode)
        a = np.asarray(im)
    return a.reshape(a.shape[0], a.shape[1], -1)


def native_status(png: bytes, mode: int) -> int:
    """The native pass's status for `png` (a full-size header pass): 0 when
    the C decoder takes it, STATUS_NOT_JPEG when it goes to Pillow."""
    probe = _native.BatchOptions(1, 1, mode, _native.DTYPE_U8, full_size=True,
                                 header_only=True)
    [(_, status, *_)] = _native.run_batch(_native.SRC_MEMORY, [png], None, [0], probe)
    return status


@pytest.mark.parametrize("ctype,depth,interlace,kind", all_cases())
def test_full_size_equals_pillow(ctype, depth, interlace, kind):
    png = random_case(ctype, depth, interlace, kind, seed=ctype * 100 + depth + interlace)
    for color_mode, pil_mode in MODES.items():
        assert native_status(png, fastseq.batch.COLOR_MODES[color_mode][0]) == 0
        got = fastseq.decode_image(png, color_mode)
        np.testing.assert_array_equal(got, pillow(png, pil_mode), err_msg=color_mode)
    # No colour mode: the file's own layout, as numpy.asarray(Image.open(f))
    # (Pillow's "1", "I;16", "LA" and "P" come from the Pillow fallback).
    got = fastseq.decode_image(png)
    want = pillow(png, None)
    assert got.dtype == want.dtype == np.uint8 or ctype == 0 and depth in (1, 16)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("ctype,depth,interlace,kind", all_cases()[::3])
@pytest.mark.parametrize("interpolation", ["bilinear", "nearest", "bicubic"])
def test_load_batch_equals_pillow_resize(tmp_path, ctype, depth, interlace, kind, interpolation):
    png = random_case(ctype, depth, interlace, kind, seed=ctype * 100 + depth + interlace)
    # The format comes from the bytes: a PNG named .jpg is still a PNG.
    path = tmp_path / "image.jpg"
    path.write_bytes(png)
    filt = getattr(Image.Resampling, interpolation.upper())
    for color_mode, pil_mode in MODES.items():
        for dct_scaling in (True, False):   # no effect on a PNG
            got = fastseq.load_batch([str(path)] * 2, (5, 9), color_mode=color_mode,
                                     interpolation=interpolation, dct_scaling=dct_scaling)
            with Image.open(path) as im:
                want = np.asarray(im.convert(pil_mode).resize((9, 5), filt))
            want = want.reshape(5, 9, -1)
            np.testing.assert_array_equal(got[0], want, err_msg=color_mode)
            np.testing.assert_array_equal(got[1], want, err_msg=color_mode)


def test_keep_aspect_ratio_and_float_output(tmp_path):
    rng = np.random.default_rng(5)
    arr = rng.integers(0, 256, (40, 70, 4), dtype=np.uint8)
    arr[..., 3] = rng.integers(0, 3, (40, 70)) * 127    # real transparency
    path = tmp_path / "a.png"
    Image.fromarray(arr, "RGBA").save(path)
    got = fastseq.load_batch([str(path)], (16, 16), color_mode="rgba", keep_aspect_ratio=True,
                             dtype="float32", rescale=1 / 255)
    with Image.open(path) as im:
        # keras.utils.load_img's keep_aspect_ratio: the centre 40x40 box
        want = np.asarray(im.resize((16, 16), Image.Resampling.BILINEAR, box=(15, 0, 55, 40)))
    np.testing.assert_allclose(got[0], want.astype(np.float32) / 255, rtol=0, atol=1e-6)


def test_pillow_written_pngs(tmp_path):
    """Pillow's own encoder (filters chosen per row, zlib levels): RGB, RGBA,
    L, LA, P, 1 and I;16."""
    rng = np.random.default_rng(1)
    photo = rng.integers(0, 256, (33, 45, 3), dtype=np.uint8)
    base = Image.fromarray(photo).resize((90, 66), Image.Resampling.BICUBIC)
    images = [base, base.convert("RGBA"), base.convert("L"), base.convert("LA"),
              base.quantize(37), base.convert("1"),
              Image.fromarray((np.asarray(base.convert("L"), np.uint16) * 257)).convert("I;16")]
    for i, im in enumerate(images):
        for opt in ({}, {"optimize": True}, {"compress_level": 0}):
            path = tmp_path / f"{i}.png"
            im.save(path, **opt)
            data = path.read_bytes()
            for color_mode, pil_mode in MODES.items():
                assert native_status(data, fastseq.batch.COLOR_MODES[color_mode][0]) == 0
                np.testing.assert_array_equal(fastseq.decode_image(str(path), color_mode),
                                              pillow(data, pil_mode),
                                              err_msg=f"{im.mode} {opt} {color_mode}")


@pytest.mark.parametrize("tool", ["pngcrush", "optipng"])
def test_second_encoder(tmp_path, tool):
    """Unusual filter and IDAT layouts from a second encoder."""
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed (apt-get install {tool})")
    rng = np.random.default_rng(2)
    src = tmp_path / "src.png"
    Image.fromarray(rng.integers(0, 256, (31, 29, 3), dtype=np.uint8)).resize(
        (61, 57), Image.Resampling.BICUBIC).save(src)
    outs = []
    if tool == "pngcrush":
        for args in (["-m", "1"], ["-f", "4", "-l", "9"], ["-reduce"], ["-m", "3", "-max", "1024"]):
            out = tmp_path / f"crush{len(outs)}.png"
            subprocess.run(["pngcrush", "-q", *args, str(src), str(out)], check=True)
            outs.append(out)
    else:
        for args in (["-o1"], ["-o3", "-i1"], ["-f0-5", "-zc1"]):
            out = tmp_path / f"opti{len(outs)}.png"
            subprocess.run(["optipng", "-quiet", *args, "-out", str(out), str(src)], check=True)
            outs.append(out)
    for out in outs:
        data = out.read_bytes()
        for color_mode, pil_mode in MODES.items():
            np.testing.assert_array_equal(fastseq.decode_image(data, color_mode),
                                          pillow(data, pil_mode), err_msg=f"{out.name}")


def _gray8():
    rng = np.random.default_rng(3)
    return rng.integers(0, 256, (10, 30, 1))


def _idat_span(png):
    i = png.index(b"IDAT")
    n = struct.unpack(">I", png[i - 4:i])[0]
    return i - 4, i + 8 + n          # the whole chunk: length .. CRC


def _with_idat(png, data):
    a, b = _idat_span(png)
    return png[:a] + chunk(b"IDAT", data) + png[b:]


def _variants():
    s = _gray8()
    good = make_png(s, 0, 8)
    a, b = _idat_span(good)
    comp = good[a + 8:b - 4]
    raw = image_data(s, 8, False)
    flip_mid = bytearray(comp)
    flip_mid[len(comp) // 2] ^= 0x55
    flip_adler = bytearray(comp)
    flip_adler[-1] ^= 0xFF
    adam7 = make_png(s, 0, 8, interlace=True)
    a7, b7 = _idat_span(adam7)
    comp7 = adam7[a7 + 8:b7 - 4]
    adler7 = bytearray(comp7)
    adler7[-1] ^= 0xFF
    return {
        # Interlaced: the end of the image data is the last row of pass 7.
        "adam7_bad_adler32": (_with_idat(adam7, bytes(adler7)), "decode"),
        "adam7_truncated": (adam7[:a7 + 8 + len(comp7) * 3 // 4], "truncated"),
        "adam7_no_iend": (adam7[:b7], None),
        # Pillow stops reading at the end of the chunk holding the last row:
        # an Adler-32 in a chunk of its own is never read, a missing one not
        # missed.
        "adler32_own_chunk_bad": (good[:a] + chunk(b"IDAT", comp[:-4])
                                  + chunk(b"IDAT", bytes(flip_adler[-4:])) + good[b:], None),
        "adam7_adler32_own_chunk_bad": (adam7[:a7] + chunk(b"IDAT", comp7[:-4])
                                        + chunk(b"IDAT", bytes(adler7[-4:])) + adam7[b7:], None),
        "adler32_missing": (good[:a] + chunk(b"IDAT", comp[:-4]) + good[b:], None),
        # Pillow checks the CRCs of the chunks before IDAT...
        "bad_crc_ihdr": (good[:29] + b"\0\0\0\0" + good[33:], "decode"),
        "bad_crc_text": (make_png(s, 0, 8, before_idat=chunk(b"tEXt", b"k\0v", crc=1)), "decode"),
        # ...and not IDAT's or later ones.
        "bad_crc_idat": (good[:b - 4] + b"\0\0\0\0" + good[b:], None),
        "bad_crc_iend": (good[:-4] + b"\0\0\0\0", None),
        "corrupt_zlib": (_with_idat(good, bytes(flip_mid)), "decode"),
        "bad_adler32": (_with_idat(good, bytes(flip_adler)), "decode"),
        "bad_filter_type": (_with_idat(good, zlib.compress(image_data(s, 8, False).replace(b"\0", b"\x07", 1))), "decode"),
        "truncated_in_idat": (good[:a + 8 + len(comp) // 2], "truncated"),
        "too_little_data": (_with_idat(good, zlib.compress(raw[:-40])), "truncated"),
        "no_iend": (good[:b], None),
        "junk_after_iend": (good + b"junk" * 5, None),
        "extra_image_data": (_with_idat(good, zlib.compress(raw + b"\0" * 64)), None),
        "split_idat": (good[:a] + chunk(b"IDAT", comp[:7]) + chunk(b"IDAT", comp[7:])
                       + good[b:], None),
        "empty_idat_chunks": (good[:a] + chunk(b"IDAT", b"") + chunk(b"IDAT", comp)
                              + chunk(b"IDAT", b"") + good[b:], None),
        # Pillow ignores gamma and colour profiles, and unknown chunks.
        "gama_iccp_srgb": (make_png(s, 0, 8, before_idat=chunk(b"gAMA", struct.pack(">I", 100000))
                                    + chunk(b"sRGB", b"\0")), None),
        "unknown_ancillary": (make_png(s, 0, 8, before_idat=chunk(b"quUx", b"abc")), None),
    }


VARIANTS = _variants()


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_damaged_streams_as_pillow(tmp_path, name):
    """Where Pillow decodes, the pixels are its; where it fails, an
    ImageDecodeError names the file and the reason."""
    data, code = VARIANTS[name]
    path = tmp_path / f"{name}.png"
    path.write_bytes(data)
    try:
        want = pillow(data, "L")
    except Exception:
        want = None
    assert (want is None) == (code is not None), "the expectation disagrees with Pillow"
    if code is None:
        np.testing.assert_array_equal(fastseq.decode_image(str(path), "grayscale"), want)
        got = fastseq.load_batch([str(path)], (10, 30), color_mode="grayscale")
        np.testing.assert_array_equal(got[0], want)
        return
    with pytest.raises(fastseq.ImageDecodeError) as e:
        fastseq.load_batch([str(path)], (8, 8))
    assert e.value.code == code and str(path) in str(e.value)
    with pytest.raises(fastseq.ImageDecodeError) as e:
        fastseq.decode_image(str(path))
    assert e.value.code == code and str(path) in str(e.value)


@pytest.mark.parametrize("name,extra,trns", [
    ("trns_longer_than_plte", b"", b"\x01\x02\x03\x04\x05"),
    ("unknown_critical_chunk", chunk(b"ABCD", b"x"), None),
])
def test_streams_libpng_refuses_go_to_pillow(name, extra, trns):
    """libpng drops a tRNS longer than PLTE and refuses unknown critical
    chunks; Pillow uses the one and ignores the other: such files are
    Pillow's to decode."""
    s = np.array([[[0], [1], [2], [1]]])
    png = make_png(s, 3, 8, plte=[(10, 20, 30), (200, 100, 50), (0, 255, 0)], trns=trns,
                   before_idat=extra)
    assert native_status(png, _native.MODE_RGBA) == _native.STATUS_NOT_JPEG
    for color_mode, pil_mode in MODES.items():
        np.testing.assert_array_equal(fastseq.decode_image(png, color_mode), pillow(png, pil_mode))


def test_palette_index_out_of_range_as_pillow():
    """Pillow maps a palette index past PLTE to black, opaque."""
    s = np.array([[[0], [1], [5], [2]]])
    png = make_png(s, 3, 8, plte=[(10, 20, 30), (200, 100, 50), (0, 255, 0)], trns=b"\x80")
    for color_mode, pil_mode in MODES.items():
        assert native_status(png, fastseq.batch.COLOR_MODES[color_mode][0]) == 0
        np.testing.assert_array_equal(fastseq.decode_image(png, color_mode), pillow(png, pil_mode))


def test_limits(tmp_path):
    png = make_png(np.zeros((20, 30, 3), np.uint8), 2, 8)
    path = tmp_path / "a.png"
    path.write_bytes(png)
    fastseq.load_batch([str(path)], (4, 4), max_pixels=600)
    with pytest.raises(fastseq.ImageDecodeError) as e:
        fastseq.load_batch([str(path)], (4, 4), max_pixels=599)
    assert e.value.code == "too_many_pixels"
    with pytest.raises(fastseq.ImageDecodeError) as e:
        fastseq.decode_image(png, "rgb", max_pixels=599)
    assert e.value.code == "too_many_pixels"
    with pytest.raises(fastseq.ImageDecodeError) as e:
        fastseq.load_batch([str(path)], (4, 4), max_file_bytes=len(png) - 1)
    assert e.value.code == "too_large"
    # 20x30 RGB: 1800 pixel bytes, read straight into the output; RGBA out
    # of an RGB file is converted row by row through one 90-byte row, and an
    # interlaced file is assembled whole (1800 bytes) before its conversion.
    # Each also counts libpng's two row buffers, 2 * (90 + 64) = 308 bytes.
    rows = 2 * (90 + 64)
    with pytest.raises(fastseq.ImageDecodeError) as e:
        fastseq.decode_image(png, "rgb", max_memory=1800 + rows - 1)
    assert e.value.code == "memory_limit"
    assert fastseq.decode_image(png, "rgb", max_memory=1800 + rows).shape == (20, 30, 3)
    with pytest.raises(fastseq.ImageDecodeError) as e:
        fastseq.decode_image(png, "rgba", max_memory=2400 + 90 + rows - 1)
    assert e.value.code == "memory_limit"
    assert fastseq.decode_image(png, "rgba", max_memory=2400 + 90 + rows).shape == (20, 30, 4)
    adam7 = make_png(np.zeros((20, 30, 3), np.uint8), 2, 8, interlace=True)
    with pytest.raises(fastseq.ImageDecodeError) as e:
        fastseq.decode_image(adam7, "rgb", max_memory=3600 + rows - 1)
    assert e.value.code == "memory_limit"
    assert fastseq.decode_image(adam7, "rgb", max_memory=3600 + rows).shape == (20, 30, 3)


def test_huge_declared_size_is_refused_before_allocating():
    ihdr = struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0)
    png = SIG + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b"")
    with pytest.raises(fastseq.ImageDecodeError) as e:
        fastseq.decode_batch([png], (8, 8))
    assert e.value.code == "too_many_pixels"


def test_image_larger_than_its_data_can_hold_is_refused_before_allocating():
    """zlib expands at most 1032:1: a 9 KB file cannot hold a 4000x3000
    RGBA image (48 MB); it is refused from its header, as truncated (which
    Pillow reports too), without allocating the image."""
    ihdr = struct.pack(">IIBBBBB", 4000, 3000, 8, 6, 0, 0, 1)
    png = (SIG + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 9000)[:9000])
           + chunk(b"IEND", b""))
    with pytest.raises(Exception):
        pillow(png, "RGBA")
    with pytest.raises(fastseq.ImageDecodeError) as e:
        fastseq.decode_image(png, "rgba", max_memory=1 << 20)
    assert e.value.code == "truncated" and "needs more data" in e.value.reason


def test_jpeg_named_png_is_a_jpeg(tmp_path):
    arr = np.random.default_rng(4).integers(0, 256, (16, 24, 3), dtype=np.uint8)
    path = tmp_path / "really_a_jpeg.png"
    Image.fromarray(arr).save(path, format="JPEG")
    with Image.open(path) as im:
        assert im.format == "JPEG"
        want = np.asarray(im.convert("RGB"))
    np.testing.assert_array_equal(fastseq.decode_image(str(path), "rgb"), want)


def test_mixed_batch_and_decode_only(tmp_path):
    """PNG and JPEG in one batch, both native; the benchmark's decode_only
    pass decodes a PNG without resizing it."""
    rng = np.random.default_rng(6)
    arr = rng.integers(0, 256, (21, 34, 3), dtype=np.uint8)
    png, jpg = tmp_path / "a.png", tmp_path / "b.jpg"
    Image.fromarray(arr).save(png)
    Image.fromarray(arr).save(jpg, quality=90)
    opts = _native.BatchOptions(8, 8, _native.MODE_RGB, _native.DTYPE_U8)
    out = np.zeros((2, 8, 8, 3), np.uint8)
    res = _native.run_batch(_native.SRC_FILE, [str(png).encode(), str(jpg).encode()],
                            out, [0, 1], opts)
    assert [r[1] for r in res] == [0, 0] and [r[3:5] for r in res] == [(34, 21)] * 2
    want = np.asarray(Image.fromarray(arr).resize((8, 8), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(out[0], want)
    bench = _native.BatchOptions(8, 8, _native.MODE_RGB, _native.DTYPE_U8, decode_only=True)
    [(_, status, _, w, h, *_)] = _native.run_batch(_native.SRC_FILE, [str(png).encode()],
                                                   None, [0], bench)
    assert (status, w, h) == (0, 34, 21)


def test_info_reports_libpng():
    assert fastseq.info()["libpng"].count(".") == 2


def test_text_chunks_cost_no_memory(tmp_path):
    """zTXt/iTXt/tEXt/iCCP are never decompressed or kept (fastseq reads no
    text): 12 zTXt chunks of 32 MiB each once cost 400+ MiB, unaccounted by
    max_memory.  The pixels still decode."""
    import zlib

    samples = np.arange(16 * 16, dtype=np.uint8).reshape(16, 16, 1)
    ztxt = chunk(b"zTXt", b"Comment\0\0" + zlib.compress(b"a" * (32 << 20), 9))
    bomb = make_png(samples, 0, 8, before_idat=ztxt * 12)
    path = tmp_path / "bomb.png"
    path.write_bytes(bomb)
    code = f"""
import resource, numpy as np, fastseq
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
x = fastseq.decode_image({str(path)!r}, "grayscale")
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(grown, int(x.sum()))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    grown_kib, total = map(int, out.stdout.split())
    assert total == int(samples.sum())
    assert grown_kib < 32 * 1024, f"decoding grew RSS by {grown_kib} KiB"
