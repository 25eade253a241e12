"""train.py - train CSAC-Net-3D (or the plain 3D ResNet baseline) on the
model-grid tensors that the C preprocessing wrote (train/synth/generate.py).

    /usr/bin/python3 -m train.train --data data/train --out train/runs/v1 [--device cuda]

Recipe as in Yao et al. 2021: Adam, lr 1e-3, batch 10, up to 75 epochs, with
augmentation by random scaling 0.9-1.1, horizontal and vertical flips and
rotation -15..15 degrees (applied to the model-grid tensor, in-plane); early
stopping on the validation AUC. Added for short GPU budgets (weights/MODEL_CARD.md):
He init, zero-init residual BN, warm-up + cosine schedule (--sched, --fit-epochs),
and training-only lesion heads (--aux-seg: deep supervision with the synthetic
lesion masks, dropped at export).
Checkpoints every epoch (out/ckpt.pt) and resumes from it. Fixed seeds. At the
end the best epoch is exported with BN folded: out/csac.safetensors (and out/best.pt).
"""
import argparse
import contextlib
import copy
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
from csacnet import N_FEATURES, CSACNet3D, fold_bn  # noqa: E402
from csac import LESION_GRID  # noqa: E402
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

    def forward(self, x, taps=None):
        taps = {} if taps is None else taps
        x = F.max_pool3d(F.relu(self.stem(x)), 2)
        x = self.stage1(x)
        x = taps["stage2"] = self.stage2(F.max_pool3d(x, 2))
        x = taps["stage3"] = self.stage3(F.max_pool3d(x, 2))
        x = self.stage4(x)
        f = taps["features"] = torch.flatten(F.adaptive_avg_pool3d(x, 1), 1)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(f)))))


# --aux-seg: maps that get a training-only 1x1x1 lesion head (name -> channels). The trunk's
# 16^3 and 8^3 stages for both networks, and CSAC-Net's subnet maps at the same scales (the
# Grad-CAM candidates of docs/heatmaps.md). Targets: csac.lesion_targets, pooled to each scale.
SEG_TAPS = {"resnet": {"stage2": 32, "stage3": 64},
            "csac": {"stage2": 32, "stage3": 64, "subB.conv2": 64, "subC.conv4": 64}}
CLASSES = ("covid", "cap", "normal")  # --aux-classes targets, train/synth/generate.py LABELS
SEG_POS_WEIGHT = 10.0  # lesion cells are ~1 % of the 16^3 cells of a COVID-19 case


class SegHeads(nn.Module):
    """One 1x1x1 conv per tapped map -> 2 logits (ground glass, consolidation) per cell."""

    def __init__(self, arch):
        super().__init__()
        self.names = list(SEG_TAPS[arch])
        self.convs = nn.ModuleList(nn.Conv3d(c, 2, 1) for c in SEG_TAPS[arch].values())

    def loss(self, taps, target):
        """Mean over heads of the BCE against the target's share per cell (avg-pooled to the map)."""
        out = 0.0
        for name, conv in zip(self.names, self.convs):
            f = taps[name].float()
            t = F.adaptive_avg_pool3d(target, f.shape[2:])
            out = out + F.binary_cross_entropy_with_logits(
                conv(f), t, pos_weight=torch.tensor(SEG_POS_WEIGHT, device=f.device))
        return out / len(self.convs)


def make_model(arch):
    m = CSACNet3D() if arch == "csac" else ResNet3D()
    init_weights(m)
    return m


def init_weights(model):
    """He (fan-in, ReLU) init for every conv, and the last BN of each residual
    branch set to zero so a block starts as its shortcut (Goyal et al. 2017).
    PyTorch's default conv init shrinks the RMS of the BN-free subnets 6.5-8x
    (subA, measured: tests/python/test_train.py), so their features started
    far below the BN-normalised trunk's. Inference architecture unchanged."""
    for m in model.modules():
        if isinstance(m, nn.Conv3d):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    for m in model.modules():
        if hasattr(m, "conv2") and hasattr(m, "proj") and hasattr(m.conv2, "bn"):  # a residual Block
            nn.init.zeros_(m.conv2.bn.weight)


