#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <spng.h>
#include <zlib.h>

#include "png_decode.h"
#include "resample.h"   /* fs_luma */

/* Ancillary chunks libspng keeps in memory (text, ICC profiles...) are
 * capped at Pillow's own cap on text (MAX_TEXT_MEMORY, 64 MiB); a file over
 * it goes to Pillow, which applies its own. */
#define FS_PNG_CHUNK_CACHE ((size_t)64 << 20)

/* How the decoded samples reach Pillow's pixels (see fs_png_decode). */
enum {
    SRC_G8,     /* gray 1-8 bit: libspng's G8 scales to 0-255 as Pillow's
                   "1", "L;2", "L;4" unpackers do */
    SRC_G16,    /* gray 16 bit: Pillow's "I;16", clipped to 255 by convert */
    SRC_GA,     /* gray+alpha 8/16 bit, raw; 16 bit keeps the high bytes */
    SRC_RGB,    /* RGB 8/16 bit, raw; 16 bit keeps the high bytes */
    SRC_RGBA,   /* RGBA 8/16 bit, raw; 16 bit keeps the high bytes */
    SRC_PAL     /* palette, expanded by libspng to RGBA8 with tRNS alpha */
};

struct fs_png {
    spng_ctx *ctx;          /* the current image's; NULL between images */
    struct spng_ihdr ihdr;
    int src;                /* SRC_* */
    /* Pillow's info["transparency"] for gray and RGB, compared with the
     * 8-bit pixel after Pillow's reduction; -1 = no tRNS. */
    int trns[3];
    uint8_t *buf;           /* the decode before its conversion, reused */
    size_t buf_cap;
};

int fs_is_png(const uint8_t *data, size_t len) {
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    return len >= 8 && memcmp(data, sig, 8) == 0;
}

fs_png *fs_png_new(void) { return (fs_png *)calloc(1, sizeof(fs_png)); }

void fs_png_abort(fs_png *p) {
    if (p && p->ctx) { spng_ctx_free(p->ctx); p->ctx = NULL; }
}

void fs_png_free(fs_png *p) {
    if (!p) return;
    fs_png_abort(p);
    free(p->buf);
    free(p);
}

const char *fs_png_version(void) { return spng_version_string(); }

