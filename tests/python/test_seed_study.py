"""train/seed_study.py: the t-interval over seeds is the textbook one, identical networks give a
difference of 0 and no claim, and a network ahead on every pair (by more than the spread) is
claimed ahead, pooled over the sets."""
import os
import sys
import unittest

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "train"))
import seed_study  # noqa: E402


def fake(n_runs, noise, seed):
    """{set: (labels, [logits per run])}: two sets of 60 cases, logit = 2 * label + noise."""
    rng = np.random.default_rng(seed)
    out = {}
    for d in ("a", "b"):
        lab = np.array(["covid", "normal", "cap"] * 20)
        y = (lab == "covid").astype(float)
        out[d] = (lab, [2 * y + rng.normal(0, noise, y.size) for _ in range(n_runs)])
    return out


class SeedStudy(unittest.TestCase):
    def test_t_interval(self):
        m, lo, hi = seed_study.t_interval([1.0, 2.0, 3.0])
        self.assertAlmostEqual(m, 2.0)
        self.assertAlmostEqual(hi - m, 4.302653 / np.sqrt(3), places=5)  # t(0.975, 2 df)
        self.assertAlmostEqual(m - lo, hi - m)
        self.assertTrue(np.isnan(seed_study.t_interval([1.0])[1]))

    def test_identical_networks_are_not_ahead(self):
        a = fake(3, 1.5, 0)
        res = seed_study.study(a, a, ["a", "b"])
        self.assertEqual(len(res["pairs"]), 3)
        self.assertEqual(res["mean_diff_pooled"], 0.0)
        self.assertFalse(res["csac_ahead"])

    def test_better_network_on_every_pair_is_ahead(self):
        res = seed_study.study(fake(3, 0.8, 1), fake(3, 2.0, 2), ["a", "b"])
        self.assertTrue(all(r["diff_pooled"] > 0 for r in res["pairs"]))
        self.assertTrue(res["csac_ahead"])
        pooled = res["pairs"][0]
        self.assertGreater(pooled["csac_auc_pooled"], pooled["resnet_auc_pooled"])
        self.assertIn("csac_auc_a", pooled)
        md = seed_study.report_md(res, ["a", "b"])
        self.assertIn("CSAC-Net ahead shown", md)


if __name__ == "__main__":
    unittest.main()
