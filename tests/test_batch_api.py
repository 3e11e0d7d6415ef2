"""The batch API: shapes, dtypes, out=, colour modes, formats, buffers."""

from __future__ import annotations

import io
import mmap
import os
import re
import shlex
import subprocess
import sys
import sysconfig

import numpy as np
import pytest
from PIL import Image

import fastseq
from conftest import CORPUS, CORPUS_MISSING, REPO, encode, photo_like

# LIBJPEG_TURBO_VERSION: "2.1.5", and four parts in some releases ("2.0.90"
# style betas have three, distribution rebuilds such as "1.5.2.1" four).
LIBJPEG_TURBO_VERSION = re.compile(r"[0-9]+\.[0-9]+\.[0-9]+(\.[0-9]+)?")


def keras_like_load(path, size_hw, color_mode="rgb", interpolation="bilinear"):
    """keras.utils.load_img + img_to_array, written out (Pillow decode,
    convert as Keras does, resize if the size differs)."""
    filt = {"nearest": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR,
            "bicubic": Image.Resampling.BICUBIC}[interpolation]
    with Image.open(path) as im:
        mode = {"rgb": "RGB", "grayscale": "L", "rgba": "RGBA"}[color_mode]
        if im.mode != mode:
            im = im.convert(mode)
        if im.size != (size_hw[1], size_hw[0]):
            im = im.resize((size_hw[1], size_hw[0]), filt)
        a = np.asarray(im)
    return a.reshape(a.shape[0], a.shape[1], -1)


def test_shapes_and_dtypes(photo_dir):
    """float32 output is the uint8 result converted, then times rescale in
    float32 (numpy's `u8.astype(np.float32) * np.float32(rescale)`)."""
    b = fastseq.load_batch(photo_dir, (40, 30))
    assert b.shape == (len(photo_dir), 40, 30, 3) and b.dtype == np.uint8
    g = fastseq.load_batch(photo_dir, (40, 30), color_mode="grayscale", dtype="float32")
    assert g.shape == (len(photo_dir), 40, 30, 1) and g.dtype == np.float32
    g8 = fastseq.load_batch(photo_dir, (40, 30), color_mode="grayscale")
    np.testing.assert_array_equal(g, g8.astype(np.float32))
    r = fastseq.load_batch(photo_dir, (40, 30), color_mode="rgba", dtype=np.float32,
                           rescale=1 / 255)
    assert r.shape == (len(photo_dir), 40, 30, 4) and r.dtype == np.float32
    r8 = fastseq.load_batch(photo_dir, (40, 30), color_mode="rgba")
    np.testing.assert_array_equal(r, r8.astype(np.float32) * np.float32(1 / 255))


def test_empty_batch():
    b = fastseq.load_batch([], (8, 9))
    assert b.shape == (0, 8, 9, 3)
    assert fastseq.decode_batch([], (8, 9), color_mode="grayscale").shape == (0, 8, 9, 1)


@pytest.mark.parametrize("color_mode", ["rgb", "grayscale", "rgba"])
@pytest.mark.parametrize("interpolation", ["nearest", "bilinear", "bicubic"])
def test_every_format_matches_keras_load_img(photo_dir, color_mode, interpolation):
    """JPEG through libjpeg-turbo, everything else through the Pillow fallback:
    the same pixels keras.utils.load_img would give."""
    size = (64, 48)
    b = fastseq.load_batch(photo_dir, size, color_mode=color_mode,
                           interpolation=interpolation, dct_scaling=False)
    for i, p in enumerate(photo_dir):
        np.testing.assert_array_equal(b[i], keras_like_load(p, size, color_mode, interpolation),
                                      err_msg=str(p))


