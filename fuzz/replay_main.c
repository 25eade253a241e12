/* replay_main.c - corpus replay, the regression test of the fuzz targets.
 * Linked with one target's LLVMFuzzerTestOneInput (ctest: replay_<target>),
 * it runs every file of the committed corpus fuzz/corpus/<target>/ (valid
 * seeds, bad inputs, the fuzzers' minimised corpus and the reproducer of every
 * bug found through the targets) through the target. Proves: none crashes,
 * leaks, trips ASan/UBSan (in the asan build) or breaks a target's checks
 * (the targets abort on one), in the native, asan and wasm builds; an empty
 * or missing corpus fails. Usage: replay_<target> DIR|FILE... */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) { fprintf(stderr, "cannot open %s\n", path); return 0; }
    size_t cap = 1 << 16, n = 0;
    uint8_t *b = malloc(cap);
    for (size_t k; b && (k = fread(b + n, 1, cap - n, f)) > 0;) {
        n += k;
        if (n == cap) {
            uint8_t *b2 = realloc(b, cap *= 2);
            if (!b2) { free(b); b = NULL; }
            b = b2;
        }
    }
    fclose(f);
    if (!b) { fprintf(stderr, "out of memory reading %s\n", path); return 0; }
    /* an exact-size copy, so ASan sees reads past the input's end */
    uint8_t *in = malloc(n ? n : 1);
    if (in) memcpy(in, b, n);
    free(b);
    if (!in) return 0;
    LLVMFuzzerTestOneInput(in, n);
    free(in);
    return 1;
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int main(int argc, char **argv) {
    int total = 0, bad = 0;
    for (int i = 1; i < argc; i++) {
        struct stat sb;
        if (stat(argv[i], &sb) != 0) { fprintf(stderr, "missing: %s\n", argv[i]); bad++; continue; }
        if (!S_ISDIR(sb.st_mode)) { total += run_file(argv[i]); continue; }
        DIR *d = opendir(argv[i]);
        if (!d) { fprintf(stderr, "cannot list %s\n", argv[i]); bad++; continue; }
        char **names = NULL;
        size_t nn = 0;
        for (struct dirent *e; (e = readdir(d));) {
            if (e->d_name[0] == '.') continue;
            char **n2 = realloc(names, (nn + 1) * sizeof *names);
            if (!n2) break;
            names = n2;
            size_t len = strlen(argv[i]) + strlen(e->d_name) + 2;
            names[nn] = malloc(len);
            snprintf(names[nn++], len, "%s/%s", argv[i], e->d_name);
        }
        closedir(d);
        if (nn) qsort(names, nn, sizeof *names, by_name); /* a fixed order: reproducible runs */
        for (size_t k = 0; k < nn; k++) {
            if (stat(names[k], &sb) == 0 && S_ISREG(sb.st_mode)) {
                int ok = run_file(names[k]);
                total += ok;
                bad += !ok;
            }
            free(names[k]);
        }
        free(names);
    }
    printf("replayed %d inputs, %d unreadable\n", total, bad);
    return total > 0 && bad == 0 ? 0 : 1;
}
