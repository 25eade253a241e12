/* Proves: contexts start their thread pool with the requested size, the SIMD
 * self-test runs on every thread and matches the scalar reference, errors
 * carry readable messages, and status names cover every code. */
#include "csac.h"
#include "test.h"
#include <string.h>

int main(void) {
    for (int nt = 1; nt <= 3; nt++) {
        csac_params p = csac_default_params();
        p.n_threads = nt;
        csac_ctx *ctx = NULL;
        int st = csac_init(&p, &ctx);
        CHECK(st == CSAC_OK && ctx, "init with %d threads: %s", nt, ctx ? csac_last_error(ctx) : "NULL");
        if (!ctx) continue;
        CHECK(csac_n_threads(ctx) == nt, "pool size %d, asked %d", csac_n_threads(ctx), nt);
        csac_selftest_report r;
        st = csac_selftest(ctx, &r);
        CHECK(st == CSAC_OK, "selftest: %s", csac_last_error(ctx));
        CHECK(r.threads_used == nt, "threads used %d of %d", r.threads_used, nt);
        CHECK(r.simd_lanes >= 4, "simd lanes %d: this build has no SIMD", r.simd_lanes);
        CHECK(r.max_abs_err < 1e-4, "max err %g", r.max_abs_err);
        csac_free(ctx);
    }
    csac_params bad = csac_default_params();
    bad.n_threads = 0;
    csac_ctx *ctx = NULL;
    CHECK(csac_init(&bad, &ctx) == CSAC_E_ARG, "n_threads 0 must be refused");
    CHECK(ctx && strstr(csac_last_error(ctx), "n_threads"), "message names the parameter: '%s'", ctx ? csac_last_error(ctx) : "");
    csac_free(ctx);
    for (int s = 0; s < CSAC_E_COUNT; s++) CHECK(strncmp(csac_status_name(s), "CSAC_", 5) == 0, "status %d", s);
    CHECK(strcmp(csac_status_name(999), "CSAC_E_UNKNOWN") == 0, "unknown status");
    CHECK(strstr(csac_build_info(), "simd=") != NULL, "build info '%s'", csac_build_info());
    return test_summary("test_core");
}
