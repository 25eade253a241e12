#include "threadpool.h"

#include <stdlib.h>

/* The single-threaded wasm build has no pthreads: it gets the serial path. */
#if defined(__EMSCRIPTEN__) && !defined(__EMSCRIPTEN_PTHREADS__)
#define CSAC_NO_THREADS 1
#endif

#ifndef CSAC_NO_THREADS
#include <pthread.h>
#endif

struct csac_pool {
    int n;
#ifndef CSAC_NO_THREADS
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t start, done;
    unsigned long generation; /* bumped for each job                   */
    int pending;              /* workers still running the current job */
    int quit;
    csac_task_fn fn;
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
    pthread_mutex_lock(&pool->mu);
    for (;;) {
        while (!pool->quit && pool->generation == seen) pthread_cond_wait(&pool->start, &pool->mu);
        if (pool->quit) break;
        seen = pool->generation;
        csac_task_fn fn = pool->fn;
        void *arg = pool->arg;
        pthread_mutex_unlock(&pool->mu);
        fn(arg, wa.ith, pool->n);
        pthread_mutex_lock(&pool->mu);
        if (--pool->pending == 0) pthread_cond_signal(&pool->done);
    }
    pthread_mutex_unlock(&pool->mu);
    return NULL;
}
#endif

csac_pool *csac_pool_new(int n) {
    csac_pool *pool = calloc(1, sizeof *pool);
    if (!pool) return NULL;
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
        pool->quit = 1;
        pthread_cond_broadcast(&pool->start);
        pthread_mutex_unlock(&pool->mu);
        for (int i = 1; i < pool->n; i++) pthread_join(pool->threads[i], NULL);
        pthread_mutex_destroy(&pool->mu);
        pthread_cond_destroy(&pool->start);
        pthread_cond_destroy(&pool->done);
        free(pool->threads);
    }
#endif
    free(pool);
}

int csac_pool_size(const csac_pool *pool) { return pool ? pool->n : 1; }

void csac_pool_run(csac_pool *pool, csac_task_fn fn, void *arg) {
    if (!pool || pool->n == 1) { fn(arg, 0, 1); return; }
#ifndef CSAC_NO_THREADS
    pthread_mutex_lock(&pool->mu);
    pool->fn = fn;
    pool->arg = arg;
    pool->pending = pool->n - 1;
    pool->generation++;
    pthread_cond_broadcast(&pool->start);
    pthread_mutex_unlock(&pool->mu);
    fn(arg, 0, pool->n);
    pthread_mutex_lock(&pool->mu);
    while (pool->pending > 0) pthread_cond_wait(&pool->done, &pool->mu);
    pthread_mutex_unlock(&pool->mu);
#endif
}
