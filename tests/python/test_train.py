"""The training recipe's pieces that the shipped weights depend on
(train/train.py; weights/MODEL_CARD.md), without training anything:
the learning-rate schedule (and that --fit-epochs cannot change a step it
has already taken), the initialisation (which the v1 weights lacked), and
the flip switch of the augmentation. Runs in seconds on the CPU."""
import os
import sys
import unittest

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
