"""The training recipe's pieces that the shipped weights depend on
(train/train.py; weights/MODEL_CARD.md), without training anything:
the learning-rate schedule (and that --fit-epochs cannot change a step it
has already taken), the initialisation (which the v1 weights lacked), and
the flip switch of the augmentation. Runs in seconds on the CPU."""
import math
import os
import sys
import tempfile
import unittest

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "train"))
import train  # noqa: E402
from csacnet import Block, CSACNet3D  # noqa: E402


class Schedule(unittest.TestCase):
    SPE = 10  # steps per epoch

    def lr(self, step, epochs, sched="cosine"):
        return train.lr_at(step, self.SPE, epochs, 1e-3, sched)

    def test_warm_up_flat_then_cosine_to_two_percent(self):
        self.assertAlmostEqual(self.lr(0, 50), 1e-4)           # 1/10 of the warm-up epoch
        self.assertAlmostEqual(self.lr(self.SPE - 1, 50), 1e-3)
        self.assertAlmostEqual(self.lr(2 * self.SPE - 1, 50), 1e-3)  # still flat in epoch 1
        tail = [self.lr(s, 50) for s in range(2 * self.SPE, 50 * self.SPE)]
        self.assertTrue(all(a >= b for a, b in zip(tail, tail[1:])), "cosine part must not rise")
        self.assertAlmostEqual(self.lr(50 * self.SPE, 50), 2e-5)
        self.assertAlmostEqual(self.lr(10 ** 6, 50), 2e-5)     # past the horizon: the floor

    def test_fitting_the_horizon_after_epoch_1_changes_no_earlier_step(self):
        for s in range(2 * self.SPE):
            self.assertEqual(self.lr(s, 200), self.lr(s, 37))
        self.assertNotEqual(self.lr(3 * self.SPE, 200), self.lr(3 * self.SPE, 37))

    def test_const_is_the_papers_fixed_rate(self):
        self.assertEqual({self.lr(s, 5, "const") for s in (0, 7, 999)}, {1e-3})


class Init(unittest.TestCase):
    def test_residual_branches_start_at_zero(self):
        m = train.make_model("csac")
        blocks = [b for b in m.modules() if isinstance(b, Block)]
        self.assertEqual(len(blocks), 16)
        for b in blocks:
            self.assertEqual(float(b.conv2.bn.weight.abs().max()), 0.0)
            self.assertGreater(float(b.conv1.bn.weight.min()), 0.0)  # the first BN of a block is untouched

    def test_bn_free_subnet_keeps_its_signal(self):
        # subA: four conv+ReLU (and two pools) without BN. PyTorch's default
        # init shrinks the RMS 6.5-8x across it (measured); He init keeps it.
        torch.manual_seed(0)
        x = torch.relu(torch.randn(2, 16, 16, 16, 16))
        rms = lambda t: float(t.pow(2).mean().sqrt())  # noqa: E731
        with torch.no_grad():
            default = rms(CSACNet3D().subA(x))
            he = rms(train.make_model("csac").subA(x))
        self.assertLess(default, rms(x) / 4)
        self.assertGreater(he, rms(x) / 2)

    def test_baseline_gets_the_same_init(self):
        m = train.make_model("resnet")
        self.assertTrue(all(float(b.conv2.bn.weight.abs().max()) == 0 for b in m.modules() if isinstance(b, Block)))


class AuxLesionHead(unittest.TestCase):
    def test_trains_the_trunk_and_is_not_exported(self):
        torch.manual_seed(0)
        m = train.make_model("csac")
        head = torch.nn.Linear(train.N_FEATURES, 1)
        opt = torch.optim.SGD(list(m.parameters()) + list(head.parameters()), lr=0.0)
        xt = torch.rand(4, 1, 16, 32, 32).half()  # any D % 16 == 0, H, W % 32 == 0 gives the same layer table
        yt, ya = torch.tensor([1.0, 0, 0, 1]), torch.tensor([1.0, 1, 0, 1])
        g = torch.Generator().manual_seed(1)
        cpu, fmt = torch.device("cpu"), torch.contiguous_format
        base = float(train.train_step(m, opt, xt, yt, torch.arange(4), g, cpu, False, fmt))
        g.manual_seed(1)
        with_aux = float(train.train_step(m, opt, xt, yt, torch.arange(4), g, cpu, False, fmt, aux=(head, ya, 0.5)))
        self.assertGreater(with_aux, base)  # the auxiliary BCE is added to the loss
        self.assertGreater(float(head.weight.grad.abs().sum()), 0.0)
        self.assertFalse(any("aux" in k for k in train.fold_bn(m).state_dict()))

    def test_three_class_head_uses_cross_entropy(self):
        torch.manual_seed(0)
        m = train.make_model("resnet")
        head = torch.nn.Linear(128, 3)
        opt = torch.optim.SGD(list(m.parameters()) + list(head.parameters()), lr=0.0)
        xt = torch.rand(3, 1, 16, 32, 32).half()
        yt, yc = torch.tensor([1.0, 0, 0]), torch.tensor([0.0, 1, 2])  # covid, cap, normal
        g = torch.Generator().manual_seed(1)
        cpu, fmt = torch.device("cpu"), torch.contiguous_format
        base = float(train.train_step(m, opt, xt, yt, torch.arange(3), g, cpu, False, fmt))
        g.manual_seed(1)
        with torch.no_grad():
            head.weight.zero_(); head.bias.zero_()  # uniform softmax: the CE term is exactly ln 3
        total = float(train.train_step(m, opt, xt, yt, torch.arange(3), g, cpu, False, fmt, aux=(head, yc, 1.0)))
        self.assertAlmostEqual(total - base, math.log(3), places=5)

    def test_labels_keeps_only_those_classes(self):
        with tempfile.TemporaryDirectory() as d:
            os.makedirs(os.path.join(d, "t"))
            with open(os.path.join(d, "manifest.csv"), "w") as fh:
                fh.write("label,binary_label,tensor\n")
                for i, l in enumerate(("covid", "cap", "normal", "covid")):
                    np.save(os.path.join(d, "t", f"{i}.npy"), np.full((2, 2, 2), i, np.float16))
                    fh.write(f"{l},{int(l == 'covid')},t/{i}.npy\n")
            rows, x, y = train.load_set(d, ["covid", "normal"])
        self.assertEqual([r["label"] for r in rows], ["covid", "normal", "covid"])
        self.assertEqual(x[:, 0, 0, 0, 0].tolist(), [0, 2, 3])
        self.assertEqual(y.tolist(), [1, 0, 1])


