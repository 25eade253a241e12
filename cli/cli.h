/* cli.h - subcommands of the csac CLI; each returns the process exit status
 * (0 all inputs done, 1 some inputs failed, 2 usage error). */
#ifndef CSAC_CLI_H
#define CSAC_CLI_H
#include "csac.h"
int csac_cli_info(int argc, char **argv);       /* cli/info.c   */
int csac_cli_preprocess(int argc, char **argv); /* cli/info.c   */
int csac_cli_screen(int argc, char **argv);     /* cli/screen.c */
int csac_cli_bench(int argc, char **argv);      /* cli/bench.c  */
#define CSAC_DEFAULT_WEIGHTS "weights/csac_v1.safetensors"

/* cli/report.c: the triage report of `csac screen --report DIR`. */
typedef struct csac_cli_row {
    char *file, *error, *warnings; /* owned; error NULL when screened */
    int ok, top_slice, heatmap_empty;
    double probability, logit;
    char thumb[64];                /* "thumbs/NNNN.png" relative to DIR, or "" */
} csac_cli_row;
/* PNG of the most suspicious axial slice (heatmap map on the model grid). */
int csac_cli_thumbnail(csac_ctx *ctx, const csac_volume *vol, const csac_grid *grid, const float *map,
                       const char *png, int *top_slice, int *heatmap_empty);
/* DIR/triage.csv and DIR/triage.html, rows sorted by probability (failures last). */
int csac_cli_write_report(const char *dir, csac_cli_row *rows, int n, double threshold);
#endif
