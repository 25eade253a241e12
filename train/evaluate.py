"""evaluate.py - evaluate the shipped CSAC-Net-3D the way the paper does.

    /usr/bin/python3 train/evaluate.py --test data/test_shift --train-features data/train_features.csv \
        --weights weights/csac_v1.safetensors [--resnet weights/baseline_resnet3d_f16.pt] --out docs/eval

On a generated test set (another seed, shifted profile) it reports for
CSAC-Net-3D (run by the C core), the plain 3D ResNet baseline (PyTorch), and
an SVM and a random forest on handcrafted features (lung HU histogram and
intensity statistics; scikit-learn): AUC with a DeLong 95% CI, sensitivity and
specificity with Wilson 95% CIs at thresholds 0.3 / 0.5 / 0.7 (the paper's
Table 3), overall and for COVID vs normal and COVID vs CAP, and the ROC plot.
On every real scan in ../shared/ct: the probability from the C core and from
PyTorch (same weights), their difference, and the C core's time per volume.
Writes OUT/eval.md, OUT/eval.json, OUT/roc.png and OUT/scores.csv (every case, every method).
"""
import argparse
import csv
import ctypes as C
import json
import math
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import csac as csac_py  # noqa: E402  (the ctypes binding: one preprocessing, in C)

SHARED_CT = os.environ.get("CSAC_SHARED_CT", os.path.join(HERE, "..", "..", "shared", "ct"))
# Real scans and what is known of them (../shared/ct/README.md). "used in
# training" = lesions were inserted into this patient's scan for training data.
REAL = [
    ("covidctmd_P001.nii.gz", "covid", 1, ""),
    ("covidctmd_P001_5mm.nii.gz", "covid", 1, ""),
    ("ricord_000082_5mm.nii.gz", "covid", 1, ""),
    ("covidctmd_cap001_5mm.nii.gz", "cap", 0, ""),
    ("covidctmd_normal001.nii.gz", "normal", 0, "base for lesion insertion in training"),
    ("covidctmd_normal001_5mm.nii.gz", "normal", 0, "base for lesion insertion in training"),
    ("lungdx_A0002.nii.gz", "lung cancer", 0, "base for lesion insertion in training"),
    ("chest00_5mm.nii.gz", "unknown", -1, "no label"),
]
FEATURES = ["lung_ml", "noise_hu"] + [f"hall_{i}" for i in range(11)] + ["mean_all", "std_all", "p95_all",
                                                                        "frac_gt500_all"]


class _Result(C.Structure):
    _fields_ = [("probability", C.c_float), ("logit", C.c_float), ("features", C.c_float * 288),
                ("ms_read", C.c_double), ("ms_preprocess", C.c_double), ("ms_forward", C.c_double),
                ("grid", csac_py._Grid)]


