# Declarations of fastseq's own C core (csrc/), the only C library the
# Cython layer calls.  libjpeg itself is used from C only (csrc/jpeg_decode.c).
from libc.stdint cimport int32_t, uint8_t, uint32_t, uint64_t

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
        FS_ERR_INTERRUPTED
        FS_ERR_FILE_TOO_LARGE
        FS_ERR_NOT_REGULAR_FILE
        FS_ERR_MEMORY_LIMIT
        FS_ERR_WORK_LIMIT
        FS_ERR_NOT_IMAGE
    ctypedef enum fs_mode:
        FS_MODE_L
        FS_MODE_RGB
        FS_MODE_RGBA
        FS_MODE_CMYK
    ctypedef enum fs_dtype:
        FS_DTYPE_U8
        FS_DTYPE_F32
    enum: FS_MSG_LEN
    int fs_mode_channels(int mode)

cdef extern from "jpeg_decode.h" nogil:
    ctypedef struct fs_limits:
        uint64_t max_pixels
        int max_scans
        int allow_truncated
        uint64_t max_file_bytes
        uint64_t max_memory
        uint64_t max_scan_pixels
    const char *fs_jpeg_version()
    int fs_jpeg_simd()

cdef extern from "png_decode.h" nogil:
    const char *fs_png_version()
    const char *fs_zlib_version()

cdef extern from "webp_decode.h" nogil:
    const char *fs_webp_version()


cdef extern from "resample.h" nogil:
    ctypedef struct fs_chan_norm:
        float sub[4]
        float div[4]
    ctypedef struct fs_dst:
        void *data
        int width, height, channels
        ptrdiff_t row_stride
        int dtype
        float scale, offset
        const fs_chan_norm *norm
    ctypedef struct fs_resample_scratch:
        pass
    void fs_resample_scratch_init(fs_resample_scratch *s)
    void fs_resample_scratch_free(fs_resample_scratch *s)
    ctypedef struct fs_resize_axis:
        int in_size, out_size, ksize
        double scale, support
        int span0, span1
        const int *bounds
        const int32_t *coeffs
    ctypedef struct fs_resize_plan:
        int channels, premultiply, vertical_first
        fs_resize_axis h, v
        int h_quads, h_xend
        const uint32_t *v_packed
        size_t tmp_bytes, tmp2_bytes
    int fs_resize_plan_init(fs_resize_plan *plan, int src_w, int src_h,
                            int channels, ptrdiff_t src_stride, size_t src_pad,
                            const double *box, int filter, int premultiply,
                            int out_w, int out_h, fs_resample_scratch *scratch)
    int fs_resample_simd()
    int fs_resample_set_simd(int enable)
    int fs_resample_set_pass_order(int order)

cdef extern from "pool.h" nogil:
    ctypedef struct fs_pool_job:
        pass
    ctypedef struct fs_pool_info:
        int live_threads, peak_busy, pools_created
        unsigned long long tasks_run, tasks_skipped
    int FS_POOL_MAX_THREADS
    int fs_pool_wait(fs_pool_job *job, int timeout_ms)
    void fs_pool_cancel(fs_pool_job *job)
    int fs_pool_release(fs_pool_job *job)
    int fs_pool_set_threads(int n)
    int fs_pool_get_threads()
    void fs_pool_stats(fs_pool_info *info)
    int fs_pool_debug_crash(int sig)

cdef extern from "warp.h" nogil:
    ctypedef enum fs_fill_mode:
        FS_FILL_CONSTANT
        FS_FILL_NEAREST
        FS_FILL_REFLECT
        FS_FILL_WRAP
    ctypedef struct fs_warp_params:
        double m[6]
        int warp
        int flip_h, flip_v
        int order
        int fill_mode
        double cval
        int quantize_u8
        int has_shift
        double shift
        int shift_f32
        int has_brightness
        double brightness
        int photo_f32
    ctypedef struct fs_warp_scratch:
        int brightness_rescaled
    void fs_warp_scratch_init(fs_warp_scratch *s)
    void fs_warp_scratch_free(fs_warp_scratch *s)
    int fs_warp_simd()
    int fs_warp_set_simd(int enable)
    int fs_warp_affine_u8(const uint8_t *src, int src_w, int src_h, int channels,
                          ptrdiff_t src_stride, const fs_warp_params *p,
                          const fs_dst *dst, fs_warp_scratch *scratch)
    int fs_warp_affine_f32(const float *src, int src_w, int src_h, int channels,
                           ptrdiff_t src_stride, const fs_warp_params *p,
                           const fs_dst *dst, fs_warp_scratch *scratch)
    uint8_t fs_brightness_u8(uint8_t v, float factor)

cdef extern from "cache.h" nogil:
    enum: FS_CACHE_FORMAT
    enum: FS_CACHE_HEADER
    enum: FS_CACHE_MAX_KEY
    ctypedef enum fs_cache_result:
        FS_CACHE_NONE
        FS_CACHE_HIT
        FS_CACHE_HIT_FAILED
        FS_CACHE_ABSENT
        FS_CACHE_STALE
        FS_CACHE_CORRUPT
        FS_CACHE_STORED
        FS_CACHE_STORE_FAILED
    ctypedef struct fs_cache_ref:
        const char *entry_path
        const uint8_t *key
        size_t key_len
        const uint8_t *hit_pixels
        uint8_t *store_pixels
        int probe
        int store
        int result
        int probe_result
        char why[FS_MSG_LEN]
    uint64_t fs_cache_checksum(const uint8_t *p, size_t n, uint64_t h)
    int fs_cache_read(const char *path, const uint8_t *key, size_t key_len,
                      int w, int h, int c, uint8_t *dst, int *status, char *msg,
                      char *why)
    int fs_cache_write(const char *path, const uint8_t *key, size_t key_len,
                       int status, int w, int h, int c, const uint8_t *payload,
                       size_t payload_len, char *why)

cdef extern from "batch.h" nogil:
    ctypedef enum fs_src_kind:
        FS_SRC_FILE
        FS_SRC_MEMORY
        FS_SRC_PIXELS
    enum: FS_MODE_SOURCE
    ctypedef struct fs_task:
        int kind
        const char *path
        const uint8_t *data
        size_t size
        int pix_width, pix_height
        ptrdiff_t pix_stride
        int premultiply_alpha
        int pix_dtype
        void *out
        const fs_warp_params *warp
        fs_cache_ref *cache
        int status
        int src_width, src_height
        int dct_denom
        int src_mode
        char msg[FS_MSG_LEN]
    ctypedef struct fs_batch_opts:
        int out_width, out_height, out_mode, out_dtype
        float scale, offset
        int wide_gray
        int has_norm
        fs_chan_norm norm
        ptrdiff_t out_row_stride
        int filter
        int dct_scaling
        int keep_aspect_ratio
        int decode_only
        int full_size
        int header_only
        fs_limits limits
    int fs_batch_submit(const fs_batch_opts *opts, fs_task *tasks, size_t n,
                        fs_pool_job **job)
    int fs_read_file(const char *path, uint64_t max_bytes, int native_only,
                     uint8_t **buf, size_t *cap, size_t *len, char *msg)


cdef extern from "bufpool.h" nogil:
    ctypedef struct fs_bufpool_info:
        size_t kept_buffers, kept_bytes
        unsigned long long reused, allocated
    void *fs_bufpool_get(size_t bytes, size_t *cap)
    void fs_bufpool_put(void *p, size_t cap)
    void fs_bufpool_set_limit(size_t bytes)
    size_t fs_bufpool_limit()
    void fs_bufpool_stats(fs_bufpool_info *info)
