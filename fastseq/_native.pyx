# cython: language_level=3
"""Native core of fastseq: batch decode + resize on a native thread pool.

Everything that runs with the GIL released is a C call into csrc/ (declared
in csrc.pxd).  Arguments are validated, buffers acquired and task arrays
allocated before `with nogil:`; statuses are mapped to exceptions after it,
in `_error_for` only.
"""

from cpython.buffer cimport (PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE, PyBUF_WRITABLE,
                             PyBUF_FORMAT)
cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.exc cimport PyErr_CheckSignals
from libc.stdint cimport uint8_t, uint64_t
from libc.stdlib cimport calloc, free

import numpy as np

from fastseq.csrc cimport *
from fastseq.errors import ImageDecodeError

# Public constants mirrored from the C headers.
MODE_L = FS_MODE_L
MODE_RGB = FS_MODE_RGB
MODE_RGBA = FS_MODE_RGBA
MODE_CMYK = FS_MODE_CMYK
MODE_SOURCE = FS_MODE_SOURCE
DTYPE_U8 = FS_DTYPE_U8
DTYPE_F32 = FS_DTYPE_F32
SRC_FILE = FS_SRC_FILE
SRC_MEMORY = FS_SRC_MEMORY
SRC_PIXELS = FS_SRC_PIXELS
STATUS_NOT_JPEG = FS_ERR_NOT_JPEG
MAX_THREADS = FS_POOL_MAX_THREADS

# ImageDecodeError.code of every per-image status (errors.py lists them).
_CODES = {
    FS_ERR_NOMEM: "memory",
    FS_ERR_OVERFLOW: "too_large",
    FS_ERR_ARG: "internal",
    FS_ERR_IO: "io",
    FS_ERR_EMPTY: "empty",
    FS_ERR_NOT_JPEG: "not_image",
    FS_ERR_DECODE: "decode",
    FS_ERR_TRUNCATED: "truncated",
    FS_ERR_TOO_MANY_PIXELS: "too_many_pixels",
    FS_ERR_TOO_MANY_SCANS: "too_many_scans",
    FS_ERR_FILE_TOO_LARGE: "too_large",
    FS_ERR_NOT_REGULAR_FILE: "not_regular_file",
    FS_ERR_MEMORY_LIMIT: "memory_limit",
    FS_ERR_WORK_LIMIT: "work_limit",
    FS_ERR_INTERRUPTED: "interrupted",
    FS_ERR_NOT_IMAGE: "not_image",
}


def status_code(int status):
    """The ImageDecodeError.code of a C status."""
    return _CODES.get(status, "internal")


cdef _error_for(int status, const char *msg, str source, object index=None):
    """The one place where a C status becomes a Python exception."""
    reason = msg.decode("utf-8", "replace") if msg != NULL and msg[0] else ""
    if status == FS_ERR_THREAD:
        return RuntimeError("fastseq: could not start native worker threads")
    if status == FS_ERR_NOMEM and not reason:
        reason = "out of memory"
    return ImageDecodeError(source, reason or f"error {status}",
                            status_code(status), index)


@cython.auto_pickle(False)
cdef class BatchOptions:
    """A batch's options in the C form the batch driver reads (an
    fs_batch_opts), checked once when built and then reused for every
    batch.  fastseq.options.DecodeOptions builds it from validated public
    options; this checks only what the C code relies on.

    full_size: decode_image's pass (csrc/batch.h); out_mode may then be
    MODE_CMYK, and with header_only MODE_SOURCE (no output is written).
    """
    cdef fs_batch_opts c
    cdef readonly int channels
    cdef readonly size_t slot_bytes

    def __cinit__(self, int out_width, int out_height, int out_mode, int dtype, *,
                  float scale=1.0, float offset=0.0, object norm=None,
                  bint wide_gray=False, int filter=2,
                  bint dct_scaling=True, bint keep_aspect_ratio=False,
                  uint64_t max_pixels=0, int max_scans=0, bint allow_truncated=False,
                  uint64_t max_file_bytes=0, uint64_t max_memory=0,
                  uint64_t max_scan_pixels=0, bint decode_only=False,
                  bint full_size=False, bint header_only=False):
        if out_mode == FS_MODE_SOURCE and header_only and full_size:
            self.channels = 0
        elif out_mode == FS_MODE_CMYK and not full_size:
            raise ValueError("CMYK output is for full-size decodes only")
        else:
            self.channels = fs_mode_channels(out_mode)
            if self.channels == 0:
                raise ValueError("invalid output mode")
        if header_only and not full_size:
            raise ValueError("header_only needs full_size")
        if dtype not in (FS_DTYPE_U8, FS_DTYPE_F32) or (full_size and dtype != FS_DTYPE_U8):
            raise ValueError("invalid output dtype")
        if not 0 <= filter <= 5:
            raise ValueError("invalid filter")
        if out_width < 1 or out_height < 1:
            raise ValueError(f"output size must be at least 1x1, got {out_width}x{out_height}")
        self.c.out_width = out_width
        self.c.out_height = out_height
        self.c.out_mode = out_mode
        self.c.out_dtype = dtype
        self.c.scale = scale
        self.c.offset = offset
        if norm is not None:
            if dtype != FS_DTYPE_F32:
                raise ValueError("norm needs float32 output")
            _set_norm(&self.c.norm, norm, self.channels)
            self.c.has_norm = 1
        self.c.wide_gray = wide_gray
        self.c.out_row_stride = (<ptrdiff_t>out_width * self.channels
                                 * (4 if dtype == FS_DTYPE_F32 else 1))
        self.c.filter = filter
        self.c.dct_scaling = dct_scaling
        self.c.keep_aspect_ratio = keep_aspect_ratio
        self.c.decode_only = decode_only
        self.c.full_size = full_size
        self.c.header_only = header_only
        self.c.limits.max_pixels = max_pixels
        self.c.limits.max_scans = max_scans
        self.c.limits.allow_truncated = allow_truncated
        self.c.limits.max_file_bytes = max_file_bytes
        self.c.limits.max_memory = max_memory
        self.c.limits.max_scan_pixels = max_scan_pixels
        self.slot_bytes = <size_t>self.c.out_row_stride * <size_t>out_height


