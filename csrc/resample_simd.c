/*
 * AVX2 kernels of the resampler and the tables they read.  See
 * resample_simd.h for the arithmetic (split coefficients, wrap-around
 * accumulation) that keeps them bit-identical to the scalar passes.
 *
 * The file is compiled with the same flags as the rest of the extension;
 * only the kernels carry target("avx2"), and resample.c calls them only
 * after fs_cpu_avx2() said yes, so the extension still runs on any x86-64.
 */
#include "resample_simd.h"

#include <string.h>

#define SPLIT_BITS 11

/* k = hi * 2^11 + lo with lo in [0, 2^11); 0 when hi does not fit int16.
 * (k - lo) is a multiple of 2^11, so the division is exact and avoids
 * right-shifting a negative value. */
static int split_coeff(int32_t k, uint16_t *hi, uint16_t *lo) {
    int32_t l = (int32_t)((uint32_t)k & ((1u << SPLIT_BITS) - 1u));
    int32_t h = (k - l) / (1 << SPLIT_BITS);
    if (h < -32768 || h > 32767) return 0;
    *hi = (uint16_t)h;   /* two's complement image of h, as pmaddwd reads it */
    *lo = (uint16_t)l;
    return 1;
}

/* The two words of the pair (a, b): a in the low half, as pmaddwd pairs it
 * with the sample at the lower address. */
static int pack_pair(int32_t a, int32_t b, uint32_t *w) {
    uint16_t ah, al, bh, bl;
    if (!split_coeff(a, &ah, &al) || !split_coeff(b, &bh, &bl)) return 0;
    w[0] = (uint32_t)ah | (uint32_t)bh << 16;
    w[1] = (uint32_t)al | (uint32_t)bl << 16;
    return 1;
}

int fs_hcoeff_stride(int ksize, int C) {
    int groups = (ksize + FS_H_TAPS(C) - 1) / FS_H_TAPS(C);
    return groups * FS_H_PAIRS(C) * 2;
}

int fs_pack_hcoeffs(const int32_t *kk, int ksize, const int *bounds,
                    int out_w, int C, size_t span_bytes, uint32_t *kp,
                    int kstride, int *xend) {
    const int taps = FS_H_TAPS(C), pairs = FS_H_PAIRS(C);
    int xx, end = -1;
    for (xx = 0; xx < out_w; xx++) {
        const int32_t *k = kk + (size_t)xx * (size_t)ksize;
        uint32_t *w = kp + (size_t)xx * (size_t)kstride;
        const int first = bounds[2 * xx], n = bounds[2 * xx + 1];
        const int groups = (n + taps - 1) / taps;
        int g, q;
        for (g = 0; g < groups; g++)
            for (q = 0; q < pairs; q++) {
                int t = g * taps + 2 * q;
                /* Within a group the pair (t, t+1) never crosses into the
                 * next group for C == 4; for C == 3 the third pair is
                 * (4, -): the 6th sample of the load belongs to the next
                 * group, whose own first pair covers it. */
                int32_t a = t < n ? k[t] : 0;
                int32_t b = (2 * q + 1 < taps && t + 1 < n) ? k[t + 1] : 0;
                if (!pack_pair(a, b, w + 2 * (g * pairs + q))) return 0;
            }
        if (end < 0) {
            /* The last load of this output reads 16 bytes from
             * first*C + (groups-1)*taps*C. */
            size_t last = (size_t)first * (size_t)C +
                          (size_t)(groups > 0 ? groups - 1 : 0) *
                              (size_t)(taps * C) + 16;
            if ((groups > 0 && last > span_bytes) ||
                (C == 3 && xx == out_w - 1))
                end = xx;
        }
    }
    *xend = end < 0 ? out_w : end;
    return 1;
}

int fs_hquad_stride(int ksize) { return 8 + (ksize + 1) / 2 * 8; }

