/* Recycled batch buffers: see bufpool.h. */
#include "bufpool.h"

#include <pthread.h>
#include <stdlib.h>
#include <sys/mman.h>

#define HUGE_MIN ((size_t)4 << 20)
#define HUGE_ALIGN ((size_t)2 << 20)

typedef struct {
    void *p;
    size_t cap;
} entry;

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static entry g_kept[FS_BUFPOOL_MAX_ENTRIES];
static size_t g_n, g_bytes;
static size_t g_limit = FS_BUFPOOL_DEFAULT_LIMIT;
static unsigned long long g_reused, g_allocated;

static void prepare(void) { pthread_mutex_lock(&g_mu); }
static void release(void) { pthread_mutex_unlock(&g_mu); }
static void setup(void) { pthread_atfork(prepare, release, release); }

/* g_kept is oldest first; the caller holds g_mu. */
static void take(size_t i) {
    g_bytes -= g_kept[i].cap;
    for (size_t j = i + 1; j < g_n; j++) g_kept[j - 1] = g_kept[j];
    g_n--;
}

static void evict_oldest(void) {
    void *old = g_kept[0].p;
    take(0);
    free(old);
}

void *fs_bufpool_get(size_t bytes, size_t *cap) {
    if (bytes == 0) return NULL;
    size_t align = bytes >= HUGE_MIN ? HUGE_ALIGN : 64;
    /* Round up to the alignment so a huge-page range covers whole pages;
     * the check keeps the rounding from wrapping. */
    if (bytes > (size_t)-1 - align) return NULL;
    size_t size = (bytes + align - 1) & ~(align - 1);
    pthread_once(&g_once, setup);
    pthread_mutex_lock(&g_mu);
    size_t best = g_n;
    /* cap - size <= size rather than cap <= 2 * size, which could wrap. */
    for (size_t i = 0; i < g_n; i++)
        if (g_kept[i].cap >= size && g_kept[i].cap - size <= size &&
            (best == g_n || g_kept[i].cap < g_kept[best].cap))
            best = i;
    if (best < g_n) {
        void *p = g_kept[best].p;
        *cap = g_kept[best].cap;
        take(best);
        g_reused++;
        pthread_mutex_unlock(&g_mu);
        return p;
    }
    g_allocated++;
    pthread_mutex_unlock(&g_mu);
    void *p = NULL;
    if (posix_memalign(&p, align, size) != 0) return NULL;
#ifdef MADV_HUGEPAGE
    if (align == HUGE_ALIGN) (void)madvise(p, size, MADV_HUGEPAGE);
#endif
    *cap = size;
    return p;
}

void fs_bufpool_put(void *p, size_t cap) {
    if (!p) return;
    pthread_once(&g_once, setup);
    pthread_mutex_lock(&g_mu);
    if (cap <= g_limit) {
        /* Make room: the oldest entries go first (they are the least likely
         * to match what the caller makes now). */
        while (g_n && (g_n == FS_BUFPOOL_MAX_ENTRIES || g_bytes + cap > g_limit))
            evict_oldest();
        g_kept[g_n].p = p;
        g_kept[g_n].cap = cap;
        g_n++;
        g_bytes += cap;
        p = NULL;
    }
    pthread_mutex_unlock(&g_mu);
    free(p);
}

void fs_bufpool_set_limit(size_t bytes) {
    pthread_once(&g_once, setup);
    pthread_mutex_lock(&g_mu);
    g_limit = bytes;
    while (g_n && g_bytes > g_limit) evict_oldest();
    pthread_mutex_unlock(&g_mu);
}

size_t fs_bufpool_limit(void) {
    pthread_mutex_lock(&g_mu);
    size_t v = g_limit;
    pthread_mutex_unlock(&g_mu);
    return v;
}

void fs_bufpool_stats(fs_bufpool_info *info) {
    pthread_mutex_lock(&g_mu);
    info->kept_buffers = g_n;
    info->kept_bytes = g_bytes;
    info->reused = g_reused;
    info->allocated = g_allocated;
    pthread_mutex_unlock(&g_mu);
}
