"""The batch API: image files or bytes in, a preallocated NHWC batch out.

JPEG, PNG, WebP, BMP and binary PGM/PPM files are read, decoded (libjpeg-turbo,
libpng, libwebp, plain C), colour-converted and resized (Pillow's filters)
in C on fastseq's native thread pool with the GIL released, each image
straight into its slot of the output array.  Other formats (GIF, TIFF...)
and the layouts those decoders leave to Pillow are decoded by Pillow and
then resized by the same C kernels.  A file's format is detected from its
bytes.
"""

from __future__ import annotations

import io
import os
import stat
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

import numpy as np

from fastseq import _native
from fastseq.errors import DecodeFailure, ImageDecodeError, ImageDecodeWarning
from fastseq.options import (
    COLOR_MODES,
    DEFAULT_MAX_FILE_BYTES,
    DEFAULT_MAX_MEMORY,
    DEFAULT_MAX_PIXELS,
    DEFAULT_MAX_SCAN_PIXELS,
    DEFAULT_MAX_SCANS,
    INTERPOLATIONS,
    DecodeOptions,
    check_limits,
)
from fastseq.threads import get_num_threads

__all__ = [
    "load_batch", "decode_batch", "decode_image", "info", "DEFAULT_MAX_PIXELS",
    "DEFAULT_MAX_SCANS", "DEFAULT_MAX_FILE_BYTES", "DEFAULT_MAX_MEMORY",
    "DEFAULT_MAX_SCAN_PIXELS", "INTERPOLATIONS", "COLOR_MODES",
]


def validate_out(out, shape, dtype):
    """The one validator for ``out=`` arrays: returns `out` or raises.

    It must be a numpy array of exactly `shape` and `dtype`, C-contiguous
    and writeable.
    """
    expected = f"a writeable C-contiguous numpy array of shape {shape} and dtype {np.dtype(dtype)}"
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be {expected}, got {type(out).__name__}")
    if out.dtype != dtype:
        raise ValueError(f"out must be {expected}, got dtype {out.dtype}")
    if out.shape != tuple(shape):
        raise ValueError(f"out must be {expected}, got shape {out.shape}")
    if not out.flags.c_contiguous:
        raise ValueError(f"out must be {expected}, got a non-contiguous array")
    if not out.flags.writeable:
        raise ValueError(f"out must be {expected}, got a read-only array")
    return out


#: TensorFlow wraps (does not copy) numpy memory aligned to this many bytes.
_ALIGN = 64


# Batches of this size and more come from the recycled-buffer pool
# (csrc/bufpool.h): a fresh 38.5 MB float32 batch costs a page fault and a
# kernel zeroing per page, as long as writing it from the cache.
_POOLED_MIN = 1 << 20


def _pool_limit_from_env():
    """FASTSEQ_BUFFER_POOL_MB: the megabytes of freed batch buffers kept for
    reuse (default 512; 0 keeps none)."""
    v = os.environ.get("FASTSEQ_BUFFER_POOL_MB")
    if v is None or v.strip() == "":
        return
    try:
        mb = int(v)
        if mb < 0:
            raise ValueError
    except ValueError:
        raise ValueError(f"FASTSEQ_BUFFER_POOL_MB must be an integer >= 0, got {v!r}") from None
    _native.bufpool_set_limit(mb << 20)


_pool_limit_from_env()


