/*
 * Pillow-compatible resampling of 8-bit images, written straight into an
 * output slot (uint8, or float32 with a fused affine rescale).
 */
#ifndef FS_RESAMPLE_H
#define FS_RESAMPLE_H

#include "fs_common.h"

/* Grow-only scratch memory owned by one thread and reused across images, so
 * that the steady state performs no allocation. */
typedef struct {
    void *coeffs;        /* horizontal + vertical fixed-point coefficients,
                            their double-precision work row, and one row of
                            32-bit vertical-pass accumulators */
    size_t coeffs_cap;
    int *bounds;         /* (xmin, count) pairs for both axes (NEAREST: the
                            source column of each output column) */
    size_t bounds_cap;
    uint8_t *tmp;        /* rows between the two passes */
    size_t tmp_cap;
    uint8_t *tmp2;       /* u8 staging rows, the packed row pair of the
                            horizontal pass, premultiplied-alpha source */
    size_t tmp2_cap;
} fs_resample_scratch;

void fs_resample_scratch_init(fs_resample_scratch *s);
void fs_resample_scratch_free(fs_resample_scratch *s);

/* Where the resized image goes: `height` rows of `width` pixels of
 * `channels` samples, rows `row_stride` bytes apart, samples contiguous.
 * For FS_DTYPE_F32 each 8-bit result v is written as (float)v * scale + offset
 * (no fused multiply-add, so it equals numpy's float32 `v * scale + offset`). */
typedef struct {
    void *data;
    int width, height, channels;
    ptrdiff_t row_stride;
    int dtype;            /* fs_dtype */
    float scale, offset;
} fs_dst;

/*
 * Resize the region `box` = {x0, y0, x1, y1} (source pixel coordinates,
 * floats, as Pillow's `Image.resize(size, filter, box)`) of an 8-bit image
 * with `channels` (1, 3 or 4) interleaved samples into `dst`
 * (dst->channels == channels, or 3 for a 1-channel source: an L image
 * written as RGB, equal to Pillow's convert("RGB") then resize, computed on
 * one channel).  Results equal Pillow's
 * `Image.resize((dst->width, dst->height), filter, box)` exactly, including
 * FS_FILTER_NEAREST (Pillow's affine nearest path).  With
 * `premultiply_alpha` (4 channels only) the image is resampled as Pillow's
 * "RGBa" and converted back, as Pillow does for RGBA images; like Pillow,
 * FS_FILTER_NEAREST ignores it.  `src` and `dst->data` must not overlap.
 * For FS_DTYPE_F32, dst->data and dst->row_stride must be multiples of 4.
 * A box Pillow rejects (negative origin, beyond the image, x1 < x0 or
 * y1 < y0), or a NaN coordinate, gives FS_ERR_ARG.
 * `src_pad` is how many bytes after the end of the last source row
 * (src + (src_h - 1) * src_stride + src_w * channels) may be read, never
 * written; 0 if none.  The SIMD kernels read up to 15 bytes past the
 * samples they use, and with FS_RESIZE_READ_PAD or more they stay
 * vectorised up to the last pixel of every row; their values never affect the result.
 * Returns FS_OK, FS_ERR_NOMEM, FS_ERR_OVERFLOW or FS_ERR_ARG.
 */
/* Spare readable bytes after a source's last row that let the SIMD
 * windows (16 bytes, at most 15 past the last sample used) run to the end of
 * every row: pass at least this as src_pad when the buffer has them. */
#define FS_RESIZE_READ_PAD 16

int fs_resize_u8(const uint8_t *src, int src_w, int src_h, int channels,
                 ptrdiff_t src_stride, size_t src_pad, const double box[4],
                 int filter,
                 int premultiply_alpha, const fs_dst *dst,
                 fs_resample_scratch *scratch);

/* The SIMD level the resampler uses (FS_SIMD_NONE = 0 or FS_SIMD_AVX2 = 1,
 * see resample_simd.h), detected from the CPU on first use.
 * fs_resample_set_simd(0) forces the scalar code and (1) restores the
 * detected level; both return the level now in force.  Results are
 * identical either way; the switch exists so tests can check that. */
int fs_resample_simd(void);
int fs_resample_set_simd(int enable);

/* Which Pillow's resize pass order to reproduce (see resample.c, "Pass
 * order"); fastseq/core.py sets it from the installed Pillow's version.
 * An unknown value changes nothing; returns the order now in force. */
enum {
    FS_PASS_ORDER_PILLOW_9 = 0,     /* Pillow 9.2 - 12.2: horizontal first */
    FS_PASS_ORDER_PILLOW_12_3 = 1,  /* Pillow 12.3: tall images vertical first */
    FS_PASS_ORDER_PILLOW_13 = 2     /* Pillow 13 (default) */
};
int fs_resample_set_pass_order(int order);

/*
 * Pillow's colour conversions, row by row, used after a JPEG decode:
 * FS_MODE_RGB -> FS_MODE_L, FS_MODE_CMYK -> FS_MODE_RGB / FS_MODE_RGBA /
 * FS_MODE_L.  `in` and `out` may be the same buffer (every conversion shrinks
 * or keeps the pixel size, and reads each pixel before writing it).
 * Returns FS_OK or FS_ERR_ARG for a pair not listed.
 */
int fs_convert_rows(const uint8_t *in, ptrdiff_t in_stride, int in_mode,
                    uint8_t *out, ptrdiff_t out_stride, int out_mode,
                    int width, int height);

#endif
