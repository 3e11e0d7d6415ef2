#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pool.h"

typedef struct fs_pool fs_pool;

struct fs_pool_job {
    fs_pool *pool;             /* NULL for an empty job */
    fs_task_fn fn;
    void *ctx;
    void *ctx_copy;            /* owned copy of the caller's ctx, or NULL */
    void (*local_free)(void *);
    unsigned generation;       /* g_generation at submission */
    /* Guarded by the pool mutex.  Tasks next..n-1 are still queued; the job
     * has finished when done == n.  Cancelling lowers n to next. */
    size_t n, next, done;
    size_t skipped;
    int queued;
    struct fs_pool_job *link;
};

struct fs_pool {
    pthread_mutex_t mu;
    pthread_cond_t work_cv;    /* a job was queued, or stop was set */
    pthread_cond_t done_cv;    /* some job finished */
    fs_pool_job *head, *tail;  /* jobs with tasks not yet handed out */
    int stop;
    int busy, peak_busy;
    unsigned long long tasks_run, tasks_skipped;
    int nthreads;              /* threads actually started */
    pthread_t *threads;
};

/*
 * Global state, guarded by g_mu (lock order: g_mu before a pool's mu; no
 * thread takes g_mu while holding a pool's mu).
 *   g_refs     jobs submitted and not yet released: the pool is replaced
 *              only when it is 0.
 *   g_running  jobs with tasks queued or running: fork waits for 0.  A job
 *              stops counting when its last task ends or it is cancelled.
 *   g_exclusive  fs_pool_set_threads is replacing the pool; no new job.
 *   g_destroying the old pool's workers are being joined; no fork.
 */
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cv = PTHREAD_COND_INITIALIZER;
static fs_pool *g_pool;
static int g_nthreads = 1;
static int g_refs, g_running;
static int g_exclusive, g_destroying;
static int g_pools_created;
/* Fork bookkeeping: the child inherits the parent's size in g_nthreads and
 * divides it on first use (g_split_pending); g_fork_parent is the pid that
 * forked.  g_generation counts forks survived by this process's memory, so
 * a job from before a fork is recognised in the child. */
static int g_split_pending;
static pid_t g_fork_parent;
static unsigned g_generation;
static pthread_once_t g_atfork_once = PTHREAD_ONCE_INIT;

/* Called without any pool lock held, once per job, by the thread that saw
 * the job finish. */
static void job_stopped_running(void) {
    pthread_mutex_lock(&g_mu);
    if (--g_running == 0) pthread_cond_broadcast(&g_cv);
    pthread_mutex_unlock(&g_mu);
}

static void *worker_main(void *arg) {
    fs_pool *p = (fs_pool *)arg;
    void *local = NULL;
    void (*local_free)(void *) = NULL;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->head && !p->stop) pthread_cond_wait(&p->work_cv, &p->mu);
        if (!p->head) break;                 /* stopping and nothing queued */
        fs_pool_job *job = p->head;
        size_t i = job->next++;
        if (job->next == job->n) {
            p->head = job->link;
            if (!p->head) p->tail = NULL;
            job->queued = 0;
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
        p->tasks_run++;
        /* After this increment the waiting caller may release and free the
         * job; it is not touched again. */
        if (++job->done == job->n) {
            pthread_cond_broadcast(&p->done_cv);
            pthread_mutex_unlock(&p->mu);
            job_stopped_running();
            pthread_mutex_lock(&p->mu);
        }
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
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
#ifdef __linux__
    /* fs_pool_wait's deadlines: immune to wall-clock steps. */
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
#endif
    pthread_cond_init(&p->done_cv, &ca);
    pthread_condattr_destroy(&ca);

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

/* Live children of the process that forked this one (this one included),
 * or 0 if unknown. */
static int count_siblings(void) {
#ifdef __linux__
    pid_t ppid = getppid();
    if (ppid != g_fork_parent) return 0;    /* the parent has exited */
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/task", (long)ppid);
    DIR *d = opendir(path);
    if (!d) return 0;
    int count = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        char cpath[96];
        snprintf(cpath, sizeof cpath, "/proc/%ld/task/%.20s/children",
                 (long)ppid, e->d_name);
        FILE *f = fopen(cpath, "r");
        if (!f) continue;
        long pid;
        while (fscanf(f, "%ld", &pid) == 1) count++;
        fclose(f);
    }
    closedir(d);
    return count;
#else
    return 0;
#endif
}