cdef int _set_norm(fs_chan_norm *n, object norm, int channels) except -1:
    """Fill `n` from norm = (sub, div): two sequences of `channels` float32
    values (see fs_chan_norm in csrc/resample.h)."""
    cdef int k
    sub, div = norm
    sub = np.asarray(sub, dtype=np.float32).ravel()
    div = np.asarray(div, dtype=np.float32).ravel()
    if sub.shape[0] != channels or div.shape[0] != channels:
        raise ValueError(f"norm needs {channels} values per channel, got "
                         f"{sub.shape[0]} and {div.shape[0]}")
    for k in range(4):
        n.sub[k] = sub[k] if k < channels else 0.0
        n.div[k] = div[k] if k < channels else 1.0
    return 0


# run_batch waits for the pool in slices of this length, with the GIL
# released, and looks for pending signals in between: a bound on how late
# Ctrl-C lands, on top of finishing the images already in flight.
cdef int _WAIT_SLICE_MS = 50


# Columns of run_batch's per-image augmentation rows (float64): scipy's
# (row, col) matrix and offset, then the fs_warp_params flags and values; a
# NaN shift or brightness means none.  A row with warp, both flips, shift and
# brightness all off is the identity: that image takes the direct path.
WARP_COLUMNS = ("m0", "m1", "m2", "m3", "m4", "m5", "warp", "flip_h", "flip_v",
                "shift", "shift_f32", "brightness", "photo_f32")
WARP_NCOLS = len(WARP_COLUMNS)


@cython.auto_pickle(False)
cdef class WarpOptions:
    """The per-iterator constants of Keras' augmentation (csrc/warp.h):
    interpolation order, fill mode, cval, and whether Keras' array is uint8
    (scipy rounds into it) rather than float."""
    cdef readonly int order
    cdef readonly int fill_mode
    cdef readonly str fill_mode_name
    cdef readonly double cval
    cdef readonly bint quantize_u8

    def __cinit__(self, int order, str fill_mode, double cval, bint quantize_u8):
        if order not in (0, 1):
            raise ValueError(f"order must be 0 or 1, got {order}")
        if fill_mode not in FILL_MODES:
            raise ValueError(f"fill_mode must be one of {sorted(FILL_MODES)}, got {fill_mode!r}")
        if not (cval == cval and abs(cval) != float("inf")):
            raise ValueError(f"cval must be finite, got {cval}")
        self.order = order
        self.fill_mode = FILL_MODES[fill_mode]
        self.fill_mode_name = fill_mode
        self.cval = cval
        self.quantize_u8 = quantize_u8

    def __reduce__(self):
        # Rebuilt (and re-checked) in a spawned worker.
        return (WarpOptions, (self.order, self.fill_mode_name, self.cval, self.quantize_u8))


cdef int _warp_row(fs_warp_params *p, const double *r, WarpOptions o) except -1:
    cdef int k
    for k in range(6):
        if not (r[k] == r[k] and abs(r[k]) != float("inf")):
            raise ValueError("augmentation matrix must be finite")
        p.m[k] = r[k]
    p.warp = r[6] != 0
    p.flip_h = r[7] != 0
    p.flip_v = r[8] != 0
    p.has_shift = r[9] == r[9]
    p.shift = r[9] if p.has_shift else 0.0
    p.shift_f32 = r[10] != 0
    p.has_brightness = r[11] == r[11]
    p.brightness = r[11] if p.has_brightness else 0.0
    p.photo_f32 = r[12] != 0
    p.order = o.order
    p.fill_mode = o.fill_mode
    p.cval = o.cval
    p.quantize_u8 = o.quantize_u8
    return 0


