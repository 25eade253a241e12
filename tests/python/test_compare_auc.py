"""train/evaluate.delong_paired and train/compare_auc.py: the paired AUC difference of two methods on
the same cases. Proves: identical scores differ by exactly 0; the difference is each AUC's own
(evaluate.delong) difference; its standard error matches a paired bootstrap; correlated scores give
a narrower CI than the unpaired ones would; compare_auc reads evaluate's scores.csv, one file or
several pooled."""
import csv
import os
import sys
import tempfile
import unittest

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "train"))
import compare_auc  # noqa: E402
from evaluate import delong, delong_paired  # noqa: E402


def cases(seed=0, n=300):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3 == 0
    base = y * 1.5 + rng.normal(size=n)          # shared signal: the two methods are correlated
    return y, base + 0.5 * rng.normal(size=n), base + 0.8 * rng.normal(size=n)


class Paired(unittest.TestCase):
    def test_identical_scores(self):
        y, s1, _ = cases()
        d, lo, hi, p = delong_paired(y, s1, s1)
        self.assertEqual((d, lo, hi, p), (0.0, 0.0, 0.0, 1.0))

    def test_difference_and_bootstrap(self):
        y, s1, s2 = cases()
        d, lo, hi, p = delong_paired(y, s1, s2)
        self.assertAlmostEqual(d, delong(y, s1)[0] - delong(y, s2)[0], places=12)
        rng = np.random.default_rng(1)
        boot = []
        for _ in range(400):
            i = rng.integers(0, len(y), len(y))
            boot.append(delong(y[i], s1[i])[0] - delong(y[i], s2[i])[0])
        se = (hi - lo) / 2 / 1.959964
        self.assertAlmostEqual(se / np.std(boot), 1.0, delta=0.2)
        unpaired = ((delong(y, s1)[2] - delong(y, s1)[1]) ** 2 + (delong(y, s2)[2] - delong(y, s2)[1]) ** 2) ** 0.5
        self.assertLess(hi - lo, unpaired)
        self.assertGreater(d, 0)
        self.assertLess(p, 0.05)

    def test_reads_scores_csv(self):
        y, s1, s2 = cases()
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "scores.csv")
            with open(path, "w", newline="") as fh:
                w = csv.writer(fh)
                w.writerow(["file", "label", "A", "B"])
                for i in range(len(y)):
                    w.writerow([f"case_{i}.nii", "covid" if y[i] else "normal", s1[i], s2[i]])
            (a, b, diff, lo, hi, p), = compare_auc.compare(path)
            self.assertEqual((a, b), ("A", "B"))
            self.assertEqual((diff, lo, hi, p), delong_paired(y, s1, s2))
            # two files: their cases pooled
            (_, _, *pooled), = compare_auc.compare(path, path)
            self.assertEqual(tuple(pooled), delong_paired(np.tile(y, 2), np.tile(s1, 2), np.tile(s2, 2)))


if __name__ == "__main__":
    unittest.main()
