# cython: language_level=3
"""Native core of fastseq: batch decode + resize on a native thread pool.

Everything that runs with the GIL released is a C call into csrc/ (declared
in fscore.pxd).  Arguments are validated, buffers acquired and task arrays
allocated before `with nogil:`; statuses are mapped to exceptions after it,
in `_error_for` only.
"""

from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE, PyBUF_WRITABLE
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from libc.stdint cimport uint8_t, uint64_t
from libc.stdlib cimport calloc, free
from libc.string cimport memcpy

import numpy as np

from fastseq.fscore cimport *
from fastseq.errors import ImageDecodeError, DecodeFailure

# Public constants mirrored from the C headers.
MODE_L = FS_MODE_L
MODE_RGB = FS_MODE_RGB
MODE_RGBA = FS_MODE_RGBA
MODE_CMYK = FS_MODE_CMYK
DTYPE_U8 = FS_DTYPE_U8
DTYPE_F32 = FS_DTYPE_F32
SRC_FILE = FS_SRC_FILE
SRC_MEMORY = FS_SRC_MEMORY
SRC_PIXELS = FS_SRC_PIXELS
STATUS_NOT_JPEG = FS_ERR_NOT_JPEG
MAX_THREADS = FS_POOL_MAX_THREADS

_CODES = {
    FS_ERR_NOMEM: "memory",
    FS_ERR_OVERFLOW: "too_many_pixels",
    FS_ERR_ARG: "decode",
    FS_ERR_IO: "io",
    FS_ERR_EMPTY: "empty",
    FS_ERR_NOT_JPEG: "not_image",
    FS_ERR_DECODE: "decode",
    FS_ERR_TRUNCATED: "truncated",
    FS_ERR_TOO_MANY_PIXELS: "too_many_pixels",
    FS_ERR_TOO_MANY_SCANS: "too_many_scans",
}


def status_code(int status):
    """The ImageDecodeError.code of a C status."""
    return _CODES.get(status, "decode")


cdef _error_for(int status, const char *msg, str source, object index=None):
    """The one place where a C status becomes a Python exception."""
    reason = msg.decode("utf-8", "replace") if msg != NULL and msg[0] else ""
    if status == FS_ERR_THREAD:
        return RuntimeError("fastseq: could not start native worker threads")
    if status == FS_ERR_NOMEM and not reason:
        reason = "out of memory"
    return ImageDecodeError(source, reason or f"error {status}",
                            _CODES.get(status, "decode"), index)


cdef fs_limits _limits(uint64_t max_pixels, int max_scans, bint allow_truncated):
    cdef fs_limits lim
    lim.max_pixels = max_pixels
    lim.max_scans = max_scans
    lim.allow_truncated = allow_truncated
    return lim


