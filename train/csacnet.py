"""csacnet.py - the PyTorch reference of 3D CSAC-Net v1 (the module training uses).

Single source of truth for shapes (DESIGN.md layer table); nn/model.c holds the
same table for C and validates weights against it. Input 1 x 64 x 128 x 128.

    stem    conv3 1->16 stride (1,2,2) + BN + ReLU, maxpool 2      16 @ 32^3
    stage1  3 basic blocks, 16 ch                                     16 @ 32^3
    stage2  maxpool 2, 4 blocks, 32 ch (first with 1x1x1 projection)  32 @ 16^3
    stage3  maxpool 2, 6 blocks, 64 ch (first with projection)        64 @ 8^3
    stage4  3 blocks, 128 ch, first conv3 and projection stride 2    128 @ 4^3
    subA    (stage1) d2 16->16, d3 16->16, pool 2, d2 16->32, pool 4, 1x1 32->32
    subB    (stage2) d2 32->32, d3 32->64, pool 2, d2 64->64, pool 2, 1x1 64->64
    subC    (stage3) d2, d2, d2, d1 64->64, pool 2, 1x1 64->64
    merge   concat(stage4, subA, subB, subC) = 288 @ 4^3 -> global avg pool
    head    fc1 288->128 ReLU, fc2 128->64 ReLU, fc3 64->1 -> logit; sigmoid
    lesion  1x1x1 32->1 on stage2's output: the lesion heatmap's logit, not part of the logit

Every 3x3x3 conv pads by its dilation ("same"); max-pool kernel = stride.
Baseline convs carry BatchNorm (no conv bias); subnet convs have a bias and no
BN. fold_bn() returns the inference module: every ConvBN becomes one Conv3d
with bias, so its state_dict names are the C layer names plus .weight/.bias
("stem.weight", "stage2.0.proj.bias", "subA.conv3.weight", "head.fc1.weight").

The deterministic random weights (random_state_dict, random_input) mirror
nn/model.c bit for bit, so C tests rebuild the same model without files.
"""
import copy
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

GRID = (64, 128, 128)
N_FEATURES = 288


class ConvBN(nn.Module):
    """conv3d (no bias) + BatchNorm3d; folded into one biased Conv3d for export."""

    def __init__(self, cin, cout, k=3, stride=1, dil=1):
        super().__init__()
        self.conv = nn.Conv3d(cin, cout, k, stride=stride, padding=dil * (k // 2), dilation=dil, bias=False)
        self.bn = nn.BatchNorm3d(cout)

    def forward(self, x):
        return self.bn(self.conv(x))


class Block(nn.Module):
    """Basic residual block: relu(bn(conv(relu(bn(conv(x))))) + shortcut(x))."""

    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv1 = ConvBN(cin, cout, 3, stride)
        self.conv2 = ConvBN(cout, cout, 3)
        self.proj = ConvBN(cin, cout, 1, stride) if (cin != cout or stride != 1) else None

    def forward(self, x):
        y = F.relu(self.conv1(x))
        s = self.proj(x) if self.proj is not None else x
        return F.relu(self.conv2(y) + s)


def _stage(cin, cout, n, stride=1):
    return nn.Sequential(*[Block(cin if i == 0 else cout, cout, stride if i == 0 else 1) for i in range(n)])


def _atrous(cin, cout, dil):
    return nn.Conv3d(cin, cout, 3, padding=dil, dilation=dil, bias=True)


class SubNet(nn.Module):
    """Cross-layer sparse atrous subnet: convs (+bias+ReLU) and pools in a fixed order."""

    def __init__(self, steps):
        super().__init__()
        self.steps = steps  # [("conv1", module) | ("pool1", k)]
        for name, m in steps:
            if isinstance(m, nn.Module):
                self.add_module(name, m)

    def forward(self, x, taps=None, prefix=""):
        for name, m in self.steps:
            x = F.max_pool3d(x, m) if isinstance(m, int) else F.relu(getattr(self, name)(x))
            if taps is not None:
                taps[prefix + name] = x
        return x


class Head(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(N_FEATURES, 128)
        self.fc2 = nn.Linear(128, 64)
        self.fc3 = nn.Linear(64, 1)

    def forward(self, f):
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(f)))))


