/*
 * SIMD kernels of the resampler (internal to resample.c).
 *
 * They compute exactly what the scalar passes in resample.c compute:
 * Pillow's fixed-point sums with PREC_BITS = 22 fractional bits, rounded
 * and clipped to 8 bits.  Exactness with 16-bit multipliers comes from
 * splitting each coefficient k in two halves that fit int16:
 *
 *     k = kh * 2^11 + kl,   kl = k mod 2^11 in [0, 2048),  kh = floor(k / 2^11)
 *
 * so that  sum(p * k) = 2^11 * sum(p * kh) + sum(p * kl).  Each `pmaddwd`
 * lane multiplies two 8-bit samples by two int16 halves and adds them, which
 * is exact (|result| < 2 * 255 * 2^15).  The two sums are accumulated in
 * 32-bit lanes modulo 2^32 and combined modulo 2^32; the true total
 * (bias included) lies in [-2^31, 2^31) by the bit budget in resample.c, so
 * the wrapped result is the true total, whatever the number of taps.
 *
 * A coefficient splits into int16 halves when |kh| <= 32767, i.e.
 * |k| < 2^26 (a weight below 16): always true for Pillow's normalised
 * filters (|weight| <= ~1.3), but fs_pack_* check it and report failure
 * so that the caller falls back to the scalar code for any other input.
 *
 * The packed tables hold, per output sample and per pair of taps (t, t+1),
 * two 32-bit words: (kh_t | kh_{t+1} << 16) and (kl_t | kl_{t+1} << 16), the
 * operand layout of `pmaddwd` against interleaved samples (p_t, p_{t+1}).
 */
#ifndef FS_RESAMPLE_SIMD_H
#define FS_RESAMPLE_SIMD_H

#include "fs_common.h"

/* Pillow's PRECISION_BITS and the rounding bias of every pass (see the bit
 * budget in resample.c); one definition for the scalar and SIMD passes. */
#define PREC_BITS 22
#define ACC_BIAS ((int32_t)1 << (PREC_BITS - 1))

#if (defined(__x86_64__) || defined(__i386__)) && \
    (defined(__GNUC__) || defined(__clang__)) && !defined(FS_NO_SIMD)
#define FS_HAVE_AVX2_KERNELS 1
#else
#define FS_HAVE_AVX2_KERNELS 0
#endif

/* Instruction sets the resampler can use, best first. */
enum { FS_SIMD_NONE = 0, FS_SIMD_AVX2 = 1 };

/* Taps per 16-byte load in the horizontal kernels, and tap pairs per load:
 * a load covers 5 RGB pixels (15 bytes) or 4 RGBA pixels (16 bytes). */
#define FS_H_TAPS(C) ((C) == 3 ? 5 : 4)
#define FS_H_PAIRS(C) ((C) == 3 ? 3 : 2)

/*
 * Horizontal table: for output sample xx, ceil(n / FS_H_TAPS(C)) groups of
 * FS_H_PAIRS(C) pairs (2 words each), at kp + xx * kstride; taps beyond n
 * get coefficient 0.  `kk` / `bounds` are the scalar coefficients
 * (ksize per output) and (first, n) ranges.  Returns in *xend the number of
 * leading outputs the two-row kernel may compute: their 16-byte loads stay
 * inside a row of `span_bytes` bytes, and, for C == 3 (which stores 4 bytes
 * per pixel), they are not the last pixel of the row.
 * Returns 1, or 0 when a coefficient does not split (use scalar code).
 */
int fs_pack_hcoeffs(const int32_t *kk, int ksize, const int *bounds,
                    int out_w, int C, size_t span_bytes, uint32_t *kp,
                    int kstride, int *xend);

/* Words per output sample of the horizontal table. */
int fs_hcoeff_stride(int ksize, int C);

/*
 * Sample quads, for any C: the samples of an output row (width * C of
 * them) go in quads, sample i of quad q in 32-bit lane i, so that no lane
 * is idle whatever C is.  Quad q has a header of 8 words, then up to
 * ceil(ksize / 2) pairs of 4-word vectors (hi, lo), at
 * kp + q * fs_hquad_stride(ksize):
 *   header words 0-3: a pshufb mask: lane i takes the bytes d_i and d_i + C
 *                     of a 16-byte window, as two int16;
 *   header word 4:    P, the number of tap pairs (the same for all quads);
 *   header word 5:    `base`, the byte offset in the span of the window for
 *                     tap pair 0; the window for pair j is at base + 2*C*j;
 *   pair j:           lane i's coefficient pair (2j, 2j+1), split.
 * Here d_i = C * (first(pixel of sample i) - first(pixel of sample 0))
 * + channel of sample i, so d_i and d_i + C are that sample's taps 2j and
 * 2j+1 in window j.  A quad needs d_i + C <= 15 (the first taps of the
 * (at most two) pixels it touches lie within 15 - C bytes: a downscale up
 * to about 3x for RGB) and its windows inside `span_bytes`.
 * *nquads is the number of leading quads that meet both.
 * Returns 1, or 0 when a coefficient does not split.
 */
int fs_hquad_stride(int ksize);
int fs_pack_hquads(const int32_t *kk, int ksize, const int *bounds,
                   int out_w, int C, size_t span_bytes, uint32_t *kp,
                   int kstride, int *nquads);

/*
 * Vertical table: for output row y, ceil(n / 2) pairs at kp + y * kstride
 * (kstride = fs_vcoeff_stride(ksize)), an odd last tap paired with 0.
 * Returns 1, or 0 when a coefficient does not split.
 */
int fs_pack_vcoeffs(const int32_t *kk, int ksize, const int *bounds,
                    int out_h, uint32_t *kp, int kstride);
int fs_vcoeff_stride(int ksize);

#if FS_HAVE_AVX2_KERNELS
/* 1 when the running CPU (and OS) supports AVX2. */
int fs_cpu_avx2(void);

/*
 * Two rows of the horizontal pass for outputs [0, xend), C = 3 or 4:
 * out0/out1 from in0/in1 (rows of the same span).  Outputs at xend and
 * beyond are left to the scalar code.
 */
void fs_hpass2_avx2(const uint8_t *in0, const uint8_t *in1, uint8_t *out0,
                    uint8_t *out1, int xend, const uint32_t *kp, int kstride,
                    const int *bounds, int C);

/* Two rows of the horizontal pass for the samples of quads [0, nquads)
 * (tables of fs_pack_hquads); the scalar code does the pixels after. */
void fs_hpass2_avx2_quads(const uint8_t *in0, const uint8_t *in1,
                          uint8_t *out0, uint8_t *out1, int nquads,
                          const uint32_t *kp, int kstride, int C);

/* The same for four rows at once (in[i] -> out[i]). */
void fs_hpass4_avx2_quads(const uint8_t *const in[4], uint8_t *const out[4],
                          int nquads, const uint32_t *kp, int kstride, int C);

/*
 * One output row of the vertical pass over samples [0, n - n % 32):
 * out[j] = clip(bias + sum_t rows[t * stride + j] * k_t) for `cnt` taps,
 * coefficients as packed by fs_pack_vcoeffs.  Returns the number of
 * samples written; the scalar code does the rest.
 */
size_t fs_vpass_avx2(const uint8_t *rows, ptrdiff_t stride, int cnt,
                     const uint32_t *kp, uint8_t *out, size_t n);
#endif

#endif
