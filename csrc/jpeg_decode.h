/*
 * JPEG decoding with libjpeg-turbo's libjpeg API, with resource limits.
 *
 * A fs_jpeg handle owns one jpeg_decompress_struct and is reused for many
 * images by one thread at a time (libjpeg keeps its permanent allocations
 * across jpeg_abort_decompress), so the steady state does not re-create
 * decoder state per image.
 */
#ifndef FS_JPEG_DECODE_H
#define FS_JPEG_DECODE_H

#include "fs_common.h"

typedef struct fs_jpeg fs_jpeg;

typedef struct {
    uint64_t max_pixels;   /* width*height above this is rejected; 0 = no limit */
    int max_scans;         /* progressive scans above this are rejected; 0 = no limit */
    int allow_truncated;   /* decode truncated streams (missing rows are gray) */
} fs_limits;

typedef struct {
    int width, height;     /* full-size dimensions from the header */
    int components;        /* 1, 3 or 4 */
    int mode;              /* native fs_mode: FS_MODE_L, FS_MODE_RGB or FS_MODE_CMYK */
    int progressive;
} fs_jpeg_info;

/* Returns 1 when the buffer starts like a JPEG stream (SOI marker). */
int fs_is_jpeg(const uint8_t *data, size_t len);

fs_jpeg *fs_jpeg_new(void);
void fs_jpeg_free(fs_jpeg *j);

/* Parse the header of `data` and check the pixel limit.  On success the
 * handle holds the parsed header until fs_jpeg_decode or fs_jpeg_abort.
 * `data` must stay valid until then. */
int fs_jpeg_read_header(fs_jpeg *j, const uint8_t *data, size_t len,
                        const fs_limits *limits, fs_jpeg_info *info,
                        char *msg, size_t msglen);

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