def lr_at(step, steps_per_epoch, epochs, peak, sched, warm_epochs=1, flat_epochs=2):
    """Learning rate of a step. cosine: linear warm-up over the first epoch,
    flat until epoch 2 (so the horizon may be fitted after epoch 1 without
    changing any earlier step), then cosine to 2% of peak at `epochs`."""
    if sched == "const":
        return peak
    warm = warm_epochs * steps_per_epoch
    if step < warm:
        return peak * (step + 1) / warm
    t0, t1 = flat_epochs * steps_per_epoch, max(epochs * steps_per_epoch, flat_epochs * steps_per_epoch + 1)
    if step < t0:
        return peak
    f = min(1.0, (step - t0) / (t1 - t0))
    return peak * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * f)))


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


def load_set(data_dir, labels=None):
    """Manifest rows and the stacked float16 tensors (N, 1, 64, 128, 128); labels: keep only
    the cases of these classes."""
    with open(os.path.join(data_dir, "manifest.csv")) as fh:
        rows = [r for r in csv.DictReader(fh)]
    rows = [r for r in rows if r.get("tensor") and (not labels or r["label"] in labels)]
    if not rows:
        raise SystemExit(f"{data_dir}: no tensors in manifest.csv (generate with --tensors yes)")
    x = np.stack([np.load(os.path.join(data_dir, r["tensor"])).astype(np.float16) for r in rows])[:, None]
    y = np.array([int(r["binary_label"]) for r in rows], np.float32)
    return rows, x, y


def load_lesion_targets(data_dir, rows):
    """(N, 2, 16, 16, 16) uint8 lesion shares (csac.lesion_targets); zeros for normal cases.
    A lesion case without its file means the set predates the targets: regenerate it."""
    out = np.zeros((len(rows), 2) + LESION_GRID, np.uint8)
    for k, r in enumerate(rows):
        if r.get("lesion_grid"):
            out[k] = np.load(os.path.join(data_dir, r["lesion_grid"]))
        elif r["label"] != "normal":
            raise SystemExit(f"{data_dir}: {r['file']} has no lesion targets (regenerate the set for --aux-seg)")
    return out


