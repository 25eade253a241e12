"""Lesion insertion into real chest CT scans that have no COVID-19.

Training bases (files of ../shared/ct, read in place, never copied into the repository):
  covidctmd_normal001.nii.gz      normal, native 0.635 mm x 2 mm         (COVID-CT-MD, CC BY 4.0)
  covidctmd_normal001_5mm.nii.gz  the same patient, 5 mm                 (same patient: same side)
  lungdx_A0002.nii.gz             lung adenocarcinoma, no pneumonia, 8 mm (Lung-PET-CT-Dx, TCIA)
Kept OUT of training (evaluation only):
  covidctmd_P001*.nii.gz, ricord_000082_5mm.nii.gz   COVID-19 positive
  covidctmd_cap001_5mm.nii.gz                         the only real CAP case: kept for evaluation
  chest00_5mm.nii.gz                                  licence undocumented (internal fixture only)

A base scan is reoriented to the canonical [z, y, x] = (S, P, L) layout, its lungs are segmented by
threshold + connected components + hole filling (features.lung_mask_threshold), and the same lesion
models as for the phantoms are blended into the real parenchyma (hu += alpha * max(target - hu, 0):
real vessels and texture stay visible through ground glass; airways stay air inside consolidation).
The source is chosen independently of the label, so every class gets the same real bases.
"""
import os

import numpy as np
from scipy import ndimage

from . import features, niftiio, render

SHARED = os.environ.get("CSAC_SHARED_CT") or os.path.normpath(
    os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "ct"))
TRAIN_BASES = [("covidctmd_normal001.nii.gz", 0.4), ("covidctmd_normal001_5mm.nii.gz", 0.3),
               ("lungdx_A0002.nii.gz", 0.3)]     # (file, probability); chosen independently of the label
EVAL_ONLY = ["covidctmd_P001.nii.gz", "covidctmd_P001_5mm.nii.gz", "ricord_000082_5mm.nii.gz",
             "covidctmd_cap001_5mm.nii.gz", "chest00_5mm.nii.gz"]

_CACHE = {}


def canonical(im):
    """HU volume [z, y, x] with x -> patient left, y -> posterior, z -> superior (axis-aligned
    affines only), plus (in-plane spacing, slice spacing, LPS origin of voxel 0)."""
    hu = im.hu()
    aff = im.affine
    R = aff[:3, :3]
    if np.abs(R - np.diag(np.diag(R))).max() > 1e-3 * np.abs(R).max():
        raise ValueError("oblique affine not supported")
    d = np.diag(R)
    # RAS world; canonical wants index x along -R (left), y along -A (posterior), z along +S
    if d[0] > 0:
        hu = hu[:, :, ::-1]
    if d[1] > 0:
        hu = hu[:, ::-1, :]
    if d[2] < 0:
        hu = hu[::-1]
    nz, ny, nx = hu.shape
    # LPS of canonical voxel 0
    ras0 = aff[:3, 3] + np.where(d > 0, 0, 0) * 0
    ras = np.array([aff[0, 3] + (nx - 1) * d[0] if d[0] > 0 else aff[0, 3],
                    aff[1, 3] + (ny - 1) * d[1] if d[1] > 0 else aff[1, 3],
                    aff[2, 3] if d[2] > 0 else aff[2, 3] + (nz - 1) * d[2]])
    del ras0
    lps0 = (-ras[0], -ras[1], ras[2])
    return np.ascontiguousarray(hu, np.float32), float(abs(d[0])), float(abs(d[2])), lps0


