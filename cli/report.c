/*
 * report.c - the triage report of `csac screen --report DIR`: DIR/triage.csv
 * (sorted by probability, failures last) and DIR/triage.html with a
 * thumbnail of each scan's most suspicious axial slice, heatmap overlaid
 * (DIR/thumbs/NNNN.png). The page is self-contained: no script, no remote file.
 */
#include "cli.h"
#include "volume.h" /* csac__mat44_inverse */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "zlib.h"

enum { THUMB = 192 };

static void be32(uint8_t *p, uint32_t v) { p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = (uint8_t)v; }

static int png_chunk(FILE *f, const char *type, const uint8_t *data, uint32_t n) {
    uint8_t h[8];
    be32(h, n);
    memcpy(h + 4, type, 4);
    uLong crc = crc32(crc32(0L, Z_NULL, 0), h + 4, 4);
    if (n) crc = crc32(crc, data, n);
    uint8_t c[4];
    be32(c, (uint32_t)crc);
    return fwrite(h, 1, 8, f) == 8 && (!n || fwrite(data, 1, n, f) == n) && fwrite(c, 1, 4, f) == 4;
}

/* 8-bit RGB PNG: filter byte 0 per row, one zlib stream. */
static int write_png(const char *path, const uint8_t *rgb, int w, int h) {
    size_t raw_n = (size_t)h * (1 + 3 * (size_t)w);
    uint8_t *raw = malloc(raw_n);
    uLongf zn = compressBound((uLong)raw_n);
    uint8_t *z = malloc(zn);
    FILE *f = raw && z ? fopen(path, "wb") : NULL;
    int ok = f != NULL;
    if (ok) {
        for (int y = 0; y < h; y++) {
            raw[(size_t)y * (1 + 3 * w)] = 0;
            memcpy(raw + (size_t)y * (1 + 3 * w) + 1, rgb + (size_t)y * 3 * w, 3 * (size_t)w);
        }
        ok = compress2(z, &zn, raw, (uLong)raw_n, 6) == Z_OK;
        static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
        uint8_t ihdr[13];
        be32(ihdr, (uint32_t)w);
        be32(ihdr + 4, (uint32_t)h);
        ihdr[8] = 8; ihdr[9] = 2; ihdr[10] = ihdr[11] = ihdr[12] = 0; /* 8-bit RGB */
        ok = ok && fwrite(sig, 1, 8, f) == 8 && png_chunk(f, "IHDR", ihdr, 13) &&
             png_chunk(f, "IDAT", z, (uint32_t)zn) && png_chunk(f, "IEND", NULL, 0);
    }
    if (f && fclose(f) != 0) ok = 0;
    free(raw);
    free(z);
    return ok;
}

static void apply(const double m[4][4], const double v[3], double o[3]) {
    for (int r = 0; r < 3; r++) o[r] = m[r][0] * v[0] + m[r][1] * v[1] + m[r][2] * v[2] + m[r][3];
}

int csac_cli_thumbnail(csac_ctx *ctx, const csac_volume *vol, const csac_grid *grid, const float *map,
                       const char *png, int *top_slice, int *heatmap_empty) {
    csac_volume_info in;
    csac_volume_get_info(vol, &in);
    int64_t nx = in.dim[0], ny = in.dim[1], nz = in.dim[2];
    /* the most suspicious slice; with an all-zero map, the slice through the grid centre (the lungs) */
    float *scores = malloc(sizeof(float) * (size_t)nz);
    float *hm = malloc(sizeof(float) * (size_t)(nx * ny));
    uint8_t *rgb = malloc(3 * THUMB * THUMB);
    if (!scores || !hm || !rgb) { free(scores); free(hm); free(rgb); return CSAC_E_NOMEM; }
    int st = csac_heatmap_slice_scores(ctx, vol, grid, map, scores);
    int64_t k = 0;
    for (int64_t z = 1; z < nz && st == CSAC_OK; z++) k = scores[z] > scores[k] ? z : k;
    *heatmap_empty = st != CSAC_OK || !(scores[k] > 0);
    if (*heatmap_empty) {
        double c[3] = {(CSAC_GRID_W - 1) / 2.0, (CSAC_GRID_H - 1) / 2.0, (CSAC_GRID_D - 1) / 2.0}, v[3];
        apply(grid->grid2vox, c, v);
        k = (int64_t)lround(v[2]);
        k = k < 0 ? 0 : k >= nz ? nz - 1 : k;
    }
    if (st == CSAC_OK) st = csac_heatmap_resample(ctx, vol, grid, map, k, k + 1, hm);
    double w2v[4][4];
    if (st == CSAC_OK && !csac__mat44_inverse(in.vox2world, w2v)) st = CSAC_E_DATA;
    if (st == CSAC_OK) {
        /* radiological view: patient right on the left, anterior up, over the slice's world extent */
        double lo[2] = {INFINITY, INFINITY}, hi[2] = {-INFINITY, -INFINITY}, w[3], centre[3];
        for (int cx = 0; cx < 2; cx++)
            for (int cy = 0; cy < 2; cy++) {
                double v[3] = {cx ? nx - 1 : 0, cy ? ny - 1 : 0, (double)k};
                apply(in.vox2world, v, w);
                for (int a = 0; a < 2; a++) { lo[a] = fmin(lo[a], w[a]); hi[a] = fmax(hi[a], w[a]); }
            }
        double v0[3] = {(nx - 1) / 2.0, (ny - 1) / 2.0, (double)k};
        apply(in.vox2world, v0, centre);
        double size = fmax(hi[0] - lo[0], hi[1] - lo[1]), ps = size / (THUMB - 1);
        double x0 = (lo[0] + hi[0]) / 2 + size / 2, y0 = (lo[1] + hi[1]) / 2 + size / 2;
        const float *hu = csac_volume_data(vol);
        for (int r = 0; r < THUMB; r++)
            for (int c = 0; c < THUMB; c++) {
                double p[3] = {x0 - c * ps, y0 - r * ps, centre[2]}, v[3];
                apply(w2v, p, v);
                int64_t i = (int64_t)lround(v[0]), j = (int64_t)lround(v[1]);
                uint8_t *o = rgb + 3 * ((size_t)r * THUMB + c);
                if (i < 0 || j < 0 || i >= nx || j >= ny) { o[0] = o[1] = o[2] = 0; continue; }
                double g = (hu[(size_t)(k * ny + j) * nx + i] - (-600.0 - 750.0)) / 1500.0; /* lung window */
                g = g < 0 ? 0 : g > 1 ? 1 : g;
                double h = hm[(size_t)j * nx + i], a = h > 0.2 ? 0.6 * h : 0; /* "hot" colormap */
                double rr = fmin(1, 3 * h), gg = fmin(1, fmax(0, 3 * h - 1)), bb = fmin(1, fmax(0, 3 * h - 2));
                o[0] = (uint8_t)lround(255 * ((1 - a) * g + a * rr));
                o[1] = (uint8_t)lround(255 * ((1 - a) * g + a * gg));
                o[2] = (uint8_t)lround(255 * ((1 - a) * g + a * bb));
            }
        if (!write_png(png, rgb, THUMB, THUMB)) st = CSAC_E_IO;
    }
    *top_slice = (int)k;
    free(scores);
    free(hm);
    free(rgb);
    return st;
}

