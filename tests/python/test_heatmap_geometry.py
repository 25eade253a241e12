"""Proves the heatmap lands on the right place of the ORIGINAL scan, whatever
its header: a synthetic lesion at a known world position gives a heatmap
peak within 10 mm of it, with the same voxels stored LPS (qform), RAS (sform
only) and oblique (20 degrees about z, 10 about x), for the default map (the
lesion head on stage2), the stage2.pool activation and a Grad-CAM
(subA.pool1), each mapped back by csac_heatmap_resample. The network is a
hand-built "bright spot in air" detector, so that the test checks the
geometry, not the training: stem channel 0 = relu(x - t) with t at -200 HU,
carried unchanged through stage1 and stage2 (zero residual branches, identity
projection) to the lesion head, and through subA (centre taps) to one merge
channel and the logit. It checks grid placement, cell-centre
mapping, the inverse preprocessing transform and the three header
conventions, and fails on any flip, swap or offset of an axis."""
import ctypes as C
import math
import os
import sys
import tempfile
import unittest

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "train"))
import csac as csac_py  # noqa: E402
from csacnet import CSACNet3D, fold_bn  # noqa: E402
from evaluate import Core  # noqa: E402
from export import save_safetensors  # noqa: E402
from synth import niftiio  # noqa: E402

T_HU = -200.0  # detector threshold: the wall (-450) stays below, the lesion (0 HU) above
SHAPE = (200, 200, 70)  # i, j, k
SPACING = (1.6, 1.6, 5.0)
LESION_IJK = (131.0, 72.0, 41.0)  # off-centre on every axis: a flip or swap moves it > 10 mm
LESION_R_MM = 12.0


def detector_weights(path):
    sd = {k: torch.zeros_like(v) for k, v in fold_bn(CSACNet3D()).state_dict().items()}
    sd["stem.weight"][0, 0, 1, 1, 1] = 1.0
    sd["stem.bias"][0] = -(T_HU + 1000.0) / 1400.0  # the model's HU window -1000..400 -> 0..1
    for name in ("subA.conv1", "subA.conv2", "subA.conv3"):
        sd[name + ".weight"][0, 0, 1, 1, 1] = 1.0
    sd["stage2.0.proj.weight"][0, 0, 0, 0, 0] = 1.0
    sd["lesion.weight"][0, 0, 0, 0, 0] = 20.0  # sigmoid(20 s - 1): 0.27 in air, ~0.87 on the lesion
    sd["lesion.bias"][0] = -1.0
    sd["subA.conv4.weight"][0, 0, 0, 0, 0] = 1.0
    sd["head.fc1.weight"][0, 128] = 1.0  # merge = stage4 (128) | subA (32) | subB | subC
    sd["head.fc2.weight"][0, 0] = 1.0
    sd["head.fc3.weight"][0, 0] = 1.0
    save_safetensors(sd, path)


def phantom():
    """HU[i, j, k]: air outside, a -450 HU wall (an enclosing 'body'), -850 HU inside (found as
    the lungs), a 0 HU sphere (the lesion). Spheres and rings in mm on the voxel grid."""
    i, j, k = np.meshgrid(*[np.arange(n) * s for n, s in zip(SHAPE, SPACING)], indexing="ij")
    ci, cj = (SHAPE[0] - 1) * SPACING[0] / 2, (SHAPE[1] - 1) * SPACING[1] / 2
    r = np.hypot(i - ci, (j - cj) * 1.3)
    hu = np.full(SHAPE, -1000.0)
    hu[r < 150] = -450.0
    hu[r < 135] = -850.0
    li, lj, lk = (c * s for c, s in zip(LESION_IJK, SPACING))
    hu[np.sqrt((i - li) ** 2 + (j - lj) ** 2 + (k - lk) ** 2) < LESION_R_MM] = 0.0
    return hu.astype(np.int16)


def affines():
    d = np.diag(list(SPACING) + [1.0])
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ d
    lps[:3, 3] = [150.0, 120.0, -170.0]
    ras = d.copy()
    ras[:3, 3] = [-160.0, -140.0, -200.0]
    a, b = math.radians(20), math.radians(10)
    rz = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, math.cos(b), -math.sin(b)], [0, math.sin(b), math.cos(b)]])
    obl = np.eye(4)
    obl[:3, :3] = rz @ rx @ np.diag(SPACING)
    obl[:3, 3] = [-130.0, -180.0, -160.0]
    # (name, affine, qform_code, sform_code): LPS as qform, RAS as sform only, oblique as both
    return [("LPS", lps, 1, 0), ("RAS", ras, 0, 1), ("oblique", obl, 1, 1)]


