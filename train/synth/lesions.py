"""Lesion models on the internal grid of a phantom (or of a real scan wrapped as a phantom-like
object with attributes hu, lung, airway, zs, dz, sp, X, Y and the methods idx_to_pf / lower_lobe).

covid(): 1-6 ground-glass opacities (-750..-350 HU), peripheral / subpleural, often bilateral,
         lower-lobe predominant, soft margins, some crazy-paving or a consolidated core,
         0.5-8 % of the lung volume in total.
cap():   lobar or segmental consolidation (-100..+50 HU) with air bronchograms, mostly unilateral,
         or bronchopneumonia (clustered nodular opacities).
confounders(): drawn with the same probabilities for every class (small nodule, dependent
         atelectasis, emphysema), so that they cannot carry the label.

Every function edits obj.hu in place and writes the lesion label (1 ground glass, 2 consolidation)
into the uint8 volume it returns.
"""
import numpy as np
from scipy import ndimage

from . import raster

GGO_HU = (-720.0, -380.0)
CONS_HU = (-90.0, 45.0)


class LungGeom:
    """Derived lung geometry: coarse distance to the pleura, dependent-boundary distance."""

    def __init__(self, obj, step=4):
        self.obj = obj
        lung = obj.lung > 0
        self.step = step
        co = lung[:, ::step, ::step]
        self.coarse = co
        # distance to the pleura (mm) on the coarse grid, computed in the lung bounding box
        self.dist = np.zeros(co.shape, np.float32)
        nzs = [np.nonzero(co.any(axis=ax))[0] for ax in ((1, 2), (0, 2), (0, 1))]
        if all(len(n) for n in nzs):
            bb = tuple(slice(max(0, n[0] - 1), n[-1] + 2) for n in nzs)
            self.dist[bb] = ndimage.distance_transform_edt(
                co[bb], sampling=(obj.dz, obj.sp * step, obj.sp * step))
        self.nvox = int(lung.sum())
        self.voxml = obj.dz * obj.sp * obj.sp / 1000.0


def _rot(rng):
    q = rng.standard_normal(4)
    q /= np.linalg.norm(q)
    a, b, c, d = q
    return np.array([[a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c)],
                     [2 * (b * c + a * d), a * a - b * b + c * c - d * d, 2 * (c * d - a * b)],
                     [2 * (b * d - a * c), 2 * (c * d + a * b), a * a - b * b - c * c + d * d]])


def _bbox(obj, ctr_idx, rad_mm):
    sp = np.array([obj.dz, obj.sp, obj.sp])
    r = np.ceil(np.asarray(rad_mm) / sp).astype(int) + 2
    lo = np.maximum(np.asarray(ctr_idx) - r, 0)
    hi = np.minimum(np.asarray(ctr_idx) + r + 1, obj.hu.shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))


def _blob_alpha(obj, rng, ctr_idx, radii_mm, rough=0.3, soft=0.35, cell_mm=7.0):
    """Irregular soft-edged ellipsoid opacity (alpha 0..1) in a bounding box; returns (slices,
    alpha, f) with f the signed 'depth' field (1 at the centre, 0 at the nominal margin)."""
    R = _rot(rng)
    rmax = float(np.max(radii_mm)) * 1.45 + 3
    bb = _bbox(obj, ctr_idx, [rmax] * 3)
    shp = tuple(s.stop - s.start for s in bb)
    sp = np.array([obj.dz, obj.sp, obj.sp], np.float32)
    zz, yy, xx = np.meshgrid(*[(np.arange(s.start, s.stop) - c) * d for s, c, d in zip(bb, ctr_idx, sp)],
                             indexing="ij", sparse=True)
    A = R / np.asarray(radii_mm)[:, None]
    u0 = A[0, 0] * zz + A[0, 1] * yy + A[0, 2] * xx
    u1 = A[1, 0] * zz + A[1, 1] * yy + A[1, 2] * xx
    u2 = A[2, 0] * zz + A[2, 1] * yy + A[2, 2] * xx
    rho = np.sqrt(u0 * u0 + u1 * u1 + u2 * u2)
    cells = [max(2, int(round(n * d / cell_mm)) + 1) for n, d in zip(shp, sp)]
    nz = raster.smooth_noise(rng, shp, cells)
    f = (1.0 - rho + rough * nz).astype(np.float32)
    alpha = raster.smoothstep((f + soft * 0.5) / soft)
    return bb, alpha.astype(np.float32), f


