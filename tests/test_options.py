"""The options object (fastseq.options.DecodeOptions, its C form
_native.BatchOptions), decode_image's full-size pass on the batch driver, and
the parallel Pillow fallback."""

from __future__ import annotations

import io
import multiprocessing
import pickle
import threading

import numpy as np
import pytest
from PIL import Image

import fastseq
from fastseq import _native
from fastseq import batch as batch_api
from fastseq.options import DecodeOptions
from conftest import encode, photo_like


def test_options_are_validated_once_and_immutable():
    opts = DecodeOptions((30, 40), color_mode="rgba", dtype="float32", rescale=0.5,
                         max_pixels=None)
    assert opts.shape(2) == (2, 30, 40, 4)
    assert (opts.dtype, opts.scale, opts.offset, opts.filter) == (np.float32, 0.5, 0.0, 2)
    assert opts.limits["max_pixels"] == 0 and opts.c.channels == 4
    assert opts.c.slot_bytes == 30 * 40 * 4 * 4
    with pytest.raises(AttributeError, match="immutable"):
        opts.height = 3
    with pytest.raises(TypeError):
        opts.limits["max_pixels"] = 5
    with pytest.raises(TypeError, match="unknown option"):
        DecodeOptions((3, 3), colour_mode="rgb")
    # The messages are load_batch's (test_errors checks them through it).
    with pytest.raises(ValueError, match="target_size must be a"):
        DecodeOptions((0, 3))
    again = pickle.loads(pickle.dumps(opts))
    assert again == opts and again is not opts
    assert again.c.slot_bytes == opts.c.slot_bytes
    assert repr(opts) == ("DecodeOptions(target_size=(30, 40), color_mode='rgba', "
                          "dtype='float32', rescale=0.5, max_pixels=None)")


def test_keras_iterator_validates_once(tmp_path, monkeypatch):
    keras = pytest.importorskip("keras")  # noqa: F841
    paths = []
    for i in range(4):
        p = tmp_path / f"{i}.png"
        p.write_bytes(encode(photo_like(20, 30, seed=i), "PNG"))
        paths.append(str(p))
    seq = fastseq.ImageSequence(paths, None, batch_size=2, dim=(8, 8),
                                shuffle=False, prefetch=False, label_mode=None)
    want = fastseq.load_batch(paths[2:], (8, 8), dtype="float32", rescale=1 / 255)

    def refuse(*a, **k):
        raise AssertionError("options re-validated for a batch")

    monkeypatch.setattr("fastseq.options.DecodeOptions.__init__", refuse)
    monkeypatch.setattr("fastseq.batch.encode_paths", refuse)
    x = seq[1]
    np.testing.assert_array_equal(x[0] if isinstance(x, tuple) else x, want)


def test_batch_options_refuse_what_the_c_core_cannot_do():
    with pytest.raises(ValueError, match="full-size decodes only"):
        _native.BatchOptions(4, 4, _native.MODE_CMYK, _native.DTYPE_U8)
    with pytest.raises(ValueError, match="invalid output mode"):
        _native.BatchOptions(4, 4, _native.MODE_SOURCE, _native.DTYPE_U8, full_size=True)
    with pytest.raises(ValueError, match="header_only needs full_size"):
        _native.BatchOptions(4, 4, _native.MODE_RGB, _native.DTYPE_U8, header_only=True)
    with pytest.raises(ValueError, match="invalid output dtype"):
        _native.BatchOptions(4, 4, _native.MODE_RGB, _native.DTYPE_F32, full_size=True)
    with pytest.raises(ValueError, match="at least 1x1"):
        _native.BatchOptions(0, 4, _native.MODE_RGB, _native.DTYPE_U8)


def _cmyk_jpeg():
    rgb = photo_like(24, 36, seed=3)
    buf = io.BytesIO()
    Image.fromarray(rgb).convert("CMYK").save(buf, "JPEG", quality=90)
    return buf.getvalue()


@pytest.mark.parametrize("layout", ["L", "RGB", "CMYK"])
def test_header_pass_reports_size_and_layout_without_decoding(layout):
    if layout == "CMYK":
        data = _cmyk_jpeg()
    else:
        data = encode(photo_like(24, 36, seed=3, channels=1 if layout == "L" else 3))
    probe = _native.BatchOptions(1, 1, _native.MODE_SOURCE, _native.DTYPE_U8, full_size=True,
                               header_only=True)
    [(slot, status, msg, w, h, denom, mode)] = _native.run_batch(
        _native.SRC_MEMORY, [data], None, [0], probe)
    assert (slot, status, msg, w, h, denom) == (0, 0, "", 36, 24, 1)
    assert mode == {"L": _native.MODE_L, "RGB": _native.MODE_RGB, "CMYK": _native.MODE_CMYK}[layout]


