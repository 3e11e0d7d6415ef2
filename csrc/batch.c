#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "batch.h"
#include "png_decode.h"
#include "raw_decode.h"
#include "webp_decode.h"
#include "pool.h"
#include "resample.h"

/* Buffers above this size are released after use instead of kept for the
 * next image, so one huge file does not pin memory in every worker. */
#define FS_KEEP_BYTES ((size_t)64 << 20)
/* Spare bytes after a decoded image: the resampler's read pad, rounded up
 * to a cache line. */
#define FS_PIX_PAD 64
#if FS_PIX_PAD < FS_RESIZE_READ_PAD
#error "FS_PIX_PAD must cover the resampler's read pad"
#endif

typedef struct {
    fs_jpeg *jpeg;
    fs_png *png;            /* created at the first PNG */
    fs_webp *webp;          /* created at the first WebP */
    uint8_t *file;          /* encoded bytes read from disk */
    size_t file_cap;
    uint8_t *pix;           /* decoded pixels before resizing */
    size_t pix_cap;
    fs_resample_scratch rs;
    uint8_t *aug;           /* the resized image an augmented task warps */
    size_t aug_cap;
    fs_warp_scratch ws;
    uint8_t *cpix;          /* a disk cache hit's pixels, when they are not
                               read straight into the slot */
    size_t cpix_cap;
    const uint8_t *kept;    /* the current task's resized uint8 pixels
                               (output size, contiguous), for the cache */
} fs_worker;

static void worker_free(void *ptr) {
    fs_worker *w = (fs_worker *)ptr;
    if (!w) return;
    fs_jpeg_free(w->jpeg);
    fs_png_free(w->png);
    fs_webp_free(w->webp);
    free(w->file);
    free(w->pix);
    fs_resample_scratch_free(&w->rs);
    free(w->aug);
    free(w->cpix);
    fs_warp_scratch_free(&w->ws);
    free(w);
}

static fs_worker *worker_get(void **local) {
    if (*local) return (fs_worker *)*local;
    fs_worker *w = (fs_worker *)calloc(1, sizeof *w);
    if (!w) return NULL;
    w->jpeg = fs_jpeg_new();
    if (!w->jpeg) { free(w); return NULL; }
    fs_resample_scratch_init(&w->rs);
    fs_warp_scratch_init(&w->ws);
    *local = w;
    return w;
}

static int grow(uint8_t **buf, size_t *cap, size_t need) {
    if (*cap >= need) return 1;
    free(*buf);                         /* contents need not survive */
    *buf = (uint8_t *)malloc(need ? need : 1);
    *cap = *buf ? need : 0;
    return *buf != NULL;
}

static void trim(uint8_t **buf, size_t *cap) {
    if (*cap > FS_KEEP_BYTES) { free(*buf); *buf = NULL; *cap = 0; }
}

static const char *file_kind(mode_t m) {
    if (S_ISDIR(m)) return "a directory";
    if (S_ISFIFO(m)) return "a FIFO (named pipe)";
    if (S_ISSOCK(m)) return "a socket";
    if (S_ISCHR(m)) return "a character device";
    if (S_ISBLK(m)) return "a block device";
    return "not a regular file";
}

static int read_full(int fd, uint8_t *buf, size_t want, size_t *got, char *msg) {
    *got = 0;
    while (*got < want) {
        ssize_t r = read(fd, buf + *got, want - *got);
        if (r < 0) {
            if (errno == EINTR) continue;
            snprintf(msg, FS_MSG_LEN, "read error: %s", strerror(errno));
            return FS_ERR_IO;
        }
        if (r == 0) break;     /* file shrank while reading */
        *got += (size_t)r;
    }
    return FS_OK;
}

/* Only regular files are read.  The type is checked with stat() before
 * open(), so a FIFO (whose open would block until a writer comes), a device
 * or a socket is never opened, and again with fstat() on the descriptor,
 * opened O_NONBLOCK, in case the path was swapped in between.  The size
 * limit is checked from fstat() before anything is allocated, and the two
 * signature bytes are read before the rest, so a file no native decoder
 * takes (left to the Pillow fallback) costs one small read. */
static int native_signature(const uint8_t *sig, size_t got) {
    if (got < 2) return 0;
    return fs_is_jpeg(sig, got) ||
           (sig[0] == 0x89 && sig[1] == 'P') ||     /* PNG */
           (sig[0] == 'R' && sig[1] == 'I') ||      /* RIFF: WebP */
           (sig[0] == 'B' && sig[1] == 'M') ||      /* BMP */
           (sig[0] == 'P' && (sig[1] == '5' || sig[1] == '6'));   /* PGM, PPM */
}

int fs_read_file(const char *path, uint64_t max_bytes, int native_only,
                 uint8_t **buf, size_t *cap, size_t *len, char *msg) {
    struct stat st;
    *len = 0;
    if (stat(path, &st) != 0) {
        snprintf(msg, FS_MSG_LEN, "cannot open file: %s", strerror(errno));
        return FS_ERR_IO;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(msg, FS_MSG_LEN, "is %s, not a regular file", file_kind(st.st_mode));
        return FS_ERR_NOT_REGULAR_FILE;
    }
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        snprintf(msg, FS_MSG_LEN, "cannot open file: %s", strerror(errno));
        return FS_ERR_IO;
    }
    int status = FS_OK;
    uint8_t sig[2];
    size_t got = 0;
    if (fstat(fd, &st) != 0) {
        snprintf(msg, FS_MSG_LEN, "cannot stat file: %s", strerror(errno));
        status = FS_ERR_IO;
    } else if (!S_ISREG(st.st_mode)) {
        snprintf(msg, FS_MSG_LEN, "is %s, not a regular file", file_kind(st.st_mode));
        status = FS_ERR_NOT_REGULAR_FILE;
    } else if (st.st_size <= 0) {
        /* Truly empty, or a pseudo-file (procfs, sysfs) whose size the
         * kernel reports as 0 although reading it yields data (or would
         * block: O_NONBLOCK).  One byte tells them apart. */
        ssize_t r;
        do r = read(fd, sig, 1); while (r < 0 && errno == EINTR);
        if (r == 0) {
            snprintf(msg, FS_MSG_LEN, "file is empty");
            status = FS_ERR_EMPTY;
        } else {
            snprintf(msg, FS_MSG_LEN, "reports a size of 0 but is not empty: a "
                     "pseudo-file (such as /proc or /sys ones), not a regular "
                     "on-disk file");
            status = FS_ERR_NOT_REGULAR_FILE;
        }
    } else if ((max_bytes && (uint64_t)st.st_size > max_bytes) ||
               (uint64_t)st.st_size > (uint64_t)SIZE_MAX / 2) {
        if (max_bytes && (uint64_t)st.st_size > max_bytes)
            snprintf(msg, FS_MSG_LEN, "file is %llu bytes, over max_file_bytes=%llu",
                     (unsigned long long)st.st_size, (unsigned long long)max_bytes);
        else
            snprintf(msg, FS_MSG_LEN, "file is %llu bytes, more than this "
                     "process can address", (unsigned long long)st.st_size);
        status = FS_ERR_FILE_TOO_LARGE;
    } else if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) != 0) {
        /* A regular file now: plain blocking reads (a network or FUSE file
         * system may otherwise answer EAGAIN). */
        snprintf(msg, FS_MSG_LEN, "cannot read file: %s", strerror(errno));
        status = FS_ERR_IO;
    } else if ((status = read_full(fd, sig, st.st_size < 2 ? 1 : 2, &got, msg)) != FS_OK) {
        /* message set */
    } else if (got == 0) {
        snprintf(msg, FS_MSG_LEN, "file is empty");
        status = FS_ERR_EMPTY;
    } else if (native_only && !native_signature(sig, got)) {
        snprintf(msg, FS_MSG_LEN, "not a stream fastseq decodes natively");
        status = FS_ERR_NOT_JPEG;
    } else if (!grow(buf, cap, (size_t)st.st_size)) {
        snprintf(msg, FS_MSG_LEN, "out of memory reading %lld bytes",
                 (long long)st.st_size);
        status = FS_ERR_NOMEM;
    } else {
        memcpy(*buf, sig, got);
        size_t rest = 0;
        if (got == 2)
            status = read_full(fd, *buf + 2, (size_t)st.st_size - 2, &rest, msg);
        *len = got + rest;
    }
    close(fd);
    return status;
}

