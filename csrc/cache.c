#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "cache.h"

static const uint8_t MAGIC4[4] = {'F', 'S', 'Q', 'C'};
static const uint32_t ORDER_MARK = 0x01020304u;

/* Four lanes (fs_sum_block in cache.h), each a multiply-rotate chain over
 * every fourth word (about 5 cycles of latency per 8 bytes per lane, so 32
 * bytes per ~5 cycles), then folded with the length.  A chained call
 * continues from the fold, so the result depends on how the bytes were
 * split; writer and reader split them the same way (header, key, payload). */
uint64_t fs_sum_final(fs_sum *s, const uint8_t *rest, size_t rest_n, size_t total_n) {
    size_t i = 0;
    for (; i + 8 <= rest_n; i += 8)
        s->a = fs_sum_rotl((s->a ^ fs_sum_load(rest + i)) * FS_SUM_K1, 31);
    if (i < rest_n) {
        uint8_t tail[8] = {0};
        memcpy(tail, rest + i, rest_n - i);
        s->b = fs_sum_rotl((s->b ^ fs_sum_load(tail)) * FS_SUM_K1, 31);
    }
    uint64_t x = fs_sum_rotl(s->a, 1) + fs_sum_rotl(s->b, 7) + fs_sum_rotl(s->c, 12) +
                 fs_sum_rotl(s->d, 18);
    x ^= (uint64_t)total_n * FS_SUM_K2;
    x ^= x >> 33;
    x *= FS_SUM_K2;
    x ^= x >> 29;
    return x;
}

uint64_t fs_cache_checksum(const uint8_t *p, size_t n, uint64_t h) {
    fs_sum s;
    fs_sum_init(&s, h);
    size_t i = 0;
    for (; i + 32 <= n; i += 32) fs_sum_block(&s, p + i);
    return fs_sum_final(&s, p + i, n - i, n);
}

static int pread_full(int fd, void *buf, size_t n, off_t off) {
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(fd, (uint8_t *)buf + got, n - got, off + (off_t)got);
        if (r < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (r == 0) return -1;        /* shorter than its header says */
        got += (size_t)r;
    }
    return 0;
}

static uint32_t get32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t get64u(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }

/* The header's own bytes: magic, version, status, dimensions, lengths. */
static void header_fill(uint8_t hdr[FS_CACHE_HEADER], int status, int w, int h,
                        int c, size_t key_len, size_t payload_len) {
    memset(hdr, 0, FS_CACHE_HEADER);
    memcpy(hdr, MAGIC4, 4);
    put32(hdr + 4, ORDER_MARK);
    put32(hdr + 8, FS_CACHE_FORMAT);
    put32(hdr + 12, (uint32_t)status);
    put32(hdr + 16, (uint32_t)w);
    put32(hdr + 20, (uint32_t)h);
    put32(hdr + 24, (uint32_t)c);
    put32(hdr + 28, (uint32_t)key_len);
    put64(hdr + 32, (uint64_t)payload_len);
}

#define CORRUPT(...) do { snprintf(why, FS_MSG_LEN, __VA_ARGS__); \
                          result = FS_CACHE_CORRUPT; goto done; } while (0)

int fs_cache_read_deferred(const char *path, const uint8_t *key, size_t key_len,
                           int w, int h, int c, uint8_t *dst, int *status, char *msg,
                           char *why, fs_cache_pending *pending) {
    int result;
    why[0] = '\0';
    /* O_NONBLOCK: opening a FIFO planted at an entry's path must not wait
     * for a writer (it then fails the regular-file test below); reads of a
     * regular file ignore the flag. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0) {
        if (errno == ENOENT || errno == ENOTDIR) return FS_CACHE_ABSENT;
        snprintf(why, FS_MSG_LEN, "cannot open: %s", strerror(errno));
        return FS_CACHE_CORRUPT;
    }
    struct stat st;
    uint8_t hdr[FS_CACHE_HEADER];
    if (fstat(fd, &st) != 0) CORRUPT("cannot stat: %s", strerror(errno));
    if (!S_ISREG(st.st_mode)) CORRUPT("not a regular file");
    if (st.st_size < FS_CACHE_HEADER || pread_full(fd, hdr, FS_CACHE_HEADER, 0) != 0)
        CORRUPT("truncated: %lld bytes, shorter than the %d-byte header",
                (long long)st.st_size, FS_CACHE_HEADER);
    if (memcmp(hdr, MAGIC4, 4) != 0 || get32(hdr + 4) != ORDER_MARK)
        CORRUPT("not a fastseq cache entry (bad magic)");
    if (get32(hdr + 8) != FS_CACHE_FORMAT)
        CORRUPT("format version %u, expected %u", get32(hdr + 8), FS_CACHE_FORMAT);
    uint32_t klen = get32(hdr + 28);
    uint64_t plen = get64u(hdr + 32);
    if (klen > FS_CACHE_MAX_KEY || plen > ((uint64_t)1 << 40))
        CORRUPT("implausible header (key %u bytes, payload %llu bytes)", klen,
                (unsigned long long)plen);
    if ((uint64_t)st.st_size != FS_CACHE_HEADER + (uint64_t)klen + plen)
        CORRUPT("truncated or overlong: %lld bytes, the header says %llu",
                (long long)st.st_size,
                (unsigned long long)(FS_CACHE_HEADER + (uint64_t)klen + plen));
    uint64_t sum = fs_cache_checksum(hdr, 40, 0);
    /* The key, compared in chunks: a different key is another image's or
     * another version's entry (a changed file), replaced without a word. */
    if (klen != key_len) { result = FS_CACHE_STALE; goto done; }
    uint8_t chunk[1024];
    for (size_t off = 0; off < klen;) {
        size_t n = klen - off < sizeof chunk ? klen - off : sizeof chunk;
        if (pread_full(fd, chunk, n, FS_CACHE_HEADER + (off_t)off) != 0)
            CORRUPT("read error in the key");
        if (memcmp(chunk, key + off, n) != 0) { result = FS_CACHE_STALE; goto done; }
        off += n;
    }
    sum = fs_cache_checksum(key, key_len, sum);
    int32_t stored = (int32_t)get32(hdr + 12);
    off_t poff = FS_CACHE_HEADER + (off_t)klen;
    if (stored == 0) {
        uint64_t expect = (uint64_t)w * (uint64_t)h * (uint64_t)c;
        if ((int)get32(hdr + 16) != w || (int)get32(hdr + 20) != h ||
            (int)get32(hdr + 24) != c || plen != expect)
            CORRUPT("holds %ux%ux%u pixels, expected %dx%dx%d", get32(hdr + 16),
                    get32(hdr + 20), get32(hdr + 24), w, h, c);
        if (pread_full(fd, dst, (size_t)plen, poff) != 0)
            CORRUPT("read error in the pixels: %s", strerror(errno));
        if (pending) {
            pending->sum = sum;
            pending->expect = get64u(hdr + 40);
            result = FS_CACHE_HIT;
            goto done;
        }
        sum = fs_cache_checksum(dst, (size_t)plen, sum);
        if (sum != get64u(hdr + 40)) CORRUPT("checksum mismatch");
        result = FS_CACHE_HIT;
    } else {
        char text[FS_MSG_LEN];
        if (stored < 0 || plen >= FS_MSG_LEN)
            CORRUPT("implausible failure record (status %d, %llu bytes)", stored,
                    (unsigned long long)plen);
        if (pread_full(fd, text, (size_t)plen, poff) != 0)
            CORRUPT("read error in the failure record");
        sum = fs_cache_checksum((const uint8_t *)text, (size_t)plen, sum);
        if (sum != get64u(hdr + 40)) CORRUPT("checksum mismatch");
        memcpy(msg, text, (size_t)plen);
        msg[plen] = '\0';
        *status = stored;
        result = FS_CACHE_HIT_FAILED;
    }
done:
    close(fd);
    return result;
}

