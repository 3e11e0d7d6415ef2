# Declarations of fastseq's own C core (csrc/), the only C library the
# Cython layer calls.  libjpeg itself is used from C only (csrc/jpeg_decode.c).
from libc.stdint cimport uint8_t, uint64_t

cdef extern from "fs_common.h" nogil:
    ctypedef enum fs_status:
        FS_OK
        FS_ERR_NOMEM
        FS_ERR_OVERFLOW
        FS_ERR_ARG
        FS_ERR_IO
        FS_ERR_EMPTY
        FS_ERR_NOT_JPEG
        FS_ERR_DECODE
        FS_ERR_TRUNCATED
        FS_ERR_TOO_MANY_PIXELS
        FS_ERR_TOO_MANY_SCANS
        FS_ERR_THREAD
    ctypedef enum fs_mode:
        FS_MODE_L
        FS_MODE_RGB
        FS_MODE_RGBA
        FS_MODE_CMYK
    ctypedef enum fs_dtype:
        FS_DTYPE_U8
        FS_DTYPE_F32
    int FS_MSG_LEN
    int fs_mode_channels(int mode)
    int fs_mul_size(size_t a, size_t b, size_t *out)

cdef extern from "jpeg_decode.h" nogil:
    ctypedef struct fs_jpeg:
        pass
    ctypedef struct fs_limits:
        uint64_t max_pixels
        int max_scans
        int allow_truncated
    ctypedef struct fs_jpeg_info:
        int width, height, components, mode, progressive
    int fs_is_jpeg(const uint8_t *data, size_t len)
    fs_jpeg *fs_jpeg_new()
    void fs_jpeg_free(fs_jpeg *j)
    int fs_jpeg_read_header(fs_jpeg *j, const uint8_t *data, size_t len,
                            const fs_limits *limits, fs_jpeg_info *info,
                            char *msg, size_t msglen)
    int fs_jpeg_decode(fs_jpeg *j, int denom, int out_mode, uint8_t *out,
                       ptrdiff_t stride, char *msg, size_t msglen)
    void fs_jpeg_abort(fs_jpeg *j)
    const char *fs_jpeg_version()
    int fs_jpeg_simd()

cdef extern from "resample.h" nogil:
    int fs_resample_simd()
    int fs_resample_set_simd(int enable)
    int fs_resample_set_pass_order(int order)
    int fs_convert_rows(const uint8_t *inp, ptrdiff_t in_stride, int in_mode,
                        uint8_t *out, ptrdiff_t out_stride, int out_mode,
                        int width, int height)

cdef extern from "pool.h" nogil:
    int FS_POOL_MAX_THREADS
    int fs_pool_set_threads(int n)
    int fs_pool_get_threads()
    void fs_pool_stats(int *live_threads, int *peak_busy, int *pools_created)

cdef extern from "batch.h" nogil:
    ctypedef enum fs_src_kind:
        FS_SRC_FILE
        FS_SRC_MEMORY
        FS_SRC_PIXELS
    ctypedef struct fs_task:
        int kind
        const char *path
        const uint8_t *data
        size_t size
        int pix_width, pix_height
        ptrdiff_t pix_stride
        int premultiply_alpha
        void *out
        int status
        int src_width, src_height
        int dct_denom
        char msg[320]
    ctypedef struct fs_batch_opts:
        int out_width, out_height, out_mode, out_dtype
        float scale, offset
        ptrdiff_t out_row_stride
        int filter
        int dct_scaling
        int keep_aspect_ratio
        int decode_only
        fs_limits limits
    int fs_batch_run(const fs_batch_opts *opts, fs_task *tasks, size_t n)
