/*
 * JPEG decoding through libjpeg-turbo's libjpeg API (see jpeg_decode.h).
 *
 * Error handling: libjpeg reports fatal errors through error_exit, which must
 * not return; ours longjmps back to the fs_jpeg_* call that started the
 * operation, which aborts the decompressor (keeping the handle reusable) and
 * returns a status with libjpeg's message.  Warnings (corrupt-but-decodable
 * data, "extraneous bytes before marker", bad ICC markers) are ignored, as
 * Pillow ignores them, except "Premature end of JPEG file" and "premature
 * end of data segment" at a marker other than a restart marker (the entropy
 * decoder needed bits past the scan's data, and libjpeg fills the rest of the
 * image with grey), which mean the image is truncated and are errors unless
 * the caller allows truncation.
 */
#include <limits.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>

#include "jpeg_decode.h"

#define FS_XSTR(x) FS_STR(x)
#define FS_STR(x) #x

typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
    int status;                 /* status to return after the longjmp */
    int allow_truncated;
    char msg[JMSG_LENGTH_MAX];
} fs_jpeg_err;

typedef struct {
    struct jpeg_progress_mgr pub;
    int max_scans;
    uint64_t max_scan_pixels;
    uint64_t scan_pixels;        /* work of the scans seen so far */
    int last_scan;               /* input_scan_number already counted */
} fs_jpeg_progress;

struct fs_jpeg {
    struct jpeg_decompress_struct cinfo;
    fs_jpeg_err err;
    fs_jpeg_progress progress;
    int has_header;              /* a header was read and not yet released */
    int used;                    /* cinfo has seen a stream since it was created */
    uint64_t max_memory;         /* limits->max_memory of the current image */
    JSAMPROW *rows;              /* grow-only row-pointer array */
    size_t rows_cap;
};

static void fs_error_exit(j_common_ptr cinfo) {
    fs_jpeg_err *err = (fs_jpeg_err *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, err->msg);
    switch (err->pub.msg_code) {
    case JERR_NO_BACKING_STORE:
        /* jmemnobs.c: a whole-image buffer did not fit in max_memory_to_use
         * (set by fs_jpeg_check_memory), and there is no backing store. */
        snprintf(err->msg, sizeof err->msg,
                 "libjpeg's image buffers would exceed max_memory");
        err->status = FS_ERR_MEMORY_LIMIT;
        break;
    case JERR_OUT_OF_MEMORY: err->status = FS_ERR_NOMEM; break;
    default: err->status = FS_ERR_DECODE;
    }
    longjmp(err->jb, 1);
}

static void fs_emit_message(j_common_ptr cinfo, int msg_level) {
    fs_jpeg_err *err = (fs_jpeg_err *)cinfo->err;
    if (msg_level >= 0) return;                 /* trace messages */
    err->pub.num_warnings++;
    int truncated = err->pub.msg_code == JWRN_JPEG_EOF;
    if (err->pub.msg_code == JWRN_HIT_MARKER && cinfo->is_decompressor) {
        /* The entropy decoder ran into a marker (saved in unread_marker)
         * before it had the bits it needed.  A restart marker (RST0-7) ends
         * one damaged segment and decoding resyncs after it, as in Pillow
         * (corpus: hopper_bad_exif.jpg); any other marker (EOI, the next
         * SOS) means the rest of this scan's data is missing. */
        int m = ((j_decompress_ptr)cinfo)->unread_marker;
        truncated = !(m >= JPEG_RST0 && m <= JPEG_RST0 + 7);
    }
    if (truncated && !err->allow_truncated) {
        (*cinfo->err->format_message)(cinfo, err->msg);
        err->status = FS_ERR_TRUNCATED;
        longjmp(err->jb, 1);
    }
}

static void fs_output_message(j_common_ptr cinfo) { (void)cinfo; }

/* Bounds the work a multi-scan stream can demand.  Each scan walks every
 * block of the components it codes, and a refinement scan over a whole
 * image can be coded in a few bytes (EOB runs), so a small file with
 * thousands of scans is a denial of service.  max_scans (libjpeg-turbo's
 * TurboJPEG limit) counts scans; max_scan_pixels counts their cost: the
 * samples of each scan's components, summed over scans, checked when a scan
 * starts, before any of its data is decoded.  libjpeg calls this before
 * each iMCU row it consumes, so a new input_scan_number is seen at once. */