class CSACNet3D(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = ConvBN(1, 16, 3, stride=(1, 2, 2))
        self.stage1 = _stage(16, 16, 3)
        self.stage2 = _stage(16, 32, 4)
        self.stage3 = _stage(32, 64, 6)
        self.stage4 = _stage(64, 128, 3, stride=2)
        self.subA = SubNet([("conv1", _atrous(16, 16, 2)), ("conv2", _atrous(16, 16, 3)), ("pool1", 2),
                            ("conv3", _atrous(16, 32, 2)), ("pool2", 4), ("conv4", nn.Conv3d(32, 32, 1))])
        self.subB = SubNet([("conv1", _atrous(32, 32, 2)), ("conv2", _atrous(32, 64, 3)), ("pool1", 2),
                            ("conv3", _atrous(64, 64, 2)), ("pool2", 2), ("conv4", nn.Conv3d(64, 64, 1))])
        self.subC = SubNet([("conv1", _atrous(64, 64, 2)), ("conv2", _atrous(64, 64, 2)),
                            ("conv3", _atrous(64, 64, 2)), ("conv4", _atrous(64, 64, 1)), ("pool1", 2),
                            ("conv5", nn.Conv3d(64, 64, 1))])
        self.head = Head()
        # lesion head, not part of the logit: ground-glass logit per 16^3 cell of stage2 (the crop
        # training's lesion loss, train/crops.py); its sigmoid is the default heatmap
        self.lesion = nn.Conv3d(32, 1, 1)

    def forward(self, x, taps=None):
        """x: N x 1 x 64 x 128 x 128 -> logit N x 1. taps (a dict) collects the
        maps csac_layer_output names: stem, stem.pool, stageN, subX.*, merge, features."""
        def tap(name, v):
            if taps is not None:
                taps[name] = v
            return v
        x = tap("stem.pool", F.max_pool3d(tap("stem", F.relu(self.stem(x))), 2))
        s1 = tap("stage1", self.stage1(x))
        s2 = tap("stage2", self.stage2(tap("stage2.pool", F.max_pool3d(s1, 2))))
        if taps is not None:
            taps["lesion"] = self.lesion(s2)
        s3 = tap("stage3", self.stage3(tap("stage3.pool", F.max_pool3d(s2, 2))))
        s4 = tap("stage4", self.stage4(s3))
        a = self.subA(s1, taps, "subA.")
        b = self.subB(s2, taps, "subB.")
        c = self.subC(s3, taps, "subC.")
        m = tap("merge", torch.cat([s4, a, b, c], 1))
        f = tap("features", torch.flatten(F.adaptive_avg_pool3d(m, 1), 1))
        return self.head(f)


def _fold(cb):
    """ConvBN (eval statistics) -> Conv3d with bias, computed in float64."""
    conv, bn = cb.conv, cb.bn
    scale = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
    out = nn.Conv3d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                    conv.dilation, bias=True)
    with torch.no_grad():
        out.weight.copy_((conv.weight.double() * scale.view(-1, 1, 1, 1, 1)).float())
        out.bias.copy_((bn.bias.double() - bn.running_mean.double() * scale).float())
    return out


def fold_bn(model):
    """Inference copy of model with every ConvBN replaced by its folded Conv3d."""
    m = copy.deepcopy(model).eval()
    for _, mod in list(m.named_modules()):
        for child_name, child in list(mod.named_children()):
            if isinstance(child, ConvBN):
                setattr(mod, child_name, _fold(child))
    return m


# ---- deterministic random weights, identical to nn/model.c ----

def _mix32(x):
    x = x ^ (x >> np.uint32(16)); x = x * np.uint32(0x7feb352d)
    x = x ^ (x >> np.uint32(15)); x = x * np.uint32(0x846ca68b)
    return x ^ (x >> np.uint32(16))


def fnv1a(s):
    h = 2166136261
    for b in s.encode():
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    return h


def rand_u01(seed, n):
    """u[i] = (mix(mix(seed) + i) >> 8) * 2^-24, float32 in [0, 1)."""
    with np.errstate(over="ignore"):
        base = _mix32(np.array([seed], dtype=np.uint32))[0]
        h = _mix32(base + np.arange(n, dtype=np.uint32))
    return (h >> np.uint32(8)).astype(np.float32) * np.float32(1.0 / 16777216.0)


def _seed(name, user_seed):
    return (fnv1a(name) + user_seed * 0x9E3779B9) & 0xFFFFFFFF


def _gain(name):
    return 0.5 if name.startswith("stage") and name.endswith(".conv2.weight") else 1.0


def random_tensor(name, shape, user_seed=1):
    n = int(np.prod(shape))
    u = rand_u01(_seed(name, user_seed), n)
    if len(shape) > 1:
        fan_in = int(np.prod(shape[1:]))
        scale = np.float32(_gain(name) * math.sqrt(6.0 / fan_in))
    else:
        scale = np.float32(0.05)
    return ((np.float32(2.0) * u - np.float32(1.0)) * scale).astype(np.float32).reshape(shape)


def random_state_dict(user_seed=1):
    """Random weights for the folded module (fold_bn(CSACNet3D()).state_dict() names)."""
    ref = fold_bn(CSACNet3D()).state_dict()
    return {k: torch.from_numpy(random_tensor(k, tuple(v.shape), user_seed)) for k, v in ref.items()}


def random_input(user_seed=1):
    x = rand_u01(_seed("input", user_seed), int(np.prod(GRID)))
    return torch.from_numpy(x.reshape(1, 1, *GRID))


def folded_random_model(user_seed=1):
    m = fold_bn(CSACNet3D())
    m.load_state_dict(random_state_dict(user_seed))
    return m.eval()
