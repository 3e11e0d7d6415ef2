/*
 * libFuzzer harness: the resampler (fs_resize_u8) on fuzzer-chosen shapes,
 * channels, filters, boxes, strides, read pads and output types.
 *
 * Input layout: 16 header bytes, [32 box bytes,] then pixel bytes (repeated
 * to fill the source; zeros if none).
 *   [0-1] src width - 1, [2-3] src height - 1, [4-5] dst width - 1,
 *   [6-7] dst height - 1   (little-endian, each mod 300)
 *   [8]  bits 0-1 channels (1, 3, 4, 4)  bit 2 L source written as RGB
 *        bit 3 float32  bit 4 premultiply_alpha  bit 5 raw box (4 doubles
 *        from the next 32 bytes: NaN, negative, huge...)  bit 6 src_pad =
 *        FS_RESIZE_READ_PAD (else 0)  bit 7 integral box
 *   [9]  filter (mod 6)
 *   [10] low nibble: extra source row bytes; high nibble: extra dst row elements
 *   [11-14] box as fractions of the image: x0, y0, then x1, y1 as fractions
 *        of what is left after x0, y0
 *
 * Oracles, besides ASan/UBSan/LSan:
 *   - the SIMD and the scalar code give the same status and identical bytes
 *     (resample.h promises this);
 *   - bytes between output rows (stride padding) are never written;
 *   - a box inside the image (anything but a raw box) is accepted.
 * Buffers are allocated to their exact extent (the source: rows plus the
 * declared src_pad), so any read or write beyond is reported.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "resample.h"

#define HDR 16
#define CANARY 0xA5

static fs_resample_scratch g_scratch;   /* reused across inputs, as in a worker */
static int g_scratch_ready;

static int dim(const uint8_t *p) { return 1 + (int)((p[0] | p[1] << 8) % 300); }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < HDR) return 0;
    if (!g_scratch_ready) {
        fs_resample_scratch_init(&g_scratch);
        g_scratch_ready = 1;
    }
    const int sw = dim(data), sh = dim(data + 2), dw = dim(data + 4), dh = dim(data + 6);
    const uint8_t fl = data[8];
    static const int kChannels[4] = {1, 3, 4, 4};
    const int C = kChannels[fl & 3];
    const int dc = (C == 1 && (fl & 4)) ? 3 : C;
    const int f32 = (fl >> 3) & 1;
    const int premultiply = (fl >> 4) & 1;
    const size_t src_pad = (fl & 0x40) ? FS_RESIZE_READ_PAD : 0;
    const int filter = data[9] % 6;
    const size_t elem = f32 ? sizeof(float) : 1;

    double box[4];
    const uint8_t *pix = data + HDR;
    size_t npix = size - HDR;
    if (fl & 0x20) {
        if (npix < sizeof box) return 0;
        memcpy(box, pix, sizeof box);
        pix += sizeof box;
        npix -= sizeof box;
    } else {
        box[0] = sw * (data[11] / 255.0);
        box[1] = sh * (data[12] / 255.0);
        box[2] = box[0] + (sw - box[0]) * (data[13] / 255.0);
        box[3] = box[1] + (sh - box[1]) * (data[14] / 255.0);
        if (fl & 0x80)
            for (int i = 0; i < 4; i++) box[i] = (double)(long)box[i];
    }

    const ptrdiff_t sstride = (ptrdiff_t)sw * C + (data[10] & 15);
    const size_t slen = (size_t)sstride * (size_t)(sh - 1) + (size_t)sw * C + src_pad;
    uint8_t *src = (uint8_t *)malloc(slen);
    if (!src) return 0;
    for (size_t i = 0; i < slen; i++) src[i] = npix ? pix[i % npix] : 0;

    const size_t drow = (size_t)dw * dc * elem;
    const ptrdiff_t dstride = (ptrdiff_t)(drow + (data[10] >> 4) * elem);
    const size_t dlen = (size_t)dstride * (size_t)(dh - 1) + drow;
    uint8_t *out[2];
    int st[2];
    out[0] = (uint8_t *)malloc(dlen);
    out[1] = (uint8_t *)malloc(dlen);
    if (!out[0] || !out[1]) {
        free(src);
        free(out[0]);
        free(out[1]);
        return 0;
    }
    for (int pass = 0; pass < 2; pass++) {
        memset(out[pass], CANARY, dlen);
        fs_dst dst = {out[pass], dw, dh, dc, dstride,
                      f32 ? FS_DTYPE_F32 : FS_DTYPE_U8, 1.0f / 255.0f, 0.0f};
        fs_resample_set_simd(pass == 0);   /* the CPU's level, then scalar */
        st[pass] = fs_resize_u8(src, sw, sh, C, sstride, src_pad, box, filter,
                                premultiply, &dst, &g_scratch);
    }
    fs_resample_set_simd(1);

    if (st[0] != st[1]) {
        fprintf(stderr, "SIMD status %d != scalar status %d\n", st[0], st[1]);
        abort();
    }
    if (st[0] == FS_OK) {
        if (memcmp(out[0], out[1], dlen) != 0) {
            fprintf(stderr, "SIMD and scalar results differ (%dx%dx%d -> %dx%dx%d, "
                    "filter %d, box %g %g %g %g)\n", sw, sh, C, dw, dh, dc, filter,
                    box[0], box[1], box[2], box[3]);
            abort();
        }
        for (int y = 0; y + 1 < dh; y++)
            for (size_t i = drow; i < (size_t)dstride; i++)
                if (out[0][(size_t)y * dstride + i] != CANARY) {
                    fprintf(stderr, "row padding written at row %d byte %zu\n", y, i);
                    abort();
                }
    } else if (!(fl & 0x20)) {
        /* A box inside the image (all the header can express) is valid. */
        fprintf(stderr, "status %d for box %g %g %g %g in %dx%d\n", st[0], box[0],
                box[1], box[2], box[3], sw, sh);
        abort();
    } else if (st[0] != FS_ERR_ARG) {
        /* The header caps every size far below FS_ERR_OVERFLOW; FS_ERR_NOMEM
         * would need a failing malloc of a few MB. */
        fprintf(stderr, "unexpected status %d\n", st[0]);
        abort();
    }
    free(src);
    free(out[0]);
    free(out[1]);
    return 0;
}
