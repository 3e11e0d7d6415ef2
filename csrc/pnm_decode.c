#include <math.h>
#include <stdio.h>
#include <string.h>

#include "raw_decode.h"
#include "resample.h"   /* fs_luma */

/*
 * Binary PGM (P5) and PPM (P6), read as Pillow's PpmImagePlugin reads them:
 *
 * - the header is Pillow's tokeniser: tokens separated by whitespace
 *   (space, \t, \n, \v, \f, \r), one whitespace byte ends each and is
 *   consumed; '#' drops the rest of the line wherever it appears, even
 *   inside a token; a token of more than 10 bytes is an error.  The pixels
 *   start right after the maxval's terminating byte.
 * - maxval 255: the bytes as they are.  Other maxvals up to 255 (one byte
 *   a sample) and P6 up to 65535 (two, big-endian): Pillow's PpmDecoder,
 *   min(255, round(v / maxval * 255)) with Python's round (half to even).
 * - P5 over 255: Pillow's mode "I", v itself for 65535 and else
 *   min(65535, round(v / maxval * 65535)); converting "I" to L/RGB clips at
 *   255.
 *
 * The rounding is done in doubles exactly as Python does it: a division,
 * then a multiplication (no fused multiply-add: -ffp-contract=off), then
 * nearbyint in the default round-to-nearest-even mode.
 */

enum { PNM_GRAY = 0, PNM_RGB = 1 };

static int is_ws(uint8_t c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

int fs_is_pnm(const uint8_t *data, size_t len) {
    return len >= 3 && data[0] == 'P' && (data[1] == '5' || data[1] == '6') && is_ws(data[2]);
}

/* Pillow's _read_token; returns 1 with a decimal value, 0 when Pillow would
 * fail or read the token differently (not all digits: int() accepts signs
 * and underscores, which are left to it). */
static int read_token(const uint8_t *d, size_t len, size_t *pos, long *value) {
    char tok[12];
    size_t n = 0;
    while (n <= 10) {
        if (*pos >= len) break;
        uint8_t c = d[(*pos)++];
        if (is_ws(c)) {
            if (n == 0) continue;
            break;
        }
        if (c == '#') {
            /* to CR or LF (consumed) or the end of the data */
            while (*pos < len) {
                uint8_t e = d[(*pos)++];
                if (e == '\r' || e == '\n') break;
            }
            continue;
        }
        tok[n++] = (char)c;
    }
    if (n == 0 || n > 10) return 0;
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (tok[i] < '0' || tok[i] > '9') return 0;
        v = v * 10 + (tok[i] - '0');
    }
    *value = v;
    return 1;
}

static uint8_t scale8(unsigned v, unsigned maxval) {
    double r = nearbyint((double)v / (double)maxval * 255.0);
    return r >= 255.0 ? 255 : (uint8_t)r;
}

/* P5 over 255 to Pillow's "I" and then clipped at 255. */
static uint8_t scale_i(unsigned v, unsigned maxval) {
    if (maxval == 65535) return v > 255 ? 255 : (uint8_t)v;
    double r = nearbyint((double)v / (double)maxval * 65535.0);
    return r >= 255.0 ? 255 : (uint8_t)r;
}

