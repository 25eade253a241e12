"""Leakage check: can simple global features separate the classes?

    /usr/bin/python3 train/synth/leakage.py data/leak300 [--out docs/synth_leakage.md]

Reads features.csv written by generate.py and reports 5-fold cross-validated ROC AUC of an
L2-regularised logistic regression (numpy, IRLS) for
  A  acquisition / anatomy only: lung volume, body area, noise, slice thickness, pixel size,
     header variant, kernel                       -> must be ~0.5
  B  lung HU histogram OUTSIDE the lesion masks (+ A)  -> must be ~0.5 (no leak through the
     parenchyma, confounders or anatomy)
  C  lung HU histogram of the whole lung, lesions included (+ A): what a histogram model gets
     from the lesions themselves
  D  oracle lesion features (ground-glass and consolidation fraction of the lung): the pattern
     that should carry the label
for covid-vs-rest (the binary label) and each one-vs-rest task.
"""
import argparse
import csv
import os
import sys

import numpy as np

HEADERS = ["int16_inter1024_LPS", "int16_inter1024_LAS", "int16_RAS", "int16_LPS", "float32_RAS", "float32_LPS"]


def auc(y, s):
    y = np.asarray(y, bool)
    s = np.asarray(s, float)
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s))
    # average ranks for ties
    ss = s[order]
    i = 0
    r = np.arange(1, len(s) + 1, dtype=float)
    while i < len(s):
        j = i
        while j + 1 < len(s) and ss[j + 1] == ss[i]:
            j += 1
        r[i:j + 1] = (i + j + 2) / 2.0
        i = j + 1
    ranks[order] = r
    n1, n0 = y.sum(), (~y).sum()
    if n1 == 0 or n0 == 0:
        return float("nan")
    return float((ranks[y].sum() - n1 * (n1 + 1) / 2.0) / (n1 * n0))


def logreg_fit(X, y, lam=1.0, iters=30):
    n, d = X.shape
    Xb = np.hstack([X, np.ones((n, 1))])
    w = np.zeros(d + 1)
    R = lam * np.eye(d + 1)
    R[-1, -1] = 0.0
    for _ in range(iters):
        z = Xb @ w
        p = 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))
        g = Xb.T @ (p - y) + R @ w
        H = (Xb * (p * (1 - p))[:, None]).T @ Xb + R + 1e-8 * np.eye(d + 1)
        step = np.linalg.solve(H, g)
        w -= step
        if np.abs(step).max() < 1e-7:
            break
    return w


def cv_auc(X, y, folds=5, seed=0, lam=1.0):
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(y))
    score = np.zeros(len(y))
    for f in range(folds):
        te = idx[f::folds]
        tr = np.setdiff1d(idx, te)
        mu, sd = X[tr].mean(0), X[tr].std(0) + 1e-9
        w = logreg_fit((X[tr] - mu) / sd, y[tr], lam)
        Xt = (X[te] - mu) / sd
        score[te] = np.hstack([Xt, np.ones((len(te), 1))]) @ w
    return auc(y, score)


def load(d):
    with open(os.path.join(d, "features.csv")) as fh:
        rows = list(csv.DictReader(fh))
    return rows


def feature_sets(rows):
    keys = rows[0].keys()
    num = lambda ks: np.array([[float(r[k]) for k in ks] for r in rows])  # noqa: E731
    # anatomical lung volume (lesions included) where available: a threshold lung volume shrinks
    # with consolidation, which is the lesion itself, not a leak
    acq_k = ["lung_ml_true" if "lung_ml_true" in keys else "lung_ml", "body_area_cm2", "noise_hu",
             "thickness", "spacing"]
    acq = num(acq_k)
    hdr = np.array([[r["header"] == h for h in HEADERS] + [int(r["kernel"]) == k for k in range(3)]
                    for r in rows], float)
    A = np.hstack([acq, hdr])
    out_k = [k for k in keys if k.startswith("hout_")] + ["mean_out", "std_out", "p95_out", "frac_gt500_out"]
    all_k = [k for k in keys if k.startswith("hall_")] + ["mean_all", "std_all", "p95_all", "frac_gt500_all"]
    return {
        "A acquisition+anatomy": A,
        "B lung histogram outside lesions + A": np.hstack([A, num(out_k)]),
        "C whole-lung histogram (lesions incl.) + A": np.hstack([A, num(all_k)]),
        "D oracle lesion fractions": num(["les_ggo_frac", "les_cons_frac"]),
    }


def report(d):
    rows = load(d)
    labels = np.array([r["label"] for r in rows])
    sets = feature_sets(rows)
    tasks = [("covid vs rest (binary label)", labels == "covid"), ("cap vs rest", labels == "cap"),
             ("normal vs rest", labels == "normal")]
    single = {}
    for k in ("lung_ml_true", "lung_ml", "noise_hu", "body_area_cm2", "thickness", "mean_out", "mean_all"):
        if k not in rows[0]:
            continue
        v = np.array([float(r[k]) for r in rows])
        single[k] = auc(labels == "covid", v)
    lines = ["| feature set | " + " | ".join(t for t, _ in tasks) + " |",
             "|---|" + "---|" * len(tasks)]
    res = {}
    for name, X in sets.items():
        vals = [cv_auc(X, y.astype(float)) for _, y in tasks]
        res[name] = vals
        lines.append("| %s | " % name + " | ".join("%.3f" % v for v in vals) + " |")
    lines.append("")
    lines.append("Single features, covid vs rest (AUC of the raw value; 0.5 = no information, "
                 "values below 0.5 separate as well as 1 - AUC): " +
                 ", ".join("%s %.3f" % (k, v) for k, v in single.items()))
    counts = {l: int((labels == l).sum()) for l in ("covid", "cap", "normal")}
    head = "Cases: %d (%s), data set `%s`.\n\n" % (len(rows), ", ".join("%s %d" % kv for kv in counts.items()),
                                                    os.path.basename(os.path.normpath(d)))
    return head + "\n".join(lines) + "\n", res


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("--out")
    a = ap.parse_args(argv)
    txt, res = report(a.data)
    print(txt)
    if a.out:
        with open(a.out, "w") as fh:
            fh.write(txt)


if __name__ == "__main__":
    sys.exit(main())
