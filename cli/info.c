/* PLACEHOLDER until issue 3 lands. */
#include "cli.h"
#include <stdio.h>
int csac_cli_info(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "csac info: not built yet\n"); return 2; }
int csac_cli_preprocess(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "csac preprocess: not built yet\n"); return 2; }