def _pick(rng, w):
    w = np.asarray(w, np.float64)
    w = w / w.sum()
    return int(rng.choice(len(w), p=w))


def _apply_opacity(obj, bb, alpha, target, label_vol, label, keep_air=False):
    """hu += alpha * max(target - hu, 0) (vessels brighter than the target are kept); label where
    alpha > 0.5 inside the lung."""
    lung = obj.lung[bb] > 0
    a = alpha * lung
    sub = obj.hu[bb]
    if keep_air:
        a = a * ~obj.airway[bb]
    sub += a * np.maximum(target - sub, 0.0)
    lab = label_vol[bb]
    m = (a > 0.5)
    lab[m & (lab < label)] = label
    return int(m.sum())


def _sites(obj, geo):
    c = getattr(geo, "_sites", None)
    if c is None:
        iz, iy, ix = np.nonzero(geo.coarse)
        d = geo.dist[iz, iy, ix]
        iyf, ixf = iy * geo.step, ix * geo.step
        lab = obj.lung[iz, iyf, ixf]
        z, Y, X = obj.idx_to_pf(iz, iyf, ixf)
        low = obj.lower_lobe(z, Y)
        c = geo._sites = (iz, iyf, ixf, d, lab, z, Y, X, low)
    return c


def _sample_site(obj, geo, rng, side=None, periph=12.0, lower_w=2.0, post_w=1.4, lobe=None):
    iz, iyf, ixf, d, lab, z, Y, X, low = _sites(obj, geo)
    w = np.exp(-d / periph)
    w = w * np.where(low, lower_w, 1.0) * np.where(Y > 0, post_w, 1.0)
    if side is not None:
        w = w * (lab == side)
    if lobe is not None:
        w = w * lobe(z, Y, X, lab)
    if w.sum() <= 0:
        w = np.ones_like(w)
    k = _pick(rng, w)
    return (int(iz[k]), int(iyf[k]), int(ixf[k])), float(d[k]), int(lab[k])


