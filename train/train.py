"""train.py - train CSAC-Net-3D (or the plain 3D ResNet baseline) on the
model-grid tensors that the C preprocessing wrote (train/synth/generate.py).

    /usr/bin/python3 -m train.train --data data/train --out train/runs/v1 [--device cuda]

Recipe as in Yao et al. 2021: Adam, lr 1e-3, batch 10, up to 75 epochs, with
augmentation by random scaling 0.9-1.1, horizontal and vertical flips and
rotation -15..15 degrees (applied to the model-grid tensor, in-plane); early
stopping on the validation AUC. Checkpoints every epoch (out/ckpt.pt) and
resumes from it. Fixed seeds. At the end the best epoch is exported with BN
folded: out/csac.safetensors (and out/best.pt).
"""
import argparse
import contextlib
import csv
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from csacnet import CSACNet3D, fold_bn  # noqa: E402
import export as csac_export  # noqa: E402


class ResNet3D(nn.Module):
    """The paper's plain 3D ResNet baseline: CSAC-Net's stem and stages
    without the atrous subnets; pooled stage4 (128) -> the same FC head shape."""

    def __init__(self):
        super().__init__()
        ref = CSACNet3D()
        self.stem, self.stage1, self.stage2 = ref.stem, ref.stage1, ref.stage2
        self.stage3, self.stage4 = ref.stage3, ref.stage4
        self.fc1, self.fc2, self.fc3 = nn.Linear(128, 128), nn.Linear(128, 64), nn.Linear(64, 1)

    def forward(self, x):
        x = F.max_pool3d(F.relu(self.stem(x)), 2)
        x = self.stage1(x)
        x = self.stage2(F.max_pool3d(x, 2))
        x = self.stage4(self.stage3(F.max_pool3d(x, 2)))
        f = torch.flatten(F.adaptive_avg_pool3d(x, 1), 1)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(f)))))


def make_model(arch):
    return CSACNet3D() if arch == "csac" else ResNet3D()


def auc(y, s):
    """ROC AUC by the rank statistic (ties get half credit)."""
    y = np.asarray(y).astype(bool)
    s = np.asarray(s, np.float64)
    npos, nneg = y.sum(), (~y).sum()
    if npos == 0 or nneg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s))
    ss = s[order]
    i = 0
    while i < len(s):  # average ranks over ties
        j = i
        while j + 1 < len(s) and ss[j + 1] == ss[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[y].sum() - npos * (npos + 1) / 2) / (npos * nneg))


def load_set(data_dir):
    """Manifest rows and the stacked float16 tensors (N, 1, 64, 128, 128)."""
    with open(os.path.join(data_dir, "manifest.csv")) as fh:
        rows = [r for r in csv.DictReader(fh)]
    rows = [r for r in rows if r.get("tensor")]
    if not rows:
        raise SystemExit(f"{data_dir}: no tensors in manifest.csv (generate with --tensors yes)")
    x = np.stack([np.load(os.path.join(data_dir, r["tensor"])).astype(np.float16) for r in rows])[:, None]
    y = np.array([int(r["binary_label"]) for r in rows], np.float32)
    return rows, x, y