class HeatmapGeometry(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.weights = os.path.join(cls.tmp.name, "detector.safetensors")
        detector_weights(cls.weights)
        cls.core = Core(cls.weights, n_threads=2)
        lib = cls.core.lib
        lib.csac_heatmap_resample.argtypes = [C.c_void_p, C.c_void_p, C.POINTER(csac_py._Grid),
                                              C.POINTER(C.c_float), C.c_int64, C.c_int64, C.POINTER(C.c_float)]
        cls.hu = phantom()

    @classmethod
    def tearDownClass(cls):
        cls.core.close()
        cls.tmp.cleanup()

    def peak_world(self, path, layer=None, mode=None):
        """World position (mm) of the heatmap's peak on the original voxels: the centroid of the
        voxels at >= 95 % of the maximum (the cell map is piecewise trilinear, so its maximum is
        a plateau of equal cells, not one voxel)."""
        core, lib = self.core, self.core.lib
        with core.opened(path) as (vol, x, g):
            p, logit, _ = core.forward(x)
            self.assertGreater(logit, 0, "the detector must see the lesion")
            m = core.heatmap(layer, mode)  # layer None: the default pair
            out = np.zeros(SHAPE[::-1], np.float32)  # [k, j, i]
            st = lib.csac_heatmap_resample(core.ctx, vol, C.byref(g), m.ctypes.data_as(C.POINTER(C.c_float)),
                                           0, SHAPE[2], out.ctypes.data_as(C.POINTER(C.c_float)))
            self.assertEqual(st, 0, lib.csac_last_error(core.ctx))
            info = core._info(vol)
        self.assertGreater(float(out.max()), 0.8 if layer is None else 0.99999)
        k, j, i = np.nonzero(out >= 0.95 * out.max())
        ijk = np.array([i.mean(), j.mean(), k.mean(), 1.0])
        return (info["vox2world"] @ ijk)[:3], len(i)

    def test_peak_within_10mm_of_the_lesion_for_LPS_RAS_and_oblique_headers(self):
        dists = {}
        for name, aff, qc, sc in affines():
            path = os.path.join(self.tmp.name, f"phantom_{name}.nii.gz")
            niftiio.write(path, self.hu.transpose(2, 1, 0), aff, qform_code=qc, sform_code=sc)
            lesion = (aff @ np.array(list(LESION_IJK) + [1.0]))[:3]
            for layer, mode in ((None, None), ("stage2.pool", 1), ("subA.pool1", 0)):
                with self.subTest(header=name, layer=layer or "default"):
                    peak, n = self.peak_world(path, layer, mode)
                    dist = float(np.linalg.norm(peak - lesion))
                    dists[f"{name}/{layer or 'default'}"] = round(dist, 2)
                    self.assertLess(dist, 10.0, f"{name} {layer or 'default'}: peak {peak.round(1)} vs lesion "
                                                f"{lesion.round(1)} mm ({n} voxels at the maximum)")
        print(f"\npeak to lesion centre, mm: {dists}", file=sys.stderr)

    def test_a_mirrored_lesion_moves_the_peak(self):
        # guards the test itself: with the lesion mirrored left-right the peak must follow it
        name, aff, qc, sc = affines()[1]
        path = os.path.join(self.tmp.name, "phantom_mirrored.nii.gz")
        niftiio.write(path, self.hu[::-1].transpose(2, 1, 0), aff, qform_code=qc, sform_code=sc)
        mirrored = (aff @ np.array([SHAPE[0] - 1 - LESION_IJK[0], LESION_IJK[1], LESION_IJK[2], 1.0]))[:3]
        original = (aff @ np.array(list(LESION_IJK) + [1.0]))[:3]
        peak, _ = self.peak_world(path)
        self.assertLess(float(np.linalg.norm(peak - mirrored)), 10.0)
        self.assertGreater(float(np.linalg.norm(peak - original)), 50.0)


if __name__ == "__main__":
    unittest.main()