def run_batch(int kind, list sources, object out, list slots, *,
              int out_width, int out_height, int out_mode, int dtype,
              float scale=1.0, float offset=0.0, int filter=2,
              bint dct_scaling=True, bint keep_aspect_ratio=False,
              uint64_t max_pixels=0, int max_scans=0,
              bint allow_truncated=False, bint decode_only=False,
              list premultiply=None):
    """Decode `sources` into `out[slots[i]]` on the pool.

    kind: SRC_FILE (sources are bytes paths), SRC_MEMORY (bytes-like
    encoded images) or SRC_PIXELS (C-contiguous uint8 arrays (h, w, c) in the
    output mode).  `out` must already be validated (C-contiguous, writeable,
    shape (N, out_height, out_width, c), dtype matching `dtype`), or None with
    decode_only.  Returns [(slot, status, message, src_w, src_h, denom), ...]
    for every source: the caller maps statuses to exceptions/warnings.
    """
    cdef Py_ssize_t n = len(sources), i, nbuf = 0
    cdef fs_task *tasks = NULL
    cdef Py_buffer *bufs = NULL
    cdef Py_buffer outbuf
    cdef bint have_out = False
    cdef fs_batch_opts opts
    cdef int st
    cdef char *base = NULL
    cdef size_t slot_bytes = 0
    cdef int channels = fs_mode_channels(out_mode)
    if channels == 0 or out_mode == FS_MODE_CMYK:
        raise ValueError("invalid output mode")
    if len(slots) != n:
        raise ValueError("slots and sources differ in length")
    if out_width < 1 or out_height < 1:
        raise ValueError(f"output size must be at least 1x1, got {out_width}x{out_height}")
    opts.out_width = out_width
    opts.out_height = out_height
    opts.out_mode = out_mode
    opts.out_dtype = dtype
    opts.scale = scale
    opts.offset = offset
    opts.out_row_stride = <ptrdiff_t>out_width * channels * (4 if dtype == FS_DTYPE_F32 else 1)
    opts.filter = filter
    opts.dct_scaling = dct_scaling
    opts.keep_aspect_ratio = keep_aspect_ratio
    opts.decode_only = decode_only
    opts.limits = _limits(max_pixels, max_scans, allow_truncated)
    slot_bytes = <size_t>opts.out_row_stride * <size_t>out_height
    if n == 0:
        return []
    try:
        if out is not None:
            PyObject_GetBuffer(out, &outbuf, PyBUF_WRITABLE)   # C-contiguous, checked by caller
            have_out = True
            base = <char *>outbuf.buf
            if <size_t>outbuf.len < slot_bytes * <size_t>(max(slots) + 1) or min(slots) < 0:
                raise ValueError("output buffer too small for the slots")
        elif not decode_only:
            raise ValueError("out is required unless decode_only")
        tasks = <fs_task *>calloc(n, sizeof(fs_task))
        bufs = <Py_buffer *>calloc(n, sizeof(Py_buffer))
        if tasks == NULL or bufs == NULL:
            raise MemoryError()
        for i in range(n):
            src = sources[i]
            tasks[i].kind = kind
            tasks[i].out = (base + <size_t>slots[i] * slot_bytes) if have_out else NULL
            if kind == FS_SRC_FILE:
                if not isinstance(src, bytes):
                    raise TypeError("paths must be passed as bytes (os.fsencode)")
                tasks[i].path = PyBytes_AS_STRING(src)
            else:
                PyObject_GetBuffer(src, &bufs[nbuf], PyBUF_SIMPLE)
                nbuf += 1
                tasks[i].data = <const uint8_t *>bufs[nbuf - 1].buf
                tasks[i].size = <size_t>bufs[nbuf - 1].len
                if kind == FS_SRC_PIXELS:
                    h, w, c = src.shape
                    if c != channels or src.dtype != np.uint8:
                        raise ValueError("pixel source does not match the output mode")
                    tasks[i].pix_width = w
                    tasks[i].pix_height = h
                    tasks[i].pix_stride = <ptrdiff_t>w * c
                    tasks[i].premultiply_alpha = bool(premultiply[i]) if premultiply else 0
        with nogil:
            st = fs_batch_run(&opts, tasks, <size_t>n)
        if st != FS_OK:
            raise _error_for(st, NULL, "")
        return [(slots[i], tasks[i].status,
                 (<char *>tasks[i].msg).decode("utf-8", "replace") if tasks[i].status else "",
                 tasks[i].src_width, tasks[i].src_height, tasks[i].dct_denom)
                for i in range(n)]
    finally:
        for i in range(nbuf):
            PyBuffer_Release(&bufs[i])
        if have_out:
            PyBuffer_Release(&outbuf)
        free(bufs)
        free(tasks)