# fs_cache_result names, as run_batch reports them with `cache`.
CACHE_RESULTS = {FS_CACHE_NONE: "none", FS_CACHE_HIT: "hit",
                 FS_CACHE_HIT_FAILED: "hit_failed", FS_CACHE_ABSENT: "absent",
                 FS_CACHE_STALE: "stale", FS_CACHE_CORRUPT: "corrupt",
                 FS_CACHE_STORED: "stored", FS_CACHE_STORE_FAILED: "store_failed"}
CACHE_FORMAT = FS_CACHE_FORMAT
CACHE_HEADER = FS_CACHE_HEADER
CACHE_MAX_KEY = FS_CACHE_MAX_KEY


def run_batch(int kind, list sources, object out, list slots, BatchOptions opts,
              list premultiply=None, object warps=None, WarpOptions warp_opts=None,
              list cache=None):
    """Decode `sources` into `out[slots[i]]` on the pool, as `opts` says.

    kind: SRC_FILE (sources are bytes paths), SRC_MEMORY (bytes-like
    encoded images) or SRC_PIXELS (C-contiguous uint8 arrays (h, w, c) in the
    output mode, or float32 ones of the output size).  `out` must already
    be validated (C-contiguous, writeable, shape (N, out_height,
    out_width, c), dtype matching the options), or None with decode_only
    or header_only.  `warps`: None, or a float64 array (n, WARP_NCOLS) of
    per-image augmentation rows (WARP_COLUMNS), with `warp_opts`.  Returns
    [(slot, status, message, src_w, src_h, denom, src_mode), ...] for every
    source: the caller maps statuses to exceptions/warnings.

    `cache`: None, or for each source None or a tuple (entry_path, key,
    hit, store, probe) describing its cache entry (csrc/cache.h): entry_path
    and key bytes for an on-disk entry (else None), `hit` a uint8 buffer of
    the output size holding a memory hit's pixels (else None), `store` a
    writeable one that receives a miss's pixels in memory (else None),
    `probe` whether the disk entry is tried before decoding.  Every result
    tuple then ends with (probe result, final result, reason), the results
    named as in CACHE_RESULTS.
    """
    cdef Py_ssize_t n = len(sources), i, nbuf = 0
    cdef fs_task *tasks = NULL
    cdef Py_buffer *bufs = NULL
    cdef Py_buffer outbuf
    cdef bint have_out = False
    cdef int st
    cdef char *base = NULL
    cdef size_t slot_bytes = opts.slot_bytes
    cdef int channels = opts.channels
    cdef fs_pool_job *job = NULL
    cdef int finished = 0
    cdef fs_warp_params *wp = NULL
    cdef const double[:, ::1] wrows
    cdef const double *row
    cdef fs_cache_ref *crefs = NULL
    cdef Py_buffer *cbufs = NULL
    cdef Py_ssize_t ncbuf = 0
    cdef size_t u8_bytes = <size_t>opts.c.out_width * opts.c.out_height * channels
    if len(slots) != n:
        raise ValueError("slots and sources differ in length")
    if warps is not None:
        if warp_opts is None:
            raise ValueError("warps need warp_opts")
        if opts.c.decode_only or opts.c.full_size:
            raise ValueError("augmentation needs a resized batch (not decode_only or full_size)")
        wrows = np.ascontiguousarray(warps, dtype=np.float64)
        if wrows.shape[0] != n or wrows.shape[1] != WARP_NCOLS:
            raise ValueError(f"warps must have shape ({n}, {WARP_NCOLS}), got "
                             f"{np.shape(warps)}")
    if n == 0:
        return []
    try:
        if out is not None and not opts.c.header_only:
            PyObject_GetBuffer(out, &outbuf, PyBUF_WRITABLE)   # C-contiguous, checked by caller
            have_out = True
            base = <char *>outbuf.buf
            if <size_t>outbuf.len < slot_bytes * <size_t>(max(slots) + 1) or min(slots) < 0:
                raise ValueError("output buffer too small for the slots")
        elif not (opts.c.decode_only or opts.c.header_only):
            raise ValueError("out is required unless decode_only or header_only")
        tasks = <fs_task *>calloc(n, sizeof(fs_task))
        bufs = <Py_buffer *>calloc(n, sizeof(Py_buffer))
        if tasks == NULL or bufs == NULL:
            raise MemoryError()
        if warps is not None:
            wp = <fs_warp_params *>calloc(n, sizeof(fs_warp_params))
            if wp == NULL:
                raise MemoryError()
            for i in range(n):
                row = &wrows[i, 0]
                _warp_row(&wp[i], row, warp_opts)
                if wp[i].warp or wp[i].flip_h or wp[i].flip_v or wp[i].has_shift \
                        or wp[i].has_brightness:
                    tasks[i].warp = &wp[i]
        if cache is not None:
            if len(cache) != n:
                raise ValueError("cache and sources differ in length")
            if opts.c.decode_only or opts.c.full_size:
                raise ValueError("the cache needs a resized batch (not decode_only or full_size)")
            crefs = <fs_cache_ref *>calloc(n, sizeof(fs_cache_ref))
            cbufs = <Py_buffer *>calloc(2 * n, sizeof(Py_buffer))
            if crefs == NULL or cbufs == NULL:
                raise MemoryError()
            for i in range(n):
                c = cache[i]
                if c is None:
                    continue
                entry_path, key, hit, store, probe = c
                if entry_path is not None:
                    if not isinstance(entry_path, bytes) or not isinstance(key, bytes):
                        raise TypeError("cache entry path and key must be bytes")
                    if len(key) > FS_CACHE_MAX_KEY:
                        raise ValueError(f"cache key over {FS_CACHE_MAX_KEY} bytes")
                    crefs[i].entry_path = PyBytes_AS_STRING(entry_path)
                    crefs[i].key = <const uint8_t *>PyBytes_AS_STRING(key)
                    crefs[i].key_len = len(key)
                    crefs[i].probe = bool(probe)
                    crefs[i].store = True
                for buf, writable in ((hit, False), (store, True)):
                    if buf is None:
                        continue
                    PyObject_GetBuffer(buf, &cbufs[ncbuf],
                                       PyBUF_WRITABLE if writable else PyBUF_SIMPLE)
                    ncbuf += 1
                    if <size_t>cbufs[ncbuf - 1].len != u8_bytes:
                        raise ValueError("cached pixels must be one uint8 image of the output size")
                    if writable:
                        crefs[i].store_pixels = <uint8_t *>cbufs[ncbuf - 1].buf
                        crefs[i].store = True
                    else:
                        crefs[i].hit_pixels = <const uint8_t *>cbufs[ncbuf - 1].buf
                tasks[i].cache = &crefs[i]
        for i in range(n):
            src = sources[i]
            tasks[i].kind = kind
            tasks[i].out = (base + <size_t>slots[i] * slot_bytes) if have_out else NULL
            if kind == FS_SRC_FILE:
                if not isinstance(src, bytes):
                    raise TypeError("paths must be passed as bytes (os.fsencode)")
                tasks[i].path = PyBytes_AS_STRING(src)
            else:
                if kind == FS_SRC_PIXELS and opts.c.full_size:
                    raise ValueError("pixel sources are resized, not decoded at full size")
                PyObject_GetBuffer(src, &bufs[nbuf], PyBUF_SIMPLE)
                nbuf += 1
                tasks[i].data = <const uint8_t *>bufs[nbuf - 1].buf
                tasks[i].size = <size_t>bufs[nbuf - 1].len
                if kind == FS_SRC_PIXELS:
                    h, w, c = src.shape
                    if c != channels or src.dtype not in (np.uint8, np.float32):
                        raise ValueError("pixel source does not match the output mode")
                    if <size_t>bufs[nbuf - 1].len != <size_t>h * w * c * src.dtype.itemsize:
                        raise ValueError("pixel source must be C-contiguous")
                    tasks[i].pix_dtype = FS_DTYPE_F32 if src.dtype == np.float32 else FS_DTYPE_U8
                    tasks[i].pix_width = w
                    tasks[i].pix_height = h
                    tasks[i].pix_stride = <ptrdiff_t>w * c * src.dtype.itemsize
                    tasks[i].premultiply_alpha = bool(premultiply[i]) if premultiply else 0
        with nogil:
            st = fs_batch_submit(&opts.c, tasks, <size_t>n, &job)
        if st != FS_OK:
            raise _error_for(st, NULL, "")
        try:
            while not finished:
                with nogil:
                    finished = fs_pool_wait(job, _WAIT_SLICE_MS)
                if not finished:
                    PyErr_CheckSignals()    # Ctrl-C: raises KeyboardInterrupt
        except BaseException:
            fs_pool_cancel(job)             # images not started are skipped
            raise
        results = [(slots[i], tasks[i].status,
                    (<char *>tasks[i].msg).decode("utf-8", "replace") if tasks[i].status else "",
                    tasks[i].src_width, tasks[i].src_height, tasks[i].dct_denom,
                    tasks[i].src_mode)
                   for i in range(n)]
        if cache is not None:
            results = [r + ((CACHE_RESULTS[crefs[i].probe_result],
                             CACHE_RESULTS[crefs[i].result],
                             (<char *>crefs[i].why).decode("utf-8", "replace"))
                            if tasks[i].cache != NULL else ("none", "none", ""))
                       for i, r in enumerate(results)]
        return results
    finally:
        if job != NULL:
            # Waits for the images in flight: the workers write into `out`
            # and read the buffers released below.  `opts` outlives this
            # call: the caller holds it.
            with nogil:
                fs_pool_release(job)
        for i in range(nbuf):
            PyBuffer_Release(&bufs[i])
        for i in range(ncbuf):
            PyBuffer_Release(&cbufs[i])
        if have_out:
            PyBuffer_Release(&outbuf)
        free(bufs)
        free(cbufs)
        free(crefs)
        free(tasks)
        free(wp)


