"""ctypes binding over the C core (build/native/libcsac.so, CMake target
csac_shared): the training code preprocesses scans with the very same C code
as the browser and the CLI, so there is one preprocessing implementation.

    import csac
    x = csac.preprocess_file("scan.nii.gz")        # float32 (64, 128, 128), in [0, 1]
    x, info, grid = csac.preprocess_file("scan.nii.gz", with_info=True)

x[d, h, w]: d inferior -> superior (5 mm), h anterior -> posterior,
w patient right -> left (2.8 mm); grid["grid2vox"] maps (w, h, d, 1) back
onto the original voxels. Set CSAC_LIB to use another build of the library.
"""
import contextlib
import ctypes as C
import os

import numpy as np

GRID_D, GRID_H, GRID_W = 64, 128, 128
GRID_DZ_MM, GRID_DXY_MM = 5.0, 2.8  # nn/csac.h
GRID_VERSION = 2  # nn/csac.h CSAC_GRID_VERSION: weights carry it (export.save_safetensors) and load only into its core
# Lesion targets for training (train.py --aux-seg) live at the stage2 resolution, 16^3: one cell is
# 4 x 8 x 8 grid voxels (the stem's stride (1, 2, 2) and two 2x max-pools).
LESION_GRID = (16, 16, 16)
_HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_LIB = os.path.join(_HERE, "..", "build", "native", "libcsac.so")


class _Params(C.Structure):
    _fields_ = [("n_threads", C.c_int), ("max_file_bytes", C.c_uint64),
                ("max_decompressed_bytes", C.c_uint64), ("max_voxels", C.c_uint64),
                ("max_dim", C.c_int64)]


class _Info(C.Structure):
    _fields_ = [("nifti_version", C.c_int), ("dim", C.c_int64 * 3), ("n_volumes", C.c_int64),
                ("spacing", C.c_double * 3), ("datatype", C.c_int), ("datatype_name", C.c_char_p),
                ("scl_slope", C.c_double), ("scl_inter", C.c_double),
                ("qform_code", C.c_int), ("sform_code", C.c_int), ("orientation", C.c_char * 4),
                ("vox2world", (C.c_double * 4) * 4), ("affine_source", C.c_char_p),
                ("hu_min", C.c_float), ("hu_max", C.c_float), ("hu_mean", C.c_float),
                ("lung_ml", C.c_double), ("grid_zoom", C.c_double)]


class _Grid(C.Structure):
    _fields_ = [("grid2world", (C.c_double * 4) * 4), ("grid2vox", (C.c_double * 4) * 4)]


class CsacError(RuntimeError):
    """A scan the C core refused; .status is the CSAC_E_* name."""

    def __init__(self, path, status, message):
        super().__init__(f"{path}: {status}: {message}")
        self.status = status


def _mat(m):
    return np.array([[m[r][c] for c in range(4)] for r in range(4)])


class Csac:
    """One C context (thread pool + limits). Not thread-safe: one per thread."""

    def __init__(self, n_threads=1, lib_path=None):
        self.lib = lib = C.CDLL(lib_path or os.environ.get("CSAC_LIB", DEFAULT_LIB))
        lib.csac_default_params.restype = _Params
        lib.csac_init.argtypes = [C.POINTER(_Params), C.POINTER(C.c_void_p)]
        lib.csac_free.argtypes = [C.c_void_p]
        lib.csac_last_error.restype = C.c_char_p
        lib.csac_last_error.argtypes = [C.c_void_p]
        lib.csac_status_name.restype = C.c_char_p
        lib.csac_volume_read_file.argtypes = [C.c_void_p, C.c_char_p, C.POINTER(C.c_void_p)]
        lib.csac_volume_free.argtypes = [C.c_void_p]
        lib.csac_volume_get_info.argtypes = [C.c_void_p, C.POINTER(_Info)]
        lib.csac_volume_n_warnings.argtypes = [C.c_void_p]
        lib.csac_volume_warning.argtypes = [C.c_void_p, C.c_int]
        lib.csac_volume_warning.restype = C.c_char_p
        lib.csac_preprocess.argtypes = [C.c_void_p, C.c_void_p, C.POINTER(C.c_float), C.POINTER(_Grid)]
        p = lib.csac_default_params()
        p.n_threads = n_threads
        self.ctx = C.c_void_p()
        st = lib.csac_init(C.byref(p), C.byref(self.ctx))
        if st != 0:
            msg = lib.csac_last_error(self.ctx).decode() if self.ctx else "out of memory"
            self.close()
            raise CsacError("csac_init", lib.csac_status_name(st).decode(), msg)

    def close(self):
        if getattr(self, "ctx", None):
            self.lib.csac_free(self.ctx)
            self.ctx = None

    def __del__(self):
        self.close()

    def _read(self, path):
        vol = C.c_void_p()
        st = self.lib.csac_volume_read_file(self.ctx, os.fsencode(path), C.byref(vol))
        if st != 0:
            raise CsacError(path, self.lib.csac_status_name(st).decode(), self.lib.csac_last_error(self.ctx).decode())
        return vol

    def _info(self, vol):
        i = _Info()
        self.lib.csac_volume_get_info(vol, C.byref(i))
        return {
            "nifti_version": i.nifti_version, "dim": tuple(i.dim), "n_volumes": i.n_volumes,
            "spacing": tuple(i.spacing), "datatype": i.datatype, "datatype_name": i.datatype_name.decode(),
            "scl_slope": i.scl_slope, "scl_inter": i.scl_inter, "qform_code": i.qform_code,
            "sform_code": i.sform_code, "orientation": i.orientation.decode(),
            "vox2world": _mat(i.vox2world), "affine_source": i.affine_source.decode(),
            "hu_min": i.hu_min, "hu_max": i.hu_max, "hu_mean": i.hu_mean,
            "lung_ml": i.lung_ml, "grid_zoom": i.grid_zoom,
            "warnings": [self.lib.csac_volume_warning(vol, k).decode()
                         for k in range(self.lib.csac_volume_n_warnings(vol))],
        }

    def info(self, path):
        vol = self._read(path)
        try:
            return self._info(vol)
        finally:
            self.lib.csac_volume_free(vol)

    @contextlib.contextmanager
    def opened(self, path):
        """(volume handle, model-grid tensor, _Grid) of a scan; the volume is freed on exit."""
        vol = self._read(path)
        try:
            out = np.empty((GRID_D, GRID_H, GRID_W), dtype=np.float32)
            g = _Grid()
            st = self.lib.csac_preprocess(self.ctx, vol, out.ctypes.data_as(C.POINTER(C.c_float)), C.byref(g))
            if st != 0:
                raise CsacError(path, self.lib.csac_status_name(st).decode(), self.lib.csac_last_error(self.ctx).decode())
            yield vol, out, g
        finally:
            self.lib.csac_volume_free(vol)

    def preprocess_file(self, path, with_info=False):
        with self.opened(path) as (vol, out, g):
            if not with_info:
                return out
            return out, self._info(vol), {"grid2world": _mat(g.grid2world), "grid2vox": _mat(g.grid2vox)}