void fs_keep_aspect_box(int w, int h, int tw, int th, double box[4]) {
    long long crop_h = ((long long)w * th) / tw;
    long long crop_w = ((long long)h * tw) / th;
    if (crop_h > h) crop_h = h;
    if (crop_w > w) crop_w = w;
    long long y0 = (h - crop_h) / 2, x0 = (w - crop_w) / 2;
    box[0] = (double)x0;
    box[1] = (double)y0;
    box[2] = (double)(x0 + crop_w);
    box[3] = (double)(y0 + crop_h);
}

int fs_choose_denom(double cw, double ch, int tw, int th) {
    for (int d = 8; d >= 2; d /= 2)
        if (cw >= (double)tw * d && ch >= (double)th * d) return d;
    return 1;
}

typedef struct {
    const fs_batch_opts *opts;
    fs_task *tasks;
} fs_batch_ctx;

static int warp_status(fs_task *t, int st) {
    if (st != FS_OK)
        snprintf(t->msg, FS_MSG_LEN, "%s",
                 st == FS_ERR_NOMEM ? "out of memory while augmenting"
                 : st == FS_ERR_OVERFLOW ? "image too large to augment"
                 : "invalid augmentation parameters");
    return st;
}

/* warp = 0 and no photometric step: copies the source through the fused
 * scale/offset. */
static const fs_warp_params fs_warp_identity = {{1, 0, 0, 0, 1, 0}, 0, 0, 0, 0,
                                                FS_FILL_CONSTANT, 0.0, 0, 0, 0.0,
                                                0, 0, 0.0, 0};

/* Float32 slots of at least this many bytes are written with streaming
 * (non-temporal) stores: a batch of them is far larger than the caches,
 * so ordinary stores first read every destination line from memory (a
 * read for ownership) only to overwrite it, and evict what the training
 * step is using; streaming halves the write's memory traffic (figures in
 * README, "Cache").  A 224x224 RGB slot is 588 KiB; a batch of small slots
 * (32x32: 12 KiB each) is read back from the caches, so it is written as
 * usual. */
#define FS_STREAM_MIN_BYTES (256u << 10)

#if defined(__SSE2__)
/* 32 pixels, as u8_to_f32's scalar expression, streamed to 16-byte
 * aligned `d` (SSE2, part of every x86-64). */
static inline void stream32(const uint8_t *s, float *d, __m128 scale, __m128 offset) {
    const __m128i z = _mm_setzero_si128();
    for (int q = 0; q < 32; q += 16) {
        __m128i b = _mm_loadu_si128((const __m128i *)(s + q));
        __m128i lo = _mm_unpacklo_epi8(b, z), hi = _mm_unpackhi_epi8(b, z);
        __m128i w[4] = {_mm_unpacklo_epi16(lo, z), _mm_unpackhi_epi16(lo, z),
                        _mm_unpacklo_epi16(hi, z), _mm_unpackhi_epi16(hi, z)};
        for (int k = 0; k < 4; k++)
            _mm_stream_ps(d + q + 4 * k,
                          _mm_add_ps(_mm_mul_ps(_mm_cvtepi32_ps(w[k]), scale), offset));
    }
}
#endif

/* A float32 slot from 8-bit pixels: (float)v * scale + offset, the
 * resampler's and the warp's own expression (no contraction: the build has
 * -ffp-contract=off; the SSE2 path multiplies and adds separately and
 * converts 0..255 exactly), so the same bits whichever path runs.
 *
 * `sum`: NULL, or an initialised fs_sum (cache.h) that also takes the n
 * bytes, 32 at a time from src[0], returning fs_sum_final's checksum (else
 * 0): a cache hit's pixels are checked in the same pass that converts
 * them, the checksum's multiply chains running in the shadow of the stores
 * instead of in a pass of their own.  `stream`: write with streaming
 * stores (see FS_STREAM_MIN_BYTES) from the first 16-byte boundary of
 * `dst` on, where SSE2 has them. */
static uint64_t u8_to_f32(const uint8_t *src, float *dst, size_t n, float scale,
                          float offset, fs_sum *sum, int stream) {
    size_t i = 0;       /* the next byte summed */
    size_t j = 0;       /* the next float written */
#if defined(__SSE2__)
    const __m128 vs = _mm_set1_ps(scale), vo = _mm_set1_ps(offset);
    stream = stream && ((uintptr_t)dst & 3) == 0;
    if (stream)         /* scalar up to the first 16-byte boundary */
        for (; j < n && ((uintptr_t)(dst + j) & 15); j++) dst[j] = (float)src[j] * scale + offset;
#else
    stream = 0;
#endif
    /* `stream` is the same for every block: the branch is predicted, and
     * the loop is bound by its stores either way */
    for (; j + 32 <= n; j += 32) {
        if (sum && i + 32 <= n) {
            fs_sum_block(sum, src + i);
            i += 32;
        }
#if defined(__SSE2__)
        if (stream) {
            stream32(src + j, dst + j, vs, vo);
            continue;
        }
#endif
        for (size_t k = 0; k < 32; k++) dst[j + k] = (float)src[j + k] * scale + offset;
    }
#if defined(__SSE2__)
    /* streaming stores are weakly ordered: drain them before the slot is
     * handed to another thread */
    if (stream) _mm_sfence();
#endif
    for (; j < n; j++) dst[j] = (float)src[j] * scale + offset;
    if (!sum) return 0;
    for (; i + 32 <= n; i += 32) fs_sum_block(sum, src + i);
    return fs_sum_final(sum, src + i, n - i, n);
}