def cache_write_failure(bytes entry_path, bytes key, int status, str message):
    """Write the on-disk cache entry of an image whose decode failed (the
    Pillow fallback's failures; the C pass writes its own), as
    fs_cache_write.  Returns "" or the reason it could not be written."""
    cdef char why[FS_MSG_LEN]
    cdef bytes msg = message.encode("utf-8", "replace")[:FS_MSG_LEN - 1]
    cdef int st
    if status <= 0:
        raise ValueError("a failure's status is a positive fs_status")
    if len(key) > FS_CACHE_MAX_KEY:
        raise ValueError(f"cache key over {FS_CACHE_MAX_KEY} bytes")
    st = fs_cache_write(PyBytes_AS_STRING(entry_path), <const uint8_t *>PyBytes_AS_STRING(key),
                        len(key), status, 0, 0, 0, <const uint8_t *>PyBytes_AS_STRING(msg),
                        len(msg), why)
    return "" if st == FS_OK else why.decode("utf-8", "replace")


def cache_read(bytes entry_path, bytes key, int width, int height, int channels):
    """Probe one on-disk cache entry (fs_cache_read), for tests and tools:
    (result name, pixels (height, width, channels) uint8 or None, status,
    message, reason)."""
    cdef char why[FS_MSG_LEN]
    cdef char msg[FS_MSG_LEN]
    cdef int status = 0, r
    cdef uint8_t[:, :, ::1] view
    if width < 1 or height < 1 or channels not in (1, 3, 4):
        raise ValueError("invalid image shape")
    pix = np.empty((height, width, channels), np.uint8)
    view = pix
    cdef const char *cpath = PyBytes_AS_STRING(entry_path)
    cdef const uint8_t *ckey = <const uint8_t *>PyBytes_AS_STRING(key)
    cdef size_t klen = len(key)
    msg[0] = 0
    with nogil:
        r = fs_cache_read(cpath, ckey, klen, width, height, channels, &view[0, 0, 0],
                          &status, msg, why)
    return (CACHE_RESULTS[r], pix if r == FS_CACHE_HIT else None, status,
            msg.decode("utf-8", "replace") if r == FS_CACHE_HIT_FAILED else "",
            why.decode("utf-8", "replace"))


