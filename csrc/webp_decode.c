#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <webp/decode.h>
#include <webp/demux.h>

#include "webp_decode.h"

struct fs_webp {
    const uint8_t *data;    /* the stream given to fs_webp_read_header */
    size_t len;
    WebPBitstreamFeatures f;
    int ready;              /* a header was read and not yet decoded */
};

int fs_is_webp(const uint8_t *data, size_t len) {
    return len >= 12 && memcmp(data, "RIFF", 4) == 0 && memcmp(data + 8, "WEBP", 4) == 0;
}

fs_webp *fs_webp_new(void) { return (fs_webp *)calloc(1, sizeof(fs_webp)); }

void fs_webp_free(fs_webp *p) { free(p); }

const char *fs_webp_version(void) {
    static char v[24];
    int n = WebPGetDecoderVersion();   /* 0xMMmmrr */
    if (!v[0]) snprintf(v, sizeof v, "%d.%d.%d", (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff);
    return v;
}

static const char *vp8_status_text(VP8StatusCode s) {
    switch (s) {
    case VP8_STATUS_OUT_OF_MEMORY: return "out of memory";
    case VP8_STATUS_INVALID_PARAM: return "invalid parameter";
    case VP8_STATUS_BITSTREAM_ERROR: return "bitstream error";
    case VP8_STATUS_UNSUPPORTED_FEATURE: return "unsupported feature";
    case VP8_STATUS_SUSPENDED: return "suspended";
    case VP8_STATUS_USER_ABORT: return "aborted";
    case VP8_STATUS_NOT_ENOUGH_DATA: return "not enough data";
    default: return "error";
    }
}

static int status_of(VP8StatusCode s) {
    return s == VP8_STATUS_NOT_ENOUGH_DATA ? FS_ERR_TRUNCATED
         : s == VP8_STATUS_OUT_OF_MEMORY ? FS_ERR_NOMEM : FS_ERR_DECODE;
}

int fs_webp_read_header(fs_webp *p, const uint8_t *data, size_t len,
                        const fs_limits *limits, fs_webp_info *info,
                        char *msg, size_t msglen) {
    p->ready = 0;
    if (!fs_is_webp(data, len)) {
        snprintf(msg, msglen, "not a WebP stream");
        return FS_ERR_NOT_JPEG;
    }
    /* Pillow opens only a first chunk of VP8, VP8L or VP8X (and needs 16
     * bytes to see it); anything else it cannot identify, and says so. */
    if (len < 16 || (memcmp(data + 12, "VP8 ", 4) != 0 && memcmp(data + 12, "VP8L", 4) != 0 &&
                     memcmp(data + 12, "VP8X", 4) != 0)) {
        snprintf(msg, msglen, "RIFF/WEBP stream without a VP8, VP8L or VP8X chunk");
        return FS_ERR_NOT_JPEG;
    }
    VP8StatusCode s = WebPGetFeatures(data, len, &p->f);
    if (s != VP8_STATUS_OK) {
        snprintf(msg, msglen, "WebP header: %s", vp8_status_text(s));
        return status_of(s);
    }
    /* WebP caps both sides at 16383 (VP8X canvases at 2^24): the products
     * below stay far inside 64 bits. */
    uint64_t pixels = (uint64_t)p->f.width * (uint64_t)p->f.height;
    if (p->f.width <= 0 || p->f.height <= 0) {
        snprintf(msg, msglen, "WebP header: bad size %dx%d", p->f.width, p->f.height);
        return FS_ERR_DECODE;
    }
    if (limits && limits->max_pixels && pixels > limits->max_pixels) {
        snprintf(msg, msglen, "image size %dx%d (%llu pixels) exceeds max_pixels=%llu",
                 p->f.width, p->f.height, (unsigned long long)pixels,
                 (unsigned long long)limits->max_pixels);
        return FS_ERR_TOO_MANY_PIXELS;
    }
    p->data = data;
    p->len = len;
    p->ready = 1;
    info->width = p->f.width;
    info->height = p->f.height;
    info->has_alpha = p->f.has_alpha != 0;
    info->animated = p->f.has_animation != 0;
    info->lossless = p->f.format == 2 ? 1 : p->f.format == 1 ? 0 : -1;
    info->mode = p->f.has_alpha ? FS_MODE_RGBA : FS_MODE_RGB;
    return FS_OK;
}

uint64_t fs_webp_extra_bytes(const fs_webp *p) {
    if (!p->ready) return 0;
    uint64_t w = (uint64_t)p->f.width, h = (uint64_t)p->f.height;
    if (p->f.has_animation)
        /* The canvas and the previous (disposed) canvas, RGBA; the first
         * frame, no larger than the canvas, is decoded into the canvas, with
         * a lossless frame's ARGB copy on top. */
        return 2 * 4 * w * h + 4 * w * (h + 16);
    if (p->f.format == 2)
        /* VP8L: the whole image as 32-bit ARGB plus a 16-row cache. */
        return 4 * w * (h + 16);
    /* VP8: the macroblock caches (Y, U, V, a few rows of 16 pixels with
     * borders, under 3 x 32 x w bytes) plus, with alpha, the alpha plane. */
    return 96 * (w + 64) + (p->f.has_alpha ? w * h : 0);
}

/* The first frame of an animation, as Pillow's WebPAnimDecoder gives it:
 * the frame drawn on a zeroed canvas, non-premultiplied RGBA, read as RGB
 * when the header has no alpha flag. */
static int decode_animation(fs_webp *p, int out_mode, uint8_t *out, ptrdiff_t stride,
                            char *msg, size_t msglen) {
    WebPAnimDecoderOptions opts;
    if (!WebPAnimDecoderOptionsInit(&opts)) {
        snprintf(msg, msglen, "libwebpdemux version mismatch");
        return FS_ERR_ARG;
    }
    opts.color_mode = MODE_RGBA;
    opts.use_threads = 0;
    WebPData wd = {p->data, p->len};
    WebPAnimDecoder *dec = WebPAnimDecoderNew(&wd, &opts);
    if (!dec) {
        /* The demuxer refuses a stream it cannot parse whole, a truncated
         * one included, without saying which. */
        snprintf(msg, msglen, "WebP animation is corrupt or truncated");
        return FS_ERR_DECODE;
    }
    WebPAnimInfo ai;
    uint8_t *canvas = NULL;
    int ts = 0;
    int st = FS_OK;
    if (!WebPAnimDecoderGetInfo(dec, &ai) || (int)ai.canvas_width != p->f.width ||
        (int)ai.canvas_height != p->f.height) {
        snprintf(msg, msglen, "WebP animation: canvas does not match its header");
        st = FS_ERR_DECODE;
    } else if (!WebPAnimDecoderGetNext(dec, &canvas, &ts) || !canvas) {
        snprintf(msg, msglen, "WebP animation: cannot decode the first frame");
        st = FS_ERR_DECODE;
    } else {
        const int w = p->f.width, h = p->f.height;
        for (int y = 0; y < h; y++) {
            const uint8_t *s = canvas + (size_t)y * (size_t)w * 4;
            uint8_t *o = out + (ptrdiff_t)y * stride;
            if (out_mode == FS_MODE_RGBA && p->f.has_alpha) {
                memcpy(o, s, (size_t)w * 4);
            } else if (out_mode == FS_MODE_RGBA) {
                /* Without the alpha flag Pillow opens the canvas as RGB
                 * (raw mode RGBX): a pixel no frame covers is opaque black. */
                for (int x = 0; x < w; x++, s += 4, o += 4) {
                    o[0] = s[0]; o[1] = s[1]; o[2] = s[2]; o[3] = 255;
                }
            } else {
                for (int x = 0; x < w; x++, s += 4, o += 3) {
                    o[0] = s[0]; o[1] = s[1]; o[2] = s[2];
                }
            }
        }
    }
    WebPAnimDecoderDelete(dec);
    return st;
}

int fs_webp_decode(fs_webp *p, int out_mode, uint8_t *out, ptrdiff_t stride,
                   char *msg, size_t msglen) {
    if (!p->ready || !out || (out_mode != FS_MODE_RGB && out_mode != FS_MODE_RGBA)) {
        p->ready = 0;
        snprintf(msg, msglen, "invalid WebP decode request");
        return FS_ERR_ARG;
    }
    p->ready = 0;
    if (p->f.has_animation) return decode_animation(p, out_mode, out, stride, msg, msglen);
    WebPDecoderConfig cfg;
    if (!WebPInitDecoderConfig(&cfg)) {
        snprintf(msg, msglen, "libwebp version mismatch");
        return FS_ERR_ARG;
    }
    /* WebPAnimDecoder's defaults, which Pillow uses: fancy upsampling, no
     * dithering, no threads. */
    cfg.output.colorspace = out_mode == FS_MODE_RGBA ? MODE_RGBA : MODE_RGB;
    cfg.output.is_external_memory = 1;
    cfg.output.width = p->f.width;
    cfg.output.height = p->f.height;
    cfg.output.u.RGBA.rgba = out;
    cfg.output.u.RGBA.stride = (int)stride;
    cfg.output.u.RGBA.size = (size_t)stride * (size_t)(p->f.height - 1) +
                             (size_t)p->f.width * (out_mode == FS_MODE_RGBA ? 4 : 3);
    VP8StatusCode s = WebPDecode(p->data, p->len, &cfg);
    WebPFreeDecBuffer(&cfg.output);   /* external memory: frees nothing else */
    if (s != VP8_STATUS_OK) {
        snprintf(msg, msglen, s == VP8_STATUS_NOT_ENOUGH_DATA
                 ? "WebP stream is truncated (%s)" : "WebP image data is corrupt (%s)",
                 vp8_status_text(s));
        return status_of(s);
    }
    return FS_OK;
}