/* A whole contiguous float32 slot from 8-bit pixels of the output size, as
 * the resampler writes it: u8_to_f32, then the featurewise norm when the
 * batch has one (its own float32 pass, the same operations as
 * fs_chan_norm_row applies per row, so the same bits; the slot is then
 * read back, so not streamed).  With `pending` the pixels are a cache
 * payload not yet checksummed (fs_cache_read_deferred): they are summed on
 * the way, and 0 means they are not the entry's (the slot then holds
 * garbage, to be rewritten); else 1. */
static int slot_from_u8(const fs_batch_opts *o, fs_task *t, const uint8_t *pix,
                        const fs_cache_pending *pending) {
    int oc = fs_mode_channels(o->out_mode);
    size_t n = (size_t)o->out_width * (size_t)o->out_height * (size_t)oc;
    int stream = !o->has_norm && n >= FS_STREAM_MIN_BYTES / sizeof(float);
    fs_sum sum;
    if (pending) fs_sum_init(&sum, pending->sum);
    uint64_t got = u8_to_f32(pix, (float *)t->out, n, o->scale, o->offset,
                             pending ? &sum : NULL, stream);
    if (pending && got != pending->expect) return 0;
    if (o->has_norm) fs_chan_norm_row((float *)t->out, n, oc, &o->norm);
    return 1;
}

/* `pc` is the channels of `pix`: those of the output mode, or 1 for an L
 * image written as RGB (fs_resize_u8 copies it into the three channels). */
static int resize_into(fs_worker *w, const fs_batch_opts *o, fs_task *t,
                       const uint8_t *pix, int pw, int ph, int pc,
                       ptrdiff_t stride, size_t pad, const double box[4],
                       int premultiply) {
    int oc = fs_mode_channels(o->out_mode);
    fs_dst dst = {t->out, o->out_width, o->out_height, oc, o->out_row_stride,
                  o->out_dtype, o->scale, o->offset, o->has_norm ? &o->norm : NULL};
    fs_dst rdst = dst;
    /* A miss to be cached needs the 8-bit resized image: a uint8 slot is
     * it; for a float32 slot it goes to scratch and u8_to_f32 writes the
     * slot from there ((float)v * scale + offset either way, so the slot is
     * the same bits as a direct resize). */
    int keep = t->cache && t->cache->store;
    if (t->warp || (keep && o->out_dtype != FS_DTYPE_U8)) {
        /* Keras augments the image load_img gave it: resized to the target
         * size, 8-bit.  That image goes to scratch, and the warp writes the
         * slot (with the fused scale/offset). */
        size_t row, total;
        if (!fs_mul_size((size_t)o->out_width, (size_t)oc, &row) ||
            !fs_mul_size(row, (size_t)o->out_height, &total)) {
            snprintf(t->msg, FS_MSG_LEN, "image too large to augment");
            return FS_ERR_OVERFLOW;
        }
        if (!grow(&w->aug, &w->aug_cap, total)) {
            snprintf(t->msg, FS_MSG_LEN, "out of memory while augmenting");
            return FS_ERR_NOMEM;
        }
        rdst.data = w->aug;
        rdst.row_stride = (ptrdiff_t)row;
        rdst.dtype = FS_DTYPE_U8;
        rdst.scale = 1.0f;
        rdst.offset = 0.0f;
        rdst.norm = NULL;
    }
    int st = fs_resize_u8(pix, pw, ph, pc, stride, pad, box, o->filter,
                          premultiply, &rdst, &w->rs);
    if (st != FS_OK) {
        snprintf(t->msg, FS_MSG_LEN, "%s",
                 st == FS_ERR_NOMEM ? "out of memory while resizing"
                 : st == FS_ERR_OVERFLOW ? "image too large to resize"
                 : "invalid resize region");
        return st;
    }
    if (rdst.data == t->out) {
        if (o->out_dtype == FS_DTYPE_U8) w->kept = (const uint8_t *)t->out;
        return FS_OK;
    }
    w->kept = w->aug;
    if (!t->warp) {
        slot_from_u8(o, t, w->aug, NULL);
        return FS_OK;
    }
    st = fs_warp_affine_u8(w->aug, o->out_width, o->out_height, oc,
                           rdst.row_stride, t->warp, &dst, &w->ws);
    return warp_status(t, st);
}

/* A pixel source already at the output size (no crop): Pillow's resize of
 * an image to its own size is a copy, so warping the source itself gives
 * the same slot as resize_into without the copy.  A NULL warp is the
 * identity: warp = 0 and no photometric step copies the source through the
 * fused scale/offset. */
static int warp_pixels(fs_worker *w, const fs_batch_opts *o, fs_task *t) {
    int oc = fs_mode_channels(o->out_mode);
    fs_dst dst = {t->out, o->out_width, o->out_height, oc, o->out_row_stride,
                  o->out_dtype, o->scale, o->offset, o->has_norm ? &o->norm : NULL};
    const fs_warp_params *p = t->warp ? t->warp : &fs_warp_identity;
    if (t->pix_dtype == FS_DTYPE_U8) w->kept = t->data;
    int st = t->pix_dtype == FS_DTYPE_F32
        ? fs_warp_affine_f32((const float *)t->data, t->pix_width, t->pix_height,
                             oc, t->pix_stride, p, &dst, &w->ws)
        : fs_warp_affine_u8(t->data, t->pix_width, t->pix_height, oc,
                            t->pix_stride, p, &dst, &w->ws);
    return warp_status(t, st);
}

/* What libjpeg produces for `out_mode` from a `src_mode` JPEG: the one
 * place this choice is made.  A conversion (Pillow's formulas) follows when
 * the two differ and libjpeg cannot produce `out_mode` itself. */
