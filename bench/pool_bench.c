/* pool_bench.c - cost of one thread-pool job (a barrier) with 1 and 2 threads:
 * each job adds 20000 numbers per thread, so the time above the 1-thread line
 * is waking the workers and waiting for them. A benchmark, not a test.
 *
 *   build/native/pool_bench [jobs]
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "threadpool.h"

static volatile double sink;

static void task(void *arg, int ith, int nth) {
    (void)arg;
    double s = 0;
    for (int i = 0; i < 20000; i++) s += i * 1e-9;
    sink = s + ith + nth;
}

static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec * 1e-3;
}

int main(int argc, char **argv) {
    int jobs = argc > 1 ? atoi(argv[1]) : 2000;
    if (jobs < 1) jobs = 1;
    for (int nth = 1; nth <= 2; nth++) {
        csac_pool *p = csac_pool_new(nth);
        if (!p) return 1;
        for (int rep = 0; rep < 3; rep++) {
            double t0 = now_us();
            for (int i = 0; i < jobs; i++) csac_pool_run(p, task, NULL);
            printf("%d thread(s): %.1f us per job\n", nth, (now_us() - t0) / jobs);
        }
        csac_pool_free(p);
    }
    return 0;
}
