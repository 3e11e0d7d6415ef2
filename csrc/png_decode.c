#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <png.h>
#include <zlib.h>

#include "png_decode.h"
#include "resample.h"   /* fs_luma */

/*
 * libpng is used for what it does and Pillow does the same way: chunk
 * parsing, zlib, unfiltering and Adam7.  It is asked for no transformation:
 * rows arrive as the PNG stores them (samples of 1-16 bits, big-endian) and
 * convert_row turns them into Pillow's pixels.  libpng, unlike libspng,
 * finishes the zlib stream after the last row (png_read_finish_IDAT), so a
 * bad adler32 is caught as Pillow catches it.
 */

/* The most libpng may allocate for one ancillary chunk it keeps (tRNS,
 * PLTE, gAMA...; text and ICC profiles are not kept at all, see
 * fs_png_read_header): past it libpng warns and the file goes to Pillow. */
#define FS_PNG_CHUNK_MAX ((png_alloc_size_t)1 << 20)

/* Chunks fastseq never reads and libpng would otherwise decompress and hold
 * until the image is released, unaccounted by max_memory: a 60 KB zTXt
 * expands to 60 MiB.  Pillow ignores them for pixels too. */
static const png_byte fs_png_ignored[] =
    "tEXt\0zTXt\0iTXt\0iCCP\0sPLT\0eXIf";

/* Where the decode stood when libpng reported something (fs_png.stage). */
enum { STAGE_HEADER, STAGE_ROWS, STAGE_DONE };

struct fs_png {
    png_structp png;        /* the current image's; NULL between images */
    png_infop info;
    const uint8_t *data;    /* the stream, and how much libpng has read */
    size_t len, pos;
    int stage;
    uint64_t rows_left;     /* stored rows (all passes) not yet unfiltered */
    size_t done_end;        /* end of the chunk that completed the image */
    int ran_out;            /* libpng asked for bytes past the end */
    int warned;             /* a warning (benign error) in the current stage */
    int zlib_warning;       /* after the rows: the zlib stream is damaged */
    char why[160];          /* libpng's error message */
    uint32_t width, height;
    int depth, ctype, interlaced, channels;
    size_t rowbytes;        /* of one stored row */
    /* Pillow's info["transparency"] for gray and RGB, compared with the
     * 8-bit pixel after Pillow's reduction; -1 = no tRNS. */
    int trns[3];
    uint8_t pal[256][4];    /* palette as Pillow's RGBA: past PLTE (0,0,0) */
    uint8_t *buf;           /* a row, or an interlaced image; reused */
    size_t buf_cap;
};

int fs_is_png(const uint8_t *data, size_t len) {
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    return len >= 8 && memcmp(data, sig, 8) == 0;
}

fs_png *fs_png_new(void) { return (fs_png *)calloc(1, sizeof(fs_png)); }

void fs_png_abort(fs_png *p) {
    if (p && p->png) png_destroy_read_struct(&p->png, &p->info, NULL);
    if (p) p->png = NULL, p->info = NULL;
}

void fs_png_free(fs_png *p) {
    if (!p) return;
    fs_png_abort(p);
    free(p->buf);
    free(p);
}

const char *fs_png_version(void) { return png_get_libpng_ver(NULL); }

const char *fs_zlib_version(void) { return zlibVersion(); }

static void on_error(png_structp png, png_const_charp m) {
    fs_png *p = (fs_png *)png_get_error_ptr(png);
    snprintf(p->why, sizeof p->why, "%s", m);
    png_longjmp(png, 1);
}

/* Benign errors are warnings (png_set_benign_errors): before the image
 * data they mean libpng departs from the file (it drops a chunk Pillow
 * would use), so the file goes to Pillow; after the last row they come from
 * finishing the zlib stream, and all but the two about surplus data (which
 * Pillow ignores) are a damaged stream. */
static void on_warning(png_structp png, png_const_charp m) {
    fs_png *p = (fs_png *)png_get_error_ptr(png);
    p->warned = 1;
    if (p->stage == STAGE_DONE && !strstr(m, "Extra compressed data") &&
        !strstr(m, "Too much image data") && !p->zlib_warning) {
        p->zlib_warning = 1;
        snprintf(p->why, sizeof p->why, "%s", m);
    }
}

