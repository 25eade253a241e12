"""Write a synthetic chest-CT data set.

    /usr/bin/python3 train/synth/generate.py --out data/synth_train --n 1000 --seed 1 \
        [--profile train|shift] [--workers 2] [--real-frac 0.15] [--keep-volumes all|none|K] \
        [--tensors auto|yes|no] [--preview 4]

Per case: case_NNNNN.nii (native geometry, header variant per case), case_NNNNN_mask.nii.gz (lesion
label 1 ground glass / 2 consolidation, for covid and cap cases), tensors/case_NNNNN.npy (model-grid
float16 from the C preprocessing through train/csac.py, when available) and, for lesion cases,
tensors/case_NNNNN_les.npy (ground-glass / consolidation share per 16^3 cell: csac.lesion_targets).  manifest.csv has one row
per case; features.csv holds the global features used by leakage.py; preview.png shows axial +
coronal lung-window views.  A case is a pure function of (seed, index, profile).
"""
import argparse
import csv
import json
import os
import sys
import time

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    __package__ = "synth"

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from synth import features as feat  # noqa: E402
from synth import lesions, niftiio, phantom, render  # noqa: E402

LABELS = ("covid", "cap", "normal")


def case_rngs(seed, index, profile):
    ss = np.random.SeedSequence([int(seed), int(index), 0 if profile == "train" else 1])
    return [np.random.default_rng(s) for s in ss.spawn(5)]


def label_of(index):
    return LABELS[index % 3]


def make_case(seed, index, profile="train", real_frac=0.0, native_label=True):
    """Build one case in memory.  Returns dict with vol (HU float32, canonical [z,y,x]), lab (uint8
    or None), p, info."""
    r_anat, r_conf, r_les, r_noise, r_src = case_rngs(seed, index, profile)
    label = label_of(index)
    src = "phantom"
    obj = None
    if real_frac > 0 and r_src.random() < real_frac:
        from synth import insert_real
        obj = insert_real.load_base(r_src, profile)
        if obj is not None:
            src = "real:" + obj.name
    p = phantom.draw_params(r_anat, profile)
    if obj is None:
        obj = phantom.Phantom(p, r_anat)
    else:
        p = obj.adapt_params(p)
    lab_int = np.zeros(obj.hu.shape, np.uint8)
    geo = lesions.LungGeom(obj)
    conf = lesions.confounders(obj, r_conf, geo)
    info = {"confounders": conf}
    if label == "covid":
        info.update(lesions.covid(obj, r_les, lab_int, geo))
    elif label == "cap":
        info.update(lesions.cap(obj, r_les, lab_int, geo))
    lung_n = int((obj.lung > 0).sum())
    les_n = int(((lab_int > 0) & (obj.lung > 0)).sum())
    frac = les_n / max(lung_n, 1)
    if src == "phantom":
        vol, lab, sigma, scale = render.render(obj.hu, lab_int if label != "normal" else None, p, r_noise,
                                               obj.dz, obj.nsub, native_label=native_label)
        rows = render.z_plan(obj.hu.shape[0], obj.dz, obj.nsub, p["thickness"])
        geom = {"spacing": p["spacing"], "thickness": p["thickness"],
                "zmap": np.array([r[1] if r[0] == "mean" else (r[1] + (r[2] >= 0.5)) for r in rows]),
                "k0": (obj.nsub - 1) / 2.0 if rows[0][0] == "mean" else 0.0, "dz_int": obj.dz,
                "int_scale": 2}
    else:
        vol, lab, sigma, scale, geom = obj.render(lab_int if label != "normal" else None, p, r_noise,
                                                  native_label=native_label)
    return {"index": int(index), "vol": vol, "scale": scale, "lab": lab, "p": p, "info": info, "label": label,
            "source": src,
            "lesion_fraction": frac, "lung_ml": lung_n * obj.dz * obj.sp * obj.sp / 1000.0,
            "sigma": sigma, "geom": geom, "lab_int": lab_int, "obj": obj}