class RealBase:
    """Phantom-like wrapper of a real scan (see lesions.py for the attributes used)."""

    def __init__(self, name, hu, sp, dz, lps0):
        self.name = name
        self.hu0 = hu
        self.sp, self.dz, self.lps0 = sp, dz, lps0
        self.nsub = 1
        v = np.maximum(hu, -1024.0)
        lung = features.lung_mask_threshold(v, vox_ml=sp * sp * dz / 1000.0)
        lab, n = ndimage.label(lung)
        sizes = np.bincount(lab.ravel())
        sizes[0] = 0
        Z, H, W = hu.shape
        if n >= 2 and sizes.argsort()[-2] > 0 and sizes[sizes.argsort()[-2]] > 0.2 * sizes.max():
            a, b = sizes.argsort()[-1], sizes.argsort()[-2]
            xa = np.nonzero(lab == a)[2].mean(); xb = np.nonzero(lab == b)[2].mean()
            right = a if xa < xb else b
            lungl = np.where(lab == right, 1, np.where(lung, 2, 0)).astype(np.uint8)
        else:
            xs = np.nonzero(lung)[2]
            mid = np.median(xs) if len(xs) else W / 2
            lungl = np.where(lung, np.where(np.arange(W)[None, None, :] < mid, 1, 2), 0).astype(np.uint8)
        self.lung = lungl
        iz, iy, ix = np.nonzero(lung)
        self.z_base = iz.min() * dz if len(iz) else 0.0
        Lh = (iz.max() - iz.min()) * dz if len(iz) else 200.0
        self.cy = iy.mean() * sp if len(iy) else H * sp / 2
        self.cx = ix.mean() * sp if len(ix) else W * sp / 2
        B = (np.percentile(iy, 99) - np.percentile(iy, 1)) * sp / 2 * 1.15 if len(iy) else 100.0
        self.p = {"B": float(B), "Lh": float(max(Lh, 120.0))}
        self.zs = (np.arange(Z) * dz - self.z_base).astype(np.float32)
        self.hila = {1: (0.55 * self.p["Lh"], -0.05 * B, -35.0), 2: (0.55 * self.p["Lh"], -0.05 * B, 40.0)}

    def instance(self):
        """Fresh editable copy for one case."""
        o = RealBase.__new__(RealBase)
        o.__dict__.update(self.__dict__)
        o.hu = self.hu0.copy()
        o.airway = (self.hu0 < -950) & (self.lung > 0)
        return o

    def idx_to_pf(self, iz, iy, ix):
        return self.zs[iz], np.asarray(iy) * self.sp - self.cy, np.asarray(ix) * self.sp - self.cx

    def lower_lobe(self, z, Y):
        B, Lh = self.p["B"], self.p["Lh"]
        zf = Lh * (0.10 + 0.62 * np.clip((Y + 0.8 * B) / (1.6 * B), 0, 1))
        return z < zf

    def adapt_params(self, p):
        """Keep the case's header variant and dose draw; geometry is the real scan's."""
        p = dict(p)
        p["spacing"], p["thickness"] = self.sp, self.dz
        return p

    def render(self, lab, p, rng, native_label=True):
        """Add a little extra noise (the scan already has its own), convert to the stored type."""
        extra = float(rng.uniform(0, 12))
        v = self.hu.copy()
        v += extra * rng.standard_normal(v.shape, dtype=np.float32) if extra > 1 else 0.0
        dt, slope, inter = render.stored_type(p)
        if dt == np.int16:
            v = np.clip(np.rint(v - inter), -32768, 32767).astype(np.int16)
        geom = {"spacing": self.sp, "thickness": self.dz, "origin": self.lps0, "dz_int": self.dz,
                "k0": 0.0, "int_scale": 1, "zmap": np.arange(v.shape[0])}
        sigma = extra
        # internal grid == native grid for real scans: halve nothing
        return v, (lab if (lab is not None and native_label) else None), sigma, (slope, inter), geom


def load_base(rng, profile="train"):
    """Pick a training base (independently of the label) and return an editable instance, or None
    when ../shared/ct is not available."""
    names = [n for n, _ in TRAIN_BASES]
    pr = np.array([w for _, w in TRAIN_BASES], float)
    name = names[int(rng.choice(len(names), p=pr / pr.sum()))]
    path = os.path.join(SHARED, name)
    if not os.path.exists(path):
        return None
    b = _CACHE.get(name)
    if b is None:
        hu, sp, dz, lps0 = canonical(niftiio.read(path))
        if hu.shape[1] > 256 and hu.shape[1] % 2 == 0 and hu.shape[2] % 2 == 0:
            # 2x2 in-plane averaging (as for the 5 mm files of ../shared/ct): lesion models then
            # work at the same ~1.3 mm grid as on the phantoms, and a case costs ~4x less
            Z, H, W = hu.shape
            hu = hu.reshape(Z, H // 2, 2, W // 2, 2).mean((2, 4))
            lps0 = (lps0[0] + 0.5 * sp, lps0[1] + 0.5 * sp, lps0[2])
            sp *= 2.0
        b = _CACHE[name] = RealBase(name, np.ascontiguousarray(hu, np.float32), sp, dz, lps0)
    return b.instance()
