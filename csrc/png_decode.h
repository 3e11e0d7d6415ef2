/*
 * PNG decoding with libpng 1.6, converted as Pillow converts: the pixels
 * equal PIL.Image.open(f).convert(mode) for mode L, RGB and RGBA, for every
 * colour type, bit depth (1-16), interlace method and tRNS chunk.
 *
 * A fs_png handle belongs to one thread at a time and is reused across
 * images: it keeps the row (or, for Adam7, image) buffer that rows are read
 * into before their conversion.  libpng's read structs cannot be reset, so
 * each image gets a new one, freed by fs_png_decode / fs_png_abort.
 */
#ifndef FS_PNG_DECODE_H
#define FS_PNG_DECODE_H

#include "fs_common.h"
#include "jpeg_decode.h"   /* fs_limits */

typedef struct fs_png fs_png;

typedef struct {
    int width, height;
    int bit_depth, color_type, interlaced;
    /* The fs_mode Pillow opens the file as, when it is one of L, RGB, RGBA
     * (decode_image with no colour mode); 0 for Pillow's "1", "I;16", "LA"
     * and "P", which have no fs_mode. */
    int mode;
} fs_png_info;

/* Returns 1 when the buffer starts with the 8-byte PNG signature. */
int fs_is_png(const uint8_t *data, size_t len);

fs_png *fs_png_new(void);
void fs_png_free(fs_png *p);

/* Parse the chunks before the image data, checking their CRCs as Pillow
 * does (a mismatch before IDAT is an error; IDAT's and later ones are not
 * checked), and the pixel limit.  FS_ERR_NOT_JPEG means "let Pillow decide"
 * (a stream libpng refuses or warns about but Pillow may accept, e.g. an
 * unknown critical chunk, or a tRNS longer than PLTE, which libpng drops).
 * On success the handle holds the image until fs_png_decode or
 * fs_png_abort; `data` must stay valid until then. */
int fs_png_read_header(fs_png *p, const uint8_t *data, size_t len,
                       const fs_limits *limits, fs_png_info *info,
                       char *msg, size_t msglen);

/* Bytes fs_png_decode allocates besides `out` for out_mode: one stored row,
 * a whole stored image for Adam7, 0 when libpng writes straight into `out`
 * (8-bit gray to L, RGB to RGB, RGBA to RGBA, not interlaced). */
uint64_t fs_png_extra_bytes(const fs_png *p, int out_mode);

/* Decode into `out` (rows `stride` bytes apart, fs_mode_channels(out_mode)
 * * width bytes each) converted to out_mode (FS_MODE_L, FS_MODE_RGB or
 * FS_MODE_RGBA).  Always releases the image. */
int fs_png_decode(fs_png *p, int out_mode, uint8_t *out, ptrdiff_t stride,
                  char *msg, size_t msglen);

void fs_png_abort(fs_png *p);

/* libpng's version, e.g. "1.6.39". */
const char *fs_png_version(void);

/* The version of the zlib linked (libpng's inflate and the CRC check). */
const char *fs_zlib_version(void);

/* Release the reusable row buffer when it holds more than `keep` bytes, so
 * one huge (interlaced) image does not pin memory in a worker. */
void fs_png_trim(fs_png *p, size_t keep);

#endif