static void fs_progress_monitor(j_common_ptr cinfo) {
    fs_jpeg_progress *p = (fs_jpeg_progress *)cinfo->progress;
    if (!cinfo->is_decompressor) return;
    j_decompress_ptr d = (j_decompress_ptr)cinfo;
    int scan = d->input_scan_number;
    if (scan == p->last_scan) return;
    p->last_scan = scan;
    fs_jpeg_err *err = (fs_jpeg_err *)cinfo->err;
    if (p->max_scans > 0 && scan > p->max_scans) {
        snprintf(err->msg, sizeof err->msg,
                 "progressive JPEG has more than %d scans (max_scans)",
                 p->max_scans);
        err->status = FS_ERR_TOO_MANY_SCANS;
        longjmp(err->jb, 1);
    }
    /* A component is at most 65535/8+1 x 65535/8+1 blocks of 64 samples:
     * under 2^32 samples, and at most 4 per scan, so a scan adds under 2^34
     * and the sum cannot wrap before the check stops it (or, unlimited,
     * before 2^30 scans). */
    uint64_t add = 0;
    for (int ci = 0; ci < d->comps_in_scan && ci < MAX_COMPS_IN_SCAN; ci++) {
        const jpeg_component_info *c = d->cur_comp_info[ci];
        if (c) add += (uint64_t)c->width_in_blocks * c->height_in_blocks * DCTSIZE2;
    }
    p->scan_pixels += add;
    if (p->max_scan_pixels && p->scan_pixels > p->max_scan_pixels) {
        snprintf(err->msg, sizeof err->msg,
                 "JPEG scans decode more than max_scan_pixels=%llu samples "
                 "(%llu after %d scans)",
                 (unsigned long long)p->max_scan_pixels,
                 (unsigned long long)p->scan_pixels, scan);
        err->status = FS_ERR_WORK_LIMIT;
        longjmp(err->jb, 1);
    }
}

static void fs_set_msg(char *msg, size_t msglen, const char *text) {
    if (msg && msglen) snprintf(msg, msglen, "%s", text);
}

int fs_is_jpeg(const uint8_t *data, size_t len) {
    return len >= 2 && data[0] == 0xFF && data[1] == 0xD8;
}

fs_jpeg *fs_jpeg_new(void) {
    /* volatile: read after a longjmp out of jpeg_create_decompress. */
    fs_jpeg *volatile j = (fs_jpeg *)calloc(1, sizeof *j);
    if (!j) return NULL;
    j->cinfo.err = jpeg_std_error(&j->err.pub);
    j->err.pub.error_exit = fs_error_exit;
    j->err.pub.emit_message = fs_emit_message;
    j->err.pub.output_message = fs_output_message;
    if (setjmp(j->err.jb)) {            /* out of memory in create */
        jpeg_destroy_decompress(&j->cinfo);
        free(j);
        return NULL;
    }
    jpeg_create_decompress(&j->cinfo);
    j->progress.pub.progress_monitor = fs_progress_monitor;
    j->cinfo.progress = &j->progress.pub;
    return j;
}

void fs_jpeg_free(fs_jpeg *j) {
    if (!j) return;
    jpeg_destroy_decompress(&j->cinfo);
    free(j->rows);
    free(j);
}

void fs_jpeg_abort(fs_jpeg *j) {
    jpeg_abort_decompress(&j->cinfo);
    j->has_header = 0;
}

static int fs_fail(fs_jpeg *j, int status, char *msg, size_t msglen) {
    if (status == FS_ERR_TRUNCATED) {
        if (msg && msglen)
            snprintf(msg, msglen, "image file is truncated (%s)", j->err.msg);
    } else {
        fs_set_msg(msg, msglen, j->err.msg);
    }
    fs_jpeg_abort(j);
    return status;
}

/* A decompressor that has seen no stream.  libjpeg keeps the quantisation
 * and Huffman tables across jpeg_abort_decompress (for abbreviated
 * datastreams), so a stream that omits its DQT/DHT would decode with the
 * tables of whatever image this thread decoded before: a result that
 * depends on the worker's history, where Pillow (a fresh decompressor per
 * image) fails.  Re-creating costs a few microseconds against a decode's
 * milliseconds (the image pools are freed per image anyway).
 * jpeg_CreateDecompress keeps cinfo->err, so the handlers stay ours. */
