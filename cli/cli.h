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
#endif
