"""BMP and binary PGM/PPM: decoded natively (csrc/bmp_decode.c,
csrc/pnm_decode.c) into exactly Pillow's pixels.

The streams are written here by small writers (struct), so that every
header size, bit depth, bit-field layout, palette form and maxval exists,
plus Pillow's own BMP and PPM encoders, and compared with
``PIL.Image.open(f).convert(mode)``.  Layouts left to the Pillow fallback
(RLE, 16-bit, grey palettes Pillow reinterprets) are checked to go there and
still give Pillow's pixels; hostile headers give an ImageDecodeError naming
the file.
"""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from PIL import Image

import fastseq
from fastseq import _native
from conftest import photo_like

MODES = {"rgb": "RGB", "grayscale": "L", "rgba": "RGBA"}
W, H = 13, 7


def pillow(data: bytes, pil_mode: str | None) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        if pil_mode is not None:
            im = im.convert(pil_mode)
        a = np.asarray(im)
    return a.reshape(a.shape[0], a.shape[1], -1)


def native_status(data: bytes, mode: int) -> int:
    probe = _native.BatchOptions(1, 1, mode, _native.DTYPE_U8, full_size=True,
                                 header_only=True)
    [(_, status, *_)] = _native.run_batch(_native.SRC_MEMORY, [data], None, [0], probe)
    return status


def check(data: bytes, what: str, own_mode: bool):
    """Every colour mode natively and equal to Pillow; with own_mode the
    file's own layout (decode_image with no colour mode) too."""
    for color_mode, pil_mode in MODES.items():
        assert native_status(data, fastseq.batch.COLOR_MODES[color_mode][0]) == 0, what
        np.testing.assert_array_equal(fastseq.decode_image(data, color_mode),
                                      pillow(data, pil_mode), err_msg=f"{what} {color_mode}")
    if own_mode:
        assert native_status(data, _native.MODE_SOURCE) == 0, what
    got, want = fastseq.decode_image(data), pillow(data, None)
    np.testing.assert_array_equal(got.reshape(want.shape), want, err_msg=what)


# ---- BMP ------------------------------------------------------------------

def _pack_rows(idx: np.ndarray, bits: int) -> list[bytes]:
    rows = []
    for r in idx:
        if bits == 8:
            b = bytes(r.astype(np.uint8))
        else:
            acc = nb = 0
            out = bytearray()
            for v in r:
                acc, nb = (acc << bits) | int(v), nb + bits
                if nb == 8:
                    out.append(acc)
                    acc = nb = 0
            if nb:
                out.append(acc << (8 - nb))
            b = bytes(out)
        rows.append(b)
    return rows


def make_bmp(rows: list[bytes], w: int, h: int, bits: int, *, hsize=40, top_down=False,
             compression=0, masks=(), palette=None, colors=0, offset=None, pal_pad=4):
    stride = ((w * bits + 31) >> 3) & ~3
    body = b"".join(r.ljust(stride, b"\0") for r in (rows if top_down else rows[::-1]))
    pal = b""
    if palette is not None:
        pal = b"".join(bytes((b, g, r)) + b"\0" * (pal_pad - 3) for r, g, b in palette)
    if hsize == 12:
        header = struct.pack("<IHHHH", 12, w, h, 1, bits)
        extra = b""
    else:
        header = struct.pack("<IiiHHIIiiII", hsize, w, -h if top_down else h, 1, bits,
                             compression, len(body), 2835, 2835, colors, 0)
        extra = b""
        mask_bytes = b"".join(struct.pack("<I", m) for m in masks)
        if hsize == 40:
            extra = mask_bytes
        else:
            header += mask_bytes.ljust(hsize - 40, b"\0")[: hsize - 40]
    data_off = 14 + len(header) + len(extra) + len(pal) if offset is None else offset
    head = b"BM" + struct.pack("<IHHI", 14 + len(header) + len(extra) + len(pal) + len(body),
                               0, 0, data_off)
    return head + header + extra + pal + body


def _rgb_rows(arr: np.ndarray, layout: str) -> list[bytes]:
    """arr (h, w, 4) RGBA into rows of `layout` bytes ("BGR", "BGRX"...)."""
    idx = {"R": 0, "G": 1, "B": 2, "A": 3, "X": 3}
    return [bytes(r[:, [idx[c] for c in layout]].reshape(-1)) for r in arr]