static int fresh_decompressor(fs_jpeg *j, char *msg, size_t msglen) {
    if (!j->used) return FS_OK;
    jpeg_destroy_decompress(&j->cinfo);
    if (setjmp(j->err.jb)) {            /* out of memory in create */
        jpeg_destroy_decompress(&j->cinfo);
        fs_set_msg(msg, msglen, "out of memory creating decoder state");
        return FS_ERR_NOMEM;            /* j->used stays set: retried next image */
    }
    jpeg_create_decompress(&j->cinfo);
    j->cinfo.progress = &j->progress.pub;
    j->used = 0;
    return FS_OK;
}

int fs_jpeg_read_header(fs_jpeg *j, const uint8_t *data, size_t len,
                        const fs_limits *limits, fs_jpeg_info *info,
                        char *msg, size_t msglen) {
    struct jpeg_decompress_struct *cinfo = &j->cinfo;
    if (j->has_header) fs_jpeg_abort(j);
    if (len == 0) {
        fs_set_msg(msg, msglen, "empty input");
        return FS_ERR_EMPTY;
    }
    if (!fs_is_jpeg(data, len)) {
        fs_set_msg(msg, msglen, "not a JPEG stream");
        return FS_ERR_NOT_JPEG;
    }
    /* libjpeg 62 takes an unsigned long length; refuse what does not fit. */
    if ((unsigned long)len != len) {
        fs_set_msg(msg, msglen, "input larger than libjpeg can address");
        return FS_ERR_OVERFLOW;
    }
    int st = fresh_decompressor(j, msg, msglen);
    if (st != FS_OK) return st;
    j->err.allow_truncated = limits->allow_truncated;
    j->err.msg[0] = '\0';
    j->progress.max_scans = limits->max_scans;
    j->progress.max_scan_pixels = limits->max_scan_pixels;
    j->progress.scan_pixels = 0;
    j->progress.last_scan = 0;
    j->max_memory = limits->max_memory;
    /* Until fs_jpeg_check_memory knows the caller's share (long is 64-bit
     * on LP64; elsewhere the cap saturates). */
    cinfo->mem->max_memory_to_use =
        limits->max_memory > (uint64_t)LONG_MAX ? LONG_MAX : (long)limits->max_memory;
    if (setjmp(j->err.jb)) return fs_fail(j, j->err.status, msg, msglen);

    j->used = 1;
    jpeg_mem_src(cinfo, (const unsigned char *)data, (unsigned long)len);
    jpeg_read_header(cinfo, TRUE);
    j->has_header = 1;

    uint64_t pixels = (uint64_t)cinfo->image_width * cinfo->image_height;
    if (limits->max_pixels && pixels > limits->max_pixels) {
        if (msg && msglen)
            snprintf(msg, msglen,
                     "image size %ux%u (%llu pixels) exceeds max_pixels=%llu",
                     (unsigned)cinfo->image_width, (unsigned)cinfo->image_height,
                     (unsigned long long)pixels,
                     (unsigned long long)limits->max_pixels);
        fs_jpeg_abort(j);
        return FS_ERR_TOO_MANY_PIXELS;
    }
    /* Blocks each component codes (libjpeg's initial_setup has computed
     * width/height_in_blocks), and the coefficient buffer of a multi-scan
     * stream: jdcoefct.c keeps every block, rounded up to whole MCUs
     * (sampling factors), as a JBLOCK of 64 JCOEFs. */
    uint64_t blocks = 0, coef = 0;
    for (int ci = 0; ci < cinfo->num_components; ci++) {
        const jpeg_component_info *c = &cinfo->comp_info[ci];
        uint64_t bw = c->width_in_blocks, bh = c->height_in_blocks;
        blocks += bw * bh;
        uint64_t hs = (uint64_t)c->h_samp_factor, vs = (uint64_t)c->v_samp_factor;
        coef += ((bw + hs - 1) / hs * hs) * ((bh + vs - 1) / vs * vs) * sizeof(JBLOCK);
    }
    int multiscan = cinfo->progressive_mode ||
                    cinfo->comps_in_scan < cinfo->num_components;
    /* Huffman coding spends at least one bit on every block's DC code (a
     * code is 1-16 bits; the DC difference of a sequential scan, or the
     * first DC scan of a progressive one, is coded for every block of every
     * component), so a stream whose coded data (everything after the
     * headers: mem_src's bytes_in_buffer) is under blocks/8 bytes is
     * certainly cut short.  Refused before anything is allocated: a 5 KB
     * file declaring 13377x13377 would otherwise cost gigabytes.  An
     * arithmetic-coded block can take under one bit, so no such bound. */
    size_t coded = cinfo->src->bytes_in_buffer;
    if (!cinfo->arith_code && !limits->allow_truncated &&
        (uint64_t)coded < (blocks + 7) / 8) {
        if (msg && msglen)
            snprintf(msg, msglen,
                     "image file is truncated (%ux%u needs at least %llu bytes "
                     "of coded data for its %llu blocks, the file has %llu)",
                     (unsigned)cinfo->image_width, (unsigned)cinfo->image_height,
                     (unsigned long long)((blocks + 7) / 8),
                     (unsigned long long)blocks, (unsigned long long)coded);
        fs_jpeg_abort(j);
        return FS_ERR_TRUNCATED;
    }
    info->coef_bytes = multiscan ? coef : 0;
    info->width = (int)cinfo->image_width;
    info->height = (int)cinfo->image_height;
    info->components = cinfo->num_components;
    info->progressive = cinfo->progressive_mode ? 1 : 0;
    switch (cinfo->jpeg_color_space) {
    case JCS_GRAYSCALE: info->mode = FS_MODE_L; break;
    case JCS_CMYK:
    case JCS_YCCK: info->mode = FS_MODE_CMYK; break;
    case JCS_YCbCr:
    case JCS_RGB: info->mode = FS_MODE_RGB; break;
    default:
        if (msg && msglen)
            snprintf(msg, msglen, "unsupported JPEG colour space with %d components",
                     cinfo->num_components);
        fs_jpeg_abort(j);
        return FS_ERR_DECODE;
    }
    return FS_OK;
}

