"""The SIMD resampler (AVX2 on x86-64) against the scalar one and Pillow.

Both code paths must give Pillow's pixels exactly.  The cases are chosen to
reach every kernel and every hand-over between them:

* sample quads, four rows and two rows at a time, with a scalar tail where
  the last windows would read past a row (downscales up to ~3x, any C);
* the per-pixel kernel that takes over from quads on steeper RGB/RGBA
  downscales (500 -> 100 is 5x);
* the vertical pass in 32-sample blocks with a scalar tail, first or last
  (Pillow's pass order: tall images go vertical-first);
* output rows whose sample count is not a multiple of 4, upscales, 1-pixel
  images, odd tap counts.

Noise images stress the clipping (negative lobes push sums below 0 and
above 255); photo-like images are what users resize.
"""

from __future__ import annotations

import os
import platform
import sys

import numpy as np
import pytest
from PIL import Image

from fastseq import _native
from conftest import photo_like

FILTERS = {"box": (1, Image.Resampling.BOX), "bilinear": (2, Image.Resampling.BILINEAR),
           "hamming": (3, Image.Resampling.HAMMING), "bicubic": (4, Image.Resampling.BICUBIC),
           "lanczos": (5, Image.Resampling.LANCZOS)}
# Channels -> (fastseq mode, the Pillow mode whose resize is per channel).
# 4 channels are compared without premultiplication, i.e. Pillow's "RGBa".
MODES = {1: (_native.MODE_L, "L"), 3: (_native.MODE_RGB, "RGB"), 4: (_native.MODE_RGBA, "RGBa")}

# (source h, w) -> target (h, w)
SIZES = [
    ((375, 500), (224, 224)),    # ImageNet-like, horizontal first, quads
    ((333, 500), (224, 224)),    # odd row count: 4-row groups, then a pair, then one
    ((300, 1000), (224, 224)),   # 4.5x across: per-pixel kernel (RGB/RGBA)
    ((120, 500), (60, 100)),     # 5x across
    ((900, 300), (224, 224)),    # tall: vertical pass first
    ((64, 64), (7, 5)),          # 7*3 = 21 samples per row: quads + tail
    ((37, 61), (224, 224)),      # upscale
    ((1, 1), (3, 2)),
    ((2, 3), (1, 1)),
    ((41, 1000), (50, 33)),      # 30x across, upscale down
]


def _resize(a: np.ndarray, size_hw, filt_code: int) -> np.ndarray:
    c = a.shape[2]
    out = np.zeros((1, size_hw[0], size_hw[1], c), np.uint8)
    opts = _native.BatchOptions(size_hw[1], size_hw[0], MODES[c][0], _native.DTYPE_U8,
                              filter=filt_code)
    res = _native.run_batch(_native.SRC_PIXELS, [np.ascontiguousarray(a)], out, [0], opts,
                          premultiply=[False])
    assert res[0][1] == 0, res
    return out[0]


def _pillow(a: np.ndarray, size_hw, pil_filter) -> np.ndarray:
    c = a.shape[2]
    im = Image.fromarray(a[..., 0] if c == 1 else a, MODES[c][1])
    r = np.asarray(im.resize((size_hw[1], size_hw[0]), pil_filter))
    return r.reshape(size_hw[0], size_hw[1], c)


@pytest.fixture
def simd_off():
    """Run the scalar resampler for the duration of a test."""
    _native.set_resize_simd(False)
    try:
        yield
    finally:
        _native.set_resize_simd(True)


def expected_resize_simd() -> str:
    """The level the dispatcher must pick here: "avx2" on an x86-64 Linux
    CPU whose kernel reports AVX2, "none" on other Linux CPUs;
    FASTSEQ_EXPECT_RESIZE_SIMD overrides (a build with -DFS_NO_SIMD, or an
    OS without /proc/cpuinfo)."""
    if os.environ.get("FASTSEQ_EXPECT_RESIZE_SIMD"):
        return os.environ["FASTSEQ_EXPECT_RESIZE_SIMD"]
    if not sys.platform.startswith("linux"):
        return None
    if platform.machine().lower() not in ("x86_64", "amd64", "i386", "i686"):
        return "none"
    with open("/proc/cpuinfo") as f:
        flags = next((line.split(":", 1)[1].split() for line in f
                      if line.startswith("flags")), [])
    return "avx2" if "avx2" in flags else "none"


def test_simd_switch_reports_the_level():
    """The dispatcher picks the CPU's level: a detection that silently fell
    back to the scalar code would leave every SIMD test comparing scalar
    with scalar."""
    detected = _native.set_resize_simd(True)
    want = expected_resize_simd()
    if want is None:
        assert detected in ("avx2", "none")
    else:
        assert detected == want, f"resize SIMD level {detected!r}, expected {want!r} here"
    import fastseq
    assert fastseq.info()["resize_simd"] == detected
    assert _native.resize_simd() == detected
    try:
        assert _native.set_resize_simd(False) == "none"
        assert _native.resize_simd() == "none"
    finally:
        _native.set_resize_simd(True)
    assert _native.resize_simd() == detected


def _images(src_hw, channels, seed):
    h, w = src_hw
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, (h, w, channels), dtype=np.uint8)
    extremes = (noise // 128 * 255).astype(np.uint8)   # only 0 and 255
    photo = photo_like(h, w, seed=seed, channels=3)
    photo = photo[..., :1] if channels == 1 else (
        np.concatenate([photo, noise[..., :1]], axis=2) if channels == 4 else photo)
    return {"noise": noise, "extremes": extremes, "photo": photo}


@pytest.mark.parametrize("channels", [1, 3, 4])
@pytest.mark.parametrize("src,dst", SIZES, ids=[f"{s[0]}x{s[1]}-{d[0]}x{d[1]}" for s, d in SIZES])
def test_simd_and_scalar_equal_pillow(src, dst, channels):
    level = _native.resize_simd()
    for i, (kind, a) in enumerate(_images(src, channels, seed=src[0] * 7 + dst[1]).items()):
        for name, (code, pil_filter) in FILTERS.items():
            ref = _pillow(a, dst, pil_filter)
            fast = _resize(a, dst, code)
            _native.set_resize_simd(False)
            try:
                scalar = _resize(a, dst, code)
            finally:
                _native.set_resize_simd(True)
            for label, got in ((level, fast), ("scalar", scalar)):
                diff = np.abs(got.astype(int) - ref).max()
                assert diff == 0, f"{label} {kind} {name} {src}->{dst} C={channels}: max |diff| {diff}"


def test_random_shapes_match_pillow():
    """200 random (source, target, filter, channels) draws."""
    rng = np.random.default_rng(2026)
    for _ in range(200):
        c = int(rng.choice([1, 3, 4]))
        h, w = (int(v) for v in rng.integers(1, 260, 2))
        th, tw = (int(v) for v in rng.integers(1, 130, 2))
        name = str(rng.choice(list(FILTERS)))
        a = rng.integers(0, 256, (h, w, c), dtype=np.uint8)
        code, pil_filter = FILTERS[name]
        got = _resize(a, (th, tw), code)
        ref = _pillow(a, (th, tw), pil_filter)
        assert np.array_equal(got, ref), f"{name} ({h},{w},{c}) -> ({th},{tw})"


def test_scalar_path_matches_pillow(simd_off):
    """The portable code alone (what non-x86 builds run)."""
    assert _native.resize_simd() == "none"
    a = photo_like(375, 500, seed=3)
    for name, (code, pil_filter) in FILTERS.items():
        np.testing.assert_array_equal(_resize(a, (224, 224), code),
                                      _pillow(a, (224, 224), pil_filter))