def test_full_size_pass_refuses_a_slot_of_another_size_or_layout():
    data = encode(photo_like(24, 36, seed=3))
    out = np.full((1, 24, 35, 3), 7, np.uint8)
    wrong = _native.BatchOptions(35, 24, _native.MODE_RGB, _native.DTYPE_U8, full_size=True)
    [res] = _native.run_batch(_native.SRC_MEMORY, [data], out, [0], wrong)
    assert res[2] == "full-size output does not match the image"
    assert _native.status_code(res[1]) == "internal"
    assert not out.any()                      # a failed slot is zero-filled
    cmyk = _native.BatchOptions(36, 24, _native.MODE_CMYK, _native.DTYPE_U8, full_size=True)
    out = np.empty((1, 24, 36, 4), np.uint8)
    [res] = _native.run_batch(_native.SRC_MEMORY, [data], out, [0], cmyk)
    assert res[2] == "CMYK output needs a CMYK JPEG"


@pytest.mark.parametrize("color_mode", [None, "grayscale", "rgb", "rgba"])
def test_decode_image_of_a_cmyk_jpeg_is_pillows(color_mode):
    data = _cmyk_jpeg()
    im = Image.open(io.BytesIO(data))
    pil = {None: None, "grayscale": "L", "rgb": "RGB", "rgba": "RGBA"}[color_mode]
    want = np.asarray(im if pil is None else im.convert(pil))
    got = fastseq.decode_image(data, color_mode)
    np.testing.assert_array_equal(got, want.reshape(got.shape))
    assert got.shape[2] == (4 if pil is None else len(pil))


def test_fallback_decodes_in_parallel(tmp_path, monkeypatch):
    """Two Pillow decodes of one batch run at once: each waits for the
    other at a barrier, which one-by-one decoding would never pass."""
    paths = []
    for i in range(2):
        p = tmp_path / f"{i}.png"
        p.write_bytes(encode(photo_like(20, 30, seed=i), "PNG"))
        paths.append(str(p))
    want = fastseq.load_batch(paths, (10, 10))
    barrier = threading.Barrier(2, timeout=10)
    real = batch_api._pillow_array

    def meet(*args, **kwargs):
        barrier.wait()
        return real(*args, **kwargs)

    monkeypatch.setattr(batch_api, "_pillow_array", meet)
    before = fastseq.get_num_threads()
    fastseq.set_num_threads(2)
    try:
        got = fastseq.load_batch(paths, (10, 10))
    finally:
        fastseq.set_num_threads(before)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("wrap", [bytearray, memoryview, lambda b: np.frombuffer(b, np.uint8)])
def test_fallback_reads_any_buffer(wrap):
    data = encode(photo_like(20, 30, seed=5), "PNG")
    want = fastseq.decode_batch([data], (9, 11))
    got = fastseq.decode_batch([wrap(data)], (9, 11))
    np.testing.assert_array_equal(got, want)
    reader = batch_api._MemoryReader(wrap(data))
    assert reader.read(8) == data[:8] and reader.tell() == 8
    assert reader.seek(-4, io.SEEK_END) == len(data) - 4 and reader.read() == data[-4:]
    assert reader.read() == b""
    reader.close()


def test_memory_reader_does_not_copy():
    buf = bytearray(b"0123456789")
    reader = batch_api._MemoryReader(buf)
    buf[5] = ord("x")             # seen through the reader: the same memory
    assert reader.read() == b"01234x6789"
    reader.close()
    buf.append(0)                 # released on close: the bytearray may grow


def _child_png_batch(paths, q):
    q.put(fastseq.load_batch(paths, (6, 6)).tolist())


def test_fallback_pool_after_fork(tmp_path):
    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork")
    paths = []
    for i in range(3):
        p = tmp_path / f"{i}.png"
        p.write_bytes(encode(photo_like(20, 30, seed=i), "PNG"))
        paths.append(str(p))
    want = fastseq.load_batch(paths, (6, 6))       # the parent's pool exists
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    child = ctx.Process(target=_child_png_batch, args=(paths, q))
    child.start()
    got = q.get(timeout=60)
    child.join(60)
    assert child.exitcode == 0
    np.testing.assert_array_equal(np.asarray(got, np.uint8), want)
