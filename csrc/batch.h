/*
 * The batch driver: decode + colour-convert + resize each image of a batch
 * straight into its slot of a preallocated output array, one pool task per
 * image, with per-thread decoder state and scratch reused across images.
 */
#ifndef FS_BATCH_H
#define FS_BATCH_H

#include "cache.h"
#include "fs_common.h"
#include "jpeg_decode.h"
#include "pool.h"
#include "warp.h"

typedef enum {
    FS_SRC_FILE = 0,     /* path: read the file in the worker */
    FS_SRC_MEMORY = 1,   /* data/size: an encoded image in memory */
    FS_SRC_PIXELS = 2    /* data: decoded pixels in the output mode, uint8
                            or (pix_dtype) float32 */
} fs_src_kind;

typedef struct {
    /* input */
    int kind;
    const char *path;            /* FS_SRC_FILE, NUL-terminated */
    const uint8_t *data;         /* FS_SRC_MEMORY / FS_SRC_PIXELS */
    size_t size;                 /* FS_SRC_MEMORY: bytes */
    int pix_width, pix_height;   /* FS_SRC_PIXELS, in the batch's out_mode */
    ptrdiff_t pix_stride;
    int premultiply_alpha;       /* FS_SRC_PIXELS, RGBA with real alpha */
    int pix_dtype;               /* FS_SRC_PIXELS: fs_dtype of data.  A source
                                    of the output size with a warp, and every
                                    float32 source (which must have the
                                    output size: no resize), is warped
                                    straight from data into the slot
                                    (an identity copy when warp is NULL). */
    void *out;                   /* this image's slot */
    const fs_warp_params *warp;  /* NULL, or Keras' augmentation of this
                                    image: resized to the output size into
                                    per-thread scratch (uint8, as Keras'
                                    load_img), then warped into the slot with
                                    the fused scale/offset; the warp's output
                                    size is the batch's.  Not with
                                    decode_only or full_size. */
    fs_cache_ref *cache;         /* NULL, or this image's cache entry: a
                                    hit (memory pixels, or a disk entry that
                                    passes its checks) is served instead of
                                    the source, through the same write
                                    (memcpy for uint8 without a warp, else
                                    the warp or fused scale/offset); after a
                                    miss the resized uint8 pixels the slot
                                    was written from are stored.  Not with
                                    decode_only or full_size. */
    /* results */
    int status;                  /* fs_status; FS_ERR_NOT_JPEG = use fallback */
    int src_width, src_height;   /* full-size dimensions, when known */
    int dct_denom;               /* DCT scale used (1 = full decode) */
    int src_mode;                /* a JPEG's own fs_mode, from its header */
    char msg[FS_MSG_LEN];
} fs_task;

/* out_mode of a header_only batch: whatever mode the file has. */
#define FS_MODE_SOURCE (-1)

typedef struct {
    int out_width, out_height;
    int out_mode;                /* FS_MODE_L, FS_MODE_RGB, FS_MODE_RGBA; with
                                    full_size also FS_MODE_CMYK (CMYK JPEGs
                                    only), with header_only FS_MODE_SOURCE */
    int out_dtype;               /* fs_dtype */
    float scale, offset;         /* FS_DTYPE_F32: v * scale + offset */
    int wide_gray;               /* FS_MODE_L: 16-bit grayscale PNGs go to the
                                    fallback (FS_ERR_NOT_JPEG), which keeps
                                    their values as Keras' load_img does */
    int has_norm;                /* FS_DTYPE_F32: then `norm` per channel */
    fs_chan_norm norm;           /* (fs_dst.norm; resample.h) */
    ptrdiff_t out_row_stride;    /* bytes between rows of one slot */
    int filter;                  /* fs_filter */
    int dct_scaling;             /* allow libjpeg's 1/2, 1/4, 1/8 scaled decode */
    int keep_aspect_ratio;       /* centre-crop to the target aspect (Keras) */
    int decode_only;             /* benchmark: full-size decode, no resize */
    int full_size;               /* decode_image: each slot is the image at its
                                    own size (out_width x out_height must be
                                    it), uint8; no crop, DCT scaling or resize */
    int header_only;             /* with full_size: read the header and check
                                    the limits and the memory a full_size
                                    decode needs; no decode, no output */
    fs_limits limits;
} fs_batch_opts;

/* Run every task on the pool.  Returns FS_OK or a pool error; the outcome of
 * each image is in its task (a failed image's slot is zero-filled). */
int fs_batch_run(const fs_batch_opts *opts, fs_task *tasks, size_t n);

/* The same as a pool job (pool.h) that the caller waits for, may cancel
 * and must release; opts and tasks must outlive the release. */
int fs_batch_submit(const fs_batch_opts *opts, fs_task *tasks, size_t n,
                    fs_pool_job **job);

/* Read the regular file at `path` into *buf (grown as needed; *cap is its
 * size) and set *len.  Refuses, before allocating: anything but a regular
 * file (FS_ERR_NOT_REGULAR_FILE, naming what it is; never blocks on a FIFO),
 * a file over max_bytes (FS_ERR_FILE_TOO_LARGE; 0 = no limit), an empty one.
 * With native_only, a file whose first two bytes are no native format's
 * (JPEG, PNG, WebP, BMP, PGM/PPM) returns FS_ERR_NOT_JPEG after reading
 * only those.  `msg` holds FS_MSG_LEN bytes. */
int fs_read_file(const char *path, uint64_t max_bytes, int native_only,
                 uint8_t **buf, size_t *cap, size_t *len, char *msg);

/* Keras' keep_aspect_ratio crop of a w x h image for a tw x th target:
 * box = {x0, y0, x1, y1} in pixels (keras.utils.load_img's integer rule). */
void fs_keep_aspect_box(int w, int h, int tw, int th, double box[4]);

/* The DCT scale denominator (1, 2, 4 or 8) chosen for a crop of cw x ch
 * source pixels resized to tw x th: the largest of 2, 4, 8 whose output is
 * still at least the target in both dimensions, else 1. */
int fs_choose_denom(double cw, double ch, int tw, int th);

#endif
