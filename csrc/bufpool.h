/*
 * Recycled batch buffers.
 *
 * A new float32 batch of 64 x 224 x 224 x 3 is 38.5 MB; glibc serves that
 * with a fresh mmap, so every batch pays a page fault and a kernel zeroing
 * per page before the first pixel is written (about half the time of a
 * batch read from the cache, measured: 10,300 vs 21,500 images/s).  This
 * keeps a few freed batch buffers and hands them out again.
 *
 * Invariants:
 * - A buffer is handed out again only after fs_bufpool_put(), which the
 *   owner (fastseq._native.BatchBuffer) calls when its last reference,
 *   every numpy view included, is gone: reuse never aliases a live array.
 * - At most FS_BUFPOOL_MAX_ENTRIES buffers and fs_bufpool_limit() bytes are
 *   kept, oldest evicted first; what does not fit is freed at once.
 *   fs_bufpool_get() takes the smallest kept buffer of at least the request
 *   (rounded to its alignment) and at most twice it: an epoch's last,
 *   shorter batch reuses a full one (a fresh 24 MB buffer for it cost
 *   ~25 ms in a new process), a small one may not pin a much larger one.
 * - Buffers are 64-byte aligned (TensorFlow may then use them in place);
 *   those of 4 MiB and more are 2 MiB aligned and advised as huge pages.
 * - One mutex, held for a few list operations only; fork() takes it
 *   (pthread_atfork), so a child never inherits it locked.  The child keeps
 *   the kept buffers (its own copy-on-write pages).
 * Plain C, no Python.h.
 */
#ifndef FS_BUFPOOL_H
#define FS_BUFPOOL_H

#include <stddef.h>

#define FS_BUFPOOL_MAX_ENTRIES 8
/* The default limit on the bytes kept (fs_bufpool_set_limit changes it). */
#define FS_BUFPOOL_DEFAULT_LIMIT ((size_t)512 << 20)

/* A buffer of at least `bytes` (> 0), reused or new; *cap receives its real
 * size, to be passed back to fs_bufpool_put.  NULL when out of memory. */
void *fs_bufpool_get(size_t bytes, size_t *cap);

/* Give back a buffer from fs_bufpool_get (its `cap`): kept or freed. */
void fs_bufpool_put(void *p, size_t cap);

/* The limit on kept bytes; 0 keeps nothing (every buffer is freed at once).
 * Lowering it frees kept buffers until they fit. */
void fs_bufpool_set_limit(size_t bytes);
size_t fs_bufpool_limit(void);

typedef struct {
    size_t kept_buffers, kept_bytes;
    unsigned long long reused, allocated;
} fs_bufpool_info;

void fs_bufpool_stats(fs_bufpool_info *info);

#endif
