"""size_probe.py - a diagnostic, not part of the product: would a patient-size normalisation of the
model grid help on the shifted test set?

    /usr/bin/python3 train/size_probe.py --weights weights/csac_v1.safetensors --test data/test_shift_v3

Why: the shifted set's errors are mostly small lungs (weights/MODEL_CARD.md), and the model grid is
in millimetres (docs/preprocessing.md), so a small patient fills less of it than any training case.
Here each test tensor is zoomed about its lungs' centre so that its lung volume (lung_on_grid) is the
training median (--ref-ml), the factor clipped to 0.8-1.25, and screened by the C core with and
without the zoom. Test time only: the network never saw zoomed inputs (trilinear upsampling smooths
the noise), so this bounds nothing; it says whether the idea is worth a training run.
"""
import argparse
import csv
import os
import sys

import numpy as np
from scipy import ndimage

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import train as T  # noqa: E402
from evaluate import Core  # noqa: E402
from heatmap_study import lung_on_grid  # noqa: E402

VOXEL_ML = 5.0 * 2.8 * 2.8 / 1000  # docs/preprocessing.md: 5 mm slices, 2.8 mm pixels


def zoom_to(x, ref_ml, lo=0.8, hi=1.25):
    """x zoomed about its lungs' centre of mass by (ref_ml / lung ml)^(1/3), clipped; outside -> 0."""
    m = lung_on_grid(x)
    s = float(np.clip((ref_ml / max(m.sum() * VOXEL_ML, 1.0)) ** (1 / 3), lo, hi))
    c = np.array(ndimage.center_of_mass(m)) if m.any() else (np.array(x.shape) - 1) / 2
    # out[p] = x[c + (p - c) / s]
    z = ndimage.affine_transform(x, np.full(3, 1 / s), offset=c - c / s, order=1, cval=0.0)
    return np.ascontiguousarray(z, np.float32), m.sum() * VOXEL_ML, s


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default=os.path.join(HERE, "..", "weights", "csac_v1.safetensors"))
    ap.add_argument("--test", required=True)
    ap.add_argument("--ref-ml", type=float, default=4200.0, help="lung volume to zoom to (training median)")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    core = Core(a.weights, a.threads)
    rows = [r for r in csv.DictReader(open(os.path.join(a.test, "manifest.csv"))) if r["tensor"]]
    y, p0, p1 = [], [], []
    for r in rows:
        x = np.load(os.path.join(a.test, r["tensor"])).astype(np.float32)
        xz, ml, s = zoom_to(x, a.ref_ml)
        y.append(r["label"] == "covid")
        p0.append(core.forward(x)[0])
        p1.append(core.forward(xz)[0])
        print(f"{r['file']} {r['label']} lung_ml={ml:.0f} zoom={s:.3f} p={p0[-1]:.3f} p_zoomed={p1[-1]:.3f}", flush=True)
    y = np.array(y)
    for name, p in (("as is", np.array(p0)), ("zoomed", np.array(p1))):
        print(f"{name}: AUC {T.auc(y, p):.4f}, sensitivity {np.mean(p[y] > 0.5):.3f}, "
              f"specificity {np.mean(p[~y] <= 0.5):.3f} at 0.5")


if __name__ == "__main__":
    main()