class Core(csac_py.Csac):
    """The C core with a model: forward on a model-grid tensor."""

    def __init__(self, weights, n_threads=2):
        super().__init__(n_threads=n_threads)
        lib = self.lib
        lib.csac_load_model_file.argtypes = [C.c_void_p, C.c_char_p]
        lib.csac_model_input.argtypes = [C.c_void_p]
        lib.csac_model_input.restype = C.POINTER(C.c_float)
        lib.csac_forward.argtypes = [C.c_void_p, C.POINTER(_Result)]
        lib.csac_heatmap.argtypes = [C.c_void_p, C.c_char_p, C.c_int, C.POINTER(C.c_float)]
        if lib.csac_load_model_file(self.ctx, os.fsencode(weights)) != 0:
            raise RuntimeError(lib.csac_last_error(self.ctx).decode())

    def forward(self, x):
        n = x.size
        buf = np.ctypeslib.as_array(self.lib.csac_model_input(self.ctx), shape=(n,))
        buf[:] = np.asarray(x, np.float32).ravel()
        r = _Result()
        if self.lib.csac_forward(self.ctx, C.byref(r)) != 0:
            raise RuntimeError(self.lib.csac_last_error(self.ctx).decode())
        return r.probability, r.logit, r.ms_forward

    def layer_output(self, name):
        """csac_layer_output of the last forward: a copy, shaped (C, D, H, W)."""
        self.lib.csac_layer_output.argtypes = [C.c_void_p, C.c_char_p, C.POINTER(C.c_int)]
        self.lib.csac_layer_output.restype = C.POINTER(C.c_float)
        shape = (C.c_int * 4)()
        p = self.lib.csac_layer_output(self.ctx, name.encode(), shape)
        if not p:
            raise RuntimeError(f"csac_layer_output {name}: {self.lib.csac_last_error(self.ctx).decode()}")
        return np.ctypeslib.as_array(p, shape=tuple(shape)).copy()

    def heatmap(self, layer=None, mode=None):
        """csac_heatmap of the last forward: (64, 128, 128) in [0, 1]. mode 0 Grad-CAM, 1 activation,
        2 lesion head (layer "lesion"); None = Grad-CAM for a named layer, and the default pair
        (mode -1) for layer None."""
        if mode is None:
            mode = 0 if layer else -1
        out = np.zeros((csac_py.GRID_D, csac_py.GRID_H, csac_py.GRID_W), np.float32)
        if self.lib.csac_heatmap(self.ctx, layer.encode() if layer else None, mode,
                                 out.ctypes.data_as(C.POINTER(C.c_float))) != 0:
            raise RuntimeError(f"csac_heatmap {layer}: {self.lib.csac_last_error(self.ctx).decode()}")
        return out


# ---------------- statistics ----------------

def wilson(k, n, z=1.959964):
    if n == 0:
        return (float("nan"),) * 3
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return p, max(0.0, c - h), min(1.0, c + h)


def _components(y, s):
    """AUC of s and DeLong's structural components: per positive (v10) and per negative (v01)."""
    s = np.asarray(s, np.float64)
    pos, neg = s[y], s[~y]
    cmp = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    return cmp.mean(), cmp.mean(1), cmp.mean(0)


def delong(y, s):
    """AUC and its DeLong 95% CI."""
    y = np.asarray(y).astype(bool)
    m, n = int(y.sum()), int((~y).sum())
    if m == 0 or n == 0:
        return float("nan"), float("nan"), float("nan")
    a, v10, v01 = _components(y, s)
    var = (v10.var(ddof=1) / m if m > 1 else 0) + (v01.var(ddof=1) / n if n > 1 else 0)
    se = math.sqrt(max(var, 0))
    return float(a), max(0.0, a - 1.959964 * se), min(1.0, a + 1.959964 * se)


def delong_paired(y, s1, s2):
    """AUC(s1) - AUC(s2) on the same cases, its DeLong 95% CI and two-sided p (DeLong et al. 1988:
    the covariance of the two AUCs from the same structural components)."""
    y = np.asarray(y).astype(bool)
    (a1, p1, n1), (a2, p2, n2) = _components(y, s1), _components(y, s2)
    s10, s01 = np.cov(np.array([p1, p2])), np.cov(np.array([n1, n2]))
    var = (s10[0, 0] + s10[1, 1] - 2 * s10[0, 1]) / len(p1) + (s01[0, 0] + s01[1, 1] - 2 * s01[0, 1]) / len(n1)
    d, se = a1 - a2, math.sqrt(max(var, 0))
    p = math.erfc(abs(d) / se / math.sqrt(2)) if se > 0 else (1.0 if d == 0 else 0.0)
    return float(d), d - 1.959964 * se, d + 1.959964 * se, p


def roc(y, s):
    y = np.asarray(y).astype(bool)
    th = np.concatenate([[np.inf], np.unique(s)[::-1]])
    tpr = [(s[y] >= t).mean() for t in th]
    fpr = [(s[~y] >= t).mean() for t in th]
    return np.array(fpr), np.array(tpr)


def metrics(y, p):
    out = {"n": int(len(y)), "n_pos": int(np.sum(y)), "auc": delong(y, p)}
    for t in (0.3, 0.5, 0.7):
        tp = int(np.sum((p >= t) & (y == 1)))
        tn = int(np.sum((p < t) & (y == 0)))
        out[f"t{t}"] = {"sensitivity": wilson(tp, int(np.sum(y == 1))), "specificity": wilson(tn, int(np.sum(y == 0)))}
    return out


