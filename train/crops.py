"""crops.py - train CSAC-Net-3D in two stages that fit a 2-core CPU: lesion crops, then the head.

    /usr/bin/python3 train/crops.py pretrain --data DIR --out crops.pt --steps 8000 [--arch resnet]
    /usr/bin/python3 train/crops.py head --ckpt crops.pt --train DIR --val DIR --out csac.safetensors

Why: trained end to end on whole volumes with the binary label (train.py), the network does not
learn ground glass from normal lung (weights/MODEL_CARD.md), although a small CNN on crops
around the lesions separates them easily. So:
1. pretrain: the whole network, unchanged, on crops of 16 x 32 x 32 grid voxels (4 x 4 x 4
   lesion cells; the layer table works for any D % 16 == 0, H, W % 32 == 0). Positive: a crop of a
   COVID-19 case with >= POS_GGO ground-glass voxels. Negative: lung of normal cases, CAP
   consolidation, COVID-19 lung without lesions, and crops from anywhere. The paper's
   augmentation, and the lesion heads of train.py --aux-seg on the crop's cells.
2. head: BN folded, the C core computes the pooled 288 features of every whole training volume;
   fc1-fc3 (started from the pretrained head) are fitted to COVID-19 vs the rest on them, with
   the weight decay chosen by the validation set's AUC. The lesion heatmap's head (CSAC-Net's
   `lesion`) is the crop stage's ground-glass head on stage2.
The plain 3D ResNet baseline (--arch resnet) goes through the same two stages. Its pooled
features come from the C core too: its trunk is CSAC-Net's, so with the subnets' weights at zero
the first 128 of the merge's 288 features are the ResNet's; its output is a train.py-style
state_dict (F16) for evaluate.py --resnet.
Same seeds, same steps, same data: the same weights (CPU, 2 threads).
"""
import argparse
import csv
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import export as csac_export  # noqa: E402
import train as T  # noqa: E402
from csacnet import N_FEATURES, fold_bn  # noqa: E402
from heatmap_study import lung_on_grid  # noqa: E402

CROP_CELLS = 4                 # crop = 4 x 4 x 4 cells of csac.LESION_GRID = 16 x 32 x 32 grid voxels
CELL = (4, 8, 8)               # grid voxels per lesion cell
POS_GGO = 200                  # ground-glass grid voxels that make a crop positive (1.2 % of it)
NEG_LESION = 40                # consolidation voxels that make a CAP crop a "CAP lesion" crop
MIX = {"pos": 0.5, "normal_lung": 0.2, "cap_lesion": 0.1, "covid_clean": 0.1, "any_neg": 0.1}


def window_sums(a):
    """Sums over every CROP_CELLS^3 window of cells: (N, 16, 16, 16) -> (N, 13, 13, 13)."""
    k = CROP_CELLS
    c = np.cumsum(np.cumsum(np.cumsum(np.pad(a, ((0, 0), (1, 0), (1, 0), (1, 0))), 1), 2), 3)
    return (c[:, k:, k:, k:] - c[:, :-k, k:, k:] - c[:, k:, :-k, k:] - c[:, k:, k:, :-k] + c[:, :-k, :-k, k:]
            + c[:, :-k, k:, :-k] + c[:, k:, :-k, :-k] - c[:, :-k, :-k, :-k])


def crop_pools(labels, les_vox, lung_share):
    """Crop corners (case, cz, cy, cx) in cells, per sampling pool. les_vox: (N, 2, 16, 16, 16)
    ground-glass / consolidation grid voxels per cell; lung_share: (N, 16, 16, 16)."""
    ggo, cons, lw = window_sums(les_vox[:, 0]), window_sums(les_vox[:, 1]), window_sums(lung_share) / CROP_CELLS ** 3
    idx = np.argwhere(np.ones_like(ggo, dtype=bool))
    g, c, lu = ggo[tuple(idx.T)], cons[tuple(idx.T)], lw[tuple(idx.T)]
    lab = np.asarray(labels)[idx[:, 0]]
    return {
        "pos": idx[(lab == "covid") & (g >= POS_GGO)],
        "normal_lung": idx[(lab == "normal") & (lu > 0.3)],
        "cap_lesion": idx[(lab == "cap") & (c >= NEG_LESION)],
        "covid_clean": idx[(lab == "covid") & (g + c == 0) & (lu > 0.3)],
        "any_neg": idx[(lab != "covid") | (g + c == 0)],
    }


