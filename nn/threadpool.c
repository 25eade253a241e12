#include "threadpool.h"

#include <stdlib.h>
#ifdef CSAC_PROFILE /* dev builds: each thread's time inside fn */
#include "csac_internal.h"
#define TIMED(pool, ith, call) do { double t_ = csac__now_ms(); call; if (pool) (pool)->busy[ith] += csac__now_ms() - t_; } while (0)
#else
#define TIMED(pool, ith, call) call
#endif

/* The single-threaded wasm build has no pthreads: it gets the serial path. */
#if defined(__EMSCRIPTEN__) && !defined(__EMSCRIPTEN_PTHREADS__)
#define CSAC_NO_THREADS 1
#endif

#ifndef CSAC_NO_THREADS
#include <pthread.h>
#include <stdatomic.h>
/* Threads spin about 0.1 ms for the next job (and the caller for the end of
 * one) before sleeping on the condition variables: the next layer's job
 * comes within microseconds. bench/pool_bench.c, 2 threads, a 30 us job:
 * 41-55 us sleeping at once, 32-36 us spinning first (1 thread: 30-33 us);
 * a forward is ~60 jobs. */
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CSAC_RELAX() _mm_pause()
#define CSAC_SPIN 2000 /* pause instructions */
#else
#define CSAC_RELAX() ((void)0)
#define CSAC_SPIN 100000 /* atomic loads */
#endif
#endif

struct csac_pool {
    int n;
#ifdef CSAC_PROFILE
    double *busy; /* per thread, ms inside fn */
#endif
#ifndef CSAC_NO_THREADS
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t start, done;
    atomic_ulong generation; /* bumped for each job                   */
    atomic_int pending;      /* workers still running the current job */
    atomic_int quit;
    csac_task_fn fn;         /* written before generation is bumped   */
    void *arg;
#endif
};

#ifndef CSAC_NO_THREADS
typedef struct { csac_pool *pool; int ith; } worker_arg;

static void *worker(void *p) {
    worker_arg wa = *(worker_arg *)p;
    free(p);
    csac_pool *pool = wa.pool;
    unsigned long seen = 0;
    for (;;) {
        for (int i = 0; i < CSAC_SPIN && atomic_load_explicit(&pool->generation, memory_order_acquire) == seen; i++)
            CSAC_RELAX();
        if (atomic_load_explicit(&pool->generation, memory_order_acquire) == seen) {
            pthread_mutex_lock(&pool->mu);
            while (!atomic_load(&pool->quit) && atomic_load(&pool->generation) == seen)
                pthread_cond_wait(&pool->start, &pool->mu);
            pthread_mutex_unlock(&pool->mu);
        }
        if (atomic_load(&pool->quit)) break;
        seen = atomic_load_explicit(&pool->generation, memory_order_acquire);
        TIMED(pool, wa.ith, pool->fn(pool->arg, wa.ith, pool->n));
        if (atomic_fetch_sub_explicit(&pool->pending, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&pool->mu); /* the caller may be asleep on done */
            pthread_cond_signal(&pool->done);
            pthread_mutex_unlock(&pool->mu);
        }
    }
    return NULL;
}
#endif

csac_pool *csac_pool_new(int n) {
    csac_pool *pool = calloc(1, sizeof *pool);
    if (!pool) return NULL;
#ifdef CSAC_PROFILE
    pool->busy = calloc((size_t)(n < 1 ? 1 : n), sizeof *pool->busy);
    if (!pool->busy) { free(pool); return NULL; }
#endif
#ifdef CSAC_NO_THREADS
    (void)n;
    pool->n = 1;
#else
    pool->n = n < 1 ? 1 : n;
    if (pool->n == 1) return pool;
    pool->threads = calloc((size_t)pool->n, sizeof *pool->threads);
    if (!pool->threads) { free(pool); return NULL; }
    pthread_mutex_init(&pool->mu, NULL);
    pthread_cond_init(&pool->start, NULL);
    pthread_cond_init(&pool->done, NULL);
    for (int i = 1; i < pool->n; i++) {
        worker_arg *wa = malloc(sizeof *wa);
        if (wa) { wa->pool = pool; wa->ith = i; }
        if (!wa || pthread_create(&pool->threads[i], NULL, worker, wa) != 0) {
            free(wa);
            pool->n = i; /* join what was started, then fail */
            csac_pool_free(pool);
            return NULL;
        }
    }
#endif
    return pool;
}

void csac_pool_free(csac_pool *pool) {
    if (!pool) return;
#ifndef CSAC_NO_THREADS
    if (pool->threads) {
        pthread_mutex_lock(&pool->mu);
        atomic_store(&pool->quit, 1);
        atomic_fetch_add(&pool->generation, 1);
        pthread_cond_broadcast(&pool->start);
        pthread_mutex_unlock(&pool->mu);
        for (int i = 1; i < pool->n; i++) pthread_join(pool->threads[i], NULL);
        pthread_mutex_destroy(&pool->mu);
        pthread_cond_destroy(&pool->start);
        pthread_cond_destroy(&pool->done);
        free(pool->threads);
    }
#endif
#ifdef CSAC_PROFILE
    free(pool->busy);
#endif
    free(pool);
}

#ifdef CSAC_PROFILE
void csac_pool_take_busy(csac_pool *pool, double *busy) {
    for (int i = 0; i < pool->n; i++) { busy[i] = pool->busy[i]; pool->busy[i] = 0; }
}
#endif

int csac_pool_size(const csac_pool *pool) { return pool ? pool->n : 1; }

void csac_pool_run(csac_pool *pool, csac_task_fn fn, void *arg) {
    if (!pool || pool->n == 1) { TIMED(pool, 0, fn(arg, 0, 1)); return; }
#ifndef CSAC_NO_THREADS
    pthread_mutex_lock(&pool->mu);
    pool->fn = fn;
    pool->arg = arg;
    atomic_store_explicit(&pool->pending, pool->n - 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&pool->generation, 1, memory_order_release);
    pthread_cond_broadcast(&pool->start);
    pthread_mutex_unlock(&pool->mu);
    TIMED(pool, 0, fn(arg, 0, pool->n));
    for (int i = 0; i < CSAC_SPIN && atomic_load_explicit(&pool->pending, memory_order_acquire) > 0; i++) CSAC_RELAX();
    if (atomic_load_explicit(&pool->pending, memory_order_acquire) > 0) {
        pthread_mutex_lock(&pool->mu);
        while (atomic_load(&pool->pending) > 0) pthread_cond_wait(&pool->done, &pool->mu);
        pthread_mutex_unlock(&pool->mu);
    }
#endif
}
