/* info.c - `csac info FILE...` (header and HU summary) and
 * `csac preprocess FILE OUT.nii[.gz] [--time] [--threads N]` (the model-grid
 * tensor, written as NIfTI with the grid's world geometry for inspection). */
#include "cli.h"
#include "volume.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static void print_info(const char *path, const csac_volume *vol) {
    csac_volume_info in;
    csac_volume_get_info(vol, &in);
    printf("%s\n", path);
    printf("  format       NIfTI-%d\n", in.nifti_version);
    printf("  dims         %lld x %lld x %lld", (long long)in.dim[0], (long long)in.dim[1], (long long)in.dim[2]);
    if (in.n_volumes > 1) printf("  (%lld volumes; the first is read)", (long long)in.n_volumes);
    printf("\n  spacing      %.4f x %.4f x %.4f mm\n", in.spacing[0], in.spacing[1], in.spacing[2]);
    printf("  datatype     %s (%d)\n", in.datatype_name, in.datatype);
    if (in.scl_slope == 0) printf("  scaling      none (scl_slope 0)\n");
    else printf("  scaling      HU = stored x %g + %g\n", in.scl_slope, in.scl_inter);
    printf("  qform_code   %d\n  sform_code   %d\n", in.qform_code, in.sform_code);
    printf("  orientation  %s (axes i,j,k point to; affine from the %s)\n", in.orientation, in.affine_source);
    for (int r = 0; r < 3; r++)
        printf("  %s %10.4f %10.4f %10.4f %10.4f\n", r ? "            " : "vox2world   ", in.vox2world[r][0], in.vox2world[r][1],
               in.vox2world[r][2], in.vox2world[r][3]);
    printf("  HU range     %g .. %g (mean %.1f)\n", in.hu_min, in.hu_max, in.hu_mean);
    printf("  grid centre  %.1f %.1f %.1f mm (RAS+; %s)\n", vol->centre_world[0], vol->centre_world[1], vol->centre_world[2],
           vol->lungs_found ? "lungs" : "no lungs found");
    if (vol->lungs_found) printf("  lungs        %.0f mL (grid zoom %.3f)\n", in.lung_ml, in.grid_zoom);
    for (int i = 0; i < csac_volume_n_warnings(vol); i++) printf("  warning      %s\n", csac_volume_warning(vol, i));
}

int csac_cli_info(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: csac info FILE...\n");
        return 2;
    }
    csac_params p = csac_default_params();
    csac_ctx *ctx = NULL;
    if (csac_init(&p, &ctx) != CSAC_OK) {
        fprintf(stderr, "csac: %s\n", ctx ? csac_last_error(ctx) : "out of memory");
        csac_free(ctx);
        return 1;
    }
    int failed = 0;
    for (int a = 1; a < argc; a++) {
        csac_volume *vol = NULL;
        int st = csac_volume_read_file(ctx, argv[a], &vol);
        if (st != CSAC_OK) {
            fprintf(stderr, "%s: error %s: %s\n", argv[a], csac_status_name(st), csac_last_error(ctx));
            failed = 1;
            continue;
        }
        print_info(argv[a], vol);
        csac_volume_free(vol);
    }
    csac_free(ctx);
    return failed;
}

static double peak_rss_mb(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return -1;
    return ru.ru_maxrss * 1024.0 / 1e6; /* Linux: KiB -> MB */
}

