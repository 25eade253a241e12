/* fuzz_load_preprocess.c - libFuzzer target: the whole path from file bytes
 * to the model input: csac_volume_read_buffer_take (the browser's
 * ownership-taking read; input modes as in fuzz_prepare) -> csac_preprocess
 * to the 64 x 128 x 128 grid. Checks that every grid value is finite and in
 * [0, 1] and that the grid mappings are finite. Limits: 256 Ki voxels. */
#include "fuzz_common.h"

enum { GRID_N = CSAC_GRID_D * CSAC_GRID_H * CSAC_GRID_W };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    size_t n;
    uint8_t *buf = fuzz_prepare(data, size, &n);
    csac_params p;
    csac_ctx *ctx = fuzz_ctx(1 << 20, 4 << 20, 1 << 18, 512, &p);
    csac_volume *vol = NULL;
    int st = csac_volume_read_buffer_take(ctx, buf, n, &vol); /* frees buf */
    fuzz_check_read(ctx, &p, st, vol);
    if (st == CSAC_OK) {
        float *grid = malloc(sizeof(float) * GRID_N);
        FUZZ_CHECK(grid != NULL, "harness out of memory");
        csac_grid g;
        st = csac_preprocess(ctx, vol, grid, &g);
        FUZZ_CHECK(st == CSAC_OK, "preprocess of a read volume failed: %s: %s", csac_status_name(st),
                   csac_last_error(ctx));
        for (int i = 0; i < GRID_N; i++)
            FUZZ_CHECK(grid[i] >= 0.0f && grid[i] <= 1.0f, "grid[%d] = %g", i, grid[i]);
        for (int r = 0; r < 4; r++)
            for (int c = 0; c < 4; c++)
                FUZZ_CHECK(isfinite(g.grid2world[r][c]) && isfinite(g.grid2vox[r][c]), "grid mapping [%d][%d]", r, c);
        free(grid);
    }
    csac_volume_free(vol);
    csac_free(ctx);
    return 0;
}
