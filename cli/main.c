/* csac - native command-line interface. Subcommands live in their own files. */
#include "cli.h"

#include <stdio.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: csac <command> [options]\n"
            "  info FILE                 header and HU summary of a NIfTI scan\n"
            "  preprocess FILE OUT.nii.gz  write the model-grid tensor (64x128x128) as NIfTI\n"
            "  screen FILE|DIR... [--json|--csv] [--heatmap-dir DIR] [--threads N]\n"
            "                    [--threshold T] [--weights F] [--report DIR]\n"
            "                    --report: triage.csv and triage.html (thumbnails) sorted by probability\n"
            "  bench [--threads N] [--runs R] [--weights F]   time the network\n"
            "  version\n"
            "exit status: 0 all inputs done, 1 some inputs failed, 2 usage error\n");
}

int main(int argc, char **argv) {
    if (argc < 2) { usage(stderr); return 2; }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "info")) return csac_cli_info(argc - 1, argv + 1);
    if (!strcmp(cmd, "preprocess")) return csac_cli_preprocess(argc - 1, argv + 1);
    if (!strcmp(cmd, "screen")) return csac_cli_screen(argc - 1, argv + 1);
    if (!strcmp(cmd, "bench")) return csac_cli_bench(argc - 1, argv + 1);
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) { printf("%s\n", csac_build_info()); return 0; }
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) { usage(stdout); return 0; }
    fprintf(stderr, "csac: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
