/*
 * Pillow-compatible resampling and colour conversion for 8-bit images.
 *
 * Everything here reproduces Pillow's (9.2 to 13) integer and floating-point
 * arithmetic step for step, so that results are bit-identical to
 * `Image.resize` / `Image.convert`:
 *
 *   - Image.resize (PIL/Image.py): a same-size resize of the full image is a
 *     copy; RGBA is resized as premultiplied "RGBa" (except with NEAREST) and
 *     converted back.
 *   - _resize (_imaging.c): the box is parsed as four C floats; a box with an
 *     integral origin whose size equals the output size is a plain crop; the
 *     NEAREST filter goes through the affine transform (ImagingScaleAffine);
 *     every other filter goes through ImagingResample.
 *   - ImagingResample (libImaging/Resample.c): separable convolution, one
 *     pass per axis, in the order of the installed Pillow (see "Pass order"
 *     below), the first pass only over the source rows or columns the second
 *     reads; a pass is skipped when its axis is unchanged;
 *     coefficients are computed in double, normalised, and rounded to signed
 *     fixed point with PREC_BITS fractional bits; each pass rounds its result
 *     to 8 bits (clip to 0..255).
 *
 * The code is ours; only the arithmetic is Pillow's.  Where the order of
 * operations or the type of a literal matters for bit-exactness, a comment
 * says so.
 *
 * Build requirement: no floating-point contraction (-ffp-contract=off, as
 * setup.py passes).  With
 * fused multiply-adds the double-precision coefficients and the float32
 * `v * scale + offset` output round differently from Pillow and numpy.
 */
#include "resample.h"
#include "resample_simd.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* GCC and Clang only (the build is -std=gnu11 and the SIMD dispatch uses
 * __atomic builtins): the hot per-pixel helpers must be inlined so that their
 * compile-time channel counts unroll. */
#define FS_INLINE static inline __attribute__((always_inline))

/* M_PI is not part of C99; Pillow uses glibc's M_PI, which is this value. */
#define FS_PI 3.14159265358979323846

/*
 * Fixed-point format of the coefficients (Pillow's PRECISION_BITS).
 *
 * Bit budget of the 32-bit accumulator: a pass computes
 *     acc = 2^(PREC_BITS-1) + sum_i v_i * k_i,   v_i in 0..255,
 * where the k_i are the normalised weights of one output sample scaled by
 * 2^22 (they sum to 2^22 up to rounding).  Every partial sum, in any order,
 * lies between 2^21 + 255 * (sum of the negative k_i) and
 * 2^21 + 255 * (sum of the positive k_i).  The filter with the largest
 * negative lobes is lanczos (a=3): over all scales, phases and image-border
 * truncations its positive weights sum to at most ~1.284 (bicubic: ~1.134),
 * so |acc| <= 2^21 + 255 * 1.284 * 2^22 ~= 1.38e9 < 2^31 - 1.  Any order of
 * accumulation is therefore exact and overflow-free, which is what lets the
 * vertical pass below sum row by row instead of pixel by pixel.  (The
 * budget would tolerate positive weight sums up to ~2.007.)
 */
/* PREC_BITS and ACC_BIAS are defined in resample_simd.h.  Our own
 * horizontal-pass inputs carry FS_RESIZE_READ_PAD zeroed bytes after their
 * last row (resample.h). */
#define FS_READ_PAD FS_RESIZE_READ_PAD

/* ------------------------------------------------------------------------ */
/* Filters (Pillow's kernels, same expressions and literal types)           */

typedef double (*fs_kernel)(double);

static double k_box(double x) {
    if (x > -0.5 && x <= 0.5) return 1.0;
    return 0.0;
}

static double k_bilinear(double x) {
    if (x < 0.0) x = -x;
    if (x < 1.0) return 1.0 - x;
    return 0.0;
}

static double k_hamming(double x) {
    if (x < 0.0) x = -x;
    if (x == 0.0) return 1.0;
    if (x >= 1.0) return 0.0;
    x = x * FS_PI;
    /* 0.54f and 0.46f are float literals in Pillow: their float values,
     * widened to double, are what make the results match. */
    return sin(x) / x * (0.54f + 0.46f * cos(x));
}

static double k_bicubic(double x) {
    /* a = -0.5; (a + 2.0) and (a + 3.0) are exact in double, so writing them
     * folded keeps the same rounding. */
    if (x < 0.0) x = -x;
    if (x < 1.0) return (1.5 * x - 2.5) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * -0.5;
    return 0.0;
}

static double k_sinc(double x) {
    if (x == 0.0) return 1.0;
    x = x * FS_PI;
    return sin(x) / x;
}

static double k_lanczos(double x) {
    if (-3.0 <= x && x < 3.0) return k_sinc(x) * k_sinc(x / 3);
    return 0.0;
}

static const struct {
    fs_kernel fn;
    double support;
} FS_KERNELS[] = {
    {NULL, 0.0},           /* FS_FILTER_NEAREST: affine path, no kernel */
    {k_box, 0.5},          /* FS_FILTER_BOX */
    {k_bilinear, 1.0},     /* FS_FILTER_BILINEAR */
    {k_hamming, 1.0},      /* FS_FILTER_HAMMING */
    {k_bicubic, 2.0},      /* FS_FILTER_BICUBIC */
    {k_lanczos, 3.0},      /* FS_FILTER_LANCZOS */
};

/* ------------------------------------------------------------------------ */
/* Small helpers                                                             */

static int add_size(size_t a, size_t b, size_t *out) {
    if (b > SIZE_MAX - a) return 0;
    *out = a + b;
    return 1;
}

/* Round a byte count up to a multiple of 64 so that sub-buffers carved out
 * of one allocation stay aligned for any scalar type. */
static int align64(size_t a, size_t *out) {
    if (!add_size(a, 63, out)) return 0;
    *out &= ~(size_t)63;
    return 1;
}

/* Grow-only buffer: contents are not preserved (every caller rewrites the
 * buffer before reading it), so growing is free + malloc, not realloc. */
static int grow(void **p, size_t *cap, size_t need) {
    void *q;
    if (need <= *cap && *p != NULL) return FS_OK;
    if (need == 0) need = 1;
    q = malloc(need);
    if (q == NULL) return FS_ERR_NOMEM;
    free(*p);
    *p = q;
    *cap = need;
    return FS_OK;
}

FS_INLINE uint8_t clip_acc(int32_t s) {
    /* Pillow's clip8 table maps s >> PREC_BITS below 0 to 0 and above 255
     * to 255. */
    if (s < 0) return 0;
    if (s >= ((int32_t)256 << PREC_BITS)) return 255;
    return (uint8_t)(s >> PREC_BITS);
}

/* Pillow's MULDIV255: round(a * b / 255) for a, b in 0..255. */
FS_INLINE unsigned muldiv255(unsigned a, unsigned b) {
    unsigned t = a * b + 128;
    return ((t >> 8) + t) >> 8;
}

/*
 * Pillow's rgbA2rgba (RGBA -> premultiplied RGBa), n pixels: each colour c
 * becomes MULDIV255(c, a) = (t + (t >> 8)) >> 8 with t = c * a + 128.
 *
 * On little-endian machines a pixel is handled as one 32-bit word
 * (r | g << 8 | b << 16 | a << 24), with red and blue computed together in
 * its two 16-bit halves: t <= 255 * 255 + 128 = 65153 and
 * t + (t >> 8) <= 65407 both fit 16 bits, so the halves never carry into
 * each other, and masking t >> 8 with 0x00FF00FF drops exactly the bits
 * that crossed from the upper half.  Whole-word loads and stores let the
 * compiler vectorise the loop cleanly (byte stores would defeat it).
 */
#if defined(__BYTE_ORDER__) && defined(__ORDER_BIG_ENDIAN__) && \
    __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
static void premultiply_row(const uint8_t *restrict in,
                            uint8_t *restrict out, size_t n) {
    size_t i;
    for (i = 0; i < n; i++, in += 4, out += 4) {
        const unsigned a = in[3];
        out[0] = (uint8_t)muldiv255(in[0], a);
        out[1] = (uint8_t)muldiv255(in[1], a);
        out[2] = (uint8_t)muldiv255(in[2], a);
        out[3] = (uint8_t)a;
    }
}
#else
static void premultiply_row(const uint8_t *restrict in,
                            uint8_t *restrict out, size_t n) {
    size_t i;
    for (i = 0; i < n; i++) {
        uint32_t p, a, rb, g;
        memcpy(&p, in + 4 * i, 4);
        a = p >> 24;
        rb = (p & 0x00FF00FFu) * a + 0x00800080u;
        g = ((p >> 8) & 0xFFu) * a + 128u;
        rb = ((rb + ((rb >> 8) & 0x00FF00FFu)) >> 8) & 0x00FF00FFu;
        g = (g + (g >> 8)) & 0xFF00u; /* MULDIV255(g, a) << 8 */
        p = rb | g | (p & 0xFF000000u);
        memcpy(out + 4 * i, &p, 4);
    }
}
#endif