class AuxSegHeads(unittest.TestCase):
    def test_lesion_targets_count_each_label_per_cell(self):
        from csac import GRID_D, GRID_H, GRID_W, labels_on_grid, lesion_targets
        mask = np.zeros((GRID_W, GRID_H, GRID_D), np.uint8)  # [i, j, k] = (w, h, d): identity grid
        mask[0:8, 0:8, 0:4] = 1            # cell (d 0, h 0, w 0), whole
        mask[8:12, 0:8, 0:4] = 2           # half of cell (0, 0, 1)
        lab = labels_on_grid(mask, np.eye(4))[0]
        t = lesion_targets(lab)
        self.assertEqual(t.shape, (2, 16, 16, 16))
        self.assertEqual((int(t[0, 0, 0, 0]), int(t[1, 0, 0, 1])), (255, 128))
        self.assertEqual(int(t.astype(int).sum()), 255 + 128)

    def test_trains_the_trunk_and_is_not_exported(self):
        torch.manual_seed(0)
        m = train.make_model("csac")
        heads = train.SegHeads("csac")
        opt = torch.optim.SGD(list(m.parameters()) + list(heads.parameters()), lr=0.0)
        xt = torch.rand(2, 1, 64, 128, 128).half()
        yt = torch.tensor([1.0, 0])
        lt = torch.zeros(2, 2, 16, 16, 16, dtype=torch.uint8)
        lt[0, 0, 4:8, 4:8, 4:8] = 255
        g = torch.Generator().manual_seed(1)
        cpu, fmt = torch.device("cpu"), torch.contiguous_format
        parts = {}
        train.train_step(m, opt, xt, yt, torch.arange(2), g, cpu, False, fmt, seg=(heads, lt, 1.0), parts=parts)
        self.assertGreater(parts["seg"][0], 0.0)
        self.assertTrue(all(float(c.weight.grad.abs().sum()) > 0 for c in heads.convs))
        # the gradient reaches the trunk below the tapped maps and the subnets
        self.assertGreater(float(m.stage2[0].proj.conv.weight.grad.abs().sum()), 0.0)  # conv1: 0 (zero-init BN)
        self.assertGreater(float(m.subB.conv1.weight.grad.abs().sum()), 0.0)
        self.assertFalse(any("seg" in k or "convs" in k for k in train.fold_bn(m).state_dict()))

    def test_baseline_taps_the_same_trunk_maps(self):
        taps = {}
        train.make_model("resnet")(torch.rand(1, 1, 64, 128, 128), taps)
        for name, c in train.SEG_TAPS["resnet"].items():
            self.assertEqual(taps[name].shape[1], c)
        self.assertEqual(tuple(taps["stage2"].shape[2:]), (16, 16, 16))

    def test_augment_moves_the_targets_with_the_image(self):
        x = torch.zeros(16, 1, 16, 64, 64)
        x[:, :, 4:8, 8:20, 36:48] = 1                 # off-centre blob
        t = torch.nn.functional.avg_pool3d(x, (1, 4, 4))  # the same blob on a 4x coarser grid
        g = torch.Generator().manual_seed(5)
        xa, ta = train.augment(x, g, extra=t)

        def com(v):  # centre of mass in normalised [-1, 1] coordinates (h, w)
            h, w = v.shape[-2:]
            ph = v.sum(dim=(1, 2, 4)); pw = v.sum(dim=(1, 2, 3))
            ch = ((torch.arange(h) + 0.5) / h * 2 - 1)
            cw = ((torch.arange(w) + 0.5) / w * 2 - 1)
            return torch.stack([(ph * ch).sum(1) / ph.sum(1), (pw * cw).sum(1) / pw.sum(1)], 1)
        d = (com(xa) - com(ta)).abs().max()
        self.assertLess(float(d), 0.05)                 # moved together (blob centre spans +-0.6)
        self.assertGreater(float((com(xa) - com(x)).abs().max()), 0.3)  # and it did move


class Augment(unittest.TestCase):
    def anterior_fraction(self, vflip, n=40):
        """Share of augmented copies whose bright blob stays in the anterior half (rows < H/2)."""
        x = torch.zeros(n, 1, 4, 32, 32)
        x[:, :, :, 4:10, 12:20] = 1  # anterior, off the midline
        g = torch.Generator().manual_seed(3)
        y = train.augment(x, g, vflip=vflip)[:, 0].sum(dim=(1, 3))  # (n, H) row profile
        rows = torch.arange(32.0)
        com = (y * rows).sum(1) / y.sum(1)
        return float((com < 16).float().mean())

    def test_vflip_0_never_flips_anterior_posterior(self):
        self.assertEqual(self.anterior_fraction(False), 1.0)

    def test_vflip_1_flips_about_half(self):
        self.assertTrue(0.25 < self.anterior_fraction(True) < 0.75)


if __name__ == "__main__":
    unittest.main()