def decode_jpeg(object data, object color_mode_id=None, *, uint64_t max_pixels=0,
                int max_scans=0, bint allow_truncated=False, str source="<buffer>"):
    """Decode one JPEG at full size: an (H, W, C) uint8 array.

    color_mode_id None keeps the file's own layout (L, RGB, or CMYK in
    Pillow's inverted convention); MODE_L / MODE_RGB / MODE_RGBA convert
    with Pillow's formulas.  Runs on the calling thread, GIL released.
    """
    cdef Py_buffer buf
    cdef fs_jpeg *j = NULL
    cdef fs_jpeg_info info
    cdef fs_limits lim = _limits(max_pixels, max_scans, allow_truncated)
    cdef char msg[320]
    cdef int st, out_mode, dec_mode, dc, oc
    cdef uint8_t *tmp = NULL
    cdef uint8_t *dst
    cdef uint8_t[:, :, ::1] view
    cdef bint got = False
    msg[0] = 0
    PyObject_GetBuffer(data, &buf, PyBUF_SIMPLE)
    got = True
    try:
        j = fs_jpeg_new()
        if j == NULL:
            raise MemoryError()
        with nogil:
            st = fs_jpeg_read_header(j, <const uint8_t *>buf.buf, <size_t>buf.len,
                                     &lim, &info, msg, sizeof(msg))
        if st != FS_OK:
            raise _error_for(st, msg, source)
        out_mode = info.mode if color_mode_id is None else color_mode_id
        if out_mode not in (FS_MODE_L, FS_MODE_RGB, FS_MODE_RGBA, FS_MODE_CMYK):
            fs_jpeg_abort(j)
            raise ValueError("invalid color mode")
        if out_mode == FS_MODE_CMYK and info.mode != FS_MODE_CMYK:
            fs_jpeg_abort(j)
            raise ValueError("CMYK output needs a CMYK JPEG")
        if info.mode == FS_MODE_CMYK:
            dec_mode = FS_MODE_CMYK
        elif out_mode == FS_MODE_L and info.mode != FS_MODE_L:
            dec_mode = FS_MODE_RGB
        else:
            dec_mode = out_mode
        dc = fs_mode_channels(dec_mode)
        oc = fs_mode_channels(out_mode)
        arr = np.empty((info.height, info.width, oc), dtype=np.uint8)
        view = arr
        dst = &view[0, 0, 0] if arr.size else NULL
        if dec_mode != out_mode:
            tmp = <uint8_t *>calloc(<size_t>info.width * info.height * dc + 1, 1)
            if tmp == NULL:
                fs_jpeg_abort(j)
                raise MemoryError()
        with nogil:
            if tmp != NULL:
                st = fs_jpeg_decode(j, 1, dec_mode, tmp, <ptrdiff_t>info.width * dc,
                                    msg, sizeof(msg))
                if st == FS_OK:
                    st = fs_convert_rows(tmp, <ptrdiff_t>info.width * dc, dec_mode,
                                         dst, <ptrdiff_t>info.width * oc, out_mode,
                                         info.width, info.height)
            else:
                st = fs_jpeg_decode(j, 1, dec_mode, dst, <ptrdiff_t>info.width * oc,
                                    msg, sizeof(msg))
        if st != FS_OK:
            raise _error_for(st, msg, source)
        return arr
    finally:
        free(tmp)
        fs_jpeg_free(j)
        if got:
            PyBuffer_Release(&buf)


def is_jpeg(object data):
    cdef Py_buffer buf
    PyObject_GetBuffer(data, &buf, PyBUF_SIMPLE)
    try:
        return bool(fs_is_jpeg(<const uint8_t *>buf.buf, <size_t>buf.len))
    finally:
        PyBuffer_Release(&buf)


def set_num_threads(int n):
    cdef int st
    if n < 1 or n > FS_POOL_MAX_THREADS:
        raise ValueError(f"number of threads must be between 1 and {FS_POOL_MAX_THREADS}, got {n}")
    with nogil:
        st = fs_pool_set_threads(n)
    if st != FS_OK:
        raise _error_for(st, NULL, "")


def get_num_threads():
    return fs_pool_get_threads()


def pool_stats():
    """{'live_threads', 'peak_busy', 'pools_created'} for tests and diagnostics."""
    cdef int live = 0, peak = 0, created = 0
    fs_pool_stats(&live, &peak, &created)
    return {"live_threads": live, "peak_busy": peak, "pools_created": created}


def libjpeg_version():
    return fs_jpeg_version().decode("ascii")


def libjpeg_simd():
    return bool(fs_jpeg_simd())


_RESIZE_SIMD_NAMES = {0: "none", 1: "avx2"}


def resize_simd():
    """The instruction set of fastseq's resampler: "avx2" or "none"."""
    return _RESIZE_SIMD_NAMES[fs_resample_simd()]


def set_resize_simd(bint enable):
    """Use the SIMD resampler when the CPU has one (True), or the scalar
    code (False).  Results are identical; this exists for tests and
    benchmarks.  Returns the instruction set now in use."""
    return _RESIZE_SIMD_NAMES[fs_resample_set_simd(enable)]


def set_resize_pass_order(int order):
    """Reproduce this Pillow's resize pass order (0: Pillow 9.2-12.2,
    1: Pillow 12.3, 2: Pillow 13; see csrc/resample.c).  fastseq.core sets
    it once, from the installed Pillow; returns the order now in force."""
    if order not in (0, 1, 2):
        raise ValueError(f"pass order must be 0, 1 or 2, got {order}")
    return fs_resample_set_pass_order(order)


def resize_pass_order():
    """The Pillow resize pass order in force (see set_resize_pass_order)."""
    return fs_resample_set_pass_order(-1)