# ---------------- methods ----------------

def load_features(path):
    with open(path) as fh:
        rows = list(csv.DictReader(fh))
    return rows


def feature_matrix(rows):
    return np.array([[float(r[k]) for k in FEATURES] for r in rows])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--test", required=True, help="generated test set (manifest.csv, tensors/, features.csv)")
    ap.add_argument("--train-features", required=True, nargs="+",
                    help="features.csv of the training set(s) (SVM/RF fit)")
    ap.add_argument("--weights", default=os.path.join(HERE, "..", "weights", "csac_v1.safetensors"))
    ap.add_argument("--resnet", help="state_dict of the plain 3D ResNet baseline (train.py --arch resnet)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)
    os.makedirs(a.out, exist_ok=True)

    with open(os.path.join(a.test, "manifest.csv")) as fh:
        rows = [r for r in csv.DictReader(fh)]
    y = np.array([int(r["binary_label"]) for r in rows])
    lab = np.array([r["label"] for r in rows])
    core = Core(a.weights, a.threads)
    probs = {}
    t0 = time.time()
    fwd_ms = []
    pc = []
    for r in rows:
        x = np.load(os.path.join(a.test, r["tensor"])).astype(np.float32)
        p, _, ms = core.forward(x)
        pc.append(p)
        fwd_ms.append(ms)
    probs["CSAC-Net-3D (C core)"] = np.array(pc)
    print(f"csac: {len(rows)} cases in {time.time() - t0:.0f} s", flush=True)

    import torch
    torch.set_num_threads(a.threads)
    if a.resnet:
        from train import ResNet3D
        net = ResNet3D()
        net.load_state_dict({k: v.float() for k, v in torch.load(a.resnet, map_location="cpu").items()})
        net.eval()
        pr = []
        with torch.no_grad():
            for i in range(0, len(rows), 8):
                xb = np.stack([np.load(os.path.join(a.test, r["tensor"])).astype(np.float32) for r in rows[i:i + 8]])
                pr.append(torch.sigmoid(net(torch.from_numpy(xb)[:, None]))[:, 0].numpy())
        probs["3D ResNet (baseline)"] = np.concatenate(pr)
        print("resnet done", flush=True)

    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC
    ftr = [r for f in a.train_features for r in load_features(f)]
    fte = load_features(os.path.join(a.test, "features.csv"))  # one row per case, manifest order
    assert [r["label"] for r in fte] == [r["label"] for r in rows], "features.csv and manifest.csv disagree"

    Xtr, ytr = feature_matrix(ftr), np.array([int(r["label"] == "covid") for r in ftr])
    Xte = feature_matrix(fte)
    svm = make_pipeline(StandardScaler(), SVC(C=1.0, kernel="rbf", probability=True, random_state=0)).fit(Xtr, ytr)
    rf = RandomForestClassifier(n_estimators=300, random_state=0, n_jobs=a.threads).fit(Xtr, ytr)
    probs["SVM (handcrafted)"] = svm.predict_proba(Xte)[:, 1]
    probs["Random forest (handcrafted)"] = rf.predict_proba(Xte)[:, 1]

    res = {"test_set": os.path.basename(os.path.normpath(a.test)), "n": len(rows),
           "classes": {c: int(np.sum(lab == c)) for c in sorted(set(lab))}, "methods": {}}
    subsets = {"all": np.ones(len(y), bool), "COVID vs normal": lab != "cap", "COVID vs CAP": lab != "normal"}
    for name, p in probs.items():
        res["methods"][name] = {k: metrics(y[m], p[m]) for k, m in subsets.items()}

    # ---- real scans: C core end to end, and PyTorch on the same tensor ----
    from csacnet import CSACNet3D, fold_bn
    ref = fold_bn(CSACNet3D())
    sd = load_safetensors(a.weights)
    ref.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()})
    ref.eval()
    real = []
    for name, label, binary, note in REAL:
        path = os.path.join(SHARED_CT, name)
        if not os.path.exists(path):
            continue
        t1 = time.perf_counter()
        x = core.preprocess_file(path)
        t2 = time.perf_counter()
        p, logit, ms = core.forward(x)
        with torch.no_grad():
            pt = float(torch.sigmoid(ref(torch.from_numpy(x)[None, None]))[0, 0])
        real.append({"file": name, "label": label, "binary": binary, "note": note, "p_c": p, "p_torch": pt,
                     "abs_diff": abs(p - pt), "ms_read_preprocess": (t2 - t1) * 1e3, "ms_forward": ms})
        print(json.dumps(real[-1]), flush=True)
    res["real"] = real
    res["c_forward_ms_median"] = float(np.median(fwd_ms))
    res["threads"] = a.threads
    with open(os.path.join(a.out, "eval.json"), "w") as fh:
        json.dump(res, fh, indent=1, default=float)
    # per case, for error analysis and compare_auc.py: 9 digits hold a float32 exactly, so the AUCs
    # recomputed from this file are eval.json's (6 digits tied scores near 1 and moved them)
    with open(os.path.join(a.out, "scores.csv"), "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file", "label"] + list(probs))
        for i, r in enumerate(rows):
            w.writerow([r["file"], r["label"]] + [f"{probs[k][i]:.9g}" for k in probs])
    plot_roc(y, probs, os.path.join(a.out, "roc.png"))
    md = report_md(res)
    with open(os.path.join(a.out, "eval.md"), "w") as fh:
        fh.write(md)
    print(md)


