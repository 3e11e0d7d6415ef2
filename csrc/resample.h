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
                            their double-precision work row and their SIMD
                            tables (a resize plan's arrays) */
    size_t coeffs_cap;
    int *bounds;         /* (xmin, count) pairs for both axes (NEAREST: the
                            source column of each output column) */
    size_t bounds_cap;
    uint8_t *tmp;        /* rows between the two passes */
    size_t tmp_cap;
    uint8_t *tmp2;       /* u8 staging rows, vertical-pass accumulators,
                            the packed row pair of the horizontal pass,
                            premultiplied-alpha source */
    size_t tmp2_cap;
} fs_resample_scratch;

void fs_resample_scratch_init(fs_resample_scratch *s);
void fs_resample_scratch_free(fs_resample_scratch *s);

/* Keras' featurewise standardisation, per channel, fused into a
 * FS_DTYPE_F32 write after the scalar scale and offset: channel c of each
 * value t becomes (t - sub[c]) / div[c], a float32 subtraction then a
 * float32 division, each rounded.  These are the operations of Keras'
 * `x -= mean; x /= std + 1e-6` on a float32 array (div[c] is numpy's float32
 * `std + 1e-6`), so the result is bit-identical to them; one multiply-add
 * `t * a_c + b_c`, or a multiply by a reciprocal, would round differently
 * (up to a few ulp).  sub[c] = 0 and div[c] = 1 leave t unchanged (both
 * operations are then exact), so centring alone or normalisation alone is
 * the same struct. */
typedef struct {
    float sub[4];
    float div[4];
} fs_chan_norm;

/* Where the resized image goes: `height` rows of `width` pixels of
 * `channels` samples, rows `row_stride` bytes apart, samples contiguous.
 * For FS_DTYPE_F32 each 8-bit result v is written as (float)v * scale + offset
 * (no fused multiply-add, so it equals numpy's float32 `v * scale + offset`),
 * then, when `norm` is not NULL, standardised per channel (fs_chan_norm).
 * `norm` is ignored for FS_DTYPE_U8. */
typedef struct {
    void *data;
    int width, height, channels;
    ptrdiff_t row_stride;
    int dtype;            /* fs_dtype */
    float scale, offset;
    const fs_chan_norm *norm;   /* NULL: none */
} fs_dst;

/* Apply `nm` to one written float32 row of n samples (n a multiple of
 * `channels`), in place.  The row is still in cache when the writers call
 * this, so the second pass costs no memory traffic; the values equal
 * computing ((float)v * scale + offset - sub) / div in one expression, since
 * every float32 operation rounds to float32 either way. */
static inline void fs_chan_norm_row(float *row, size_t n, int channels,
                                    const fs_chan_norm *nm) {
    size_t i;
    int c;
    if (channels == 1) {
        const float s = nm->sub[0], d = nm->div[0];
        for (i = 0; i < n; i++) row[i] = (row[i] - s) / d;
        return;
    }
    for (i = 0; i + (size_t)channels <= n; i += (size_t)channels)
        for (c = 0; c < channels; c++)
            row[i + c] = (row[i + c] - nm->sub[c]) / nm->div[c];
}

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

/*
 * The plan of a convolution resize (every filter but FS_FILTER_NEAREST):
 * everything that depends on the geometry and not on pixel values, computed
 * once, before any pass runs, as Pillow computes its coefficients before its
 * passes.  fs_resize_u8 plans and then executes; the plan is exposed so that
 * tests can compare it with Pillow's coefficients directly.
 *
 * One axis: output i reads the source samples span0 + bounds[2i] ...
 * span0 + bounds[2i] + bounds[2i+1] - 1 (along this axis) with the weights
 * coeffs[i * ksize + t], fixed point with 22 fractional bits (Pillow's
 * PRECISION_BITS).  Pillow's zero weights at either end of a range are left
 * out of it (they add nothing to the sum); an output whose weights are all
 * zero has count 0.  [span0, span1) covers every sample read.  An axis whose
 * size and box are unchanged is not resampled: ksize 0, no arrays, and the
 * span is the whole axis.
 */
