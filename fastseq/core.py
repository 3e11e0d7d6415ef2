"""The batch API: image files or bytes in, a preallocated NHWC batch out.

JPEG files are read, decoded (libjpeg-turbo), colour-converted and resized
(Pillow's filters) in C on fastseq's native thread pool with the GIL
released, each image straight into its slot of the output array.  Other
formats (PNG, BMP, PPM/PGM, GIF, TIFF, WebP...) are decoded by Pillow and then
resized by the same C kernels.  A file's format is detected from its bytes.
"""

from __future__ import annotations

import io
import os
import stat
import warnings
from typing import Sequence

import numpy as np

from fastseq import _core
from fastseq.errors import DecodeFailure, ImageDecodeError, ImageDecodeWarning
from fastseq.threads import get_num_threads

__all__ = [
    "load_batch", "decode_batch", "decode_image", "info", "DEFAULT_MAX_PIXELS", "DEFAULT_MAX_SCANS",
    "DEFAULT_MAX_FILE_BYTES", "DEFAULT_MAX_MEMORY", "DEFAULT_MAX_SCAN_PIXELS",
    "INTERPOLATIONS", "COLOR_MODES",
]

#: Pillow's decompression-bomb *error* threshold (2 * Image.MAX_IMAGE_PIXELS).
DEFAULT_MAX_PIXELS = 178_956_970
#: libjpeg-turbo's own default limit on progressive scans (TurboJPEG API).
DEFAULT_MAX_SCANS = 500
#: 2 GiB.  No image within DEFAULT_MAX_PIXELS needs more: the largest
#: layouts are uncompressed 16-bit RGBA (8 bytes a pixel: 1.43 GB at the
#: pixel limit) and JPEGs of pure noise at quality 100 (measured: 4.1 bytes a
#: pixel for 4:4:4 RGB, 6.3 for CMYK: 1.13 GB); photos are 0.2-2 bytes a pixel.
DEFAULT_MAX_FILE_BYTES = 2 << 30
#: 2.5 GiB per image being decoded.  The most a JPEG within DEFAULT_MAX_PIXELS
#: needs is a progressive 4-component 4:4:4 one: libjpeg's coefficient buffer
#: (64 coefficients of 2 bytes per 8x8 block of each component: 8 bytes a
#: pixel) plus fastseq's 4-byte pixels, 12 * 178,956,970 = 2.15 GB.
DEFAULT_MAX_MEMORY = 5 << 29
#: 16 full passes over an image at DEFAULT_MAX_PIXELS, counted in component
#: samples summed over scans (a 3-component 4:4:4 scan of a W x H image
#: counts 3*W*H).  libjpeg's standard progressive script codes each Y sample
#: in 6 scans and each chroma sample in 4: 14 * W*H for 4:4:4, 8 * W*H for
#: 4:2:0, below this at the pixel limit.  Its script for other colour spaces
#: (6 scans per component) reaches it for a 4-component progressive file
#: above 2/3 of the pixel limit.  README "Limits" gives the measured worst
#: case it allows.
DEFAULT_MAX_SCAN_PIXELS = 16 * DEFAULT_MAX_PIXELS

INTERPOLATIONS = {"nearest": 0, "box": 1, "bilinear": 2, "hamming": 3,
                  "bicubic": 4, "lanczos": 5}
COLOR_MODES = {"grayscale": (_core.MODE_L, 1, "L"),
               "rgb": (_core.MODE_RGB, 3, "RGB"),
               "rgba": (_core.MODE_RGBA, 4, "RGBA")}
_ON_ERROR = ("raise", "warn", "ignore")
_MAX_SIDE = 1 << 16


