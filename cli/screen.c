/*
 * csac screen FILE|DIR... - batch screening. Streams one line per file
 * (text, --json or --csv), keeps going past bad files, and overlaps reading +
 * preprocessing of the next file with the network run on the current one.
 * Exit: 0 all screened, 1 some failed, 2 usage error.
 */
#include "cli.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum fmt { FMT_TEXT, FMT_JSON, FMT_CSV };

typedef struct {
    char **v;
    int n, cap;
} strlist;

static int strlist_push(strlist *l, const char *s) {
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 16;
        char **v = realloc(l->v, sizeof *v * (size_t)cap);
        if (!v) return -1;
        l->v = v;
        l->cap = cap;
    }
    if (!(l->v[l->n] = strdup(s))) return -1;
    l->n++;
    return 0;
}

static void strlist_free(strlist *l) {
    for (int i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int is_nifti_name(const char *name) {
    size_t n = strlen(name);
    return (n > 4 && !strcmp(name + n - 4, ".nii")) || (n > 7 && !strcmp(name + n - 7, ".nii.gz"));
}

/* Adds path, or every .nii/.nii.gz below it (sorted, so runs are repeatable). */
static int collect(const char *path, strlist *out, int depth) {
    struct stat st;
    char trimmed[4096];
    size_t pl = strlen(path);
    if (pl > 1 && pl < sizeof trimmed && path[pl - 1] == '/') { /* "dir/" lists as "dir/x.nii" */
        memcpy(trimmed, path, pl - 1);
        trimmed[pl - 1] = '\0';
        path = trimmed;
    }
    if (depth > 32 || stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) return strlist_push(out, path);
    DIR *d = opendir(path);
    if (!d) return strlist_push(out, path); /* reported as an error when read */
    strlist names = {0};
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char buf[4096];
        if (snprintf(buf, sizeof buf, "%s/%s", path, e->d_name) >= (int)sizeof buf) continue; /* path too long */
        struct stat es;
        if (stat(buf, &es) != 0) continue;
        if (S_ISDIR(es.st_mode) || is_nifti_name(e->d_name)) strlist_push(&names, buf);
    }
    closedir(d);
    qsort(names.v, (size_t)names.n, sizeof *names.v, cmp_str);
    for (int i = 0; i < names.n; i++) {
        struct stat es;
        if (stat(names.v[i], &es) == 0 && S_ISDIR(es.st_mode)) collect(names.v[i], out, depth + 1);
        else strlist_push(out, names.v[i]);
    }
    strlist_free(&names);
    return 0;
}

/* One file's read + preprocess, run on the prefetch thread. */
typedef struct {
    csac_ctx *ctx; /* the prefetch context (its own error buffer) */
    const char *path;
    csac_volume *vol;
    float *tensor;
    csac_grid grid;
    int status;
    char err[1024];
    double ms_read, ms_pre;
} prefetch;

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

static void *prefetch_run(void *arg) {
    prefetch *p = arg;
    double t0 = now_ms();
    p->status = csac_volume_read_file(p->ctx, p->path, &p->vol);
    double t1 = now_ms();
    if (p->status == CSAC_OK) p->status = csac_preprocess(p->ctx, p->vol, p->tensor, &p->grid);
    p->ms_read = t1 - t0;
    p->ms_pre = now_ms() - t1;
    if (p->status != CSAC_OK) snprintf(p->err, sizeof p->err, "%s", csac_last_error(p->ctx));
    return NULL;
}

static void json_string(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c == '\n') fputs("\\n", f);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

static void csv_field(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s == '\n' ? ' ' : *s, f);
    }
    fputc('"', f);
}

static void progress(int tty, int done, int n, const char *name) {
    if (!tty) return;
    int w = 30, fill = n ? done * w / n : w;
    fprintf(stderr, "\r[%.*s%*s] %d/%d %-40.40s", fill, "##############################", w - fill, "", done, n,
            name ? name : "");
    if (done == n) fputs("\r\033[K", stderr);
    fflush(stderr);
}

/* weights/ in the working directory, else next to the executable's checkout
 * (build/native/csac -> ../../weights/). */
