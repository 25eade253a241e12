"""train/tune.py: the frozen maps from the C core plus the trained tail in PyTorch are the whole
network (the logit of CSAC-Net and of the plain ResNet equals a full forward); the ResNet's
BN-free weights go back into a ResNet3D state_dict (evaluate.py --resnet) without changing it;
Platt scaling finds a known (a, b), and folding it into fc3 maps every logit to a * logit + b."""
import os
import sys
import tempfile
import unittest

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "train"))
import crops  # noqa: E402
import export  # noqa: E402
import train  # noqa: E402
import tune  # noqa: E402
from csacnet import fold_bn  # noqa: E402


def random_bn(m):
    """Non-trivial BN statistics (the zero-init of the last BN of a block would hide the branches)."""
    g = torch.Generator().manual_seed(0)
    for b in m.modules():
        if isinstance(b, torch.nn.BatchNorm3d):
            b.weight.data = 0.5 + torch.rand(b.weight.shape, generator=g)
            b.bias.data = 0.2 * torch.rand(b.bias.shape, generator=g) - 0.1
            b.running_mean = 0.1 * torch.rand(b.running_mean.shape, generator=g)
            b.running_var = 0.5 + torch.rand(b.running_var.shape, generator=g)
    return m.eval()


class Tune(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        try:
            import csac
            csac._ctx()
        except Exception as e:  # noqa: BLE001
            raise unittest.SkipTest("libcsac.so not available: %s" % e)
        cls.tmp = tempfile.TemporaryDirectory()
        x = np.random.default_rng(1).random((64, 128, 128), dtype=np.float32)
        os.makedirs(os.path.join(cls.tmp.name, "tensors"))
        np.save(os.path.join(cls.tmp.name, "tensors", "c0.npy"), x)
        with open(os.path.join(cls.tmp.name, "manifest.csv"), "w") as f:
            f.write("file,label,tensor\nc0.nii,covid,tensors/c0.npy\n")
        cls.x = torch.from_numpy(x)[None, None]

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def tail_vs_full(self, arch, folded, core_sd):
        from evaluate import Core
        path = os.path.join(self.tmp.name, arch + ".safetensors")
        export.save_safetensors(core_sd, path)
        core = Core(path, n_threads=2)
        feats, labels = tune.frozen_features(core, arch, self.tmp.name)
        core.close()
        self.assertEqual(list(labels), ["covid"])
        with torch.no_grad():
            full = float(folded(self.x)[0, 0])
            part = float(tune.tail(folded, arch, {k: torch.from_numpy(v.astype(np.float32)) for k, v in feats.items()})[0])
        # the frozen maps are stored as float16: agreement to ~1e-3 of the logit's scale
        self.assertAlmostEqual(part, full, delta=2e-3 * max(1.0, abs(full)))
        return full

    def test_csac_tail_on_the_frozen_maps_is_the_whole_network(self):
        torch.manual_seed(0)
        folded = fold_bn(random_bn(train.make_model("csac")))
        sd = {k: v.contiguous() for k, v in folded.state_dict().items()}
        self.tail_vs_full("csac", folded, sd)
        # the trained parameters are exactly the layers after the frozen maps
        trained = {k.split(".")[0] for k, _ in folded.named_parameters() if k.startswith(tune.TRAINED["csac"])}
        self.assertEqual(trained, {"stage4", "subB", "subC", "head"})

    def test_resnet_tail_and_unfold(self):
        torch.manual_seed(0)
        m = random_bn(train.make_model("resnet"))
        folded = fold_bn(m)
        back = tune.unfold(folded)
        with torch.no_grad():
            a, b = float(m(self.x)[0, 0]), float(back(self.x)[0, 0])
        self.assertAlmostEqual(a, b, delta=1e-4 * max(1.0, abs(a)))
        full = self.tail_vs_full("resnet", folded, crops.core_state_dict(back, "resnet"))
        self.assertAlmostEqual(full, a, delta=1e-4 * max(1.0, abs(a)))

    def test_augmented_copies(self):
        """--augment K: row i * (K + 1) is the case itself, the next K rows are the maps of
        train.augment's volumes drawn from the seed (the same seed: the same copies)."""
        from evaluate import Core
        path = os.path.join(self.tmp.name, "aug.safetensors")
        torch.manual_seed(0)
        m = fold_bn(random_bn(train.make_model("resnet")))
        export.save_safetensors(crops.core_state_dict(tune.unfold(m), "resnet"), path)
        core = Core(path, n_threads=2)
        plain, _ = tune.frozen_features(core, "resnet", self.tmp.name)
        aug, labels = tune.frozen_features(core, "resnet", self.tmp.name, augment=2, seed=5)
        again, _ = tune.frozen_features(core, "resnet", self.tmp.name, augment=2, seed=5)
        gen = torch.Generator().manual_seed(5)
        x1 = train.augment(self.x, gen)[0, 0].numpy()
        core.forward(np.ascontiguousarray(x1))
        want1 = core.layer_output("stage3").astype(np.float16)
        core.close()
        self.assertEqual(list(labels), ["covid"])
        self.assertEqual(aug["stage3"].shape, (3, 64, 8, 8, 8))
        np.testing.assert_array_equal(aug["stage3"][0], plain["stage3"][0])
        np.testing.assert_array_equal(aug["stage3"][1], want1)
        np.testing.assert_array_equal(aug["stage3"], again["stage3"])
        self.assertFalse(np.array_equal(aug["stage3"][1], aug["stage3"][2]))
        self.assertFalse(np.array_equal(aug["stage3"][0], aug["stage3"][1]))

    def _sets_and_head(self):
        """Training sets root (one covid case) and root/b (one normal), validation root/v, and a
        random ResNet head."""
        root = self.tmp.name
        y = np.random.default_rng(2).random((64, 128, 128), dtype=np.float32)
        for d, rows in (("b", [("c1", "normal")]), ("v", [("c0", "covid"), ("c1", "normal")])):
            os.makedirs(os.path.join(root, d, "tensors"), exist_ok=True)
            with open(os.path.join(root, d, "manifest.csv"), "w") as f:
                f.write("file,label,tensor\n" + "".join(f"{c}.nii,{lab},tensors/{c}.npy\n" for c, lab in rows))
            for c, _ in rows:
                np.save(os.path.join(root, d, "tensors", c + ".npy"), self.x[0, 0].numpy() if c == "c0" else y)
        torch.manual_seed(0)
        w = os.path.join(root, "r_head.pt")
        torch.save({k: v.half() for k, v in random_bn(train.make_model("resnet")).state_dict().items()}, w)
        return root, w

    def _main(self, *args):
        import contextlib
        import io
        import json
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            tune.main(["--arch", "resnet", "--epochs", "1", "--average", "0", "--threads", "2", *args])
        return [json.loads(line) for line in buf.getvalue().splitlines()]

    def test_main_takes_several_training_sets(self):
        """--train A B: the run takes the cases of both sets (one each here, with augmented copies),
        trains, and writes a ResNet state_dict that loads."""
        root, w = self._sets_and_head()
        out = os.path.join(root, "r_tuned.pt")
        first = self._main("--weights", w, "--train", root, os.path.join(root, "b"), "--val", os.path.join(root, "v"),
                           "--out", out, "--augment", "1")[0]
        self.assertEqual((first["train"], first["val"]), (2, 2))
        back = train.make_model("resnet")
        back.load_state_dict({k: v.float() for k, v in torch.load(out).items()})

    def test_augment_seed_keeps_the_copies(self):
        """--seed 3 --augment-seed 0 reuses the cached maps of seed 0's copies (only the training
        order and the copy each epoch sees change); --seed 3 alone draws other copies (a new cache
        file)."""
        root, w = self._sets_and_head()
        cache = os.path.join(root, "cache")
        common = ["--weights", w, "--train", root, "--val", os.path.join(root, "v"), "--augment", "2",
                  "--cache", cache, "--batch", "1"]
        self._main(*common, "--out", os.path.join(root, "s0.pt"))
        files = sorted(os.listdir(cache))
        self.assertEqual(len(files), 2)  # the training set with its copies, the validation set
        self._main(*common, "--seed", "3", "--augment-seed", "0", "--out", os.path.join(root, "s3.pt"))
        self.assertEqual(sorted(os.listdir(cache)), files)
        self._main(*common, "--seed", "3", "--out", os.path.join(root, "s3b.pt"))
        self.assertEqual(len(os.listdir(cache)), 3)


class Platt(unittest.TestCase):
    def test_recovers_a_known_scaling_and_folds_it_into_fc3(self):
        rng = np.random.default_rng(0)
        s = rng.normal(0, 3, 20000)
        y = (rng.random(s.size) < 1 / (1 + np.exp(-(0.4 * s - 1.0)))).astype(np.float64)
        a, b = tune.platt(s, y)
        self.assertAlmostEqual(a, 0.4, delta=0.03)
        self.assertAlmostEqual(b, -1.0, delta=0.06)
        for arch in ("csac", "resnet"):
            torch.manual_seed(0)
            m = fold_bn(random_bn(train.make_model(arch)))
            f = {"stage3": torch.rand(2, 64, 8, 8, 8), "subB.pool1": torch.rand(2, 64, 8, 8, 8),
                 "subA": torch.rand(2, 32, 4, 4, 4)}
            with torch.no_grad():
                before = tune.tail(m, arch, f)
                tune.calibrate(m, arch, 0.4, -1.0)
                after = tune.tail(m, arch, f)
            torch.testing.assert_close(after, 0.4 * before - 1.0, rtol=1e-5, atol=1e-5)


if __name__ == "__main__":
    unittest.main()