int fs_jpeg_check_memory(fs_jpeg *j, const fs_jpeg_info *info,
                         uint64_t pixel_bytes, char *msg, size_t msglen) {
    uint64_t lim = j->max_memory;
    if (!lim) return FS_OK;
    /* Both terms are under 2^40 (65535^2 pixels x 4 bytes; blocks x 128). */
    uint64_t need = info->coef_bytes + pixel_bytes;
    if (need > lim) {
        if (msg && msglen)
            snprintf(msg, msglen,
                     "decoding %dx%d needs %llu bytes (%llu of coefficients, "
                     "%llu of pixels), over max_memory=%llu",
                     info->width, info->height, (unsigned long long)need,
                     (unsigned long long)info->coef_bytes,
                     (unsigned long long)pixel_bytes, (unsigned long long)lim);
        fs_jpeg_abort(j);
        return FS_ERR_MEMORY_LIMIT;
    }
    /* Backstop for what the estimate misses: jmemnobs.c refuses (error
     * JERR_NO_BACKING_STORE) a whole-image buffer over what is left. */
    uint64_t left = lim - pixel_bytes;
    j->cinfo.mem->max_memory_to_use = left > (uint64_t)LONG_MAX ? LONG_MAX : (long)left;
    return FS_OK;
}

void fs_jpeg_scaled_size(const fs_jpeg_info *info, int denom, int *w, int *h) {
    /* libjpeg: output = ceil(image * scale_num / scale_denom). */
    *w = (int)(((uint64_t)info->width + (unsigned)denom - 1) / (unsigned)denom);
    *h = (int)(((uint64_t)info->height + (unsigned)denom - 1) / (unsigned)denom);
}

