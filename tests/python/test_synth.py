"""Fast tests of the synthetic data generator (train/synth).

    /usr/bin/python3 -m unittest tests/python/test_synth.py      (or: /usr/bin/python3 tests/python/test_synth.py)
"""
import os
import sys
import tempfile
import unittest

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "train"))

from synth import generate, insert_real, leakage, lesions, niftiio, phantom, render  # noqa: E402

SEED = 11


def _case(index, **kw):
    return generate.make_case(SEED, index, "train", **kw)


class TestSynth(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # indices 0, 1, 2 -> covid, cap, normal
        cls.cases = [_case(i) for i in range(3)]

    def test_labels_cycle(self):
        self.assertEqual([c["label"] for c in self.cases], ["covid", "cap", "normal"])

    def test_determinism(self):
        again = _case(0)
        a = self.cases[0]
        self.assertEqual(a["vol"].dtype, again["vol"].dtype)
        self.assertTrue(np.array_equal(a["vol"], again["vol"]))
        self.assertTrue(np.array_equal(a["lab"], again["lab"]))
        self.assertEqual(a["p"], again["p"])
        other = generate.make_case(SEED + 1, 0, "train")
        self.assertFalse(a["vol"].shape == other["vol"].shape and np.array_equal(a["vol"], other["vol"]))

    def test_masks_and_fractions(self):
        cov, cap, nor = self.cases
        self.assertIsNotNone(cov["lab"])
        self.assertEqual(cov["lab"].shape, cov["vol"].shape)
        self.assertTrue((cov["lab"] > 0).any())
        self.assertTrue(0.004 <= cov["lesion_fraction"] <= 0.10, cov["lesion_fraction"])
        self.assertTrue((cap["lab"] == 2).any())
        self.assertIsNone(nor["lab"])
        self.assertEqual(nor["lesion_fraction"], 0.0)
        self.assertEqual(int((nor["lab_int"] > 0).sum()), 0)
        # lesion labels only inside the lungs
        for c in (cov, cap):
            obj = c["obj"]
            self.assertEqual(int(((c["lab_int"] > 0) & (obj.lung == 0)).sum()), 0)

    def test_hu_ranges(self):
        cov, cap, nor = self.cases
        obj = nor["obj"]
        hu, lung = obj.hu, obj.lung > 0
        par = hu[lung & (obj.vessel < 0.05) & ~obj.airway]
        self.assertTrue(-920 < np.median(par) < -760, np.median(par))
        self.assertTrue(hu.max() > 500)                              # cortical bone
        self.assertTrue(np.all(hu >= -1001))
        body_fat = hu[(hu > -120) & (hu < -80)]
        self.assertGreater(body_fat.size, 1000)                      # subcutaneous / mediastinal fat
        ggo = cov["obj"].hu[cov["lab_int"] == 1]
        self.assertTrue(-760 < np.median(ggo) < -300, np.median(ggo))
        cons = cap["obj"].hu[cap["lab_int"] == 2]
        self.assertTrue(-400 < np.median(cons) < 80, np.median(cons))
        # native volume: stored type and scaling of the header variant, HU in a CT range
        for c in self.cases:
            dt, slope, inter = render.stored_type(c["p"])
            self.assertEqual(c["vol"].dtype, np.dtype(dt))
            v = render.to_hu(c["vol"][::4, ::8, ::8], c["scale"])
            self.assertTrue(v.min() >= -3100 and v.max() < 3000)

    def test_param_distribution_label_free(self):
        # global parameters are drawn from an rng stream that does not depend on the label
        a = phantom.draw_params(generate.case_rngs(3, 7, "train")[0])
        b = phantom.draw_params(generate.case_rngs(3, 7, "train")[0])
        self.assertEqual(a, b)
        s = phantom.draw_params(generate.case_rngs(3, 7, "shift")[0], "shift")
        self.assertEqual(s["profile"], "shift")

    def test_nifti_roundtrip_orientations(self):
        c = self.cases[2]
        vol = c["vol"][:6]
        with tempfile.TemporaryDirectory() as d:
            canon = None
            for hv in ("int16_inter1024_LPS", "int16_inter1024_LAS", "int16_RAS", "float32_LPS", "float32_RAS"):
                p = dict(c["p"], header=hv)
                hu = render.to_hu(vol, c["scale"])
                dt, slope, inter = render.stored_type(p)
                st = hu.astype(np.float32) if dt == np.float32 else np.rint(hu - inter).astype(np.int16)
                arr, aff, qc, sc = render.orient(st, p, 0.7, 2.5, (-179.0, -150.0, -300.0))
                path = os.path.join(d, hv + ".nii" + (".gz" if "LAS" in hv else ""))
                niftiio.write(path, arr, aff, slope, inter, qform_code=qc, sform_code=sc)
                im = niftiio.read(path)
                can, sp, dz, lps0 = insert_real.canonical(im)
                self.assertAlmostEqual(sp, 0.7, places=4)
                self.assertAlmostEqual(dz, 2.5, places=4)
                np.testing.assert_allclose(lps0, (-179.0, -150.0, -300.0), atol=1e-3)
                if canon is None:
                    canon = can
                np.testing.assert_allclose(can, canon, atol=1.01)
                np.testing.assert_allclose(can, hu, atol=0.51)

    def test_tensor_binding_if_built(self):
        try:
            import csac  # noqa: F401
            csac._ctx()
        except Exception as e:  # noqa: BLE001
            self.skipTest("train/csac.py / libcsac.so not available: %s" % e)
        c = self.cases[2]
        with tempfile.TemporaryDirectory() as d:
            outs = []
            for hv in ("int16_inter1024_LPS", "float32_RAS"):
                p = dict(c["p"], header=hv)
                hu = render.to_hu(c["vol"], c["scale"])
                dt, slope, inter = render.stored_type(p)
                st = hu.astype(np.float32) if dt == np.float32 else np.rint(hu - inter).astype(np.int16)
                arr, aff, qc, sc = render.orient(st, p, c["geom"]["spacing"], c["geom"]["thickness"],
                                                 (-180.0, -160.0, -250.0))
                path = os.path.join(d, hv + ".nii")
                niftiio.write(path, arr, aff, slope, inter, qform_code=qc, sform_code=sc)
                outs.append(csac.preprocess_file(path))
            self.assertEqual(outs[0].shape, (64, 128, 128))
            # a wrong flip gives a mean difference of ~0.1-0.3; the C centring may differ by a
            # fraction of a source voxel between storage orientations, hence the loose bound
            self.assertLess(float(np.abs(outs[0] - outs[1]).mean()), 0.03)

    def test_lesion_targets_same_with_or_without_the_volume(self):
        """--keep-volumes none writes the mask on the internal grid (other affine); the lesion
        targets for --aux-seg must not depend on that: both go through the scan's own grid."""
        try:
            import csac
            csac._ctx()
        except Exception as e:  # noqa: BLE001
            self.skipTest("train/csac.py / libcsac.so not available: %s" % e)
        with tempfile.TemporaryDirectory() as d:
            t = {}
            for keep in (True, False):
                out = os.path.join(d, str(keep))
                os.makedirs(os.path.join(out, "tensors"))
                row = generate.run_one((SEED, 0, "train", out, 0.0, keep, "yes", False))[0]
                self.assertEqual(row["label"], "covid")
                t[keep] = np.load(os.path.join(out, row["lesion_grid"])).astype(np.float64) / 255
        self.assertEqual(t[True].shape, (2, 16, 16, 16))
        n = t[True].sum() * 256  # grid voxels
        self.assertGreater(n, 300)  # a COVID-19 case has >= 0.5 % of the lung as lesion
        self.assertLess(abs(t[False].sum() * 256 - n) / n, 0.2)
        self.assertGreater(np.corrcoef(t[True].sum(0).ravel(), t[False].sum(0).ravel())[0, 1], 0.97)

    def test_confounders_same_for_all_labels(self):
        # the confounder stream is separate from the label: same draws for every label
        r1 = generate.case_rngs(5, 9, "train")[1]
        r2 = generate.case_rngs(5, 9, "train")[1]
        self.assertEqual(r1.random(), r2.random())

    def test_auc(self):
        self.assertAlmostEqual(leakage.auc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]), 1.0)
        self.assertAlmostEqual(leakage.auc([0, 1, 0, 1], [1, 1, 1, 1]), 0.5)

    def test_lesion_geometry_helpers(self):
        obj = self.cases[0]["obj"]
        geo = lesions.LungGeom(obj)
        self.assertGreater(geo.nvox, 1000)
        lung_l = obj.lung_ml if hasattr(obj, "lung_ml") else geo.nvox * geo.voxml
        self.assertTrue(1500 < lung_l < 9000, lung_l)


if __name__ == "__main__":
    unittest.main()
