"""train/crops.py: the crop pools (which crops count as lesion / lung / CAP) and the window sums
they rest on, without training anything."""
import os
import sys
import unittest

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "train"))
import crops  # noqa: E402


class CropPools(unittest.TestCase):
    def test_window_sums_match_a_direct_sum(self):
        a = np.random.default_rng(0).random((2, 16, 16, 16))
        w = crops.window_sums(a)
        self.assertEqual(w.shape, (2, 13, 13, 13))
        for n, z, y, x in ((0, 0, 0, 0), (1, 12, 3, 7), (0, 5, 12, 12)):
            self.assertAlmostEqual(w[n, z, y, x], a[n, z:z + 4, y:y + 4, x:x + 4].sum(), places=9)

    def test_pools_follow_the_lesion_and_lung_cells(self):
        les = np.zeros((3, 2, 16, 16, 16), np.float32)
        les[0, 0, 8, 8, 8] = crops.POS_GGO          # covid: enough ground glass in one cell
        les[1, 1, 2, 2, 2] = crops.NEG_LESION       # cap: consolidation
        lung = np.zeros((3, 16, 16, 16), np.float32)
        lung[:, 4:12, 4:12, 4:12] = 1.0
        p = crops.crop_pools(["covid", "cap", "normal"], les, lung)
        # positives: exactly the windows of case 0 that contain cell (8, 8, 8)
        self.assertEqual(len(p["pos"]), 4 ** 3)
        self.assertTrue(np.all(p["pos"][:, 0] == 0) and np.all((p["pos"][:, 1:] >= 5) & (p["pos"][:, 1:] <= 8)))
        self.assertTrue(np.all(p["cap_lesion"][:, 0] == 1) and len(p["cap_lesion"]) == 3 ** 3)
        self.assertTrue(np.all(p["normal_lung"][:, 0] == 2))
        # COVID-19 lung without lesions never holds the lesion cell; no positive is a negative
        self.assertFalse(any((c[0] == 0) and all(5 <= v <= 8 for v in c[1:]) for c in p["covid_clean"]))
        pos = {tuple(c) for c in p["pos"]}
        self.assertFalse(pos & {tuple(c) for c in p["any_neg"]})


class ResNetThroughTheCore(unittest.TestCase):
    def test_zero_subnets_give_the_resnets_pooled_features(self):
        """crops.py head computes the plain ResNet's features with the C core (CSAC-Net's table,
        subnets at zero): they must be the ResNet's own (PyTorch, eval)."""
        try:
            import csac
            csac._ctx()
            from evaluate import Core
        except Exception as e:  # noqa: BLE001
            self.skipTest("libcsac.so not available: %s" % e)
        import tempfile
        import torch
        import export
        import train
        torch.manual_seed(0)
        m = train.make_model("resnet")
        for b in m.modules():  # non-trivial residual branches (zero-init BN would hide them)
            if isinstance(b, torch.nn.BatchNorm3d):
                torch.nn.init.uniform_(b.weight, 0.5, 1.5)
                torch.nn.init.uniform_(b.bias, -0.1, 0.1)
        m.eval()
        x = np.random.default_rng(1).random((64, 128, 128), dtype=np.float32)
        taps = {}
        with torch.no_grad():
            m(torch.from_numpy(x)[None, None], taps)
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "r.safetensors")
            export.save_safetensors(crops.core_state_dict(m, "resnet"), path)
            f = crops.merge_features(Core(path, n_threads=1), x)
        ref = taps["features"][0].numpy()
        np.testing.assert_allclose(f[:128], ref, rtol=1e-4, atol=1e-5 * float(np.abs(ref).max()))
        self.assertEqual(float(np.abs(f[128:]).max()), 0.0)


if __name__ == "__main__":
    unittest.main()
