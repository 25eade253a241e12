"""heatmap_study.py - choose the heatmap layer by measurement (issue 7).

    /usr/bin/python3 train/heatmap_study.py --test data/test_shift --weights weights/csac_v1.safetensors \
        --out docs/eval/heatmap_study.md [--cases 100]

For every candidate layer and mode (Grad-CAM / activation / the lesion head) the C core's
model-grid heatmap (csac_heatmap) is scored against the generator's lesion
masks on the synthetic COVID-19 cases of a test set (volumes and masks kept):
  - pointing game: the map's maximum lies in a lesion, within one model voxel
    (the lesion mask on the grid dilated by one voxel); an all-zero map misses;
  - lesion-vs-lung AUC: map values on lesion voxels vs the other lung voxels
    (lung = grid voxels below -400 HU not connected to the slice's edge, holes
    filled, minus the dilated lesions), averaged over cases;
and on the real scans with slice labels (../shared/ct/slice_labels.csv): the
AUC of the per-slice score (csac_heatmap_slice_scores) for infected vs clean
slices, and how much of the map lies in the lungs (of the grid voxels at >= half
the map's maximum, the share inside the lungs: a map that lights up the chest
wall and mediastinum scores low). The mask is moved onto the grid through the C preprocessing's own
grid2vox, with 3 x 3 x 3 sub-samples per grid voxel (lesion if >= half hit).
"""
import argparse
import csv
import ctypes as C
import json
import os
import sys
import time

import numpy as np
from scipy import ndimage
from scipy.stats import rankdata

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import csac as csac_py  # noqa: E402
from evaluate import SHARED_CT, Core  # noqa: E402
from synth import niftiio  # noqa: E402

GRID = (csac_py.GRID_D, csac_py.GRID_H, csac_py.GRID_W)
SUBNET = ["subA.pool1", "subA.pool2", "subB.pool1", "subB.pool2", "subC.pool1", "merge"]
CANDIDATES = [(l, 0) for l in SUBNET] + [(l, 1) for l in SUBNET + ["stage2.pool", "stage3.pool"]] + [("lesion", 2)]
MODE = {0: "Grad-CAM", 1: "activation", 2: "lesion head"}
LUNG_T = (-400 + 1000) / 1400  # -400 HU in the model's 0..1 window


def auc(pos, neg):
    """Mann-Whitney AUC with ties counted half (vectorised ranks)."""
    pos, neg = np.asarray(pos, np.float64), np.asarray(neg, np.float64)
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    r = rankdata(np.concatenate([pos, neg]))
    return float((r[:len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def mask_on_grid(mask, grid2vox):
    """Grid voxels where at least half of 3x3x3 sub-samples hit the native mask (nearest voxel)."""
    return (csac_py.labels_on_grid(mask, grid2vox, sub=3) > 0).mean(0) >= 0.5


def lung_on_grid(x):
    """Per axial slice: voxels below -400 HU not connected to the slice's edge (2D, because
    grid slices beyond the scanned range are air and would join the lungs through the
    trachea in 3D), holes filled (vessels, dense lesions)."""
    out = np.zeros(GRID, bool)
    for d in range(GRID[0]):
        lab, _ = ndimage.label(x[d] < LUNG_T)
        edge = np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]))
        out[d] = ndimage.binary_fill_holes((lab > 0) & ~np.isin(lab, edge))
    return out


