/*
 * csac.h - in-browser / native screening of chest CT with 3D CSAC-Net
 * (Yao et al., Eur Radiol 2021). The one public header of the C core.
 *
 * Usage:
 *
 *     csac_params p = csac_default_params();
 *     p.n_threads = 2;
 *     csac_ctx *ctx = NULL;
 *     if (csac_init(&p, &ctx) != CSAC_OK) return 1;           // ctx is NULL only on out-of-memory
 *     if (csac_load_model_file(ctx, "weights/csac_v1.safetensors") != CSAC_OK)
 *         fprintf(stderr, "%s\n", csac_last_error(ctx));
 *     csac_volume *vol = NULL;
 *     if (csac_volume_read_file(ctx, "scan.nii.gz", &vol) == CSAC_OK) {
 *         csac_result r;
 *         if (csac_screen(ctx, vol, &r) == CSAC_OK) printf("p = %.4f\n", r.probability);
 *         csac_volume_free(vol);
 *     }
 *     csac_free(ctx);
 *
 * Thread safety: a csac_ctx is used by one caller at a time; separate contexts
 * are independent (there is no global state). A csac_volume is immutable after
 * it is read and may be shared between contexts.
 *
 * Every function that can fail returns a status code (CSAC_OK = 0) and leaves
 * a readable message in csac_last_error(ctx).
 */
#ifndef CSAC_H
#define CSAC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CSAC_VERSION "0.1.0"

/* ---- model grid (DESIGN.md "Model grid v1"; the only place these live) ---- */
#define CSAC_GRID_D 64            /* slices (inferior -> superior)            */
#define CSAC_GRID_H 128           /* rows   (anterior -> posterior)           */
#define CSAC_GRID_W 128           /* cols   (patient right -> patient left)   */
#define CSAC_GRID_DZ_MM 5.0       /* slice spacing                             */
#define CSAC_GRID_DXY_MM 2.8      /* in-plane spacing at zoom 1                */
/* Patient-size normalisation (the measured change to DESIGN.md's grid v1,
 * docs/preprocessing.md "Patient size"): the grid spacing is
 * divided by zoom = clip((REF / lung mL)^(1/3), MIN, MAX), so that lungs of
 * any size fill the grid about as the training median does. REF is the median
 * of this lung measure on the stage-3 training set (docs/preprocessing.md). */
#define CSAC_GRID_REF_LUNG_ML 4200.0
#define CSAC_GRID_ZOOM_MIN 0.8
#define CSAC_GRID_ZOOM_MAX 1.25
/* Which grid the weights were trained on: 1 = DESIGN.md's fixed 5 / 2.8 mm,
 * 2 = with the zoom above. Weights name theirs in __metadata__ "grid", and a
 * core loads only weights of its own grid: the same file on another grid
 * gives plausible but wrong probabilities. */
#define CSAC_GRID_VERSION 2
#define CSAC_HU_LO (-1000.0f)     /* window: x = (clip(HU,LO,HI) - LO)/(HI-LO) */
#define CSAC_HU_HI 400.0f
#define CSAC_HU_PAD (-1000.0f)    /* value outside the scan                    */
#define CSAC_N_FEATURES 288       /* merged, globally pooled features          */

/* ---- status codes ---- */
enum csac_status {
    CSAC_OK = 0,
    CSAC_E_ARG,          /* invalid argument (NULL pointer, bad parameter)      */
    CSAC_E_NOMEM,        /* allocation failed                                    */
    CSAC_E_IO,           /* file cannot be opened or read                        */
    CSAC_E_FORMAT,       /* not a NIfTI / safetensors file, or a corrupt header */
    CSAC_E_TRUNCATED,    /* file ends before its declared data                   */
    CSAC_E_UNSUPPORTED,  /* valid file, but a datatype / layout we do not read   */
    CSAC_E_LIMIT,        /* exceeds a configured size limit                      */
    CSAC_E_DATA,         /* values unusable (non-finite, empty)                  */
    CSAC_E_WEIGHTS,      /* weights do not match the layer table                 */
    CSAC_E_STATE,        /* call out of order (e.g. screen before a model)       */
    CSAC_E_THREADS,      /* threads could not be created                         */
    CSAC_E_COUNT
};

/* Short constant name of a status code, e.g. "CSAC_E_TRUNCATED". */
const char *csac_status_name(int status);

/* ---- context ---- */
typedef struct csac_ctx csac_ctx;

