"""train/size_probe.py (a diagnostic, not the product): zoom_to brings a tensor's lung volume to the
reference, within the 0.8-1.25 clip, about the lungs' centre; tune.INPUT_TRANSFORM reaches the
frozen maps, uncached; and a ResNet state_dict run by the C core (resnet_core_weights) gives the
ResNet's own logit."""
import os
import sys
import tempfile
import unittest

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "train"))
import size_probe  # noqa: E402
import tune  # noqa: E402
from heatmap_study import lung_on_grid  # noqa: E402


def phantom(r=(10, 22, 16)):
    """Soft tissue (0.7, about -20 HU) with two ellipsoidal air-filled lungs (0.1, about -860 HU)."""
    z, y, x = np.mgrid[:64, :128, :128].astype(np.float32)
    v = np.full((64, 128, 128), 0.7, np.float32)
    for cx in (40, 88):
        v[((z - 32) / r[0]) ** 2 + ((y - 64) / r[1]) ** 2 + ((x - cx) / r[2]) ** 2 < 1] = 0.1
    return v


class ZoomTo(unittest.TestCase):
    def test_volume_goes_to_the_reference(self):
        x = phantom()
        ml = lung_on_grid(x).sum() * size_probe.VOXEL_ML
        for want in (0.9 * ml, 1.3 * ml):  # inside the clip: shrink and enlarge
            z, before, s = size_probe.zoom_to(x, want)
            self.assertAlmostEqual(before, ml, delta=1e-6 * ml)
            self.assertAlmostEqual(s, (want / ml) ** (1 / 3), places=6)
            got = lung_on_grid(z).sum() * size_probe.VOXEL_ML
            self.assertAlmostEqual(got / want, 1.0, delta=0.04)

    def test_clipped_and_centred(self):
        x = phantom()
        ml = lung_on_grid(x).sum() * size_probe.VOXEL_ML
        z, _, s = size_probe.zoom_to(x, 10 * ml)
        self.assertEqual(s, 1.25)
        self.assertAlmostEqual(lung_on_grid(z).sum() * size_probe.VOXEL_ML / (1.25 ** 3 * ml), 1.0, delta=0.04)
        # the lungs stay centred where they were (the phantom is symmetric about (32, 64, 64))
        c = np.array(np.nonzero(lung_on_grid(z))).mean(1)
        np.testing.assert_allclose(c, [32, 64, 64], atol=0.6)

    def test_transform_reaches_the_frozen_maps(self):
        seen = []

        class FakeCore:
            def forward(self, x):
                seen.append(float(x.mean()))

            def layer_output(self, name):
                return np.zeros((64, 8, 8, 8), np.float32)

        with tempfile.TemporaryDirectory() as d:
            os.makedirs(os.path.join(d, "tensors"))
            np.save(os.path.join(d, "tensors", "c0.npy"), phantom())
            with open(os.path.join(d, "manifest.csv"), "w") as f:
                f.write("file,label,tensor\nc0.nii,covid,tensors/c0.npy\n")
            try:
                tune.INPUT_TRANSFORM = lambda x: x * 0 + 0.25
                tune.cached_features(FakeCore(), "resnet", "unused.safetensors", d, d)
            finally:
                tune.INPUT_TRANSFORM = None
            self.assertEqual(seen, [0.25])
            self.assertFalse(any(n.endswith(".npz") for n in os.listdir(d)))  # not cached


class ResNetInTheCore(unittest.TestCase):
    def test_core_gives_the_resnets_logit(self):
        try:
            import csac
            csac._ctx()
        except Exception as e:  # noqa: BLE001
            raise unittest.SkipTest("libcsac.so not available: %s" % e)
        import train
        from evaluate import Core
        from test_tune import random_bn
        torch.manual_seed(0)
        m = random_bn(train.make_model("resnet"))
        for fc in (m.fc1, m.fc2, m.fc3):  # a head that is not near zero
            fc.weight.data.normal_(0, 0.3)
        x = np.random.default_rng(3).random((64, 128, 128), dtype=np.float32)
        with tempfile.TemporaryDirectory() as d:
            pt = os.path.join(d, "r.pt")
            torch.save({k: v.half() for k, v in m.state_dict().items()}, pt)
            m.load_state_dict({k: v.float() for k, v in torch.load(pt).items()})  # the same F16 weights
            core = Core(size_probe.resnet_core_weights(pt, os.path.join(d, "r.safetensors")), 2)
            _, logit, _ = core.forward(x)
            core.close()
        with torch.no_grad():
            want = float(m.eval()(torch.from_numpy(x)[None, None])[0, 0])
        self.assertGreater(abs(want), 0.05)
        self.assertAlmostEqual(logit, want, delta=1e-3 * max(1.0, abs(want)))


if __name__ == "__main__":
    unittest.main()