/* Under g_mu: a forked child's first use fixes its share of the parent's
 * threads. */
static void resolve_split(void) {
    if (!g_split_pending) return;
    g_split_pending = 0;
    int kids = count_siblings();
    if (kids > 1) g_nthreads = g_nthreads / kids > 0 ? g_nthreads / kids : 1;
}

static void atfork_prepare(void) {
    pthread_mutex_lock(&g_mu);
    while (g_running || g_destroying) pthread_cond_wait(&g_cv, &g_mu);
    resolve_split();          /* a grandchild splits this process's share */
    g_fork_parent = getpid();
}

static void atfork_parent(void) { pthread_mutex_unlock(&g_mu); }

static void atfork_child(void) {
    /* Only the forking thread exists here.  The parent's workers, their
     * pool (mutexes, queue, per-thread buffers) and the threads waiting on
     * g_cv are gone; the pool is abandoned without being touched. */
    g_pool = NULL;
    g_pools_created = 0;
    g_refs = g_running = 0;
    g_exclusive = g_destroying = 0;
    g_split_pending = 1;
    g_generation++;
    pthread_cond_init(&g_cv, NULL);   /* drop the parent's waiters */
    pthread_mutex_unlock(&g_mu);
}

static void register_atfork(void) {
    pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}

int fs_pool_submit(fs_task_fn fn, const void *ctx, size_t ctx_size, size_t n,
                   void (*local_free)(void *), fs_pool_job **out) {
    *out = NULL;
    pthread_once(&g_atfork_once, register_atfork);
    fs_pool_job *job = (fs_pool_job *)calloc(1, sizeof *job);
    if (!job) return FS_ERR_NOMEM;
    if (ctx_size) {
        job->ctx_copy = malloc(ctx_size);
        if (!job->ctx_copy) { free(job); return FS_ERR_NOMEM; }
        memcpy(job->ctx_copy, ctx, ctx_size);
        job->ctx = job->ctx_copy;
    } else {
        job->ctx = (void *)ctx;
    }
    job->fn = fn;
    job->local_free = local_free;
    job->n = n;

    fs_pool *p = NULL;
    pthread_mutex_lock(&g_mu);
    while (g_exclusive) pthread_cond_wait(&g_cv, &g_mu);
    if (n) {
        resolve_split();
        if (!g_pool) g_pool = pool_create(g_nthreads);
        p = g_pool;
        if (!p) {
            pthread_mutex_unlock(&g_mu);
            free(job->ctx_copy);
            free(job);
            return FS_ERR_THREAD;
        }
        g_running++;
    }
    g_refs++;
    job->generation = g_generation;
    pthread_mutex_unlock(&g_mu);

    job->pool = p;
    if (p) {
        pthread_mutex_lock(&p->mu);
        job->queued = 1;
        if (p->tail) p->tail->link = job; else p->head = job;
        p->tail = job;
        pthread_cond_broadcast(&p->work_cv);
        pthread_mutex_unlock(&p->mu);
    }
    *out = job;
    return FS_OK;
}

/* A job from before a fork, seen in the child: it had finished (fork waits
 * for that) and its pool is abandoned. */
static int job_from_parent(const fs_pool_job *job) {
    return job->generation != g_generation;
}

