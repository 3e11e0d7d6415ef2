/*
 * The resized-pixel cache (fastseq.cache): one entry per source image, the
 * image's decoded, colour-converted, resized uint8 pixels at the batch's
 * target size, or the failure its decode ended in.
 *
 * On disk an entry is one file, written whole under a unique temporary name
 * and renamed into place (rename(2) is atomic within a directory), so a
 * reader sees either no entry, an old complete entry or a new complete one:
 * concurrent writers (threads, forked workers, two runs on one directory)
 * need no lock, and every entry committed before an interrupted epoch stays
 * usable.  Nothing is fsync'ed: a file left short or zero-filled by a crash
 * fails the size or checksum test below and is rebuilt, never returned.
 *
 * File layout (native byte order; the magic's last 4 bytes are a uint32
 * 0x01020304 written natively, so a file from another byte order is
 * rejected by the magic test):
 *
 *   offset  size
 *        0     8  magic "FSQC" + uint32 0x01020304
 *        8     4  format version (FS_CACHE_FORMAT)
 *       12     4  status: 0 = pixels follow, else the fs_status the
 *                 image's decode failed with (payload = its message)
 *       16     4  width   (0 for a failure)
 *       20     4  height
 *       24     4  channels
 *       28     4  key length K (at most FS_CACHE_MAX_KEY)
 *       32     8  payload length P
 *       40     8  checksum (fs_cache_checksum) of bytes [0, 40) and the
 *                 K + P bytes from 48 on
 *       48     K  key: the caller's bytes (parameters, path, size, mtime)
 *     48+K     P  payload: height x width x channels pixels, or a message
 *
 * The file's size must be exactly 48 + K + P.
 */
#ifndef FS_CACHE_H
#define FS_CACHE_H

#include <string.h>

#include "fs_common.h"

#define FS_CACHE_FORMAT 1u
#define FS_CACHE_HEADER 48
/* The key holds the parameters (a few hundred bytes) and a path
 * (PATH_MAX is 4096 on Linux). */
#define FS_CACHE_MAX_KEY 8192u

/* What a probe found, or what a store did (fs_cache_ref.result). */
typedef enum {
    FS_CACHE_NONE = 0,       /* no probe or store happened */
    FS_CACHE_HIT = 1,        /* pixels served from the entry */
    FS_CACHE_HIT_FAILED = 2, /* a remembered failure served (status, msg) */
    FS_CACHE_ABSENT = 3,     /* no entry */
    FS_CACHE_STALE = 4,      /* an entry for another key (a changed file) */
    FS_CACHE_CORRUPT = 5,    /* an unreadable, short, foreign or damaged entry */
    FS_CACHE_STORED = 6,     /* the miss was decoded and its entry written */
    FS_CACHE_STORE_FAILED = 7 /* the entry could not be written (msg says why) */
} fs_cache_result;

/* One image's cache entry, as the batch driver sees it (fs_task.cache). */
typedef struct {
    const char *entry_path;      /* on disk: the entry's file; NULL in memory */
    const uint8_t *key;          /* on disk: the key bytes the entry must hold */
    size_t key_len;
    const uint8_t *hit_pixels;   /* in memory: a hit's pixels (output size,
                                    contiguous), else NULL */
    uint8_t *store_pixels;       /* in memory: where a miss's pixels go
                                    (output size, contiguous), else NULL */
    int probe;                   /* on disk: try the entry before decoding */
    int store;                   /* write the entry after a miss's decode */
    /* results */
    int result;                  /* fs_cache_result of the probe, then of the store */
    int probe_result;            /* the probe's alone (CORRUPT is warned about) */
    char why[FS_MSG_LEN];        /* CORRUPT / STORE_FAILED: the reason */
} fs_cache_ref;

/* A 64-bit checksum of `n` bytes (four independent multiply-xor lanes over
 * 8-byte words, folded; not cryptographic: it detects damage, not
 * tampering).  `h` chains calls over several buffers. */
uint64_t fs_cache_checksum(const uint8_t *p, size_t n, uint64_t h);