def cache_checksum(object data):
    """fs_cache_checksum of a bytes-like object (for tests and the
    benchmark of its cost), GIL released."""
    cdef Py_buffer b
    cdef uint64_t h
    PyObject_GetBuffer(data, &b, PyBUF_SIMPLE)
    try:
        with nogil:
            h = fs_cache_checksum(<const uint8_t *>b.buf, <size_t>b.len, 0)
    finally:
        PyBuffer_Release(&b)
    return h


def read_file(bytes path, uint64_t max_file_bytes=0, str source=""):
    """The bytes of the regular file at `path` (os.fsencode'd), read by the
    same C code as load_batch: a FIFO, device, socket, directory or /proc
    pseudo-file, or a file over max_file_bytes, raises ImageDecodeError
    before anything is allocated."""
    cdef uint8_t *buf = NULL
    cdef size_t cap = 0, n = 0
    cdef char msg[FS_MSG_LEN]
    cdef const char *cpath = PyBytes_AS_STRING(path)
    cdef int st
    msg[0] = 0
    try:
        with nogil:
            st = fs_read_file(cpath, max_file_bytes, 0, &buf, &cap, &n, msg)
        if st != FS_OK:
            raise _error_for(st, msg, source)
        return PyBytes_FromStringAndSize(<char *>buf, n)
    finally:
        free(buf)