def load_safetensors(path):
    import struct
    with open(path, "rb") as fh:
        b = fh.read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    out = {}
    for k, v in h.items():
        if k == "__metadata__":
            continue
        s, e = v["data_offsets"]
        dt = {"F32": "<f4", "F16": "<f2"}[v["dtype"]]
        out[k] = np.frombuffer(b[8 + n + s:8 + n + e], dt).astype(np.float32).reshape(v["shape"])
    return out


def plot_roc(y, probs, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(4.2, 4.2), dpi=110)
    for name, p in probs.items():
        fpr, tpr = roc(y, p)
        ax.plot(fpr, tpr, label=f"{name} (AUC {delong(y, p)[0]:.3f})", lw=1.5)
    ax.plot([0, 1], [0, 1], ":", color="gray", lw=1)
    ax.set_xlabel("1 - specificity")
    ax.set_ylabel("sensitivity")
    ax.set_title("ROC, shifted synthetic test set", fontsize=9)
    ax.legend(fontsize=6.5, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)


def _ci(t):
    return f"{t[0]:.3f} ({t[1]:.3f}-{t[2]:.3f})"


def report_md(res):
    L = [f"Test set `{res['test_set']}`: {res['n']} cases {res['classes']}.", ""]
    for sub in ("all", "COVID vs normal", "COVID vs CAP"):
        L += [f"**{sub}**", "", "| method | AUC (95% CI) | sens @0.3 | spec @0.3 | sens @0.5 | spec @0.5 | sens @0.7 | spec @0.7 |",
              "|---|---|---|---|---|---|---|---|"]
        for name, m in res["methods"].items():
            mm = m[sub]
            cells = [_ci(mm["auc"])]
            for t in ("t0.3", "t0.5", "t0.7"):
                cells += [_ci(mm[t]["sensitivity"]), _ci(mm[t]["specificity"])]
            L.append(f"| {name} | " + " | ".join(cells) + " |")
        L.append("")
    L += ["**Real scans** (../shared/ct; C core vs PyTorch on the same preprocessed tensor)", "",
          "| file | label | p (C core) | p (PyTorch) | abs diff | read+preprocess ms | forward ms | note |",
          "|---|---|---|---|---|---|---|---|"]
    for r in res["real"]:
        L.append(f"| {r['file']} | {r['label']} | {r['p_c']:.4f} | {r['p_torch']:.4f} | {r['abs_diff']:.1e} | "
                 f"{r['ms_read_preprocess']:.0f} | {r['ms_forward']:.0f} | {r['note']} |")
    L += ["", f"C core forward, median over the test set: {res['c_forward_ms_median']:.0f} ms ({res['threads']} threads)."]
    return "\n".join(L) + "\n"


if __name__ == "__main__":
    main()
