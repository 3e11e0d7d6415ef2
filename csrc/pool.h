/*
 * One persistent native thread pool per process.
 *
 * A caller submits a job of n independent tasks (fs_pool_submit), waits for
 * it in slices (fs_pool_wait with a timeout, so that it can look at pending
 * signals in between), may cancel it (fs_pool_cancel), and releases it
 * (fs_pool_release).  fs_pool_run() is submit + release in one call.
 *
 * Invariants:
 * - Concurrent callers share the workers.  Their jobs queue in submission
 *   order and workers take the next task of the oldest job, so no more than
 *   fs_pool_get_threads() tasks ever execute at once, whoever submitted them
 *   (peak busy <= pool size).  Callers only wait; they run no task.
 * - A task either runs to completion or never starts.  fs_pool_cancel()
 *   drops the tasks not yet handed to a worker; tasks in flight always
 *   finish, and fs_pool_release() returns only after the last of them, so
 *   the caller may then free everything the tasks read or write.
 * - The pool is never destroyed while a job is unreleased:
 *   fs_pool_set_threads() waits until every job is released.
 * - fork() waits (pthread_atfork prepare handler) until no job has a task
 *   queued or running, so no worker is inside a task (holding a lock or
 *   half-way through writing memory) when the process is copied.  It does
 *   not wait for jobs to be released: the caller of a finished job may be
 *   waiting for the GIL that the forking thread holds.
 * - The child forgets the parent's pool, whose threads do not exist there;
 *   its first batch creates a fresh one.  The parent's per-thread buffers
 *   are left untouched (copy-on-write pages never written cost nothing).
 * - Child pool size: the parent's pool size split between the parent's
 *   live children, max(1, parent_size / children), computed on the child's
 *   first use (first batch or fs_pool_get_threads), so that N processes
 *   forked at once (multiprocessing.Pool, Keras' use_multiprocessing) run
 *   the parent's number of threads in total.  Children are counted from
 *   /proc/<ppid>/task/<tid>/children (Linux); where that cannot be read
 *   the child keeps the parent's size.  fs_pool_set_threads() in the child
 *   overrides it.  Every live child counts, including ones that are not
 *   pool workers; a child forked after a sibling's first use is not seen.
 * - Signals: workers block the asynchronous signals (SIGINT, SIGTERM, ...),
 *   which must reach Python's main thread, but not the synchronous ones a
 *   fault in the worker itself raises (SIGSEGV, SIGBUS, SIGFPE, SIGILL,
 *   SIGABRT, SIGTRAP, SIGSYS): a crash in a worker then reaches
 *   faulthandler's or a sanitizer's handler and leaves a report.
 *
 * Each worker owns a `local` pointer that tasks may use for per-thread state
 * reused across tasks (decoder handles, scratch buffers); the pool frees it
 * with the `local_free` function of the job that set it.
 */
#ifndef FS_POOL_H
#define FS_POOL_H

#include "fs_common.h"

typedef void (*fs_task_fn)(void *ctx, size_t index, void **local);
typedef struct fs_pool_job fs_pool_job;

/* Queue tasks 0..n-1 and return at once with *job set.  ctx_size > 0: the
 * job keeps its own copy of ctx_size bytes at ctx and tasks receive that
 * copy; ctx_size == 0: tasks receive ctx itself, which must then outlive
 * the job.  Returns FS_OK, FS_ERR_NOMEM, or FS_ERR_THREAD if no worker could
 * be started; on error *job is NULL and no task runs.  Every job returned
 * must be passed to fs_pool_release() exactly once, by the process that
 * submitted it. */
int fs_pool_submit(fs_task_fn fn, const void *ctx, size_t ctx_size, size_t n,
                   void (*local_free)(void *), fs_pool_job **job);

/* Wait up to timeout_ms (< 0: without limit) for the job to finish, i.e.
 * every task run or cancelled.  Returns 1 if it has finished, else 0. */
int fs_pool_wait(fs_pool_job *job, int timeout_ms);

/* Tasks not yet started are skipped; tasks in flight run to their end. */
void fs_pool_cancel(fs_pool_job *job);

/* Wait for the job to finish and free it.  Returns FS_OK if every task ran,
 * FS_ERR_INTERRUPTED if fs_pool_cancel() skipped some.  NULL: FS_OK. */
int fs_pool_release(fs_pool_job *job);

/* Run tasks 0..n-1 and wait for them; returns FS_OK, or FS_ERR_NOMEM /
 * FS_ERR_THREAD as fs_pool_submit (then no task ran). */
int fs_pool_run(fs_task_fn fn, void *ctx, size_t n, void (*local_free)(void *));

/* Set the pool size (1..FS_POOL_MAX_THREADS).  Waits until every job is
 * released, stops the current workers; the next batch starts the new ones. */
#define FS_POOL_MAX_THREADS 1024
int fs_pool_set_threads(int n);
/* The size the next batch uses (in a forked child: its share, see above). */
int fs_pool_get_threads(void);

/* Diagnostics for tests.  live_threads, peak_busy, tasks_run and
 * tasks_skipped are those of the current pool (zero when there is none);
 * pools_created counts pools created in this process (a forked child starts
 * counting afresh). */
typedef struct {
    int live_threads;
    int peak_busy;            /* most tasks seen executing at once */
    int pools_created;
    unsigned long long tasks_run;
    unsigned long long tasks_skipped;   /* dropped by fs_pool_cancel */
} fs_pool_info;
void fs_pool_stats(fs_pool_info *info);

/* Test only: run one task that raises `sig` (SIGSEGV, SIGBUS, SIGFPE,
 * SIGILL or SIGABRT; anything else: FS_ERR_ARG) on a pool worker, to check
 * that a crash in a worker reaches the process's signal handlers.  With the
 * default handlers this ends the process. */
int fs_pool_debug_crash(int sig);

#endif