static const char *find_weights(char *buf, size_t cap) {
    if (access(CSAC_DEFAULT_WEIGHTS, R_OK) == 0) return CSAC_DEFAULT_WEIGHTS;
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';
            snprintf(buf, cap, "%s/../../%s", exe, CSAC_DEFAULT_WEIGHTS);
            if (access(buf, R_OK) == 0) return buf;
        }
    }
    return CSAC_DEFAULT_WEIGHTS;
}

/* DIR/<name without .nii[.gz]>_heatmap.nii.gz with the input's geometry (hmap: the default heatmap on the grid). */
static int write_heatmap(csac_ctx *ctx, const csac_volume *vol, const csac_grid *grid, float *hmap, const char *dir,
                         const char *path, char *out, size_t cap, char *errbuf, size_t errcap) {
    void *buf = NULL;
    size_t n = 0;
    int st = csac_heatmap_nifti(ctx, vol, grid, hmap, 1, &buf, &n);
    if (st != CSAC_OK) return st;
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t bl = strlen(base);
    if (bl > 7 && !strcmp(base + bl - 7, ".nii.gz")) bl -= 7;
    else if (bl > 4 && !strcmp(base + bl - 4, ".nii")) bl -= 4;
    snprintf(out, cap, "%s/%.*s_heatmap.nii.gz", dir, (int)bl, base);
    FILE *f = fopen(out, "wb");
    int ok = f && fwrite(buf, 1, n, f) == n;
    if (f && fclose(f) != 0) ok = 0;
    csac_buffer_free(buf);
    if (!ok) {
        snprintf(errbuf, errcap, "cannot write heatmap '%s'", out);
        out[0] = '\0';
        return CSAC_E_IO;
    }
    return CSAC_OK;
}

static int usage_error(const char *msg, const char *arg) {
    fprintf(stderr, "csac screen: %s%s%s\n", msg, arg ? " " : "", arg ? arg : "");
    fprintf(stderr, "usage: csac screen FILE|DIR... [--json|--csv] [--heatmap-dir DIR] [--threads N]\n"
                    "                   [--threshold T] [--weights F] [--report DIR]\n");
    return 2;
}

