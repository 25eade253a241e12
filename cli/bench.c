/* PLACEHOLDER until issue 4 lands. */
#include "cli.h"
#include <stdio.h>
int csac_cli_bench(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "csac bench: not built yet\n"); return 2; }