static int decode_mode_for(const fs_batch_opts *o, int out_mode, int src_mode) {
    if (o->decode_only) return src_mode;
    if (src_mode == FS_MODE_CMYK) return FS_MODE_CMYK;
    if (out_mode == FS_MODE_L)
        return src_mode == FS_MODE_L ? FS_MODE_L : FS_MODE_RGB;
    /* An L image written as RGB is resized as L (a third of the work) and
     * the resampler copies it into the three channels; at full size there
     * is no resampler step, and libjpeg expands it. */
    if (out_mode == FS_MODE_RGB && src_mode == FS_MODE_L && !o->full_size)
        return FS_MODE_L;
    return out_mode;
}

/* ---- Shared by the decoders below. */

/* Rows of `width` pixels of `channels` bytes and the whole image, with
 * FS_PIX_PAD spare bytes after it (the resampler's SIMD windows run to the
 * end of the last row, see fs_resize_u8): FS_ERR_OVERFLOW when any of it
 * does not fit a size_t. */
static int pix_size(fs_task *t, int width, int height, int channels, size_t *rowbytes,
                    size_t *total) {
    if (!fs_mul_size((size_t)width, (size_t)channels, rowbytes) ||
        !fs_mul_size(*rowbytes, (size_t)height, total) || *total > SIZE_MAX - FS_PIX_PAD) {
        snprintf(t->msg, FS_MSG_LEN, "image too large");
        return FS_ERR_OVERFLOW;
    }
    return FS_OK;
}

/* `pixel_bytes` plus `extra` (a decoder's own buffers) against max_memory;
 * the sum saturates rather than wraps. */
static int memory_check(const fs_batch_opts *o, fs_task *t, uint64_t pixel_bytes,
                        uint64_t extra) {
    uint64_t need = extra > UINT64_MAX - pixel_bytes ? UINT64_MAX : pixel_bytes + extra;
    if (o->limits.max_memory && need > o->limits.max_memory) {
        snprintf(t->msg, FS_MSG_LEN, "decoding needs %llu bytes, over max_memory=%llu",
                 (unsigned long long)need, (unsigned long long)o->limits.max_memory);
        return FS_ERR_MEMORY_LIMIT;
    }
    return FS_OK;
}

/* The worker's decode buffer, at least `bytes`. */
static int grow_pix(fs_worker *w, fs_task *t, size_t bytes, int width, int height) {
    if (!grow(&w->pix, &w->pix_cap, bytes)) {
        snprintf(t->msg, FS_MSG_LEN, "out of memory for %dx%d pixels", width, height);
        return FS_ERR_NOMEM;
    }
    return FS_OK;
}

/* Resize the decoded image in w->pix (rows `rowbytes` apart, `channels`
 * per pixel, a buffer of `bufsize` bytes) into the task's slot: Keras'
 * keep_aspect_ratio crop, the read pad zeroed, and Pillow's premultiplied
 * RGBa resize when the alpha is not all opaque (with opaque alpha that is
 * the identity, so only real transparency pays for it). */
static int resize_pix(fs_worker *w, const fs_batch_opts *o, fs_task *t, int width, int height,
                      int channels, size_t rowbytes, size_t bufsize) {
    if (width <= 0 || height <= 0) {      /* the decoders refuse these first */
        snprintf(t->msg, FS_MSG_LEN, "empty image");
        return FS_ERR_ARG;
    }
    double box[4] = {0, 0, width, height};
    if (o->keep_aspect_ratio)
        fs_keep_aspect_box(width, height, o->out_width, o->out_height, box);
    size_t end = (size_t)(height - 1) * rowbytes + (size_t)width * (size_t)channels;
    int premultiply = 0;
    if (channels == 4)
        for (size_t i = 3; i < end && !premultiply; i += 4)
            premultiply = w->pix[i] != 255;
    memset(w->pix + end, 0, bufsize - end);
    return resize_into(w, o, t, w->pix, width, height, channels, (ptrdiff_t)rowbytes,
                       bufsize - end, box, premultiply);
}

/* decode_image's pass: the whole image at its own size straight into the
 * slot, through a conversion buffer only when libjpeg cannot produce the
 * output mode.  The memory counted is what is allocated: the output (the
 * caller allocates it after the header_only pass) plus that buffer. */
static int run_full_size(fs_worker *w, const fs_batch_opts *o, fs_task *t,
                         const fs_jpeg_info *info) {
    int out_mode = o->out_mode == FS_MODE_SOURCE ? info->mode : o->out_mode;
    if (out_mode == FS_MODE_CMYK && info->mode != FS_MODE_CMYK) {
        fs_jpeg_abort(w->jpeg);
        snprintf(t->msg, FS_MSG_LEN, "CMYK output needs a CMYK JPEG");
        return FS_ERR_ARG;
    }
    int decode_mode = decode_mode_for(o, out_mode, info->mode);
    int dc = fs_mode_channels(decode_mode), oc = fs_mode_channels(out_mode);
    /* Under 2^34 pixels (65535^2), times at most 8 bytes. */
    uint64_t pixels = (uint64_t)info->width * (uint64_t)info->height;
    int st = fs_jpeg_check_memory(w->jpeg, info,
                                  pixels * (uint64_t)(oc + (decode_mode != out_mode ? dc : 0)),
                                  t->msg, FS_MSG_LEN);
    if (st != FS_OK) return st;
    if (o->header_only) {
        fs_jpeg_abort(w->jpeg);
        return FS_OK;
    }
    if (info->width != o->out_width || info->height != o->out_height ||
        out_mode != o->out_mode || o->out_dtype != FS_DTYPE_U8 || !t->out) {
        fs_jpeg_abort(w->jpeg);
        snprintf(t->msg, FS_MSG_LEN, "full-size output does not match the image");
        return FS_ERR_ARG;
    }
    if (decode_mode == out_mode)
        return fs_jpeg_decode(w->jpeg, 1, decode_mode, (uint8_t *)t->out,
                              o->out_row_stride, t->msg, FS_MSG_LEN);
    size_t rowbytes, total;
    if (!fs_mul_size((size_t)info->width, (size_t)dc, &rowbytes) ||
        !fs_mul_size(rowbytes, (size_t)info->height, &total)) {
        fs_jpeg_abort(w->jpeg);
        snprintf(t->msg, FS_MSG_LEN, "image too large");
        return FS_ERR_OVERFLOW;
    }
    if (!grow(&w->pix, &w->pix_cap, total)) {
        fs_jpeg_abort(w->jpeg);
        snprintf(t->msg, FS_MSG_LEN, "out of memory for %dx%d pixels",
                 info->width, info->height);
        return FS_ERR_NOMEM;
    }
    st = fs_jpeg_decode(w->jpeg, 1, decode_mode, w->pix, (ptrdiff_t)rowbytes,
                        t->msg, FS_MSG_LEN);
    if (st != FS_OK) return st;
    st = fs_convert_rows(w->pix, (ptrdiff_t)rowbytes, decode_mode, (uint8_t *)t->out,
                         o->out_row_stride, out_mode, info->width, info->height);
    if (st != FS_OK) snprintf(t->msg, FS_MSG_LEN, "unsupported colour conversion");
    return st;
}