def test_format_is_detected_from_bytes_not_extension(photo_dir, tmp_path):
    png = next(p for p in photo_dir if p.suffix == ".png")
    jpg = next(p for p in photo_dir if p.suffix == ".jpg")
    (tmp_path / "really_png.jpg").write_bytes(png.read_bytes())
    (tmp_path / "really_jpg.png").write_bytes(jpg.read_bytes())
    b = fastseq.load_batch([tmp_path / "really_png.jpg", tmp_path / "really_jpg.png"], (20, 20))
    ref = fastseq.load_batch([png, jpg], (20, 20))
    np.testing.assert_array_equal(b, ref)


def test_out_is_filled_in_place_and_reused(photo_dir):
    out = np.full((len(photo_dir), 32, 32, 3), 255, np.uint8)
    res = fastseq.load_batch(photo_dir, (32, 32), out=out)
    assert res is out
    np.testing.assert_array_equal(out, fastseq.load_batch(photo_dir, (32, 32)))
    out2 = np.zeros((len(photo_dir), 32, 32, 3), np.float32)
    assert fastseq.load_batch(photo_dir, (32, 32), out=out2, dtype="float32") is out2
    np.testing.assert_array_equal(out2, out.astype(np.float32))


def test_buffers_of_every_bytes_like_kind(photo_dir, tmp_path):
    p = photo_dir[0]
    data = p.read_bytes()
    with open(p, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        bufs = [data, bytearray(data), memoryview(data), np.frombuffer(data, np.uint8), mm]
        b = fastseq.decode_batch(bufs, (50, 50))
    ref = fastseq.load_batch([p], (50, 50))[0]
    for i in range(len(bufs)):
        np.testing.assert_array_equal(b[i], ref)


def test_decode_batch_fallback_formats(photo_dir):
    bufs = [p.read_bytes() for p in photo_dir]
    np.testing.assert_array_equal(fastseq.decode_batch(bufs, (30, 30)),
                                  fastseq.load_batch(photo_dir, (30, 30)))


def test_paths_of_every_kind(photo_dir):
    p = photo_dir[0]
    import os
    b = fastseq.load_batch([p, str(p), os.fsencode(p)], (16, 16))
    ref = fastseq.decode_batch([p.read_bytes()], (16, 16))[0]
    for i in range(3):
        np.testing.assert_array_equal(b[i], ref)


def test_unicode_file_names(photo_dir, tmp_path):
    p = tmp_path / "ünïcødé 写真.jpg"
    p.write_bytes(photo_dir[0].read_bytes())
    np.testing.assert_array_equal(fastseq.load_batch([p], (16, 16)),
                                  fastseq.load_batch([photo_dir[0]], (16, 16)))


@pytest.mark.skipif(CORPUS is None, reason=CORPUS_MISSING)
@pytest.mark.parametrize("color_mode,pil_mode", [("rgb", "RGB"), ("grayscale", "L"),
                                                 ("rgba", "RGBA")])
def test_cmyk_jpeg_converts_like_pillow(color_mode, pil_mode):
    p = CORPUS / "pillow/pil_sample_cmyk.jpg"
    got = fastseq.decode_image(p, color_mode)
    with Image.open(p) as im:
        ref = np.asarray(im.convert(pil_mode))
    np.testing.assert_array_equal(got, ref.reshape(ref.shape[0], ref.shape[1], -1))
    b = fastseq.load_batch([p], (37, 45), color_mode=color_mode, dct_scaling=False,
                           interpolation="bicubic")
    np.testing.assert_array_equal(b[0], keras_like_load(p, (37, 45), color_mode, "bicubic"))


def test_decode_image_native_and_converted(photo_dir):
    gray = next(p for p in photo_dir if p.name == "h_gray.jpg")
    for color_mode, pil_mode in [(None, "L"), ("rgb", "RGB"), ("rgba", "RGBA")]:
        with Image.open(gray) as im:
            ref = np.asarray(im.convert(pil_mode))
        for src in (gray, gray.read_bytes()):
            got = fastseq.decode_image(src, color_mode)
            np.testing.assert_array_equal(got, ref.reshape(260, 310, -1))
    png = next(p for p in photo_dir if p.name == "i_rgba.png")
    with Image.open(png) as im:
        np.testing.assert_array_equal(fastseq.decode_image(png), np.asarray(im))
    with pytest.raises(ValueError, match="color_mode must be None or one of"):
        fastseq.decode_image(gray, "cmyk")


def test_threads_and_info():
    n = fastseq.get_num_threads()
    try:
        fastseq.set_num_threads(3)
        assert fastseq.get_num_threads() == 3
        info = fastseq.info()
        assert info["threads"] == 3
        assert LIBJPEG_TURBO_VERSION.fullmatch(info["libjpeg_turbo"]), info
        assert info["fastseq"] == fastseq.__version__ == _pyproject_version()
        assert isinstance(info["simd"], bool)
        assert info["resize_simd"] in ("avx2", "none")
    finally:
        fastseq.set_num_threads(n)


def _pyproject_version():
    """The version the project declares: pyproject.toml's in a checkout, or
    the installed distribution's metadata where the tests run from a copy
    of tests/ alone (the wheel check, cibuildwheel)."""
    path = REPO / "pyproject.toml"
    if not path.is_file():
        import importlib.metadata

        return importlib.metadata.version("fastseq")
    # (tomllib is Python >= 3.11; the [project] table's version line is enough)
    text = path.read_text(encoding="utf-8")
    project = text.split("[project]", 1)[1].split("\n[", 1)[0]
    return re.search(r'^version\s*=\s*"([^"]+)"', project, re.M).group(1)


def _header_libjpeg_turbo_version():
    """LIBJPEG_TURBO_VERSION of the jpeglib.h a build finds here (the
    FASTSEQ_JPEG_INCLUDE, pkg-config, then default paths of setup.py), by the
    C preprocessor; None where there is no compiler or header."""
    cc = shlex.split(sysconfig.get_config_var("CC") or "cc")
    flags = []
    if os.environ.get("FASTSEQ_JPEG_INCLUDE"):
        flags = ["-I" + os.environ["FASTSEQ_JPEG_INCLUDE"]]
    else:
        try:
            flags = shlex.split(subprocess.run(["pkg-config", "--cflags", "libjpeg"],
                                               capture_output=True, text=True).stdout)
        except OSError:
            pass
    src = "#include <stdio.h>\n#include <jpeglib.h>\nFSV LIBJPEG_TURBO_VERSION\n"
    try:
        r = subprocess.run([*cc, *flags, "-E", "-P", "-"], input=src, capture_output=True,
                           text=True)
    except OSError:
        return None
    m = re.search(r"^FSV (.*)$", r.stdout, re.M)
    return m.group(1).strip() if r.returncode == 0 and m else None


def _links_shared_libjpeg():
    from fastseq import _native
    try:
        deps = subprocess.run(["ldd", _native.__file__], capture_output=True, text=True).stdout
    except OSError:
        return False
    return "libjpeg" in deps


@pytest.mark.skipif(not sys.platform.startswith("linux") or not _links_shared_libjpeg(),
                    reason="not Linux, or the extension embeds its own libjpeg-turbo (a "
                           "wheel: test_packaging checks its version): no shared libjpeg to "
                           "compare with the headers")
def test_libjpeg_version_is_the_one_built_against():
    """info() reports the version of the headers the extension was compiled
    with, exactly, not just something version-shaped."""
    want = _header_libjpeg_turbo_version()
    if want is None:
        pytest.skip("no C compiler or jpeglib.h to read LIBJPEG_TURBO_VERSION from")
    assert LIBJPEG_TURBO_VERSION.fullmatch(want), want
    assert fastseq.info()["libjpeg_turbo"] == want


def test_default_thread_count_is_the_usable_cpus():
    code = "import fastseq; print(fastseq.get_num_threads())"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert int(r.stdout) == len(os.sched_getaffinity(0))
    env = dict(os.environ, FASTSEQ_NUM_THREADS="5")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       check=True, env=env)
    assert int(r.stdout) == 5
