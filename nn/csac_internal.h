/* csac_internal.h - what the core's own files share; not installed, not public. */
#ifndef CSAC_INTERNAL_H
#define CSAC_INTERNAL_H

#include "csac.h"
#include "threadpool.h"

#if defined(__GNUC__)
#define CSAC_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define CSAC_PRINTF(a, b)
#endif

typedef struct csac_model csac_model; /* nn/model.c */

struct csac_ctx {
    csac_params params;
    csac_pool *pool;
    csac_model *model;  /* NULL until a model is loaded */
    char err[1024];
};

/* Sets the context's message and returns status (ctx may be NULL). */
int csac__fail(csac_ctx *ctx, int status, const char *fmt, ...) CSAC_PRINTF(3, 4);
void csac__clear_error(csac_ctx *ctx);

/* Monotonic milliseconds, for the timings reported with results. */
double csac__now_ms(void);

/* nn/model.c */
void csac__model_free(csac_model *model);

#endif