static uint32_t be32(const uint8_t *b) {
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

/* Pillow checks the CRC of every chunk before the first IDAT and of no chunk
 * after it; libspng is told to ignore CRCs (SPNG_CRC_USE) and this does the
 * first half.  A stream that ends early is left to libspng to report. */
static int check_header_crcs(const uint8_t *data, size_t len, char *msg, size_t msglen) {
    size_t pos = 8;
    while (len - pos >= 12) {
        uint32_t n = be32(data + pos);
        const uint8_t *type = data + pos + 4;
        if (memcmp(type, "IDAT", 4) == 0 || n > len - pos - 12) return FS_OK;
        uLong crc = crc32(0L, type, 4);
        crc = crc32(crc, data + pos + 8, n);
        if ((uint32_t)crc != be32(data + pos + 8 + n)) {
            snprintf(msg, msglen, "PNG: bad CRC in %.4s chunk at byte %zu",
                     (const char *)type, pos);
            return FS_ERR_DECODE;
        }
        pos += 12 + (size_t)n;
    }
    return FS_OK;
}

/* libspng's errors as statuses.  Errors that Pillow may not share (libspng
 * is stricter about chunk order, unknown critical chunks, palette indices,
 * tRNS lengths...) go to the Pillow fallback, which either decodes the file
 * as Keras would or raises its own error. */
static int map_error(int err, const char *what, char *msg, size_t msglen) {
    switch (err) {
    case SPNG_EMEM:
        snprintf(msg, msglen, "out of memory in libspng");
        return FS_ERR_NOMEM;
    case SPNG_EIO: case SPNG_EOF: case SPNG_IO_EOF: case SPNG_EIDAT_TOO_SHORT:
        snprintf(msg, msglen, "PNG stream is truncated (%s: %s)", what, spng_strerror(err));
        return FS_ERR_TRUNCATED;
    case SPNG_EZLIB: case SPNG_EIDAT_STREAM: case SPNG_EFILTER:
        snprintf(msg, msglen, "PNG image data is corrupt (%s)", spng_strerror(err));
        return FS_ERR_DECODE;
    default:
        snprintf(msg, msglen, "libspng: %s", spng_strerror(err));
        return FS_ERR_NOT_JPEG;
    }
}

int fs_png_read_header(fs_png *p, const uint8_t *data, size_t len,
                       const fs_limits *limits, fs_png_info *info,
                       char *msg, size_t msglen) {
    fs_png_abort(p);
    if (!fs_is_png(data, len)) {
        snprintf(msg, msglen, "not a PNG stream");
        return FS_ERR_NOT_JPEG;
    }
    int st = check_header_crcs(data, len, msg, msglen);
    if (st != FS_OK) return st;
    p->ctx = spng_ctx_new(0);
    if (!p->ctx) {
        snprintf(msg, msglen, "out of memory creating a libspng context");
        return FS_ERR_NOMEM;
    }
    int err = spng_set_crc_action(p->ctx, SPNG_CRC_USE, SPNG_CRC_USE);
    if (!err) err = spng_set_chunk_limits(p->ctx, len, FS_PNG_CHUNK_CACHE);
    if (!err) err = spng_set_png_buffer(p->ctx, data, len);
    if (!err) err = spng_get_ihdr(p->ctx, &p->ihdr);
    if (err) {
        fs_png_abort(p);
        return map_error(err, "header", msg, msglen);
    }
    const struct spng_ihdr *h = &p->ihdr;
    uint64_t pixels = (uint64_t)h->width * h->height;
    if (limits && limits->max_pixels && pixels > limits->max_pixels) {
        fs_png_abort(p);
        snprintf(msg, msglen, "image size %ux%u (%llu pixels) exceeds max_pixels=%llu",
                 h->width, h->height, (unsigned long long)pixels,
                 (unsigned long long)limits->max_pixels);
        return FS_ERR_TOO_MANY_PIXELS;
    }
    if (h->width > 0x7fffffffu / 8 || h->height > 0x7fffffffu) {
        fs_png_abort(p);
        snprintf(msg, msglen, "image size %ux%u too large", h->width, h->height);
        return FS_ERR_OVERFLOW;
    }
    int wide = h->bit_depth == 16;
    p->trns[0] = p->trns[1] = p->trns[2] = -1;
    switch (h->color_type) {
    case SPNG_COLOR_TYPE_GRAYSCALE: p->src = wide ? SRC_G16 : SRC_G8; break;
    case SPNG_COLOR_TYPE_GRAYSCALE_ALPHA: p->src = SRC_GA; break;
    case SPNG_COLOR_TYPE_TRUECOLOR: p->src = SRC_RGB; break;
    case SPNG_COLOR_TYPE_TRUECOLOR_ALPHA: p->src = SRC_RGBA; break;
    default: p->src = SRC_PAL; break;
    }
    struct spng_trns t;
    err = spng_get_trns(p->ctx, &t);
    if (err == SPNG_OK) {
        if (p->src == SRC_G8 || p->src == SRC_G16) {
            /* Pillow: "1" images compare 0/255 pixels with 255 if the raw
             * value is nonzero, else 0; "L" (2-8 bit, scaled to 0-255) and
             * "I;16" (clipped to 255) compare with the raw, unscaled value. */
            p->trns[0] = h->bit_depth == 1 ? (t.gray ? 255 : 0) : t.gray;
        } else if (p->src == SRC_RGB) {
            /* Raw 16-bit values against the high bytes of a 16-bit image. */
            p->trns[0] = t.red; p->trns[1] = t.green; p->trns[2] = t.blue;
        }
    } else if (err != SPNG_ECHUNKAVAIL) {
        fs_png_abort(p);
        return map_error(err, "tRNS", msg, msglen);
    }
    info->width = (int)h->width;
    info->height = (int)h->height;
    info->bit_depth = h->bit_depth;
    info->color_type = h->color_type;
    info->interlaced = h->interlace_method;
    info->mode = (p->src == SRC_G8 && h->bit_depth > 1) ? FS_MODE_L
               : p->src == SRC_RGB ? FS_MODE_RGB
               : p->src == SRC_RGBA ? FS_MODE_RGBA
               /* Pillow opens 16-bit gray+alpha as RGBA (L, L, L, A) */
               : (p->src == SRC_GA && wide) ? FS_MODE_RGBA : 0;
    return FS_OK;
}

/* libspng's output format, and whether it is already out_mode. */
static int spng_format(const fs_png *p, int out_mode, int *direct) {
    int eight = p->ihdr.bit_depth <= 8;
    *direct = 0;
    switch (p->src) {
    case SRC_G8: *direct = out_mode == FS_MODE_L; return SPNG_FMT_G8;
    case SRC_RGB: *direct = eight && out_mode == FS_MODE_RGB; return SPNG_FMT_RAW;
    case SRC_RGBA: *direct = eight && out_mode == FS_MODE_RGBA; return SPNG_FMT_RAW;
    case SRC_PAL: *direct = out_mode == FS_MODE_RGBA; return SPNG_FMT_RGBA8;
    default: return SPNG_FMT_RAW;
    }
}

uint64_t fs_png_extra_bytes(const fs_png *p, int out_mode) {
    int direct;
    int fmt = spng_format(p, out_mode, &direct);
    if (direct || !p->ctx) return 0;
    size_t n = 0;
    if (spng_decoded_image_size(p->ctx, fmt, &n)) return UINT64_MAX;
    return n;
}

/* One decoded row (in p->src's layout, `in`) to Pillow's convert(out_mode). */
static void convert_row(const fs_png *p, const uint8_t *in, uint8_t *out,
                        int out_mode, int width) {
    const int oc = fs_mode_channels(out_mode);
    /* Raw samples are big-endian: a 16-bit one's high byte comes first. */
    const int step = p->ihdr.bit_depth == 16 ? 2 : 1;
    for (int x = 0; x < width; x++, out += oc) {
        unsigned r, g, b, a = 255;
        switch (p->src) {
        case SRC_G8:
            r = g = b = in[x];
            if ((int)r == p->trns[0]) a = 0;
            break;
        case SRC_G16: {
            unsigned v = (unsigned)in[2 * x] << 8 | in[2 * x + 1];
            r = g = b = v > 255 ? 255 : v;
            if ((int)r == p->trns[0]) a = 0;
            break;
        }
        case SRC_GA:
            r = g = b = in[2 * step * x];
            a = in[2 * step * x + step];
            break;
        case SRC_RGB:
            r = in[3 * step * x];
            g = in[3 * step * x + step];
            b = in[3 * step * x + 2 * step];
            if ((int)r == p->trns[0] && (int)g == p->trns[1] && (int)b == p->trns[2])
                a = 0;
            break;
        case SRC_RGBA:
            r = in[4 * step * x];
            g = in[4 * step * x + step];
            b = in[4 * step * x + 2 * step];
            a = in[4 * step * x + 3 * step];
            break;
        default:   /* SRC_PAL, as RGBA8 */
            r = in[4 * x]; g = in[4 * x + 1]; b = in[4 * x + 2]; a = in[4 * x + 3];
            break;
        }
        if (out_mode == FS_MODE_L) {
            /* Gray sources are L already (r == g == b and Pillow's luma
             * of a gray pixel is itself). */
            out[0] = fs_luma(r, g, b);
        } else {
            out[0] = (uint8_t)r; out[1] = (uint8_t)g; out[2] = (uint8_t)b;
            if (oc == 4) out[3] = (uint8_t)a;
        }
    }
}

int fs_png_decode(fs_png *p, int out_mode, uint8_t *out, ptrdiff_t stride,
                  char *msg, size_t msglen) {
    if (!p->ctx || !out || fs_mode_channels(out_mode) == 0 || out_mode == FS_MODE_CMYK) {
        fs_png_abort(p);
        snprintf(msg, msglen, "invalid PNG decode request");
        return FS_ERR_ARG;
    }
    const int width = (int)p->ihdr.width, height = (int)p->ihdr.height;
    int direct;
    int fmt = spng_format(p, out_mode, &direct);
    size_t n = 0;
    int err = spng_decoded_image_size(p->ctx, fmt, &n);
    if (err) { fs_png_abort(p); return map_error(err, "size", msg, msglen); }
    const size_t rowbytes = n / (size_t)height;
    uint8_t *dst;
    if (direct && stride == (ptrdiff_t)rowbytes) {
        dst = out;
    } else {
        if (p->buf_cap < n) {
            free(p->buf);
            p->buf = (uint8_t *)malloc(n);
            p->buf_cap = p->buf ? n : 0;
            if (!p->buf) {
                fs_png_abort(p);
                snprintf(msg, msglen, "out of memory for a %ux%u PNG",
                         p->ihdr.width, p->ihdr.height);
                return FS_ERR_NOMEM;
            }
        }
        dst = p->buf;
    }
    /* Gamma (gAMA, iCCP, sRGB) is ignored, as Pillow ignores it; tRNS is
     * applied by libspng only to palettes (as alpha), the rest here. */
    err = spng_decode_image(p->ctx, dst, n, fmt,
                            p->src == SRC_PAL ? SPNG_DECODE_TRNS : 0);
    fs_png_abort(p);
    if (err) return map_error(err, "image data", msg, msglen);
    if (dst == out) return FS_OK;
    for (int y = 0; y < height; y++) {
        const uint8_t *row = dst + (size_t)y * rowbytes;
        uint8_t *o = out + (ptrdiff_t)y * stride;
        if (direct) memcpy(o, row, rowbytes);
        else convert_row(p, row, o, out_mode, width);
    }
    return FS_OK;
}
