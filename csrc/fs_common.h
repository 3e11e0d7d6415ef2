/*
 * fastseq C core: shared definitions.
 *
 * Every kernel in csrc/ is plain C (no Python.h).  Kernels take pointers,
 * sizes and strides, and return one of the status codes below; only the
 * Cython layer (fastseq/_native.pyx) turns a status into a Python exception,
 * in one place (`_raise_status`).
 */
#ifndef FS_COMMON_H
#define FS_COMMON_H

#include <stddef.h>
#include <stdint.h>

/* Status codes.  0 is success; everything else is an error whose text is in
 * the accompanying message buffer (when the kernel has one). */
typedef enum {
    FS_OK = 0,
    FS_ERR_NOMEM = 1,        /* malloc failed */
    FS_ERR_OVERFLOW = 2,     /* a size computation would overflow (too large) */
    FS_ERR_ARG = 3,          /* invalid argument (a bug in the caller) */
    FS_ERR_IO = 4,           /* open/read failed; message has strerror() */
    FS_ERR_EMPTY = 5,        /* zero-byte input */
    FS_ERR_NOT_JPEG = 6,     /* not a JPEG stream: use the Pillow fallback */
    FS_ERR_DECODE = 7,       /* libjpeg rejected the stream; message says why */
    FS_ERR_TRUNCATED = 8,    /* stream ends before the image is complete */
    FS_ERR_TOO_MANY_PIXELS = 9,
    FS_ERR_TOO_MANY_SCANS = 10,
    FS_ERR_THREAD = 11,      /* pthread_create or similar failed */
    FS_ERR_FILE_TOO_LARGE = 12,   /* encoded input over fs_limits.max_file_bytes */
    FS_ERR_NOT_REGULAR_FILE = 13, /* FIFO, socket, device, directory, /proc file */
    FS_ERR_MEMORY_LIMIT = 14,     /* decode would need over fs_limits.max_memory */
    FS_ERR_WORK_LIMIT = 15,       /* scans x pixels over fs_limits.max_scan_pixels */
    FS_ERR_INTERRUPTED = 16, /* the batch was cancelled (a signal) */
    FS_ERR_NOT_IMAGE = 17    /* neither fastseq nor Pillow decodes it: only
                                as a failure remembered by the cache */
} fs_status;

/* Pixel layouts (modes), named after Pillow's. FS_MODE_CMYK follows
 * Pillow's convention for JPEG: 255 minus libjpeg's raw (Adobe) values. */
typedef enum {
    FS_MODE_L = 1,
    FS_MODE_RGB = 3,
    FS_MODE_RGBA = 4,
    FS_MODE_CMYK = 5
} fs_mode;

static inline int fs_mode_channels(int mode) {
    switch (mode) {
    case FS_MODE_L: return 1;
    case FS_MODE_RGB: return 3;
    case FS_MODE_RGBA: return 4;
    case FS_MODE_CMYK: return 4;
    default: return 0;
    }
}

typedef enum { FS_DTYPE_U8 = 0, FS_DTYPE_F32 = 1 } fs_dtype;

/* Resampling filters, with Pillow's semantics (see resample.c). */
typedef enum {
    FS_FILTER_NEAREST = 0,
    FS_FILTER_BOX = 1,
    FS_FILTER_BILINEAR = 2,
    FS_FILTER_HAMMING = 3,
    FS_FILTER_BICUBIC = 4,
    FS_FILTER_LANCZOS = 5
} fs_filter;

/* Length of every error-message buffer (libjpeg's JMSG_LENGTH_MAX is 200,
 * plus room for our own context). */
#define FS_MSG_LEN 320

/* Multiply two sizes, failing instead of wrapping. */
static inline int fs_mul_size(size_t a, size_t b, size_t *out) {
    if (a != 0 && b > SIZE_MAX / a) return 0;
    *out = a * b;
    return 1;
}

#endif