static int cmp_rows(const void *a, const void *b) {
    const csac_cli_row *x = a, *y = b;
    if (x->ok != y->ok) return x->ok ? -1 : 1;
    if (x->probability != y->probability) return x->probability > y->probability ? -1 : 1;
    return strcmp(x->file, y->file);
}

static void html_text(FILE *f, const char *s) {
    for (; s && *s; s++) {
        if (*s == '<') fputs("&lt;", f);
        else if (*s == '>') fputs("&gt;", f);
        else if (*s == '&') fputs("&amp;", f);
        else if (*s == '"') fputs("&quot;", f);
        else fputc(*s, f);
    }
}

static void csv_text(FILE *f, const char *s) {
    fputc('"', f);
    for (; s && *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s == '\n' ? ' ' : *s, f);
    }
    fputc('"', f);
}

int csac_cli_write_report(const char *dir, csac_cli_row *rows, int n, double threshold) {
    qsort(rows, (size_t)n, sizeof *rows, cmp_rows);
    char path[4200];
    snprintf(path, sizeof path, "%s/triage.csv", dir);
    FILE *f = fopen(path, "w");
    if (!f) return CSAC_E_IO;
    fprintf(f, "rank,file,probability,logit,threshold,decision,top_slice,warnings,error\n");
    for (int i = 0; i < n; i++) {
        const csac_cli_row *r = &rows[i];
        fprintf(f, "%d,", i + 1);
        csv_text(f, r->file);
        if (r->ok)
            fprintf(f, ",%.7g,%.7g,%.4g,%s,%d,", r->probability, r->logit, threshold,
                    r->probability >= threshold ? "positive" : "negative", r->top_slice);
        else
            fprintf(f, ",,,%.4g,,,", threshold);
        csv_text(f, r->warnings);
        fputc(',', f);
        csv_text(f, r->error);
        fputc('\n', f);
    }
    int ok = fclose(f) == 0;
    snprintf(path, sizeof path, "%s/triage.html", dir);
    f = fopen(path, "w");
    if (!f) return CSAC_E_IO;
    fprintf(f, "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>csac triage</title>\n"
               "<style>body{font:14px system-ui,sans-serif;margin:16px}table{border-collapse:collapse}"
               "td,th{border-bottom:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:middle}"
               ".pos{color:#b00;font-weight:600}.err{color:#b00}</style></head><body>\n"
               "<h1>Triage worklist</h1><p><strong>Research software, not for diagnosis.</strong> "
               "Sorted by the probability of COVID-19 pneumonia; threshold %.2f. Thumbnail: the most suspicious "
               "axial slice (lung window, heatmap overlaid; patient right on the left).</p>\n"
               "<table><tr><th>#</th><th>slice</th><th>file</th><th>probability</th><th>decision</th>"
               "<th>warnings</th></tr>\n",
            threshold);
    for (int i = 0; i < n; i++) {
        const csac_cli_row *r = &rows[i];
        fprintf(f, "<tr><td>%d</td><td>", i + 1);
        if (r->ok && r->thumb[0]) {
            fprintf(f, "<img src=\"");
            html_text(f, r->thumb);
            fprintf(f, "\" width=\"%d\" height=\"%d\" alt=\"slice %d\"><br>slice %d%s", THUMB, THUMB, r->top_slice,
                    r->top_slice, r->heatmap_empty ? " (heatmap empty)" : "");
        }
        fprintf(f, "</td><td>");
        html_text(f, r->file);
        if (r->ok)
            fprintf(f, "</td><td>%.4f</td><td class=\"%s\">%s</td><td>", r->probability,
                    r->probability >= threshold ? "pos" : "neg", r->probability >= threshold ? "positive" : "negative");
        else {
            fprintf(f, "</td><td></td><td class=\"err\">error: ");
            html_text(f, r->error);
            fprintf(f, "</td><td>");
        }
        html_text(f, r->warnings);
        fprintf(f, "</td></tr>\n");
    }
    fprintf(f, "</table></body></html>\n");
    ok = fclose(f) == 0 && ok;
    return ok ? CSAC_OK : CSAC_E_IO;
}