def pretrain(a):
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)
    rows, x, _ = T.load_set(a.data)
    les = T.load_lesion_targets(a.data, rows).astype(np.float32) / 255 * 256  # grid voxels per cell
    lab = np.array([r["label"] for r in rows])
    lung = np.stack([lung_on_grid(v[0].astype(np.float32)).reshape(16, CELL[0], 16, CELL[1], 16, CELL[2]).mean((1, 3, 5))
                     for v in x])
    pools = crop_pools(lab, les, lung)
    print(json.dumps({k: len(v) for k, v in pools.items()}), flush=True)
    names, probs = list(MIX), np.array(list(MIX.values()))
    X, LT = torch.from_numpy(x), torch.from_numpy(les / 256)
    dz, dy, dx = (CROP_CELLS * c for c in CELL)

    def batch(n):
        which = rng.choice(len(names), n, p=probs)
        xb, tb, yb = [], [], []
        for w in which:
            k, cz, cy, cx = pools[names[w]][rng.integers(len(pools[names[w]]))]
            z0, y0, x0 = cz * CELL[0], cy * CELL[1], cx * CELL[2]
            xb.append(X[k, :, z0:z0 + dz, y0:y0 + dy, x0:x0 + dx])
            tb.append(LT[k, :, cz:cz + CROP_CELLS, cy:cy + CROP_CELLS, cx:cx + CROP_CELLS])
            yb.append(1.0 if names[w] == "pos" else 0.0)
        return torch.stack(xb).float(), torch.stack(tb).float(), torch.tensor(yb)

    model, heads = T.make_model(a.arch), T.SegHeads(a.arch)
    opt = torch.optim.Adam(list(model.parameters()) + list(heads.parameters()), a.lr)
    gen = torch.Generator().manual_seed(a.seed)
    step, t0, hist = 0, time.time(), []
    while step < a.steps and (time.time() - t0) / 60 < a.max_minutes:
        xb, tb, yb = batch(a.batch)
        xb, tb = T.augment(xb, gen, True, tb)
        model.train()
        taps = {}
        logit = model(xb, taps)[:, 0]
        lc = F.binary_cross_entropy_with_logits(logit, yb)
        ls = heads.loss(taps, tb)
        loss = lc + ls
        opt.zero_grad()
        loss.backward()
        opt.step()
        hist.append((float(lc), float(ls), float(((logit > 0).float() == yb).float().mean())))
        step += 1
        if step % 50 == 0:
            h = np.array(hist[-50:]).mean(0)
            print(json.dumps({"step": step, "s": round(time.time() - t0), "cls": round(h[0], 4),
                              "seg": round(h[1], 4), "acc": round(h[2], 3)}), flush=True)
            torch.save({"arch": a.arch, "model": model.state_dict(), "heads": heads.state_dict(), "step": step}, a.out)
    torch.save({"arch": a.arch, "model": model.state_dict(), "heads": heads.state_dict(), "step": step}, a.out)
    print(json.dumps({"done": step, "command": " ".join(sys.argv)}), flush=True)


def merge_features(core, x):
    """The C core's pooled 288 features of one model-grid tensor: the mean of the 4^3 merge map."""
    core.forward(x)
    return core.layer_output("merge").reshape(N_FEATURES, 64).mean(1)


def pooled_features(core, data_dir):
    """merge_features of every case of a generated set, and the labels."""
    rows = [r for r in csv.DictReader(open(os.path.join(data_dir, "manifest.csv"))) if r["tensor"]]
    feats = [merge_features(core, np.load(os.path.join(data_dir, r["tensor"])).astype(np.float32)) for r in rows]
    return np.array(feats), np.array([r["label"] for r in rows])


def core_state_dict(model, arch):
    """Folded weights in CSAC-Net's layer table for the C core. The ResNet: its trunk, the subnets
    and the head at zero, so the merge is [stage4, 0] and its first 128 pooled features are the
    ResNet's."""
    folded = {k: v.detach().contiguous() for k, v in fold_bn(model.float()).state_dict().items()}
    if arch == "csac":
        return folded
    sd = {k: torch.zeros_like(v) for k, v in fold_bn(T.make_model("csac")).state_dict().items()}
    sd.update({k: v for k, v in folded.items() if k in sd})
    return sd


def fc_layers(model):
    """fc1, fc2, fc3 of CSAC-Net (model.head) or of the plain ResNet."""
    m = getattr(model, "head", model)
    return m.fc1, m.fc2, m.fc3


def head_net(model):
    """A trainable copy of the model's head: fc1 ReLU fc2 ReLU fc3."""
    fc1, fc2, fc3 = fc_layers(model)
    h = nn.Sequential(nn.Linear(fc1.in_features, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 1))
    for i, fc in ((0, fc1), (2, fc2), (4, fc3)):
        h[i].weight.data.copy_(fc.weight.data)
        h[i].bias.data.copy_(fc.bias.data)
    return h


