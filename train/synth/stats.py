"""Compare generated COVID lesions with the 50 MosMedData CT-1 lesion masks.

    /usr/bin/python3 train/synth/stats.py data/synth_x [--mosmed ../shared/ct/mosmed_masks]
                                           [--out docs/synth_stats.md]

The MosMed masks come without their CT images (and are sampled every 8 mm), so lung boundaries and
HU are unknown there.  Both data sets are therefore measured the same way, on masks only, after
bringing the generated masks to ~8 mm slice spacing:
  total lesion volume (mL), number of connected lesions (>= 0.5 mL), lesion volumes,
  bilateral (>= 0.5 mL of lesion on each side of the image midline),
  lower fraction  = share of lesion volume in the lower half of the scanned z range (proxy for
                    lower-lobe predominance),
  peripheral fraction = share of lesion volume at an in-plane radius > 0.5 x half the field of view
                    from the image centre (proxy for peripheral/subpleural).
For the generated cases the true anatomy is known too (lesions.jsonl: distance of each lesion
centre to the pleura, lower-lobe membership, HU), which is reported separately.
"""
import argparse
import csv
import glob
import json
import os
import sys

import numpy as np
from scipy import ndimage

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from synth import niftiio  # noqa: E402

MOSMED = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "ct", "mosmed_masks")


def mask_stats(m, aff):
    """m: mask [z, y, x] (>0 lesion), aff: voxel->RAS.  Returns dict of the proxy measures."""
    sp = np.sqrt((aff[:3, :3] ** 2).sum(0))          # x, y, z spacing
    m = m > 0
    if sp[2] < 6.0:                                   # bring to ~8 mm slices like MosMed
        k = max(1, int(round(8.0 / sp[2])))
        m = m[::k]
        sp = sp * np.array([1, 1, k])
    vox_ml = float(np.prod(sp)) / 1000.0
    lab, n = ndimage.label(m, structure=np.ones((3, 3, 3), bool))
    vols = np.bincount(lab.ravel())[1:] * vox_ml
    comps = vols[vols >= 0.5]
    Z, H, Wd = m.shape
    iz, iy, ix = np.nonzero(m)
    if len(iz) == 0:
        return None
    # image midline and radius in voxel units of the in-plane grid
    left = (ix > (Wd - 1) / 2.0)
    vl, vr = left.sum() * vox_ml, (~left).sum() * vox_ml
    # orientation of z: make 'lower' = inferior using the affine sign
    zsign = np.sign(aff[2, 2]) if aff[2, 2] != 0 else 1.0
    zrel = iz / max(Z - 1, 1)
    if zsign < 0:
        zrel = 1 - zrel
    r = np.sqrt(((ix - (Wd - 1) / 2.0) / (Wd / 2.0)) ** 2 + ((iy - (H - 1) / 2.0) / (H / 2.0)) ** 2)
    return {"total_ml": float(len(iz) * vox_ml), "n_lesions": int(len(comps)),
            "lesion_ml": comps.tolist(), "bilateral": bool(vl >= 0.5 and vr >= 0.5),
            "lower_frac": float((zrel < 0.5).mean()), "periph_frac": float((r > 0.5).mean())}


def summarise(stats):
    tot = np.array([s["total_ml"] for s in stats])
    nl = np.array([s["n_lesions"] for s in stats])
    lv = np.concatenate([s["lesion_ml"] for s in stats]) if stats else np.zeros(0)
    q = lambda a: "%.1f [%.1f-%.1f]" % (np.median(a), np.percentile(a, 25), np.percentile(a, 75)) if len(a) else "-"  # noqa: E731
    return {
        "cases": len(stats),
        "total lesion volume mL, median [IQR]": q(tot),
        "lesions (>=0.5 mL) per case, median [IQR]": q(nl),
        "lesion volume mL, median [IQR]": q(lv),
        "bilateral cases": "%.0f %%" % (100 * np.mean([s["bilateral"] for s in stats])),
        "lesion volume in lower half of scan": "%.0f %%" % (100 * np.mean([s["lower_frac"] for s in stats])),
        "lesion volume at r > 0.5 FOV/2": "%.0f %%" % (100 * np.mean([s["periph_frac"] for s in stats])),
    }


def mosmed_stats(d):
    out = []
    for f in sorted(glob.glob(os.path.join(d, "study_*_mask.nii.gz"))):
        im = niftiio.read(f)
        s = mask_stats(np.asarray(im.data), im.affine)
        if s:
            out.append(s)
    return out


def generated_stats(d):
    with open(os.path.join(d, "manifest.csv")) as fh:
        rows = [r for r in csv.DictReader(fh) if r["label"] == "covid" and r["mask"]]
    out = []
    for r in rows:
        im = niftiio.read(os.path.join(d, r["mask"]))
        # masks are written in the case's header orientation: bring to canonical x (image) order
        s = mask_stats(np.asarray(im.data), im.affine)
        if s:
            s["lesion_fraction"] = float(r["lesion_fraction"])
            out.append(s)
    truth = []
    p = os.path.join(d, "lesions.jsonl")
    if os.path.exists(p):
        for line in open(p):
            j = json.loads(line)
            if j["label"] == "covid":
                truth.append(j)
    return out, truth


def report(d, mosmed):
    ms = mosmed_stats(mosmed)
    gs, truth = generated_stats(d)
    a, b = summarise(ms), summarise(gs)
    lines = ["| measure (masks only, ~8 mm slices) | MosMed CT-1 (50 masks) | generated covid |", "|---|---|---|"]
    for k in a:
        lines.append("| %s | %s | %s |" % (k, a[k], b[k]))
    txt = "\n".join(lines) + "\n"
    if truth:
        les = [l for j in truth for l in j["lesions"]]
        hu = np.array([l["hu"] for l in les])
        pl = np.array([l["pleura_mm"] for l in les])
        low = np.array([l.get("lower", False) for l in les])
        bil = np.mean([len({l["side"] for l in j["lesions"]}) == 2 for j in truth])
        fr = np.array([float(x["lesion_fraction"]) for x in gs]) if gs else np.zeros(1)
        kinds = {}
        for l in les:
            kinds[l["kind"]] = kinds.get(l["kind"], 0) + 1
        txt += ("\nGenerated covid lesions, known anatomy (%d cases, %d lesions): ground-glass HU median %.0f "
                "[range %.0f..%.0f]; lesion centre within 15 mm of the pleura: %.0f %%; centre in a lower lobe: "
                "%.0f %%; bilateral cases: %.0f %%; lesion fraction of lung volume: median %.2f %% "
                "[range %.2f-%.2f %%]; kinds: %s.\n"
                % (len(truth), len(les), np.median(hu), hu.min(), hu.max(), 100 * np.mean(pl <= 15),
                   100 * np.mean(low), 100 * bil, 100 * np.median(fr), 100 * fr.min(), 100 * fr.max(),
                   ", ".join("%s %d" % kv for kv in sorted(kinds.items()))))
    txt += ("\nMosMed HU is unknown (no CT images shipped); the paper's/literature GGO range is about "
            "-750..-350 HU, which the generator samples (-720..-380 HU target, plus texture).\n")
    return txt


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("--mosmed", default=os.path.normpath(MOSMED))
    ap.add_argument("--out")
    a = ap.parse_args(argv)
    txt = report(a.data, a.mosmed)
    print(txt)
    if a.out:
        with open(a.out, "w") as fh:
            fh.write(txt)


if __name__ == "__main__":
    main()
