/* PLACEHOLDER: screen lands with the CLI work. */
#include "cli.h"
#include <stdio.h>
int csac_cli_screen(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "csac screen: not built yet\n"); return 2; }