int fs_cache_read(const char *path, const uint8_t *key, size_t key_len,
                  int w, int h, int c, uint8_t *dst, int *status, char *msg,
                  char *why) {
    return fs_cache_read_deferred(path, key, key_len, w, h, c, dst, status, msg, why, NULL);
}

static int write_all(int fd, const struct iovec *iov, int cnt) {
    struct iovec v[3];
    memcpy(v, iov, sizeof(struct iovec) * (size_t)cnt);
    int i = 0;
    while (i < cnt) {
        if (v[i].iov_len == 0) { i++; continue; }
        ssize_t r = writev(fd, v + i, cnt - i);
        if (r < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        size_t done = (size_t)r;
        while (i < cnt && done >= v[i].iov_len) { done -= v[i].iov_len; i++; }
        if (i < cnt) {
            v[i].iov_base = (uint8_t *)v[i].iov_base + done;
            v[i].iov_len -= done;
        }
    }
    return 0;
}

static unsigned long tmp_counter;

int fs_cache_write(const char *path, const uint8_t *key, size_t key_len,
                   int status, int w, int h, int c, const uint8_t *payload,
                   size_t payload_len, char *why) {
    why[0] = '\0';
    if (key_len > FS_CACHE_MAX_KEY) {
        snprintf(why, FS_MSG_LEN, "key of %zu bytes is over %u", key_len, FS_CACHE_MAX_KEY);
        return FS_ERR_IO;
    }
    size_t plen = strlen(path);
    char *tmp = (char *)malloc(plen + 64);
    if (!tmp) {
        snprintf(why, FS_MSG_LEN, "out of memory");
        return FS_ERR_IO;
    }
    /* Unique among this process's threads (the counter) and among
     * processes (the pid, which a forked child does not share); O_EXCL
     * refuses a leftover of a dead process with the same pid. */
    unsigned long n = __atomic_fetch_add(&tmp_counter, 1, __ATOMIC_RELAXED);
    snprintf(tmp, plen + 64, "%s.%ld.%lu.tmp", path, (long)getpid(), n);
    uint8_t hdr[FS_CACHE_HEADER];
    header_fill(hdr, status, status ? 0 : w, status ? 0 : h, status ? 0 : c,
                key_len, payload_len);
    uint64_t sum = fs_cache_checksum(hdr, 40, 0);
    sum = fs_cache_checksum(key, key_len, sum);
    sum = fs_cache_checksum(payload, payload_len, sum);
    put64(hdr + 40, sum);
    int st = FS_OK;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(why, FS_MSG_LEN, "cannot create %s: %s", tmp, strerror(errno));
        free(tmp);
        return FS_ERR_IO;
    }
    struct iovec iov[3] = {{hdr, FS_CACHE_HEADER}, {(void *)key, key_len},
                           {(void *)payload, payload_len}};
    if (write_all(fd, iov, 3) != 0) {
        snprintf(why, FS_MSG_LEN, "cannot write %s: %s", tmp, strerror(errno));
        st = FS_ERR_IO;
    }
    if (close(fd) != 0 && st == FS_OK) {
        snprintf(why, FS_MSG_LEN, "cannot write %s: %s", tmp, strerror(errno));
        st = FS_ERR_IO;
    }
    if (st == FS_OK && rename(tmp, path) != 0) {
        snprintf(why, FS_MSG_LEN, "cannot rename %s into place: %s", tmp, strerror(errno));
        st = FS_ERR_IO;
    }
    if (st != FS_OK) unlink(tmp);
    free(tmp);
    return st;
}