def augment(x, gen):
    """Random scale 0.9-1.1, flips of rows and columns, in-plane rotation
    -15..15 deg; x: (B,1,D,H,W) on the training device. Outside -> 0 (= air)."""
    b = x.shape[0]
    dev = x.device
    ang = (torch.rand(b, generator=gen) * 30 - 15) * math.pi / 180
    sc = torch.rand(b, generator=gen) * 0.2 + 0.9
    fx = torch.where(torch.rand(b, generator=gen) < 0.5, -1.0, 1.0)
    fy = torch.where(torch.rand(b, generator=gen) < 0.5, -1.0, 1.0)
    c, s = torch.cos(ang) / sc, torch.sin(ang) / sc
    theta = torch.zeros(b, 3, 4)
    # affine_grid coordinates: (x=W, y=H, z=D); output -> input sampling.
    theta[:, 0, 0], theta[:, 0, 1] = c * fx, -s * fx
    theta[:, 1, 0], theta[:, 1, 1] = s * fy, c * fy
    theta[:, 2, 2] = 1 / sc
    grid = F.affine_grid(theta.to(dev), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


@torch.no_grad()
def predict(model, x, dev, batch=10):
    model.eval()
    out = []
    for i in range(0, len(x), batch):
        xb = torch.from_numpy(x[i:i + batch]).to(dev).float()
        out.append(model(xb).float().cpu().numpy()[:, 0])
    return np.concatenate(out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="generated set with tensors (manifest.csv)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--arch", choices=["csac", "resnet"], default="csac")
    ap.add_argument("--epochs", type=int, default=75)
    ap.add_argument("--batch", type=int, default=10)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--val-frac", type=float, default=0.15)
    ap.add_argument("--patience", type=int, default=12, help="epochs without a better val AUC/loss")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=2, help="CPU threads (device cpu)")
    ap.add_argument("--max-minutes", type=float, default=85, help="stop after this wall time (then export)")
    ap.add_argument("--f16", action="store_true", help="export F16 weights")
    ap.add_argument("--amp", type=int, default=1, help="bf16 autocast on CUDA (1/0)")
    a = ap.parse_args(argv)

    torch.manual_seed(a.seed)
    np.random.seed(a.seed)
    torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    torch.backends.cudnn.benchmark = dev.type == "cuda"
    os.makedirs(a.out, exist_ok=True)
    rows, x, y = load_set(a.data)
    rng = np.random.default_rng(a.seed)
    idx = rng.permutation(len(y))
    # Stratified split: the same fraction of each label in validation.
    val = np.concatenate([idx[y[idx] == c][: max(1, int(round(a.val_frac * (y == c).sum())))] for c in (0, 1)])
    tr = np.setdiff1d(idx, val)
    print(json.dumps({"train": len(tr), "val": len(val), "pos_train": int(y[tr].sum()), "device": str(dev)}), flush=True)
    xt = torch.from_numpy(x[tr])  # float16, kept in host memory (or moved once to the GPU)
    if dev.type == "cuda":
        xt = xt.to(dev)
    yt = torch.from_numpy(y[tr])

    model = make_model(a.arch).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    ckpt = os.path.join(a.out, "ckpt.pt")
    start, best, best_epoch, history = 0, (-1.0, -1e9), -1, []
    if os.path.exists(ckpt):
        st = torch.load(ckpt, map_location=dev)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        start, best, best_epoch, history = st["epoch"] + 1, tuple(st["best"]), st["best_epoch"], st["history"]
        print(json.dumps({"resumed_at_epoch": start}), flush=True)
    gen = torch.Generator().manual_seed(a.seed)
    gen.manual_seed(a.seed * 1000 + start)  # resumable: each epoch's stream depends on its number
    t_start = time.time()
    for epoch in range(start, a.epochs):
        gen.manual_seed(a.seed * 1000 + epoch)
        model.train()
        perm = torch.randperm(len(tr), generator=gen)
        t0, losses = time.time(), []
        for i in range(0, len(tr) - a.batch + 1, a.batch):
            bi = perm[i:i + a.batch]
            xb = augment(xt[bi.to(xt.device)].to(dev).float(), gen)
            yb = yt[bi].to(dev)
            amp = dev.type == "cuda" and bool(a.amp)
            with torch.autocast("cuda", dtype=torch.bfloat16) if amp else contextlib.nullcontext():
                logit = model(xb)[:, 0]
            loss = F.binary_cross_entropy_with_logits(logit.float(), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        s = predict(model, x[val], dev, a.batch)
        v_auc = auc(y[val], s)
        v_loss = float(F.binary_cross_entropy_with_logits(torch.from_numpy(s), torch.from_numpy(y[val])))
        p = 1 / (1 + np.exp(-s))
        acc = float(((p >= 0.5) == (y[val] > 0.5)).mean())
        rec = {"epoch": epoch, "loss": float(np.mean(losses)), "val_auc": v_auc, "val_loss": v_loss,
               "val_acc": acc, "s": round(time.time() - t0, 1)}
        history.append(rec)
        key = (v_auc, -v_loss)
        if key > best:
            best, best_epoch = key, epoch
            torch.save(model.state_dict(), os.path.join(a.out, "best.pt"))
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "epoch": epoch, "best": list(best),
                    "best_epoch": best_epoch, "history": history}, ckpt)
        print(json.dumps(rec), flush=True)
        if epoch - best_epoch >= a.patience:
            print(json.dumps({"early_stop": epoch, "best_epoch": best_epoch}), flush=True)
            break
        if (time.time() - t_start) / 60 > a.max_minutes:
            print(json.dumps({"time_limit": epoch}), flush=True)
            break
    model.load_state_dict(torch.load(os.path.join(a.out, "best.pt"), map_location=dev))
    summary = {"arch": a.arch, "best_epoch": best_epoch, "val_auc": best[0], "val_loss": -best[1],
               "n_train": len(tr), "n_val": len(val), "command": " ".join(sys.argv)}
    if a.arch == "csac":
        folded = fold_bn(model.cpu().float())
        sd = {k: v.detach().contiguous() for k, v in folded.state_dict().items()}
        meta = {"model": "csac_v1", "trained_on": os.path.basename(os.path.normpath(a.data)), "best_epoch": str(best_epoch),
                "val_auc": f"{best[0]:.4f}"}
        csac_export.save_safetensors(sd, os.path.join(a.out, "csac.safetensors"), f16=a.f16, metadata=meta)
    else:  # the baseline is evaluated in PyTorch only
        torch.save({k: v.detach().cpu().half() for k, v in model.state_dict().items()},
                   os.path.join(a.out, "resnet3d_f16.pt"))
    with open(os.path.join(a.out, "summary.json"), "w") as fh:
        json.dump({**summary, "history": history}, fh, indent=1)
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
