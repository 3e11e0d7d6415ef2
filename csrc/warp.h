/*
 * Keras' legacy random augmentation (ImageDataGenerator.apply_transform) on
 * one image, in C: the affine warp that Keras runs through
 * scipy.ndimage.affine_transform on each channel, its flips, then its
 * channel shift and PIL brightness, written straight into an output slot.
 */
#ifndef FS_WARP_H
#define FS_WARP_H

#include "fs_common.h"
#include "resample.h"   /* fs_dst */

/* scipy.ndimage boundary modes, as Keras names them (`fill_mode`). */
typedef enum {
    FS_FILL_CONSTANT = 0,   /* cval for any coordinate outside [0, n-1] */
    FS_FILL_NEAREST = 1,    /* the coordinate clamped to [0, n-1] */
    FS_FILL_REFLECT = 2,    /* half-sample symmetric: d c b a | a b c d | d c b a */
    FS_FILL_WRAP = 3        /* scipy's 'wrap': period n - 1, not n (see warp.c) */
} fs_fill_mode;

/*
 * One image's transform.
 *
 * Geometry.  m maps OUTPUT pixel coordinates to SOURCE coordinates, in
 * numpy's (row, col) = (y, x) order, exactly as the `matrix` / `offset` pair
 * of scipy.ndimage.affine_transform:
 *     src_row = m[0] * r + m[1] * c + m[2]
 *     src_col = m[3] * r + m[4] * c + m[5]
 * for output row r and column c (Keras' `final_affine_matrix` is
 * {{m0, m1}, {m3, m4}} and its `final_offset` is {m2, m5}).  flip_h / flip_v
 * are Keras' flips, which it applies after the warp with np.flip: here they
 * only choose which (r, c) the output pixel is computed for, so the result is
 * bit-identical to warping then flipping, with no extra pass.
 * `warp` = 0 skips the resampling (Keras calls no scipy when every geometric
 * parameter is at its identity value): the source is copied (and flipped);
 * the source and output sizes must then be equal.
 *
 * Values.  Keras resamples the array it is given: a float32 array gives
 * float32 results, a uint8 array gives scipy's rounding to uint8
 * (round half up, clamped).  `quantize_u8` = 1 selects the latter.
 *
 * Photometric steps, in Keras' order, after the warp:
 *   channel shift (apply_channel_shift): x = clip(x + shift, min(x), max(x)),
 *     min and max over the whole warped image; `shift_f32` = 1 does the sum
 *     and clip in float32 (numpy's float32 array + Python float), 0 in
 *     double (an np.float64 intensity, or a uint8 array);
 *   brightness (apply_brightness_shift(x, b, scale=False)): PIL's
 *     ImageEnhance.Brightness(b) on x.astype(uint8), back as float32, with
 *     Keras' rescaling when x leaves [0, 255].  `photo_f32` says whether x
 *     is a float32 array at that point (shift_f32, or no shift on a float32
 *     array), which decides the precision of that rescaling.
 */
typedef struct {
    double m[6];
    int warp;
    int flip_h, flip_v;
    int order;              /* 0 or 1 */
    int fill_mode;          /* fs_fill_mode */
    double cval;
    int quantize_u8;
    int has_shift;
    double shift;
    int shift_f32;
    int has_brightness;
    double brightness;
    int photo_f32;
} fs_warp_params;

/* Grow-only scratch owned by one thread and reused across images. */
typedef struct {
    double *terms;          /* per-row and per-column coordinate terms */
    size_t terms_cap;
    double *vals;           /* the warped image, when photometric steps follow */
    size_t vals_cap;
    int brightness_rescaled;  /* set by each call: brightness met values
                                 outside [0, 255] and rescaled them (Keras'
                                 result then keeps a float64 array's dtype) */
} fs_warp_scratch;

void fs_warp_scratch_init(fs_warp_scratch *s);
void fs_warp_scratch_free(fs_warp_scratch *s);

/*
 * Transform a src_w x src_h image with `channels` (1, 3 or 4) interleaved
 * samples, rows src_stride bytes apart, into `dst` (dst->channels ==
 * channels; dst's size is the output size).  fs_warp_affine_u8 reads uint8
 * samples, fs_warp_affine_f32 float32 ones (src_stride a multiple of 4).
 * For a FS_DTYPE_F32 dst each result v is written as (float)v * scale +
 * offset; for FS_DTYPE_U8, v is rounded half up and clamped to 0..255 (an
 * integral v, the case Keras produces with uint8 arrays, is unchanged).
 * `src` and `dst->data` must not overlap.
 * Returns FS_OK, FS_ERR_ARG (a bad size, order, mode, channel count, a
 * non-finite matrix or cval, a transform reaching beyond +-2^52 pixels, or
 * warp = 0 with sizes that differ), FS_ERR_OVERFLOW or FS_ERR_NOMEM (checked
 * and allocated before any pixel is written).
 */
int fs_warp_affine_u8(const uint8_t *src, int src_w, int src_h, int channels,
                      ptrdiff_t src_stride, const fs_warp_params *p,
                      const fs_dst *dst, fs_warp_scratch *scratch);
int fs_warp_affine_f32(const float *src, int src_w, int src_h, int channels,
                       ptrdiff_t src_stride, const fs_warp_params *p,
                       const fs_dst *dst, fs_warp_scratch *scratch);

/* The instruction set of the uint8 warp (FS_SIMD_NONE or FS_SIMD_AVX2 of
 * resample_simd.h), and the switch that tests use to run the scalar code
 * (enable = 0) or the best the CPU has (1); returns the level in force.
 * Results are identical either way. */
int fs_warp_simd(void);
int fs_warp_set_simd(int enable);

/* PIL's Image.blend(black, im, factor) on one 8-bit sample (exposed so that
 * tests can compare it with Pillow on every value). */
uint8_t fs_brightness_u8(uint8_t v, float factor);

#endif