def set_num_threads(object n):
    """Resize the pool; n: an int in 1..MAX_THREADS (any size of int is
    checked here, before the C int conversion could overflow)."""
    cdef int st, k
    if not 1 <= n <= FS_POOL_MAX_THREADS:
        raise ValueError(f"number of threads must be between 1 and {FS_POOL_MAX_THREADS}, got {n}")
    k = n
    with nogil:
        st = fs_pool_set_threads(k)
    if st != FS_OK:
        raise _error_for(st, NULL, "")


def get_num_threads():
    """The pool size the next batch uses (in a forked child: its share of
    the parent's threads, see set_num_threads in threads.py)."""
    return fs_pool_get_threads()


def pool_stats():
    """The current pool's {'live_threads', 'peak_busy', 'tasks_run',
    'tasks_skipped'} and this process's 'pools_created', for tests and
    diagnostics."""
    cdef fs_pool_info info
    fs_pool_stats(&info)
    return {"live_threads": info.live_threads, "peak_busy": info.peak_busy,
            "pools_created": info.pools_created, "tasks_run": info.tasks_run,
            "tasks_skipped": info.tasks_skipped}


def _debug_crash_in_worker(int sig):
    """Test only: raise signal `sig` (SEGV, BUS, FPE, ILL or ABRT) on a pool
    worker thread.  Ends the process unless a handler catches it."""
    cdef int st
    with nogil:
        st = fs_pool_debug_crash(sig)
    if st == FS_ERR_ARG:
        raise ValueError(f"not a crash signal: {sig}")
    if st != FS_OK:
        raise _error_for(st, NULL, "")


def libjpeg_version():
    return fs_jpeg_version().decode("ascii")


def libpng_version():
    return fs_png_version().decode("ascii")


def zlib_version():
    return fs_zlib_version().decode("ascii")


def libwebp_version():
    return fs_webp_version().decode("ascii")


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


# ---------------------------------------------------------------------------
# Test-only: the resampler's plan (csrc/resample.h, fs_resize_plan), read-only.

cdef _plan_axis(const fs_resize_axis *ax):
    """One axis as numpy arrays: absolute first source sample and count per
    output, and the (out_size, ksize) fixed-point coefficients; None when the
    axis is not resampled."""
    cdef Py_ssize_t i, t, n = ax.out_size
    if ax.ksize == 0:
        return None
    first = np.empty(n, np.int64)
    count = np.empty(n, np.int64)
    coeffs = np.zeros((n, ax.ksize), np.int32)
    for i in range(n):
        first[i] = ax.span0 + ax.bounds[2 * i]
        count[i] = ax.bounds[2 * i + 1]
        for t in range(ax.bounds[2 * i + 1]):
            coeffs[i, t] = ax.coeffs[i * ax.ksize + t]
    return {"ksize": ax.ksize, "scale": ax.scale, "support": ax.support,
            "span": (ax.span0, ax.span1), "first": first, "count": count,
            "coeffs": coeffs}


def _resize_plan(int src_w, int src_h, int channels, box, int filter,
                 int out_w, int out_h, *, bint premultiply=False,
                 size_t src_pad=0):
    """The plan fs_resize_u8 would run for this geometry (a source of
    contiguous rows), as a dict; for tests.  The coefficients of output i
    apply to source samples first[i] .. first[i] + count[i] - 1."""
    cdef fs_resample_scratch scratch
    cdef fs_resize_plan plan
    cdef double b[4]
    cdef int st
    if channels not in (1, 3, 4) or not 1 <= filter <= 5:
        raise ValueError("channels must be 1, 3 or 4 and filter 1..5")
    box = tuple(box)
    if len(box) != 4:
        raise ValueError("box must have 4 coordinates")
    for i in range(4):
        b[i] = box[i]
    fs_resample_scratch_init(&scratch)
    try:
        st = fs_resize_plan_init(&plan, src_w, src_h, channels,
                                 <ptrdiff_t>src_w * channels, src_pad, b, filter,
                                 premultiply, out_w, out_h, &scratch)
        if st != FS_OK:
            raise _error_for(st, NULL, "resize plan")
        if plan.h_quads > 0:
            h_kernel = "quads"
        elif plan.h_xend > 0:
            h_kernel = "pixels"
        else:
            h_kernel = "scalar"
        return {"vertical_first": bool(plan.vertical_first),
                "premultiply": bool(plan.premultiply),
                "h": _plan_axis(&plan.h), "v": _plan_axis(&plan.v),
                "h_kernel": h_kernel,
                "v_kernel": "avx2" if plan.v_packed != NULL else "scalar",
                "tmp_bytes": plan.tmp_bytes, "tmp2_bytes": plan.tmp2_bytes}
    finally:
        fs_resample_scratch_free(&scratch)


def warp_simd():
    """The instruction set of fastseq's uint8 affine warp: "avx2" or "none"."""
    return _RESIZE_SIMD_NAMES[fs_warp_simd()]