int fs_jpeg_decode(fs_jpeg *j, int denom, int out_mode, uint8_t *out,
                   ptrdiff_t stride, char *msg, size_t msglen) {
    struct jpeg_decompress_struct *cinfo = &j->cinfo;
    if (!j->has_header) {
        fs_set_msg(msg, msglen, "fs_jpeg_decode called without a header");
        return FS_ERR_ARG;
    }
    int native = cinfo->jpeg_color_space == JCS_GRAYSCALE ? FS_MODE_L
               : (cinfo->jpeg_color_space == JCS_CMYK ||
                  cinfo->jpeg_color_space == JCS_YCCK) ? FS_MODE_CMYK
               : FS_MODE_RGB;
    J_COLOR_SPACE cs;
    if (out_mode == FS_MODE_CMYK && native == FS_MODE_CMYK) cs = JCS_CMYK;
    else if (out_mode == FS_MODE_L && native == FS_MODE_L) cs = JCS_GRAYSCALE;
    else if (out_mode == FS_MODE_RGB && native != FS_MODE_CMYK) cs = JCS_RGB;
    else if (out_mode == FS_MODE_RGBA && native != FS_MODE_CMYK) cs = JCS_EXT_RGBA;
    else {
        fs_set_msg(msg, msglen, "unsupported output mode for this JPEG");
        fs_jpeg_abort(j);
        return FS_ERR_ARG;
    }
    if (denom != 1 && denom != 2 && denom != 4 && denom != 8) {
        fs_set_msg(msg, msglen, "DCT scale denominator must be 1, 2, 4 or 8");
        fs_jpeg_abort(j);
        return FS_ERR_ARG;
    }
    if (setjmp(j->err.jb)) return fs_fail(j, j->err.status, msg, msglen);

    cinfo->out_color_space = cs;
    cinfo->scale_num = 1;
    cinfo->scale_denom = (unsigned)denom;
    cinfo->dct_method = JDCT_ISLOW;       /* Pillow's default: exact parity */
    cinfo->do_fancy_upsampling = TRUE;
    jpeg_start_decompress(cinfo);

    /* Callers size `out` with fs_jpeg_scaled_size; libjpeg must agree, or
     * the rows below would overrun it. */
    {
        fs_jpeg_info dims;
        int ew, eh;
        dims.width = (int)cinfo->image_width;
        dims.height = (int)cinfo->image_height;
        fs_jpeg_scaled_size(&dims, denom, &ew, &eh);
        if ((JDIMENSION)ew != cinfo->output_width ||
            (JDIMENSION)eh != cinfo->output_height) {
            if (msg && msglen)
                snprintf(msg, msglen, "libjpeg output size %ux%u differs from "
                         "the expected %dx%d", (unsigned)cinfo->output_width,
                         (unsigned)cinfo->output_height, ew, eh);
            fs_jpeg_abort(j);
            return FS_ERR_DECODE;
        }
    }

    JDIMENSION h = cinfo->output_height;
    if (j->rows_cap < h) {
        JSAMPROW *rows = (JSAMPROW *)realloc(j->rows, (size_t)h * sizeof *rows);
        if (!rows) {
            fs_set_msg(msg, msglen, "out of memory");
            fs_jpeg_abort(j);
            return FS_ERR_NOMEM;
        }
        j->rows = rows;
        j->rows_cap = h;
    }
    for (JDIMENSION y = 0; y < h; y++) j->rows[y] = out + (ptrdiff_t)y * stride;
    while (cinfo->output_scanline < h)
        jpeg_read_scanlines(cinfo, j->rows + cinfo->output_scanline,
                            h - cinfo->output_scanline);
    jpeg_finish_decompress(cinfo);
    j->has_header = 0;

    if (cs == JCS_CMYK) {
        /* Pillow reads 4-component JPEGs as "CMYK;I" (Adobe's inverted
         * convention): its values are 255 minus libjpeg's. */
        size_t rowbytes = (size_t)cinfo->output_width * 4;
        for (JDIMENSION y = 0; y < h; y++) {
            uint8_t *p = out + (ptrdiff_t)y * stride;
            for (size_t i = 0; i < rowbytes; i++) p[i] = (uint8_t)(255 - p[i]);
        }
    }
    return FS_OK;
}

const char *fs_jpeg_version(void) {
#ifdef LIBJPEG_TURBO_VERSION
    return FS_XSTR(LIBJPEG_TURBO_VERSION);
#else
    return "libjpeg " FS_XSTR(JPEG_LIB_VERSION);
#endif
}

int fs_jpeg_simd(void) {
#ifdef WITH_SIMD
    return 1;
#else
    return 0;
#endif
}