def aligned_empty(shape, dtype) -> np.ndarray:
    """A new, uninitialised C-contiguous array whose data starts on a
    64-byte boundary, so TensorFlow can use a batch without copying it
    (numpy's own large allocations are only 16-byte aligned).  Large ones
    reuse the memory of batches no longer referenced anywhere
    (_native.BatchBuffer); the array's base keeps that memory owned."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if nbytes >= _POOLED_MIN:
        raw = np.frombuffer(_native.BatchBuffer(nbytes), dtype=np.uint8)
        return raw.view(dtype).reshape(shape)
    raw = np.empty(nbytes + _ALIGN, dtype=np.uint8)
    start = -raw.ctypes.data % _ALIGN
    return raw[start:start + nbytes].view(dtype).reshape(shape)


def _prepare_out(out, opts, n):
    shape = opts.shape(n)
    if out is None:
        return aligned_empty(shape, opts.dtype)
    return validate_out(out, shape, opts.dtype)


def _open_for_pillow(path, max_file_bytes, name):
    """A binary file object for Pillow, refused as the C reader refuses it:
    not a regular file (never blocks on a FIFO: O_NONBLOCK), or over
    max_file_bytes.  Checked on the descriptor Pillow will read, so a path
    swapped since the C pass is caught too."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise ImageDecodeError(name, f"cannot open file: {e.strerror}", "io") from None
    f = os.fdopen(fd, "rb")
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ImageDecodeError(name, "is not a regular file", "not_regular_file")
        if max_file_bytes and st.st_size > max_file_bytes:
            raise ImageDecodeError(name, f"file is {st.st_size} bytes, over "
                                   f"max_file_bytes={max_file_bytes}", "too_large")
    except BaseException:
        f.close()
        raise
    return f


class _MemoryReader(io.RawIOBase):
    """A read-only, seekable binary file over a bytes-like object, without
    copying it (io.BytesIO copies anything but bytes): what Pillow reads an
    in-memory image from."""

    def __init__(self, buf):
        self._mv = memoryview(buf).cast("B")
        self._pos = 0

    def readable(self):
        return True

    def seekable(self):
        return True

    def tell(self):
        return self._pos

    def seek(self, offset, whence=io.SEEK_SET):
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: len(self._mv)}[whence]
        if base + offset < 0:
            raise ValueError(f"negative seek position {base + offset}")
        self._pos = base + offset
        return self._pos

    def read(self, size=-1):
        n = len(self._mv)
        end = n if size is None or size < 0 else min(n, self._pos + size)
        data = self._mv[self._pos:end].tobytes() if end > self._pos else b""
        self._pos = max(self._pos, end)
        return data

    def readinto(self, b):
        data = self.read(len(b))
        b[:len(data)] = data
        return len(data)

    def close(self):
        self._mv.release()
        super().close()


#: Pillow's modes that keras.utils.load_img keeps for color_mode="grayscale".
WIDE_GRAY_MODES = ("I;16", "I")


