"""tune.py - stage 3 of the CPU recipe: fine-tune the deep layers on whole volumes.

    /usr/bin/python3 train/tune.py --weights csac_head.safetensors --train DIR [DIR ...] --val DIR --out csac.safetensors
    /usr/bin/python3 train/tune.py --arch resnet --weights resnet_head_f16.pt --train DIR --val DIR --out resnet_f16.pt

Why: after train/crops.py the trunk finds lesions, but the head only re-weights the pooled
features, and the global average pool dilutes a small lesion among the 64 merge cells (the
shifted test set's misses are the small lesions of small lungs: weights/MODEL_CARD.md). Here the
layers after the 8^3 level learn from whole volumes with the binary label, so they can make a
lesion cell stand out of the average. What stays frozen is computed once per case by the C core
(the BN-folded network): stage3's output (64 @ 8^3), subB.pool1 (64 @ 8^3) and subA's output
(32 @ 4^3); trained are stage4, subB.conv3/conv4, subC and the head (the ResNet: stage4 and its
head). That is ~1 GFLOP a forward pass: an epoch of 600 volumes takes ~15 s on 2 cores.
Adam, BCE; --augment K adds K copies of each training case with the paper's augmentation (their
frozen maps computed once, like the rest), of which each epoch sees one per case. Kept: the epoch
with the lowest validation loss (the AUC saturates near 1 on the validation set and swings with
the calibration), or the mean of the last --average epochs' weights when its validation loss is
lower (the loss swings from epoch to epoch; the mean smooths that). Then Platt scaling on the
validation logits (logit' = a * logit + b, folded into fc3), so that 0.5 means even odds on the
validation set. Same seed, same data: the same weights.
"""
import argparse
import csv
import hashlib
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import export as csac_export  # noqa: E402
import train as T  # noqa: E402
from crops import core_state_dict  # noqa: E402
from csacnet import ConvBN, fold_bn  # noqa: E402

FROZEN = {"csac": (("stage3", (64, 8, 8, 8)), ("subB.pool1", (64, 8, 8, 8)), ("subA", (32, 4, 4, 4))),
          "resnet": (("stage3", (64, 8, 8, 8)),)}
TRAINED = {"csac": ("stage4.", "subB.conv3.", "subB.conv4.", "subC.", "head."),
           "resnet": ("stage4.", "fc1.", "fc2.", "fc3.")}


def load_folded(arch, path):
    """The folded module of a head-stage output: CSAC-Net safetensors (folded, F16) or the
    ResNet's unfolded state_dict (.pt, F16)."""
    if arch == "csac":
        m = fold_bn(T.make_model("csac"))
        from evaluate import load_safetensors
        m.load_state_dict({k: torch.from_numpy(v) for k, v in load_safetensors(path).items()})
        return m
    m = T.make_model("resnet")
    m.load_state_dict({k: v.float() for k, v in torch.load(path, map_location="cpu").items()})
    return fold_bn(m)


def unfold(folded):
    """ResNet3D with BN that passes the folded convs through unchanged (mean 0, var 1 - eps,
    scale 1, shift = the folded bias): evaluate.py --resnet reads this state_dict."""
    m = T.make_model("resnet").eval()
    fsd = folded.state_dict()
    with torch.no_grad():
        for name, mod in m.named_modules():
            if isinstance(mod, ConvBN):
                mod.conv.weight.copy_(fsd[name + ".weight"])
                mod.bn.running_mean.zero_()
                mod.bn.running_var.fill_(1.0 - mod.bn.eps)
                mod.bn.weight.fill_(1.0)
                mod.bn.bias.copy_(fsd[name + ".bias"])
        for k in ("fc1", "fc2", "fc3"):
            getattr(m, k).load_state_dict(getattr(folded, k).state_dict())
    return m


def open_core(arch, m, path, threads):
    """The C core running the folded module m (the ResNet as CSAC-Net with zero subnets); the
    weights file at path is removed once loaded."""
    from evaluate import Core
    sd = core_state_dict(m, "csac") if arch == "csac" else core_state_dict(unfold(m), "resnet")
    csac_export.save_safetensors(sd, path, metadata={"model": "csac_v1"})
    try:
        return Core(path, n_threads=threads)
    finally:
        os.remove(path)


def frozen_features(core, arch, data_dir, augment=0, seed=0, dtype=np.float16):
    """The frozen maps of every case of a generated set (float16 to save memory, unless dtype),
    and the labels.
    augment = K > 0: also the maps of K augmented copies of each case (train.augment: the paper's
    scale, flips and rotation, drawn from seed), at rows i * (K + 1) + j, j = 0 the case itself."""
    with open(os.path.join(data_dir, "manifest.csv")) as fh:
        rows = [r for r in csv.DictReader(fh) if r["tensor"]]
    n = len(rows) * (augment + 1)
    out = {name: np.zeros((n,) + shape, dtype) for name, shape in FROZEN[arch]}
    gen = torch.Generator().manual_seed(seed)
    for i, r in enumerate(rows):
        x = np.load(os.path.join(data_dir, r["tensor"])).astype(np.float32)
        for j in range(augment + 1):
            xj = x if j == 0 else T.augment(torch.from_numpy(x)[None, None], gen)[0, 0].numpy()
            core.forward(np.ascontiguousarray(xj))
            for name, shape in FROZEN[arch]:
                y = core.layer_output(name)
                assert y.shape == shape, (name, y.shape)
                out[name][i * (augment + 1) + j] = y
    return out, np.array([r["label"] for r in rows])