int fs_pack_hquads(const int32_t *kk, int ksize, const int *bounds,
                   int out_w, int C, size_t span_bytes, uint32_t *kp,
                   int kstride, int *nquads) {
    const int quads = (int)((size_t)out_w * (size_t)C / 4);
    int q, i, j, npairs = 0;
    *nquads = 0;
    /* Every quad gets the same number of pairs (the most any output
     * needs, extra pairs with zero coefficients): the kernel's inner loop
     * then has a constant trip count, which the branch predictor learns,
     * instead of one that changes from quad to quad. */
    for (q = 0; q < out_w; q++)
        if ((bounds[2 * q + 1] + 1) / 2 > npairs) npairs = (bounds[2 * q + 1] + 1) / 2;
    for (q = 0; q < quads; q++) {
        uint32_t *w = kp + (size_t)q * (size_t)kstride;
        int px[4], ch[4], first0;
        size_t base;
        uint8_t mask[16];
        for (i = 0; i < 4; i++) {
            px[i] = (4 * q + i) / C;
            ch[i] = (4 * q + i) % C;
        }
        first0 = bounds[2 * px[0]];
        base = (size_t)first0 * (size_t)C;
        for (i = 0; i < 4; i++) {
            const int n = bounds[2 * px[i] + 1];
            /* An empty range (n == 0) points at 0 (span_and_shift) and has
             * no coefficients: any in-window offset does for it. */
            const int df = n > 0 ? bounds[2 * px[i]] - first0 : 0;
            const int d = df * C + ch[i];
            if (df < 0 || d + C > 15) return 1;
            mask[4 * i + 0] = (uint8_t)d;
            mask[4 * i + 1] = 0x80;
            mask[4 * i + 2] = (uint8_t)(d + C);
            mask[4 * i + 3] = 0x80;
        }
        if (base > 0xFFFFFFF0u ||
            (npairs > 0 &&
             base + 2 * (size_t)C * (size_t)(npairs - 1) + 16 > span_bytes))
            return 1;
        memcpy(w, mask, 16);
        w[4] = (uint32_t)npairs;
        w[5] = (uint32_t)base;
        w[6] = w[7] = 0;
        for (j = 0; j < npairs; j++)
            for (i = 0; i < 4; i++) {
                const int32_t *k = kk + (size_t)px[i] * (size_t)ksize;
                const int n = bounds[2 * px[i] + 1];
                uint32_t pr[2];
                if (!pack_pair(2 * j < n ? k[2 * j] : 0,
                               2 * j + 1 < n ? k[2 * j + 1] : 0, pr))
                    return 0;
                w[8 + 8 * j + i] = pr[0];
                w[8 + 8 * j + 4 + i] = pr[1];
            }
        *nquads = q + 1;
    }
    return 1;
}

int fs_vcoeff_stride(int ksize) { return (ksize + 1) / 2 * 2; }

int fs_pack_vcoeffs(const int32_t *kk, int ksize, const int *bounds,
                    int out_h, uint32_t *kp, int kstride) {
    int y, t;
    for (y = 0; y < out_h; y++) {
        const int32_t *k = kk + (size_t)y * (size_t)ksize;
        uint32_t *w = kp + (size_t)y * (size_t)kstride;
        const int n = bounds[2 * y + 1];
        for (t = 0; t < n; t += 2)
            if (!pack_pair(k[t], t + 1 < n ? k[t + 1] : 0, w + t)) return 0;
    }
    return 1;
}

#if FS_HAVE_AVX2_KERNELS
#include <immintrin.h>

#define FS_AVX2 __attribute__((target("avx2")))

int fs_cpu_avx2(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") ? 1 : 0;
}

/* Sum of two split halves plus the rounding bias, shifted down, as 32-bit
 * lanes in [-512, 511]; packing with signed then unsigned saturation then
 * clips to 0..255 exactly like clip_acc(). */
FS_AVX2 static inline __m256i combine(__m256i hi, __m256i lo) {
    __m256i s = _mm256_add_epi32(_mm256_slli_epi32(hi, SPLIT_BITS), lo);
    return _mm256_srai_epi32(s, PREC_BITS);
}

