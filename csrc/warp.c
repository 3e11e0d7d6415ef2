/*
 * Keras' legacy augmentation of one image (see warp.h): the affine warp of
 * scipy.ndimage.affine_transform (orders 0 and 1, modes constant, nearest,
 * reflect, wrap), Keras' flips, channel shift and PIL brightness.
 *
 * Precision.  The issue allows max |diff| <= 1 on the 0-255 scale, but
 * fixed point buys little here and costs exactness: scipy computes every
 * source coordinate and every weight in double precision, and Keras' float32
 * pipeline keeps (float)t of the double sum t.  A 16.16 or 22-bit fixed
 * point weight would move t by up to ~2^-14 of a sample, which flips
 * scipy's uint8 rounding (and Keras' later uint8 truncation before
 * brightness) for values near .5 / integers: a whole unit.  So this file
 * does the same double operations in the same order as scipy:
 *   coordinate  = (m2 + r * m0) + c * m1      (scipy 1.17, the reference
 *                 tested, starts from the offset; older releases added it
 *                 last, which moves a sum like 16 - 16 - 1e-16 across 0)
 *   boundary    = scipy's map_coordinate, on the double coordinate
 *   weights     = f = cc - floor(cc); w0 = 1 - f; w1 = 1 - w0
 *   sum         = (((v00*wr0)*wc0 + (v01*wr0)*wc1) + (v10*wr1)*wc0) + (v11*wr1)*wc1
 * so results equal scipy's bit for bit (tests/test_warp.py checks it).  As in
 * Pillow's Geometry.c, what depends on one axis only is computed once: the
 * row bases m2 + r*m0, m5 + r*m3 per output row and the products c*m1, c*m4
 * per output column (an affine coordinate is linear in c along a row), so a
 * pixel costs one add per axis before its boundary test.  setup.py compiles with
 * -ffp-contract=off: no fused multiply-add may change a rounding.
 *
 * Speed.  The scalar rows cost ~0.75 ms per 224x224 RGB image, three
 * quarters of a decode.  For uint8 sources (the batch path: Keras' float32
 * copy of load_img's 8-bit image holds the same values) the AVX2 rows do
 * four output columns per step in double lanes, each lane the scalar
 * interior's operations in its order, so the results stay scipy's bit for
 * bit (no fixed point, no float32 shortcut: the 1.0 / 0.01 bound is
 * not spent).  Per quad: the coordinates, weights and tap offsets in
 * vectors; 'nearest' clamps and 'constant' blends cfill there too; both
 * taps of a row come from one 8-byte load; bytes become doubles through
 * 2^52 rather than vcvtdq2pd; float32 slots are written from the lanes,
 * skipping the per-row double buffer.  Quads needing reflect / wrap folding,
 * float32 sources and CPUs without AVX2 take the scalar rows.  fs_warp_set_simd
 * selects either (tests run both against scipy).  ~0.3 ms per image on the
 * 2-core EPYC (Zen 3) VM of the benchmark, under load.
 */
#include "warp.h"
#include "resample_simd.h"   /* FS_HAVE_AVX2_KERNELS, fs_cpu_avx2 */

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Coordinates are kept below 2^52 in magnitude, so that scipy's integer
 * casts in its reflect / wrap folding (npy_intp of a double) are exact and
 * defined; a transform reaching further is rejected as FS_ERR_ARG. */
#define FS_WARP_COORD_MAX 4503599627370496.0   /* 2^52 */

void fs_warp_scratch_init(fs_warp_scratch *s) {
    memset(s, 0, sizeof(*s));
}

void fs_warp_scratch_free(fs_warp_scratch *s) {
    free(s->terms);
    free(s->vals);
    fs_warp_scratch_init(s);
}

static int grow(void **buf, size_t *cap, size_t bytes) {
    if (bytes <= *cap) return FS_OK;
    void *p = realloc(*buf, bytes);
    if (!p) return FS_ERR_NOMEM;
    *buf = p;
    *cap = bytes;
    return FS_OK;
}

/* ---- scipy's boundary rules on a double coordinate, len >= 1 ---- */

/* Half-sample symmetric, period 2*len. */
static inline double fold_reflect(double in, ptrdiff_t len) {
    if (in < 0) {
        if (len <= 1) return 0.0;
        ptrdiff_t period = 2 * len;
        if (in < -period)
            in = period * (ptrdiff_t)(-in / period) + in;
        in = in < -len ? in + period : -in - 1;
    } else if (in > len - 1) {
        if (len <= 1) return 0.0;
        ptrdiff_t period = 2 * len;
        in -= period * (ptrdiff_t)(in / period);
        if (in >= len) in = period - in - 1;
    }
    return in;
}

/* scipy's 'wrap': period len - 1, so that samples 0 and len-1 are both
 * reached from outside (e.g. len 4: -1 -> 2, -3 -> 3, 6 -> 0). */
static inline double fold_wrap(double in, ptrdiff_t len) {
    if (in < 0) {
        if (len <= 1) return 0.0;
        ptrdiff_t period = len - 1;
        in += period * ((ptrdiff_t)(-in / period) + 1);
    } else if (in > len - 1) {
        if (len <= 1) return 0.0;
        ptrdiff_t period = len - 1;
        in -= period * (ptrdiff_t)(in / period);
    }
    return in;
}

/* floor() for |x| < 2^52, without a libm call: the cast truncates toward 0. */
static inline ptrdiff_t ifloor(double x) {
    ptrdiff_t t = (ptrdiff_t)x;
    return (double)t > x ? t - 1 : t;
}