def tail(m, arch, f):
    """The logit from the frozen maps f (dict of N x C x D x H x W tensors)."""
    s3 = f["stage3"]
    s4 = m.stage4(s3)
    if arch == "resnet":
        x = s4.mean((2, 3, 4))
        return m.fc3(F.relu(m.fc2(F.relu(m.fc1(x)))))[:, 0]
    b = f["subB.pool1"]
    for name, step in m.subB.steps[3:]:  # conv3, pool2, conv4
        b = F.max_pool3d(b, step) if isinstance(step, int) else F.relu(getattr(m.subB, name)(b))
    c = m.subC(s3)
    return m.head(torch.cat([s4, f["subA"], b, c], 1).mean((2, 3, 4)))[:, 0]


def cached_features(core, arch, weights, data_dir, cache, augment=0, seed=0, dtype=np.float16):
    """frozen_features, kept in cache/ (keyed by the weights' bytes, the set's manifest, the
    augmentation and the dtype)."""
    if not cache:
        return frozen_features(core, arch, data_dir, augment, seed, dtype)
    h = hashlib.sha256()
    for f in (weights, os.path.join(data_dir, "manifest.csv")):
        with open(f, "rb") as fh:
            h.update(fh.read())
    if augment:
        h.update(f"augment {augment} seed {seed}".encode())
    if np.dtype(dtype) != np.float16:
        h.update(f"dtype {np.dtype(dtype).name}".encode())
    path = os.path.join(cache, f"{arch}_{h.hexdigest()[:16]}.npz")
    if os.path.exists(path):
        z = np.load(path)
        return {name: z[name] for name, _ in FROZEN[arch]}, z["labels"]
    feats, labels = frozen_features(core, arch, data_dir, augment, seed, dtype)
    os.makedirs(cache, exist_ok=True)
    np.savez(path, labels=labels, **feats)
    return feats, labels


def platt(s, y, iters=100):
    """(a, b) minimising the BCE of a * s + b against y: Newton's method with step halving
    (a plain Newton step overshoots on well separated scores), float64."""
    def loss(a, b):
        z = a * s + b
        return float(np.sum(np.logaddexp(0, z) - y * z))
    a, b = 1.0, 0.0
    cur = loss(a, b)
    for _ in range(iters):
        p = 1 / (1 + np.exp(-(a * s + b)))
        g = np.array([np.sum((p - y) * s), np.sum(p - y)])
        w = p * (1 - p) + 1e-12
        H = np.array([[np.sum(w * s * s), np.sum(w * s)], [np.sum(w * s), np.sum(w)]]) + 1e-9 * np.eye(2)
        step, t = np.linalg.solve(H, g), 1.0
        while t > 1e-6 and loss(a - t * step[0], b - t * step[1]) > cur:
            t /= 2
        a, b = a - t * step[0], b - t * step[1]
        new = loss(a, b)
        if cur - new < 1e-12 * max(1.0, cur):
            break
        cur = new
    return float(a), float(b)


def calibrate(m, arch, a, b):
    """Fold logit' = a * logit + b into the last FC layer."""
    fc3 = m.fc3 if arch == "resnet" else m.head.fc3
    with torch.no_grad():
        fc3.weight.mul_(a)
        fc3.bias.mul_(a).add_(b)


def batch(feats, idx):
    return {k: torch.from_numpy(v[idx].astype(np.float32)) for k, v in feats.items()}