def set_warp_simd(bint enable):
    """Use the SIMD warp when the CPU has one (True), or the scalar code
    (False).  Results are identical (both equal scipy bit for bit); this
    exists for tests and benchmarks.  Returns the instruction set now in
    use."""
    return _RESIZE_SIMD_NAMES[fs_warp_set_simd(enable)]


# ---------------------------------------------------------------------------
# Keras' augmentation of one image (csrc/warp.h), for fastseq.augment.

FILL_MODES = {"constant": FS_FILL_CONSTANT, "nearest": FS_FILL_NEAREST,
              "reflect": FS_FILL_REFLECT, "wrap": FS_FILL_WRAP}


def warp_affine(object src, object out, object matrix, *, bint warp=True,
                bint flip_h=False, bint flip_v=False, int order=1,
                str fill_mode="nearest", double cval=0.0,
                bint quantize_u8=False, object shift=None, bint shift_f32=True,
                object brightness=None, bint photo_f32=True,
                float scale=1.0, float offset=0.0, object norm=None):
    """Run fs_warp_affine on one image, on the calling thread, GIL released.

    src: C-contiguous (h, w, c) uint8 or float32 array, c in 1, 3, 4; out:
    C-contiguous writeable (H, W, c) uint8 or float32 array (not sharing
    memory with src); matrix: 6 floats, scipy's (row, col) matrix and offset
    (see csrc/warp.h for every other argument; `norm`: None or (sub, div),
    fs_chan_norm, float32 `out` only).  Writes `out`; returns True
    when the brightness step rescaled values outside [0, 255].
    """
    cdef fs_warp_params p
    cdef fs_dst dst
    cdef fs_chan_norm cnorm
    cdef fs_warp_scratch scratch
    cdef const uint8_t[:, :, ::1] s8
    cdef const float[:, :, ::1] s32
    cdef uint8_t[:, :, ::1] o8
    cdef float[:, :, ::1] o32
    cdef bint is_f32
    cdef int st, k, w, h, c, rescaled = 0
    cdef ptrdiff_t stride
    cdef const void *sp = NULL
    if not isinstance(src, np.ndarray) or not isinstance(out, np.ndarray):
        raise TypeError("src and out must be numpy arrays")
    if src.ndim != 3 or out.ndim != 3:
        raise ValueError(f"src and out must be (height, width, channels), got "
                         f"{src.shape} and {out.shape}")
    if src.shape[0] < 1 or src.shape[1] < 1 or out.shape[0] < 1 or out.shape[1] < 1:
        raise ValueError(f"src and out must be at least 1x1, got {src.shape} and {out.shape}")
    if src.dtype == np.uint8:
        is_f32 = False
        s8 = src
        sp = &s8[0, 0, 0]
    elif src.dtype == np.float32:
        is_f32 = True
        s32 = src
        sp = &s32[0, 0, 0]
    else:
        raise TypeError(f"src must be uint8 or float32, got {src.dtype}")
    h, w, c = src.shape
    if c not in (1, 3, 4) or out.shape[2] != c:
        raise ValueError(f"channels must be 1, 3 or 4 and equal in src and out, "
                         f"got {src.shape} and {out.shape}")
    if np.shares_memory(src, out):
        raise ValueError("src and out must not overlap")
    if out.dtype == np.uint8:
        o8 = out
        dst.data = &o8[0, 0, 0]
        dst.dtype = FS_DTYPE_U8
        dst.row_stride = <ptrdiff_t>out.shape[1] * c
    elif out.dtype == np.float32:
        o32 = out
        dst.data = &o32[0, 0, 0]
        dst.dtype = FS_DTYPE_F32
        dst.row_stride = <ptrdiff_t>out.shape[1] * c * 4
    else:
        raise TypeError(f"out must be uint8 or float32, got {out.dtype}")
    dst.width = out.shape[1]
    dst.height = out.shape[0]
    dst.channels = c
    dst.scale = scale
    dst.offset = offset
    dst.norm = NULL
    if norm is not None:
        if out.dtype != np.float32:
            raise ValueError("norm needs a float32 out")
        _set_norm(&cnorm, norm, c)
        dst.norm = &cnorm
    if fill_mode not in FILL_MODES:
        raise ValueError(f"fill_mode must be one of {sorted(FILL_MODES)}, got {fill_mode!r}")
    if order not in (0, 1):
        raise ValueError(f"order must be 0 or 1, got {order}")
    m = [float(v) for v in matrix]
    if len(m) != 6:
        raise ValueError(f"matrix must have 6 entries, got {len(m)}")
    for k in range(6):
        p.m[k] = m[k]
    p.warp = warp
    p.flip_h = flip_h
    p.flip_v = flip_v
    p.order = order
    p.fill_mode = FILL_MODES[fill_mode]
    p.cval = cval
    p.quantize_u8 = quantize_u8
    p.has_shift = shift is not None
    p.shift = float(shift) if shift is not None else 0.0
    p.shift_f32 = shift_f32
    p.has_brightness = brightness is not None
    p.brightness = float(brightness) if brightness is not None else 0.0
    p.photo_f32 = photo_f32
    stride = <ptrdiff_t>w * c * (4 if is_f32 else 1)
    fs_warp_scratch_init(&scratch)
    with nogil:
        if is_f32:
            st = fs_warp_affine_f32(<const float *>sp, w, h, c, stride, &p, &dst, &scratch)
        else:
            st = fs_warp_affine_u8(<const uint8_t *>sp, w, h, c, stride, &p, &dst, &scratch)
        rescaled = scratch.brightness_rescaled
        fs_warp_scratch_free(&scratch)
    if st == FS_ERR_ARG:
        # Only what the kernel alone checks: a non-finite matrix, a transform
        # reaching beyond 2**52 pixels, warp=False with differing sizes.
        raise _error_for(st, b"invalid warp arguments (non-finite, beyond 2**52 "
                             b"pixels, or sizes differ without a warp)", "<warp>")
    if st != FS_OK:
        raise _error_for(st, NULL, "<warp>")
    return bool(rescaled)