/* One axis of one sample: the source indices and weights for coordinate
 * `in`, or 0 when the constant mode gives cval (in outside [0, len-1]).
 * After folding, the coordinate lies in (-1, len); a neighbour outside
 * [0, len-1] is mapped half-sample symmetrically for reflect (scipy's rule,
 * e.g. -0.25 reads samples 0 and 0) and clamped otherwise, where its weight
 * is 0 (the coordinate is exactly len-1). */
typedef struct { ptrdiff_t i0, i1; double w0, w1; } fs_tap;

static inline int axis_tap(double in, ptrdiff_t len, int mode, int order,
                           fs_tap *t) {
    switch (mode) {
    case FS_FILL_CONSTANT:
        if (in < 0 || in > (double)(len - 1)) return 0;
        break;
    case FS_FILL_NEAREST:
        if (in < 0) in = 0;
        else if (in > (double)(len - 1)) in = (double)(len - 1);
        break;
    case FS_FILL_REFLECT:
        in = fold_reflect(in, len);
        break;
    default:
        in = fold_wrap(in, len);
        break;
    }
    ptrdiff_t a, b;
    if (order == 0) {
        a = ifloor(in + 0.5);
        b = a;
        t->w0 = 1.0;
        t->w1 = 0.0;
    } else {
        a = ifloor(in);
        double f = in - (double)a;
        b = a + 1;
        t->w0 = 1.0 - f;
        t->w1 = 1.0 - t->w0;
    }
    if (mode == FS_FILL_REFLECT) {
        if (a < 0) a = -a - 1;
        if (b >= len) b = 2 * len - 1 - b;
    }
    if (a < 0) a = 0;
    if (a >= len) a = len - 1;
    if (b < 0) b = 0;
    if (b >= len) b = len - 1;
    t->i0 = a;
    t->i1 = b;
    return 1;
}

/* scipy's store into a uint8 array: round half up, clamp to 0..255. */
static inline double round_u8(double t) {
    t = t > 0 ? t + 0.5 : 0;
    if (t > 255.0) t = 255.0;
    return (double)(uint8_t)t;
}

uint8_t fs_brightness_u8(uint8_t v, float factor) {
    /* ImagingBlend(black, im, factor): float arithmetic on int samples,
     * truncated; only a factor outside [0, 1] needs the clip.  Factors 0
     * and 1 are Pillow's copy shortcuts, equal to the formula. */
    if (factor >= 0.0f && factor <= 1.0f)
        return (uint8_t)(0 + factor * (int)v);
    float t = (float)(0 + factor * (int)v);
    if (!(t > 0.0f)) return 0;      /* also inf * 0: NaN, where Pillow's cast is undefined */
    if (t >= 255.0f) return 255;
    return (uint8_t)t;
}

/* ---- the pipeline ---- */

static inline double load(const void *src, int is_f32, size_t off) {
    return is_f32 ? (double)((const float *)src)[off]
                  : (double)((const uint8_t *)src)[off];
}

/* One output row of n samples into dst row `row`. */
static void store_row(const fs_dst *dst, size_t row, const double *v, size_t n) {
    char *base = (char *)dst->data + (ptrdiff_t)row * dst->row_stride;
    size_t i;
    if (dst->dtype == FS_DTYPE_F32) {
        float *o = (float *)base, sc = dst->scale, of = dst->offset;
        for (i = 0; i < n; i++) o[i] = (float)v[i] * sc + of;
        if (dst->norm) fs_chan_norm_row(o, n, dst->channels, dst->norm);
    } else {
        uint8_t *o = (uint8_t *)base;
        for (i = 0; i < n; i++) o[i] = (uint8_t)round_u8(v[i]);
    }
}

/* Channel shift, then brightness, on the warped values `v` (n of them,
 * Keras' array), written to dst. */
/* numpy's astype(uint8) truncation for the values it is defined on, [0, 256);
 * NaN (a float32 source may hold one) and values outside clamp instead of
 * being undefined behaviour.  Identical to the cast for every finite value
 * the brightness step produces. */
static inline uint8_t trunc_u8(double v) {
    if (!(v > 0)) return 0;
    if (v >= 255) return 255;
    return (uint8_t)v;
}

