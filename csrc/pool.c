#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include "pool.h"

typedef struct fs_job {
    fs_task_fn fn;
    void *ctx;
    void (*local_free)(void *);
    size_t n, next, done;      /* guarded by the pool mutex */
    struct fs_job *link;
} fs_job;

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t work_cv;    /* a job was queued, or stop was set */
    pthread_cond_t done_cv;    /* some job's last task finished */
    fs_job *head, *tail;       /* jobs with tasks not yet handed out */
    int stop;
    int busy, peak_busy;
    int nthreads;              /* threads actually started */
    pthread_t *threads;
} fs_pool;

/*
 * Global state, guarded by g_mu.  g_active counts batches inside
 * fs_pool_run; g_exclusive is set while the pool is being replaced.  Both
 * reconfiguration and fork wait for g_active == 0, so a pool is never
 * destroyed or abandoned while a caller still waits on it.
 */
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cv = PTHREAD_COND_INITIALIZER;
static fs_pool *g_pool;
static int g_nthreads = 1;
static int g_active;
static int g_exclusive;
static int g_pools_created;
static pthread_once_t g_atfork_once = PTHREAD_ONCE_INIT;

static void *worker_main(void *arg) {
    fs_pool *p = (fs_pool *)arg;
    void *local = NULL;
    void (*local_free)(void *) = NULL;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->head && !p->stop) pthread_cond_wait(&p->work_cv, &p->mu);
        if (!p->head) break;                 /* stopping and nothing queued */
        fs_job *job = p->head;
        size_t i = job->next++;
        if (job->next == job->n) {
            p->head = job->link;
            if (!p->head) p->tail = NULL;
        }
        if (++p->busy > p->peak_busy) p->peak_busy = p->busy;
        pthread_mutex_unlock(&p->mu);

        if (local && local_free != job->local_free) {
            if (local_free) local_free(local);
            local = NULL;
        }
        local_free = job->local_free;
        job->fn(job->ctx, i, &local);

        pthread_mutex_lock(&p->mu);
        p->busy--;
        /* After this increment the waiting caller may return and free the
         * job; it is not touched again. */
        if (++job->done == job->n) pthread_cond_broadcast(&p->done_cv);
    }
    pthread_mutex_unlock(&p->mu);
    if (local && local_free) local_free(local);
    return NULL;
}

static void pool_destroy(fs_pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->work_cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->nthreads; i++) pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->work_cv);
    pthread_cond_destroy(&p->done_cv);
    free(p->threads);
    free(p);
}

static fs_pool *pool_create(int n) {
    fs_pool *p = (fs_pool *)calloc(1, sizeof *p);
    if (!p) return NULL;
    p->threads = (pthread_t *)calloc((size_t)n, sizeof *p->threads);
    if (!p->threads) { free(p); return NULL; }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work_cv, NULL);
    pthread_cond_init(&p->done_cv, NULL);

    /* Workers inherit this mask.  Asynchronous signals stay blocked so that
     * SIGINT and friends reach Python's main thread, never a decoder thread.
     * Synchronous ones stay deliverable: a fault in a worker must reach the
     * installed handler (faulthandler, a sanitizer), not kill silently. */
    sigset_t mask, old;
    sigfillset(&mask);
    static const int sync_signals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL,
                                       SIGABRT, SIGTRAP, SIGSYS};
    for (size_t i = 0; i < sizeof sync_signals / sizeof *sync_signals; i++)
        sigdelset(&mask, sync_signals[i]);
    pthread_sigmask(SIG_SETMASK, &mask, &old);
    for (int i = 0; i < n; i++) {
        if (pthread_create(&p->threads[i], NULL, worker_main, p) != 0) break;
        p->nthreads++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (p->nthreads == 0) {
        pool_destroy(p);
        return NULL;
    }
    g_pools_created++;
    return p;
}

static void atfork_prepare(void) {
    pthread_mutex_lock(&g_mu);
    while (g_active || g_exclusive) pthread_cond_wait(&g_cv, &g_mu);
}

static void atfork_parent(void) { pthread_mutex_unlock(&g_mu); }

static void atfork_child(void) {
    /* The parent's workers do not exist here; their pool (mutexes, queue,
     * per-thread buffers) is abandoned without being touched. */
    g_pool = NULL;
    g_pools_created = 0;
    pthread_mutex_unlock(&g_mu);
}

static void register_atfork(void) {
    pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}

int fs_pool_run(fs_task_fn fn, void *ctx, size_t n, void (*local_free)(void *)) {
    if (n == 0) return FS_OK;
    pthread_once(&g_atfork_once, register_atfork);

    pthread_mutex_lock(&g_mu);
    while (g_exclusive) pthread_cond_wait(&g_cv, &g_mu);
    if (!g_pool) g_pool = pool_create(g_nthreads);
    fs_pool *p = g_pool;
    if (p) g_active++;
    pthread_mutex_unlock(&g_mu);
    if (!p) return FS_ERR_THREAD;

    fs_job job = {fn, ctx, local_free, n, 0, 0, NULL};
    pthread_mutex_lock(&p->mu);
    if (p->tail) p->tail->link = &job; else p->head = &job;
    p->tail = &job;
    pthread_cond_broadcast(&p->work_cv);
    while (job.done < job.n) pthread_cond_wait(&p->done_cv, &p->mu);
    pthread_mutex_unlock(&p->mu);

    pthread_mutex_lock(&g_mu);
    if (--g_active == 0) pthread_cond_broadcast(&g_cv);
    pthread_mutex_unlock(&g_mu);
    return FS_OK;
}

int fs_pool_set_threads(int n) {
    if (n < 1 || n > FS_POOL_MAX_THREADS) return FS_ERR_ARG;
    pthread_once(&g_atfork_once, register_atfork);
    pthread_mutex_lock(&g_mu);
    while (g_exclusive) pthread_cond_wait(&g_cv, &g_mu);
    g_exclusive = 1;
    while (g_active) pthread_cond_wait(&g_cv, &g_mu);
    fs_pool *old = g_pool;
    g_pool = NULL;
    g_nthreads = n;
    pthread_mutex_unlock(&g_mu);

    pool_destroy(old);   /* joins idle workers; outside g_mu */

    pthread_mutex_lock(&g_mu);
    g_exclusive = 0;
    pthread_cond_broadcast(&g_cv);
    pthread_mutex_unlock(&g_mu);
    return FS_OK;
}

int fs_pool_get_threads(void) {
    pthread_mutex_lock(&g_mu);
    int n = g_nthreads;
    pthread_mutex_unlock(&g_mu);
    return n;
}

void fs_pool_stats(int *live_threads, int *peak_busy, int *pools_created) {
    pthread_mutex_lock(&g_mu);
    fs_pool *p = g_pool;
    int live = 0, peak = 0;
    if (p) {
        pthread_mutex_lock(&p->mu);
        live = p->nthreads;
        peak = p->peak_busy;
        pthread_mutex_unlock(&p->mu);
    }
    *live_threads = live;
    *peak_busy = peak;
    *pools_created = g_pools_created;
    pthread_mutex_unlock(&g_mu);
}

static void crash_task(void *ctx, size_t index, void **local) {
    (void)index;
    (void)local;
    raise(*(const int *)ctx);
}

int fs_pool_debug_crash(int sig) {
    if (sig != SIGSEGV && sig != SIGBUS && sig != SIGFPE && sig != SIGILL &&
        sig != SIGABRT)
        return FS_ERR_ARG;
    return fs_pool_run(crash_task, &sig, 1, NULL);
}