class _Options:
    """Validated options shared by load_batch and decode_batch."""

    __slots__ = ("height", "width", "mode", "channels", "pil_mode", "dtype",
                 "dtype_id", "scale", "offset", "filter", "dct_scaling",
                 "keep_aspect_ratio", "on_error", "limits")

    def __init__(self, target_size, color_mode, interpolation, dtype, rescale,
                 offset, dct_scaling, keep_aspect_ratio, on_error, max_pixels,
                 max_scans, allow_truncated, max_file_bytes, max_memory,
                 max_scan_pixels):
        self.height, self.width = _check_target_size(target_size)
        if color_mode not in COLOR_MODES:
            raise ValueError(f"color_mode must be one of {sorted(COLOR_MODES)}, "
                             f"got {color_mode!r}")
        self.mode, self.channels, self.pil_mode = COLOR_MODES[color_mode]
        if interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {list(INTERPOLATIONS)}, "
                             f"got {interpolation!r}")
        self.filter = INTERPOLATIONS[interpolation]
        try:
            dt = np.dtype(dtype)
        except TypeError:
            raise TypeError(f"dtype must be 'uint8' or 'float32', got {dtype!r}") from None
        if dt == np.uint8:
            if rescale is not None or offset:
                raise ValueError("rescale/offset need dtype='float32' "
                                 "(a uint8 batch holds raw pixel values)")
            self.dtype_id, self.scale, self.offset = _core.DTYPE_U8, 1.0, 0.0
        elif dt == np.float32:
            self.dtype_id = _core.DTYPE_F32
            self.scale, self.offset = _check_rescale(rescale, offset)
        else:
            raise TypeError(f"dtype must be 'uint8' or 'float32', got {dt}")
        self.dtype = dt
        if on_error not in _ON_ERROR:
            raise ValueError(f"on_error must be one of {_ON_ERROR}, got {on_error!r}")
        self.on_error = on_error
        self.dct_scaling = bool(dct_scaling)
        self.keep_aspect_ratio = bool(keep_aspect_ratio)
        self.limits = _check_limits(max_pixels, max_scans, allow_truncated,
                                    max_file_bytes, max_memory, max_scan_pixels)

    def shape(self, n):
        return (n, self.height, self.width, self.channels)

    def c_kwargs(self):
        return dict(out_width=self.width, out_height=self.height,
                    out_mode=self.mode, dtype=self.dtype_id, scale=self.scale,
                    offset=self.offset, filter=self.filter,
                    dct_scaling=self.dct_scaling,
                    keep_aspect_ratio=self.keep_aspect_ratio, **self.limits)


_OPTION_NAMES = ("target_size", "color_mode", "interpolation", "dtype", "rescale",
                 "offset", "dct_scaling", "keep_aspect_ratio", "on_error",
                 "max_pixels", "max_scans", "allow_truncated", "max_file_bytes",
                 "max_memory", "max_scan_pixels")


def _option_args(args):
    return {k: args[k] for k in _OPTION_NAMES}


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _check_rescale(rescale, offset):
    """(scale, offset) as floats such that every output value
    ``v * scale + offset`` (0 <= v <= 255) is a finite float32, or raise."""
    try:
        scale = 1.0 if rescale is None else float(rescale)
        off = float(offset)
    except (TypeError, ValueError):
        raise TypeError(f"rescale and offset must be real numbers, got {rescale!r} "
                        f"and {offset!r}") from None
    if not (np.isfinite(scale) and np.isfinite(off)
            and abs(scale) * 255 + abs(off) <= _FLOAT32_MAX):
        raise ValueError("rescale and offset must be finite numbers with "
                         f"255 * |rescale| + |offset| <= {_FLOAT32_MAX:.7g} (the float32 "
                         f"range), got rescale={rescale!r}, offset={offset!r}")
    return scale, off


# (name, largest accepted value): the C types the limits travel as.
_LIMIT_RANGES = (("max_pixels", 2**64 - 1), ("max_scans", 2**31 - 1),
                 ("max_file_bytes", 2**63 - 1), ("max_memory", 2**64 - 1),
                 ("max_scan_pixels", 2**64 - 1))


def _check_limits(max_pixels, max_scans, allow_truncated, max_file_bytes,
                  max_memory, max_scan_pixels):
    """The one validator of the resource limits (load_batch, decode_batch,
    decode_image): a dict of run_batch/decode_jpeg keyword arguments, with
    None (no limit) as 0."""
    given = locals()
    out = {"allow_truncated": bool(allow_truncated)}
    for name, hi in _LIMIT_RANGES:
        v = given[name]
        if v is None:
            v = 0
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 0 <= v <= hi:
            raise ValueError(f"{name} must be None (no limit) or an int between 0 "
                             f"and {hi}, got {given[name]!r}")
        out[name] = int(v)
    return out