int csac_cli_screen(int argc, char **argv) {
    enum fmt fmt = FMT_TEXT;
    int threads = 2;
    double threshold = 0.5;
    const char *weights = NULL, *heatmap_dir = NULL, *report_dir = NULL;
    strlist files = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--json")) fmt = FMT_JSON;
        else if (!strcmp(a, "--csv")) fmt = FMT_CSV;
        else if (!strcmp(a, "--threads") || !strcmp(a, "--threshold") || !strcmp(a, "--weights") ||
                 !strcmp(a, "--heatmap-dir") || !strcmp(a, "--report")) {
            if (i + 1 >= argc) { strlist_free(&files); return usage_error("missing value after", a); }
            const char *v = argv[++i];
            char *end = NULL;
            if (!strcmp(a, "--threads")) {
                long t = strtol(v, &end, 10);
                if (*end || t < 1 || t > 256) { strlist_free(&files); return usage_error("--threads needs 1..256, got", v); }
                threads = (int)t;
            } else if (!strcmp(a, "--threshold")) {
                threshold = strtod(v, &end);
                if (*end || !(threshold >= 0 && threshold <= 1)) { strlist_free(&files); return usage_error("--threshold needs 0..1, got", v); }
            } else if (!strcmp(a, "--weights")) weights = v;
            else if (!strcmp(a, "--report")) report_dir = v;
            else heatmap_dir = v;
        } else if (a[0] == '-' && a[1]) { strlist_free(&files); return usage_error("unknown option", a); }
        else collect(a, &files, 0);
    }
    if (files.n == 0) { strlist_free(&files); return usage_error("no input files", NULL); }
    char thumbs[4200] = "";
    if (report_dir) {
        snprintf(thumbs, sizeof thumbs, "%s/thumbs", report_dir);
        mkdir(report_dir, 0777);
        mkdir(thumbs, 0777);
        struct stat ts;
        if (stat(thumbs, &ts) != 0 || !S_ISDIR(ts.st_mode)) {
            strlist_free(&files);
            return usage_error("--report: cannot create the directory", thumbs);
        }
    }
    if (heatmap_dir) {
        struct stat hs;
        if (stat(heatmap_dir, &hs) != 0 || !S_ISDIR(hs.st_mode)) {
            strlist_free(&files);
            return usage_error("--heatmap-dir is not a directory:", heatmap_dir);
        }
    }
    char wbuf_path[4200];
    if (!weights) weights = find_weights(wbuf_path, sizeof wbuf_path);

    csac_params p = csac_default_params();
    p.n_threads = threads;
    csac_ctx *ctx = NULL, *rctx = NULL;
    int st = csac_init(&p, &ctx);
    csac_params rp = p;
    rp.n_threads = 1;
    if (st == CSAC_OK) st = csac_init(&rp, &rctx);
    if (st != CSAC_OK) {
        fprintf(stderr, "csac screen: %s\n", ctx ? csac_last_error(rctx ? rctx : ctx) : "out of memory");
        csac_free(ctx); csac_free(rctx); strlist_free(&files);
        return 2;
    }
    if (csac_load_model_file(ctx, weights) != CSAC_OK) {
        fprintf(stderr, "csac screen: cannot load weights '%s': %s\n", weights, csac_last_error(ctx));
        csac_free(ctx); csac_free(rctx); strlist_free(&files);
        return 2;
    }

    const size_t nvox = (size_t)CSAC_GRID_D * CSAC_GRID_H * CSAC_GRID_W;
    int want_map = heatmap_dir || report_dir;
    float *hmap = want_map ? malloc(nvox * sizeof(float)) : NULL;
    csac_cli_row *rows = report_dir ? calloc((size_t)files.n, sizeof *rows) : NULL;
    prefetch pf[2];
    memset(pf, 0, sizeof pf);
    for (int k = 0; k < 2; k++) {
        pf[k].ctx = rctx;
        pf[k].tensor = malloc(nvox * sizeof(float));
    }
    if (!pf[0].tensor || !pf[1].tensor || (want_map && !hmap) || (report_dir && !rows)) {
        free(hmap);
        free(rows);
        fprintf(stderr, "csac screen: out of memory\n");
        free(pf[0].tensor); free(pf[1].tensor);
        csac_free(ctx); csac_free(rctx); strlist_free(&files);
        return 2;
    }
    int tty = isatty(fileno(stderr));
    if (fmt == FMT_CSV) printf("file,probability,logit,threshold,decision,warnings,error\n");

    int failed = 0;
    pthread_t th;
    pf[0].path = files.v[0];
    int threaded = pthread_create(&th, NULL, prefetch_run, &pf[0]) == 0;
    if (!threaded) prefetch_run(&pf[0]);
    for (int i = 0; i < files.n; i++) {
        prefetch *cur = &pf[i & 1], *next = &pf[(i + 1) & 1];
        if (threaded) pthread_join(th, NULL);
        threaded = 0;
        csac_result r;
        memset(&r, 0, sizeof r);
        int rs = cur->status;
        if (rs == CSAC_OK) memcpy(csac_model_input(ctx), cur->tensor, nvox * sizeof(float));
        if (i + 1 < files.n) { /* read the next file while the network runs */
            next->path = files.v[i + 1];
            next->vol = NULL;
            next->err[0] = '\0';
            threaded = pthread_create(&th, NULL, prefetch_run, next) == 0;
            if (!threaded) prefetch_run(next);
        }
        const char *err = cur->err;
        double ms_heatmap = 0;
        char hpath[4096] = "";
        if (rs == CSAC_OK) {
            rs = csac_forward(ctx, &r);
            if (rs != CSAC_OK) err = csac_last_error(ctx);
        }
        if (rs == CSAC_OK && want_map) {
            double t0 = now_ms();
            char herr[4200] = "";
            rs = csac_heatmap(ctx, NULL, CSAC_HEATMAP_DEFAULT, hmap);
            if (rs == CSAC_OK && heatmap_dir)
                rs = write_heatmap(ctx, cur->vol, &cur->grid, hmap, heatmap_dir, cur->path, hpath, sizeof hpath, herr,
                               sizeof herr);
            if (rs == CSAC_OK && report_dir) {
                csac_cli_row *row = &rows[i];
                snprintf(row->thumb, sizeof row->thumb, "thumbs/%04d.png", i);
                char png[4300];
                snprintf(png, sizeof png, "%s/%s", report_dir, row->thumb);
                rs = csac_cli_thumbnail(ctx, cur->vol, &cur->grid, hmap, png, &row->top_slice, &row->heatmap_empty);
                if (rs != CSAC_OK) snprintf(herr, sizeof herr, "cannot write thumbnail '%.4000s'", png);
            }
            if (rs != CSAC_OK) snprintf(cur->err, sizeof cur->err, "%s", herr[0] ? herr : csac_last_error(ctx));
            if (rs != CSAC_OK) err = cur->err;
            ms_heatmap = now_ms() - t0;
        }
        if (report_dir) {
            csac_cli_row *row = &rows[i];
            row->file = strdup(cur->path);
            row->ok = rs == CSAC_OK;
            row->probability = r.probability;
            row->logit = r.logit;
            if (!row->ok) { row->error = strdup(err); row->thumb[0] = '\0'; }
            char wb[2048] = "";
            for (int w = 0; cur->vol && w < csac_volume_n_warnings(cur->vol); w++) {
                size_t l = strlen(wb);
                snprintf(wb + l, sizeof wb - l, "%s%s", w ? "; " : "", csac_volume_warning(cur->vol, w));
            }
            row->warnings = strdup(wb);
        }
        progress(tty, i + 1, files.n, cur->path);
        const char *name = cur->path;
        int nw = cur->vol ? csac_volume_n_warnings(cur->vol) : 0;
        if (rs != CSAC_OK) {
            failed++;
            if (fmt == FMT_JSON) {
                printf("{\"file\":"); json_string(stdout, name);
                printf(",\"error\":"); json_string(stdout, err);
                printf("}\n");
            } else if (fmt == FMT_CSV) {
                csv_field(stdout, name); printf(",,,%.4g,,,", threshold); csv_field(stdout, err); printf("\n");
            } else {
                printf("%s: ERROR %s\n", name, err);
            }
        } else {
            const char *decision = r.probability >= threshold ? "positive" : "negative";
            if (fmt == FMT_JSON) {
                printf("{\"file\":"); json_string(stdout, name);
                printf(",\"probability\":%.7g,\"logit\":%.7g,\"threshold\":%.4g,\"decision\":\"%s\",\"warnings\":[",
                       r.probability, r.logit, threshold, decision);
                for (int w = 0; w < nw; w++) { if (w) putchar(','); json_string(stdout, csac_volume_warning(cur->vol, w)); }
                printf("],\"timings_ms\":{\"read\":%.1f,\"preprocess\":%.1f,\"forward\":%.1f", cur->ms_read,
                       cur->ms_pre, r.ms_forward);
                if (hpath[0]) {
                    printf(",\"heatmap\":%.1f},\"heatmap\":", ms_heatmap);
                    json_string(stdout, hpath);
                    printf("}\n");
                } else {
                    printf("}}\n");
                }
            } else if (fmt == FMT_CSV) {
                csv_field(stdout, name);
                printf(",%.7g,%.7g,%.4g,%s,", r.probability, r.logit, threshold, decision);
                char wbuf[2048] = "";
                for (int w = 0; w < nw; w++) {
                    size_t l = strlen(wbuf);
                    snprintf(wbuf + l, sizeof wbuf - l, "%s%s", w ? "; " : "", csac_volume_warning(cur->vol, w));
                }
                csv_field(stdout, wbuf);
                printf(",\n");
            } else {
                printf("%s: p=%.4f %s (threshold %.2f)\n", name, r.probability, decision, threshold);
                for (int w = 0; w < nw; w++) printf("  warning: %s\n", csac_volume_warning(cur->vol, w));
            }
        }
        fflush(stdout);
        csac_volume_free(cur->vol);
        cur->vol = NULL;
    }
    if (threaded) pthread_join(th, NULL);
    if (report_dir) {
        if (csac_cli_write_report(report_dir, rows, files.n, threshold) != CSAC_OK) {
            fprintf(stderr, "csac screen: cannot write the report in '%s'\n", report_dir);
            failed++;
        } else if (fmt == FMT_TEXT) {
            printf("report: %s/triage.html, %s/triage.csv\n", report_dir, report_dir);
        }
        for (int i = 0; i < files.n; i++) { free(rows[i].file); free(rows[i].error); free(rows[i].warnings); }
        free(rows);
    }
    free(hmap);
    free(pf[0].tensor);
    free(pf[1].tensor);
    csac_free(ctx);
    csac_free(rctx);
    strlist_free(&files);
    if (failed && fmt == FMT_TEXT) fprintf(stderr, "csac screen: %d of %d inputs failed\n", failed, files.n);
    return failed ? 1 : 0;
}