typedef struct {
    int in_size, out_size;
    int ksize;              /* coefficient slots per output (0: not resampled) */
    double scale;           /* source pixels per output pixel */
    double support;         /* kernel half-width, in source pixels */
    int span0, span1;
    const int *bounds;      /* out_size (first - span0, count) pairs */
    const int32_t *coeffs;  /* out_size rows of ksize */
} fs_resize_axis;

typedef struct {
    int channels;           /* samples per pixel resampled */
    int src_w, src_h;
    ptrdiff_t src_stride;
    int premultiply;        /* RGBA resampled as premultiplied RGBa */
    int vertical_first;     /* both passes run, the vertical one first */
    fs_resize_axis h, v;
    /* Kernels, chosen for the SIMD level in force when planned.  Horizontal
     * pass: the first h_quads sample quads of a row by the AVX2 quad kernel,
     * or else the first h_xend pixels by the AVX2 per-pixel kernel, with
     * tables at h_packed (h_packed_stride words per quad or pixel); the
     * scalar code does the rest.  Vertical pass: v_packed (v_packed_stride
     * words per output row) for the AVX2 kernel, or NULL for scalar. */
    int h_quads, h_xend;
    const uint32_t *h_packed;
    int h_packed_stride;
    const uint32_t *v_packed;
    int v_packed_stride;
    /* The execute step's buffers: `tmp_bytes` for the rows between the
     * passes, `tmp2_bytes` laid out as two output staging rows
     * (stage_stride bytes apart), one row of 32-bit vertical accumulators at
     * off_acc, the packed row pair of the horizontal pass at off_pk, and the
     * premultiplied source at off_pre. */
    size_t tmp_bytes, tmp2_bytes;
    size_t stage_stride, off_acc, off_pk, off_pre;
} fs_resize_plan;

/*
 * Plan resizing the region `box` of a src_w x src_h source with `channels`
 * samples per pixel (rows src_stride bytes apart, src_pad readable bytes
 * after the last row, as for fs_resize_u8) to out_w x out_h with `filter`
 * (not FS_FILTER_NEAREST), premultiplied when `premultiply` (4 channels).
 * Reads no pixels.  The arrays of the plan live in `scratch` and stay valid
 * until its next use.  (fs_resize_u8 plans only after Pillow's shortcuts: a
 * same-size resize or an integral crop is a copy, not a convolution.)  Returns FS_OK, FS_ERR_NOMEM, FS_ERR_OVERFLOW (checked
 * before anything is allocated) or FS_ERR_ARG (as fs_resize_u8).
 */
int fs_resize_plan_init(fs_resize_plan *plan, int src_w, int src_h,
                        int channels, ptrdiff_t src_stride, size_t src_pad,
                        const double box[4], int filter, int premultiply,
                        int out_w, int out_h, fs_resample_scratch *scratch);

/* The SIMD level the resampler uses (FS_SIMD_NONE = 0 or FS_SIMD_AVX2 = 1,
 * see resample_simd.h), detected from the CPU on first use.
 * fs_resample_set_simd(0) forces the scalar code and (1) restores the
 * detected level; both return the level now in force.  Results are
 * identical either way; the switch exists so tests can check that. */
int fs_resample_simd(void);
int fs_resample_set_simd(int enable);

/* Which Pillow's resize pass order to reproduce (see resample.c, "Pass
 * order"); fastseq/batch.py sets it from the installed Pillow's version.
 * An unknown value changes nothing; returns the order now in force. */
enum {
    FS_PASS_ORDER_PILLOW_9 = 0,     /* Pillow 9.2 - 12.2: horizontal first */
    FS_PASS_ORDER_PILLOW_12_3 = 1,  /* Pillow 12.3: tall images vertical first */
    FS_PASS_ORDER_PILLOW_13 = 2     /* Pillow 13 (default) */
};
int fs_resample_set_pass_order(int order);

/* ITU-R 601-2 luma in 16.16 fixed point: Pillow's L24 >> 16, its RGB -> L
 * (the weights sum to 65536, so a gray pixel maps to itself). */
static inline uint8_t fs_luma(unsigned r, unsigned g, unsigned b) {
    return (uint8_t)((r * 19595u + g * 38470u + b * 7471u + 0x8000u) >> 16);
}

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