static int photometric(double *v, size_t n, const fs_warp_params *p,
                       const fs_dst *dst) {
    int rescaled = 0;
    size_t i;
    int ch = dst->channels;
    if (p->has_shift) {
        /* apply_channel_shift: min and max of the whole image, all channels.
         * Both are exact in either precision (they are values of v). */
        double mn = v[0], mx = v[0];
        for (i = 1; i < n; i++) {
            if (v[i] < mn) mn = v[i];
            if (v[i] > mx) mx = v[i];
        }
        if (p->shift_f32) {
            float s = (float)p->shift, fmn = (float)mn, fmx = (float)mx;
            for (i = 0; i < n; i++) {
                float a = (float)v[i] + s;
                if (a < fmn) a = fmn;
                if (a > fmx) a = fmx;
                v[i] = a;
            }
        } else {
            for (i = 0; i < n; i++) {
                double a = v[i] + p->shift;
                if (a < mn) a = mn;
                if (a > mx) a = mx;
                v[i] = a;
            }
        }
    }
    if (p->has_brightness) {
        float factor = (float)p->brightness;   /* Image.blend takes a C float */
        double mn = v[0], mx = v[0];
        for (i = 1; i < n; i++) {
            if (v[i] < mn) mn = v[i];
            if (v[i] > mx) mx = v[i];
        }
        rescaled = mn < 0 || mx > 255;
        if (!rescaled) {
            /* array_to_img(scale=False): astype(uint8) truncates. */
            for (i = 0; i < n; i++) {
                uint8_t u = trunc_u8(v[i]);
                v[i] = (ch == 4 && i % 4 == 3) ? u : fs_brightness_u8(u, factor);
            }
        } else if (p->photo_f32) {
            /* array_to_img(scale=True) then x / 255 * (max - min) + min,
             * numpy float32 arithmetic throughout. */
            float fmn = (float)mn, range = (float)mx - fmn;
            for (i = 0; i < n; i++) {
                float y = (float)v[i] - fmn;
                if (range != 0) { y /= range; y *= 255.0f; } else { y *= 255.0f; }
                uint8_t u = trunc_u8(y);
                uint8_t b = (ch == 4 && i % 4 == 3) ? u : fs_brightness_u8(u, factor);
                v[i] = (float)((float)b / 255.0f * range) + fmn;
            }
        } else {
            /* The same on a float64 array; img_to_array's float32 result
             * divided by 255 stays float32, then meets float64 scalars. */
            double range = mx - mn;
            for (i = 0; i < n; i++) {
                double y = v[i] - mn;
                if (range != 0) { y /= range; y *= 255.0; } else { y *= 255.0; }
                uint8_t u = trunc_u8(y);
                uint8_t b = (ch == 4 && i % 4 == 3) ? u : fs_brightness_u8(u, factor);
                v[i] = (double)((float)b / 255.0f) * range + mn;
            }
        }
    }
    size_t w = (size_t)dst->width * (size_t)ch;
    for (i = 0; i < n; i += w)
        store_row(dst, i / w, v + i, w);
    return rescaled;
}

/*
 * One output row: o[c * channels + k] = scipy's sum t for output column c.
 * rb0 / rb1: the row's bases (m2 + r*m0, m5 + r*m3).  Instantiated per
 * (source type, channels, order) so that the sampling loop has no branch;
 * a sample whose two coordinates lie in [0, len-1] needs no boundary rule in
 * any mode (scipy's folding leaves them unchanged), which is most of an
 * augmented image, so only the others go through axis_tap.
 */
static inline __attribute__((always_inline)) void
warp_row(const char *sbase, ptrdiff_t src_stride, ptrdiff_t len_c, ptrdiff_t len_r,
         const int is_f32, const int channels, const int order,
         const fs_warp_params *p, double rb0, double rb1,
         const double *col0, const double *col1, size_t W, double cfill, double *o) {
    const double hi_r = (double)(len_r - 1), hi_c = (double)(len_c - 1);
    size_t c;
    int k;
    for (c = 0; c < W; c++, o += channels) {
        double yr = rb0 + col0[c];
        double xc = rb1 + col1[c];
        fs_tap tr, tc;
        if (yr >= 0 && yr <= hi_r && xc >= 0 && xc <= hi_c) {
            if (order == 0) {
                tr.i0 = (ptrdiff_t)(yr + 0.5);
                tc.i0 = (ptrdiff_t)(xc + 0.5);
            } else {
                tr.i0 = (ptrdiff_t)yr;
                tc.i0 = (ptrdiff_t)xc;
                tr.w0 = 1.0 - (yr - (double)tr.i0);
                tr.w1 = 1.0 - tr.w0;
                tc.w0 = 1.0 - (xc - (double)tc.i0);
                tc.w1 = 1.0 - tc.w0;
                /* At exactly len-1 the far neighbour has weight 0. */
                tr.i1 = tr.i0 + (tr.i0 < len_r - 1);
                tc.i1 = tc.i0 + (tc.i0 < len_c - 1);
            }
        } else if (!axis_tap(yr, len_r, p->fill_mode, order, &tr) ||
                   !axis_tap(xc, len_c, p->fill_mode, order, &tc)) {
            for (k = 0; k < channels; k++) o[k] = cfill;
            continue;
        }
        const char *ra = sbase + tr.i0 * src_stride;
        size_t ca = (size_t)tc.i0 * channels;
        if (order == 0) {
            for (k = 0; k < channels; k++) o[k] = load(ra, is_f32, ca + k);
        } else {
            const char *rb = sbase + tr.i1 * src_stride;
            size_t cb = (size_t)tc.i1 * channels;
            for (k = 0; k < channels; k++) {
                double t = 0.0;
                t += load(ra, is_f32, ca + k) * tr.w0 * tc.w0;
                t += load(ra, is_f32, cb + k) * tr.w0 * tc.w1;
                t += load(rb, is_f32, ca + k) * tr.w1 * tc.w0;
                t += load(rb, is_f32, cb + k) * tr.w1 * tc.w1;
                o[k] = t;
            }
        }
    }
}

/* A float32 Keras array's values t of one output row, written as a
 * FS_DTYPE_F32 dst's samples: (float)(double)(float)t == (float)t, then the
 * fused scale and offset, as store_row does. */
static inline void store_f32(float *fo, const double *t, size_t n, float sc, float of) {
    size_t i;
    for (i = 0; i < n; i++) fo[i] = (float)t[i] * sc + of;
}

#if FS_HAVE_AVX2_KERNELS
#include <immintrin.h>

#define FS_AVX2 __attribute__((target("avx2")))