def augment(x, gen, vflip=True, extra=None):
    """Random scale 0.9-1.1, flips of rows and columns, in-plane rotation
    -15..15 deg; x: (B,1,D,H,W) on the training device. Outside -> 0 (= air).
    extra (B,C,d,h,w), e.g. lesion targets, gets the same transform: then
    returns (x, extra)."""
    b = x.shape[0]
    dev = x.device
    ang = (torch.rand(b, generator=gen) * 30 - 15) * math.pi / 180
    sc = torch.rand(b, generator=gen) * 0.2 + 0.9
    fx = torch.where(torch.rand(b, generator=gen) < 0.5, -1.0, 1.0)
    fy = torch.where(torch.rand(b, generator=gen) < 0.5, -1.0, 1.0)
    if not vflip:  # drawn anyway, so the other augmentations keep their random stream
        fy = torch.ones(b)
    c, s = torch.cos(ang) / sc, torch.sin(ang) / sc
    theta = torch.zeros(b, 3, 4)
    # affine_grid coordinates: (x=W, y=H, z=D); output -> input sampling.
    theta[:, 0, 0], theta[:, 0, 1] = c * fx, -s * fx
    theta[:, 1, 0], theta[:, 1, 1] = s * fy, c * fy
    theta[:, 2, 2] = 1 / sc
    grid = F.affine_grid(theta.to(dev), list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if extra is None:
        return out
    g2 = F.affine_grid(theta.to(dev), list(extra.shape), align_corners=False)  # normalised coords: same map
    return out, F.grid_sample(extra, g2, mode="bilinear", padding_mode="zeros", align_corners=False)


def train_step(model, opt, xt, yt, bi, gen, dev, amp, memfmt, vflip=True, aux=None, seg=None, parts=None):
    """One step. aux = (head, targets, weight): a training-only linear head on the pooled
    features, never exported: 1 output = "any lesion" (COVID-19 or CAP, BCE), 3 outputs =
    the class (COVID-19 / CAP / normal, cross-entropy).
    seg = (SegHeads, lesion targets uint8 (N,2,16,16,16), weight): deep supervision of
    the tapped maps with the lesion masks; never exported. parts collects the terms."""
    xb = xt[bi.to(xt.device)].to(dev).float()
    if seg:
        xb, tb = augment(xb, gen, vflip, seg[1][bi.to(seg[1].device)].to(dev).float() / 255)
    else:
        xb = augment(xb, gen, vflip)
    xb = xb.contiguous(memory_format=memfmt)
    yb = yt[bi].to(dev)
    taps = {} if (aux or seg) else None
    with torch.autocast("cuda", dtype=torch.bfloat16) if amp else contextlib.nullcontext():
        logit = model(xb, taps)[:, 0]
    loss = F.binary_cross_entropy_with_logits(logit.float(), yb)
    if parts is not None:
        parts.setdefault("cls", []).append(float(loss))
    if aux:
        head, ya, w = aux
        la = head(taps["features"].float())
        if la.shape[1] == 1:
            loss = loss + w * F.binary_cross_entropy_with_logits(la[:, 0], ya[bi].to(dev))
        else:
            loss = loss + w * F.cross_entropy(la, ya[bi].to(dev).long())
    if seg:
        ls = seg[0].loss(taps, tb)
        loss = loss + seg[2] * ls
        if parts is not None:
            parts.setdefault("seg", []).append(float(ls))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss


def pick_memfmt(choice, model, xt, yt, dev, amp, batch):
    """ndhwc (channels_last_3d) lets cuDNN use tensor-core kernels for bf16
    3D convs on some GPUs and is slower on others: with auto, time 6 steps of
    a throw-away copy each way (after 2 warm-up steps) and keep the faster."""
    fmts = {"ncdhw": torch.contiguous_format, "ndhwc": torch.channels_last_3d}
    if choice != "auto":
        return fmts[choice]
    if dev.type != "cuda":
        return torch.contiguous_format
    times = {}
    for name, fmt in fmts.items():
        m = copy.deepcopy(model).to(memory_format=fmt)
        o = torch.optim.Adam(m.parameters(), lr=1e-5)
        g = torch.Generator().manual_seed(12345)
        for k in range(8):
            if k == 2:
                torch.cuda.synchronize()
                t0 = time.time()
            train_step(m, o, xt, yt, torch.arange(batch) % len(yt), g, dev, amp, fmt)
        torch.cuda.synchronize()
        times[name] = round((time.time() - t0) / 6, 4)
        del m, o
    best = min(times, key=times.get)
    print(json.dumps({"memfmt_s_per_step": times, "memfmt": best}), flush=True)
    return fmts[best]


@torch.no_grad()
def predict(model, x, dev, batch=10, memfmt=torch.contiguous_format):
    model.eval()
    out = []
    for i in range(0, len(x), batch):
        xb = torch.from_numpy(x[i:i + batch]).to(dev).float().contiguous(memory_format=memfmt)
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
    ap.add_argument("--sched", choices=["cosine", "const"], default="cosine",
                    help="cosine: warm-up epoch, flat to epoch 2, cosine to 2%% of --lr at --epochs")
    ap.add_argument("--fit-epochs", action="store_true",
                    help="after epoch 1, lower --epochs to what --max-minutes allows (printed; "
                         "rerun with that --epochs to reproduce the schedule)")
    ap.add_argument("--memfmt", choices=["auto", "ncdhw", "ndhwc"], default="auto",
                    help="activation layout; auto: time both on CUDA for a few steps, else ncdhw")
    ap.add_argument("--aux-lesion", type=float, default=0.0,
                    help="weight of a training-only 'any lesion' (COVID-19 or CAP) loss on the pooled "
                         "features (0: off, the paper's recipe); the exported network is unchanged")
    ap.add_argument("--aux-classes", type=float, default=0.0,
                    help="weight of a training-only 3-class (COVID-19 / CAP / normal) cross-entropy on "
                         "the pooled features (0: off); the exported network is unchanged")
    ap.add_argument("--labels", default="",
                    help="train and validate on these classes only, e.g. covid,normal (a diagnostic: "
                         "can the network tell them apart at all?); default all three")
    ap.add_argument("--aux-seg", type=float, default=0.0,
                    help="weight of training-only lesion heads on the 16^3 and 8^3 maps (SEG_TAPS), "
                         "supervised by the lesion masks (0: off); the exported network is unchanged")
    ap.add_argument("--vflip", type=int, default=1,
                    help="1: flip rows (anterior-posterior) too, as the paper; 0: left-right flips only")
    a = ap.parse_args(argv)

    torch.manual_seed(a.seed)
    np.random.seed(a.seed)
    torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    torch.backends.cudnn.benchmark = dev.type == "cuda"
    os.makedirs(a.out, exist_ok=True)
    labels = a.labels.split(",") if a.labels else None
    if labels and (set(labels) - set(CLASSES) or "covid" not in labels or len(labels) < 2):
        raise SystemExit(f"--labels {a.labels}: give covid and at least one of cap, normal")
    if a.aux_lesion > 0 and a.aux_classes > 0:
        raise SystemExit("--aux-lesion and --aux-classes: use one training-only head at a time")
    rows, x, y = load_set(a.data, labels)
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
    amp = dev.type == "cuda" and bool(a.amp)
    memfmt = pick_memfmt(a.memfmt, model, xt, yt, dev, amp, a.batch)
    model = model.to(memory_format=memfmt)
    aux_head, aux = None, None
    if a.aux_lesion > 0 or a.aux_classes > 0:
        nf = N_FEATURES if a.arch == "csac" else 128
        if a.aux_lesion > 0:
            ya, w, k = np.array([r["label"] in ("covid", "cap") for r in rows], np.float32), a.aux_lesion, 1
        else:
            ya, w, k = np.array([CLASSES.index(r["label"]) for r in rows], np.float32), a.aux_classes, 3
        aux_head = nn.Linear(nf, k).to(dev)
        aux = (aux_head, torch.from_numpy(ya[tr]), w)
    seg_heads, seg = None, None
    if a.aux_seg > 0:
        lt = torch.from_numpy(load_lesion_targets(a.data, rows)[tr])
        seg_heads = SegHeads(a.arch).to(dev)
        seg = (seg_heads, lt.to(dev) if dev.type == "cuda" else lt, a.aux_seg)
    extra = [p for h in (aux_head, seg_heads) if h is not None for p in h.parameters()]
    opt = torch.optim.Adam(list(model.parameters()) + extra, lr=a.lr)
    ckpt = os.path.join(a.out, "ckpt.pt")
    start, best, best_epoch, history = 0, (-1.0, -1e9), -1, []
    if os.path.exists(ckpt):
        st = torch.load(ckpt, map_location=dev)
        model.load_state_dict(st["model"])
        if aux_head is not None and st.get("aux"):
            aux_head.load_state_dict(st["aux"])
        if seg_heads is not None and st.get("seg"):
            seg_heads.load_state_dict(st["seg"])
        opt.load_state_dict(st["opt"])
        start, best, best_epoch, history = st["epoch"] + 1, tuple(st["best"]), st["best_epoch"], st["history"]
        if st.get("fitted_epochs"):  # keep the schedule that --fit-epochs chose
            a.epochs = min(a.epochs, st["fitted_epochs"])
        print(json.dumps({"resumed_at_epoch": start}), flush=True)
    gen = torch.Generator().manual_seed(a.seed)
    gen.manual_seed(a.seed * 1000 + start)  # resumable: each epoch's stream depends on its number
    t_start = time.time()
    steps_per_epoch = len(tr) // a.batch
    val_label = np.array([rows[j]["label"] for j in val])  # COVID vs each negative class, per epoch
    val_subsets = {c: np.isin(val_label, ("covid", c)) for c in ("normal", "cap")}
    epochs = a.epochs
    for epoch in range(start, a.epochs):
        if epoch >= epochs:
            break
        gen.manual_seed(a.seed * 1000 + epoch)
        model.train()
        perm = torch.randperm(len(tr), generator=gen)
        t0, losses, parts = time.time(), [], {}
        for k, i in enumerate(range(0, steps_per_epoch * a.batch, a.batch)):
            for g in opt.param_groups:
                g["lr"] = lr_at(epoch * steps_per_epoch + k, steps_per_epoch, epochs, a.lr, a.sched)
            loss = train_step(model, opt, xt, yt, perm[i:i + a.batch], gen, dev, amp, memfmt, a.vflip, aux, seg,
                              parts)
            losses.append(loss.item())
        if a.fit_epochs and epoch == 1 and start <= 1:
            per_epoch = (time.time() - t_start) / (2 - start)  # epochs run since this start
            fit = int((a.max_minutes * 60 - (time.time() - t_start)) / per_epoch) + 2
            epochs = max(3, min(a.epochs, fit))
            print(json.dumps({"fitted_epochs": epochs, "s_per_epoch": round(per_epoch, 2)}), flush=True)
        s = predict(model, x[val], dev, a.batch, memfmt)
        v_auc = auc(y[val], s)
        v_loss = float(F.binary_cross_entropy_with_logits(torch.from_numpy(s), torch.from_numpy(y[val])))
        p = 1 / (1 + np.exp(-s))
        acc = float(((p >= 0.5) == (y[val] > 0.5)).mean())
        sub = {f"val_auc_{c}": auc(y[val][m], s[m]) for c, m in val_subsets.items()}
        rec = {"epoch": epoch, "loss": float(np.mean(losses)),
               **{f"loss_{k}": float(np.mean(v)) for k, v in parts.items()}, "val_auc": v_auc, **sub, "val_loss": v_loss,
               "val_acc": acc, "lr": opt.param_groups[0]["lr"], "s": round(time.time() - t0, 1)}
        history.append(rec)
        key = (v_auc, -v_loss)
        if key > best:
            best, best_epoch = key, epoch
            torch.save(model.state_dict(), os.path.join(a.out, "best.pt"))
        torch.save({"model": model.state_dict(), "aux": aux_head.state_dict() if aux_head else None,
                    "seg": seg_heads.state_dict() if seg_heads else None,
                    "opt": opt.state_dict(), "epoch": epoch, "best": list(best),
                    "best_epoch": best_epoch, "history": history,
                    "fitted_epochs": epochs if a.fit_epochs else None}, ckpt)
        print(json.dumps(rec), flush=True)
        if epoch - best_epoch >= a.patience:
            print(json.dumps({"early_stop": epoch, "best_epoch": best_epoch}), flush=True)
            break
        if (time.time() - t_start) / 60 > a.max_minutes:
            print(json.dumps({"time_limit": epoch}), flush=True)
            break
    model.load_state_dict(torch.load(os.path.join(a.out, "best.pt"), map_location=dev))
    summary = {"arch": a.arch, "best_epoch": best_epoch, "val_auc": best[0], "val_loss": -best[1],
               "n_train": len(tr), "n_val": len(val), "epochs": epochs, "memfmt": str(memfmt),
               "sched": a.sched, "vflip": a.vflip, "aux_lesion": a.aux_lesion,
               "aux_classes": a.aux_classes, "aux_seg": a.aux_seg, "labels": a.labels or "all",
               "torch": torch.__version__, "command": " ".join(sys.argv)}
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