def fit_head(model, xtr, ytr, xva, yva, wd, epochs, seed=0):
    """Adam on the pooled features; the epoch with the best validation AUC:
    (AUC, head state, epoch, validation scores)."""
    torch.manual_seed(seed)
    h = head_net(model)
    opt = torch.optim.Adam(h.parameters(), 1e-3, weight_decay=wd)
    best = (-1.0, None, -1, None)
    for ep in range(epochs):
        perm = torch.randperm(len(ytr))
        for i in range(0, len(perm), 32):
            b = perm[i:i + 32]
            loss = F.binary_cross_entropy_with_logits(h(xtr[b])[:, 0], ytr[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            s = h(xva)[:, 0].numpy()
        v = T.auc(yva, s)
        if v > best[0]:
            best = (v, {k: t.clone() for k, t in h.state_dict().items()}, ep, s)
    return best


def head(a):
    from evaluate import Core
    torch.set_num_threads(a.threads)
    ckpt = torch.load(a.ckpt)
    arch = ckpt.get("arch", "csac")
    model = T.make_model(arch)
    if arch == "csac":
        # the lesion head: stage2's ground-glass channel of the crop stage's lesion heads
        missing = model.load_state_dict(ckpt["model"], strict=False).missing_keys
        assert set(missing) <= {"lesion.weight", "lesion.bias"}, missing
        k = list(T.SEG_TAPS["csac"]).index("stage2")
        with torch.no_grad():
            model.lesion.weight.copy_(ckpt["heads"][f"convs.{k}.weight"][:1])
            model.lesion.bias.copy_(ckpt["heads"][f"convs.{k}.bias"][:1])
    else:
        model.load_state_dict(ckpt["model"])
    trunk = a.out + ".trunk.safetensors"
    csac_export.save_safetensors(core_state_dict(model, arch), trunk, metadata={"model": "csac_v1"})
    core = Core(trunk, n_threads=a.threads)
    t0 = time.time()
    nf = fc_layers(model)[0].in_features  # 288, or the ResNet's 128 (the merge's first channels)
    ftr, ltr = pooled_features(core, a.train)
    fva, lva = pooled_features(core, a.val)
    ftr, fva = ftr[:, :nf], fva[:, :nf]
    print(json.dumps({"features_s": round(time.time() - t0)}), flush=True)
    xtr, xva = torch.from_numpy(ftr).float(), torch.from_numpy(fva).float()
    ytr, yva = torch.tensor(ltr == "covid", dtype=torch.float32), lva == "covid"
    res = []
    for wd in (0.0, 1e-4, 1e-3):
        v, hs, ep, s = fit_head(model, xtr, ytr, xva, yva, wd, a.epochs)
        sub = {c: T.auc(yva[np.isin(lva, ("covid", c))], s[np.isin(lva, ("covid", c))]) for c in ("normal", "cap")}
        print(json.dumps({"wd": wd, "val_auc": round(v, 4), "epoch": ep,
                          **{f"val_auc_{k}": round(u, 4) for k, u in sub.items()}}), flush=True)
        res.append((v, wd, ep, hs))
    v, wd, ep, hs = max(res, key=lambda r: r[0])
    with torch.no_grad():
        for i, fc in zip((0, 2, 4), fc_layers(model)):
            fc.weight.copy_(hs[f"{i}.weight"])
            fc.bias.copy_(hs[f"{i}.bias"])
    if arch == "csac":
        sd = {k: v_.detach().contiguous() for k, v_ in fold_bn(model.float()).state_dict().items()}
        meta = {"model": "csac_v1", "val_auc": f"{v:.4f}", "head_weight_decay": str(wd), "head_epoch": str(ep)}
        csac_export.save_safetensors(sd, a.out, f16=True, metadata=meta)
    else:  # evaluate.py --resnet: the (unfolded) module's state_dict, as train.py writes it
        torch.save({k: t.detach().cpu().half() for k, t in model.state_dict().items()}, a.out)
    os.remove(trunk)
    print(json.dumps({"wrote": a.out, "val_auc": v, "weight_decay": wd, "command": " ".join(sys.argv)}), flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pretrain", help="stage 1: lesion crops")
    p.add_argument("--data", required=True, help="generated set with tensors and lesion targets")
    p.add_argument("--arch", choices=["csac", "resnet"], default="csac")
    p.add_argument("--out", required=True, help="checkpoint (.pt)")
    p.add_argument("--steps", type=int, default=9000)
    p.add_argument("--max-minutes", type=float, default=60, help="stop earlier after this wall time")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    h = sub.add_parser("head", help="stage 2: fc1-fc3 on whole volumes' pooled features")
    h.add_argument("--ckpt", required=True)
    h.add_argument("--train", required=True)
    h.add_argument("--val", required=True, help="a generated set with another seed (selects weight decay, epoch)")
    h.add_argument("--out", required=True, help="CSAC-Net: weights .safetensors (F16); ResNet: a state_dict .pt (F16)")
    h.add_argument("--epochs", type=int, default=300)
    h.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)
    pretrain(a) if a.cmd == "pretrain" else head(a)


if __name__ == "__main__":
    main()