/*
 * Pillow's rgba2rgbA (RGBa -> RGBA): c = min(255, 255 * c / a) in integer
 * division, colours unchanged when a is 0 or 255.  A division per sample
 * would dominate an RGBA resize, so we multiply by a per-alpha reciprocal:
 * with m = floor(2^32 / a) + 1 = 2^32 / a + e, 0 < e <= 1, and
 * x = 255 * c = q * a + r (0 <= r < a, x < 2^16),
 *     x * m / 2^32 = q + r / a + x * e / 2^32 < q + (1 - 1/a) + 2^-16 < q + 1
 * because 1/a >= 1/255 > 2^-16; so (x * m) >> 32 == q == x / a.  (m needs
 * 33 bits for a = 1, hence uint64_t.)
 */
static void unpremultiply_init(uint64_t recip[256]) {
    unsigned a;
    recip[0] = 0;
    for (a = 1; a < 256; a++)
        recip[a] = ((uint64_t)1 << 32) / a + 1; /* 2^32 + 1 for a = 1 */
}

/* One pixel, in == out allowed. */
FS_INLINE void unpremultiply_px(const uint8_t *in, uint8_t *out,
                                const uint64_t *recip) {
    unsigned a = in[3];
    uint8_t r = in[0], g = in[1], b = in[2];
    if (a != 255 && a != 0) {
        const uint64_t m = recip[a];
        uint32_t v;
        v = (uint32_t)((255u * r * m) >> 32); r = (uint8_t)(v > 255 ? 255 : v);
        v = (uint32_t)((255u * g * m) >> 32); g = (uint8_t)(v > 255 ? 255 : v);
        v = (uint32_t)((255u * b * m) >> 32); b = (uint8_t)(v > 255 ? 255 : v);
    }
    out[0] = r;
    out[1] = g;
    out[2] = b;
    out[3] = (uint8_t)a;
}

/* ------------------------------------------------------------------------ */
/* Output                                                                    */

typedef struct {
    const fs_dst *dst;
    size_t row_len;       /* samples per resampled row: width * channels */
    int unpremultiply;    /* rows arrive as RGBa and leave as RGBA */
    int expand;           /* rows are L, dst is RGB: write each sample 3 times */
    uint64_t recip[256];  /* unpremultiply reciprocals */
} fs_out;

/* `C` is the number of channels resampled: dst->channels, or 1 for an L
 * image written to an RGB dst (Pillow's L -> RGB conversion copies the
 * sample into the three channels, and resampling works per channel, so
 * resampling first and copying after gives the same pixels for a third of
 * the work). */
static void out_init(fs_out *o, const fs_dst *dst, int C, int unpremultiply) {
    o->dst = dst;
    o->row_len = (size_t)dst->width * (size_t)C;
    o->unpremultiply = unpremultiply;
    o->expand = C != dst->channels;
    if (unpremultiply) unpremultiply_init(o->recip);
}

/* The u8 buffer for output row y when the final 8-bit samples can be
 * written in place (uint8 output, same channels), else NULL (the caller
 * stages the row). */
static uint8_t *out_u8_row(const fs_out *o, int y) {
    if (o->dst->dtype != FS_DTYPE_U8 || o->expand) return NULL;
    return (uint8_t *)o->dst->data + (ptrdiff_t)y * o->dst->row_stride;
}

/* Finish output row y whose 8-bit samples are in `row` (either the row
 * returned by out_u8_row, or a staging row that does not overlap dst). */
static void out_store(const fs_out *o, int y, const uint8_t *row) {
    const fs_dst *d = o->dst;
    size_t i, n = o->row_len;
    if (o->expand) {
        /* Staged L row -> RGB dst (the staging row never overlaps dst). */
        if (d->dtype == FS_DTYPE_U8) {
            uint8_t *restrict drow =
                (uint8_t *)d->data + (ptrdiff_t)y * d->row_stride;
            for (i = 0; i < n; i++)
                drow[3 * i] = drow[3 * i + 1] = drow[3 * i + 2] = row[i];
        } else {
            float *restrict frow = (float *)(void *)((char *)d->data +
                                                       (ptrdiff_t)y * d->row_stride);
            for (i = 0; i < n; i++)
                frow[3 * i] = frow[3 * i + 1] = frow[3 * i + 2] =
                    (float)row[i] * d->scale + d->offset;
            if (d->norm) fs_chan_norm_row(frow, 3 * n, 3, d->norm);
        }
        return;
    }
    if (d->dtype == FS_DTYPE_U8) {
        uint8_t *drow = (uint8_t *)d->data + (ptrdiff_t)y * d->row_stride;
        if (drow != row) memcpy(drow, row, n);
        if (o->unpremultiply)
            for (i = 0; i < n; i += 4)
                unpremultiply_px(drow + i, drow + i, o->recip);
    } else {
        /* FS_DTYPE_F32: (float)v * scale + offset as a float32 multiply
         * rounded, then a float32 add rounded, exactly numpy's
         * `u8.astype(np.float32) * scale + offset`.  This relies on the
         * build's -ffp-contract=off (no fused multiply-add); the loop is
         * plain float arithmetic, so it vectorises. */
        float *restrict frow =
            (float *)(void *)((char *)d->data + (ptrdiff_t)y * d->row_stride);
        const float scale = d->scale, offset = d->offset;
        if (o->unpremultiply) {
            for (i = 0; i < n; i += 4) {
                uint8_t px[4];
                int c;
                unpremultiply_px(row + i, px, o->recip);
                for (c = 0; c < 4; c++)
                    frow[i + c] = (float)px[c] * scale + offset;
            }
        } else {
            for (i = 0; i < n; i++) frow[i] = (float)row[i] * scale + offset;
        }
        if (d->norm) fs_chan_norm_row(frow, n, d->channels, d->norm);
    }
}

/* ------------------------------------------------------------------------ */
/* Coefficients (Pillow's precompute_coeffs + normalize_coeffs_8bpc)         */

/* One axis of the plan (fs_resize_axis, resample.h): sizes, scale, support
 * and the coefficient slots per output.  in0, in1 are floats on purpose:
 * Pillow stores the box as C floats and computes in1 - in0 in float before
 * widening. */
static int axis_setup(float in0, float in1, int in_size, int out_size,
                      double kernel_support, fs_resize_axis *ax) {
    double filterscale, c;
    ax->in_size = in_size;
    ax->out_size = out_size;
    ax->scale = (double)(in1 - in0) / out_size;
    filterscale = ax->scale < 1.0 ? 1.0 : ax->scale;
    ax->support = kernel_support * filterscale;
    c = ceil(ax->support);
    if (!(c <= (double)((INT_MAX - 1) / 2))) return FS_ERR_OVERFLOW;
    ax->ksize = (int)c * 2 + 1;
    return FS_OK;
}

/*
 * Fill ax->out_size slots of ax->ksize fixed-point coefficients and the
 * (first, count) source ranges they apply to.  `w` holds ax->ksize doubles.
 *
 * Leading and trailing coefficients that round to 0 are dropped from the
 * range: they add exactly 0 to Pillow's sum, so the result is unchanged and
 * fewer source samples (and rows) are read.
 */
