"""compare_auc.py - is one method's AUC ahead of another's on the same test cases?

    /usr/bin/python3 train/compare_auc.py docs/eval/scores.csv [more scores.csv ...]

Reads evaluate.py's scores.csv (file, label, one column per method) and prints, for every pair of
methods, the paired AUC difference with its DeLong 95% CI and p (evaluate.delong_paired): the
unpaired CIs of two AUCs on the same cases overlap far more than their difference is uncertain.
With several files it also compares on all their cases pooled (the same weights on every set).
"""
import csv
import itertools
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from evaluate import delong_paired  # noqa: E402


def compare(*paths):
    """[(method a, method b, AUC a - AUC b, CI low, CI high, p)] on the cases of all paths together."""
    rows = [r for path in paths for r in csv.DictReader(open(path))]
    methods = [k for k in rows[0] if k not in ("file", "label")]
    y = np.array([r["label"] == "covid" for r in rows])
    out = []
    for a, b in itertools.combinations(methods, 2):
        d, lo, hi, p = delong_paired(y, [float(r[a]) for r in rows], [float(r[b]) for r in rows])
        out.append((a, b, d, lo, hi, p))
    return out


def main(argv=None):
    paths = (argv if argv is not None else sys.argv[1:])
    if not paths:
        sys.exit(__doc__)
    for name, group in [(p, [p]) for p in paths] + ([("all pooled", paths)] if len(paths) > 1 else []):
        print(f"{name}:")
        for a, b, d, lo, hi, p in compare(*group):
            print(f"  {a} - {b}: {d:+.4f} (95% CI {lo:+.4f} to {hi:+.4f}), p = {p:.3g}")


if __name__ == "__main__":
    main()
