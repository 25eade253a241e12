/*
 * threadpool.h - threads created once per context; each job runs fn(arg, ith,
 * nth) on every thread (the caller is thread 0) and returns when all are done,
 * so one csac_pool_run is one barrier. Kernels split their work by ith/nth
 * with a fixed partition, or (convs) claim units whose results do not depend
 * on which thread computes them: either way results do not depend on timing.
 */
#ifndef CSAC_THREADPOOL_H
#define CSAC_THREADPOOL_H

typedef struct csac_pool csac_pool;
typedef void (*csac_task_fn)(void *arg, int ith, int nth);

/* n <= 1, or a build without threads: a serial pool (no threads created).
 * Returns NULL on failure. */
csac_pool *csac_pool_new(int n);
void csac_pool_free(csac_pool *pool);
int csac_pool_size(const csac_pool *pool);
void csac_pool_run(csac_pool *pool, csac_task_fn fn, void *arg);

#ifdef CSAC_PROFILE
/* Dev builds: ms each thread spent inside fn since the last call, written to
 * busy[0..n-1] and reset (where the time goes when threads scale badly). */
void csac_pool_take_busy(csac_pool *pool, double *busy);
#endif

/* Contiguous share [*lo, *hi) of n items for thread ith of nth. */
static inline void csac_split(long n, int ith, int nth, long *lo, long *hi) {
    long q = n / nth, r = n % nth;
    *lo = ith * q + (ith < r ? ith : r);
    *hi = *lo + q + (ith < r ? 1 : 0);
}

#endif
