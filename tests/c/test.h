/* test.h - the C tests' tiny harness. Each test program prints one line per
 * failed check and a summary, and exits non-zero if anything failed. */
#ifndef CSAC_TEST_H
#define CSAC_TEST_H
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static int test_checks, test_failures;

#define CHECK(cond, ...)                                                          \
    do {                                                                          \
        test_checks++;                                                            \
        if (!(cond)) {                                                            \
            test_failures++;                                                      \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);       \
            fprintf(stderr, __VA_ARGS__);                                         \
            fputc('\n', stderr);                                                  \
        }                                                                         \
    } while (0)

#define CHECK_NEAR(a, b, tol, what)                                               \
    CHECK(fabs((double)(a) - (double)(b)) <= (tol), "%s: %.9g vs %.9g (tol %g)", \
          (what), (double)(a), (double)(b), (double)(tol))

static inline int test_summary(const char *name) {
    printf("%s: %d checks, %d failed\n", name, test_checks, test_failures);
    return test_failures ? 1 : 0;
}

/* Path of a real scan in ../shared/ct, or NULL (the caller skips) if absent. */
static inline const char *test_ct(const char *file) {
    static char buf[4096];
    snprintf(buf, sizeof buf, "%s/%s", CSAC_SHARED_CT, file);
    FILE *f = fopen(buf, "rb");
    if (!f) return NULL;
    fclose(f);
    return buf;
}
#endif