static int run_jpeg(fs_worker *w, const fs_batch_opts *o, fs_task *t,
                    const uint8_t *data, size_t len) {
    fs_jpeg_info info;
    int st = fs_jpeg_read_header(w->jpeg, data, len, &o->limits, &info,
                                 t->msg, FS_MSG_LEN);
    if (st != FS_OK) return st;
    t->src_width = info.width;
    t->src_height = info.height;
    t->src_mode = info.mode;
    if (o->full_size) return run_full_size(w, o, t, &info);

    int decode_mode = decode_mode_for(o, o->out_mode, info.mode);
    /* The mode the resampler reads: the output mode after a conversion, or
     * L for an L image written as RGB (fs_resize_u8 copies it into the three
     * channels). */
    int resize_mode = decode_mode == FS_MODE_L ? FS_MODE_L : o->out_mode;

    double box[4] = {0, 0, info.width, info.height};
    if (o->keep_aspect_ratio && !o->decode_only)
        fs_keep_aspect_box(info.width, info.height, o->out_width, o->out_height, box);
    int denom = 1;
    if (o->dct_scaling && !o->decode_only)
        denom = fs_choose_denom(box[2] - box[0], box[3] - box[1],
                                o->out_width, o->out_height);
    t->dct_denom = denom;
    int sw, sh;
    fs_jpeg_scaled_size(&info, denom, &sw, &sh);

    int dc = fs_mode_channels(decode_mode);
    size_t rowbytes, total;
    st = pix_size(t, sw, sh, dc, &rowbytes, &total);
    if (st != FS_OK) {
        fs_jpeg_abort(w->jpeg);
        return st;
    }
    st = fs_jpeg_check_memory(w->jpeg, &info, (uint64_t)total + FS_PIX_PAD,
                              t->msg, FS_MSG_LEN);
    if (st != FS_OK) return st;
    st = grow_pix(w, t, total + FS_PIX_PAD, sw, sh);
    if (st != FS_OK) {
        fs_jpeg_abort(w->jpeg);
        return st;
    }
    st = fs_jpeg_decode(w->jpeg, denom, decode_mode, w->pix, (ptrdiff_t)rowbytes,
                        t->msg, FS_MSG_LEN);
    if (st != FS_OK || o->decode_only) return st;

    if (decode_mode != resize_mode) {
        /* In place: conversions never grow a pixel (see resample.h). */
        st = fs_convert_rows(w->pix, (ptrdiff_t)rowbytes, decode_mode, w->pix,
                             (ptrdiff_t)rowbytes, o->out_mode, sw, sh);
        if (st != FS_OK) {
            snprintf(t->msg, FS_MSG_LEN, "unsupported colour conversion");
            return st;
        }
    }
    if (denom != 1)
        for (int i = 0; i < 4; i++) {
            box[i] /= denom;
            double lim = (i % 2 == 0) ? sw : sh;
            if (box[i] > lim) box[i] = lim;
        }
    int pc = fs_mode_channels(resize_mode);
    /* The last row ends at `end`; what follows is read but never used, so
     * it only needs defined contents. */
    size_t end = (size_t)(sh - 1) * rowbytes + (size_t)sw * (size_t)pc;
    memset(w->pix + end, 0, total + FS_PIX_PAD - end);
    return resize_into(w, o, t, w->pix, sw, sh, pc, (ptrdiff_t)rowbytes,
                       total + FS_PIX_PAD - end, box, 0);
}

/* ---- PNG: Pillow's pixels (csrc/png_decode.c), then the JPEG path's resize.
 * No DCT scaling; decode_only decodes in the output mode.  The memory
 * counted against max_memory is what is allocated for the image: the pixels
 * in the output mode plus the decoder's conversion buffer. */
static int png_memory_check(const fs_batch_opts *o, fs_task *t, fs_png *p,
                            int out_mode, uint64_t pixel_bytes) {
    int st = memory_check(o, t, pixel_bytes, fs_png_extra_bytes(p, out_mode));
    if (st != FS_OK) fs_png_abort(p);
    return st;
}

static int run_png(fs_worker *w, const fs_batch_opts *o, fs_task *t,
                   const uint8_t *data, size_t len) {
    if (!w->png && !(w->png = fs_png_new())) {
        snprintf(t->msg, FS_MSG_LEN, "out of memory creating decoder state");
        return FS_ERR_NOMEM;
    }
    fs_png *p = w->png;
    fs_png_info info;
    int st = fs_png_read_header(p, data, len, &o->limits, &info, t->msg, FS_MSG_LEN);
    if (st != FS_OK) return st;
    t->src_width = info.width;
    t->src_height = info.height;
    t->src_mode = info.mode ? info.mode : -1;
    int out_mode = o->out_mode == FS_MODE_SOURCE ? info.mode : o->out_mode;
    if (out_mode == 0) {
        /* Pillow's own mode is "1", "I;16", "LA" or "P": Pillow gives it. */
        fs_png_abort(p);
        snprintf(t->msg, FS_MSG_LEN, "PNG whose Pillow mode fastseq does not produce");
        return FS_ERR_NOT_JPEG;
    }
    if (out_mode == FS_MODE_CMYK) {
        fs_png_abort(p);
        snprintf(t->msg, FS_MSG_LEN, "CMYK output needs a CMYK JPEG");
        return FS_ERR_ARG;
    }
    if (o->wide_gray && out_mode == FS_MODE_L && !o->full_size &&
        info.color_type == 0 /* PNG_COLOR_TYPE_GRAY */ && info.bit_depth == 16) {
        /* Keras keeps Pillow's "I;16" at 16 bits for grayscale; Pillow
         * resizes it in its own 32-bit arithmetic: the fallback does it. */
        fs_png_abort(p);
        snprintf(t->msg, FS_MSG_LEN, "16-bit grayscale PNG kept at 16 bits");
        return FS_ERR_NOT_JPEG;
    }
    int oc = fs_mode_channels(out_mode);
    size_t rowbytes, total;
    st = pix_size(t, info.width, info.height, oc, &rowbytes, &total);
    if (st != FS_OK) {
        fs_png_abort(p);
        return st;
    }
    if (o->full_size) {
        st = png_memory_check(o, t, p, out_mode, total);
        if (st != FS_OK) return st;
        if (o->header_only) {
            fs_png_abort(p);
            return FS_OK;
        }
        if (info.width != o->out_width || info.height != o->out_height ||
            out_mode != o->out_mode || o->out_dtype != FS_DTYPE_U8 || !t->out) {
            fs_png_abort(p);
            snprintf(t->msg, FS_MSG_LEN, "full-size output does not match the image");
            return FS_ERR_ARG;
        }
        return fs_png_decode(p, out_mode, (uint8_t *)t->out, o->out_row_stride,
                             t->msg, FS_MSG_LEN);
    }
    st = png_memory_check(o, t, p, out_mode, (uint64_t)total + FS_PIX_PAD);
    if (st != FS_OK) return st;
    st = grow_pix(w, t, total + FS_PIX_PAD, info.width, info.height);
    if (st != FS_OK) {
        fs_png_abort(p);
        return st;
    }
    st = fs_png_decode(p, out_mode, w->pix, (ptrdiff_t)rowbytes, t->msg, FS_MSG_LEN);
    if (st != FS_OK || o->decode_only) return st;
    return resize_pix(w, o, t, info.width, info.height, oc, rowbytes, total + FS_PIX_PAD);
}