/*
 * AVX2 rows for a uint8 source: four output columns at a time, in double
 * lanes, with the scalar interior's operations in the same order (see
 * warp_row), so each lane is bit-identical to it and to scipy:
 *   yr = rb0 + col0[c]; i0 = trunc(yr) (yr >= 0); f = yr - i0;
 *   w0 = 1 - f; w1 = 1 - w0; t = (((v00*wr0)*wc0 + (v01*wr0)*wc1)
 *   + (v10*wr1)*wc0) + (v11*wr1)*wc1,
 * each a separate IEEE mul or add (no FMA: this file is -ffp-contract=off
 * and the intrinsics name every step).  A quad with any column outside the
 * interior goes through the scalar warp_row, boundary rules included.
 *
 * Samples are gathered as 32-bit words, one per output column and tap, and
 * the channel bytes shifted out.  So that no word reaches past the last
 * source byte, a word for the pixel at byte offset a starts at
 * max(a - (4 - C), 0) and is shifted right by 8 * (a - start): it ends at
 * or before the pixel's last byte.  This needs at least 4 source bytes and
 * byte offsets below 2^31 (32-bit gather indices); warp_impl checks both.
 */
FS_AVX2 static inline __attribute__((always_inline)) __m128i
gather_px(const uint8_t *s, __m128i a, const int C, int safe) {
    if (C == 4 || safe)
        return _mm_i32gather_epi32((const int *)(const void *)s, a, 1);
    __m128i start = _mm_max_epi32(_mm_sub_epi32(a, _mm_set1_epi32(4 - C)),
                                  _mm_setzero_si128());
    __m128i g = _mm_i32gather_epi32((const int *)(const void *)s, start, 1);
    return _mm_srlv_epi32(g, _mm_slli_epi32(_mm_sub_epi32(a, start), 3));
}

/* Channel k (byte k of each gathered word) of four pixels, as doubles. */
FS_AVX2 static inline __attribute__((always_inline)) __m256d
chan(__m128i g, const int k) {
    const __m128i pick = _mm_setr_epi8(k, -1, -1, -1, 4 + k, -1, -1, -1,
                                       8 + k, -1, -1, -1, 12 + k, -1, -1, -1);
    return _mm256_cvtepi32_pd(_mm_shuffle_epi8(g, pick));
}

