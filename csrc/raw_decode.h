/*
 * Uncompressed formats decoded in plain C, converted as Pillow converts:
 * BMP (csrc/bmp_decode.c) and binary PGM/PPM (csrc/pnm_decode.c).  The
 * pixels equal PIL.Image.open(f).convert(mode) for mode L, RGB and RGBA.
 *
 * What Pillow reads in some other way (BMP RLE, 16-bit and unusual
 * bitfields, grey palettes Pillow reinterprets, headers Pillow's tokeniser
 * would read differently) is refused with FS_ERR_NOT_JPEG: the Pillow
 * fallback decodes it, or reports Pillow's error.
 *
 * Both formats are read straight from the encoded bytes, row by row, into
 * the output: there is no decoder state to keep between images, and the
 * only memory is the output.  The header check proves, before anything is
 * allocated, that the stream holds every row (a short one is
 * FS_ERR_TRUNCATED, as Pillow refuses it too), so the row loop never reads
 * past `len`.
 */
#ifndef FS_RAW_DECODE_H
#define FS_RAW_DECODE_H

#include "fs_common.h"
#include "jpeg_decode.h"   /* fs_limits */

typedef struct {
    int width, height;
    /* Pillow's mode when it is L, RGB or RGBA; 0 for "1", "P" and "I",
     * which decode natively only into a colour mode. */
    int mode;
    /* private to the decoders */
    int kind;               /* which row layout (see the .c files) */
    int bits;               /* bits a pixel (BMP) or bytes a sample (PNM) */
    int maxval;             /* PNM */
    int bottom_up;          /* BMP: rows stored last first */
    size_t offset;          /* first pixel byte */
    size_t stride;          /* bytes between stored rows */
    uint8_t pal[256][3];    /* BMP palette as RGB; PNM: 8-bit sample LUT in [0] */
} fs_raw_info;

int fs_is_bmp(const uint8_t *data, size_t len);
int fs_is_pnm(const uint8_t *data, size_t len);   /* "P5" or "P6" + whitespace */

int fs_bmp_read_header(const uint8_t *data, size_t len, const fs_limits *limits,
                       fs_raw_info *info, char *msg, size_t msglen);
int fs_pnm_read_header(const uint8_t *data, size_t len, const fs_limits *limits,
                       fs_raw_info *info, char *msg, size_t msglen);

/* Convert the stored rows into `out` (rows `stride` bytes apart) in
 * out_mode (FS_MODE_L, FS_MODE_RGB or FS_MODE_RGBA).  `data`/`len` are the
 * stream the header was read from. */
int fs_bmp_decode(const fs_raw_info *info, const uint8_t *data, size_t len,
                  int out_mode, uint8_t *out, ptrdiff_t stride);
int fs_pnm_decode(const fs_raw_info *info, const uint8_t *data, size_t len,
                  int out_mode, uint8_t *out, ptrdiff_t stride);

#endif
