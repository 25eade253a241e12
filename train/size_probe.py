"""size_probe.py - a diagnostic, not part of the product: would a patient-size normalisation of the
model grid help on the shifted test set?

    /usr/bin/python3 train/size_probe.py --weights weights/csac_v1.safetensors --test data/test_shift_v3
    /usr/bin/python3 train/size_probe.py --tune [--ref-ml 4200] -- TUNE.PY'S ARGUMENTS   # stage 3 on zoomed inputs

Why: the shifted set's errors are mostly small lungs (weights/MODEL_CARD.md), and the model grid is
in millimetres (docs/preprocessing.md), so a small patient fills less of it than any training case.
Here each test tensor is zoomed about its lungs' centre so that its lung volume (lung_on_grid) is the
training median (--ref-ml), the factor clipped to 0.8-1.25, and screened by the C core with and
without the zoom. At test time only, the network has never seen zoomed inputs (trilinear
upsampling smooths the noise). --tune runs train/tune.py with every training and validation
tensor zoomed the same way (stage 3 only: the trunk stays as trained on unzoomed crops), so that
the weights it writes can then be probed here. Python-side zoom: nothing of this is in the product.
"""
import argparse
import csv
import os
import sys
import tempfile

import numpy as np
from scipy import ndimage

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from evaluate import Core, delong, metrics  # noqa: E402
from csac import GRID_DXY_MM, GRID_DZ_MM  # noqa: E402
from heatmap_study import lung_on_grid  # noqa: E402

VOXEL_ML = GRID_DZ_MM * GRID_DXY_MM * GRID_DXY_MM / 1000


def zoom_to(x, ref_ml, lo=0.8, hi=1.25):
    """x zoomed about its lungs' centre of mass by (ref_ml / lung ml)^(1/3), clipped; outside -> 0."""
    m = lung_on_grid(x)
    s = float(np.clip((ref_ml / max(m.sum() * VOXEL_ML, 1.0)) ** (1 / 3), lo, hi))
    c = np.array(ndimage.center_of_mass(m)) if m.any() else (np.array(x.shape) - 1) / 2
    # out[p] = x[c + (p - c) / s]
    z = ndimage.affine_transform(x, np.diag(np.full(3, 1 / s)), offset=c - c / s, order=1, cval=0.0)
    return np.ascontiguousarray(z, np.float32), m.sum() * VOXEL_ML, s


def resnet_core_weights(pt, out):
    """The ResNet state_dict pt (tune.py --arch resnet) as C core weights in out: CSAC-Net with the
    subnets at zero (crops.core_state_dict), and the ResNet's head on the merge's first 128 pooled
    features (stage4's) with the subnets' 160 weighted zero, so the core gives its probability."""
    import export
    import tune
    from crops import core_state_dict
    m = tune.load_folded("resnet", pt)
    sd = core_state_dict(tune.unfold(m), "resnet")
    for k in ("fc1", "fc2", "fc3"):
        fc = getattr(m, k)
        sd[f"head.{k}.weight"][:, :fc.weight.shape[1]] = fc.weight.detach()
        sd[f"head.{k}.bias"] = fc.bias.detach().clone()
    export.save_safetensors(sd, out, metadata={"model": "csac_v1"})
    return out


def main():
    if "--tune" in sys.argv:  # size_probe.py --tune [--ref-ml ML] -- tune.py's arguments
        import tune
        i = sys.argv.index("--")
        ref = float(sys.argv[sys.argv.index("--ref-ml") + 1]) if "--ref-ml" in sys.argv[:i] else 4200.0
        tune.INPUT_TRANSFORM = lambda x: zoom_to(x, ref)[0]
        tune.main(sys.argv[i + 1:])
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default=os.path.join(HERE, "..", "weights", "csac_v1.safetensors"),
                    help="CSAC-Net .safetensors, or a ResNet state_dict .pt (tune.py --arch resnet)")
    ap.add_argument("--test", required=True)
    ap.add_argument("--ref-ml", type=float, default=4200.0, help="lung volume to zoom to (training median)")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    if a.weights.endswith(".pt"):
        with tempfile.TemporaryDirectory() as d:
            core = Core(resnet_core_weights(a.weights, os.path.join(d, "resnet.safetensors")), a.threads)
    else:
        core = Core(a.weights, a.threads)
    rows = [r for r in csv.DictReader(open(os.path.join(a.test, "manifest.csv"))) if r["tensor"]]
    y, p0, p1 = [], [], []
    for r in rows:
        x = np.load(os.path.join(a.test, r["tensor"])).astype(np.float32)
        xz, ml, s = zoom_to(x, a.ref_ml)
        y.append(r["label"] == "covid")
        p0.append(core.forward(x)[0])
        p1.append(core.forward(xz)[0])
        print(f"{r['file']} {r['label']} lung_ml={ml:.0f} zoom={s:.3f} p={p0[-1]:.6g} p_zoomed={p1[-1]:.6g}", flush=True)
    y = np.array(y)
    for name, p in (("as is", np.array(p0)), ("zoomed", np.array(p1))):
        m = metrics(y, p)["t0.5"]
        print("%s: AUC %.4f (%.4f-%.4f), sensitivity %.3f (%.3f-%.3f), specificity %.3f (%.3f-%.3f) at 0.5"
              % (name, *delong(y, p), *m["sensitivity"], *m["specificity"]))


if __name__ == "__main__":
    main()