def thumbs(case, size=160):
    """Axial (through the largest lesion slice, else mid-lung) and coronal lung-window thumbnails."""
    from PIL import Image
    vol, lab = case["vol"], case["lab"]
    Zn = vol.shape[0]
    if lab is None and case["label"] != "normal" and "zmap" in case["geom"]:
        li = case["lab_int"][case["geom"]["zmap"]]
        sc_ = case["geom"].get("int_scale", 2)
        lab = np.repeat(np.repeat(li, sc_, 1), sc_, 2) if sc_ > 1 else li
    if lab is not None and lab.any():
        zsum = (lab > 0).sum((1, 2))
        k = int(np.argmax(zsum))
        ys = np.nonzero((lab[k] > 0).any(1))[0]
        row = int(np.median(np.nonzero((lab > 0).any((0, 2)))[0]))
    else:
        obj = case["obj"]
        lz = (obj.lung > 0).sum((1, 2))
        kk = int(np.argmax(lz)) if lz.any() else obj.hu.shape[0] // 2
        k = int(np.clip(round(kk * Zn / obj.hu.shape[0]), 0, Zn - 1))
        row = vol.shape[1] // 2 + vol.shape[1] // 17
    def win(a):
        return (np.clip((a + 1350.0) / 1500.0, 0, 1) * 255).astype(np.uint8)
    ax = Image.fromarray(win(render.to_hu(vol[k], case["scale"]))).resize((size, size), Image.BILINEAR)
    cor = render.to_hu(vol[::-1, row, :], case["scale"])
    h_mm = Zn * case["geom"]["thickness"]
    w_mm = vol.shape[2] * case["geom"]["spacing"]
    ch = max(8, int(round(size * h_mm / w_mm)))
    co = Image.fromarray(win(cor)).resize((size, min(size, ch)), Image.BILINEAR)
    cimg = np.zeros((size, size), np.uint8)
    cimg[(size - co.size[1]) // 2:(size - co.size[1]) // 2 + co.size[1]] = np.asarray(co)
    return np.asarray(ax), cimg


def _csac():
    try:
        here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        if here not in sys.path:
            sys.path.insert(0, here)
        import csac  # train/csac.py (ctypes binding over build/native/libcsac.so)
        return csac
    except Exception as e:  # noqa: BLE001
        return e


def run_one(args):
    (seed, index, profile, out, real_frac, keep, want_tensor, want_thumb) = args
    t0 = time.process_time(); w0 = time.time()
    case = make_case(seed, index, profile, real_frac, native_label=bool(keep))
    t_gen = time.process_time() - t0
    p = case["p"]
    name = "case_%05d" % index
    vol_path = os.path.join(out, name + ".nii")
    spacing, thick = case["geom"]["spacing"], case["geom"]["thickness"]
    zn = case["vol"].shape[0]
    origin = case["geom"].get("origin")
    if origin is None:   # scanner coordinates vary per case (label independent)
        origin = (-(511 / 2.0) * spacing, -(511 / 2.0) * spacing + float(case["p"]["cy"]) * 0.0,
                  float(np.round(-150 - 250 * case["p"]["insp"] * 0.0 - 200 * ((index * 7919) % 97) / 97.0, 1)))
    slope, inter = case["scale"]
    arr, aff, qc, sc = render.orient(case["vol"], p, spacing, thick, origin)
    niftiio.write(vol_path, arr, aff, slope, inter, qform_code=qc, sform_code=sc)
    mask_path = ""
    if case["label"] != "normal":
        mask_path = os.path.join(out, name + "_mask.nii.gz")
        if case["lab"] is not None:       # native grid, same geometry as the volume
            marr, _, _, _ = render.orient(case["lab"], p, spacing, thick, origin)
            niftiio.write(mask_path, marr, aff, 1.0, 0.0, qform_code=qc, sform_code=sc, gzip_level=1)
        else:                             # volume not kept: mask on the internal grid (2x pixel)
            g = case["geom"]
            dzi = g.get("dz_int", thick)
            sc_ = g.get("int_scale", 2)
            o2 = (origin[0] + 0.5 * (sc_ - 1) * spacing, origin[1] + 0.5 * (sc_ - 1) * spacing,
                  origin[2] - g.get("k0", 0.0) * dzi)
            marr, maff, _, _ = render.orient(case["lab_int"], p, sc_ * spacing, dzi, o2)
            niftiio.write(mask_path, marr, maff, 1.0, 0.0, qform_code=qc, sform_code=sc, gzip_level=1)
    tensor_path = les_path = ""
    t_tensor = 0.0
    if want_tensor:
        cs = _csac()
        if not isinstance(cs, Exception):
            t1 = time.process_time()
            x, _, grid = cs.preprocess_file(vol_path, with_info=True)
            tensor_path = os.path.join(out, "tensors", name + ".npy")
            np.save(tensor_path, np.asarray(x, np.float16))
            if mask_path:  # lesion targets for train.py --aux-seg, through the scan's own grid
                m = niftiio.read(mask_path)
                g2m = np.linalg.inv(m.affine) @ np.asarray(aff, np.float64) @ np.asarray(grid["grid2vox"])
                lab = cs.labels_on_grid(np.asarray(m.data).transpose(2, 1, 0), g2m)[0]
                les_path = os.path.join(out, "tensors", name + "_les.npy")
                np.save(les_path, cs.lesion_targets(lab))
            t_tensor = time.process_time() - t1
        elif want_tensor == "yes":
            raise RuntimeError("tensor cache requested but train/csac.py is not usable: %r" % (cs,))
    f = feat.case_features(case)
    th = thumbs(case) if want_thumb else None
    if keep is False:
        os.remove(vol_path)
    info = case["info"]
    row = {
        "file": os.path.basename(vol_path), "label": case["label"],
        "binary_label": int(case["label"] == "covid"),
        "lesion_fraction": round(case["lesion_fraction"], 5), "source": case["source"],
        "mask": os.path.basename(mask_path), "tensor": os.path.relpath(tensor_path, out) if tensor_path else "",
        "lesion_grid": os.path.relpath(les_path, out) if les_path else "",
        "seed": seed, "index": index, "profile": profile, "thickness": thick,
        "spacing": round(spacing, 4), "slices": zn, "header": p["header"], "kernel": p["kernel"],
        "noise_sigma": round(case["sigma"], 2), "lung_ml": round(case["lung_ml"], 1),
        "n_lesions": len(info.get("lesions", [])), "pattern": info.get("pattern", ""),
        "confounders": "+".join(info.get("confounders", [])),
        "kept": int(keep is not False),
        "cpu_gen_s": round(t_gen, 3), "cpu_total_s": round(time.process_time() - t0, 3),
        "cpu_tensor_s": round(t_tensor, 3), "wall_s": round(time.time() - w0, 3),
    }
    return row, f, th, info


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--n", type=int, default=30)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--start", type=int, default=0, help="first case index")
    ap.add_argument("--profile", choices=["train", "shift"], default="train")
    ap.add_argument("--shift", action="store_true", help="same as --profile shift")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--real-frac", type=float, default=0.0,
                    help="fraction of cases built on a real non-COVID scan (see insert_real.py)")
    ap.add_argument("--keep-volumes", default="all", help="all | none | K (keep the first K)")
    ap.add_argument("--tensors", choices=["auto", "yes", "no"], default="auto")
    ap.add_argument("--preview", type=int, default=4, help="cases per class in preview.png (0: none)")
    ap.add_argument("--only", choices=LABELS, help="write only the cases of this class (same cases as the full set)")
    a = ap.parse_args(argv)
    profile = "shift" if a.shift else a.profile
    os.makedirs(a.out, exist_ok=True)
    os.makedirs(os.path.join(a.out, "tensors"), exist_ok=True)
    want_tensor = {"auto": "auto", "yes": "yes", "no": False}[a.tensors]
    if want_tensor == "auto" and isinstance(_csac(), Exception):
        print("note: train/csac.py not usable (%s); writing volumes only" % (_csac(),), file=sys.stderr)
        want_tensor = False
    jobs = []
    for i in range(a.start, a.start + a.n):
        if a.only and label_of(i) != a.only:
            continue
        keep = True if a.keep_volumes == "all" else (False if a.keep_volumes == "none"
                                                      else (i - a.start) < int(a.keep_volumes))
        thumb = a.preview > 0 and (i - a.start) < 3 * a.preview
        jobs.append((a.seed, i, profile, a.out, a.real_frac, keep, want_tensor, thumb))
    render.fast_lib()            # compile the C kernel once, before forking
    t0 = time.time()
    rows, feats, ths, infos = [], [], {}, {}
    # manifest / features / lesions are written row by row (in case order), so an interrupted run
    # keeps what it finished
    sink = _Sink(a.out)
    try:
        if a.workers > 1:
            import multiprocessing as mp
            with mp.get_context("fork").Pool(a.workers) as pool:
                for r in pool.imap(run_one, jobs, chunksize=1):
                    _collect(r, rows, feats, ths, infos, t0, len(jobs), sink)
        else:
            for j in jobs:
                _collect(run_one(j), rows, feats, ths, infos, t0, len(jobs), sink)
    finally:
        sink.close()
    wall = time.time() - t0
    if ths:
        write_preview(os.path.join(a.out, "preview.png"), rows, ths, a.preview)
    cpu = sum(r["cpu_total_s"] for r in rows)
    summ = {"n": len(rows), "wall_s": round(wall, 1), "wall_per_case_s": round(wall / len(rows), 3),
            "cpu_per_case_s": round(cpu / len(rows), 3), "workers": a.workers,
            "loadavg": os.getloadavg(), "tensors": bool(any(r["tensor"] for r in rows)),
            "labels": {l: sum(r["label"] == l for r in rows) for l in LABELS}}
    with open(os.path.join(a.out, "summary.json"), "w") as fh:
        json.dump(summ, fh, indent=1)
    print(json.dumps(summ))