def scores(m, arch, feats, n, bs=16):
    with torch.no_grad():
        return np.concatenate([tail(m, arch, batch(feats, np.arange(i, min(n, i + bs)))).numpy()
                               for i in range(0, n, bs)])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", choices=["csac", "resnet"], default="csac")
    ap.add_argument("--weights", required=True, help="crops.py head output: .safetensors (csac) or .pt (resnet)")
    ap.add_argument("--train", required=True, nargs="+", help="one or more generated sets")
    ap.add_argument("--val", required=True, help="a generated set with another seed (selects the epoch)")
    ap.add_argument("--out", required=True, help="CSAC-Net: .safetensors (F16); ResNet: a state_dict .pt (F16)")
    ap.add_argument("--epochs", type=int, default=25)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=3e-5)
    ap.add_argument("--wd", type=float, default=1e-4)
    ap.add_argument("--seed", type=int, default=0, help="batch order and copy draws (and the copies, unless --augment-seed)")
    ap.add_argument("--augment-seed", type=int, help="seed of the augmented copies (default: --seed); fixing it "
                    "varies only the training order, and keeps the cached maps")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cache", help="a folder that keeps the frozen maps between runs")
    ap.add_argument("--average", type=int, default=15, help="also try the mean weights of the last N epochs (0: no)")
    ap.add_argument("--augment", type=int, default=0,
                    help="K augmented copies of each training case (the paper's augmentation, maps computed once); "
                         "each epoch sees one of the K + 1 versions of every case")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    m = load_folded(a.arch, a.weights)
    core = open_core(a.arch, m, a.out + ".core.safetensors", a.threads)
    t0 = time.time()
    aseed = a.seed if a.augment_seed is None else a.augment_seed
    parts = [cached_features(core, a.arch, a.weights, d, a.cache, a.augment, aseed) for d in a.train]
    ftr = {k: np.concatenate([f[k] for f, _ in parts]) for k in parts[0][0]}
    ltr = np.concatenate([lab for _, lab in parts])
    fva, lva = cached_features(core, a.arch, a.weights, a.val, a.cache)
    core.close()
    print(json.dumps({"features_s": round(time.time() - t0), "train": len(ltr), "val": len(lva)}), flush=True)
    ytr, yva = (ltr == "covid").astype(np.float32), lva == "covid"

    for p in m.parameters():
        p.requires_grad_(False)
    params = [p for k, p in m.named_parameters() if k.startswith(TRAINED[a.arch])]
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(params, a.lr, weight_decay=a.wd)

    def report(ep, s, extra):
        v = T.auc(yva, s)
        loss = float(F.binary_cross_entropy_with_logits(torch.from_numpy(s).double(), torch.from_numpy(yva).double()))
        sub = {c: T.auc(yva[np.isin(lva, ("covid", c))], s[np.isin(lva, ("covid", c))]) for c in ("normal", "cap")}
        sens, spec = float((s[yva] > 0).mean()), float((s[~yva] <= 0).mean())
        print(json.dumps({"epoch": ep, "s": round(time.time() - t0), "val_loss": round(loss, 4), "val_auc": round(v, 4),
                          **{f"val_auc_{k}": round(u, 4) for k, u in sub.items()},
                          "val_sens_05": round(sens, 3), "val_spec_05": round(spec, 3), **extra}), flush=True)
        return loss, v

    best = (*report(0, scores(m, a.arch, fva, len(lva)), {}), 0, {k: t.clone() for k, t in m.state_dict().items()})
    rng = np.random.default_rng(a.seed)
    avg, n_avg = None, 0
    for ep in range(1, a.epochs + 1):
        perm, tot = rng.permutation(len(ytr)), 0.0
        for i in range(0, len(perm), a.batch):
            idx = np.sort(perm[i:i + a.batch])
            # which version of each case (no draw without --augment: the same stream as before)
            rows = idx * (a.augment + 1) + (rng.integers(0, a.augment + 1, len(idx)) if a.augment else 0)
            loss = F.binary_cross_entropy_with_logits(tail(m, a.arch, batch(ftr, rows)), torch.from_numpy(ytr[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            tot += float(loss) * len(idx)
        loss, v = report(ep, scores(m, a.arch, fva, len(lva)), {"train_loss": round(tot / len(ytr), 4)})
        if loss < best[0]:
            best = (loss, v, ep, {k: t.clone() for k, t in m.state_dict().items()})
        if a.average and ep > a.epochs - a.average:
            cur = m.state_dict()
            avg = {k: t.double().clone() for k, t in cur.items()} if avg is None else \
                {k: avg[k] + cur[k].double() for k in avg}
            n_avg += 1
    if avg is not None:
        m.load_state_dict({k: (t / n_avg).float() for k, t in avg.items()})
        loss, v = report(f"mean of {a.epochs - n_avg + 1}-{a.epochs}", scores(m, a.arch, fva, len(lva)), {})
        if loss < best[0]:
            best = (loss, v, f"mean of {a.epochs - n_avg + 1}-{a.epochs}", m.state_dict())
    loss, v, ep, sd = best
    m.load_state_dict(sd)
    pa, pb = platt(scores(m, a.arch, fva, len(lva)).astype(np.float64), yva.astype(np.float64))
    calibrate(m, a.arch, pa, pb)
    print(json.dumps({"kept_epoch": ep, "platt_a": round(pa, 4), "platt_b": round(pb, 4)}), flush=True)
    report(ep, scores(m, a.arch, fva, len(lva)), {"calibrated": True})
    if a.arch == "csac":
        meta = {"model": "csac_v1", "val_auc": f"{v:.4f}", "tune_epoch": str(ep), "platt": f"{pa:.6g} {pb:.6g}"}
        csac_export.save_safetensors({k: t.contiguous() for k, t in m.state_dict().items()}, a.out, f16=True,
                                     metadata=meta)
    else:
        torch.save({k: t.detach().half() for k, t in unfold(m).state_dict().items()}, a.out)
    print(json.dumps({"wrote": a.out, "val_auc": v, "val_loss": loss, "epoch": ep, "command": " ".join(sys.argv)}),
          flush=True)


if __name__ == "__main__":
    main()
