"""Simple global features of a CT volume (for the leakage check) and a threshold lung mask.

lung_mask_threshold() is the classic non-learned lung segmentation (threshold, connected components,
hole filling); it is also used by insert_real.py on real scans.
"""
import numpy as np
from scipy import ndimage

HIST_EDGES = np.array([-1000, -950, -900, -875, -850, -825, -800, -750, -700, -600, -500, -400],
                      np.float32)


def lung_mask_threshold(v, thr=-400.0, vox_ml=None, max_hole_ml=15.0):
    """v: HU volume [z, y, x].  Body = largest component above thr (filled per slice); lungs = the
    low-density components inside it (largest two, or one if they touch), holes filled per slice
    (vessels and lesions inside the lungs are included)."""
    body = v > thr
    lab, n = ndimage.label(body)
    if n == 0:
        return np.zeros(v.shape, bool)
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    body = lab == int(np.argmax(sizes))
    st2 = np.zeros((3, 3, 3), bool)
    st2[1] = True
    filled = ndimage.binary_fill_holes(body, structure=st2)
    cand = filled & ~body
    # trachea/main bronchi and bowel gas are small or thin: keep the two largest 3-D components
    lab, n = ndimage.label(cand)
    if n == 0:
        return cand
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    order = np.argsort(sizes)[::-1]
    keep = [order[0]]
    if n > 1 and sizes[order[1]] > 0.2 * sizes[order[0]]:
        keep.append(order[1])
    lung = np.isin(lab, keep)
    filled = ndimage.binary_fill_holes(lung, structure=st2)
    if vox_ml is not None:
        # fill only small holes (vessels, nodules); large ones are the heart or a diaphragm dome
        # surrounded by lung in an axial slice
        holes = filled & ~lung
        hl, nh = ndimage.label(holes)
        if nh:
            hs = np.bincount(hl.ravel()) * vox_ml
            hs[0] = 0
            big = hs > max_hole_ml
            filled &= ~big[hl]
    return filled


def _block_max(m, size):
    """out[i] = max(m[i : i + size]) per axis (a forward-looking window), computed only in the
    bounding box of the nonzero voxels."""
    out = np.zeros(m.shape, bool)
    nzs = [np.nonzero(m.any(axis=tuple(a for a in range(3) if a != ax)))[0] for ax in range(3)]
    if not all(len(n) for n in nzs):
        return out
    bb = tuple(slice(max(0, n[0] - s), n[-1] + 1) for n, s in zip(nzs, size))
    sub = ndimage.maximum_filter(m[bb], size=size, origin=tuple(-(s // 2) for s in size), mode="constant")
    out[bb] = sub
    return out


def robust_noise(vol, nslices=5):
    """Noise sigma estimate from horizontal neighbour differences in soft tissue (-150..150 HU)."""
    Z = vol.shape[0]
    ks = np.linspace(Z * 0.3, Z * 0.7, nslices).astype(int)
    vals = []
    for k in ks:
        a = vol[k]
        d = a[:, 1:] - a[:, :-1]
        m = (a[:, 1:] > -150) & (a[:, 1:] < 150) & (a[:, :-1] > -150) & (a[:, :-1] < 150)
        if m.sum() > 100:
            dd = d[m]
            vals.append(1.4826 * np.median(np.abs(dd - np.median(dd))) / np.sqrt(2))
    return float(np.median(vals)) if vals else 0.0


def _hu(a, scale):
    slope, inter = scale
    return a.astype(np.float32) * np.float32(slope) + np.float32(inter)


def global_features(vol, spacing, thickness, lesion=None, scale=(1.0, 0.0), lesion_dec=None):
    """vol: native stored volume [z, y, x] (HU = vol*slope+inter); lesion: native label or None;
    lesion_dec: the label already on the decimated grid.  Decimates to ~5 mm x ~5 mm."""
    kz = max(1, int(round(5.0 / thickness)))
    st = max(1, int(round(5.0 / spacing)))
    v = _hu(vol[::kz, ::st, ::st], scale)
    vox_ml = (thickness * kz) * (spacing * st) ** 2 / 1000.0
    lung = lung_mask_threshold(v, vox_ml=vox_ml)
    f = {}
    f["lung_ml"] = float(lung.sum() * vox_ml)
    body = v > -400
    f["body_area_cm2"] = float(body.sum(axis=(1, 2)).mean() * (spacing * st) ** 2 / 100.0)
    Z = vol.shape[0]
    ks = np.linspace(Z * 0.3, Z * 0.7, 5).astype(int)
    f["noise_hu"] = robust_noise(_hu(vol[ks], scale))
    f["thickness"] = float(thickness)
    f["spacing"] = float(spacing)
    lv = v[lung]
    # anatomical lung volume (lesions included; uses the ground-truth mask, leakage check only)
    f["lung_ml_true"] = f["lung_ml"]
    if lesion is not None or lesion_dec is not None:
        if lesion_dec is not None:
            ld = lesion_dec > 0
        else:   # block maximum, so that small lesions are not lost by the decimation
            ld = _block_max(lesion > 0, (kz, st, st))[::kz, ::st, ::st]
        f["lung_ml_true"] = float((lung | ld).sum() * vox_ml)
        # 'outside lesions' excludes a 1-voxel (~5 mm) margin: soft lesion edges and the ground-glass
        # halo of a consolidation raise the density just outside the half-maximum mask
        les = ndimage.binary_dilation(ld, iterations=1)[lung]
        lv_out = lv[~les]
    else:
        lv_out = lv
    for name, arr in (("all", lv), ("out", lv_out)):
        if len(arr) == 0:
            arr = np.array([-1000.0], np.float32)
        h, _ = np.histogram(np.clip(arr, -1000, -401), bins=HIST_EDGES)
        h = h / max(1, len(arr))
        for i, x in enumerate(h):
            f["h%s_%d" % (name, i)] = float(x)
        f["mean_%s" % name] = float(arr.mean())
        f["std_%s" % name] = float(arr.std())
        f["p95_%s" % name] = float(np.percentile(arr, 95))
        f["frac_gt500_%s" % name] = float((arr > -500).mean())
    return f


def case_features(case):
    f = {"index": case.get("index", -1)}
    geo = case["geom"]
    kz = max(1, int(round(5.0 / geo["thickness"])))
    ld = None
    if case["lab"] is None and case["label"] != "normal" and "zmap" in geo:
        st = max(1, int(round(5.0 / geo["spacing"])))
        sc = geo.get("int_scale", 2)
        # block maximum over the decimation window (in internal pixels), then pick
        li = case["lab_int"] > 0
        bs = max(1, int(round(st / sc)))
        li = _block_max(li, (max(1, kz), bs, bs))
        li = li[geo["zmap"][::kz]]
        # native decimated pixel n*st lies in internal pixel (n*st)//sc
        iy = (np.arange(0, li.shape[1] * sc, st) // sc)
        ld = li[:, iy][:, :, iy]
    g = global_features(case["vol"], geo["spacing"], geo["thickness"], case["lab"], case["scale"], ld)
    f.update(g)
    # oracle lesion features (what the label should be learnt from)
    li = case["lab_int"]
    lung = case["obj"].lung > 0
    n = max(1, int(lung.sum()))
    f["les_ggo_frac"] = float(((li == 1) & lung).sum() / n)
    f["les_cons_frac"] = float(((li == 2) & lung).sum() / n)
    f["label"] = case["label"]
    f["header"] = case["p"]["header"]
    f["kernel"] = case["p"]["kernel"]
    return f
