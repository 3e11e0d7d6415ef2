/*
 * WebP decoding with libwebp, converted as Pillow converts: the pixels equal
 * PIL.Image.open(f).convert(mode) for mode L, RGB and RGBA, for lossy and
 * lossless streams, with and without alpha, and for the first frame of an
 * animation.
 *
 * Pillow decodes every WebP through WebPAnimDecoder (libwebpdemux) with its
 * default options: a canvas of non-premultiplied RGBA, opened as RGBA when
 * WebPGetFeatures reports alpha and as RGB otherwise.  A still image is the
 * one key frame of that canvas, so it is decoded here with WebPDecode
 * straight into the caller's buffer in the layout asked for (RGB or RGBA;
 * libwebp's RGB and RGBA samplers give the same colour bytes); an animation
 * goes through WebPAnimDecoder, whose first frame is drawn on a transparent
 * black canvas, and is copied out of it.
 *
 * A fs_webp handle belongs to one thread at a time and is reused across
 * images; it holds the parsed header between fs_webp_read_header and
 * fs_webp_decode.  libwebp keeps no state worth reusing between images.
 */
#ifndef FS_WEBP_DECODE_H
#define FS_WEBP_DECODE_H

#include "fs_common.h"
#include "jpeg_decode.h"   /* fs_limits */

typedef struct fs_webp fs_webp;

typedef struct {
    int width, height;      /* the canvas (for an animation) or the image */
    int has_alpha, animated;
    int lossless;           /* 1 lossless, 0 lossy, -1 mixed (animation) */
    int mode;               /* Pillow's mode: FS_MODE_RGBA or FS_MODE_RGB */
} fs_webp_info;

/* Returns 1 when the buffer starts with a RIFF header of form WEBP. */
int fs_is_webp(const uint8_t *data, size_t len);

fs_webp *fs_webp_new(void);
void fs_webp_free(fs_webp *p);

/* Parse the header (WebPGetFeatures) and check the pixel limit; nothing is
 * allocated for the pixels.  FS_ERR_NOT_JPEG means "let Pillow decide" (a
 * RIFF/WEBP stream whose first chunk is none of VP8, VP8L, VP8X, which
 * Pillow does not open either: its fallback names the reason).  `data` must
 * stay valid until fs_webp_decode. */
int fs_webp_read_header(fs_webp *p, const uint8_t *data, size_t len,
                        const fs_limits *limits, fs_webp_info *info,
                        char *msg, size_t msglen);

/* Bytes libwebp allocates besides `out` while decoding (an upper estimate,
 * counted against max_memory): a lossless image is decoded whole as 32-bit
 * ARGB, a lossy one a few macroblock rows at a time plus its alpha plane, an
 * animation into two RGBA canvases. */
uint64_t fs_webp_extra_bytes(const fs_webp *p);

/* Decode into `out` (rows `stride` bytes apart) converted to out_mode
 * (FS_MODE_L, FS_MODE_RGB or FS_MODE_RGBA). */
int fs_webp_decode(fs_webp *p, int out_mode, uint8_t *out, ptrdiff_t stride,
                   char *msg, size_t msglen);

/* libwebp's decoder version, e.g. "1.2.4". */
const char *fs_webp_version(void);

#endif