typedef struct csac_params {
    int n_threads;                   /* worker threads incl. the caller; 1 = serial */
    uint64_t max_file_bytes;         /* compressed or plain input file size        */
    uint64_t max_decompressed_bytes; /* header + image bytes after gunzip           */
    uint64_t max_voxels;             /* voxels of the (first) 3D volume             */
    int64_t max_dim;                 /* voxels along any one axis                   */
} csac_params;

csac_params csac_default_params(void);

/* Creates a context with a thread pool of p->n_threads (clamped to what the
 * build supports: 1 in the single-threaded wasm build). *out is NULL only when
 * even the context could not be allocated. On any other failure *out is a valid
 * context that holds the message; free it with csac_free. */
int csac_init(const csac_params *p, csac_ctx **out);
void csac_free(csac_ctx *ctx);

/* Message of the last failed call on this context ("" if none). */
const char *csac_last_error(const csac_ctx *ctx);
int csac_n_threads(const csac_ctx *ctx);

/* Build description, e.g. "csac 0.1.0 simd=avx2+fma threads=pthread". */
const char *csac_build_info(void);

/* Startup self-test: runs a SIMD kernel split over all pool threads and
 * compares it with a scalar reference (some browsers miscompute SIMD). */
typedef struct csac_selftest_report {
    int threads_used;      /* distinct threads that did work             */
    int simd_lanes;        /* vector width in floats (1 = scalar build)  */
    double max_abs_err;    /* vs the scalar reference                    */
} csac_selftest_report;
int csac_selftest(csac_ctx *ctx, csac_selftest_report *rep);

/* ---- volumes (NIfTI-1/2, .nii or .nii.gz) ---- */
typedef struct csac_volume csac_volume;

typedef struct csac_volume_info {
    int nifti_version;          /* 1 or 2                                         */
    int64_t dim[3];             /* voxels along i, j, k                           */
    int64_t n_volumes;          /* 4th dim in the file (only the first is read)   */
    double spacing[3];          /* mm per voxel along i, j, k (from the affine)   */
    int datatype;               /* NIfTI datatype code                            */
    const char *datatype_name;  /* e.g. "INT16"                                   */
    double scl_slope, scl_inter;/* as stored (slope 0 = no scaling)               */
    int qform_code, sform_code;
    char orientation[4];        /* axis codes of i,j,k, e.g. "LAS"                */
    double vox2world[4][4];     /* the affine in use (RAS+ mm): sform, else qform, else pixdim */
    const char *affine_source;  /* "sform", "qform" or "pixdim"                   */
    float hu_min, hu_max, hu_mean;
    double lung_ml;             /* aerated lungs, holes filled per slice; 0: none found */
    double grid_zoom;           /* model-grid zoom from lung_ml (1 when none found) */
} csac_volume_info;

int csac_volume_read_file(csac_ctx *ctx, const char *path, csac_volume **out);
/* Reads from memory (the browser hands over a dropped File's bytes). The
 * buffer is not kept: it may be freed as soon as this returns. */
int csac_volume_read_buffer(csac_ctx *ctx, const void *buf, size_t n, csac_volume **out);
/* The same, taking ownership of a malloc'd buffer: it is freed as soon as the
 * voxels are decoded (lower peak memory in the browser), also on failure.
 * Owning it, the reader may also patch it, which lets a .nii.gz inflate on
 * all of the context's threads (so does csac_volume_read_file; the const
 * buffer above inflates on one). */
int csac_volume_read_buffer_take(csac_ctx *ctx, void *buf, size_t n, csac_volume **out);
void csac_volume_free(csac_volume *vol);

int csac_volume_get_info(const csac_volume *vol, csac_volume_info *info);
/* Voxel values in HU (scaling applied), i fastest: index i + dim0*(j + dim1*k). */
const float *csac_volume_data(const csac_volume *vol);
/* Out-of-distribution and reading warnings (non-CT intensities, short z
 * coverage, extra volumes ignored, ...). */
int csac_volume_n_warnings(const csac_volume *vol);
const char *csac_volume_warning(const csac_volume *vol, int i);

/* ---- preprocessing to the model grid ---- */
typedef struct csac_grid {
    /* (w, h, d, 1) model-grid index -> world RAS+ mm, and -> original voxel (i, j, k, 1). */
    double grid2world[4][4];
    double grid2vox[4][4];
} csac_grid;

/* Writes CSAC_GRID_D*H*W floats in [0,1] (w fastest) and the grid mapping.
 * Deterministic, the same native and wasm. */
int csac_preprocess(csac_ctx *ctx, const csac_volume *vol, float *out, csac_grid *grid);