/* 16 bytes at p0 in the low 128-bit lane, 16 bytes at p1 in the high one. */
FS_AVX2 static inline __m256i load_2x16(const uint8_t *p0, const uint8_t *p1) {
    return _mm256_inserti128_si256(
        _mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(const void *)p0)),
        _mm_loadu_si128((const __m128i *)(const void *)p1), 1);
}

/* The 4 words at w in both 128-bit lanes. */
FS_AVX2 static inline __m256i bcast_4x32(const uint32_t *w) {
    return _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(const void *)w));
}

/* Byte-saturated results of both lanes: the first 4 bytes of the low lane
 * to out0, of the high lane to out1. */
FS_AVX2 static inline void store_2x4(__m256i v, uint8_t *out0, uint8_t *out1) {
    uint32_t r0 = (uint32_t)_mm256_cvtsi256_si32(v);
    uint32_t r1 = (uint32_t)_mm_cvtsi128_si32(_mm256_extracti128_si256(v, 1));
    memcpy(out0, &r0, 4);
    memcpy(out1, &r1, 4);
}

/*
 * Horizontal pass, two rows per register: the low 128-bit lane holds the
 * 16 bytes of row 0 at the output's first tap, the high lane those of
 * row 1, and `pshufb` (which works within lanes) interleaves the samples of
 * a tap pair as int16 (p_t, p_t+1) per channel.  One output pixel per
 * iteration; its channels are the 32-bit lanes of the accumulators.
 * The masks' -1 entries produce zeros (the 4th lane for RGB, the high bytes
 * of every int16).
 */
FS_AVX2 static inline void hpass2_avx2_c(const uint8_t *in0,
                                         const uint8_t *in1, uint8_t *out0,
                                         uint8_t *out1, int xend,
                                         const uint32_t *kp, int kstride,
                                         const int *bounds, const int C) {
    const int taps = FS_H_TAPS(C), pairs = FS_H_PAIRS(C);
    __m256i m0, m1, m2;
    const __m256i bias = _mm256_set1_epi32(ACC_BIAS);
    int xx;
    if (C == 3) {
        m0 = _mm256_setr_epi8(0, -1, 3, -1, 1, -1, 4, -1, 2, -1, 5, -1, -1, -1,
                              -1, -1, 0, -1, 3, -1, 1, -1, 4, -1, 2, -1, 5, -1,
                              -1, -1, -1, -1);
        m1 = _mm256_setr_epi8(6, -1, 9, -1, 7, -1, 10, -1, 8, -1, 11, -1, -1,
                              -1, -1, -1, 6, -1, 9, -1, 7, -1, 10, -1, 8, -1,
                              11, -1, -1, -1, -1, -1);
        m2 = _mm256_setr_epi8(12, -1, -1, -1, 13, -1, -1, -1, 14, -1, -1, -1,
                              -1, -1, -1, -1, 12, -1, -1, -1, 13, -1, -1, -1,
                              14, -1, -1, -1, -1, -1, -1, -1);
    } else {
        m0 = _mm256_setr_epi8(0, -1, 4, -1, 1, -1, 5, -1, 2, -1, 6, -1, 3, -1,
                              7, -1, 0, -1, 4, -1, 1, -1, 5, -1, 2, -1, 6, -1,
                              3, -1, 7, -1);
        m1 = _mm256_setr_epi8(8, -1, 12, -1, 9, -1, 13, -1, 10, -1, 14, -1, 11,
                              -1, 15, -1, 8, -1, 12, -1, 9, -1, 13, -1, 10, -1,
                              14, -1, 11, -1, 15, -1);
        m2 = m1; /* unused for C == 4 */
    }
    for (xx = 0; xx < xend; xx++) {
        const uint32_t *w = kp + (size_t)xx * (size_t)kstride;
        const size_t off = (size_t)bounds[2 * xx] * (size_t)C;
        const uint8_t *p0 = in0 + off, *p1 = in1 + off;
        const int n = bounds[2 * xx + 1];
        __m256i hi = _mm256_setzero_si256(), lo = bias, v, s;
        int g;
        for (g = 0; g * taps < n; g++, w += 2 * pairs) {
            v = load_2x16(p0, p1);
            p0 += taps * C;
            p1 += taps * C;
            s = _mm256_shuffle_epi8(v, m0);
            hi = _mm256_add_epi32(hi, _mm256_madd_epi16(s, _mm256_set1_epi32((int)w[0])));
            lo = _mm256_add_epi32(lo, _mm256_madd_epi16(s, _mm256_set1_epi32((int)w[1])));
            s = _mm256_shuffle_epi8(v, m1);
            hi = _mm256_add_epi32(hi, _mm256_madd_epi16(s, _mm256_set1_epi32((int)w[2])));
            lo = _mm256_add_epi32(lo, _mm256_madd_epi16(s, _mm256_set1_epi32((int)w[3])));
            if (C == 3) {
                s = _mm256_shuffle_epi8(v, m2);
                hi = _mm256_add_epi32(hi, _mm256_madd_epi16(s, _mm256_set1_epi32((int)w[4])));
                lo = _mm256_add_epi32(lo, _mm256_madd_epi16(s, _mm256_set1_epi32((int)w[5])));
            }
        }
        v = combine(hi, lo);
        v = _mm256_packs_epi32(v, v);
        v = _mm256_packus_epi16(v, v);
        /* 4 bytes per row: for RGB the 4th is a zero that the next pixel
         * overwrites (xend excludes each row's last pixel). */
        store_2x4(v, out0 + (size_t)xx * (size_t)C, out1 + (size_t)xx * (size_t)C);
    }
}

