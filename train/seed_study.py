"""seed_study.py - is CSAC-Net ahead of the ResNet, or was it one training's luck?

    /usr/bin/python3 train/seed_study.py --csac s0.safetensors s1.safetensors ... --resnet s0_f16.pt s1_f16.pt ... \
        --test data/test_shift_z1001 data/test_shift_z1002 ... --cache CACHE --out DIR

Each --csac / --resnet file is one stage-3 run of tune.py (the same head, another --seed); the i-th
of each list form seed pair i. The runs of one network share its frozen layers (checked), so the
frozen maps of every test case are computed once per network by the C core (tune.py's cache,
float32), and each run's tail gives the logit (tests/python/test_tune.py: the same as the whole
network's, so the same as evaluate.py's for the same file). Reported: every run's AUC per set and pooled, the
paired DeLong difference CSAC - ResNet of each pair, and over the pairs the mean pooled difference
with its 95% t-interval. Writes DIR/seed_study.json, DIR/seed_study.md and DIR/scores_<set>.csv
(the logits).
"""
import argparse
import csv
import json
import math
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import tune  # noqa: E402
from evaluate import delong, delong_paired  # noqa: E402



def t_interval(x):
    """Mean of x and its two-sided 95% t-interval (nan with fewer than 2 values)."""
    x = np.asarray(x, np.float64)
    m = float(x.mean())
    if x.size < 2:
        return m, float("nan"), float("nan")
    from scipy.stats import t
    h = float(t.ppf(0.975, x.size - 1)) * float(x.std(ddof=1)) / math.sqrt(x.size)
    return m, m - h, m + h


def logits(arch, runs, test_dirs, cache, threads):
    """{set: (labels, [logits of each run])}. The runs share their frozen layers (checked), so the
    C core computes the frozen maps once, from the first run as saved."""
    models = [tune.load_folded(arch, p) for p in runs]
    ref = models[0].state_dict()
    for path, m in zip(runs[1:], models[1:]):
        for k, v in m.state_dict().items():
            if not k.startswith(tune.TRAINED[arch]) and not torch.equal(v, ref[k]):
                sys.exit(f"{path}: frozen tensor {k} differs from {runs[0]}'s: not runs of the same stage 3")
    core = tune.open_core(arch, models[0], os.path.join(cache, f"{arch}.core.safetensors"), threads)
    # float32 maps (training keeps float16 to save memory): the logits are the whole network's
    feats = {d: tune.cached_features(core, arch, runs[0], d, cache, dtype=np.float32) for d in test_dirs}
    core.close()
    return {d: (lab, [tune.scores(m, arch, f, len(lab)) for m in models]) for d, (f, lab) in feats.items()}


def study(csac, resnet, names):
    """csac / resnet: {set: (labels, [logits per run])}, the same sets and cases, runs in pair order."""
    pooled_y = np.concatenate([csac[d][0] == "covid" for d in names])
    n = len(next(iter(csac.values()))[1])
    pairs = []
    for i in range(n):
        row = {"pair": i}
        for arch, res in (("csac", csac), ("resnet", resnet)):
            for d in names:
                row[f"{arch}_auc_{os.path.basename(d)}"] = delong(res[d][0] == "covid", res[d][1][i])[0]
            row[f"{arch}_auc_pooled"] = delong(pooled_y, np.concatenate([res[d][1][i] for d in names]))[0]
        diff, lo, hi, p = delong_paired(pooled_y, np.concatenate([csac[d][1][i] for d in names]),
                                        np.concatenate([resnet[d][1][i] for d in names]))
        row.update(diff_pooled=diff, diff_lo=lo, diff_hi=hi, diff_p=p)
        pairs.append(row)
    mean, lo, hi = t_interval([r["diff_pooled"] for r in pairs])
    return {"pairs": pairs, "mean_diff_pooled": mean, "mean_diff_lo": lo, "mean_diff_hi": hi,
            "csac_ahead": bool(len(pairs) >= 2 and lo > 0)}


def report_md(res, names):
    sets = [os.path.basename(d) for d in names]
    head = "| pair | " + " | ".join(f"CSAC {s}" for s in sets) + " | CSAC pooled | " + \
        " | ".join(f"ResNet {s}" for s in sets) + " | ResNet pooled | CSAC - ResNet pooled (95% CI, p) |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in res["pairs"]:
        cells = [str(r["pair"])] + [f"{r[f'csac_auc_{s}']:.4f}" for s in sets] + [f"{r['csac_auc_pooled']:.4f}"]
        cells += [f"{r[f'resnet_auc_{s}']:.4f}" for s in sets] + [f"{r['resnet_auc_pooled']:.4f}"]
        cells.append(f"{r['diff_pooled']:+.4f} ({r['diff_lo']:+.4f} to {r['diff_hi']:+.4f}, p {r['diff_p']:.2g})")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"Mean pooled difference over {len(res['pairs'])} pairs: {res['mean_diff_pooled']:+.4f} "
              f"(95% t-interval {res['mean_diff_lo']:+.4f} to {res['mean_diff_hi']:+.4f}): CSAC-Net ahead "
              f"{'shown' if res['csac_ahead'] else 'not shown'}."]
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--csac", required=True, nargs="+", help="stage-3 runs, in pair order")
    ap.add_argument("--resnet", required=True, nargs="+", help="stage-3 runs, in pair order")
    ap.add_argument("--test", required=True, nargs="+", help="generated test sets")
    ap.add_argument("--cache", required=True, help="a folder that keeps the frozen maps")
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)
    if len(a.csac) != len(a.resnet):
        ap.error(f"{len(a.csac)} CSAC-Net runs but {len(a.resnet)} ResNet runs: they are compared in pairs")
    torch.set_num_threads(a.threads)
    os.makedirs(a.cache, exist_ok=True)
    os.makedirs(a.out, exist_ok=True)
    csac = logits("csac", a.csac, a.test, a.cache, a.threads)
    resnet = logits("resnet", a.resnet, a.test, a.cache, a.threads)
    for d in a.test:
        if not np.array_equal(csac[d][0], resnet[d][0]):
            sys.exit(f"{d}: the two networks' labels differ")
        with open(os.path.join(d, "manifest.csv")) as fh:
            files = [r["file"] for r in csv.DictReader(fh) if r["tensor"]]
        with open(os.path.join(a.out, f"scores_{os.path.basename(d)}.csv"), "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["file", "label"] + [f"csac_{i}" for i in range(len(a.csac))] +
                       [f"resnet_{i}" for i in range(len(a.resnet))])
            for j, f in enumerate(files):
                w.writerow([f, csac[d][0][j]] + [f"{s[j]:.9g}" for s in csac[d][1] + resnet[d][1]])
    res = study(csac, resnet, a.test)
    res["runs"] = {"csac": a.csac, "resnet": a.resnet, "test": a.test}
    with open(os.path.join(a.out, "seed_study.json"), "w") as fh:
        json.dump(res, fh, indent=1)
    md = report_md(res, a.test)
    with open(os.path.join(a.out, "seed_study.md"), "w") as fh:
        fh.write(md)
    print(md, end="")


if __name__ == "__main__":
    main()