def real_scan_maps(core, path, candidates):
    """For each candidate: per original slice, the max of its heatmap (csac_heatmap_slice_scores),
    and the share of its grid voxels at >= half its maximum that lie in the lungs."""
    lib = core.lib
    lib.csac_heatmap_slice_scores.argtypes = [C.c_void_p, C.c_void_p, C.POINTER(csac_py._Grid),
                                              C.POINTER(C.c_float), C.POINTER(C.c_float)]
    with core.opened(path) as (vol, x, g):
        core.forward(x)
        nk = core._info(vol)["dim"][2]
        lung = lung_on_grid(x)
        out, in_lung = {}, {}
        for c in candidates:
            m = core.heatmap(*c)
            hi = m >= 0.5 * m.max() if m.max() > 0 else np.zeros_like(lung)
            in_lung[c] = float((hi & lung).sum() / max(1, hi.sum()))
            s = np.zeros(nk, np.float32)
            if lib.csac_heatmap_slice_scores(core.ctx, vol, C.byref(g), m.ctypes.data_as(C.POINTER(C.c_float)),
                                             s.ctypes.data_as(C.POINTER(C.c_float))) != 0:
                raise RuntimeError(lib.csac_last_error(core.ctx).decode())
            out[c] = s
        return out, in_lung


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--test", required=True)
    ap.add_argument("--weights", default=os.path.join(HERE, "..", "weights", "csac_v1.safetensors"))
    ap.add_argument("--out", required=True, help="Markdown table; a .json beside it")
    ap.add_argument("--cases", type=int, default=100, help="COVID-19 cases to use (the first N)")
    a = ap.parse_args()
    core = Core(a.weights)
    rows = [r for r in csv.DictReader(open(os.path.join(a.test, "manifest.csv")))
            if r["label"] == "covid" and r.get("kept") == "1" and r.get("mask")][: a.cases]
    stats = {c: {"hits": 0, "aucs": []} for c in CANDIDATES}
    t0, n = time.time(), 0
    for r in rows:
        x, _info, grid = core.preprocess_file(os.path.join(a.test, r["file"]), with_info=True)
        mask = niftiio.read(os.path.join(a.test, r["mask"])).data.transpose(2, 1, 0)  # -> [i, j, k]
        les = mask_on_grid(mask, np.asarray(grid["grid2vox"]))
        if not les.any():
            continue  # the lesion lies outside the model grid
        n += 1
        near = ndimage.binary_dilation(les, np.ones((3, 3, 3), bool))
        lung = lung_on_grid(x) & ~near
        core.forward(x)
        for c in CANDIDATES:
            m = core.heatmap(*c)
            if m.max() > 0 and near.flat[int(np.argmax(m))]:
                stats[c]["hits"] += 1
            stats[c]["aucs"].append(auc(m[les], m[lung]))
    print(f"{n} COVID-19 cases in {time.time() - t0:.0f} s", file=sys.stderr)
    # real scans with slice labels: per-slice score AUC, infected vs clean
    labels = {}
    for r in csv.DictReader(open(os.path.join(SHARED_CT, "slice_labels.csv"))):
        labels.setdefault(r["file"], {})[int(r["z"])] = int(r["infected"])
    real = {c: {} for c in CANDIDATES}
    in_lung = {c: {} for c in CANDIDATES}
    for f, lab in sorted(labels.items()):
        scores, share = real_scan_maps(core, os.path.join(SHARED_CT, f), CANDIDATES)
        y = np.array([lab[z] for z in sorted(lab)])
        for c in CANDIDATES:
            s = scores[c][sorted(lab)]
            real[c][f] = auc(s[y == 1], s[y == 0])
            in_lung[c][f] = share[c]
    res = []
    for c in CANDIDATES:
        st = stats[c]
        res.append({"layer": c[0], "mode": MODE[c[1]], "pointing": st["hits"] / max(n, 1),
                    "lesion_auc": float(np.nanmean(st["aucs"])) if st["aucs"] else float("nan"),
                    "real_slice_auc": real[c], "real_in_lung": in_lung[c]})
    meta = {"weights": os.path.basename(a.weights), "test": os.path.basename(os.path.normpath(a.test)),
            "covid_cases": n}
    with open(os.path.splitext(a.out)[0] + ".json", "w") as fh:
        json.dump({**meta, "results": res}, fh, indent=1)
    files = sorted(labels)
    L = [f"Heatmap layer study: {n} synthetic COVID-19 cases of `{meta['test']}`, weights "
         f"`{meta['weights']}` (`train/heatmap_study.py`).", "",
         "| layer | mode | pointing game | lesion-vs-lung AUC | " + " | ".join(f"slice AUC {f}" for f in files)
         + " | " + " | ".join(f"in lungs {f}" for f in files) + " |",
         "|---|---|---|---|" + "---|" * 2 * len(files)]
    for r in res:
        L.append(f"| `{r['layer']}` | {r['mode']} | {r['pointing']:.2f} | {r['lesion_auc']:.3f} | "
                 + " | ".join(f"{r['real_slice_auc'][f]:.3f}" for f in files) + " | "
                 + " | ".join(f"{r['real_in_lung'][f]:.2f}" for f in files) + " |")
    open(a.out, "w").write("\n".join(L) + "\n")
    print("\n".join(L))


if __name__ == "__main__":
    main()