FS_AVX2 void fs_hpass2_avx2(const uint8_t *in0, const uint8_t *in1,
                            uint8_t *out0, uint8_t *out1, int xend,
                            const uint32_t *kp, int kstride, const int *bounds,
                            int C) {
    if (C == 3)
        hpass2_avx2_c(in0, in1, out0, out1, xend, kp, kstride, bounds, 3);
    else
        hpass2_avx2_c(in0, in1, out0, out1, xend, kp, kstride, bounds, 4);
}

/*
 * Sample quads (see fs_pack_hquads): rows go in pairs, one quad of the
 * pair's first row in the low 128-bit lane and the same quad of its second
 * row in the high lane, sample i of the quad in 32-bit lane i.  The window
 * moves 2*C bytes per tap pair and the quad's mask picks each lane's two
 * taps out of it.  `pairs` (1 or 2, a constant at each call) row pairs share
 * the mask and coefficient loads.
 */
FS_AVX2 static inline void hpass_quads(const uint8_t *const in[4],
                                       uint8_t *const out[4], int nquads,
                                       const uint32_t *kp, int kstride, int C,
                                       const int pairs) {
    const __m256i bias = _mm256_set1_epi32(ACC_BIAS);
    const ptrdiff_t step = 2 * (ptrdiff_t)C;
    int q, r;
    for (q = 0; q < nquads; q++) {
        const uint32_t *w = kp + (size_t)q * (size_t)kstride;
        const __m256i mask = bcast_4x32(w);
        const int npairs = (int)w[4];
        const size_t base = w[5];
        const uint32_t *c = w + 8;
        const uint8_t *p[4];
        __m256i hi[2], lo[2], v;
        int j;
        for (r = 0; r < 2 * pairs; r++) p[r] = in[r] + base;
        for (r = 0; r < pairs; r++) {
            hi[r] = _mm256_setzero_si256();
            lo[r] = bias;
        }
        for (j = 0; j < npairs; j++, c += 8) {
            const __m256i kh = bcast_4x32(c), kl = bcast_4x32(c + 4);
            for (r = 0; r < pairs; r++) {
                v = _mm256_shuffle_epi8(load_2x16(p[2 * r], p[2 * r + 1]), mask);
                hi[r] = _mm256_add_epi32(hi[r], _mm256_madd_epi16(v, kh));
                lo[r] = _mm256_add_epi32(lo[r], _mm256_madd_epi16(v, kl));
            }
            for (r = 0; r < 2 * pairs; r++) p[r] += step;
        }
        for (r = 0; r < pairs; r++) {
            v = combine(hi[r], lo[r]);
            v = _mm256_packus_epi16(_mm256_packs_epi32(v, v), _mm256_setzero_si256());
            store_2x4(v, out[2 * r] + 4 * (size_t)q, out[2 * r + 1] + 4 * (size_t)q);
        }
    }
}