/* ---- WebP: Pillow's pixels (csrc/webp_decode.c), then the same resize.
 * libwebp writes RGB or RGBA; an L output is Pillow's luma of the RGB,
 * converted in place as after a JPEG decode.  The memory counted against
 * max_memory is the pixels libwebp writes, the output when it is not those
 * pixels, and libwebp's own buffers (fs_webp_extra_bytes). */
static int webp_memory_check(const fs_batch_opts *o, fs_task *t, fs_webp *p,
                             uint64_t pixel_bytes) {
    return memory_check(o, t, pixel_bytes, fs_webp_extra_bytes(p));
}

static int run_webp(fs_worker *w, const fs_batch_opts *o, fs_task *t,
                    const uint8_t *data, size_t len) {
    if (!w->webp && !(w->webp = fs_webp_new())) {
        snprintf(t->msg, FS_MSG_LEN, "out of memory creating decoder state");
        return FS_ERR_NOMEM;
    }
    fs_webp *p = w->webp;
    fs_webp_info info;
    int st = fs_webp_read_header(p, data, len, &o->limits, &info, t->msg, FS_MSG_LEN);
    if (st != FS_OK) return st;
    t->src_width = info.width;
    t->src_height = info.height;
    t->src_mode = info.mode;
    int out_mode = o->out_mode == FS_MODE_SOURCE ? info.mode : o->out_mode;
    if (out_mode == FS_MODE_CMYK) {
        snprintf(t->msg, FS_MSG_LEN, "CMYK output needs a CMYK JPEG");
        return FS_ERR_ARG;
    }
    int decode_mode = out_mode == FS_MODE_L ? FS_MODE_RGB : out_mode;
    int dc = fs_mode_channels(decode_mode), oc = fs_mode_channels(out_mode);
    size_t rowbytes, total;
    st = pix_size(t, info.width, info.height, dc, &rowbytes, &total);
    if (st != FS_OK) return st;
    if (o->full_size) {
        uint64_t out_bytes = (uint64_t)info.width * (uint64_t)info.height * (uint64_t)oc;
        st = webp_memory_check(o, t, p, out_bytes + (decode_mode != out_mode ? total : 0));
        if (st != FS_OK || o->header_only) return st;
        if (info.width != o->out_width || info.height != o->out_height ||
            out_mode != o->out_mode || o->out_dtype != FS_DTYPE_U8 || !t->out) {
            snprintf(t->msg, FS_MSG_LEN, "full-size output does not match the image");
            return FS_ERR_ARG;
        }
        if (decode_mode == out_mode)
            return fs_webp_decode(p, out_mode, (uint8_t *)t->out, o->out_row_stride,
                                  t->msg, FS_MSG_LEN);
    } else {
        st = webp_memory_check(o, t, p, (uint64_t)total + FS_PIX_PAD);
        if (st != FS_OK) return st;
    }
    st = grow_pix(w, t, total + FS_PIX_PAD, info.width, info.height);
    if (st != FS_OK) return st;
    st = fs_webp_decode(p, decode_mode, w->pix, (ptrdiff_t)rowbytes, t->msg, FS_MSG_LEN);
    if (st != FS_OK) return st;
    if (decode_mode != out_mode) {
        /* In place unless full size: rows stay rowbytes apart. */
        uint8_t *dst = o->full_size ? (uint8_t *)t->out : w->pix;
        ptrdiff_t dstride = o->full_size ? o->out_row_stride : (ptrdiff_t)rowbytes;
        st = fs_convert_rows(w->pix, (ptrdiff_t)rowbytes, decode_mode, dst, dstride,
                             out_mode, info.width, info.height);
        if (st != FS_OK) {
            snprintf(t->msg, FS_MSG_LEN, "unsupported colour conversion");
            return st;
        }
    }
    if (o->full_size || o->decode_only) return FS_OK;
    /* After an in-place RGB -> L the rows are still rowbytes apart. */
    return resize_pix(w, o, t, info.width, info.height, oc, rowbytes, total + FS_PIX_PAD);
}

/* ---- BMP and binary PGM/PPM (csrc/raw_decode.h): rows converted from the
 * encoded bytes straight into the resize's source buffer (or, at full
 * size, the slot); the only memory is those pixels. */