int csac_cli_preprocess(int argc, char **argv) {
    const char *in_path = NULL, *out_path = NULL;
    int timing = 0, threads = 1;
    for (int a = 1; a < argc; a++) {
        if (!strcmp(argv[a], "--time")) timing = 1;
        else if (!strcmp(argv[a], "--threads") && a + 1 < argc) threads = atoi(argv[++a]);
        else if (argv[a][0] == '-' && argv[a][1]) { fprintf(stderr, "csac preprocess: unknown option '%s'\n", argv[a]); return 2; }
        else if (!in_path) in_path = argv[a];
        else if (!out_path) out_path = argv[a];
        else { fprintf(stderr, "csac preprocess: too many arguments\n"); return 2; }
    }
    if (!in_path || !out_path) {
        fprintf(stderr, "usage: csac preprocess FILE OUT.nii[.gz] [--time] [--threads N]\n");
        return 2;
    }
    csac_params p = csac_default_params();
    p.n_threads = threads;
    csac_ctx *ctx = NULL;
    if (csac_init(&p, &ctx) != CSAC_OK) {
        fprintf(stderr, "csac: %s\n", ctx ? csac_last_error(ctx) : "out of memory");
        int code = ctx ? 2 : 1; /* a context with a message: bad parameters */
        csac_free(ctx);
        return code;
    }
    double t0 = csac__now_ms();
    csac_volume *vol = NULL;
    int st = csac_volume_read_file(ctx, in_path, &vol);
    if (st != CSAC_OK) {
        fprintf(stderr, "%s: error %s: %s\n", in_path, csac_status_name(st), csac_last_error(ctx));
        csac_free(ctx);
        return 1;
    }
    double t1 = csac__now_ms();
    float *out = malloc(sizeof(float) * CSAC_GRID_D * CSAC_GRID_H * CSAC_GRID_W);
    csac_grid grid;
    st = out ? csac_preprocess(ctx, vol, out, &grid) : CSAC_E_NOMEM;
    double t2 = csac__now_ms();
    if (st == CSAC_OK) {
        csac_volume_info in;
        csac_volume_get_info(vol, &in);
        csac_nifti_out img = {.data = out, .dim = {CSAC_GRID_W, CSAC_GRID_H, CSAC_GRID_D},
                              .xform_code = in.sform_code > 0 ? in.sform_code : in.qform_code > 0 ? in.qform_code : 2,
                              .descrip = "csac model grid: (clip(HU,-1000,400)+1000)/1400"};
        memcpy(img.affine, grid.grid2world, sizeof img.affine);
        size_t n = strlen(out_path);
        img.gzip = n > 3 && !strcmp(out_path + n - 3, ".gz");
        st = csac__nifti_write_file(ctx, &img, out_path);
    }
    double t3 = csac__now_ms();
    if (st != CSAC_OK) fprintf(stderr, "%s: error %s: %s\n", in_path, csac_status_name(st), st == CSAC_E_NOMEM && !out ? "out of memory" : csac_last_error(ctx));
    for (int i = 0; i < csac_volume_n_warnings(vol); i++) fprintf(stderr, "%s: warning: %s\n", in_path, csac_volume_warning(vol, i));
    if (timing && st == CSAC_OK) {
        csac_volume_info in;
        csac_volume_get_info(vol, &in);
        double mb = (double)(in.dim[0] * in.dim[1] * in.dim[2]) * (in.datatype == 2 || in.datatype == 256 ? 1 : in.datatype == 4 || in.datatype == 512 ? 2 : in.datatype == 64 ? 8 : 4) / 1e6;
        printf("threads %d\n", csac_n_threads(ctx));
        printf("read      %8.1f ms  (gunzip + convert to HU %.1f, decimate + find lungs %.1f)\n", t1 - t0, vol->ms_inflate, vol->ms_analyse);
        if (vol->ms_gunzip > 0)
            printf("          of which gunzip %.1f ms (%d part%s in parallel)\n", vol->ms_gunzip, vol->inflate_parts, vol->inflate_parts > 1 ? "s" : "");
        printf("resample  %8.1f ms\n", t2 - t1);
        printf("total     %8.1f ms  (read + resample)\n", t2 - t0);
        printf("write     %8.1f ms\n", t3 - t2);
        printf("peak RSS  %8.1f MB  (decompressed volume %.1f MB: %.2fx)\n", peak_rss_mb(), mb, peak_rss_mb() / mb);
    }
    free(out);
    csac_volume_free(vol);
    csac_free(ctx);
    return st == CSAC_OK ? 0 : 1;
}
