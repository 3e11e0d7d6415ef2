/*
 * One persistent native thread pool per process.
 *
 * fs_pool_run() hands n independent tasks to the pool and blocks until all
 * are done.  Several callers may run batches at once; their tasks share the
 * same workers, so no more than fs_pool_get_threads() tasks ever execute at
 * the same time.  The calling thread only waits (it runs no task itself).
 *
 * Each worker owns a `local` pointer that tasks may use for per-thread state
 * reused across tasks (decoder handles, scratch buffers); the pool frees it
 * with the `local_free` function of the job that set it.
 *
 * fork(): the pool registers pthread_atfork handlers.  A fork waits until no
 * batch is running (so no lock is held mid-batch), and the child forgets the
 * parent's pool, whose threads do not exist there; the child's first batch
 * creates a fresh pool.  The parent's per-thread buffers are left untouched
 * in the child (copy-on-write pages that are never written cost nothing).
 *
 * Signals: workers block the asynchronous signals (SIGINT, SIGTERM, ...),
 * which must reach Python's main thread, but not the synchronous ones a
 * fault in the worker itself raises (SIGSEGV, SIGBUS, SIGFPE, SIGILL,
 * SIGABRT, SIGTRAP, SIGSYS): a crash in a worker then reaches faulthandler's
 * or a sanitizer's handler and leaves a report.
 */
#ifndef FS_POOL_H
#define FS_POOL_H

#include "fs_common.h"

typedef void (*fs_task_fn)(void *ctx, size_t index, void **local);

/* Run tasks 0..n-1; returns FS_OK, or FS_ERR_THREAD if no worker could be
 * started (then no task ran). */
int fs_pool_run(fs_task_fn fn, void *ctx, size_t n, void (*local_free)(void *));

/* Set the pool size (1..FS_POOL_MAX_THREADS).  Waits for running batches,
 * stops the current workers; the next batch starts the new ones. */
#define FS_POOL_MAX_THREADS 1024
int fs_pool_set_threads(int n);
int fs_pool_get_threads(void);

/* Diagnostics for tests: live worker threads of this process's pool, the
 * largest number of tasks seen executing at once, and pools created in this
 * process (a forked child starts counting afresh). */
void fs_pool_stats(int *live_threads, int *peak_busy, int *pools_created);

/* Test only: run one task that raises `sig` (SIGSEGV, SIGBUS, SIGFPE,
 * SIGILL or SIGABRT; anything else: FS_ERR_ARG) on a pool worker, to check
 * that a crash in a worker reaches the process's signal handlers.  With the
 * default handlers this ends the process. */
int fs_pool_debug_crash(int sig);

#endif
