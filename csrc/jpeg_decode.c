/*
 * JPEG decoding through libjpeg-turbo's libjpeg API (see jpeg_decode.h).
 *
 * Error handling: libjpeg reports fatal errors through error_exit, which must
 * not return; ours longjmps back to the fs_jpeg_* call that started the
 * operation, which aborts the decompressor (keeping the handle reusable) and
 * returns a status with libjpeg's message.  Warnings (corrupt-but-decodable
 * data, "extraneous bytes before marker", bad ICC markers) are ignored, as
 * Pillow ignores them, except "Premature end of JPEG file", which means the
 * image is truncated and is an error unless the caller allows truncation.
 */
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
} fs_jpeg_progress;

struct fs_jpeg {
    struct jpeg_decompress_struct cinfo;
    fs_jpeg_err err;
    fs_jpeg_progress progress;
    int has_header;              /* a header was read and not yet released */
    JSAMPROW *rows;              /* grow-only row-pointer array */
    size_t rows_cap;
};

static void fs_error_exit(j_common_ptr cinfo) {
    fs_jpeg_err *err = (fs_jpeg_err *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, err->msg);
    err->status = FS_ERR_DECODE;
    longjmp(err->jb, 1);
}

static void fs_emit_message(j_common_ptr cinfo, int msg_level) {
    fs_jpeg_err *err = (fs_jpeg_err *)cinfo->err;
    if (msg_level >= 0) return;                 /* trace messages */
    err->pub.num_warnings++;
    if (err->pub.msg_code == JWRN_JPEG_EOF && !err->allow_truncated) {
        (*cinfo->err->format_message)(cinfo, err->msg);
        err->status = FS_ERR_TRUNCATED;
        longjmp(err->jb, 1);
    }
}

static void fs_output_message(j_common_ptr cinfo) { (void)cinfo; }

/* Bounds the work a progressive stream can demand: each scan re-walks the
 * whole coefficient buffer, so a small file with thousands of tiny scans is
 * a denial of service (libjpeg-turbo's TurboJPEG API has the same limit). */
static void fs_progress_monitor(j_common_ptr cinfo) {
    fs_jpeg_progress *p = (fs_jpeg_progress *)cinfo->progress;
    if (!cinfo->is_decompressor || p->max_scans <= 0) return;
    int scan = ((j_decompress_ptr)cinfo)->input_scan_number;
    if (scan > p->max_scans) {
        fs_jpeg_err *err = (fs_jpeg_err *)cinfo->err;
        snprintf(err->msg, sizeof err->msg,
                 "progressive JPEG has more than %d scans (max_scans)",
                 p->max_scans);
        err->status = FS_ERR_TOO_MANY_SCANS;
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
    j->err.allow_truncated = limits->allow_truncated;
    j->err.msg[0] = '\0';
    j->progress.max_scans = limits->max_scans;
    if (setjmp(j->err.jb)) return fs_fail(j, j->err.status, msg, msglen);

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
