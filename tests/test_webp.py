"""WebP: decoded natively (csrc/webp_decode.c, libwebp) into exactly Pillow's pixels.

Fixtures are written by Pillow's encoder (lossy, lossless, alpha, animation)
and, where the `webp` tools are installed, by cwebp and webpmux (other
encoder settings, an animation whose first frame does not cover the
canvas).  Every one is compared with ``PIL.Image.open(f).convert(mode)``
(what keras.utils.load_img gives) and, resized, with Pillow's resize of it
(load_img with a target size and dct_scaling=False).
"""

from __future__ import annotations

import io
import shutil
import struct
import subprocess

import numpy as np
import pytest
from PIL import Image

import fastseq
from fastseq import _native
from conftest import photo_like

MODES = {"rgb": "RGB", "grayscale": "L", "rgba": "RGBA"}
SIZES = [(1, 1), (7, 13), (48, 64), (199, 301)]   # odd sizes: partial macroblocks


def _alpha_image(h, w, seed):
    a = photo_like(h, w, seed, channels=4)
    a[: h // 3, : w // 3, 3] = 0          # fully transparent corner
    return Image.fromarray(a, "RGBA")


def _pillow_fixtures():
    out = {}
    for h, w in SIZES:
        rgb = Image.fromarray(photo_like(h, w, seed=h + w))
        rgba = _alpha_image(h, w, seed=h * w)
        out[f"lossy_q80_{w}x{h}"] = (rgb, {"quality": 80})
        out[f"lossless_{w}x{h}"] = (rgb, {"lossless": True})
        out[f"alpha_lossy_{w}x{h}"] = (rgba, {"quality": 60})
        out[f"alpha_lossless_{w}x{h}"] = (rgba, {"lossless": True})
    gray = Image.fromarray(photo_like(37, 50, seed=4, channels=1), "L")
    out["gray_source_lossy"] = (gray, {"quality": 30})
    out["lossy_q100_m6"] = (Image.fromarray(photo_like(64, 90, 5)), {"quality": 100, "method": 6})
    out["alpha_exact_lossless"] = (_alpha_image(33, 41, 6), {"lossless": True, "exact": True})
    data = {}
    for name, (im, kw) in out.items():
        buf = io.BytesIO()
        im.save(buf, "WEBP", **kw)
        data[name] = buf.getvalue()
    # Animations: Pillow's WebPAnimEncoder; the first frame is what
    # Image.open gives.
    frames = [Image.fromarray(photo_like(40, 56, seed=s)) for s in range(3)]
    for alpha in (False, True):
        fr = [f.convert("RGBA") for f in frames] if alpha else frames
        if alpha:
            fr[0] = _alpha_image(40, 56, 9)
        buf = io.BytesIO()
        fr[0].save(buf, "WEBP", save_all=True, append_images=fr[1:], duration=80,
                   lossless=alpha)
        data[f"animated_{'alpha' if alpha else 'opaque'}"] = buf.getvalue()
    return data


FIXTURES = _pillow_fixtures()


def pillow(data: bytes, pil_mode: str | None) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        if pil_mode is not None:
            im = im.convert(pil_mode)
        a = np.asarray(im)
    return a.reshape(a.shape[0], a.shape[1], -1)


def native_status(data: bytes, mode: int) -> int:
    """The native pass's status (a full-size header pass): 0 when the C
    decoder takes the stream, STATUS_NOT_JPEG when it goes to Pillow."""
    probe = _native.BatchOptions(1, 1, mode, _native.DTYPE_U8, full_size=True,
                                 header_only=True)
    [(_, status, *_)] = _native.run_batch(_native.SRC_MEMORY, [data], None, [0], probe)
    return status


def check_full_size(data: bytes, what: str):
    for color_mode, pil_mode in MODES.items():
        assert native_status(data, fastseq.batch.COLOR_MODES[color_mode][0]) == 0, what
        np.testing.assert_array_equal(fastseq.decode_image(data, color_mode),
                                      pillow(data, pil_mode), err_msg=f"{what} {color_mode}")
    # No colour mode: the file's own layout, RGB or RGBA as Pillow opens it.
    want = pillow(data, None)
    got = fastseq.decode_image(data)
    assert got.shape == want.shape, what
    np.testing.assert_array_equal(got, want, err_msg=what)


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_full_size_equals_pillow(name):
    check_full_size(FIXTURES[name], name)


@pytest.mark.parametrize("name", sorted(n for n in FIXTURES if "1x1" not in n))
@pytest.mark.parametrize("interpolation", ["bilinear", "nearest", "bicubic"])
def test_load_batch_equals_pillow_resize(tmp_path, name, interpolation):
    data = FIXTURES[name]
    # The format comes from the bytes: a WebP named .png is still a WebP.
    path = tmp_path / "image.png"
    path.write_bytes(data)
    filt = getattr(Image.Resampling, interpolation.upper())
    for color_mode, pil_mode in MODES.items():
        got = fastseq.load_batch([str(path)] * 2, (5, 9), color_mode=color_mode,
                                 interpolation=interpolation, dct_scaling=False)
        with Image.open(path) as im:
            want = np.asarray(im.convert(pil_mode).resize((9, 5), filt)).reshape(5, 9, -1)
        np.testing.assert_array_equal(got[0], want, err_msg=f"{name} {color_mode}")
        np.testing.assert_array_equal(got[1], want, err_msg=f"{name} {color_mode}")


def test_keep_aspect_ratio_and_float_output(tmp_path):
    path = tmp_path / "a.webp"
    path.write_bytes(FIXTURES["alpha_lossless_301x199"])
    got = fastseq.load_batch([str(path)], (16, 16), color_mode="rgba", keep_aspect_ratio=True,
                             dtype="float32", rescale=1 / 255)
    with Image.open(path) as im:
        # keras.utils.load_img's keep_aspect_ratio: the centre 199x199 box
        want = np.asarray(im.resize((16, 16), Image.Resampling.BILINEAR, box=(51, 0, 250, 199)))
    np.testing.assert_allclose(got[0], want.astype(np.float32) / 255, rtol=0, atol=1e-6)


def test_keras_load_img(tmp_path):
    """load_batch equals keras.utils.load_img + img_to_array."""
    keras = pytest.importorskip("keras")
    path = tmp_path / "a.webp"
    path.write_bytes(FIXTURES["alpha_lossy_301x199"])
    for color_mode in MODES:
        img = keras.utils.load_img(str(path), color_mode=color_mode, target_size=(31, 47),
                                   interpolation="bilinear")
        want = keras.utils.img_to_array(img, dtype="uint8")
        got = fastseq.load_batch([str(path)], (31, 47), color_mode=color_mode,
                                 dct_scaling=False)
        np.testing.assert_array_equal(got[0], want, err_msg=color_mode)


def _cwebp_fixtures(tmp_path):
    src = tmp_path / "src.png"
    Image.fromarray(photo_like(57, 83, seed=11, channels=4), "RGBA").save(src)
    src_rgb = tmp_path / "src_rgb.png"
    Image.fromarray(photo_like(61, 45, seed=12)).save(src_rgb)
    variants = [
        (src_rgb, ["-q", "50"]),
        (src_rgb, ["-q", "90", "-sharp_yuv", "-m", "6"]),
        (src_rgb, ["-q", "75", "-sns", "100", "-f", "100", "-segments", "1"]),
        (src_rgb, ["-lossless", "-z", "9"]),
        (src_rgb, ["-near_lossless", "40"]),
        (src, ["-q", "70", "-alpha_q", "30", "-alpha_filter", "best"]),
        (src, ["-q", "70", "-alpha_method", "0"]),
        (src, ["-lossless", "-exact"]),
        (src, ["-lossless", "-m", "0"]),
    ]
    outs = []
    for i, (s, args) in enumerate(variants):
        out = tmp_path / f"cwebp{i}.webp"
        subprocess.run(["cwebp", "-quiet", *args, str(s), "-o", str(out)], check=True)
        outs.append((" ".join(args), out.read_bytes()))
    return outs


@pytest.mark.skipif(shutil.which("cwebp") is None,
                    reason="cwebp is not installed (apt-get install webp)")
def test_cwebp_encoded(tmp_path):
    """A second encoder, with settings Pillow does not expose."""
    for args, data in _cwebp_fixtures(tmp_path):
        check_full_size(data, args)


@pytest.mark.skipif(shutil.which("webpmux") is None or shutil.which("cwebp") is None,
                    reason="webpmux/cwebp are not installed (apt-get install webp)")
def test_animation_first_frame_offset(tmp_path):
    """An animation whose first frame covers part of the canvas: the rest
    is transparent black, as Pillow's WebPAnimDecoder draws it."""
    frames = []
    for i, (h, w) in enumerate([(30, 40), (50, 60)]):
        png = tmp_path / f"f{i}.png"
        Image.fromarray(photo_like(h, w, seed=20 + i)).save(png)
        webp = tmp_path / f"f{i}.webp"
        subprocess.run(["cwebp", "-quiet", "-q", "80", str(png), "-o", str(webp)], check=True)
        frames.append(webp)
    out = tmp_path / "anim.webp"
    subprocess.run(["webpmux", "-frame", str(frames[0]), "+100+10+6",
                    "-frame", str(frames[1]), "+100+0+0", "-loop", "0", "-o", str(out)],
                   check=True, capture_output=True)
    data = out.read_bytes()
    with Image.open(io.BytesIO(data)) as im:
        assert im.n_frames == 2 and im.size == (60, 50)
    check_full_size(data, "webpmux offset")
    # The frames have no alpha: Pillow opens the canvas as RGB, so the
    # uncovered rows are black and, converted to RGBA, opaque.
    assert (fastseq.decode_image(data, "rgb")[:6] == 0).all()
    assert (fastseq.decode_image(data, "rgba")[..., 3] == 255).all()


def _with_riff_size(data: bytes, size: int) -> bytes:
    return data[:4] + struct.pack("<I", size) + data[8:]


def _flip(data: bytes, pos: int) -> bytes:
    m = bytearray(data)
    m[pos:pos + 16] = b"\xff" * 16
    return bytes(m)


def _damaged():
    lossy = FIXTURES["lossy_q80_301x199"]
    lossless = FIXTURES["lossless_301x199"]
    anim = FIXTURES["animated_opaque"]
    return {
        "lossy_truncated": (lossy[: len(lossy) * 2 // 3], "truncated"),
        "lossless_truncated": (lossless[: len(lossless) // 2], "truncated"),
        "lossless_corrupt_header": (_flip(lossless, 25), "decode"),
        "lossless_corrupt_end": (_flip(lossless, len(lossless) - 10), "decode"),
        "lossy_corrupt_partition_header": (_flip(lossy, 40), "decode"),
        "lossy_bad_frame_header": (_flip(lossy, 25), "decode"),
        "header_only": (lossy[:30], "truncated"),
        "animation_truncated": (anim[: len(anim) // 2], "decode"),
        "riff_size_too_large": (_with_riff_size(lossy, len(lossy) * 2), "truncated"),
        # Damage libwebp does not notice decodes, as in Pillow, to its pixels.
        "lossless_corrupt_middle": (_flip(lossless, len(lossless) // 2), None),
        "lossy_corrupt_coefficients": (_flip(lossy, len(lossy) // 4), None),
        "junk_after_riff": (lossy + b"junk" * 9, None),
    }


DAMAGED = _damaged()


@pytest.mark.parametrize("name", sorted(DAMAGED))
def test_damaged_streams(tmp_path, name):
    """Where Pillow decodes, the pixels are its; where it fails, an
    ImageDecodeError names the file and the reason."""
    data, code = DAMAGED[name]
    try:
        want = pillow(data, "RGB")
    except Exception:
        want = None
    assert (want is None) == (code is not None), "the expectation disagrees with Pillow"
    path = tmp_path / f"{name}.webp"
    path.write_bytes(data)
    if code is None:
        assert native_status(data, _native.MODE_RGB) == 0
        np.testing.assert_array_equal(fastseq.decode_image(str(path), "rgb"), want)
        return
    for call in (lambda: fastseq.load_batch([str(path)], (8, 8)),
                 lambda: fastseq.decode_image(str(path))):
        with pytest.raises(fastseq.ImageDecodeError) as e:
            call()
        assert e.value.code == code and str(path) in str(e.value), str(e.value)


def test_not_vp8_chunk_goes_to_pillow():
    """A RIFF/WEBP stream whose first chunk is not VP8/VP8L/VP8X: Pillow
    cannot identify it, and its fallback says so."""
    data = b"RIFF" + struct.pack("<I", 12) + b"WEBPJUNK" + b"\0" * 8
    assert native_status(data, _native.MODE_RGB) == _native.STATUS_NOT_JPEG
    with pytest.raises(fastseq.ImageDecodeError):
        fastseq.decode_image(data)


def test_limits(tmp_path):
    data = FIXTURES["lossless_64x48"]
    path = tmp_path / "a.webp"
    path.write_bytes(data)
    fastseq.load_batch([str(path)], (4, 4), max_pixels=64 * 48)
    for call in (lambda: fastseq.load_batch([str(path)], (4, 4), max_pixels=64 * 48 - 1),
                 lambda: fastseq.decode_image(data, "rgb", max_pixels=64 * 48 - 1)):
        with pytest.raises(fastseq.ImageDecodeError) as e:
            call()
        assert e.value.code == "too_many_pixels"
    with pytest.raises(fastseq.ImageDecodeError) as e:
        fastseq.load_batch([str(path)], (4, 4), max_file_bytes=len(data) - 1)
    assert e.value.code == "too_large"
    # Lossless: libwebp's 32-bit ARGB copy, 4 * 64 * (48 + 16) bytes, on top
    # of the 64x48 RGB output.
    need = 64 * 48 * 3 + 4 * 64 * (48 + 16)
    fastseq.decode_image(data, "rgb", max_memory=need)
    with pytest.raises(fastseq.ImageDecodeError) as e:
        fastseq.decode_image(data, "rgb", max_memory=need - 1)
    assert e.value.code == "memory_limit"


def test_webp_png_and_jpeg_in_one_batch(tmp_path):
    arr = photo_like(40, 50, seed=3)
    paths = []
    for fmt, kw in (("WEBP", {"lossless": True}), ("PNG", {}), ("JPEG", {"quality": 95}),
                    ("WEBP", {"quality": 70})):
        p = tmp_path / f"{len(paths)}.img"
        Image.fromarray(arr).save(p, fmt, **kw)
        paths.append(str(p))
    got = fastseq.load_batch(paths, (40, 50), dct_scaling=False)
    for i, p in enumerate(paths):
        with Image.open(p) as im:
            np.testing.assert_array_equal(got[i], np.asarray(im.convert("RGB")), err_msg=p)


def test_info_reports_libwebp():
    info = fastseq.info()
    assert info["libwebp"] == _native.libwebp_version()
    major, minor, patch = (int(x) for x in info["libwebp"].split("."))
    assert (major, minor) >= (0, 5)
    assert info["zlib"].count(".") >= 1 and info["libpng"].startswith("1.6")
