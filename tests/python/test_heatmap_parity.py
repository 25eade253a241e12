"""Proves the C core's Grad-CAM is the gradient PyTorch's autograd computes:
for the deterministic random model (seed 1, generated identically in C and
Python) the C heatmap at each subnet max-pool and at the merge map equals
ReLU(sum_c mean(d logit / d A_c) * A_c) from torch.autograd, upsampled with
the same trilinear cell-centre mapping and max-normalised (within 1e-4); the
ACTIVATION mode equals the channel-mean map; the LESION map equals the sigmoid
of the lesion head on stage2, upsampled and NOT normalised. Also: 1 and 2
threads agree."""
import ctypes as C
import os
import sys
import unittest

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "train"))
from csacnet import folded_random_model, random_input  # noqa: E402
import csac as csac_py  # noqa: E402

GRID = (64, 128, 128)
# cell o of the layer lies at model-input coordinate a*o + b (d, h, w)
AXES = {"subA.pool1": ((4, 8, 8), (1.5, 3, 3)), "subA.pool2": ((16, 32, 32), (7.5, 15, 15)),
        "subB.pool1": ((8, 16, 16), (3.5, 7, 7)), "subB.pool2": ((16, 32, 32), (7.5, 15, 15)),
        "subC.pool1": ((16, 32, 32), (7.5, 15, 15)), "merge": ((16, 32, 32), (3.5, 7, 7)),
        "lesion": ((4, 8, 8), (1.5, 3, 3))}
LESION = 2


def upsample(cam, a, b):
    out = cam
    for ax in range(3):
        n = cam.shape[ax]
        q = np.clip((np.arange(GRID[ax]) - b[ax]) / a[ax], 0, n - 1)
        i0 = np.floor(q).astype(int)
        i1 = np.minimum(i0 + 1, n - 1)
        f = (q - i0).reshape([-1 if k == ax else 1 for k in range(3)])
        out = np.take(out, i0, axis=ax) * (1 - f) + np.take(out, i1, axis=ax) * f
    return out


class HeatmapParity(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        torch.set_num_threads(2)
        m = folded_random_model(1)
        x = random_input(1)
        taps = {}
        logit = m(x, taps)
        names = [n for n in AXES if n != "lesion"]
        for n in names:
            taps[n].retain_grad()
        logit.sum().backward()
        cls.ref = {}
        for n in names:
            A = taps[n][0].detach().numpy().astype(np.float64)
            g = taps[n].grad[0].numpy().astype(np.float64)
            w = g.mean(axis=(1, 2, 3))
            cls.ref[(n, 0)] = np.maximum((w[:, None, None, None] * A).sum(0), 0)
            cls.ref[(n, 1)] = A.mean(0)
        cls.ref[("lesion", LESION)] = torch.sigmoid(taps["lesion"][0, 0].detach().double()).numpy()

    def c_heatmaps(self, threads):
        cs = csac_py.Csac(n_threads=threads)
        lib = cs.lib
        lib.csac_model_init_random.argtypes = [C.c_void_p, C.c_uint32]
        lib.csac_forward.argtypes = [C.c_void_p, C.c_void_p]
        lib.csac_heatmap.argtypes = [C.c_void_p, C.c_char_p, C.c_int, C.POINTER(C.c_float)]
        self.assertEqual(lib.csac_model_init_random(cs.ctx, 1), 0)
        res = C.create_string_buffer(4096)
        self.assertEqual(lib.csac_forward(cs.ctx, res), 0)
        out = {}
        for (n, mode) in self.ref:
            h = np.empty(GRID, np.float32)
            st = lib.csac_heatmap(cs.ctx, n.encode(), mode, h.ctypes.data_as(C.POINTER(C.c_float)))
            self.assertEqual(st, 0, lib.csac_last_error(cs.ctx).decode())
            out[(n, mode)] = h
        cs.close()
        return out

    def test_gradcam_and_activation_match_autograd(self):
        got = self.c_heatmaps(2)
        for (n, mode), cam in self.ref.items():
            want = upsample(cam, *AXES[n])
            if mode != LESION and want.max() > 0:
                want = want / want.max()
            err = np.abs(got[(n, mode)] - want).max()
            self.assertLess(err, 1e-4, f"{n} mode {mode}: max abs error {err}")
            self.assertTrue(np.isfinite(got[(n, mode)]).all())

    def test_threads_identical(self):
        a, b = self.c_heatmaps(1), self.c_heatmaps(2)
        for k in a:
            self.assertTrue(np.array_equal(a[k], b[k]), k)


if __name__ == "__main__":
    unittest.main()