class _Sink:
    def __init__(self, out):
        self.fm = open(os.path.join(out, "manifest.csv"), "w", newline="")
        self.ff = open(os.path.join(out, "features.csv"), "w", newline="")
        self.fl = open(os.path.join(out, "lesions.jsonl"), "w")
        self.wm = self.wf = None

    def add(self, row, f, info):
        if self.wm is None:
            self.wm = csv.DictWriter(self.fm, fieldnames=list(row.keys()))
            self.wm.writeheader()
            self.wf = csv.DictWriter(self.ff, fieldnames=list(f.keys()))
            self.wf.writeheader()
        self.wm.writerow(row)
        self.wf.writerow(f)
        self.fl.write(json.dumps({"file": row["file"], "label": row["label"], **info}) + "\n")
        for fh in (self.fm, self.ff, self.fl):
            fh.flush()

    def close(self):
        for fh in (self.fm, self.ff, self.fl):
            fh.close()


def _collect(r, rows, feats, ths, infos, t0, n, sink):
    row, f, th, info = r
    rows.append(row)
    feats.append(f)
    infos[row["index"]] = info
    sink.add(row, f, info)
    if th is not None:
        ths[row["index"]] = th
    if len(rows) % 25 == 0:
        print("%d/%d cases, %.1f s" % (len(rows), n, time.time() - t0), file=sys.stderr, flush=True)


def write_preview(path, rows, ths, per_class, size=160):
    """Grid: one row per class, per case axial | coronal (lung window W1500 L-600)."""
    from PIL import Image, ImageDraw
    by = {l: [r for r in rows if r["label"] == l and r["index"] in ths][:per_class] for l in LABELS}
    ncol = max(1, max(len(v) for v in by.values()))
    img = np.zeros((3 * (size + 14), ncol * 2 * size), np.uint8)
    for ri, l in enumerate(LABELS):
        for ci, r in enumerate(by[l]):
            ax, co = ths[r["index"]]
            y0 = ri * (size + 14) + 14
            img[y0:y0 + size, ci * 2 * size:ci * 2 * size + size] = ax
            img[y0:y0 + size, ci * 2 * size + size:(ci + 1) * 2 * size] = co
    im = Image.fromarray(img)
    d = ImageDraw.Draw(im)
    for ri, l in enumerate(LABELS):
        for ci, r in enumerate(by[l]):
            d.text((ci * 2 * size + 2, ri * (size + 14)), "%s %s %.1f%% t=%gmm" % (
                l, r["file"][5:10], 100 * r["lesion_fraction"], r["thickness"]), fill=255)
    im.save(path, optimize=True)


if __name__ == "__main__":
    main()