static int run_raw(fs_worker *w, const fs_batch_opts *o, fs_task *t,
                   const uint8_t *data, size_t len, int bmp) {
    fs_raw_info info;
    int st = bmp ? fs_bmp_read_header(data, len, &o->limits, &info, t->msg, FS_MSG_LEN)
                 : fs_pnm_read_header(data, len, &o->limits, &info, t->msg, FS_MSG_LEN);
    if (st != FS_OK) return st;
    t->src_width = info.width;
    t->src_height = info.height;
    t->src_mode = info.mode ? info.mode : -1;
    int out_mode = o->out_mode == FS_MODE_SOURCE ? info.mode : o->out_mode;
    if (out_mode == 0) {
        /* Pillow's own mode is "1", "P" or "I": Pillow gives it. */
        snprintf(t->msg, FS_MSG_LEN, "image whose Pillow mode fastseq does not produce");
        return FS_ERR_NOT_JPEG;
    }
    if (out_mode == FS_MODE_CMYK) {
        snprintf(t->msg, FS_MSG_LEN, "CMYK output needs a CMYK JPEG");
        return FS_ERR_ARG;
    }
    int oc = fs_mode_channels(out_mode);
    size_t rowbytes, total;
    st = pix_size(t, info.width, info.height, oc, &rowbytes, &total);
    if (st != FS_OK) return st;
    st = memory_check(o, t, (uint64_t)total, o->full_size ? 0 : FS_PIX_PAD);
    if (st != FS_OK) return st;
    if (o->full_size) {
        if (o->header_only) return FS_OK;
        if (info.width != o->out_width || info.height != o->out_height ||
            out_mode != o->out_mode || o->out_dtype != FS_DTYPE_U8 || !t->out) {
            snprintf(t->msg, FS_MSG_LEN, "full-size output does not match the image");
            return FS_ERR_ARG;
        }
        st = bmp ? fs_bmp_decode(&info, data, len, out_mode, (uint8_t *)t->out, o->out_row_stride)
                 : fs_pnm_decode(&info, data, len, out_mode, (uint8_t *)t->out, o->out_row_stride);
        if (st != FS_OK) snprintf(t->msg, FS_MSG_LEN, "invalid decode request");
        return st;
    }
    st = grow_pix(w, t, total + FS_PIX_PAD, info.width, info.height);
    if (st != FS_OK) return st;
    st = bmp ? fs_bmp_decode(&info, data, len, out_mode, w->pix, (ptrdiff_t)rowbytes)
             : fs_pnm_decode(&info, data, len, out_mode, w->pix, (ptrdiff_t)rowbytes);
    if (st != FS_OK) {
        snprintf(t->msg, FS_MSG_LEN, "invalid decode request");
        return st;
    }
    if (o->decode_only) return FS_OK;
    return resize_pix(w, o, t, info.width, info.height, oc, rowbytes, total + FS_PIX_PAD);
}

/* Encoded bytes: the decoder is chosen by the stream's signature, never by
 * the file name; anything but PNG, WebP, BMP and PGM/PPM goes to the JPEG decoder, which sends
 * what is not JPEG either to the Pillow fallback. */
static int run_encoded(fs_worker *w, const fs_batch_opts *o, fs_task *t,
                       const uint8_t *data, size_t len) {
    if (fs_is_png(data, len)) return run_png(w, o, t, data, len);
    if (fs_is_webp(data, len)) return run_webp(w, o, t, data, len);
    if (fs_is_bmp(data, len)) return run_raw(w, o, t, data, len, 1);
    if (fs_is_pnm(data, len)) return run_raw(w, o, t, data, len, 0);
    return run_jpeg(w, o, t, data, len);
}

/* ---- The cache (csrc/cache.h): a hit is one more kind of source. */

/* Write the slot from cached 8-bit pixels of the output size, as an
 * uncached task writes it from its resized pixels: a copy for a uint8 slot,
 * u8_to_f32 for a float32 one, or the task's warp.  Slots are contiguous
 * (out_row_stride is width x channels x the sample size). */
static int emit_cached(fs_worker *w, const fs_batch_opts *o, fs_task *t,
                       const uint8_t *pix) {
    int oc = fs_mode_channels(o->out_mode);
    if (o->out_dtype == FS_DTYPE_U8 && !t->warp) {
        if (pix != t->out)
            memcpy(t->out, pix, (size_t)o->out_row_stride * (size_t)o->out_height);
        return FS_OK;
    }
    if (!t->warp) {
        slot_from_u8(o, t, pix, NULL);
        return FS_OK;
    }
    fs_dst dst = {t->out, o->out_width, o->out_height, oc, o->out_row_stride,
                  o->out_dtype, o->scale, o->offset, o->has_norm ? &o->norm : NULL};
    int st = fs_warp_affine_u8(pix, o->out_width, o->out_height, oc,
                               (ptrdiff_t)o->out_width * oc, t->warp, &dst, &w->ws);
    return warp_status(t, st);
}

/* The failures that are a property of the file's bytes (and of the limits,
 * which are part of the key): remembered, not retried every epoch.  I/O
 * errors, memory and interruption may pass and are retried. */
static int failure_is_remembered(int st) {
    switch (st) {
    case FS_ERR_EMPTY: case FS_ERR_DECODE: case FS_ERR_TRUNCATED:
    case FS_ERR_TOO_MANY_PIXELS: case FS_ERR_TOO_MANY_SCANS:
    case FS_ERR_FILE_TOO_LARGE: case FS_ERR_MEMORY_LIMIT: case FS_ERR_WORK_LIMIT:
        return 1;
    default:
        return 0;
    }
}

/* Serve the task from its cache entry when there is a valid one: returns 1
 * with *st set (FS_OK, or a remembered failure with its message), else 0
 * (decode; the probe's finding is in the ref). */
static int serve_cached(fs_worker *w, const fs_batch_opts *o, fs_task *t, int *st) {
    fs_cache_ref *cr = t->cache;
    int oc = fs_mode_channels(o->out_mode);
    if (cr->hit_pixels) {
        cr->result = cr->probe_result = FS_CACHE_HIT;
        t->src_width = o->out_width;
        t->src_height = o->out_height;
        *st = emit_cached(w, o, t, cr->hit_pixels);
        return 1;
    }
    if (!cr->probe || !cr->entry_path) return 0;
    size_t bytes = (size_t)o->out_width * (size_t)o->out_height * (size_t)oc;
    uint8_t *dst = (uint8_t *)t->out;
    if (o->out_dtype != FS_DTYPE_U8 || t->warp) {
        if (!grow(&w->cpix, &w->cpix_cap, bytes)) return 0;   /* decode instead */
        dst = w->cpix;
    }
    int stored = 0;
    /* A float32 slot without a warp is written in one pass over the pixels
     * that also checksums them (u8_to_f32 with a sum); a mismatch leaves the
     * slot to the decode below, which rewrites all of it. */
    int fused = o->out_dtype == FS_DTYPE_F32 && !t->warp;
    fs_cache_pending pending;
    int r = fs_cache_read_deferred(cr->entry_path, cr->key, cr->key_len, o->out_width,
                                   o->out_height, oc, dst, &stored, t->msg, cr->why,
                                   fused ? &pending : NULL);
    cr->result = cr->probe_result = r;
    if (r == FS_CACHE_HIT && fused && !slot_from_u8(o, t, dst, &pending)) {
        snprintf(cr->why, FS_MSG_LEN, "checksum mismatch");
        cr->result = cr->probe_result = FS_CACHE_CORRUPT;
        t->msg[0] = '\0';
        return 0;
    }
    if (r == FS_CACHE_HIT) {
        t->src_width = o->out_width;
        t->src_height = o->out_height;
        *st = fused ? FS_OK : emit_cached(w, o, t, dst);
        return 1;
    }
    if (r == FS_CACHE_HIT_FAILED) {
        /* store_cached writes failure_is_remembered's statuses, the Pillow
         * fallback's failures (fastseq.cache._REMEMBERED_CODES) add
         * NOT_IMAGE; anything else is a forged or foreign entry, decoded
         * again and replaced, never reported as the image's failure. */
        if (failure_is_remembered(stored) || stored == FS_ERR_NOT_IMAGE) {
            *st = stored;
            return 1;
        }
        snprintf(cr->why, FS_MSG_LEN, "remembers status %d, which is never stored", stored);
        cr->result = cr->probe_result = FS_CACHE_CORRUPT;
    }
    t->msg[0] = '\0';
    return 0;
}