def _brightness_u8(int v, float factor):
    """Test only: fs_brightness_u8, PIL's blend of one sample with black."""
    if not 0 <= v <= 255:
        raise ValueError("v must be in 0..255")
    return fs_brightness_u8(<uint8_t>v, factor)


def set_resize_pass_order(int order):
    """Reproduce this Pillow's resize pass order (0: Pillow 9.2-12.2,
    1: Pillow 12.3, 2: Pillow 13; see csrc/resample.c).  fastseq.batch sets
    it once, from the installed Pillow; returns the order now in force."""
    if order not in (0, 1, 2):
        raise ValueError(f"pass order must be 0, 1 or 2, got {order}")
    return fs_resample_set_pass_order(order)


def resize_pass_order():
    """The Pillow resize pass order in force (see set_resize_pass_order)."""
    return fs_resample_set_pass_order(-1)


# -- recycled batch buffers (csrc/bufpool.h) -----------------------------------

@cython.final
cdef class BatchBuffer:
    """`nbytes` writable bytes from the batch-buffer pool, exported through
    the buffer protocol (1-D uint8).  Its memory goes back to the pool when
    this object dies, i.e. when the last array viewing it is gone, so a
    buffer is never handed out while anything can still read it."""
    cdef void *ptr
    cdef size_t cap
    cdef Py_ssize_t nbytes
    cdef Py_ssize_t shape[1]
    cdef Py_ssize_t strides[1]

    def __cinit__(self, Py_ssize_t nbytes):
        if nbytes <= 0:
            raise ValueError("a batch buffer needs nbytes > 0")
        self.ptr = fs_bufpool_get(<size_t>nbytes, &self.cap)
        if self.ptr == NULL:
            raise MemoryError(f"cannot allocate a batch buffer of {nbytes} bytes")
        self.nbytes = nbytes
        self.shape[0] = nbytes
        self.strides[0] = 1

    def __dealloc__(self):
        fs_bufpool_put(self.ptr, self.cap)
        self.ptr = NULL

    def __getbuffer__(self, Py_buffer *view, int flags):
        view.buf = self.ptr
        view.obj = self
        view.len = self.nbytes
        view.readonly = 0
        view.itemsize = 1
        view.format = NULL
        if flags & PyBUF_FORMAT:
            view.format = b"B"
        view.ndim = 1
        view.shape = self.shape
        view.strides = self.strides
        view.suboffsets = NULL
        view.internal = NULL

    def __releasebuffer__(self, Py_buffer *view):
        pass

    def __reduce__(self):
        raise TypeError("a BatchBuffer is not picklable (pickle the array viewing it)")


def bufpool_set_limit(object nbytes):
    """Keep at most `nbytes` of freed batch buffers for reuse (0: none)."""
    if not isinstance(nbytes, int) or isinstance(nbytes, bool) or nbytes < 0:
        raise ValueError(f"the buffer pool limit must be an int >= 0, got {nbytes!r}")
    fs_bufpool_set_limit(<size_t>min(nbytes, <object>(<size_t>-1)))


def bufpool_stats():
    """The pool's kept buffers and bytes, and how many buffers were reused
    and newly allocated since the process started."""
    cdef fs_bufpool_info info
    fs_bufpool_stats(&info)
    return {"kept_buffers": info.kept_buffers, "kept_bytes": info.kept_bytes,
            "limit": fs_bufpool_limit(), "reused": info.reused,
            "allocated": info.allocated}