FS_AVX2 void fs_hpass2_avx2_quads(const uint8_t *in0, const uint8_t *in1,
                                  uint8_t *out0, uint8_t *out1, int nquads,
                                  const uint32_t *kp, int kstride, int C) {
    const uint8_t *const in[4] = {in0, in1, NULL, NULL};
    uint8_t *const out[4] = {out0, out1, NULL, NULL};
    hpass_quads(in, out, nquads, kp, kstride, C, 1);
}

FS_AVX2 void fs_hpass4_avx2_quads(const uint8_t *const in[4],
                                  uint8_t *const out[4], int nquads,
                                  const uint32_t *kp, int kstride, int C) {
    hpass_quads(in, out, nquads, kp, kstride, C, 2);
}

/*
 * Vertical pass, 32 samples per block with the block's sums in registers
 * across all taps (no accumulator row in memory).  For a tap pair the two
 * rows' bytes are interleaved (unpack with each other, then with zero) into
 * int16 pairs (a_j, b_j); the in-lane unpacks visit samples in the order
 * 0-3, 4-7, 8-11, 12-15 of each 128-bit lane, and the final signed/unsigned
 * packs of (v0, v1) and (v2, v3) restore natural order, so no permute is
 * needed.
 */
FS_AVX2 size_t fs_vpass_avx2(const uint8_t *rows, ptrdiff_t stride, int cnt,
                             const uint32_t *kp, uint8_t *out, size_t n) {
    const __m256i zero = _mm256_setzero_si256();
    const __m256i bias = _mm256_set1_epi32(ACC_BIAS);
    size_t j;
    for (j = 0; j + 32 <= n; j += 32) {
        __m256i h0 = zero, h1 = zero, h2 = zero, h3 = zero;
        __m256i l0 = bias, l1 = bias, l2 = bias, l3 = bias;
        const uint8_t *r = rows + j;
        int t;
        for (t = 0; t < cnt; t += 2, r += 2 * stride) {
            const __m256i kh = _mm256_set1_epi32((int)kp[t]);
            const __m256i kl = _mm256_set1_epi32((int)kp[t + 1]);
            const __m256i a = _mm256_loadu_si256((const __m256i *)(const void *)r);
            const __m256i b = t + 1 < cnt
                ? _mm256_loadu_si256((const __m256i *)(const void *)(r + stride))
                : zero;
            const __m256i ab0 = _mm256_unpacklo_epi8(a, b);
            const __m256i ab1 = _mm256_unpackhi_epi8(a, b);
            __m256i x;
            x = _mm256_unpacklo_epi8(ab0, zero);
            h0 = _mm256_add_epi32(h0, _mm256_madd_epi16(x, kh));
            l0 = _mm256_add_epi32(l0, _mm256_madd_epi16(x, kl));
            x = _mm256_unpackhi_epi8(ab0, zero);
            h1 = _mm256_add_epi32(h1, _mm256_madd_epi16(x, kh));
            l1 = _mm256_add_epi32(l1, _mm256_madd_epi16(x, kl));
            x = _mm256_unpacklo_epi8(ab1, zero);
            h2 = _mm256_add_epi32(h2, _mm256_madd_epi16(x, kh));
            l2 = _mm256_add_epi32(l2, _mm256_madd_epi16(x, kl));
            x = _mm256_unpackhi_epi8(ab1, zero);
            h3 = _mm256_add_epi32(h3, _mm256_madd_epi16(x, kh));
            l3 = _mm256_add_epi32(l3, _mm256_madd_epi16(x, kl));
        }
        {
            __m256i v01 = _mm256_packs_epi32(combine(h0, l0), combine(h1, l1));
            __m256i v23 = _mm256_packs_epi32(combine(h2, l2), combine(h3, l3));
            _mm256_storeu_si256((__m256i *)(void *)(out + j),
                                _mm256_packus_epi16(v01, v23));
        }
    }
    return j;
}
#endif