/* The same checksum one 32-byte block at a time, for a pass that does
 * other work on the bytes as it goes (the batch driver converts an entry's
 * pixels to float32 while summing them):
 *     fs_sum s; fs_sum_init(&s, h);
 *     for each whole 32-byte block b of the n bytes: fs_sum_block(&s, b);
 *     fs_sum_final(&s, rest, n % 32, n)  ==  fs_cache_checksum(p, n, h)
 * (rest: the last n % 32 bytes).  The lanes are independent multiply-rotate
 * chains, so a block costs about 5 cycles of latency and the chains run in
 * the shadow of a store-bound loop. */
#define FS_SUM_K1 0x9E3779B97F4A7C15ULL
#define FS_SUM_K2 0xC2B2AE3D27D4EB4FULL

typedef struct { uint64_t a, b, c, d; } fs_sum;

static inline uint64_t fs_sum_rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

static inline uint64_t fs_sum_load(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static inline void fs_sum_init(fs_sum *s, uint64_t h) {
    s->a = h ^ FS_SUM_K1;
    s->b = h ^ FS_SUM_K2;
    s->c = fs_sum_rotl(h, 17) + FS_SUM_K1;
    s->d = fs_sum_rotl(h, 41) - FS_SUM_K2;
}

static inline void fs_sum_block(fs_sum *s, const uint8_t *p) {
    s->a = fs_sum_rotl((s->a ^ fs_sum_load(p)) * FS_SUM_K1, 31);
    s->b = fs_sum_rotl((s->b ^ fs_sum_load(p + 8)) * FS_SUM_K1, 31);
    s->c = fs_sum_rotl((s->c ^ fs_sum_load(p + 16)) * FS_SUM_K1, 31);
    s->d = fs_sum_rotl((s->d ^ fs_sum_load(p + 24)) * FS_SUM_K1, 31);
}

uint64_t fs_sum_final(fs_sum *s, const uint8_t *rest, size_t rest_n, size_t total_n);

/* Probe the entry at `path` for `key`, expecting `w` x `h` x `c` pixels.
 * On FS_CACHE_HIT the pixels are in `dst` (contiguous rows; it is written
 * even on a later checksum failure, so it must be scratch or a slot that
 * is rewritten then); on FS_CACHE_HIT_FAILED *status and `msg`
 * (FS_MSG_LEN) hold the remembered failure.  CORRUPT and STALE put the
 * reason in `why` (FS_MSG_LEN).  Never an error status: whatever cannot be
 * read is a miss. */
int fs_cache_read(const char *path, const uint8_t *key, size_t key_len,
                  int w, int h, int c, uint8_t *dst, int *status, char *msg,
                  char *why);

/* What fs_cache_read_deferred leaves to its caller: the checksum of the
 * header and key (the payload's fs_sum_init value), and the checksum the
 * entry says the whole should have. */
typedef struct {
    uint64_t sum;
    uint64_t expect;
} fs_cache_pending;

/* fs_cache_read, except that a pixel entry's payload is read into `dst`
 * without being checksummed: FS_CACHE_HIT then means "header, size and key
 * valid", and the pixels are only the entry's once the caller has summed
 * them from pending->sum (fs_sum_*) and found pending->expect; otherwise
 * the entry is damaged ("checksum mismatch") and whatever was written
 * from `dst` must be rewritten.  Failure records are verified here as by
 * fs_cache_read, which is this function with `pending` NULL. */
int fs_cache_read_deferred(const char *path, const uint8_t *key, size_t key_len,
                           int w, int h, int c, uint8_t *dst, int *status, char *msg,
                           char *why, fs_cache_pending *pending);

/* Write the entry at `path`: pixels (`status` 0, `payload` = w x h x c
 * bytes) or a failure (`status` != 0, `payload` = its message).  Written
 * to `path`.<pid>.<n>.tmp and renamed over `path`; returns FS_OK, or
 * FS_ERR_IO with the reason in `why` (nothing is left behind). */
int fs_cache_write(const char *path, const uint8_t *key, size_t key_len,
                   int status, int w, int h, int c, const uint8_t *payload,
                   size_t payload_len, char *why);

#endif