static inline int64_t load8(const uint8_t *p) {
    int64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* From four 8-byte loads (pixel j's in qword j) holding a row's left tap at
 * byte 0 and its right tap at byte C: channel k of the four left taps and
 * of the four right taps, as doubles.  A byte b is moved into the low byte
 * of its qword under the exponent bytes of 2^52 (0x43 0x30) and 2^52
 * subtracted: the double b exactly, with one FP op instead of a conversion
 * (vcvtdq2pd, two uops on one pipe, bounded this loop).  For C < 4 bytes 6
 * and 7 of every qword are not samples: with_exp() puts the exponent there
 * once per load and the shuffle copies it; for C == 4 it is OR-ed in. */
FS_AVX2 static inline __attribute__((always_inline)) __m256i
with_exp(__m256i q, const int C) {
    if (C == 4) return q;
    return _mm256_blend_epi16(q, _mm256_set1_epi64x(0x4330000000000000LL), 0x88);
}

FS_AVX2 static inline __attribute__((always_inline)) void
pair_chan(__m256i q, const int k, const int C, __m256d *left, __m256d *right) {
    const __m256d two52d = _mm256_set1_pd(4503599627370496.0);
    const int e6 = C == 4 ? -1 : 6, e7 = C == 4 ? -1 : 7;
    const int e14 = C == 4 ? -1 : 14, e15 = C == 4 ? -1 : 15;
    const __m256i pl = _mm256_setr_epi8(
        k, -1, -1, -1, -1, -1, e6, e7, 8 + k, -1, -1, -1, -1, -1, e14, e15,
        k, -1, -1, -1, -1, -1, e6, e7, 8 + k, -1, -1, -1, -1, -1, e14, e15);
    const __m256i pr = _mm256_setr_epi8(
        C + k, -1, -1, -1, -1, -1, e6, e7, 8 + C + k, -1, -1, -1, -1, -1, e14, e15,
        C + k, -1, -1, -1, -1, -1, e6, e7, 8 + C + k, -1, -1, -1, -1, -1, e14, e15);
    __m256i l = _mm256_shuffle_epi8(q, pl), r = _mm256_shuffle_epi8(q, pr);
    if (C == 4) {
        const __m256i two52 = _mm256_set1_epi64x(0x4330000000000000LL);
        l = _mm256_or_si256(l, two52);
        r = _mm256_or_si256(r, two52);
    }
    *left = _mm256_sub_pd(_mm256_castsi256_pd(l), two52d);
    *right = _mm256_sub_pd(_mm256_castsi256_pd(r), two52d);
}

FS_AVX2 static inline __attribute__((always_inline)) __m128i
times_c(__m128i i, const int C) {
    if (C == 1) return i;
    if (C == 3) return _mm_add_epi32(i, _mm_slli_epi32(i, 1));
    return _mm_slli_epi32(i, 2);
}

FS_AVX2 static inline __attribute__((always_inline)) void
warp_row_u8_avx2(const char *sbase, ptrdiff_t src_stride, ptrdiff_t len_c, ptrdiff_t len_r,
                 size_t span, const int channels, const int order, const fs_warp_params *p,
                 double rb0, double rb1, const double *col0, const double *col1,
                 size_t W, double cfill, double *o, float *fo, float fsc, float fof) {
    const uint8_t *s = (const uint8_t *)sbase;
    const int mode = p->fill_mode;
    const __m256d zero = _mm256_setzero_pd(), one = _mm256_set1_pd(1.0),
                  half = _mm256_set1_pd(0.5),
                  hi_r = _mm256_set1_pd((double)(len_r - 1)),
                  hi_c = _mm256_set1_pd((double)(len_c - 1)),
                  vb0 = _mm256_set1_pd(rb0), vb1 = _mm256_set1_pd(rb1);
    /* A quad whose words all end within the source needs no shifting. */
    const __m128i last_word = _mm_set1_epi32((int)(span - 4));
    /* An 8-byte load (both taps of a row) fits from offsets <= span - 8;
     * INT32_MIN (no quad passes) when the source is smaller. */
    const __m128i last_pair = _mm_set1_epi32(span >= 8 ? (int)(span - 8) : INT32_MIN);
    const __m128i last_r = _mm_set1_epi32((int)(len_r - 1)),
                  last_c = _mm_set1_epi32((int)(len_c - 1)),
                  stride = _mm_set1_epi32((int)src_stride);
    size_t c = 0;
    int k;
    for (; c + 4 <= W; c += 4) {
        __m256d yr = _mm256_add_pd(vb0, _mm256_loadu_pd(col0 + c));
        __m256d xc = _mm256_add_pd(vb1, _mm256_loadu_pd(col1 + c));
        __m256d in = _mm256_and_pd(
            _mm256_and_pd(_mm256_cmp_pd(yr, zero, _CMP_GE_OQ), _mm256_cmp_pd(yr, hi_r, _CMP_LE_OQ)),
            _mm256_and_pd(_mm256_cmp_pd(xc, zero, _CMP_GE_OQ), _mm256_cmp_pd(xc, hi_c, _CMP_LE_OQ)));
        double *oq = o + c * (size_t)channels;
        int inside = _mm256_movemask_pd(in);
        if (inside != 15) {
            /* 'nearest' clamps the coordinate to [0, len-1], after which
             * scipy's taps are the interior ones; 'constant' gives cfill
             * outside, blended in below.  The other modes fold: scalar. */
            if (mode != FS_FILL_NEAREST && mode != FS_FILL_CONSTANT) {
                warp_row(sbase, src_stride, len_c, len_r, 0, channels, order, p, rb0, rb1,
                         col0 + c, col1 + c, 4, cfill, oq);
                if (fo) store_f32(fo + c * (size_t)channels, oq, 4 * (size_t)channels, fsc, fof);
                continue;
            }
            /* max(-0.0, 0.0) is +0.0 where the scalar code keeps -0.0: the
             * taps and weights are the same (-0 - 0 = -0, 1 - -0 = 1). */
            yr = _mm256_min_pd(_mm256_max_pd(yr, zero), hi_r);
            xc = _mm256_min_pd(_mm256_max_pd(xc, zero), hi_c);
        }
        __m256d t[4];
        if (order == 0) {
            __m128i ir = _mm256_cvttpd_epi32(_mm256_add_pd(yr, half));
            __m128i ic = _mm256_cvttpd_epi32(_mm256_add_pd(xc, half));
            __m128i a = _mm_add_epi32(_mm_mullo_epi32(ir, stride), times_c(ic, channels));
            int safe = !_mm_movemask_epi8(_mm_cmpgt_epi32(a, last_word));
            __m128i g = gather_px(s, a, channels, safe);
            for (k = 0; k < channels; k++) t[k] = chan(g, k);
        } else {
            __m128i ir = _mm256_cvttpd_epi32(yr), ic = _mm256_cvttpd_epi32(xc);
            __m256d wr0 = _mm256_sub_pd(one, _mm256_sub_pd(yr, _mm256_cvtepi32_pd(ir)));
            __m256d wr1 = _mm256_sub_pd(one, wr0);
            __m256d wc0 = _mm256_sub_pd(one, _mm256_sub_pd(xc, _mm256_cvtepi32_pd(ic)));
            __m256d wc1 = _mm256_sub_pd(one, wc0);
            /* At exactly len-1 the far neighbour has weight 0. */
            __m128i ir1 = _mm_sub_epi32(ir, _mm_cmpgt_epi32(last_r, ir));
            __m128i ic1 = _mm_sub_epi32(ic, _mm_cmpgt_epi32(last_c, ic));
            __m128i r0 = _mm_mullo_epi32(ir, stride), r1 = _mm_mullo_epi32(ir1, stride);
            __m128i c0 = times_c(ic, channels), c1 = times_c(ic1, channels);
            __m128i a00 = _mm_add_epi32(r0, c0), a10 = _mm_add_epi32(r1, c0);
            if (!_mm_movemask_epi8(_mm_cmpgt_epi32(a10, last_pair))) {
                /* Both taps of a row in one 8-byte load at the left tap: the
                 * right one is C bytes on (when the left is the last column
                 * the right weight is 0 and 0 * v adds +0: the bytes read
                 * there do not matter).  a10 is the quad's largest start. */
                int off[8];
                _mm_storeu_si128((__m128i *)(void *)off, a00);
                _mm_storeu_si128((__m128i *)(void *)(off + 4), a10);
                __m256i q0 = with_exp(_mm256_set_epi64x(load8(s + off[3]), load8(s + off[2]),
                                                        load8(s + off[1]), load8(s + off[0])),
                                      channels);
                __m256i q1 = with_exp(_mm256_set_epi64x(load8(s + off[7]), load8(s + off[6]),
                                                        load8(s + off[5]), load8(s + off[4])),
                                      channels);
                for (k = 0; k < channels; k++) {
                    __m256d v00, v01, v10, v11;
                    pair_chan(q0, k, channels, &v00, &v01);
                    pair_chan(q1, k, channels, &v10, &v11);
                    __m256d a = _mm256_mul_pd(_mm256_mul_pd(v00, wr0), wc0);
                    a = _mm256_add_pd(a, _mm256_mul_pd(_mm256_mul_pd(v01, wr0), wc1));
                    a = _mm256_add_pd(a, _mm256_mul_pd(_mm256_mul_pd(v10, wr1), wc0));
                    a = _mm256_add_pd(a, _mm256_mul_pd(_mm256_mul_pd(v11, wr1), wc1));
                    t[k] = a;
                }
            } else {
                __m128i a11 = _mm_add_epi32(r1, c1);   /* the largest offset */
                int safe = !_mm_movemask_epi8(_mm_cmpgt_epi32(a11, last_word));
                __m128i g00 = gather_px(s, a00, channels, safe);
                __m128i g01 = gather_px(s, _mm_add_epi32(r0, c1), channels, safe);
                __m128i g10 = gather_px(s, a10, channels, safe);
                __m128i g11 = gather_px(s, a11, channels, safe);
                for (k = 0; k < channels; k++) {
                    __m256d a = _mm256_mul_pd(_mm256_mul_pd(chan(g00, k), wr0), wc0);
                    a = _mm256_add_pd(a, _mm256_mul_pd(_mm256_mul_pd(chan(g01, k), wr0), wc1));
                    a = _mm256_add_pd(a, _mm256_mul_pd(_mm256_mul_pd(chan(g10, k), wr1), wc0));
                    a = _mm256_add_pd(a, _mm256_mul_pd(_mm256_mul_pd(chan(g11, k), wr1), wc1));
                    t[k] = a;
                }
            }
        }
        if (mode == FS_FILL_CONSTANT && inside != 15) {
            const __m256d fill = _mm256_set1_pd(cfill);
            for (k = 0; k < channels; k++) t[k] = _mm256_blendv_pd(fill, t[k], in);
        }
        if (fo) {
            /* (float)(double)(float)t == (float)t: the float32 array's
             * value, then the fused scale and offset, as store_row does. */
            const __m128 vsc = _mm_set1_ps(fsc), vof = _mm_set1_ps(fof);
            __m128 f[4];
            float *fq = fo + c * (size_t)channels;
            for (k = 0; k < channels; k++)
                f[k] = _mm_add_ps(_mm_mul_ps(_mm256_cvtpd_ps(t[k]), vsc), vof);
            if (channels == 1) {
                _mm_storeu_ps(fq, f[0]);
            } else {
                if (channels == 3) f[3] = _mm_setzero_ps();
                _MM_TRANSPOSE4_PS(f[0], f[1], f[2], f[3]);
                if (channels == 4) {
                    for (k = 0; k < 4; k++) _mm_storeu_ps(fq + 4 * k, f[k]);
                } else {
                    /* Pixel q's 4th lane lands on pixel q+1's first sample,
                     * rewritten next; the last pixel stores 3 lanes only. */
                    _mm_storeu_ps(fq, f[0]);
                    _mm_storeu_ps(fq + 3, f[1]);
                    _mm_storeu_ps(fq + 6, f[2]);
                    _mm_storel_pi((__m64 *)(void *)(fq + 9), f[3]);
                    _mm_store_ss(fq + 11, _mm_movehl_ps(f[3], f[3]));
                }
            }
        } else if (channels == 1) {
            _mm256_storeu_pd(oq, t[0]);
        } else {
            double lane[4][4];
            int q;
            for (k = 0; k < channels; k++) _mm256_storeu_pd(lane[k], t[k]);
            for (q = 0; q < 4; q++)
                for (k = 0; k < channels; k++) oq[q * channels + k] = lane[k][q];
        }
    }
    if (c < W) {
        warp_row(sbase, src_stride, len_c, len_r, 0, channels, order, p, rb0, rb1,
                 col0 + c, col1 + c, W - c, cfill, o + c * (size_t)channels);
        if (fo)
            store_f32(fo + c * (size_t)channels, o + c * (size_t)channels,
                      (W - c) * (size_t)channels, fsc, fof);
    }
}

#define FS_WARP_ROW_AVX2(CH, ORD) \
    warp_row_u8_avx2(sbase, src_stride, src_w, src_h, span, CH, ORD, p, rb0, rb1, col0, col1, \
                     W, cfill, o, fo, fsc, fof)

FS_AVX2 static void warp_row_dispatch_avx2(const char *sbase, ptrdiff_t src_stride,
                                           int src_w, int src_h, size_t span, int channels,
                                           const fs_warp_params *p, double rb0, double rb1,
                                           const double *col0, const double *col1,
                                           size_t W, double cfill, double *o,
                                           float *fo, float fsc, float fof) {
    switch (channels * 10 + p->order) {
    case 10: FS_WARP_ROW_AVX2(1, 0); break;
    case 11: FS_WARP_ROW_AVX2(1, 1); break;
    case 30: FS_WARP_ROW_AVX2(3, 0); break;
    case 31: FS_WARP_ROW_AVX2(3, 1); break;
    case 40: FS_WARP_ROW_AVX2(4, 0); break;
    default: FS_WARP_ROW_AVX2(4, 1); break;
    }
}
#endif

/* -1 until first use, then the FS_SIMD_* level of the warp; relaxed atomics
 * as for the resampler's (every thread computes the same value, and
 * fs_warp_set_simd, for tests, only changes it between calls). */
static int g_warp_simd = -1;

static int warp_simd_detect(void) {
#if FS_HAVE_AVX2_KERNELS
    if (fs_cpu_avx2()) return FS_SIMD_AVX2;
#endif
    return FS_SIMD_NONE;
}

int fs_warp_simd(void) {
    int v = __atomic_load_n(&g_warp_simd, __ATOMIC_RELAXED);
    if (v < 0) {
        v = warp_simd_detect();
        __atomic_store_n(&g_warp_simd, v, __ATOMIC_RELAXED);
    }
    return v;
}

int fs_warp_set_simd(int enable) {
    int v = enable ? warp_simd_detect() : FS_SIMD_NONE;
    __atomic_store_n(&g_warp_simd, v, __ATOMIC_RELAXED);
    return v;
}

#define FS_WARP_ROW(F32, CH, ORD) \
    warp_row(sbase, src_stride, src_w, src_h, F32, CH, ORD, p, rb0, rb1, col0, col1, W, cfill, o)

/* Returns 1 when the row went to the AVX2 code, which then also wrote the
 * float32 samples to `fo` if that is not NULL. */
static int warp_row_dispatch(const char *sbase, ptrdiff_t src_stride, int src_w, int src_h,
                              int is_f32, int channels, const fs_warp_params *p,
                              double rb0, double rb1, const double *col0,
                              const double *col1, size_t W, double cfill, double *o,
                              int simd, size_t span, float *fo, float fsc, float fof) {
#if FS_HAVE_AVX2_KERNELS
    if (simd == FS_SIMD_AVX2 && !is_f32) {
        warp_row_dispatch_avx2(sbase, src_stride, src_w, src_h, span, channels, p, rb0, rb1,
                               col0, col1, W, cfill, o, fo, fsc, fof);
        return 1;
    }
#endif
    (void)simd;
    (void)span;
    (void)fo;
    (void)fsc;
    (void)fof;
    int key = (is_f32 ? 100 : 0) + channels * 10 + p->order;
    switch (key) {
    case 10:  FS_WARP_ROW(0, 1, 0); break;
    case 11:  FS_WARP_ROW(0, 1, 1); break;
    case 30:  FS_WARP_ROW(0, 3, 0); break;
    case 31:  FS_WARP_ROW(0, 3, 1); break;
    case 40:  FS_WARP_ROW(0, 4, 0); break;
    case 41:  FS_WARP_ROW(0, 4, 1); break;
    case 110: FS_WARP_ROW(1, 1, 0); break;
    case 111: FS_WARP_ROW(1, 1, 1); break;
    case 130: FS_WARP_ROW(1, 3, 0); break;
    case 131: FS_WARP_ROW(1, 3, 1); break;
    case 140: FS_WARP_ROW(1, 4, 0); break;
    default:  FS_WARP_ROW(1, 4, 1); break;
    }
    return 0;
}

static inline __attribute__((always_inline)) int
warp_impl(const void *src, int is_f32, int src_w, int src_h, int channels,
          ptrdiff_t src_stride, const fs_warp_params *p, const fs_dst *dst,
          fs_warp_scratch *s) {
    size_t elem = is_f32 ? 4 : 1, rowbytes, nvals, bytes, r, c, k;
    if (!src || !p || !dst || !dst->data || !s) return FS_ERR_ARG;
    if (src_w < 1 || src_h < 1 || dst->width < 1 || dst->height < 1)
        return FS_ERR_ARG;
    if (channels != 1 && channels != 3 && channels != 4) return FS_ERR_ARG;
    if (dst->channels != channels) return FS_ERR_ARG;
    if (dst->dtype != FS_DTYPE_U8 && dst->dtype != FS_DTYPE_F32) return FS_ERR_ARG;
    if (p->order != 0 && p->order != 1) return FS_ERR_ARG;
    if (p->fill_mode < FS_FILL_CONSTANT || p->fill_mode > FS_FILL_WRAP)
        return FS_ERR_ARG;
    if (!isfinite(p->cval) || !isfinite(p->shift) || !isfinite((float)p->brightness))
        return FS_ERR_ARG;
    if (!fs_mul_size((size_t)src_w * elem, (size_t)channels, &rowbytes))
        return FS_ERR_OVERFLOW;
    if (src_stride < 0 || (size_t)src_stride < rowbytes) return FS_ERR_ARG;
    if (is_f32 && (src_stride % 4 != 0 || ((uintptr_t)src) % 4 != 0))
        return FS_ERR_ARG;
    if (dst->dtype == FS_DTYPE_F32 &&
        (dst->row_stride % 4 != 0 || ((uintptr_t)dst->data) % 4 != 0))
        return FS_ERR_ARG;
    {
        size_t drow;
        if (!fs_mul_size((size_t)dst->width * (dst->dtype == FS_DTYPE_F32 ? 4 : 1),
                         (size_t)channels, &drow))
            return FS_ERR_OVERFLOW;
        if (dst->row_stride < 0 || (size_t)dst->row_stride < drow) return FS_ERR_ARG;
    }
    if (!p->warp && (dst->width != src_w || dst->height != src_h))
        return FS_ERR_ARG;
    if (p->warp) {
        /* Every coordinate the output reaches, bounded per axis. */
        for (k = 0; k < 2; k++) {
            const double *m = p->m + 3 * k;
            if (!isfinite(m[0]) || !isfinite(m[1]) || !isfinite(m[2]))
                return FS_ERR_ARG;
            double reach = fabs(m[0]) * (dst->height - 1) +
                           fabs(m[1]) * (dst->width - 1) + fabs(m[2]);
            if (!(reach < FS_WARP_COORD_MAX)) return FS_ERR_ARG;
        }
    }

    /* Everything is allocated before the first pixel is written. */
    int photo = p->has_shift || p->has_brightness;
    size_t W = (size_t)dst->width, H = (size_t)dst->height;
    if (!fs_mul_size(W * H, (size_t)channels, &nvals)) return FS_ERR_OVERFLOW;
    if (photo) {
        if (!fs_mul_size(nvals, sizeof(double), &bytes)) return FS_ERR_OVERFLOW;
        if (grow((void **)&s->vals, &s->vals_cap, bytes)) return FS_ERR_NOMEM;
    }
    /* terms: 2 per row, 2 per column, and one output row of samples */
    if (!fs_mul_size(2 * (W + H) + W * (size_t)channels, sizeof(double), &bytes))
        return FS_ERR_OVERFLOW;
    if (grow((void **)&s->terms, &s->terms_cap, bytes)) return FS_ERR_NOMEM;

    /* Per-row bases m2 + r*m0, m5 + r*m3 and per-column terms c*m1, c*m4,
     * for the (r, c) Keras computes before its flips. */
    double *row0 = s->terms, *row1 = row0 + H, *col0 = row1 + H, *col1 = col0 + W;
    double *rowbuf = col1 + W;
    for (r = 0; r < H; r++) {
        double rr = (double)(p->flip_v ? H - 1 - r : r);
        row0[r] = p->m[2] + rr * p->m[0];
        row1[r] = p->m[5] + rr * p->m[3];
    }
    for (c = 0; c < W; c++) {
        double cc = (double)(p->flip_h ? W - 1 - c : c);
        col0[c] = cc * p->m[1];
        col1[c] = cc * p->m[4];
    }

    const char *sbase = (const char *)src;
    /* The AVX2 rows gather 32-bit words at byte offsets below 2^31 and need
     * at least 4 source bytes (see gather_px). */
    int simd = fs_warp_simd();
    size_t span = (size_t)(src_h - 1) * (size_t)src_stride + rowbytes;
    {
        if (is_f32 || span < 4 || span > (size_t)INT32_MAX - 4 ||
            src_stride > INT32_MAX)
            simd = FS_SIMD_NONE;
    }
    double cfill = p->quantize_u8 ? round_u8(p->cval) : (double)(float)p->cval;
    size_t rowlen = W * (size_t)channels;
    for (r = 0; r < H; r++) {
        double *o = photo ? s->vals + r * rowlen : rowbuf;
        if (!p->warp) {
            /* Keras returns x itself: a copy (flipped), no rounding. */
            const char *row = sbase + (ptrdiff_t)(p->flip_v ? H - 1 - r : r) * src_stride;
            for (c = 0; c < W; c++) {
                size_t sc = p->flip_h ? W - 1 - c : c;
                for (k = 0; k < (size_t)channels; k++)
                    o[c * channels + k] = load(row, is_f32, sc * channels + k);
            }
        } else {
            /* Without photometric steps a float32 Keras array goes
             * straight into a float32 dst from the AVX2 code. */
            float *fo = NULL;
            if (!photo && !p->quantize_u8 && dst->dtype == FS_DTYPE_F32)
                fo = (float *)(void *)((char *)dst->data + (ptrdiff_t)r * dst->row_stride);
            if (warp_row_dispatch(sbase, src_stride, src_w, src_h, is_f32, channels, p,
                                  row0[r], row1[r], col0, col1, W, cfill, o, simd, span,
                                  fo, dst->scale, dst->offset) && fo) {
                /* The AVX2 rows wrote (float)t * scale + offset; the
                 * standardisation follows, as in store_row. */
                if (dst->norm) fs_chan_norm_row(fo, rowlen, channels, dst->norm);
                continue;
            }
            /* Keras' array dtype: scipy rounds into a uint8 array, casts
             * into a float32 one (cfill already is either). */
            if (p->quantize_u8)
                for (k = 0; k < rowlen; k++) o[k] = round_u8(o[k]);
            else
                for (k = 0; k < rowlen; k++) o[k] = (double)(float)o[k];
        }
        if (!photo) store_row(dst, r, o, rowlen);
    }
    s->brightness_rescaled = photo ? photometric(s->vals, nvals, p, dst) : 0;
    return FS_OK;
}

int fs_warp_affine_u8(const uint8_t *src, int src_w, int src_h, int channels,
                      ptrdiff_t src_stride, const fs_warp_params *p,
                      const fs_dst *dst, fs_warp_scratch *scratch) {
    return warp_impl(src, 0, src_w, src_h, channels, src_stride, p, dst, scratch);
}

int fs_warp_affine_f32(const float *src, int src_w, int src_h, int channels,
                       ptrdiff_t src_stride, const fs_warp_params *p,
                       const fs_dst *dst, fs_warp_scratch *scratch) {
    return warp_impl(src, 1, src_w, src_h, channels, src_stride, p, dst, scratch);
}