static void axis_coeffs(const fs_resize_axis *ax, float in0, fs_kernel fn,
                        int32_t *restrict kk, int *restrict bounds,
                        double *restrict w) {
    const double ss = 1.0 / (ax->scale < 1.0 ? 1.0 : ax->scale);
    const int in_size = ax->in_size, out_size = ax->out_size;
    int xx;
    for (xx = 0; xx < out_size; xx++) {
        int32_t *k = kk + (size_t)xx * (size_t)ax->ksize;
        double center = in0 + (xx + 0.5) * ax->scale;
        double lo = center - ax->support + 0.5;
        double hi = center + ax->support + 0.5;
        double ww = 0.0;
        int xmin, xmax, n, x, first, last;

        /* Pillow truncates toward zero and then clamps to [0, in_size];
         * clamping in double first is equivalent and avoids converting an
         * out-of-range double to int. */
        xmin = lo < 0.0 ? 0 : (lo >= (double)in_size ? in_size : (int)lo);
        xmax = hi >= (double)in_size ? in_size : (hi < 0.0 ? 0 : (int)hi);
        n = xmax - xmin;
        if (n < 0) n = 0;
        if (n > ax->ksize) n = ax->ksize; /* cannot happen: n <= 2*ceil(s)+1 */

        for (x = 0; x < n; x++) {
            /* Same association as Pillow: (int)(x + xmin) - center + 0.5. */
            double v = fn((x + xmin - center + 0.5) * ss);
            w[x] = v;
            ww += v;
        }
        first = n;
        last = -1;
        for (x = 0; x < n; x++) {
            double v = w[x], f;
            int32_t q;
            if (ww != 0.0) v /= ww;
            f = v * (1 << PREC_BITS);
            /* Normalised weights are bounded by ~1.3 in practice; clamp
             * anyway so that a pathological weight cannot make the int
             * conversion undefined. */
            if (f > 1073741824.0) f = 1073741824.0;
            if (f < -1073741824.0) f = -1073741824.0;
            q = v < 0 ? (int32_t)(-0.5 + f) : (int32_t)(0.5 + f);
            k[x] = q;
            if (q != 0) {
                if (first == n) first = x;
                last = x;
            }
        }
        if (last < 0) {
            bounds[2 * xx] = xmin;
            bounds[2 * xx + 1] = 0;
        } else {
            if (first > 0)
                memmove(k, k + first, (size_t)(last - first + 1) * sizeof *k);
            bounds[2 * xx] = xmin + first;
            bounds[2 * xx + 1] = last - first + 1;
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Horizontal pass                                                           */

/*
 * One row: out[xx] = clip(sum_t in[bounds(xx).first + t] * k(xx)[t]) per
 * channel.  `in` is a source (or premultiplied staging) row and `out` is a
 * row of the intermediate buffer, a staging row or a dst row; these are
 * always distinct allocations (dst must not overlap src), hence restrict.
 * C is a compile-time constant at every call site (always inlined), so the
 * channel loops unroll and the accumulators live in registers.
 */
FS_INLINE void hpass_row_c(const uint8_t *restrict in,
                           uint8_t *restrict out, int x0, int out_w,
                           const int32_t *restrict kk, int ksize,
                           const int *restrict bounds, const int C) {
    int xx;
    out += (size_t)x0 * (size_t)C;
    for (xx = x0; xx < out_w; xx++) {
        const int32_t *k = kk + (size_t)xx * (size_t)ksize;
        const uint8_t *p = in + (size_t)bounds[2 * xx] * (size_t)C;
        const int n = bounds[2 * xx + 1];
        int32_t s0 = ACC_BIAS, s1 = ACC_BIAS, s2 = ACC_BIAS, s3 = ACC_BIAS;
        int t;
        for (t = 0; t < n; t++, p += C) {
            const int32_t kt = k[t];
            s0 += (int32_t)p[0] * kt;
            if (C > 1) {
                s1 += (int32_t)p[1] * kt;
                s2 += (int32_t)p[2] * kt;
            }
            if (C > 3) s3 += (int32_t)p[3] * kt;
        }
        out[0] = clip_acc(s0);
        if (C > 1) {
            out[1] = clip_acc(s1);
            out[2] = clip_acc(s2);
        }
        if (C > 3) out[3] = clip_acc(s3);
        out += C;
    }
}

/*
 * Two rows at once, two samples per multiply.  pack_rows() stores sample j
 * of both rows in one 64-bit word, row0[j] | row1[j] << 32, and
 *     s += word * (uint64_t)(int64_t)k
 * then accumulates S0 + 2^32 * S1 modulo 2^64, where S0 and S1 are the two
 * rows' true sums (bias included).  Both lie in [-2^31, 2^31) by the
 * PREC_BITS budget, so the low 32 bits of s are S0 exactly, and
 * (s - S0) >> 32 is S1 modulo 2^32, i.e. exactly S1.  Unsigned arithmetic
 * makes the wrap-around well defined.  This halves the multiplies and
 * loads of the horizontal pass, the hot loop of a downscale.
 */
FS_INLINE int32_t u32_to_s32(uint32_t u) {
    /* Two's complement reinterpretation without implementation-defined
     * conversions; compiles to nothing. */
    return u < 0x80000000u ? (int32_t)u : -(int32_t)(~u) - 1;
}

static void pack_rows(const uint8_t *restrict in0,
                      const uint8_t *restrict in1,
                      uint64_t *restrict out, size_t n) {
    size_t j;
    for (j = 0; j < n; j++) out[j] = (uint64_t)in0[j] | (uint64_t)in1[j] << 32;
}

FS_INLINE void hpass_pair_c(const uint64_t *restrict pk,
                            uint8_t *restrict out0,
                            uint8_t *restrict out1, int out_w,
                            const int32_t *restrict kk, int ksize,
                            const int *restrict bounds, const int C) {
    const uint64_t bias2 = (uint64_t)ACC_BIAS << 32 | (uint64_t)ACC_BIAS;
    int xx, c;
    for (xx = 0; xx < out_w; xx++) {
        const int32_t *k = kk + (size_t)xx * (size_t)ksize;
        const uint64_t *p = pk + (size_t)bounds[2 * xx] * (size_t)C;
        const int n = bounds[2 * xx + 1];
        uint64_t s[4];
        int t;
        s[0] = s[1] = s[2] = s[3] = bias2;
        for (t = 0; t < n; t++, p += C) {
            const uint64_t kt = (uint64_t)(int64_t)k[t];
            s[0] += p[0] * kt;
            if (C > 1) {
                s[1] += p[1] * kt;
                s[2] += p[2] * kt;
            }
            if (C > 3) s[3] += p[3] * kt;
        }
        for (c = 0; c < C; c++) {
            const int32_t lo = u32_to_s32((uint32_t)s[c]);
            const int32_t hi = u32_to_s32(
                (uint32_t)((s[c] - (uint64_t)(int64_t)lo) >> 32));
            out0[c] = clip_acc(lo);
            out1[c] = clip_acc(hi);
        }
        out0 += C;
        out1 += C;
    }
}

/* Outputs [x0, out_w) of one row. */
static void hpass_row(const uint8_t *restrict in, uint8_t *restrict out,
                      int x0, int out_w, const int32_t *restrict kk,
                      int ksize, const int *restrict bounds, int C) {
    switch (C) {
    case 1: hpass_row_c(in, out, x0, out_w, kk, ksize, bounds, 1); break;
    case 3: hpass_row_c(in, out, x0, out_w, kk, ksize, bounds, 3); break;
    default: hpass_row_c(in, out, x0, out_w, kk, ksize, bounds, 4); break;
    }
}

/* Horizontal pass of two rows: packs them into `pk` (n samples) first. */
static void hpass_row2(const uint8_t *in0, const uint8_t *in1, uint8_t *out0,
                       uint8_t *out1, int out_w,
                       const int32_t *restrict kk, int ksize,
                       const int *restrict bounds, int C,
                       uint64_t *restrict pk, size_t n) {
    pack_rows(in0, in1, pk, n);
    switch (C) {
    case 1: hpass_pair_c(pk, out0, out1, out_w, kk, ksize, bounds, 1); break;
    case 3: hpass_pair_c(pk, out0, out1, out_w, kk, ksize, bounds, 3); break;
    default: hpass_pair_c(pk, out0, out1, out_w, kk, ksize, bounds, 4); break;
    }
}

/* ------------------------------------------------------------------------ */
/* Instruction-set dispatch                                                  */

/* -1 until first use; then the FS_SIMD_* level in force.  Read and written
 * with relaxed atomics: every thread computes the same value, and
 * fs_resample_set_simd (tests) only changes it between batches. */
static int g_simd = -1;

static int simd_detect(void) {
#if FS_HAVE_AVX2_KERNELS
    if (fs_cpu_avx2()) return FS_SIMD_AVX2;
#endif
    return FS_SIMD_NONE;
}

int fs_resample_simd(void) {
    int v = __atomic_load_n(&g_simd, __ATOMIC_RELAXED);
    if (v < 0) {
        v = simd_detect();
        __atomic_store_n(&g_simd, v, __ATOMIC_RELAXED);
    }
    return v;
}

int fs_resample_set_simd(int enable) {
    int v = enable ? simd_detect() : FS_SIMD_NONE;
    __atomic_store_n(&g_simd, v, __ATOMIC_RELAXED);
    return v;
}

/* The horizontal pass of one resize: the scalar coefficients, and which
 * SIMD kernel does which outputs:
 *   quads > 0:  sample quads [0, quads) by fs_hpass2_avx2_quads, the
 *               scalar code from pixel 4 * quads / C on;
 *   xend > 0:   pixels [0, xend) by fs_hpass2_avx2 (C = 3 or 4, downscales
 *               too steep for quads), the scalar code after;
 *   neither:    everything scalar. */
typedef struct {
    const int32_t *kk;
    int ksize;
    const int *bounds;
    int out_w, C;
    uint64_t *pk;            /* packed row pair of hpass_row2 */
    size_t span_len;
    const uint32_t *kp;
    int kstride, quads, xend;
} fs_hpass;

static void hpass_one(const fs_hpass *h, const uint8_t *in, uint8_t *out) {
    hpass_row(in, out, 0, h->out_w, h->kk, h->ksize, h->bounds, h->C);
}

static void hpass_two(const fs_hpass *h, const uint8_t *in0,
                      const uint8_t *in1, uint8_t *out0, uint8_t *out1) {
#if FS_HAVE_AVX2_KERNELS
    if (h->quads > 0 || h->xend > 0) {
        int x0;
        if (h->quads > 0) {
            fs_hpass2_avx2_quads(in0, in1, out0, out1, h->quads, h->kp,
                                 h->kstride, h->C);
            /* A pixel split between the last quad and the rest is
             * recomputed whole (same values). */
            x0 = 4 * h->quads / h->C;
        } else {
            fs_hpass2_avx2(in0, in1, out0, out1, h->xend, h->kp, h->kstride,
                           h->bounds, h->C);
            x0 = h->xend;
        }
        if (x0 < h->out_w) {
            hpass_row(in0, out0, x0, h->out_w, h->kk, h->ksize, h->bounds,
                      h->C);
            hpass_row(in1, out1, x0, h->out_w, h->kk, h->ksize, h->bounds,
                      h->C);
        }
        return;
    }
#endif
    hpass_row2(in0, in1, out0, out1, h->out_w, h->kk, h->ksize, h->bounds,
               h->C, h->pk, h->span_len);
}

/* Four rows; 0 when there is no four-row kernel for this plan (the caller
 * then goes two rows at a time). */
static int hpass_four(const fs_hpass *h, const uint8_t *const in[4],
                      uint8_t *const out[4]) {
#if FS_HAVE_AVX2_KERNELS
    if (h->quads > 0) {
        const int x0 = 4 * h->quads / h->C;
        int i;
        fs_hpass4_avx2_quads(in, out, h->quads, h->kp, h->kstride, h->C);
        if (x0 < h->out_w)
            for (i = 0; i < 4; i++)
                hpass_row(in[i], out[i], x0, h->out_w, h->kk, h->ksize,
                          h->bounds, h->C);
        return 1;
    }
#else
    (void)h; (void)in; (void)out;
#endif
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Vertical pass                                                             */

/*
 * One output row from `cnt` input rows starting at `rows` (rows `stride`
 * bytes apart): out[j] = clip(bias + sum_t rows[t][j] * k[t]).
 *
 * Pillow loops over taps innermost (per pixel); we loop over samples
 * innermost with a row of 32-bit accumulators, which vectorises and reads
 * memory sequentially.  Integer addition is exact in any order as long as
 * no partial sum overflows, which the PREC_BITS budget above guarantees, so
 * the result is bit-identical.  The vertical pass is channel-agnostic: a row
 * is just width * channels samples.  acc and out are scratch/dst memory
 * disjoint from the input rows, hence restrict.
 */
static void vpass_row(const uint8_t *rows, ptrdiff_t stride, int cnt,
                      const int32_t *restrict k, int32_t *restrict acc,
                      uint8_t *restrict out, size_t n) {
    size_t j;
    int t;
    if (cnt <= 0) {
        memset(out, clip_acc(ACC_BIAS), n);
        return;
    }
    {
        /* The first one or two taps initialise the accumulators. */
        const uint8_t *r0 = rows;
        const int32_t k0 = k[0];
        if (cnt >= 2) {
            const uint8_t *r1 = rows + stride;
            const int32_t k1 = k[1];
            for (j = 0; j < n; j++)
                acc[j] = ACC_BIAS + (int32_t)r0[j] * k0 + (int32_t)r1[j] * k1;
            t = 2;
        } else {
            for (j = 0; j < n; j++) acc[j] = ACC_BIAS + (int32_t)r0[j] * k0;
            t = 1;
        }
    }
    /* Two taps per sweep halve the accumulator traffic. */
    for (; t + 1 < cnt; t += 2) {
        const uint8_t *r0 = rows + (ptrdiff_t)t * stride;
        const uint8_t *r1 = r0 + stride;
        const int32_t k0 = k[t], k1 = k[t + 1];
        for (j = 0; j < n; j++)
            acc[j] += (int32_t)r0[j] * k0 + (int32_t)r1[j] * k1;
    }
    if (t < cnt) {
        const uint8_t *r0 = rows + (ptrdiff_t)t * stride;
        const int32_t k0 = k[t];
        for (j = 0; j < n; j++) acc[j] += (int32_t)r0[j] * k0;
    }
    for (j = 0; j < n; j++) out[j] = clip_acc(acc[j]);
}

/* One output row of the vertical pass; `kp` is the row's packed table for
 * the SIMD kernel, or NULL. */
static void vpass(const uint8_t *rows, ptrdiff_t stride, int cnt,
                  const int32_t *restrict k, const uint32_t *kp,
                  int32_t *restrict acc, uint8_t *restrict out,
                  size_t n) {
    size_t done = 0;
#if FS_HAVE_AVX2_KERNELS
    if (kp != NULL && cnt > 0) done = fs_vpass_avx2(rows, stride, cnt, kp, out, n);
#else
    (void)kp;
#endif
    if (done < n) vpass_row(rows + done, stride, cnt, k, acc, out + done, n - done);
}

/* ------------------------------------------------------------------------ */
/* Copy / crop (Pillow's same-size copy and ImagingCrop shortcut)            */

static int copy_region(const uint8_t *src, ptrdiff_t src_stride, int x0, int y0,
                       int C, int premultiply, const fs_dst *dst,
                       fs_resample_scratch *s) {
    fs_out o;
    size_t row_len = (size_t)dst->width * (size_t)C;
    int y, st;
    out_init(&o, dst, C, premultiply);
    if (premultiply || dst->dtype != FS_DTYPE_U8) {
        st = grow((void **)&s->tmp2, &s->tmp2_cap, row_len);
        if (st != FS_OK) return st;
    }
    for (y = 0; y < dst->height; y++) {
        const uint8_t *row = src + (ptrdiff_t)(y0 + y) * src_stride +
                             (size_t)x0 * (size_t)C;
        if (premultiply) {
            /* RGBA -> RGBa -> RGBA: Pillow round-trips through the
             * premultiplied mode even when it only crops, which is lossy. */
            uint8_t *stage = out_u8_row(&o, y);
            if (stage == NULL) stage = s->tmp2;
            premultiply_row(row, stage, (size_t)dst->width);
            out_store(&o, y, stage);
        } else {
            out_store(&o, y, row);
        }
    }
    return FS_OK;
}

/* ------------------------------------------------------------------------ */
/* NEAREST (Pillow's ImagingScaleAffine)                                     */

/* Pillow's COORD(): -1 for negative coordinates, else truncation.  Values at
 * or beyond `size` are out of range either way; mapping them to `size`
 * avoids converting a huge double to int. */
FS_INLINE int coord(double v, int size) {
    if (v < 0.0) return -1;
    if (v >= (double)size) return size;
    return (int)v;
}

static int resize_nearest(const uint8_t *src, int src_w, int src_h, int C,
                          ptrdiff_t src_stride, const float b[4],
                          const fs_dst *dst, fs_resample_scratch *s) {
    const int xsize = dst->width, ysize = dst->height;
    /* Pillow builds the affine matrix from the float box: the width is a
     * float subtraction, widened to double before the division. */
    const double a0 = (double)(b[2] - b[0]) / xsize;
    const double a4 = (double)(b[3] - b[1]) / ysize;
    double xo = (double)b[0] + a0 * 0.5;
    double yo = (double)b[1] + a4 * 0.5;
    size_t row_len = (size_t)xsize * (size_t)C, need;
    size_t *tab; /* byte offset of each output column's source pixel */
    int x, y, xmin, xmax, st;
    fs_out o;

    /* The bounds buffer is malloc'ed memory, so it can hold size_t here. */
    if (!fs_mul_size((size_t)xsize, sizeof(size_t), &need))
        return FS_ERR_OVERFLOW;
    st = grow((void **)&s->bounds, &s->bounds_cap, need);
    if (st != FS_OK) return st;
    st = grow((void **)&s->tmp2, &s->tmp2_cap, row_len);
    if (st != FS_OK) return st;
    tab = (size_t *)(void *)s->bounds;

    /* Positions are accumulated (xo += a0), not recomputed, exactly like
     * Pillow, so that the rounding drift matches.  a0 >= 0, so the in-range
     * output columns form one interval [xmin, xmax). */
    xmin = xsize;
    xmax = 0;
    for (x = 0; x < xsize; x++) {
        int xin = coord(xo, src_w);
        tab[x] = 0;
        if (xin >= 0 && xin < src_w) {
            xmax = x + 1;
            if (x < xmin) xmin = x;
            tab[x] = (size_t)xin * (size_t)C;
        }
        xo += a0;
    }

    out_init(&o, dst, C, 0);
    for (y = 0; y < ysize; y++) {
        int yi = coord(yo, src_h);
        uint8_t *restrict row = out_u8_row(&o, y);
        if (row == NULL) row = s->tmp2;
        /* Pillow's fill=1: samples that map outside the source are 0. */
        if (yi < 0 || yi >= src_h || xmin >= xmax) {
            memset(row, 0, row_len);
        } else {
            const uint8_t *restrict in = src + (ptrdiff_t)yi * src_stride;
            uint8_t *q = row + (size_t)xmin * (size_t)C;
            if (xmin > 0) memset(row, 0, (size_t)xmin * (size_t)C);
            if (xmax < xsize)
                memset(row + (size_t)xmax * (size_t)C, 0,
                       (size_t)(xsize - xmax) * (size_t)C);
            switch (C) {
            case 1:
                for (x = xmin; x < xmax; x++) row[x] = in[tab[x]];
                break;
            case 3: {
                /* One 4-byte move per pixel instead of a 3-byte copy (half
                 * the memory operations).  The 4th byte written belongs to
                 * the next output pixel, which overwrites it, so the last
                 * pixel gets an exact 3-byte copy.  The 4th byte read lies
                 * past the source row only for its last pixel, and is then
                 * still inside the buffer (the next row's start) unless yi
                 * is the last row, which is copied 3 bytes at a time. */
                const int xend = xmax - 1;
                if (yi < src_h - 1) {
                    for (x = xmin; x < xend; x++, q += 3)
                        memcpy(q, in + tab[x], 4);
                } else {
                    for (x = xmin; x < xend; x++, q += 3)
                        memcpy(q, in + tab[x], 3);
                }
                memcpy(q, in + tab[xend], 3);
                break;
            }
            default:
                for (x = xmin; x < xmax; x++, q += 4)
                    memcpy(q, in + tab[x], 4);
                break;
            }
        }
        out_store(&o, y, row);
        yo += a4;
    }
    return FS_OK;
}

/* ------------------------------------------------------------------------ */
/* Convolution resize, step 1: the plan (Pillow's precompute_coeffs for both
 * axes, and everything else that does not depend on pixel values)          */

/* The source span [*first, *last) that the non-empty ranges of `bounds`
 * read (empty when no output sample reads anything); afterwards every range
 * is made relative to *first, so a pass can read from a buffer or view whose
 * element 0 is source element *first.  Empty ranges are pointed at 0. */
static void span_and_shift(int *bounds, int n, int *first, int *last) {
    int i, lo = INT_MAX, hi = 0;
    for (i = 0; i < n; i++) {
        if (bounds[2 * i + 1] == 0) continue;
        if (bounds[2 * i] < lo) lo = bounds[2 * i];
        if (bounds[2 * i] + bounds[2 * i + 1] > hi)
            hi = bounds[2 * i] + bounds[2 * i + 1];
    }
    if (hi <= lo) lo = hi = 0;
    for (i = 0; i < n; i++)
        bounds[2 * i] = bounds[2 * i + 1] ? bounds[2 * i] - lo : 0;
    *first = lo;
    *last = hi;
}

/*
 * Pass order.  Each pass rounds to 8 bits, so the order changes results and
 * must match the installed Pillow's (Python picks it once, from
 * PIL.__version__, through fs_resample_set_pass_order):
 *   FS_PASS_ORDER_PILLOW_9  (Pillow 9.2 - 12.2): horizontal pass first, always.
 *   FS_PASS_ORDER_PILLOW_12_3 (Pillow 12.3): Image.resize runs two resizes,
 *     vertical first, when the source is more than 100 times taller than
 *     wide and the height shrinks:  in_h > 100 * in_w  &&  ysize < in_h.
 *   FS_PASS_ORDER_PILLOW_13 (Pillow 13, the default): vertical first when
 *     the height shrinks by more than twice as many pixels as the width:
 *         ysize < in_h  &&  in_h - ysize > 2 * (in_w - xsize)
 *     (Pillow evaluates 2 * (in_w - xsize) in int; we use 64 bits, which
 *     only differs for widths beyond 2^30.)
 * Pillow's vertical-first pass covers the full source width; ours only the
 * columns the horizontal pass reads, which gives the same values there.
 * The 8-bit arithmetic of both passes is otherwise the same in every one of
 * these Pillow versions.  Like g_simd, changed only between batches.
 */
static int g_pass_order = FS_PASS_ORDER_PILLOW_13;

int fs_resample_set_pass_order(int order) {
    if (order >= FS_PASS_ORDER_PILLOW_9 && order <= FS_PASS_ORDER_PILLOW_13)
        __atomic_store_n(&g_pass_order, order, __ATOMIC_RELAXED);
    return __atomic_load_n(&g_pass_order, __ATOMIC_RELAXED);
}

static int vertical_first(int in_w, int in_h, int xsize, int ysize) {
    switch (__atomic_load_n(&g_pass_order, __ATOMIC_RELAXED)) {
    case FS_PASS_ORDER_PILLOW_9:
        return 0;
    case FS_PASS_ORDER_PILLOW_12_3:
        return ysize < in_h && (int64_t)in_h > 100 * (int64_t)in_w;
    default:
        return ysize < in_h &&
               (int64_t)in_h - ysize > 2 * ((int64_t)in_w - (int64_t)xsize);
    }
}

/* Byte sizes of the execute step's buffers (fs_resize_plan) for a source
 * region of `nrows` rows of `span_len` samples. */
static int plan_buffers(fs_resize_plan *p, size_t nrows, size_t span_len) {
    const int need_h = p->h.ksize > 0, need_v = p->v.ksize > 0;
    const size_t row_len = (size_t)p->h.out_size * (size_t)p->channels;
    /* One row of vertical-pass sums: an output row when the vertical pass
     * runs last, a source row when it runs first or alone. */
    const size_t acc_len = need_h && !p->vertical_first
                               ? row_len
                               : (size_t)p->src_w * (size_t)p->channels;
    size_t sz;
    p->tmp_bytes = 0;
    if (need_h && need_v) {
        /* All the rows between the passes when the horizontal pass comes
         * first; a pair of rows, plus the read pad, when it comes last. */
        if (p->vertical_first) {
            if (!fs_mul_size(span_len, 2, &p->tmp_bytes) ||
                !add_size(p->tmp_bytes, FS_READ_PAD, &p->tmp_bytes))
                return FS_ERR_OVERFLOW;
        } else if (!fs_mul_size(nrows, row_len, &p->tmp_bytes)) {
            return FS_ERR_OVERFLOW;
        }
    }
    if (!align64(row_len, &p->stage_stride) ||
        !fs_mul_size(p->stage_stride, 2, &p->off_acc) ||
        !fs_mul_size(acc_len, sizeof(int32_t), &sz) || !align64(sz, &sz) ||
        !add_size(p->off_acc, sz, &p->off_pk))
        return FS_ERR_OVERFLOW;
    p->off_pre = p->off_pk;
    if (need_h && (!fs_mul_size(span_len, sizeof(uint64_t), &sz) ||
                   !align64(sz, &sz) || !add_size(p->off_pk, sz, &p->off_pre)))
        return FS_ERR_OVERFLOW;
    p->tmp2_bytes = p->off_pre;
    if (p->premultiply) {
        /* A row pair for a horizontal-pass input; the whole region for a
         * vertical-pass input, which reads each row several times. */
        const size_t prows = need_h && !p->vertical_first ? 2 : nrows;
        if (!fs_mul_size(prows, span_len, &sz) ||
            !add_size(p->off_pre, sz, &p->tmp2_bytes) ||
            !add_size(p->tmp2_bytes, FS_READ_PAD, &p->tmp2_bytes))
            return FS_ERR_OVERFLOW;
    }
    return FS_OK;
}

/* Where the plan's arrays go in the scratch's coeffs block:
 * [double w[kmax]] [int32 kv] [int32 kh] [uint32 v_packed] [uint32 h_packed],
 * each 64-byte aligned.  The SIMD tables are empty without SIMD; h_packed
 * holds either table, sample quads or pixels (the fallback of steep RGB/RGBA
 * downscales). */
typedef struct {
    size_t off_kv, off_kh, off_kvp, off_khp, coeffs_bytes, bounds_bytes;
    int vstride, hstride, hpstride, hquads;
} fs_plan_layout;

static int plan_layout(fs_resize_plan *p, fs_plan_layout *L) {
    const size_t C = (size_t)p->channels;
    const int xsize = p->h.out_size, ysize = p->v.out_size;
    const size_t kmax =
        (size_t)(p->v.ksize > p->h.ksize ? p->v.ksize : p->h.ksize);
    size_t row_len, src_row, sz, khp_words;
    memset(L, 0, sizeof *L);
    if (fs_resample_simd() != FS_SIMD_NONE) {
        if (p->v.ksize) L->vstride = fs_vcoeff_stride(p->v.ksize);
        if (p->h.ksize) {
            L->hquads = (int)((size_t)xsize * C / 4);
            L->hstride = fs_hquad_stride(p->h.ksize);
            if (C != 1) L->hpstride = fs_hcoeff_stride(p->h.ksize, (int)C);
        }
    }
    if (!fs_mul_size(kmax, sizeof(double), &sz) || !align64(sz, &L->off_kv) ||
        !fs_mul_size((size_t)ysize, (size_t)p->v.ksize, &sz) ||
        !fs_mul_size(sz, sizeof(int32_t), &sz) || !align64(sz, &sz) ||
        !add_size(L->off_kv, sz, &L->off_kh) ||
        !fs_mul_size((size_t)xsize, (size_t)p->h.ksize, &sz) ||
        !fs_mul_size(sz, sizeof(int32_t), &sz) || !align64(sz, &sz) ||
        !add_size(L->off_kh, sz, &L->off_kvp) ||
        !fs_mul_size((size_t)ysize, (size_t)L->vstride, &sz) ||
        !fs_mul_size(sz, sizeof(uint32_t), &sz) || !align64(sz, &sz) ||
        !add_size(L->off_kvp, sz, &L->off_khp) ||
        !fs_mul_size((size_t)L->hquads, (size_t)L->hstride, &khp_words) ||
        !fs_mul_size((size_t)xsize, (size_t)L->hpstride, &sz) ||
        !fs_mul_size(khp_words > sz ? khp_words : sz, sizeof(uint32_t), &sz) ||
        !add_size(L->off_khp, sz, &L->coeffs_bytes))
        return FS_ERR_OVERFLOW;
    if (!add_size((size_t)xsize, (size_t)ysize, &L->bounds_bytes) ||
        !fs_mul_size(L->bounds_bytes, 2 * sizeof(int), &L->bounds_bytes))
        return FS_ERR_OVERFLOW;
    /* The execute step's buffers grow with the source region, which is at
     * most the whole source: checking them for that region now means that
     * nothing is allocated for a plan whose buffers could not be sized. */
    if (!fs_mul_size((size_t)xsize, C, &row_len) ||
        !fs_mul_size((size_t)p->src_w, C, &src_row))
        return FS_ERR_OVERFLOW;
    return plan_buffers(p, (size_t)p->src_h, src_row);
}

/* Which SIMD kernel does which part of each pass (fs_resize_plan), and their
 * tables.  `src_pad` is the caller's readable bytes after the source. */
static void plan_kernels(fs_resize_plan *p, const fs_plan_layout *L,
                         uint32_t *kvp, uint32_t *khp, size_t src_pad) {
    const int C = p->channels;
    const size_t row_len = (size_t)p->h.out_size * (size_t)C;
    const size_t span_len = (size_t)(p->h.span1 - p->h.span0) * (size_t)C;
    size_t hread;
    /* A table that cannot be packed (a weight beyond int16 halves, never
     * seen with Pillow's filters) leaves that pass scalar. */
    if (L->vstride &&
        fs_pack_vcoeffs(p->v.coeffs, p->v.ksize, p->v.bounds, p->v.out_size,
                        kvp, L->vstride)) {
        p->v_packed = kvp;
        p->v_packed_stride = L->vstride;
    }
    if (!L->hstride || (L->hquads == 0 && L->hpstride == 0)) return;
    /* Bytes the SIMD windows may read from a horizontal-pass input row: its
     * span, plus what follows the span in memory.  The input is the source
     * itself (the columns right of the span, then the next row, or the
     * caller's src_pad after the last row), or one of our staging buffers,
     * which carry FS_READ_PAD zeroed bytes after their last row. */
    if (!p->vertical_first && !p->premultiply) {
        size_t after = src_pad < (size_t)p->src_stride ? src_pad
                                                        : (size_t)p->src_stride;
        hread = span_len + (size_t)(p->src_w - p->h.span1) * (size_t)C + after;
    } else {
        hread = span_len + FS_READ_PAD;
    }
    p->h_packed = khp;
    p->h_packed_stride = L->hstride;
    /* Quads unless they stop early (a downscale too steep for their window)
     * and the per-pixel kernel can do better. */
    if (!fs_pack_hquads(p->h.coeffs, p->h.ksize, p->h.bounds, p->h.out_size,
                        C, hread, khp, L->hstride, &p->h_quads))
        p->h_quads = 0;
    if (L->hpstride > 0 && (size_t)p->h_quads * 4 + 16 * (size_t)C < row_len) {
        p->h_quads = 0;
        p->h_packed_stride = L->hpstride;
        if (!fs_pack_hcoeffs(p->h.coeffs, p->h.ksize, p->h.bounds,
                             p->h.out_size, C, hread, khp, L->hpstride,
                             &p->h_xend))
            p->h_xend = 0;
    }
}

/* The plan of a resize whose box passed Pillow's checks (b: the box as C
 * floats), with the pass order given (`vfirst`, from vertical_first()). */
static int plan_build(fs_resize_plan *p, int src_w, int src_h, int C,
                      ptrdiff_t src_stride, size_t src_pad, const float b[4],
                      int filter, int premultiply, int xsize, int ysize,
                      int vfirst, fs_resample_scratch *s) {
    /* Pillow compares the float box with the int sizes. */
    const int need_h = xsize != src_w || b[0] != 0 || b[2] != xsize;
    const int need_v = ysize != src_h || b[1] != 0 || b[3] != ysize;
    const double support = FS_KERNELS[filter].support;
    fs_plan_layout L;
    int32_t *kh, *kv;
    int *bh, *bv;
    int st;

    memset(p, 0, sizeof *p);
    p->channels = C;
    p->src_w = src_w;
    p->src_h = src_h;
    p->src_stride = src_stride;
    p->premultiply = premultiply;
    p->vertical_first = need_h && need_v && vfirst;
    /* An axis left alone reads all of it. */
    p->h.in_size = p->h.span1 = src_w;
    p->h.out_size = xsize;
    p->v.in_size = p->v.span1 = src_h;
    p->v.out_size = ysize;
    if (!need_h && !need_v) return FS_OK; /* a copy: no buffers */
    if (need_v) {
        st = axis_setup(b[1], b[3], src_h, ysize, support, &p->v);
        if (st != FS_OK) return st;
    }
    if (need_h) {
        st = axis_setup(b[0], b[2], src_w, xsize, support, &p->h);
        if (st != FS_OK) return st;
    }

    /* ---- every size, checked; then the plan's arrays ---- */
    st = plan_layout(p, &L);
    if (st != FS_OK) return st;
    st = grow(&s->coeffs, &s->coeffs_cap, L.coeffs_bytes);
    if (st != FS_OK) return st;
    st = grow((void **)&s->bounds, &s->bounds_cap, L.bounds_bytes);
    if (st != FS_OK) return st;
    kv = (int32_t *)(void *)((char *)s->coeffs + L.off_kv);
    kh = (int32_t *)(void *)((char *)s->coeffs + L.off_kh);
    bv = s->bounds;
    bh = s->bounds + 2 * (size_t)ysize;

    /* ---- coefficients, and the source region [span0, span1) they read
     * along each axis ---- */
    if (need_v) {
        axis_coeffs(&p->v, b[1], FS_KERNELS[filter].fn, kv, bv, s->coeffs);
        span_and_shift(bv, ysize, &p->v.span0, &p->v.span1);
        p->v.bounds = bv;
        p->v.coeffs = kv;
    }
    if (need_h) {
        axis_coeffs(&p->h, b[0], FS_KERNELS[filter].fn, kh, bh, s->coeffs);
        span_and_shift(bh, xsize, &p->h.span0, &p->h.span1);
        p->h.bounds = bh;
        p->h.coeffs = kh;
    }

    plan_kernels(p, &L,
                 (uint32_t *)(void *)((char *)s->coeffs + L.off_kvp),
                 (uint32_t *)(void *)((char *)s->coeffs + L.off_khp), src_pad);
    /* The region read is within the source, so these sizes are at most
     * those checked by plan_layout. */
    return plan_buffers(p, (size_t)(p->v.span1 - p->v.span0),
                        (size_t)(p->h.span1 - p->h.span0) * (size_t)C);
}

/* ------------------------------------------------------------------------ */
/* Convolution resize, step 2: the passes, as the plan says                  */

/* What the passes of one execution share. */
typedef struct {
    const fs_resize_plan *p;
    fs_hpass hp;
    fs_out o;
    const uint8_t *region;   /* source pixel (h.span0, v.span0) */
    int nrows, ncols;        /* the source region read */
    size_t row_len;          /* samples per output row */
    size_t span_len;         /* samples per region row */
    uint8_t *tmp;            /* rows between the passes */
    uint8_t *stage;          /* two output staging rows */
    uint8_t *pre;            /* premultiplied source */
    int32_t *acc;            /* a row of vertical-pass sums */
} fs_exec;

/* The horizontal pass of every region row, two rows at a time (four with
 * the quad kernel), into tmp, or into the output when it is the only pass.
 * Without a vertical pass, output row y is the pass of source row y. */
static void exec_horizontal_first(fs_exec *x) {
    const fs_resize_plan *p = x->p;
    const int need_v = p->v.ksize > 0;
    const ptrdiff_t stride = p->src_stride;
    int y;
    for (y = 0; y < x->nrows; y += 2) {
        const int pair = y + 1 < x->nrows;
        const uint8_t *in[2];
        uint8_t *out[2];
        int i;
        if (need_v && !p->premultiply && y + 3 < x->nrows && p->h_quads > 0) {
            /* Four rows at once, straight from the source into the
             * intermediate rows. */
            const uint8_t *in4[4];
            uint8_t *out4[4];
            for (i = 0; i < 4; i++) {
                in4[i] = x->region + (ptrdiff_t)(y + i) * stride;
                out4[i] = x->tmp + (size_t)(y + i) * x->row_len;
            }
            if (hpass_four(&x->hp, in4, out4)) {
                y += 2;
                continue;
            }
        }
        for (i = 0; i <= pair; i++) {
            in[i] = x->region + (ptrdiff_t)(y + i) * stride;
            if (p->premultiply) {
                premultiply_row(in[i], x->pre + (size_t)i * x->span_len,
                                (size_t)x->ncols);
                in[i] = x->pre + (size_t)i * x->span_len;
            }
            if (need_v) {
                out[i] = x->tmp + (size_t)(y + i) * x->row_len;
            } else {
                out[i] = out_u8_row(&x->o, y + i);
                if (out[i] == NULL)
                    out[i] = x->stage + (size_t)i * p->stage_stride;
            }
        }
        if (pair)
            hpass_two(&x->hp, in[0], in[1], out[0], out[1]);
        else
            hpass_one(&x->hp, in[0], out[0]);
        if (!need_v)
            for (i = 0; i <= pair; i++) out_store(&x->o, y + i, out[i]);
    }
}

/* The vertical pass last (or alone), from `view`: the intermediate rows,
 * or the (premultiplied) source region. */
static void exec_vertical_last(const fs_exec *x, const uint8_t *view,
                               ptrdiff_t view_stride) {
    const fs_resize_plan *p = x->p;
    const fs_resize_axis *v = &p->v;
    int y;
    for (y = 0; y < v->out_size; y++) {
        uint8_t *out = out_u8_row(&x->o, y);
        if (out == NULL) out = x->stage;
        vpass(view + (ptrdiff_t)v->bounds[2 * y] * view_stride, view_stride,
              v->bounds[2 * y + 1], v->coeffs + (size_t)y * (size_t)v->ksize,
              p->v_packed ? p->v_packed + (size_t)y * (size_t)p->v_packed_stride
                          : NULL,
              x->acc, out, x->row_len);
        out_store(&x->o, y, out);
    }
}

/* The vertical pass first, over the region's columns, into a pair of rows
 * of tmp; then the horizontal pass of the pair into the output. */
static void exec_vertical_first(const fs_exec *x, const uint8_t *view,
                                ptrdiff_t view_stride) {
    const fs_resize_plan *p = x->p;
    const fs_resize_axis *v = &p->v;
    int y;
    for (y = 0; y < v->out_size; y += 2) {
        const int pair = y + 1 < v->out_size;
        uint8_t *out[2];
        int i;
        for (i = 0; i <= pair; i++) {
            const int yy = y + i;
            vpass(view + (ptrdiff_t)v->bounds[2 * yy] * view_stride,
                  view_stride, v->bounds[2 * yy + 1],
                  v->coeffs + (size_t)yy * (size_t)v->ksize,
                  p->v_packed
                      ? p->v_packed + (size_t)yy * (size_t)p->v_packed_stride
                      : NULL,
                  x->acc, x->tmp + (size_t)i * x->span_len, x->span_len);
            out[i] = out_u8_row(&x->o, yy);
            if (out[i] == NULL) out[i] = x->stage + (size_t)i * p->stage_stride;
        }
        if (pair)
            hpass_two(&x->hp, x->tmp, x->tmp + x->span_len, out[0], out[1]);
        else
            hpass_one(&x->hp, x->tmp, out[0]);
        for (i = 0; i <= pair; i++) out_store(&x->o, y + i, out[i]);
    }
}

/* Run a plan on the pixels at `src` (the geometry the plan was made for)
 * into `dst` (out_size of both axes, and channels as fs_resize_u8 allows).
 * Allocates only the plan's tmp_bytes and tmp2_bytes. */
static int plan_execute(const fs_resize_plan *p, const uint8_t *src,
                        const fs_dst *dst, fs_resample_scratch *s) {
    const int C = p->channels;
    const int need_h = p->h.ksize > 0, need_v = p->v.ksize > 0;
    const uint8_t *view;
    ptrdiff_t view_stride;
    fs_exec x;
    int st, y;

    if (dst->width != p->h.out_size || dst->height != p->v.out_size)
        return FS_ERR_ARG;
    if (!need_h && !need_v)
        return copy_region(src, p->src_stride, 0, 0, C, p->premultiply, dst,
                           s);
    st = grow((void **)&s->tmp, &s->tmp_cap, p->tmp_bytes);
    if (st != FS_OK) return st;
    st = grow((void **)&s->tmp2, &s->tmp2_cap, p->tmp2_bytes);
    if (st != FS_OK) return st;
    /* The pads are read (times zero coefficients) but never written: give
     * them defined contents. */
    if (p->vertical_first)
        memset(s->tmp + p->tmp_bytes - FS_READ_PAD, 0, FS_READ_PAD);
    if (p->premultiply)
        memset(s->tmp2 + p->tmp2_bytes - FS_READ_PAD, 0, FS_READ_PAD);

    x.p = p;
    x.region = src + (ptrdiff_t)p->v.span0 * p->src_stride +
               (size_t)p->h.span0 * (size_t)C;
    x.nrows = p->v.span1 - p->v.span0;
    x.ncols = p->h.span1 - p->h.span0;
    x.row_len = (size_t)p->h.out_size * (size_t)C;
    x.span_len = (size_t)x.ncols * (size_t)C;
    x.tmp = s->tmp;
    x.stage = s->tmp2;
    x.acc = (int32_t *)(void *)(s->tmp2 + p->off_acc);
    x.pre = s->tmp2 + p->off_pre;
    x.hp.kk = p->h.coeffs;
    x.hp.ksize = p->h.ksize;
    x.hp.bounds = p->h.bounds;
    x.hp.out_w = p->h.out_size;
    x.hp.C = C;
    x.hp.pk = (uint64_t *)(void *)(s->tmp2 + p->off_pk);
    x.hp.span_len = x.span_len;
    x.hp.kp = p->h_packed;
    x.hp.kstride = p->h_packed_stride;
    x.hp.quads = p->h_quads;
    x.hp.xend = p->h_xend;
    out_init(&x.o, dst, C, p->premultiply);

    if (need_h && !p->vertical_first) {
        exec_horizontal_first(&x);
        if (!need_v) return FS_OK;
        view = x.tmp;
        view_stride = (ptrdiff_t)x.row_len;
    } else if (p->premultiply) {
        /* The vertical pass reads the premultiplied region. */
        for (y = 0; y < x.nrows; y++)
            premultiply_row(x.region + (ptrdiff_t)y * p->src_stride,
                            x.pre + (size_t)y * x.span_len, (size_t)x.ncols);
        view = x.pre;
        view_stride = (ptrdiff_t)x.span_len;
    } else {
        /* The vertical pass reads the source region directly. */
        view = x.region;
        view_stride = p->src_stride;
    }
    if (p->vertical_first)
        exec_vertical_first(&x, view, view_stride);
    else
        exec_vertical_last(&x, view, view_stride);
    return FS_OK;
}

static int resize_conv(const uint8_t *src, int src_w, int src_h, int C,
                       ptrdiff_t src_stride, size_t src_pad, const float b[4],
                       int filter, int premultiply, const fs_dst *dst,
                       fs_resample_scratch *s) {
    fs_resize_plan plan;
    int st = plan_build(&plan, src_w, src_h, C, src_stride, src_pad, b, filter,
                        premultiply, dst->width, dst->height,
                        vertical_first(src_w, src_h, dst->width, dst->height),
                        s);
    if (st != FS_OK) return st;
    return plan_execute(&plan, src, dst, s);
}

/* ------------------------------------------------------------------------ */
/* Public entry points                                                       */

void fs_resample_scratch_init(fs_resample_scratch *s) {
    memset(s, 0, sizeof *s);
}

void fs_resample_scratch_free(fs_resample_scratch *s) {
    free(s->coeffs);
    free(s->bounds);
    free(s->tmp);
    free(s->tmp2);
    memset(s, 0, sizeof *s);
}

/* _resize: the box as C floats, and its checks. */
static int box_to_float(const double box[4], int src_w, int src_h,
                        float b[4]) {
    int i;
    for (i = 0; i < 4; i++) {
        if (box[i] != box[i]) return FS_ERR_ARG; /* NaN */
        b[i] = (float)box[i];
    }
    if (b[0] < 0 || b[1] < 0) return FS_ERR_ARG;
    if (b[2] > src_w || b[3] > src_h) return FS_ERR_ARG;
    if (b[2] - b[0] < 0 || b[3] - b[1] < 0) return FS_ERR_ARG;
    return FS_OK;
}

int fs_resize_plan_init(fs_resize_plan *plan, int src_w, int src_h,
                        int channels, ptrdiff_t src_stride, size_t src_pad,
                        const double box[4], int filter, int premultiply,
                        int out_w, int out_h, fs_resample_scratch *scratch) {
    const int C = channels;
    size_t row_bytes;
    float b[4];
    if (plan == NULL || box == NULL || scratch == NULL) return FS_ERR_ARG;
    if ((C != 1 && C != 3 && C != 4) || src_w < 1 || src_h < 1 ||
        out_w < 1 || out_h < 1)
        return FS_ERR_ARG;
    if (filter <= FS_FILTER_NEAREST || filter > FS_FILTER_LANCZOS)
        return FS_ERR_ARG;
    if (!fs_mul_size((size_t)src_w, (size_t)C, &row_bytes))
        return FS_ERR_OVERFLOW;
    if (src_stride < 0 || (size_t)src_stride < row_bytes) return FS_ERR_ARG;
    if (box_to_float(box, src_w, src_h, b) != FS_OK) return FS_ERR_ARG;
    return plan_build(plan, src_w, src_h, C, src_stride, src_pad, b, filter,
                      premultiply && C == 4, out_w, out_h,
                      vertical_first(src_w, src_h, out_w, out_h), scratch);
}

int fs_resize_u8(const uint8_t *src, int src_w, int src_h, int channels,
                 ptrdiff_t src_stride, size_t src_pad, const double box[4],
                 int filter,
                 int premultiply_alpha, const fs_dst *dst,
                 fs_resample_scratch *scratch) {
    const int C = channels;
    size_t row_bytes, elem, drow_bytes;
    float b[4];
    int premultiply;

    /* ---- argument checks (caller bugs) ---- */
    if (src == NULL || box == NULL || dst == NULL || scratch == NULL ||
        dst->data == NULL)
        return FS_ERR_ARG;
    if (C != 1 && C != 3 && C != 4) return FS_ERR_ARG;
    if ((dst->channels != C && !(C == 1 && dst->channels == 3)) || src_w < 1 || src_h < 1 || dst->width < 1 ||
        dst->height < 1)
        return FS_ERR_ARG;
    if (filter < FS_FILTER_NEAREST || filter > FS_FILTER_LANCZOS)
        return FS_ERR_ARG;
    if (dst->dtype == FS_DTYPE_U8)
        elem = 1;
    else if (dst->dtype == FS_DTYPE_F32)
        elem = sizeof(float);
    else
        return FS_ERR_ARG;
    if (!fs_mul_size((size_t)src_w, (size_t)C, &row_bytes))
        return FS_ERR_OVERFLOW;
    if (src_stride < 0 || (size_t)src_stride < row_bytes) return FS_ERR_ARG;
    if (!fs_mul_size((size_t)dst->width, (size_t)dst->channels, &drow_bytes) ||
        !fs_mul_size(drow_bytes, elem, &drow_bytes))
        return FS_ERR_OVERFLOW;
    if (dst->row_stride < 0 || (size_t)dst->row_stride < drow_bytes)
        return FS_ERR_ARG;
    if (dst->dtype == FS_DTYPE_F32 &&
        (((uintptr_t)dst->data | (uintptr_t)dst->row_stride) %
         sizeof(float)) != 0)
        return FS_ERR_ARG;

    /* ---- Image.resize: same size, whole image -> copy (compared in
     * double, like Python, and before any RGBa conversion) ---- */
    if (dst->width == src_w && dst->height == src_h && box[0] == 0.0 &&
        box[1] == 0.0 && box[2] == (double)src_w && box[3] == (double)src_h)
        return copy_region(src, src_stride, 0, 0, C, 0, dst, scratch);

    if (box_to_float(box, src_w, src_h, b) != FS_OK) return FS_ERR_ARG;

    /* Image.resize converts RGBA to RGBa for every filter but NEAREST. */
    premultiply = premultiply_alpha && C == 4 && filter != FS_FILTER_NEAREST;

    /* Integral box origin and box size == output size: ImagingCrop. */
    if (b[0] - (int)b[0] == 0 && b[2] - b[0] == dst->width &&
        b[1] - (int)b[1] == 0 && b[3] - b[1] == dst->height)
        return copy_region(src, src_stride, (int)b[0], (int)b[1], C,
                           premultiply, dst, scratch);

    if (filter == FS_FILTER_NEAREST)
        return resize_nearest(src, src_w, src_h, C, src_stride, b, dst,
                              scratch);
    return resize_conv(src, src_w, src_h, C, src_stride, src_pad, b, filter,
                       premultiply, dst, scratch);
}

/* ------------------------------------------------------------------------ */
/* Colour conversions (Pillow's Convert.c)                                   */

FS_INLINE uint8_t luma(unsigned r, unsigned g, unsigned b) { return fs_luma(r, g, b); }

/* Pillow's cmyk2rgb for one pixel: nk - round(c * nk / 255).  The result is
 * never negative (muldiv255(c, nk) <= nk), so Pillow's CLIP8 is a no-op. */
FS_INLINE void cmyk_to_rgb(const uint8_t *in, unsigned *r, unsigned *g,
                           unsigned *b) {
    unsigned nk = 255u - in[3];
    *r = nk - muldiv255(in[0], nk);
    *g = nk - muldiv255(in[1], nk);
    *b = nk - muldiv255(in[2], nk);
}

int fs_convert_rows(const uint8_t *in, ptrdiff_t in_stride, int in_mode,
                    uint8_t *out, ptrdiff_t out_stride, int out_mode,
                    int width, int height) {
    int x, y;
    if (in == NULL || out == NULL || width < 0 || height < 0) return FS_ERR_ARG;
    /*
     * No restrict here: in and out may be the same buffer.  Each pixel is
     * read completely into locals before any of its output bytes is
     * written, and output pixel x (at x * out_size) never lies past input
     * pixel x (at x * in_size) because out_size <= in_size, so no write
     * clobbers an input byte that is still to be read.  Between rows the
     * same holds when out_stride <= in_stride.
     */
    if (in_mode == FS_MODE_RGB && out_mode == FS_MODE_L) {
        for (y = 0; y < height; y++) {
            const uint8_t *p = in + (ptrdiff_t)y * in_stride;
            uint8_t *q = out + (ptrdiff_t)y * out_stride;
            for (x = 0; x < width; x++, p += 3)
                q[x] = luma(p[0], p[1], p[2]);
        }
        return FS_OK;
    }
    if (in_mode != FS_MODE_CMYK) return FS_ERR_ARG;
    if (out_mode == FS_MODE_RGB || out_mode == FS_MODE_RGBA) {
        const int oc = out_mode == FS_MODE_RGB ? 3 : 4;
        for (y = 0; y < height; y++) {
            const uint8_t *p = in + (ptrdiff_t)y * in_stride;
            uint8_t *q = out + (ptrdiff_t)y * out_stride;
            for (x = 0; x < width; x++, p += 4, q += oc) {
                unsigned r, g, b;
                cmyk_to_rgb(p, &r, &g, &b);
                q[0] = (uint8_t)r;
                q[1] = (uint8_t)g;
                q[2] = (uint8_t)b;
                if (oc == 4) q[3] = 255;
            }
        }
        return FS_OK;
    }
    if (out_mode == FS_MODE_L) {
        /* Pillow has no direct CMYK -> L converter: Image.convert falls back
         * to the mode base (RGB), i.e. cmyk2rgb followed by rgb2l. */
        for (y = 0; y < height; y++) {
            const uint8_t *p = in + (ptrdiff_t)y * in_stride;
            uint8_t *q = out + (ptrdiff_t)y * out_stride;
            for (x = 0; x < width; x++, p += 4) {
                unsigned r, g, b;
                cmyk_to_rgb(p, &r, &g, &b);
                q[x] = luma(r, g, b);
            }
        }
        return FS_OK;
    }
    return FS_ERR_ARG;
}