/* ---- network ---- */
int csac_load_model_file(csac_ctx *ctx, const char *path);
int csac_load_model_buffer(csac_ctx *ctx, const void *buf, size_t n);
/* Description of the loaded model (safetensors __metadata__), "" if none. */
const char *csac_model_info(const csac_ctx *ctx);

typedef struct csac_result {
    float probability;
    float logit;
    float features[CSAC_N_FEATURES]; /* pooled merge features (fc input) */
    double ms_read, ms_preprocess, ms_forward; /* ms_read: left 0 here, for callers that time the read */
    csac_grid grid;                  /* set by csac_screen: where the model grid lies */
} csac_result;

/* The model's input buffer (1 x D x H x W floats), owned by the context. */
float *csac_model_input(csac_ctx *ctx);
/* Runs the network on csac_model_input(ctx). No allocation. */
int csac_forward(csac_ctx *ctx, csac_result *res);
/* Preprocess vol into the model input, then forward. */
int csac_screen(csac_ctx *ctx, const csac_volume *vol, csac_result *res);

/* Intermediate maps of the last forward, by layer-table name (e.g.
 * "subA.pool1", "merge"): NCDHW floats (N = 1) and their shape [C, D, H, W].
 * NULL if the name is unknown or no forward has run. */
const float *csac_layer_output(const csac_ctx *ctx, const char *name, int shape[4]);

/* ---- testing and benchmarks ---- */
/* Loads deterministic random weights (the generator in nn/model.h, mirrored
 * by train/csacnet.py) and fills the model input with the matching random
 * input, so parity tests and benchmarks need no weight file. */
int csac_model_init_random(csac_ctx *ctx, uint32_t seed);
/* FLOPs (2 x multiply-adds) of one forward: dense = 1 counts every conv tap,
 * 0 only the taps that land inside the input. */
double csac_model_flops(int dense);

/* ---- heatmaps (issue 7) ----
 * Grad-CAM: gradient of the logit w.r.t. a max-pool output, channel weights =
 * spatially averaged gradient, ReLU of the weighted sum. ACTIVATION: the
 * paper's plain channel-mean activation. Both on the last forward's maps,
 * divided by their maximum. LESION (layer "lesion"): the sigmoid of the
 * lesion head on stage2 (ground-glass score per 16^3 cell), NOT normalised.
 * DEFAULT: the measured default pair (layer NULL only; docs/heatmaps.md). */
enum csac_heatmap_mode {
    CSAC_HEATMAP_DEFAULT = -1,
    CSAC_HEATMAP_GRADCAM = 0,
    CSAC_HEATMAP_ACTIVATION = 1,
    CSAC_HEATMAP_LESION = 2
};

/* Heatmap of the last forward on the model grid: D*H*W floats in [0,1]
 * (w fastest). layer NULL = the default layer; (NULL, CSAC_HEATMAP_DEFAULT)
 * = the default layer in its default mode. */
int csac_heatmap(csac_ctx *ctx, const char *layer, int mode, float *out);
/* Maps a model-grid heatmap onto the original voxels of vol, slices k0..k1-1
 * (dim0*dim1*(k1-k0) floats, i fastest), trilinear; 0 outside the grid. */
int csac_heatmap_resample(csac_ctx *ctx, const csac_volume *vol, const csac_grid *grid, const float *grid_map,
                          int64_t k0, int64_t k1, float *out);
/* Per original slice k (along the third axis): the heatmap's maximum on that
 * slice (sampled every 2nd voxel in-plane), dim[2] floats: ranks slices. */
int csac_heatmap_slice_scores(csac_ctx *ctx, const csac_volume *vol, const csac_grid *grid, const float *grid_map,
                              float *scores);
/* The heatmap on the original voxels as a NIfTI-1 file in memory, with the
 * input's dims, qform and sform: uint8 with scl_slope 1/255 (values 0..1).
 * gzip != 0: .nii.gz bytes. *out is malloc'd: release it with csac_buffer_free. */
int csac_heatmap_nifti(csac_ctx *ctx, const csac_volume *vol, const csac_grid *grid, const float *grid_map, int gzip,
                       void **out, size_t *n);
void csac_buffer_free(void *p);
/* The layer used when csac_heatmap gets layer NULL, and its mode under
 * CSAC_HEATMAP_DEFAULT. */
const char *csac_heatmap_default_layer(void);
int csac_heatmap_default_mode(void);

#ifdef __cplusplus
}
#endif
#endif /* CSAC_H */