/* After a miss's decode: store the resized pixels (or the failure).  The
 * write's own reason goes to a local buffer: cr->why still holds why the
 * probe found the entry damaged (the warning names it), and only a failed
 * write adds its reason there. */
static void store_cached(fs_worker *w, const fs_batch_opts *o, fs_task *t, int st) {
    fs_cache_ref *cr = t->cache;
    int oc = fs_mode_channels(o->out_mode);
    size_t bytes = (size_t)o->out_width * (size_t)o->out_height * (size_t)oc;
    char wbuf[FS_MSG_LEN];
    int wr = -1;
    if (st == FS_OK && w->kept) {
        if (cr->store_pixels) {
            memcpy(cr->store_pixels, w->kept, bytes);
            cr->result = FS_CACHE_STORED;
        } else if (cr->entry_path) {
            wr = fs_cache_write(cr->entry_path, cr->key, cr->key_len, 0, o->out_width,
                                o->out_height, oc, w->kept, bytes, wbuf);
        }
    } else if (st != FS_OK && failure_is_remembered(st) && cr->entry_path) {
        wr = fs_cache_write(cr->entry_path, cr->key, cr->key_len, st, 0, 0, 0,
                            (const uint8_t *)t->msg, strlen(t->msg), wbuf);
    }
    if (wr == -1) return;
    cr->result = wr == FS_OK ? FS_CACHE_STORED : FS_CACHE_STORE_FAILED;
    if (wr != FS_OK) {
        char both[FS_MSG_LEN];
        if (cr->why[0])
            snprintf(both, sizeof both, "%.150s; rewriting it failed: %.140s", cr->why, wbuf);
        else
            snprintf(both, sizeof both, "%s", wbuf);
        memcpy(cr->why, both, sizeof both);
    }
}

static void batch_task(void *vctx, size_t index, void **local) {
    fs_batch_ctx *ctx = (fs_batch_ctx *)vctx;
    const fs_batch_opts *o = ctx->opts;
    fs_task *t = &ctx->tasks[index];
    t->msg[0] = '\0';
    t->src_width = t->src_height = 0;
    t->dct_denom = 1;
    t->src_mode = -1;
    fs_worker *w = worker_get(local);
    int st;
    if (t->cache) {
        t->cache->result = t->cache->probe_result = FS_CACHE_NONE;
        t->cache->why[0] = '\0';
    }
    if (w) w->kept = NULL;
    if (!w) {
        snprintf(t->msg, FS_MSG_LEN, "out of memory creating decoder state");
        st = FS_ERR_NOMEM;
    } else if ((t->warp || t->cache) && (o->full_size || o->decode_only)) {
        snprintf(t->msg, FS_MSG_LEN, "augmentation and the cache need a resized batch");
        st = FS_ERR_ARG;
    } else if (t->cache && serve_cached(w, o, t, &st)) {
        /* served from the cache */
    } else if (t->kind == FS_SRC_PIXELS && t->pix_width == o->out_width &&
               t->pix_height == o->out_height && !t->premultiply_alpha &&
               (t->warp || t->pix_dtype == FS_DTYPE_F32)) {
        t->src_width = t->pix_width;
        t->src_height = t->pix_height;
        st = warp_pixels(w, o, t);
    } else if (t->kind == FS_SRC_PIXELS && t->pix_dtype != FS_DTYPE_U8) {
        snprintf(t->msg, FS_MSG_LEN, "float32 pixels are not resized: the source "
                 "must have the output size");
        st = FS_ERR_ARG;
    } else if (t->kind == FS_SRC_PIXELS) {
        double box[4] = {0, 0, t->pix_width, t->pix_height};
        if (o->keep_aspect_ratio)
            fs_keep_aspect_box(t->pix_width, t->pix_height, o->out_width,
                               o->out_height, box);
        t->src_width = t->pix_width;
        t->src_height = t->pix_height;
        st = resize_into(w, o, t, t->data, t->pix_width, t->pix_height,
                         fs_mode_channels(o->out_mode), t->pix_stride, 0, box,
                         t->premultiply_alpha);
    } else {
        const uint8_t *data = t->data;
        size_t len = t->size;
        st = FS_OK;
        uint64_t max_bytes = o->limits.max_file_bytes;
        if (t->kind == FS_SRC_FILE) {
            st = fs_read_file(t->path, max_bytes, 1, &w->file, &w->file_cap,
                              &len, t->msg);
            data = w->file;
        } else if (len == 0) {
            snprintf(t->msg, FS_MSG_LEN, "empty input");
            st = FS_ERR_EMPTY;
        } else if (max_bytes && (uint64_t)len > max_bytes) {
            snprintf(t->msg, FS_MSG_LEN, "input is %llu bytes, over max_file_bytes=%llu",
                     (unsigned long long)len, (unsigned long long)max_bytes);
            st = FS_ERR_FILE_TOO_LARGE;
        }
        if (st == FS_OK) st = run_encoded(w, o, t, data, len);
        trim(&w->file, &w->file_cap);
        trim(&w->pix, &w->pix_cap);
        fs_png_trim(w->png, FS_KEEP_BYTES);
    }
    if (w && t->cache && t->cache->store && t->cache->result != FS_CACHE_HIT &&
        t->cache->result != FS_CACHE_HIT_FAILED)
        store_cached(w, o, t, st);
    if (w) {
        w->kept = NULL;
        trim(&w->aug, &w->aug_cap);
        trim(&w->cpix, &w->cpix_cap);
    }
    t->status = st;
    if (st != FS_OK && t->out)
        memset(t->out, 0, (size_t)o->out_row_stride * (size_t)o->out_height);
}

int fs_batch_run(const fs_batch_opts *opts, fs_task *tasks, size_t n) {
    fs_batch_ctx ctx = {opts, tasks};
    return fs_pool_run(batch_task, &ctx, n, worker_free);
}

int fs_batch_submit(const fs_batch_opts *opts, fs_task *tasks, size_t n,
                    fs_pool_job **job) {
    fs_batch_ctx ctx = {opts, tasks};     /* the job keeps a copy */
    return fs_pool_submit(batch_task, &ctx, sizeof ctx, n, worker_free, job);
}