int fs_pnm_read_header(const uint8_t *data, size_t len, const fs_limits *limits,
                       fs_raw_info *info, char *msg, size_t msglen) {
    if (!fs_is_pnm(data, len)) {
        snprintf(msg, msglen, "not a binary PGM/PPM stream");
        return FS_ERR_NOT_JPEG;
    }
    size_t pos = 3;
    long w, h, maxval;
    if (!read_token(data, len, &pos, &w) || !read_token(data, len, &pos, &h) ||
        !read_token(data, len, &pos, &maxval) || w < 1 || h < 1 ||
        maxval < 1 || maxval > 65535) {
        /* Pillow's own error (or its reading of an odd token) says it. */
        snprintf(msg, msglen, "PGM/PPM header fastseq does not read as Pillow does");
        return FS_ERR_NOT_JPEG;
    }
    memset(info, 0, sizeof *info);
    int rgb = data[1] == '6';
    info->kind = rgb ? PNM_RGB : PNM_GRAY;
    info->width = (int)(w > 0x7fffffffL ? 0x7fffffffL : w);
    info->height = (int)(h > 0x7fffffffL ? 0x7fffffffL : h);
    info->maxval = (int)maxval;
    info->bits = maxval > 255 ? 2 : 1;           /* bytes a sample */
    info->mode = rgb ? FS_MODE_RGB : (maxval > 255 ? 0 : FS_MODE_L);
    info->offset = pos;
    /* Tokens are at most 10 digits: under 10^10 each, so the products below
     * (w * h * 3 * 2 < 6 * 10^20) could overflow 64 bits: check first. */
    uint64_t pixels;
    if ((uint64_t)w > UINT64_MAX / (uint64_t)h ||
        (pixels = (uint64_t)w * (uint64_t)h) > UINT64_MAX / 8) {
        snprintf(msg, msglen, "image size %ldx%ld too large", w, h);
        return FS_ERR_OVERFLOW;
    }
    if (limits && limits->max_pixels && pixels > limits->max_pixels) {
        snprintf(msg, msglen, "image size %ldx%ld (%llu pixels) exceeds max_pixels=%llu",
                 w, h, (unsigned long long)pixels, (unsigned long long)limits->max_pixels);
        return FS_ERR_TOO_MANY_PIXELS;
    }
    if (w > 0x7fffffffL / 8 || h > 0x7fffffffL) {
        snprintf(msg, msglen, "image size %ldx%ld too large", w, h);
        return FS_ERR_OVERFLOW;
    }
    info->stride = (size_t)w * (size_t)(rgb ? 3 : 1) * (size_t)info->bits;
    uint64_t need = (uint64_t)info->stride * (uint64_t)h;
    if (need > (uint64_t)(len - pos)) {
        snprintf(msg, msglen, "PGM/PPM stream is truncated: %ldx%ld pixels need %llu "
                 "bytes, %zu follow the header", w, h, (unsigned long long)need, len - pos);
        return FS_ERR_TRUNCATED;
    }
    /* Table of the one-byte samples (and of P5's two-byte samples under
     * 256: every larger one maps to 255). */
    for (unsigned v = 0; v < 256; v++)
        info->pal[v][0] = maxval == 255 ? (uint8_t)v
                        : maxval < 255 ? scale8(v, (unsigned)maxval)
                        : rgb ? 0 : scale_i(v, (unsigned)maxval);
    return FS_OK;
}

int fs_pnm_decode(const fs_raw_info *info, const uint8_t *data, size_t len,
                  int out_mode, uint8_t *out, ptrdiff_t stride) {
    const int oc = fs_mode_channels(out_mode);
    if (oc == 0 || out_mode == FS_MODE_CMYK ||
        info->offset + info->stride * (size_t)info->height > len)
        return FS_ERR_ARG;
    const int rgb = info->kind == PNM_RGB, wide = info->bits == 2;
    const unsigned maxval = (unsigned)info->maxval;
    for (int y = 0; y < info->height; y++) {
        const uint8_t *s = data + info->offset + (size_t)y * info->stride;
        uint8_t *o = out + (ptrdiff_t)y * stride;
        for (int x = 0; x < info->width; x++, o += oc) {
            unsigned c[3];
            for (int k = 0; k < (rgb ? 3 : 1); k++) {
                if (!wide) {
                    c[k] = info->pal[*s++][0];
                } else {
                    unsigned v = (unsigned)s[0] << 8 | s[1];
                    s += 2;
                    c[k] = rgb ? scale8(v, maxval) : v < 256 ? info->pal[v][0] : 255;
                }
            }
            if (!rgb) c[1] = c[2] = c[0];
            if (out_mode == FS_MODE_L) {
                o[0] = rgb ? fs_luma(c[0], c[1], c[2]) : (uint8_t)c[0];
            } else {
                o[0] = (uint8_t)c[0]; o[1] = (uint8_t)c[1]; o[2] = (uint8_t)c[2];
                if (oc == 4) o[3] = 255;
            }
        }
    }
    return FS_OK;
}