def bmp_cases():
    rng = np.random.default_rng(7)
    rgba = photo_like(H, W, seed=1, channels=4)
    cases = {}
    for bits in (1, 4, 8):
        n = 1 << bits
        pal = [tuple(int(x) for x in rng.integers(0, 256, 3)) for _ in range(n)]
        idx = rng.integers(0, n, (H, W))
        rows = _pack_rows(idx, bits)
        for hsize in (12, 40, 124):
            cases[f"pal{bits}_h{hsize}"] = (make_bmp(rows, W, H, bits, hsize=hsize, palette=pal,
                                                     pal_pad=3 if hsize == 12 else 4), False)
        cases[f"pal{bits}_topdown"] = (make_bmp(rows, W, H, bits, top_down=True, palette=pal), False)
        # fewer colours than 2^bits, and indices past them
        few = pal[: max(1, n // 2 - 1)]
        cases[f"pal{bits}_short_palette"] = (make_bmp(rows, W, H, bits, palette=few,
                                                      colors=len(few)), False)
        # bfOffBits 0: the pixels follow the palette
        cases[f"pal{bits}_offset0"] = (make_bmp(rows, W, H, bits, palette=pal, offset=0), False)
        # bfOffBits pointing just past the header: Pillow skips the palette
        cases[f"pal{bits}_offset_header"] = (make_bmp(rows, W, H, bits, palette=pal,
                                                      offset=14 + 40), False)
    grey = [(i, i, i) for i in range(256)]
    gidx = rng.integers(0, 256, (H, W))
    cases["grey8_ramp_is_L"] = (make_bmp(_pack_rows(gidx, 8), W, H, 8, palette=grey), True)
    bw = [(0, 0, 0), (255, 255, 255)]
    cases["bw1_is_mode_1"] = (make_bmp(_pack_rows(rng.integers(0, 2, (H, W)), 1), W, H, 1,
                                       palette=bw), False)
    for hsize in (12, 40, 56, 108, 124):
        cases[f"bgr24_h{hsize}"] = (make_bmp(_rgb_rows(rgba, "BGR"), W, H, 24, hsize=hsize), True)
        cases[f"bgrx32_h{hsize}"] = (make_bmp(_rgb_rows(rgba, "BGRA"), W, H, 32, hsize=hsize), True)
    cases["bgr24_topdown"] = (make_bmp(_rgb_rows(rgba, "BGR"), W, H, 24, top_down=True), True)
    bf = {
        "bgr24": (24, (0xFF0000, 0xFF00, 0xFF), "BGR"),
        "bgrx": (32, (0xFF0000, 0xFF00, 0xFF, 0), "BGRA"),
        "bgra": (32, (0xFF0000, 0xFF00, 0xFF, 0xFF000000), "BGRA"),
        "rgba": (32, (0xFF, 0xFF00, 0xFF0000, 0xFF000000), "RGBA"),
        "zero_masks": (32, (0, 0, 0, 0), "BGRA"),
    }
    for name, (bits, masks, layout) in bf.items():
        rows = _rgb_rows(rgba, layout)
        for hsize in (40, 56, 124):
            m = masks[:3] if hsize == 40 else masks
            if hsize == 40 and len(masks) == 4 and masks[3]:
                continue          # a 40-byte header has no alpha mask
            cases[f"bitfields_{name}_h{hsize}"] = (
                make_bmp(rows, W, H, bits, hsize=hsize, compression=3, masks=m), True)
    return cases


BMP = bmp_cases()


@pytest.mark.parametrize("name", sorted(BMP))
def test_bmp_equals_pillow(name):
    data, own_mode = BMP[name]
    check(data, name, own_mode)


def test_pillow_written_bmps(tmp_path):
    base = Image.fromarray(photo_like(33, 45, seed=2))
    for im in (base, base.convert("L"), base.convert("1"), base.quantize(37),
               base.convert("RGBA")):
        buf = io.BytesIO()
        im.save(buf, "BMP")
        data = buf.getvalue()
        assert native_status(data, _native.MODE_RGB) == 0, im.mode
        for color_mode, pil_mode in MODES.items():
            np.testing.assert_array_equal(fastseq.decode_image(data, color_mode),
                                          pillow(data, pil_mode), err_msg=f"{im.mode} {color_mode}")


def _rle8(w, h):
    """A valid RLE8 stream: each row one run, then end of line / bitmap."""
    body = b""
    for y in range(h):
        body += bytes((w, y * 20)) + b"\0\0"
    body = body[:-2] + b"\0\1"
    pal = [(i, 255 - i, (i * 7) % 256) for i in range(256)]
    return _bmp_raw_body(w, h, 8, 1, body, pal)


def _bmp_raw_body(w, h, bits, compression, body, pal):
    pal_bytes = b"".join(bytes((b, g, r, 0)) for r, g, b in pal)
    header = struct.pack("<IiiHHIIiiII", 40, w, h, 1, bits, compression, len(body), 0, 0,
                         len(pal), 0)
    off = 14 + 40 + len(pal_bytes)
    return b"BM" + struct.pack("<IHHI", off + len(body), 0, 0, off) + header + pal_bytes + body


def fallback_cases():
    rng = np.random.default_rng(8)
    rgba = photo_like(H, W, seed=3, channels=4)
    # 16-bit 5-5-5
    px = ((rgba[..., 0] >> 3).astype(np.uint16) << 10 | (rgba[..., 1] >> 3).astype(np.uint16) << 5
          | (rgba[..., 2] >> 3).astype(np.uint16))
    rows16 = [r.astype("<u2").tobytes() for r in px]
    grey16 = [(i * 17, i * 17, i * 17) for i in range(16)]
    ramp16 = [(i, i, i) for i in range(16)]   # Pillow's "grey" test: entry i == (i, i, i)
    idx4 = rng.integers(0, 16, (H, W))
    return {
        "rle8": _rle8(W, H),
        "pal2_pillow_refuses": make_bmp(_pack_rows(idx4 % 4, 2), W, H, 2,
                                        palette=[(9, 9, 9), (1, 2, 3), (4, 5, 6), (7, 8, 9)]),
        "bgr16_555": make_bmp(rows16, W, H, 16),
        "bitfields_565": make_bmp(rows16, W, H, 16, compression=3, masks=(0xF800, 0x7E0, 0x1F)),
        "grey_ramp_4bit_pillow_refuses": make_bmp(_pack_rows(idx4, 4), W, H, 4, palette=ramp16),
        "grey_scaled_4bit_is_native": make_bmp(_pack_rows(idx4, 4), W, H, 4, palette=grey16),
    }


FALLBACK = fallback_cases()


@pytest.mark.parametrize("name", sorted(FALLBACK))
def test_bmp_layouts_left_to_pillow(name):
    data = FALLBACK[name]
    native = name.endswith("_is_native")
    assert (native_status(data, _native.MODE_RGB) == 0) == native
    assert native or native_status(data, _native.MODE_RGB) == _native.STATUS_NOT_JPEG
    if "refuses" in name:
        with pytest.raises(Exception):
            pillow(data, "RGB")
        with pytest.raises(fastseq.ImageDecodeError):
            fastseq.decode_image(data, "rgb")
        return
    for color_mode, pil_mode in MODES.items():
        np.testing.assert_array_equal(fastseq.decode_image(data, color_mode),
                                      pillow(data, pil_mode), err_msg=f"{name} {color_mode}")


# ---- PGM / PPM ------------------------------------------------------------

def make_pnm(samples: np.ndarray, maxval: int, magic: bytes | None = None,
             header: bytes | None = None) -> bytes:
    h, w, c = samples.shape
    magic = magic or (b"P6" if c == 3 else b"P5")
    if header is None:
        header = b"%d %d\n%d\n" % (w, h, maxval)
    dt = ">u2" if maxval > 255 else "u1"
    return magic + b"\n" + header + samples.astype(dt).tobytes()


def pnm_cases():
    rng = np.random.default_rng(9)
    cases = {}
    for c in (1, 3):
        kind = "ppm" if c == 3 else "pgm"
        for maxval in (1, 15, 100, 254, 255, 256, 1000, 4095, 65534, 65535):
            s = rng.integers(0, maxval + 1, (H, W, c))
            if maxval > 255:
                s[::2, ::3] = rng.integers(0, min(maxval + 1, 300), s[::2, ::3].shape)
            own = c == 3 or maxval <= 255
            cases[f"{kind}_max{maxval}"] = (make_pnm(s, maxval), own)
        # samples over maxval: Pillow clips after scaling
        s = rng.integers(0, 256, (H, W, c))
        cases[f"{kind}_over_maxval"] = (make_pnm(s, 200), True)
        s = rng.integers(0, 256, (H, W, c))
        cases[f"{kind}_comments"] = (make_pnm(s, 255, header=b"# made by\n%d #w\n %d\t#h\r255 " % (W, H)), True)
        cases[f"{kind}_comment_inside_token"] = (make_pnm(s, 255, header=b"1#x\n3 7 2#y\r55\n"), True)
    img = Image.fromarray(photo_like(30, 41, seed=4))
    for im in (img, img.convert("L")):
        buf = io.BytesIO()
        im.save(buf, "PPM")
        cases[f"pillow_written_{im.mode}"] = (buf.getvalue(), True)
    return cases


PNM = pnm_cases()


@pytest.mark.parametrize("name", sorted(PNM))
def test_pnm_equals_pillow(name):
    data, own_mode = PNM[name]
    check(data, name, own_mode)


@pytest.mark.parametrize("header", [b"+13 7 255\n", b"13 7 1_0\n", b"13 7 0\n",
                                    b"13 7 65536\n", b"0 7 255\n", b"13 7 12345678901\n"])
def test_pnm_headers_left_to_pillow(header):
    """Tokens Python's int() reads differently from digits, and values
    Pillow refuses: Pillow decides (its pixels or its error)."""
    data = b"P5\n" + header + bytes(range(91))
    assert native_status(data, _native.MODE_L) == _native.STATUS_NOT_JPEG
    try:
        want = pillow(data, "L")
    except Exception:
        with pytest.raises(fastseq.ImageDecodeError):
            fastseq.decode_image(data, "grayscale")
    else:
        np.testing.assert_array_equal(fastseq.decode_image(data, "grayscale"), want)


# ---- both: resize, dispatch, hostile input --------------------------------

@pytest.mark.parametrize("name", ["pal4_h40", "bitfields_bgra_h124", "bgr24_topdown",
                                  "grey8_ramp_is_L"])
@pytest.mark.parametrize("interpolation", ["bilinear", "nearest", "bicubic"])
def test_bmp_load_batch_equals_pillow_resize(tmp_path, name, interpolation):
    _resize_check(tmp_path, BMP[name][0], interpolation)


@pytest.mark.parametrize("name", ["ppm_max255", "pgm_max1000", "ppm_max4095"])
@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
def test_pnm_load_batch_equals_pillow_resize(tmp_path, name, interpolation):
    _resize_check(tmp_path, PNM[name][0], interpolation)


def _resize_check(tmp_path, data, interpolation):
    path = tmp_path / "image.jpg"          # the format comes from the bytes
    path.write_bytes(data)
    filt = getattr(Image.Resampling, interpolation.upper())
    for color_mode, pil_mode in MODES.items():
        got = fastseq.load_batch([str(path)] * 2, (5, 9), color_mode=color_mode,
                                 interpolation=interpolation, dct_scaling=False)
        with Image.open(path) as im:
            want = np.asarray(im.convert(pil_mode).resize((9, 5), filt)).reshape(5, 9, -1)
        np.testing.assert_array_equal(got[0], want, err_msg=color_mode)
        np.testing.assert_array_equal(got[1], want, err_msg=color_mode)


def _hostile():
    rgba = photo_like(H, W, seed=5, channels=4)
    good = make_bmp(_rgb_rows(rgba, "BGR"), W, H, 24)
    huge = bytearray(good)
    struct.pack_into("<ii", huge, 18, 1 << 20, 1 << 20)
    neg = bytearray(good)
    struct.pack_into("<i", neg, 22, -(1 << 24))          # top byte 0xFF: 16M rows
    pal = [(1, 2, 3)] * 256
    big_pal = bytearray(make_bmp(_pack_rows(np.zeros((H, W), int), 8), W, H, 8, palette=pal))
    struct.pack_into("<I", big_pal, 46, 60000)           # 60000 colours, 1 KiB file
    ppm = make_pnm(np.zeros((H, W, 3), np.uint8), 255)
    return {
        "bmp_truncated_pixels": (good[:-10], "truncated"),
        "bmp_truncated_header": (good[:30], "truncated"),
        "bmp_huge_dims": (bytes(huge), "too_many_pixels"),
        "bmp_negative_height_huge": (bytes(neg), "too_many_pixels"),
        "bmp_palette_past_end": (bytes(big_pal), "truncated"),
        "bmp_offset_past_end": (good[:10] + struct.pack("<I", 1 << 30) + good[14:], "truncated"),
        "ppm_truncated": (ppm[:-1], "truncated"),
        "ppm_huge_dims": (b"P6\n99999 99999\n255\n" + b"\0" * 64, "too_many_pixels"),
        "pgm_16bit_truncated": (b"P5\n4 4\n1000\n" + b"\0" * 31, "truncated"),
        "ppm_huge_dims_small_limit_ok": (b"P6\n4000 4000\n255\n" + b"\0" * 64, "truncated"),
    }


HOSTILE = _hostile()


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_headers(tmp_path, name):
    data, code = HOSTILE[name]
    with pytest.raises(Exception):
        pillow(data, "RGB")
    path = tmp_path / name
    path.write_bytes(data)
    for call in (lambda: fastseq.load_batch([str(path)], (8, 8)),
                 lambda: fastseq.decode_image(str(path), "rgb")):
        with pytest.raises(fastseq.ImageDecodeError) as e:
            call()
        assert e.value.code == code and str(path) in str(e.value), str(e.value)


def test_limits():
    data = make_pnm(np.zeros((20, 30, 3), np.uint8), 255)
    fastseq.decode_image(data, "rgb", max_pixels=600, max_memory=1800)
    for kw, code in (({"max_pixels": 599}, "too_many_pixels"),
                     ({"max_memory": 1799}, "memory_limit")):
        with pytest.raises(fastseq.ImageDecodeError) as e:
            fastseq.decode_image(data, "rgb", **kw)
        assert e.value.code == code