def labels_on_grid(mask, grid2mask, sub=1):
    """Label of the nearest mask voxel at sub^3 points inside each model-grid voxel:
    uint8 (sub^3, D, H, W). mask is indexed [i, j, k] (NIfTI order); grid2mask maps
    (w, h, d, 1) onto it (inv(mask affine) @ grid2world; = grid2vox when the mask
    shares the scan's geometry). Points outside the mask read 0."""
    offs = np.arange(sub) / sub - (sub - 1) / (2 * sub)
    zz, yy, xx = np.meshgrid(np.arange(GRID_D), np.arange(GRID_H), np.arange(GRID_W), indexing="ij")
    out = np.zeros((sub ** 3, GRID_D, GRID_H, GRID_W), np.uint8)
    m = np.asarray(grid2mask, np.float64)
    n = 0
    for oz in offs:
        for oy in offs:
            for ox in offs:
                v = np.rint(m[:3, 0, None] * (xx + ox).ravel() + m[:3, 1, None] * (yy + oy).ravel()
                            + m[:3, 2, None] * (zz + oz).ravel() + m[:3, 3, None]).astype(np.int64)
                ok = np.all((v >= 0) & (v < np.array(mask.shape)[:, None]), axis=0)
                lab = np.zeros(v.shape[1], np.uint8)
                lab[ok] = mask[v[0, ok], v[1, ok], v[2, ok]]
                out[n] = lab.reshape(GRID_D, GRID_H, GRID_W)
                n += 1
    return out


def lesion_targets(labels):
    """Per LESION_GRID cell, the share of grid voxels labelled ground glass (1) and consolidation
    (2): uint8 (2, 16, 16, 16), 255 = the whole cell. labels: (D, H, W) from labels_on_grid."""
    bd, bh, bw = GRID_D // LESION_GRID[0], GRID_H // LESION_GRID[1], GRID_W // LESION_GRID[2]
    out = np.empty((2,) + LESION_GRID, np.uint8)
    for c in (1, 2):
        f = (labels == c).reshape(LESION_GRID[0], bd, LESION_GRID[1], bh, LESION_GRID[2], bw).mean((1, 3, 5))
        out[c - 1] = np.rint(f * 255)
    return out


_default = None


def _ctx():
    global _default
    if _default is None:
        _default = Csac()
    return _default


def preprocess_file(path, with_info=False):
    """Model-grid tensor (64, 128, 128) float32 of a .nii/.nii.gz scan."""
    return _ctx().preprocess_file(path, with_info)


def info(path):
    """Header and HU summary of a scan, with its warnings."""
    return _ctx().info(path)


if __name__ == "__main__":
    import sys
    for f in sys.argv[1:]:
        x, inf, grid = preprocess_file(f, with_info=True)
        print(f, inf["dim"], inf["orientation"], "HU %.0f..%.0f" % (inf["hu_min"], inf["hu_max"]),
              "tensor mean %.4f" % x.mean(), *inf["warnings"])