static void on_read(png_structp png, png_bytep out, png_size_t n) {
    fs_png *p = (fs_png *)png_get_io_ptr(png);
    if (p->stage == STAGE_DONE && p->pos >= p->done_end)
        png_error(png, "after the image data");   /* see on_row */
    if (n > p->len - p->pos) {
        p->ran_out = 1;
        png_error(png, "stream ends early");
    }
    memcpy(out, p->data + p->pos, n);
    p->pos += n;
}

static uint32_t be32(const uint8_t *b) {
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

/* Pillow checks the CRC of every chunk before the first IDAT and of no chunk
 * after it; libpng is told to ignore CRCs (PNG_CRC_QUIET_USE) and this does
 * the first half.  A stream that ends early is left to libpng to report. */
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

/* Pillow's view of the header: its tRNS comparisons and its palette. */
static void pillow_tables(fs_png *p) {
    png_bytep alpha = NULL;
    int n_alpha = 0;
    png_color_16p colour = NULL;
    p->trns[0] = p->trns[1] = p->trns[2] = -1;
    int has_trns = png_get_tRNS(p->png, p->info, &alpha, &n_alpha, &colour) != 0;
    if (has_trns && p->ctype == PNG_COLOR_TYPE_GRAY) {
        /* "1" images compare 0/255 pixels with 255 if the raw value is
         * nonzero, else 0; "L" (2-8 bit, scaled to 0-255) and "I;16"
         * (clipped to 255) compare with the raw, unscaled value. */
        p->trns[0] = p->depth == 1 ? (colour->gray ? 255 : 0) : colour->gray;
    } else if (has_trns && p->ctype == PNG_COLOR_TYPE_RGB) {
        /* Raw 16-bit values, against the high bytes of a 16-bit image. */
        p->trns[0] = colour->red;
        p->trns[1] = colour->green;
        p->trns[2] = colour->blue;
    }
    memset(p->pal, 0, sizeof p->pal);
    if (p->ctype == PNG_COLOR_TYPE_PALETTE) {
        png_colorp plte = NULL;
        int n = 0;
        png_get_PLTE(p->png, p->info, &plte, &n);
        for (int i = 0; i < 256; i++) {
            if (i < n) {
                p->pal[i][0] = plte[i].red;
                p->pal[i][1] = plte[i].green;
                p->pal[i][2] = plte[i].blue;
            }
            p->pal[i][3] = has_trns && i < n_alpha ? alpha[i] : 255;
        }
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
    if (len < 16 || memcmp(data + 12, "IHDR", 4) != 0) {
        /* Pillow cannot identify it either; its fallback says so. */
        snprintf(msg, msglen, "PNG signature without an IHDR chunk");
        return FS_ERR_NOT_JPEG;
    }
    int st = check_header_crcs(data, len, msg, msglen);
    if (st != FS_OK) return st;
    p->data = data;
    p->len = len;
    p->pos = 0;
    p->stage = STAGE_HEADER;
    p->ran_out = p->warned = p->zlib_warning = 0;
    p->why[0] = '\0';
    p->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, p, on_error, on_warning);
    if (p->png) p->info = png_create_info_struct(p->png);
    if (!p->info) {
        fs_png_abort(p);
        snprintf(msg, msglen, "out of memory creating a libpng decoder");
        return FS_ERR_NOMEM;
    }
    if (setjmp(png_jmpbuf(p->png))) {
        /* Anything libpng refuses here (an unknown critical chunk, chunks
         * out of order...) Pillow may accept: let it decide; only a stream
         * that ends inside the header is reported here. */
        int ran_out = p->ran_out;
        fs_png_abort(p);
        snprintf(msg, msglen, "PNG: %s", p->why);
        return ran_out ? FS_ERR_TRUNCATED : FS_ERR_NOT_JPEG;
    }
    png_set_read_fn(p->png, p, on_read);
    png_set_crc_action(p->png, PNG_CRC_QUIET_USE, PNG_CRC_QUIET_USE);
    png_set_benign_errors(p->png, 1);
    png_set_user_limits(p->png, PNG_UINT_31_MAX, PNG_UINT_31_MAX);
    png_set_chunk_malloc_max(p->png, FS_PNG_CHUNK_MAX);
    /* libpng's default cap of 1000 cached ancillary chunks stays (0 would
     * lift it); past it libpng warns and the file goes to Pillow. */
    png_set_keep_unknown_chunks(p->png, PNG_HANDLE_CHUNK_NEVER, fs_png_ignored,
                                (int)(sizeof fs_png_ignored / 5));
    /* An index past PLTE is black, opaque, as Pillow makes it. */
    png_set_check_for_invalid_index(p->png, -1);
    png_read_info(p->png, p->info);
    if (p->warned) {
        fs_png_abort(p);
        snprintf(msg, msglen, "PNG: libpng warned: %s", p->why);
        return FS_ERR_NOT_JPEG;
    }
    p->width = png_get_image_width(p->png, p->info);
    p->height = png_get_image_height(p->png, p->info);
    p->depth = png_get_bit_depth(p->png, p->info);
    p->ctype = png_get_color_type(p->png, p->info);
    p->interlaced = png_get_interlace_type(p->png, p->info) != PNG_INTERLACE_NONE;
    p->channels = png_get_channels(p->png, p->info);
    uint64_t pixels = (uint64_t)p->width * p->height;
    if (limits && limits->max_pixels && pixels > limits->max_pixels) {
        fs_png_abort(p);
        snprintf(msg, msglen, "image size %ux%u (%llu pixels) exceeds max_pixels=%llu",
                 p->width, p->height, (unsigned long long)pixels,
                 (unsigned long long)limits->max_pixels);
        return FS_ERR_TOO_MANY_PIXELS;
    }
    /* PNG caps both sides at 2^31 - 1; rows of up to 8 bytes a pixel. */
    if (p->width > 0x7fffffffu / 8) {
        fs_png_abort(p);
        snprintf(msg, msglen, "image size %ux%u too large", p->width, p->height);
        return FS_ERR_OVERFLOW;
    }
    p->rowbytes = ((size_t)p->width * (size_t)(p->channels * p->depth) + 7) / 8;
    /* Deflate expands at most 1032:1 (258-byte matches in 2 bits), so a
     * stream of `len` bytes holds at most 1032 * len bytes of image data,
     * and every pixel is stored once (in one Adam7 pass, if interlaced).
     * Checked before anything is allocated for the pixels: a few bytes
     * declaring a huge image would otherwise cost its full size. */
    uint64_t pixel_bits = pixels * (uint64_t)(p->channels * p->depth);
    if (pixel_bits / 8 > (uint64_t)len * 1032u) {
        fs_png_abort(p);
        snprintf(msg, msglen, "PNG stream is truncated: a %ux%u image needs more "
                 "data than %zu bytes can hold", p->width, p->height, len);
        return FS_ERR_TRUNCATED;
    }
    pillow_tables(p);
    int wide = p->depth == 16;
    info->width = (int)p->width;
    info->height = (int)p->height;
    info->bit_depth = p->depth;
    info->color_type = p->ctype;
    info->interlaced = p->interlaced;
    info->mode = p->ctype == PNG_COLOR_TYPE_GRAY ? (p->depth == 1 || wide ? 0 : FS_MODE_L)
               : p->ctype == PNG_COLOR_TYPE_RGB ? FS_MODE_RGB
               : p->ctype == PNG_COLOR_TYPE_RGB_ALPHA ? FS_MODE_RGBA
               /* Pillow opens 16-bit gray+alpha as RGBA (L, L, L, A) */
               : (p->ctype == PNG_COLOR_TYPE_GRAY_ALPHA && wide) ? FS_MODE_RGBA : 0;
    return FS_OK;
}

/* Whether a stored row is already a row of out_mode. */
static int is_direct(const fs_png *p, int out_mode) {
    if (p->depth != 8) return 0;
    return (p->ctype == PNG_COLOR_TYPE_GRAY && out_mode == FS_MODE_L) ||
           (p->ctype == PNG_COLOR_TYPE_RGB && out_mode == FS_MODE_RGB) ||
           (p->ctype == PNG_COLOR_TYPE_RGB_ALPHA && out_mode == FS_MODE_RGBA);
}

uint64_t fs_png_extra_bytes(const fs_png *p, int out_mode) {
    if (!p->png) return 0;
    /* An interlaced image is assembled whole before its conversion; other
     * images are converted row by row (or read straight into the output). */
    /* libpng's own row buffers: the current and the previous row, each
     * rowbytes plus a small filter/alignment margin. */
    uint64_t libpng_rows = 2 * ((uint64_t)p->rowbytes + 64);
    if (p->interlaced) return libpng_rows + (uint64_t)p->rowbytes * p->height;
    return libpng_rows + (is_direct(p, out_mode) ? 0 : p->rowbytes);
}

void fs_png_trim(fs_png *p, size_t keep) {
    if (p && p->buf_cap > keep) {
        free(p->buf);
        p->buf = NULL;
        p->buf_cap = 0;
    }
}

/* One stored row to Pillow's convert(out_mode). */
static void convert_row(const fs_png *p, const uint8_t *in, uint8_t *out,
                        int out_mode, int width) {
    const int oc = fs_mode_channels(out_mode);
    const int d = p->depth, ch = p->channels;
    /* 16-bit samples are big-endian: the high byte comes first. */
    const int step = d == 16 ? 2 : 1;
    const unsigned mask = (1u << (d < 8 ? d : 8)) - 1;
    /* Pillow's "1", "L;2", "L;4" unpackers scale to 0-255. */
    const unsigned scale = d < 8 ? 255u / mask : 1;
    for (int x = 0; x < width; x++, out += oc) {
        unsigned r, g, b, a = 255, v;
        if (d < 8) {
            size_t bit = (size_t)x * (size_t)d;
            v = (in[bit >> 3] >> (8 - d - (int)(bit & 7))) & mask;
        } else {
            v = in[(size_t)x * ch * step];
        }
        switch (p->ctype) {
        case PNG_COLOR_TYPE_GRAY:
            if (d == 16) {
                /* Pillow's "I;16" converts by clipping at 255. */
                unsigned w16 = v << 8 | in[2 * (size_t)x + 1];
                r = w16 > 255 ? 255 : w16;
            } else {
                r = v * scale;
            }
            g = b = r;
            if ((int)r == p->trns[0]) a = 0;
            break;
        case PNG_COLOR_TYPE_GRAY_ALPHA:
            r = g = b = v;
            a = in[((size_t)x * 2 + 1) * step];
            break;
        case PNG_COLOR_TYPE_RGB:
            r = v;
            g = in[((size_t)x * 3 + 1) * step];
            b = in[((size_t)x * 3 + 2) * step];
            if ((int)r == p->trns[0] && (int)g == p->trns[1] && (int)b == p->trns[2])
                a = 0;
            break;
        case PNG_COLOR_TYPE_RGB_ALPHA:
            r = v;
            g = in[((size_t)x * 4 + 1) * step];
            b = in[((size_t)x * 4 + 2) * step];
            a = in[((size_t)x * 4 + 3) * step];
            break;
        default:   /* palette */
            r = p->pal[v][0]; g = p->pal[v][1]; b = p->pal[v][2]; a = p->pal[v][3];
            break;
        }
        if (out_mode == FS_MODE_L) {
            /* Pillow's luma of a gray pixel is itself. */
            out[0] = fs_luma(r, g, b);
        } else {
            out[0] = (uint8_t)r; out[1] = (uint8_t)g; out[2] = (uint8_t)b;
            if (oc == 4) out[3] = (uint8_t)a;
        }
    }
}

/* Called by libpng for every row (of every Adam7 pass) once it is
 * unfiltered, before libpng copies it out and, after the last one, finishes
 * the zlib stream: marks where the image data are complete. */
static void on_row(png_structp png, png_row_infop row, png_bytep data) {
    (void)row; (void)data;
    fs_png *p = (fs_png *)png_get_user_transform_ptr(png);
    if (--p->rows_left != 0) return;
    /* Pillow stops reading when the image is complete: the rest of the
     * zlib stream (its Adler-32) is checked only as far as the chunk that
     * held the last row, and a chunk after it is never read.  on_read stops
     * libpng at the same place: the end of that chunk. */
    p->stage = STAGE_DONE;
    size_t pos = 8;
    p->done_end = p->len;
    while (p->len - pos >= 12) {
        size_t end = pos + 12 + (size_t)be32(p->data + pos);
        if (end < pos || end >= p->pos) {
            if (end >= pos) p->done_end = end;
            break;
        }
        pos = end;
    }
}

static uint64_t stored_rows(const fs_png *p) {
    if (!p->interlaced) return p->height;
    uint64_t n = 0;
    for (int pass = 0; pass < 7; pass++)
        if (PNG_PASS_COLS(p->width, pass) && PNG_PASS_ROWS(p->height, pass))
            n += PNG_PASS_ROWS(p->height, pass);
    return n;
}

int fs_png_decode(fs_png *p, int out_mode, uint8_t *out, ptrdiff_t stride,
                  char *msg, size_t msglen) {
    if (!p->png || !out || out_mode == FS_MODE_CMYK || fs_mode_channels(out_mode) == 0) {
        fs_png_abort(p);
        snprintf(msg, msglen, "invalid PNG decode request");
        return FS_ERR_ARG;
    }
    const int direct = is_direct(p, out_mode);
    const int h = (int)p->height, w = (int)p->width;
    size_t need = p->interlaced ? p->rowbytes * p->height : direct ? 0 : p->rowbytes;
    if (need > p->buf_cap) {
        free(p->buf);
        p->buf = (uint8_t *)malloc(need);
        p->buf_cap = p->buf ? need : 0;
        if (!p->buf) {
            fs_png_abort(p);
            snprintf(msg, msglen, "out of memory for a %ux%u PNG", p->width, p->height);
            return FS_ERR_NOMEM;
        }
    }
    p->stage = STAGE_ROWS;
    p->rows_left = stored_rows(p);
    if (setjmp(png_jmpbuf(p->png))) {
        if (p->stage != STAGE_DONE) {
            int truncated = p->ran_out || strstr(p->why, "Not enough image data");
            fs_png_abort(p);
            snprintf(msg, msglen, truncated ? "PNG stream is truncated (%s)"
                                            : "PNG image data is corrupt (%s)", p->why);
            return truncated ? FS_ERR_TRUNCATED : FS_ERR_DECODE;
        }
        /* Every row is in, and what failed lies after the image data
         * (the end of a stream whose IDAT chunks stop early), which
         * Pillow does not read either.  The last row of a flat image is
         * still to be converted. */
        if (!p->interlaced && !direct)
            convert_row(p, p->buf, out + (ptrdiff_t)(h - 1) * stride, out_mode, w);
    } else {
        png_set_read_user_transform_fn(p->png, on_row);
        png_set_user_transform_info(p->png, p, 0, 0);
        if (p->interlaced) {
            int passes = png_set_interlace_handling(p->png);
            png_read_update_info(p->png, p->info);
            for (int pass = 0; pass < passes; pass++)
                for (int y = 0; y < h; y++)
                    png_read_row(p->png, p->buf + (size_t)y * p->rowbytes, NULL);
        } else {
            png_read_update_info(p->png, p->info);
            for (int y = 0; y < h; y++) {
                uint8_t *o = out + (ptrdiff_t)y * stride;
                png_read_row(p->png, direct ? o : p->buf, NULL);
                if (!direct) convert_row(p, p->buf, o, out_mode, w);
            }
        }
    }
    int damaged = p->zlib_warning;
    fs_png_abort(p);
    if (damaged) {
        snprintf(msg, msglen, "PNG image data is corrupt (%s)", p->why);
        return FS_ERR_DECODE;
    }
    if (p->interlaced)
        for (int y = 0; y < h; y++)
            convert_row(p, p->buf + (size_t)y * p->rowbytes, out + (ptrdiff_t)y * stride,
                        out_mode, w);
    return FS_OK;
}
