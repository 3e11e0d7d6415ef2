/*
 * libFuzzer harness: the cache entry reader (fs_cache_read), which parses
 * files anyone with write access to a cache directory can change, and the
 * writer it is paired with (fs_cache_write).
 *
 * Input layout: 4 header bytes, then the body.
 *   [0]  bit 0: mode.  0 = the body is the entry file, read as is;
 *        1 = a valid entry is written with fs_cache_write (pixels, or a
 *        failure when bit 1 is set) and then damaged as the body says
 *   [1]  width - 1 (mod 16), [2] height - 1 (mod 16), [3] channels (1, 3, 4)
 *   mode 1 body: [0-1] truncate to this many bytes if below the file's size
 *        (little-endian; 0xFFFF: no truncation), then 3-byte patches
 *        (2-byte little-endian offset mod the size, 1 byte XOR-ed in)
 *
 * Oracles, besides ASan/UBSan/LSan:
 *   - mode 0: never an error status; a hit writes exactly the expected
 *     w x h x c bytes (the destination is allocated to that size);
 *   - mode 1, the file unchanged: a hit with the written pixels, or the
 *     remembered failure with its status and message;
 *   - mode 1, any byte changed or the file shortened: never a hit of
 *     either kind (the checksum covers header, key and payload, and the
 *     size must be exact): CORRUPT with its reason, or STALE (a changed
 *     key byte: another image's entry).
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache.h"

static char g_path[64];

static const uint8_t KEY[] = "fastseq-fuzz params size=4x4\0/data/img.jpg\0" "123:456";

static void write_file(const uint8_t *p, size_t n) {
    int fd = open(g_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) abort();
    while (n) {
        ssize_t k = write(fd, p, n);
        if (k <= 0) abort();
        p += k;
        n -= (size_t)k;
    }
    close(fd);
}

static uint8_t *read_file(size_t *n) {
    FILE *f = fopen(g_path, "rb");
    if (!f) abort();
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *p = (uint8_t *)malloc(len > 0 ? (size_t)len : 1);
    if (!p || fread(p, 1, (size_t)len, f) != (size_t)len) abort();
    fclose(f);
    *n = (size_t)len;
    return p;
}

/* fs_cache_read_deferred, completed by summing the payload from the pending
 * state, must agree with fs_cache_read on every file: same result, same
 * pixels, same failure record. */
static void check_deferred(int w, int h, int c, size_t npix, int r_full, const uint8_t *dst_full,
                           int status_full, const char *msg_full) {
    uint8_t *dst = (uint8_t *)malloc(npix);
    char msg[FS_MSG_LEN], why[FS_MSG_LEN];
    int status = 0;
    fs_cache_pending pending;
    if (!dst) abort();
    msg[0] = why[0] = '\0';
    int r = fs_cache_read_deferred(g_path, KEY, sizeof KEY - 1, w, h, c, dst, &status, msg, why,
                                   &pending);
    if (r == FS_CACHE_HIT && fs_cache_checksum(dst, npix, pending.sum) != pending.expect)
        r = FS_CACHE_CORRUPT;
    if (r != r_full) abort();
    if (r == FS_CACHE_HIT && memcmp(dst, dst_full, npix) != 0) abort();
    if (r == FS_CACHE_HIT_FAILED && (status != status_full || strcmp(msg, msg_full) != 0))
        abort();
    free(dst);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!g_path[0]) snprintf(g_path, sizeof g_path, "/tmp/fastseq-fuzz-cache.%ld", (long)getpid());
    if (size < 4) return 0;
    int mode = data[0] & 1, failure = (data[0] >> 1) & 1;
    int w = 1 + data[1] % 16, h = 1 + data[2] % 16;
    static const int chans[4] = {1, 3, 4, 4};
    int c = chans[data[3] % 4];
    const uint8_t *body = data + 4;
    size_t blen = size - 4;
    size_t npix = (size_t)w * (size_t)h * (size_t)c;
    uint8_t *dst = (uint8_t *)malloc(npix);
    uint8_t *want = (uint8_t *)malloc(npix);
    char msg[FS_MSG_LEN], why[FS_MSG_LEN];
    int status = 0;
    if (!dst || !want) abort();
    for (size_t i = 0; i < npix; i++) want[i] = (uint8_t)(i * 131u + (unsigned)w * 7u);

    if (mode == 0) {
        write_file(body, blen);
        why[0] = msg[0] = '\0';
        int r = fs_cache_read(g_path, KEY, sizeof KEY - 1, w, h, c, dst, &status, msg, why);
        if (r < FS_CACHE_HIT || r > FS_CACHE_CORRUPT) abort();
        if (r == FS_CACHE_HIT_FAILED && (status == 0 || memchr(msg, 0, FS_MSG_LEN) == NULL))
            abort();
        check_deferred(w, h, c, npix, r, dst, status, msg);
    } else {
        static const char fail_msg[] = "not a JPEG: a remembered failure";
        if (fs_cache_write(g_path, KEY, sizeof KEY - 1, failure ? 7 : 0, w, h, c,
                           failure ? (const uint8_t *)fail_msg : want,
                           failure ? sizeof fail_msg - 1 : npix, why) != FS_OK)
            abort();
        size_t flen;
        uint8_t *file = read_file(&flen);
        uint8_t *orig = (uint8_t *)malloc(flen);
        if (!orig) abort();
        memcpy(orig, file, flen);
        size_t keep = flen;
        if (blen >= 2) {
            size_t t = (size_t)body[0] | (size_t)body[1] << 8;
            if (t != 0xFFFF && t < flen) keep = t;
            for (size_t i = 2; i + 3 <= blen; i += 3) {
                size_t off = ((size_t)body[i] | (size_t)body[i + 1] << 8) % flen;
                file[off] ^= body[i + 2];
            }
        }
        int changed = keep != flen || memcmp(file, orig, flen) != 0;
        write_file(file, keep);
        why[0] = msg[0] = '\0';
        int r = fs_cache_read(g_path, KEY, sizeof KEY - 1, w, h, c, dst, &status, msg, why);
        check_deferred(w, h, c, npix, r, dst, status, msg);
        if (!changed) {
            if (failure) {
                if (r != FS_CACHE_HIT_FAILED || status != 7 || strcmp(msg, fail_msg) != 0)
                    abort();
            } else if (r != FS_CACHE_HIT || memcmp(dst, want, npix) != 0) {
                abort();
            }
        } else {
            if (r != FS_CACHE_CORRUPT && r != FS_CACHE_STALE) abort();
            if (r == FS_CACHE_CORRUPT && !why[0]) abort();
        }
        free(orig);
        free(file);
    }
    unlink(g_path);
    free(dst);
    free(want);
    return 0;
}