# ----------------------------------------------------------------------------------------------
def covid(obj, rng, label_vol, geo=None):
    geo = geo or LungGeom(obj)
    n = int(rng.choice([1, 2, 3, 4, 5, 6], p=[0.14, 0.2, 0.22, 0.2, 0.14, 0.10]))
    frac_total = float(np.exp(rng.uniform(np.log(0.006), np.log(0.07))))
    w = rng.dirichlet(np.full(n, 1.2))
    lung_ml = geo.nvox * geo.voxml
    bilateral = n >= 2 and rng.random() < 0.85
    first_side = 1 if rng.random() < 0.55 else 2
    info = {"n_lesions": n, "target_fraction": frac_total, "lesions": []}
    for i in range(n):
        if bilateral:
            side = first_side if i % 2 == 0 else 3 - first_side
        else:
            side = first_side
        vol_ml = max(0.4, frac_total * lung_ml * w[i])
        r_eq = (3 * vol_ml * 1000 / (4 * np.pi)) ** (1 / 3.0)
        asp = rng.uniform(0.65, 1.5, 3)
        asp /= np.cbrt(asp.prod())
        radii = r_eq * asp
        ctr, dpl, s_ = _sample_site(obj, geo, rng, side=side, periph=8.0, lower_w=2.2, post_w=1.5)
        # pull the centre toward the pleura so that the lesion abuts it (subpleural, broad base)
        bb, alpha, f = _blob_alpha(obj, rng, ctr, radii * 1.08, rough=rng.uniform(0.2, 0.4),
                                   soft=rng.uniform(0.3, 0.6), cell_mm=rng.uniform(5, 9))
        shp = alpha.shape
        T = rng.uniform(*GGO_HU)
        var = raster.smooth_noise(rng, shp, [max(2, s // 3) for s in shp]) * rng.uniform(20, 60)
        target = T + var
        kind = "ggo"
        if rng.random() < 0.25:       # crazy paving: septal network over the GGO
            kind = "crazy_paving"
            cells = [max(3, int(s * d / 4.0)) for s, d in zip(shp, (obj.dz, obj.sp, obj.sp))]
            nz = raster.smooth_noise(rng, shp, cells, order=1)
            ridge = np.exp(-(nz / 0.28) ** 2)
            target = target + rng.uniform(120, 220) * ridge
        n_core = 0
        if rng.random() < 0.3:        # small consolidated core
            kind += "+core"
            core = raster.smoothstep((f - 0.45) / 0.2)
            Tc = rng.uniform(-250, 0)
            target = target + core * (Tc - target)
        nv = _apply_opacity(obj, bb, alpha, target.astype(np.float32), label_vol, 1)
        if "core" in kind:
            lung = obj.lung[bb] > 0
            lab = label_vol[bb]
            lab[(core > 0.5) & (alpha > 0.5) & lung] = 2
        zc_, Yc_, Xc_ = obj.idx_to_pf(*ctr)
        info["lesions"].append({"side": s_, "kind": kind, "hu": round(T, 1), "vol_ml": round(nv * geo.voxml, 2),
                                "pleura_mm": round(dpl, 1), "lower": bool(obj.lower_lobe(zc_, Yc_))})
    # small satellite ground-glass patches (MosMed CT-1 masks show many small components)
    nsat = int(rng.choice([0, 1, 2, 3, 4, 6, 8], p=[0.12, 0.13, 0.18, 0.18, 0.17, 0.12, 0.10]))
    lung = obj.lung > 0
    for i in range(nsat + 3):
        if i >= nsat:
            # top up: the total must reach 0.5 % of the lung volume (clipping at the pleura can
            # leave a case below it)
            frac = float((label_vol[lung] > 0).sum()) / max(1, geo.nvox)
            if frac >= 0.0055:
                break
            vol_ml = max(1.0, (0.007 - frac) * lung_ml)
        else:
            vol_ml = float(np.exp(rng.uniform(np.log(0.4), np.log(3.0))))
        side = first_side if (not bilateral and rng.random() < 0.7) else int(rng.integers(1, 3))
        r_eq = (3 * vol_ml * 1000 / (4 * np.pi)) ** (1 / 3.0)
        ctr, dpl, s_ = _sample_site(obj, geo, rng, side=side, periph=8.0, lower_w=2.2, post_w=1.5)
        bb, alpha, f = _blob_alpha(obj, rng, ctr, [r_eq, r_eq * rng.uniform(0.7, 1.3), r_eq], rough=0.3,
                                   soft=0.5, cell_mm=4)
        T = rng.uniform(*GGO_HU)
        nv = _apply_opacity(obj, bb, alpha, np.float32(T), label_vol, 1)
        zc_, Yc_, Xc_ = obj.idx_to_pf(*ctr)
        info["lesions"].append({"side": s_, "kind": "ggo_satellite", "hu": round(T, 1),
                                "vol_ml": round(nv * geo.voxml, 2), "pleura_mm": round(dpl, 1),
                                "lower": bool(obj.lower_lobe(zc_, Yc_))})
    return info


def _lobe_fn(obj, which):
    B, Lh = obj.p["B"], obj.p["Lh"]

    def f(z, Y, X, lab):
        low = obj.lower_lobe(z, Y)
        if which == "lower":
            return low.astype(float)
        if which == "middle":   # right middle lobe: anterior part below the minor fissure
            return ((~low) & (lab == 1) & (z < 0.5 * Lh) & (Y < 0)).astype(float)
        return ((~low) & (z >= 0.45 * Lh)).astype(float)
    return f


def cap(obj, rng, label_vol, geo=None):
    geo = geo or LungGeom(obj)
    info = {"lesions": []}
    if rng.random() < 0.72:
        info["pattern"] = "lobar_segmental"
        nreg = 1 if rng.random() < 0.8 else 2
        side0 = 1 if rng.random() < 0.55 else 2
        for i in range(nreg):
            side = side0 if i == 0 else 3 - side0
            which = str(rng.choice(["lower", "upper", "middle"], p=[0.6, 0.25, 0.15]))
            if which == "middle" and side == 2:
                which = "lower"
            ctr, dpl, s_ = _sample_site(obj, geo, rng, side=side, periph=6.0, lower_w=1.0, post_w=1.2,
                                        lobe=_lobe_fn(obj, which))
            lobar = rng.random() < 0.35
            half = np.deg2rad(rng.uniform(38, 55) if lobar else rng.uniform(20, 36))
            hz, hy, hx = obj.hila.get(side, obj.hila[1]) if hasattr(obj, "hila") else (0, 0, 0)
            z0, Y0, X0 = obj.idx_to_pf(*ctr)
            axis = np.array([z0 - hz, Y0 - hy, X0 - hx], np.float32)
            L = float(np.linalg.norm(axis)) + 1e-3
            axis /= L
            # region of interest: bounding box of this lung (no truncation of large wedges)
            sidem = obj.lung == side
            nzs = [np.nonzero(sidem.any(axis=ax))[0] for ax in ((1, 2), (0, 2), (0, 1))]
            if not all(len(n) for n in nzs):
                continue
            bb = tuple(slice(int(n[0]), int(n[-1]) + 1) for n in nzs)
            iz = np.arange(bb[0].start, bb[0].stop)[:, None, None]
            iy = np.arange(bb[1].start, bb[1].stop)[None, :, None]
            ix = np.arange(bb[2].start, bb[2].stop)[None, None, :]
            z, Y, X = obj.idx_to_pf(iz, iy, ix)
            dzv, dyv, dxv = z - hz, Y - hy, X - hx
            dist = np.sqrt(dzv * dzv + dyv * dyv + dxv * dxv) + 1e-3
            cosang = (dzv * axis[0] + dyv * axis[1] + dxv * axis[2]) / dist
            shp = cosang.shape
            nz = raster.smooth_noise(rng, shp, [max(2, s * d // 12) for s, d in zip(shp, (obj.dz, obj.sp, obj.sp))])
            lobe = (_lobe_fn(obj, which)(z, Y, X, obj.lung[bb]) > 0) & (obj.lung[bb] == side)
            wid = 1.0 - np.cos(half)
            soft = 0.35 * wid
            a = raster.smoothstep((cosang - np.cos(half) + 0.25 * wid * nz) / soft + 0.5)
            a *= raster.smoothstep((dist - 0.25 * L) / 15.0)
            a = (a * lobe).astype(np.float32)
            T = rng.uniform(*CONS_HU)
            target = (T + 15 * nz).astype(np.float32)
            # ground-glass halo around the consolidation
            halo = raster.smoothstep((cosang - np.cos(min(half * 1.3, half + np.deg2rad(10))) + 0.25 * wid * nz) / soft + 0.5) * lobe
            halo = np.maximum(halo * 0.5, 0) * (obj.lung[bb] > 0)
            sub = obj.hu[bb]
            sub += (halo * ~obj.airway[bb]) * np.maximum(-550.0 - sub, 0)
            # the ground-glass halo is abnormal lung too: label it (1) where it raises the density
            # by more than ~40 % of its full effect (alpha > 0.2)
            labv = label_vol[bb]
            labv[(halo > 0.2) & (labv == 0)] = 1
            nv = _apply_opacity(obj, bb, a, target, label_vol, 2, keep_air=True)
            info["lesions"].append({"side": side, "lobe": which, "lobar": bool(lobar), "hu": round(T, 1),
                                    "vol_ml": round(nv * geo.voxml, 2)})
    else:
        info["pattern"] = "bronchopneumonia"
        ncl = 1 if rng.random() < 0.65 else 2
        side0 = 1 if rng.random() < 0.5 else 2
        for c in range(ncl):
            side = side0 if c == 0 else 3 - side0
            ctr, dpl, s_ = _sample_site(obj, geo, rng, side=side, periph=25.0, lower_w=2.5, post_w=1.5)
            nn_ = int(rng.integers(10, 28))
            for j in range(nn_ + 60):
                if j >= nn_ and float((label_vol[obj.lung > 0] > 0).sum()) >= 0.008 * geo.nvox:
                    break
                off = rng.normal(0, 22.0, 3) / np.array([obj.dz, obj.sp, obj.sp])
                pc = np.clip(np.array(ctr) + off.astype(int), 0, np.array(obj.hu.shape) - 1)
                if obj.lung[tuple(pc)] == 0:
                    continue
                r = rng.uniform(4.0, 10.0)
                bb, alpha, f = _blob_alpha(obj, rng, pc, [r, r * rng.uniform(0.8, 1.3), r], rough=0.25,
                                           soft=0.5, cell_mm=4)
                T = rng.uniform(-350, 10)
                nv = _apply_opacity(obj, bb, alpha, np.float32(T), label_vol, 2, keep_air=True)
                info["lesions"].append({"side": side, "kind": "nodule", "hu": round(T, 1),
                                        "vol_ml": round(nv * geo.voxml, 2)})
    return info


def confounders(obj, rng, geo=None):
    """Label-independent findings, same probabilities in every class."""
    geo = geo or LungGeom(obj)
    info = []
    if rng.random() < 0.25:       # small solid nodule
        ctr, d, s_ = _sample_site(obj, geo, rng, periph=60.0, lower_w=1.0, post_w=1.0)
        r = rng.uniform(2.0, 5.0)
        bb, alpha, f = _blob_alpha(obj, rng, ctr, [r, r, r], rough=0.1, soft=0.3, cell_mm=4)
        sub = obj.hu[bb]
        a = alpha * (obj.lung[bb] > 0)
        sub += a * (rng.uniform(10, 60) - sub)
        info.append("nodule")
    if rng.random() < 0.35:       # dependent (posterior basal) atelectasis band
        full = obj.lung > 0
        Z = full.shape[0]
        thick = rng.uniform(3.0, 9.0)
        zcut = obj.zs[int(np.clip(rng.uniform(0.25, 0.6) * Z, 0, Z - 1))]
        Tat = rng.uniform(-480, -200)
        nzs = [np.nonzero(full.any(axis=ax))[0] for ax in ((1, 2), (0, 2), (0, 1))]
        if all(len(n) for n in nzs):
            bb = tuple(slice(n[0], n[-1] + 1) for n in nzs)
            lung = full[bb]
            # posterior lung boundary per (z, x) column
            yidx = np.arange(lung.shape[1])[None, :, None]
            ymax = np.where(lung, yidx, -1).max(1)              # (Z, N)
            dpost = (ymax[:, None, :] - yidx) * obj.sp
            zw = raster.smoothstep((zcut - obj.zs[bb[0]]) / 30.0)[:, None, None]
            a = raster.smoothstep((thick - dpost) / 2.5) * lung * zw * (ymax[:, None, :] >= 0)
            sub = obj.hu[bb]
            sub += (a * np.maximum(Tat - sub, 0)).astype(np.float32)
        info.append("dependent_atelectasis")
    if rng.random() < 0.15:       # centrilobular emphysema in the upper lobes
        n = int(rng.integers(15, 60))
        for _ in range(n):
            ctr, d, s_ = _sample_site(obj, geo, rng, periph=200.0, lower_w=0.2, post_w=1.0)
            r = rng.uniform(1.5, 4.5)
            bb, alpha, f = _blob_alpha(obj, rng, ctr, [r, r, r], rough=0.15, soft=0.4, cell_mm=3)
            sub = obj.hu[bb]
            a = alpha * (obj.lung[bb] > 0)
            sub += a * np.minimum(-985.0 - sub, 0)
        info.append("emphysema")
    return info