def _check_target_size(target_size):
    try:
        h, w = target_size
        ok = all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                 for v in (h, w))
    except (TypeError, ValueError):
        ok = False
    if not ok or not (0 < h <= _MAX_SIDE and 0 < w <= _MAX_SIDE):
        raise ValueError("target_size must be a (height, width) pair of ints "
                         f"between 1 and {_MAX_SIDE}, got {target_size!r}")
    return int(h), int(w)


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


def aligned_empty(shape, dtype) -> np.ndarray:
    """A new, uninitialised C-contiguous array whose data starts on a
    64-byte boundary, so TensorFlow can use a batch without copying it
    (numpy's own large allocations are only 16-byte aligned)."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
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


def _pillow_array(source, pil_mode, limits, name=""):
    """Fallback: decode a non-JPEG image with Pillow, converted to `pil_mode`
    (None keeps the file's mode) as Keras' load_img converts it.  `source` is
    a path (str) or the encoded bytes.  Every failure (any Exception from
    Pillow or its plugins) becomes an ImageDecodeError naming `name`.
    Returns an array of shape (h, w, channels)."""
    from PIL import Image, UnidentifiedImageError

    max_pixels = limits["max_pixels"]
    max_file_bytes = limits["max_file_bytes"]
    if isinstance(source, str):
        source = _open_for_pillow(source, max_file_bytes, name)
    else:
        if max_file_bytes and len(source) > max_file_bytes:
            raise ImageDecodeError(name, f"input is {len(source)} bytes, over "
                                   f"max_file_bytes={max_file_bytes}", "too_large")
        source = io.BytesIO(source)
    try:
        with source, Image.open(source) as im:
            w, h = im.size
            if max_pixels and w * h > max_pixels:
                raise ImageDecodeError(name, f"image size {w}x{h} ({w * h} pixels) exceeds "
                                       f"max_pixels={max_pixels}", "too_many_pixels")
            im.load()
            if pil_mode is not None and im.mode != pil_mode:
                im = im.convert(pil_mode)
            arr = np.asarray(im)
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


def _run(kind, sources, names, out, opts, opener):
    """Run one batch: native pass, Pillow fallback for non-JPEG inputs, then
    error reporting as `opts.on_error` says.  Returns the failures."""
    n = len(sources)
    results = _core.run_batch(kind, sources, out, list(range(n)), **opts.c_kwargs())
    failures = []
    fb_slots, fb_pixels, fb_premul = [], [], []
    for slot, status, msg, _w, _h, _d in results:
        if status == 0:
            continue
        if status == _core.STATUS_NOT_JPEG:
            try:
                arr = _pillow_array(opener(slot), opts.pil_mode, opts.limits, names(slot))
            except ImageDecodeError as e:
                out[slot] = 0
                failures.append(DecodeFailure(slot, names(slot), e.code, e.reason))
                continue
            fb_slots.append(slot)
            fb_pixels.append(np.ascontiguousarray(arr, dtype=np.uint8))
            # Pillow resizes RGBA premultiplied; with opaque alpha that is a
            # no-op, so only real transparency pays for it.
            fb_premul.append(opts.channels == 4 and bool((arr[..., 3] != 255).any()))
        else:
            failures.append(DecodeFailure(slot, names(slot), _core.status_code(status), msg))
    if fb_slots:
        kw = opts.c_kwargs()
        kw["dct_scaling"] = False
        res = _core.run_batch(_core.SRC_PIXELS, fb_pixels, out, fb_slots,
                              premultiply=fb_premul, **kw)
        for slot, status, msg, _w, _h, _d in res:
            if status:
                failures.append(DecodeFailure(slot, names(slot), _core.status_code(status), msg))
    failures.sort(key=lambda f: f.index)
    if failures:
        if opts.on_error == "raise":
            f = failures[0]
            raise ImageDecodeError(f.source, f.reason, f.code, f.index, failures)
        if opts.on_error == "warn":
            for f in failures:
                warnings.warn(f"fastseq: cannot decode image {f.source!r} "
                              f"(batch index {f.index}): {f.reason}; its slot is zero-filled",
                              ImageDecodeWarning, stacklevel=3)
    return failures


def load_batch(paths: Sequence, target_size, *, out=None, color_mode="rgb",
               interpolation="bilinear", dtype="uint8", rescale=None,
               offset=0.0, dct_scaling=True, keep_aspect_ratio=False,
               on_error="raise", max_pixels=DEFAULT_MAX_PIXELS,
               max_scans=DEFAULT_MAX_SCANS, allow_truncated=False,
               max_file_bytes=DEFAULT_MAX_FILE_BYTES, max_memory=DEFAULT_MAX_MEMORY,
               max_scan_pixels=DEFAULT_MAX_SCAN_PIXELS, return_failed=False):
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
    max_memory : reject a JPEG whose decode needs more bytes (libjpeg's
        coefficient buffer plus the decoded pixels, from the header, before
        any allocation; code "memory_limit"); None disables.
    max_scan_pixels : bound the work of multi-scan JPEGs: the samples each
        scan codes, summed over scans (code "work_limit"); None disables.
    All limits are on by default; README "Limits" gives the worst cases.
    return_failed : also return the list of DecodeFailure (index, source,
        code, reason) of the images that failed.
    """
    opts = _Options(**_option_args(locals()))
    if isinstance(paths, (str, bytes, os.PathLike)):
        raise TypeError("paths must be a sequence of paths, not a single path")
    paths = list(paths)
    try:
        encoded = [os.fsencode(p) for p in paths]
    except TypeError:
        bad = next(p for p in paths if not isinstance(p, (str, bytes, os.PathLike)))
        raise TypeError(f"paths must be str, bytes or os.PathLike, got {type(bad).__name__}") from None
    for p, e in zip(paths, encoded):
        if b"\0" in e:
            raise ValueError(f"path contains a NUL byte: {p!r}")
    out = _prepare_out(out, opts, len(paths))
    names = lambda i: os.fsdecode(encoded[i])   # noqa: E731
    failures = _run(_core.SRC_FILE, encoded, names, out, opts, opener=names)
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
    opts = _Options(**_option_args(locals()))
    if isinstance(buffers, (bytes, bytearray, memoryview)):
        raise TypeError("buffers must be a sequence of bytes-like objects, not a single buffer")
    buffers = list(buffers)
    for i, b in enumerate(buffers):
        _check_buffer(b, f"buffers[{i}]")
    out = _prepare_out(out, opts, len(buffers))
    failures = _run(_core.SRC_MEMORY, buffers, lambda i: f"<buffer {i}>", out, opts,
                    opener=lambda i: memoryview(buffers[i]).cast("B").tobytes())
    return (out, failures) if return_failed else out


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
    limits = _check_limits(max_pixels, max_scans, allow_truncated, max_file_bytes,
                           max_memory, max_scan_pixels)
    if isinstance(source, (str, os.PathLike)):
        name = os.fsdecode(source)
        path = os.fsencode(source)
        if b"\0" in path:
            raise ValueError(f"path contains a NUL byte: {source!r}")
        # The C reader: regular files only, size checked before reading.
        data = _core.read_file(path, limits["max_file_bytes"], name)
    else:
        name = "<buffer>"
        _check_buffer(source, "source")
        data = source
        if len(memoryview(data)) == 0:
            raise ImageDecodeError(name, "empty input", "empty")
    mode_id = None if color_mode is None else COLOR_MODES[color_mode][0]
    if _core.is_jpeg(data):
        return _core.decode_jpeg(data, mode_id, source=name, **limits)
    pil_mode = None if color_mode is None else COLOR_MODES[color_mode][2]
    return _pillow_array(memoryview(data).cast("B").tobytes() if not isinstance(data, bytes)
                         else data, pil_mode, limits, name)


def info() -> dict:
    """Versions and build facts: fastseq, libjpeg-turbo, SIMD, threads."""
    from fastseq import __version__
    import PIL

    return {
        "fastseq": __version__,
        "libjpeg_turbo": _core.libjpeg_version(),
        "simd": _core.libjpeg_simd() and not os.environ.get("JSIMD_FORCENONE"),
        "simd_built": _core.libjpeg_simd(),
        "resize_simd": _core.resize_simd(),
        "threads": get_num_threads(),
        "numpy": np.__version__,
        "pillow": PIL.__version__,
    }