int fs_pool_wait(fs_pool_job *job, int timeout_ms) {
    fs_pool *p = job->pool;
    if (!p || job_from_parent(job)) return 1;
    pthread_mutex_lock(&p->mu);
    if (timeout_ms < 0) {
        while (job->done < job->n) pthread_cond_wait(&p->done_cv, &p->mu);
    } else if (job->done < job->n) {
        struct timespec deadline;
#ifdef __linux__
        clock_gettime(CLOCK_MONOTONIC, &deadline);
#else
        clock_gettime(CLOCK_REALTIME, &deadline);
#endif
        deadline.tv_sec += timeout_ms / 1000;
        deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (deadline.tv_nsec >= 1000000000L) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000L;
        }
        while (job->done < job->n)
            if (pthread_cond_timedwait(&p->done_cv, &p->mu, &deadline) == ETIMEDOUT)
                break;
    }
    int finished = job->done == job->n;
    pthread_mutex_unlock(&p->mu);
    return finished;
}

void fs_pool_cancel(fs_pool_job *job) {
    fs_pool *p = job->pool;
    if (!p || job_from_parent(job)) return;
    int stopped = 0;
    pthread_mutex_lock(&p->mu);
    if (job->queued) {
        fs_pool_job **pp = &p->head, *prev = NULL;
        while (*pp != job) { prev = *pp; pp = &(*pp)->link; }
        *pp = job->link;
        if (p->tail == job) p->tail = prev;
        job->queued = 0;
        job->skipped = job->n - job->next;
        p->tasks_skipped += job->skipped;
        job->n = job->next;
        if (job->done == job->n) {          /* nothing in flight */
            pthread_cond_broadcast(&p->done_cv);
            stopped = 1;
        }
    }
    pthread_mutex_unlock(&p->mu);
    if (stopped) job_stopped_running();
}

int fs_pool_release(fs_pool_job *job) {
    if (!job) return FS_OK;
    fs_pool_wait(job, -1);
    int st = job->skipped ? FS_ERR_INTERRUPTED : FS_OK;
    int counted = !job_from_parent(job);
    free(job->ctx_copy);
    free(job);
    if (counted) {
        pthread_mutex_lock(&g_mu);
        if (--g_refs == 0) pthread_cond_broadcast(&g_cv);
        pthread_mutex_unlock(&g_mu);
    }
    return st;
}

int fs_pool_run(fs_task_fn fn, void *ctx, size_t n, void (*local_free)(void *)) {
    fs_pool_job *job;
    int st = fs_pool_submit(fn, ctx, 0, n, local_free, &job);
    if (st != FS_OK) return st;
    return fs_pool_release(job);
}

int fs_pool_set_threads(int n) {
    if (n < 1 || n > FS_POOL_MAX_THREADS) return FS_ERR_ARG;
    pthread_once(&g_atfork_once, register_atfork);
    pthread_mutex_lock(&g_mu);
    while (g_exclusive) pthread_cond_wait(&g_cv, &g_mu);
    g_exclusive = 1;
    while (g_refs) pthread_cond_wait(&g_cv, &g_mu);
    fs_pool *old = g_pool;
    g_pool = NULL;
    g_nthreads = n;
    g_split_pending = 0;            /* an explicit size wins over the split */
    g_destroying = 1;
    pthread_mutex_unlock(&g_mu);

    pool_destroy(old);   /* joins idle workers; outside g_mu */

    pthread_mutex_lock(&g_mu);
    g_exclusive = g_destroying = 0;
    pthread_cond_broadcast(&g_cv);
    pthread_mutex_unlock(&g_mu);
    return FS_OK;
}

int fs_pool_get_threads(void) {
    pthread_mutex_lock(&g_mu);
    resolve_split();
    int n = g_nthreads;
    pthread_mutex_unlock(&g_mu);
    return n;
}

void fs_pool_stats(fs_pool_info *info) {
    memset(info, 0, sizeof *info);
    pthread_mutex_lock(&g_mu);
    fs_pool *p = g_pool;
    if (p) {
        pthread_mutex_lock(&p->mu);
        info->live_threads = p->nthreads;
        info->peak_busy = p->peak_busy;
        info->tasks_run = p->tasks_run;
        info->tasks_skipped = p->tasks_skipped;
        pthread_mutex_unlock(&p->mu);
    }
    info->pools_created = g_pools_created;
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
