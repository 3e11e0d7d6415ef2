/*
 * JPEG decoding with libjpeg-turbo's libjpeg API, with resource limits.
 *
 * A fs_jpeg handle owns one jpeg_decompress_struct, used for many images by
 * one thread at a time.  Each image's header read starts from a freshly
 * created decompressor: libjpeg keeps DQT/DHT tables across
 * jpeg_abort_decompress, and a stream omitting them must not decode with the
 * previous image's (re-creating costs microseconds; measured no change in
 * throughput).
 */
#ifndef FS_JPEG_DECODE_H
#define FS_JPEG_DECODE_H

#include "fs_common.h"

typedef struct fs_jpeg fs_jpeg;

/* Resource limits of one decode; 0 disables a limit. */
typedef struct {
    uint64_t max_pixels;   /* width*height above this is rejected */
    int max_scans;         /* progressive scans above this are rejected */
    int allow_truncated;   /* decode truncated streams (missing rows are gray) */
    uint64_t max_file_bytes;   /* encoded input (file or buffer) above this is rejected */
    /* libjpeg's whole-image coefficient buffer plus the caller's pixel
     * buffer for one image (see fs_jpeg_check_memory). */
    uint64_t max_memory;
    /* Work of multi-scan streams: the sum over scans of the samples of the
     * components each scan codes (a full-resolution component counts
     * width*height, a 2x2-subsampled one a quarter of that). */
    uint64_t max_scan_pixels;
} fs_limits;

typedef struct {
    int width, height;     /* full-size dimensions from the header */
    int components;        /* 1, 3 or 4 */
    int mode;              /* native fs_mode: FS_MODE_L, FS_MODE_RGB or FS_MODE_CMYK */
    int progressive;
    /* Bytes libjpeg will allocate for its whole-image coefficient buffer
     * (multi-scan streams only; 0 for single-scan ones). */
    uint64_t coef_bytes;
} fs_jpeg_info;

/* Returns 1 when the buffer starts like a JPEG stream (SOI marker). */
int fs_is_jpeg(const uint8_t *data, size_t len);

fs_jpeg *fs_jpeg_new(void);
void fs_jpeg_free(fs_jpeg *j);

/* Parse the header of `data` and check the pixel limit, and that a
 * Huffman-coded stream holds enough bytes for the blocks it declares (else
 * FS_ERR_TRUNCATED unless limits->allow_truncated).  On success the handle
 * holds the parsed header (and the limits) until fs_jpeg_decode or
 * fs_jpeg_abort.  `data` must stay valid until then. */
int fs_jpeg_read_header(fs_jpeg *j, const uint8_t *data, size_t len,
                        const fs_limits *limits, fs_jpeg_info *info,
                        char *msg, size_t msglen);

/* Before allocating `pixel_bytes` of output for the image whose header was
 * just read: checks that they plus libjpeg's coefficient buffer fit in
 * max_memory (else releases the image and returns FS_ERR_MEMORY_LIMIT), and
 * caps libjpeg's own whole-image buffers at what is left. */
int fs_jpeg_check_memory(fs_jpeg *j, const fs_jpeg_info *info,
                         uint64_t pixel_bytes, char *msg, size_t msglen);

/* Output size at DCT scale 1/denom (denom 1, 2, 4 or 8), as libjpeg computes it. */
void fs_jpeg_scaled_size(const fs_jpeg_info *info, int denom, int *w, int *h);

/* Decode the image whose header was just read, at scale 1/denom, into `out`
 * (rows `stride` bytes apart, at least fs_mode_channels(out_mode)*w bytes
 * each).  out_mode may be the native mode, or FS_MODE_RGB / FS_MODE_RGBA for
 * a grayscale or colour (YCbCr/RGB) source; FS_MODE_CMYK only for a
 * 4-component source.  Always leaves the handle ready for the next image. */
int fs_jpeg_decode(fs_jpeg *j, int denom, int out_mode, uint8_t *out,
                   ptrdiff_t stride, char *msg, size_t msglen);

/* Release the current image without decoding it. */
void fs_jpeg_abort(fs_jpeg *j);

/* libjpeg-turbo version this was built against, e.g. "2.1.5", and whether
 * it was built with SIMD (WITH_SIMD in jconfig.h). */
const char *fs_jpeg_version(void);
int fs_jpeg_simd(void);

#endif
