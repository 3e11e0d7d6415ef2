#include <stdio.h>
#include <string.h>

#include "raw_decode.h"
#include "resample.h"   /* fs_luma */

/*
 * Uncompressed BMP, read as Pillow's BmpImagePlugin reads it (Pillow 9-13):
 *
 * - headers of 12 (OS/2 1.x: 16-bit sizes, 3-byte palette entries, rows
 *   bottom-up) and 40, 52, 56, 64, 108, 124 bytes (32-bit sizes, 4-byte
 *   entries; the height is negative, rows top-down, when the top byte of the
 *   height field is 0xFF, as Pillow tests it);
 * - 1, 4, 8 bits through the palette (Pillow has no 2-bit BMP), whose entries are read right after
 *   the header, `colors` of them (the header's count, or 2^bits when 0);
 *   24 bits BGR; 32 bits BGRX (Pillow ignores the fourth byte of BI_RGB);
 * - BI_BITFIELDS with 24 bits BGR or 32 bits in the masks Pillow maps to
 *   BGRX, BGRA or RGBA;
 * - rows of ((width * bits + 31) >> 3) & ~3 bytes, from bfOffBits (or, when
 *   that is 0, right after the palette; when it points just past the header
 *   of a palette image, past the palette, as Pillow moves it).
 *
 * Left to Pillow (FS_ERR_NOT_JPEG): RLE4/RLE8, 16-bit pixels and other
 * bitfields, JPEG/PNG payloads, and palettes Pillow takes for grey ramps
 * when the pixel depth is not the one its "L"/"1" raw modes read (Pillow
 * then reinterprets the bytes).  An 8-bit grey ramp ("L") and a 1-bit
 * black/white palette ("1") are the same pixels as their palette lookup.
 */

enum { BMP_PAL = 0, BMP_BGR = 1, BMP_BGRX = 2, BMP_BGRA = 3, BMP_RGBA = 4 };

static uint32_t le32(const uint8_t *b) {
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}
static unsigned le16(const uint8_t *b) { return (unsigned)b[0] | (unsigned)b[1] << 8; }

int fs_is_bmp(const uint8_t *data, size_t len) {
    return len >= 2 && data[0] == 'B' && data[1] == 'M';
}

#define PILLOW(...) do { snprintf(msg, msglen, __VA_ARGS__); return FS_ERR_NOT_JPEG; } while (0)