def keras_resize(im, size, interpolation, keep_aspect_ratio):
    """keras.utils.load_img's resize of a PIL image to `size` = (height,
    width): none when it has that size, else ``im.resize`` with the filter
    named `interpolation`, on Keras' centre crop when `keep_aspect_ratio`."""
    from PIL import Image

    target = (size[1], size[0])
    if im.size == target:
        return im
    resample = Image.Resampling[interpolation.upper()]
    if not keep_aspect_ratio:
        return im.resize(target, resample)
    width, height = im.size
    crop_h = min(height, (width * target[1]) // target[0])
    crop_w = min(width, (height * target[0]) // target[1])
    y0, x0 = (height - crop_h) // 2, (width - crop_w) // 2
    return im.resize(target, resample, box=[x0, y0, x0 + crop_w, y0 + crop_h])


# Bytes a pixel takes in Pillow's own storage (libImaging's pixelsize): one
# for the 8-bit single-band modes, two for the 16-bit ones, four for every
# other mode (3-band modes such as RGB are padded to 4).
def _pillow_pixel_bytes(mode):
    if mode in ("1", "L", "P"):
        return 1
    return 2 if mode.startswith("I;16") else 4


# Bytes a pixel takes in the packed copy numpy gets (tobytes: bands x band
# size); modes not listed take 4.
_ARRAY_PIXEL_BYTES = {"1": 1, "L": 1, "P": 1, "LA": 2, "La": 2, "PA": 2,
                      "I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2,
                      "RGB": 3, "YCbCr": 3, "LAB": 3, "HSV": 3}


# Rows of at most this many pixels are converted and copied out together
# (_pillow_pixels): 1 Mpx, 4 MiB in Pillow's storage.
_BAND_PIXELS = 1 << 20


def _band_rows(width):
    return max(1, _BAND_PIXELS // max(width, 1))


def _pillow_pixels(im, pil_mode):
    """The loaded image `im` converted to `pil_mode` (None: kept) as an
    array, a band of rows at a time.  Converting the whole image and letting
    numpy read it would hold the converted image and twice its packed copy
    at once (Image.tobytes joins a list of 64 KiB chunks): 1.1 GB for a
    111-Mpx GIF as RGB, where this holds the array plus one band.  Every
    conversion fastseq asks for is per pixel (no dithering: the targets are
    L, RGB and RGBA), and a crop keeps the palette and transparency, so the
    bands give the whole image's pixels."""
    w, h = im.size
    rows = _band_rows(w)
    arr = None
    for y0 in range(0, max(h, 1), rows):        # one band when h == 0
        y1 = min(h, y0 + rows)
        part = im if (y0, y1) == (0, h) else im.crop((0, y0, w, y1))
        if pil_mode is not None and part.mode != pil_mode:
            part = part.convert(pil_mode)
        a = np.asarray(part)
        if arr is None:
            arr = a if y1 == h else np.empty((h,) + a.shape[1:], a.dtype)
        if arr is not a:
            arr[y0:y1] = a
    return arr


def _pillow_memory(mode, size, pil_mode, wide_out):
    """The most bytes _pillow_array holds at once for an image of `mode` and
    `size` (from its header): the decoded image, the output array, and one
    band's crop, conversion to `pil_mode` (None: kept) and packed copy, twice
    (see _pillow_pixels); or, `wide_out` = (height, width), the decoded image
    plus its resize in its own mode and that resize's float32 copy.  Decoders'
    own buffers (a TIFF strip, a PNG row) are not counted."""
    width, height = size
    pixels = width * height
    decoded = pixels * _pillow_pixel_bytes(mode)
    if wide_out is not None:
        return decoded + wide_out[0] * wide_out[1] * (_pillow_pixel_bytes(mode) + 4)
    out_mode = pil_mode or mode
    band = min(height, _band_rows(width)) * width
    banded = band < pixels
    return (decoded
            + (pixels * _ARRAY_PIXEL_BYTES.get(out_mode, 4) if banded else 0)
            + (band * _pillow_pixel_bytes(mode) if banded else 0)
            + (band * _pillow_pixel_bytes(out_mode) if out_mode != mode else 0)
            + 2 * band * _ARRAY_PIXEL_BYTES.get(out_mode, 4))


def _pillow_array(source, pil_mode, limits, name="", wide=None):
    """Fallback: decode a non-JPEG image with Pillow, converted to `pil_mode`
    (None keeps the file's mode) as Keras' load_img converts it.  `source` is
    a path (str) or a C-contiguous bytes-like object, read in place.  Every
    failure (any Exception from Pillow or its plugins) becomes an
    ImageDecodeError naming `name`.  Returns an array of shape (h, w,
    channels).  `wide`: None, or a DecodeOptions with ``wide_gray``: an
    image in a WIDE_GRAY_MODES mode is then not converted but resized by
    Pillow in its own mode (keras_resize) and returned as float32
    (img_to_array's values).  Thread-safe: the fallback pool runs it."""
    from PIL import Image, UnidentifiedImageError

    max_pixels = limits["max_pixels"]
    max_file_bytes = limits["max_file_bytes"]
    max_memory = limits["max_memory"]
    if isinstance(source, str):
        source = _open_for_pillow(source, max_file_bytes, name)
    else:
        source = _MemoryReader(source)
        size = len(source._mv)
        if max_file_bytes and size > max_file_bytes:
            source.close()
            raise ImageDecodeError(name, f"input is {size} bytes, over "
                                   f"max_file_bytes={max_file_bytes}", "too_large")
    try:
        with source, Image.open(source) as decoded:
            w, h = decoded.size
            if max_pixels and w * h > max_pixels:
                raise ImageDecodeError(name, f"image size {w}x{h} ({w * h} pixels) exceeds "
                                       f"max_pixels={max_pixels}", "too_many_pixels")
            wide_out = None
            if wide is not None and decoded.mode in WIDE_GRAY_MODES:
                wide_out = (wide.height, wide.width)
            need = _pillow_memory(decoded.mode, decoded.size, pil_mode, wide_out)
            if max_memory and need > max_memory:
                raise ImageDecodeError(name, f"decoding needs {need} bytes, over "
                                       f"max_memory={max_memory}", "memory_limit")
            decoded.load()
            if wide_out is not None:
                im = keras_resize(decoded, wide_out, wide.interpolation, wide.keep_aspect_ratio)
                arr = np.asarray(im, dtype=np.float32)
            else:
                arr = _pillow_pixels(decoded, pil_mode)
    except ImageDecodeError:
        raise
    except UnidentifiedImageError:
        raise ImageDecodeError(name, "not a JPEG, and Pillow cannot identify the format",
                               "not_image") from None
    except Image.DecompressionBombError as e:
        raise ImageDecodeError(name, str(e), "too_many_pixels") from None
    except MemoryError:
        raise ImageDecodeError(name, "Pillow: out of memory", "memory") from None
    except Exception as e:   # any plugin's error; KeyboardInterrupt passes
        code = "truncated" if "truncated" in str(e) else "decode"
        raise ImageDecodeError(name, f"Pillow: {type(e).__name__}: {e}", code) from None
    return arr.reshape(arr.shape[0], arr.shape[1], -1)


# The Pillow decodes of a batch's non-JPEG inputs run on this thread pool
# (Pillow releases the GIL while it decodes), as many threads as fastseq's
# own pool; created at the first such batch, and again after a fork or a
# set_num_threads.
_fallback_lock = threading.Lock()
_fallback_pool = None          # (size, ThreadPoolExecutor)


def _forget_fallback_pool():
    # In a forked child the pool's threads do not exist and the lock may be
    # held by a thread that does not either.
    global _fallback_lock, _fallback_pool
    _fallback_lock = threading.Lock()
    _fallback_pool = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_fallback_pool)


def _fallback_submit(fn, items):
    """Submit fn(item) for every item to the Pillow-fallback threads, sized
    like fastseq's pool.  Under the lock, so that a resize of the pool by
    another thread cannot shut the executor down between fetch and submit
    (work already submitted to a replaced executor still runs)."""
    global _fallback_pool
    n = get_num_threads()
    with _fallback_lock:
        if _fallback_pool is None or _fallback_pool[0] != n:
            old = _fallback_pool
            _fallback_pool = (n, ThreadPoolExecutor(n, thread_name_prefix="fastseq-pillow"))
            if old is not None:
                old[1].shutdown(wait=False)
        executor = _fallback_pool[1]
        return [executor.submit(fn, item) for item in items]


def _fallback_decode(slots, opener, names, opts):
    """Pillow-decode the non-JPEG inputs at `slots`, in parallel: for each,
    (uint8 pixels in the output mode, premultiply?) or an ImageDecodeError;
    with ``opts.wide_gray``, a 16/32-bit grayscale image gives float32
    pixels already at the output size instead (see _pillow_array)."""
    wide = opts if opts.wide_gray else None

    def one(slot):
        try:
            arr = _pillow_array(opener(slot), opts.pil_mode, opts.limits, names(slot), wide)
        except ImageDecodeError as e:
            return e
        if arr.dtype == np.float32:
            return np.ascontiguousarray(arr), False
        # Pillow resizes RGBA premultiplied; with opaque alpha that is a
        # no-op, so only real transparency pays for it.
        premul = opts.channels == 4 and bool((arr[..., 3] != 255).any())
        return np.ascontiguousarray(arr, dtype=np.uint8), premul

    if len(slots) == 1:
        return [one(slots[0])]
    futures = _fallback_submit(one, slots)
    try:
        return [f.result() for f in futures]
    except BaseException:       # Ctrl-C: drop the decodes not started
        for f in futures:
            f.cancel()
        raise


def _run(kind, sources, names, out, opts, opener, warps=None, store=None):
    """Run one batch into `out`: the native pass, then the Pillow fallback
    for the inputs the C decoders leave to it (`opener(slot)` gives what
    _pillow_array reads).  `warps`: None or (rows, _native.WarpOptions), the
    augmentation of each image (fastseq.augment.BatchAugmenter), applied on
    both passes.  `store`: None or a cache store (fastseq.cache._Store) for
    files: each image is then served from its entry when valid, else decoded
    and its resized uint8 pixels (or its failure) stored, in the same
    passes.  Returns the failures, sorted by index, not yet reported."""
    rows, wopts = warps if warps is not None else (None, None)
    failures = []
    run = list(range(len(sources)))
    tuples = keys = None
    if store is not None:
        tuples, failed, keys = store.plan(sources)
        # Each file keyed is read by the absolute path its key was made
        # for (keys[i][0]): a relative path read after an os.chdir would be
        # another file's pixels stored under this one's key, for good.
        sources = [s if k is None else k[0] for s, k in zip(sources, keys)]
        opener = lambda slot: os.fsdecode(sources[slot])   # noqa: E731
        for slot, (code, reason) in failed.items():      # remembered (memory)
            out[slot] = 0
            failures.append(DecodeFailure(slot, names(slot), code, reason))
        run = [i for i in run if i not in failed]

    def fail(slot, code, reason):
        failures.append(DecodeFailure(slot, names(slot), code, reason))
        if store is not None:
            store.remember_failure(keys, tuples, slot, code, reason)

    results = _native.run_batch(kind, [sources[i] for i in run], out, run, opts.c,
                                warps=None if rows is None else rows[run], warp_opts=wopts,
                                cache=None if store is None else [tuples[i] for i in run])
    fallback = []
    for slot, status, msg, *r in results:
        if store is not None:           # r: width, height, denom, mode, probe, result, why
            store.record(keys, tuples, slot, r[5], r[6], r[4], status, msg)
        if status == _native.STATUS_NOT_JPEG:
            fallback.append(slot)
        elif status:
            code = _native.status_code(status)
            failures.append(DecodeFailure(slot, names(slot), code, msg))
            if store is not None and store.root is None:     # on disk the C pass stored it
                store.remember_failure(keys, tuples, slot, code, msg)
    fb_slots, fb_pixels, fb_premul, fb_cache = [], [], [], []
    for slot, got in zip(fallback, _fallback_decode(fallback, opener, names, opts)):
        if isinstance(got, ImageDecodeError):
            out[slot] = 0
            fail(slot, got.code, got.reason)
        else:
            fb_slots.append(slot)
            fb_pixels.append(got[0])
            fb_premul.append(got[1])
            if store is not None:       # the pixels are stored, not probed again
                t = tuples[slot]
                fb_cache.append(None if t is None else (t[0], t[1], None, t[3], False))
    if fb_slots:
        res = _native.run_batch(_native.SRC_PIXELS, fb_pixels, out, fb_slots, opts.c,
                                premultiply=fb_premul,
                                warps=None if rows is None else rows[fb_slots],
                                warp_opts=wopts, cache=None if store is None else fb_cache)
        for slot, status, msg, *r in res:
            if store is not None:
                store.record(keys, tuples, slot, r[5], r[6], "none", status, msg)
            if status:
                failures.append(DecodeFailure(slot, names(slot), _native.status_code(status), msg))
    failures.sort(key=lambda f: f.index)
    return failures


def report_failures(failures, on_error, stacklevel=3):
    """Act on a batch's failures as `on_error` says: raise for the first,
    warn for each (attributed `stacklevel` frames up: by default the caller
    of _report's caller), or nothing."""
    if not failures or on_error == "ignore":
        return
    if on_error == "raise":
        f = failures[0]
        raise ImageDecodeError(f.source, f.reason, f.code, f.index, failures)
    for f in failures:
        warnings.warn(f"fastseq: cannot decode image {f.source!r} "
                      f"(batch index {f.index}): {f.reason}; its slot is zero-filled",
                      ImageDecodeWarning, stacklevel=stacklevel)


def as_list(items, what, of):
    """`items` as a list; TypeError naming `what` when it is not iterable
    (``load_batch(123, ...)``)."""
    try:
        return list(items)
    except TypeError:
        raise TypeError(f"{what} must be a sequence of {of}, got "
                        f"{type(items).__name__}") from None


def list_paths(paths, of="paths"):
    """`paths` as a list, refusing a single path (str, bytes, os.PathLike)
    and anything not iterable with a TypeError naming them (`of`: what the
    items are called in the message)."""
    if isinstance(paths, (str, bytes, os.PathLike)):
        raise TypeError(f"paths must be a sequence of {of}, not a single path")
    return as_list(paths, "paths", of)


def encode_paths(paths) -> list[bytes]:
    """Paths as the C core takes them (os.fsencode), checked: str, bytes or
    os.PathLike, without NUL bytes."""
    paths = list_paths(paths)
    try:
        encoded = [os.fsencode(p) for p in paths]
    except TypeError:
        bad = next(p for p in paths if not isinstance(p, (str, bytes, os.PathLike)))
        raise TypeError(f"paths must be str, bytes or os.PathLike, got {type(bad).__name__}") from None
    for p, e in zip(paths, encoded):
        if b"\0" in e:
            raise ValueError(f"path contains a NUL byte: {p!r}")
    return encoded


def load_files(encoded, options, out=None, warps=None, cache=None):
    """The one way a batch of files is loaded (load_batch, the Keras
    iterators): `encoded` from encode_paths, `options` a DecodeOptions, `out`
    None (a new aligned batch) or an array to validate and fill, `warps`
    None or each image's augmentation (see _run), `cache` None or the
    store (fastseq.cache) of these options.  Returns (out, failures); the
    caller reports the failures (report_failures)."""
    out = _prepare_out(out, options, len(encoded))
    names = lambda i: os.fsdecode(encoded[i])   # noqa: E731
    store = cache if cache is not None and cache.enabled else None
    return out, _run(_native.SRC_FILE, encoded, names, out, options, opener=names,
                     warps=warps, store=store)


def load_batch(paths: Sequence, target_size, *, out=None, color_mode="rgb",
               interpolation="bilinear", dtype="uint8", rescale=None,
               offset=0.0, dct_scaling=True, keep_aspect_ratio=False,
               on_error="raise", max_pixels=DEFAULT_MAX_PIXELS,
               max_scans=DEFAULT_MAX_SCANS, allow_truncated=False,
               max_file_bytes=DEFAULT_MAX_FILE_BYTES, max_memory=DEFAULT_MAX_MEMORY,
               max_scan_pixels=DEFAULT_MAX_SCAN_PIXELS, return_failed=False,
               cache=None):
    """Load image files into one (N, height, width, channels) batch.

    Parameters
    ----------
    paths : sequence of str, bytes or os.PathLike
    target_size : (height, width), as in Keras.
    out : optional preallocated array of shape (N, height, width, channels),
        C-contiguous, writeable, of `dtype`; filled in place and returned.
    color_mode : "rgb", "grayscale" or "rgba" (any source converts).
    interpolation : "nearest", "bilinear", "bicubic", "hamming", "box",
        "lanczos" (Pillow's filters, antialiased when shrinking).
    dtype : "uint8" or "float32".
    rescale, offset : float32 output only: each value v is written as
        ``v * rescale + offset`` (fused into the write).
    dct_scaling : decode JPEGs at 1/2, 1/4 or 1/8 scale when the result is
        still at least the target size (much faster; set False for output
        identical to Pillow's full decode + resize).
    keep_aspect_ratio : centre-crop to the target aspect ratio first (Keras).
    on_error : "raise" (ImageDecodeError), "warn" (ImageDecodeWarning per
        failed image, slot zero-filled) or "ignore" (slot zero-filled).
    max_pixels : reject images with more pixels (checked from the header,
        before any allocation); None disables.
    max_scans : reject progressive JPEGs with more scans; None disables.
    allow_truncated : decode truncated JPEGs instead of raising (the missing
        part is filled by libjpeg), like Pillow's LOAD_TRUNCATED_IMAGES.
    max_file_bytes : reject larger files or buffers (checked from the file's
        size before reading it; code "too_large"); None disables.
    max_memory : reject an image whose decode needs more bytes (the
        decoder's buffers plus the decoded pixels, e.g. libjpeg's coefficient
        buffer; for formats left to Pillow an estimate of what it holds; from
        the header, before any allocation; code "memory_limit"); None
        disables.
    max_scan_pixels : bound the work of multi-scan JPEGs: the samples each
        scan codes, summed over scans (code "work_limit"); None disables.
    All limits are on by default; README "Limits" gives the worst cases.
    return_failed : also return the list of DecodeFailure (index, source,
        code, reason) of the images that failed.
    cache : None, "memory", a directory path or a fastseq.ImageCache: keep
        each image's resized uint8 pixels (or its failure) and serve them
        instead of decoding while the file is unchanged (fastseq.cache).
        The batch is the same bits either way.  A string or path names this
        process's one cache of that location, shared by every call
        (``"memory"`` lasts as long as the process; pass an ImageCache to
        own one).
    """
    opts = DecodeOptions(target_size, color_mode=color_mode, interpolation=interpolation,
                         dtype=dtype, rescale=rescale, offset=offset,
                         dct_scaling=dct_scaling, keep_aspect_ratio=keep_aspect_ratio,
                         on_error=on_error, max_pixels=max_pixels, max_scans=max_scans,
                         allow_truncated=allow_truncated, max_file_bytes=max_file_bytes,
                         max_memory=max_memory, max_scan_pixels=max_scan_pixels)
    encoded = encode_paths(paths)
    store = None
    if cache is not None:
        from fastseq.cache import as_cache

        store = as_cache(cache, shared=True).store(opts)
        store.reserve(encoded)
    out, failures = load_files(encoded, opts, out, cache=store)
    report_failures(failures, opts.on_error)
    return (out, failures) if return_failed else out


def decode_batch(buffers: Sequence, target_size, *, out=None, color_mode="rgb",
                 interpolation="bilinear", dtype="uint8", rescale=None,
                 offset=0.0, dct_scaling=True, keep_aspect_ratio=False,
                 on_error="raise", max_pixels=DEFAULT_MAX_PIXELS,
                 max_scans=DEFAULT_MAX_SCANS, allow_truncated=False,
                 max_file_bytes=DEFAULT_MAX_FILE_BYTES, max_memory=DEFAULT_MAX_MEMORY,
                 max_scan_pixels=DEFAULT_MAX_SCAN_PIXELS, return_failed=False):
    """Like :func:`load_batch`, for encoded images held in memory (any
    bytes-like objects: bytes, bytearray, memoryview, mmap, uint8 arrays).
    Failed images are named ``"<buffer N>"``."""
    opts = DecodeOptions(target_size, color_mode=color_mode, interpolation=interpolation,
                         dtype=dtype, rescale=rescale, offset=offset,
                         dct_scaling=dct_scaling, keep_aspect_ratio=keep_aspect_ratio,
                         on_error=on_error, max_pixels=max_pixels, max_scans=max_scans,
                         allow_truncated=allow_truncated, max_file_bytes=max_file_bytes,
                         max_memory=max_memory, max_scan_pixels=max_scan_pixels)
    if _single_buffer(buffers):
        raise TypeError("buffers must be a sequence of bytes-like objects, not a single buffer")
    buffers = as_list(buffers, "buffers", "bytes-like objects")
    for i, b in enumerate(buffers):
        _check_buffer(b, f"buffers[{i}]")
    out = _prepare_out(out, opts, len(buffers))
    # The fallback reads each non-JPEG buffer in place (no copy).
    failures = _run(_native.SRC_MEMORY, buffers, lambda i: f"<buffer {i}>", out, opts,
                    opener=buffers.__getitem__)
    report_failures(failures, opts.on_error)
    return (out, failures) if return_failed else out


def _single_buffer(obj):
    """One encoded image passed where a sequence of them is expected: a
    bytes-like object of at most one dimension (bytes, bytearray, mmap, a
    1-D uint8 array), which would otherwise be iterated byte by byte into
    that many one-byte "images".  The rows of a 2-D array are buffers."""
    if isinstance(obj, (list, tuple)):
        return False
    try:
        with memoryview(obj) as mv:
            return mv.ndim <= 1
    except TypeError:
        return False


def _check_buffer(b, what):
    """An encoded-image buffer must be bytes-like and C-contiguous (the C
    core reads it as one run of bytes)."""
    try:
        mv = memoryview(b)
    except TypeError:
        raise TypeError(f"{what} is not bytes-like: {type(b).__name__}") from None
    if not mv.c_contiguous:
        raise ValueError(f"{what} is a non-contiguous buffer; pass bytes, bytearray or a "
                         "C-contiguous buffer (e.g. numpy.ascontiguousarray(x) or bytes(x))")


def decode_image(source, color_mode=None, *, max_pixels=DEFAULT_MAX_PIXELS,
                 max_scans=DEFAULT_MAX_SCANS, allow_truncated=False,
                 max_file_bytes=DEFAULT_MAX_FILE_BYTES, max_memory=DEFAULT_MAX_MEMORY,
                 max_scan_pixels=DEFAULT_MAX_SCAN_PIXELS):
    """Decode one image at full size into an (H, W, C) uint8 array.

    `source` is a path or a bytes-like object.  With ``color_mode=None`` the
    file's own layout is kept: grayscale (C=1), RGB (C=3) or, for CMYK JPEGs,
    CMYK (C=4) in Pillow's convention, so that the result equals
    ``numpy.asarray(PIL.Image.open(source))`` (with a channel axis).
    Otherwise "grayscale", "rgb" or "rgba" convert as Pillow does.  The
    limits are load_batch's.
    """
    if color_mode is not None and color_mode not in COLOR_MODES:
        raise ValueError(f"color_mode must be None or one of {sorted(COLOR_MODES)}, "
                         f"got {color_mode!r}")
    limits = check_limits(max_pixels, max_scans, allow_truncated, max_file_bytes,
                          max_memory, max_scan_pixels)
    if isinstance(source, (str, os.PathLike)):
        name = os.fsdecode(source)
        path = os.fsencode(source)
        if b"\0" in path:
            raise ValueError(f"path contains a NUL byte: {source!r}")
        # The C reader: regular files only, size checked before reading.
        data = _native.read_file(path, limits["max_file_bytes"], name)
    else:
        name = "<buffer>"
        _check_buffer(source, "source")
        data = source
    # The batch path with one image: a header-only pass (limits, and the
    # memory the decode needs, checked before anything is allocated) gives
    # the size and layout; then a full-size pass decodes into the array.
    mode = _native.MODE_SOURCE if color_mode is None else COLOR_MODES[color_mode][0]
    probe = _native.BatchOptions(1, 1, mode, _native.DTYPE_U8, full_size=True,
                               header_only=True, **limits)
    [(_, status, msg, w, h, _, src_mode)] = _native.run_batch(
        _native.SRC_MEMORY, [data], None, [0], probe)
    if status == _native.STATUS_NOT_JPEG:
        pil_mode = None if color_mode is None else COLOR_MODES[color_mode][2]
        return _pillow_array(data, pil_mode, limits, name)
    if status == 0:
        full = _native.BatchOptions(w, h, src_mode if color_mode is None else mode,
                                  _native.DTYPE_U8, full_size=True, **limits)
        out = np.empty((h, w, full.channels), np.uint8)
        [(_, status, msg, *_)] = _native.run_batch(_native.SRC_MEMORY, [data], out, [0], full)
        if status == 0:
            return out
    raise ImageDecodeError(name, msg or f"error {status}", _native.status_code(status))


def info() -> dict:
    """Versions and build facts: fastseq, each codec library (libjpeg-turbo,
    libpng, zlib, libwebp), SIMD, threads."""
    from fastseq import __version__
    import PIL

    return {
        "fastseq": __version__,
        "libjpeg_turbo": _native.libjpeg_version(),
        "libpng": _native.libpng_version(),
        "zlib": _native.zlib_version(),
        "libwebp": _native.libwebp_version(),
        "simd": _native.libjpeg_simd() and not os.environ.get("JSIMD_FORCENONE"),
        "simd_built": _native.libjpeg_simd(),
        "resize_simd": _native.resize_simd(),
        "threads": get_num_threads(),
        "numpy": np.__version__,
        "pillow": PIL.__version__,
    }



def _pillow_pass_order(version: str) -> int:
    """The resize pass order of this Pillow version (csrc/resample.c,
    "Pass order"): 0 before 12.3, 1 for 12.3, 2 from 13 on.  The 8-bit
    resampling arithmetic is otherwise the same from Pillow 9.2 to 13."""
    try:
        major, minor = (int(p) for p in version.split(".")[:2])
    except ValueError:
        return 2
    if major >= 13:
        return 2
    return 1 if (major, minor) >= (12, 3) else 0


def _set_pass_order() -> int:
    import PIL      # PIL/__init__.py alone: it imports no image code

    return _native.set_resize_pass_order(_pillow_pass_order(PIL.__version__))


_set_pass_order()