int fs_bmp_read_header(const uint8_t *data, size_t len, const fs_limits *limits,
                       fs_raw_info *info, char *msg, size_t msglen) {
    if (!fs_is_bmp(data, len)) PILLOW("not a BMP stream");
    if (len < 18) {
        snprintf(msg, msglen, "BMP stream is truncated in its header");
        return FS_ERR_TRUNCATED;
    }
    memset(info, 0, sizeof *info);
    size_t offset = le32(data + 10);
    uint32_t hsize = le32(data + 14);
    if (hsize != 12 && hsize != 40 && hsize != 52 && hsize != 56 && hsize != 64 &&
        hsize != 108 && hsize != 124)
        PILLOW("BMP header of %u bytes", hsize);
    if (len - 14 < hsize) {
        snprintf(msg, msglen, "BMP stream is truncated in its header");
        return FS_ERR_TRUNCATED;
    }
    const uint8_t *h = data + 18;          /* the header after its size */
    uint32_t w, hgt, colors = 0, compression = 0;
    unsigned bits, pad;
    int bottom_up = 1;
    if (hsize == 12) {
        w = le16(h);
        hgt = le16(h + 2);
        bits = le16(h + 6);
        pad = 3;
    } else {
        w = le32(h);
        uint32_t hf = le32(h + 4);
        if (h[7] == 0xFF) {                /* Pillow's test for a negative height */
            hgt = (uint32_t)(0x100000000ull - hf);
            bottom_up = 0;
        } else {
            hgt = hf;
        }
        bits = le16(h + 10);
        compression = le32(h + 12);
        colors = le32(h + 28);
        pad = 4;
    }
    size_t pos = 14 + (size_t)hsize;       /* where Pillow reads on */
    int kind;
    if (compression == 0) {
        kind = bits <= 8 ? BMP_PAL : bits == 24 ? BMP_BGR : BMP_BGRX;
        if (bits != 1 && bits != 4 && bits != 8 && bits != 24 && bits != 32)
            PILLOW("BMP of %u bits a pixel", bits);
    } else if (compression == 3 && (bits == 24 || bits == 32)) {
        uint32_t m[4] = {0, 0, 0, 0};
        if (hsize >= 52) {
            for (int i = 0; i < (hsize >= 56 ? 4 : 3); i++) m[i] = le32(h + 36 + 4 * i);
        } else {
            if (len - pos < 12) {
                snprintf(msg, msglen, "BMP stream is truncated in its bit masks");
                return FS_ERR_TRUNCATED;
            }
            for (int i = 0; i < 3; i++) m[i] = le32(data + pos + 4 * i);
            pos += 12;
        }
        if (bits == 24 && m[0] == 0xFF0000 && m[1] == 0xFF00 && m[2] == 0xFF)
            kind = BMP_BGR;
        else if (bits == 32 && m[0] == 0xFF0000 && m[1] == 0xFF00 && m[2] == 0xFF && m[3] == 0)
            kind = BMP_BGRX;
        else if (bits == 32 && ((m[0] == 0xFF0000 && m[1] == 0xFF00 && m[2] == 0xFF &&
                                 m[3] == 0xFF000000) ||
                                (m[0] | m[1] | m[2] | m[3]) == 0))
            kind = BMP_BGRA;
        else if (bits == 32 && m[0] == 0xFF && m[1] == 0xFF00 && m[2] == 0xFF0000 &&
                 m[3] == 0xFF000000)
            kind = BMP_RGBA;
        else
            PILLOW("BMP bit fields fastseq does not read natively");
    } else {
        PILLOW("BMP compression %u", compression);
    }
    if (w == 0 || hgt == 0 || w > 0x7fffffffu || hgt > 0x7fffffffu)
        PILLOW("BMP size %ux%u", w, hgt);
    uint64_t pixels = (uint64_t)w * hgt;
    if (limits && limits->max_pixels && pixels > limits->max_pixels) {
        snprintf(msg, msglen, "image size %ux%u (%llu pixels) exceeds max_pixels=%llu",
                 w, hgt, (unsigned long long)pixels, (unsigned long long)limits->max_pixels);
        return FS_ERR_TOO_MANY_PIXELS;
    }
    if (!colors) colors = bits >= 32 ? 0 : 1u << bits;
    if (kind == BMP_PAL) {
        /* Pillow reads `colors` entries (up to 65536) at `pos`; indices
         * past 2^bits cannot occur, so only the first 256 matter. */
        if (colors > 65536) PILLOW("BMP palette of %u colours", colors);
        if ((uint64_t)pad * colors > len - pos) {
            snprintf(msg, msglen, "BMP stream is truncated in its palette");
            return FS_ERR_TRUNCATED;
        }
        int grey = 1;
        for (uint32_t i = 0; i < colors; i++) {
            const uint8_t *e = data + pos + (size_t)pad * i;
            unsigned g = colors == 2 ? (i ? 255 : 0) : i;
            if (e[0] != g || e[1] != g || e[2] != g) grey = 0;   /* g > 255: never */
            if (i < 256) {
                info->pal[i][0] = e[2];
                info->pal[i][1] = e[1];
                info->pal[i][2] = e[0];
            }
        }
        /* Pillow opens a grey ramp as "L" (or "1" for two colours) and reads
         * the pixels as 8-bit (1-bit) samples, whatever the depth. */
        if (grey && !(colors <= 2 ? bits == 1 : bits == 8))
            PILLOW("BMP grey palette Pillow reads as %s samples", colors <= 2 ? "1-bit" : "8-bit");
        if (colors < (1u << bits) && colors < 256) {
            /* An index past the palette: Pillow's palette has 256 entries,
             * (0, 0, 0) past the file's. */
            for (uint32_t i = colors; i < 256; i++)
                info->pal[i][0] = info->pal[i][1] = info->pal[i][2] = 0;
        }
        info->mode = grey && bits == 8 ? FS_MODE_L : 0;    /* "P" and "1": Pillow's */
        if (offset == 14 + (size_t)hsize) offset += (size_t)pad * colors;
        pos += (size_t)pad * colors;
    } else {
        info->mode = kind == BMP_BGRA || kind == BMP_RGBA ? FS_MODE_RGBA : FS_MODE_RGB;
    }
    if (offset == 0) offset = pos;
    /* Under 2^31 * 32 bits a row: the stride fits comfortably in 64 bits. */
    uint64_t stride = (((uint64_t)w * bits + 31) >> 3) & ~(uint64_t)3;
    if (offset > len || stride * hgt > (uint64_t)(len - offset)) {
        snprintf(msg, msglen, "BMP stream is truncated: %ux%u pixels need %llu bytes "
                 "from byte %zu, the stream has %zu", w, hgt,
                 (unsigned long long)(stride * hgt), offset, len);
        return FS_ERR_TRUNCATED;
    }
    info->width = (int)w;
    info->height = (int)hgt;
    info->kind = kind;
    info->bits = (int)bits;
    info->bottom_up = bottom_up;
    info->offset = offset;
    info->stride = (size_t)stride;
    return FS_OK;
}

int fs_bmp_decode(const fs_raw_info *info, const uint8_t *data, size_t len,
                  int out_mode, uint8_t *out, ptrdiff_t stride) {
    const int oc = fs_mode_channels(out_mode);
    if (oc == 0 || out_mode == FS_MODE_CMYK ||
        info->offset + info->stride * (size_t)info->height > len)
        return FS_ERR_ARG;
    const int bits = info->bits, kind = info->kind;
    const unsigned mask = (1u << (bits < 8 ? bits : 8)) - 1;
    for (int y = 0; y < info->height; y++) {
        int row = info->bottom_up ? info->height - 1 - y : y;
        const uint8_t *s = data + info->offset + (size_t)row * info->stride;
        uint8_t *o = out + (ptrdiff_t)y * stride;
        for (int x = 0; x < info->width; x++, o += oc) {
            unsigned r, g, b, a = 255;
            if (kind == BMP_PAL) {
                unsigned v;
                if (bits == 8) {
                    v = s[x];
                } else {
                    size_t bit = (size_t)x * (size_t)bits;
                    v = (s[bit >> 3] >> (8 - bits - (int)(bit & 7))) & mask;
                }
                r = info->pal[v][0]; g = info->pal[v][1]; b = info->pal[v][2];
            } else if (kind == BMP_BGR) {
                const uint8_t *p = s + (size_t)x * 3;
                b = p[0]; g = p[1]; r = p[2];
            } else {
                const uint8_t *p = s + (size_t)x * 4;
                if (kind == BMP_RGBA) {
                    r = p[0]; g = p[1]; b = p[2];
                } else {
                    b = p[0]; g = p[1]; r = p[2];
                }
                if (kind != BMP_BGRX) a = p[3];
            }
            if (out_mode == FS_MODE_L) {
                o[0] = fs_luma(r, g, b);
            } else {
                o[0] = (uint8_t)r; o[1] = (uint8_t)g; o[2] = (uint8_t)b;
                if (oc == 4) o[3] = (uint8_t)a;
            }
        }
    }
    return FS_OK;
}
