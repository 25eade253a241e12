"""Procedural chest CT phantom.

The anatomy is built on an internal grid (256 x 256 in-plane at twice the native pixel size, i.e.
1.2-1.8 mm, and ~2.5 mm slices) and rendered to the native grid (512 x 512, 0.6-0.9 mm, 1-5 mm
slices) by `render.py`, where CT noise is added.  Every random choice comes from the numpy Generator
passed in, so a case is a pure function of its seed.

Conventions: arrays are [z, y, x]; x runs toward the patient's left, y toward posterior, z toward
superior (DICOM LPS).  Patient-frame millimetres: X (left +), Y (posterior +), z (superior +), with
z = 0 at the top of the right diaphragm dome and z = Lh at the lung apex.
"""
import numpy as np

from . import raster

N_INT = 256          # internal in-plane matrix
HU_FAT, HU_MUSCLE, HU_BLOOD, HU_LIVER, HU_SKIN = -95.0, 45.0, 40.0, 55.0, 25.0


# ----------------------------------------------------------------------------------------------
# parameters
# ----------------------------------------------------------------------------------------------
THICKNESSES = {  # slice thickness (mm): probability
    "train": ([1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 5.0], [0.06, 0.06, 0.06, 0.14, 0.14, 0.14, 0.40]),
    "shift": ([0.8, 1.0, 1.25, 2.0, 3.0, 4.0, 5.0, 6.0], [0.06, 0.06, 0.06, 0.1, 0.12, 0.2, 0.25, 0.15]),
}


def draw_params(rng, profile="train"):
    """All global (label-independent) acquisition and anatomy parameters of one case."""
    p = {"profile": profile}
    if profile == "shift":
        # distribution shift: patients outside the training size range, other doses and kernels
        size = rng.uniform(0.74, 0.86) if rng.random() < 0.5 else rng.uniform(1.14, 1.28)
        p["noise5"] = float(np.exp(rng.uniform(np.log(6.0), np.log(45.0))))
    else:
        size = rng.uniform(0.85, 1.15)
        p["noise5"] = float(np.exp(rng.normal(np.log(14.0), 0.35)))   # HU sigma at 5 mm, standard size
    p["size"] = float(size)
    W = 158.0 * size * rng.uniform(0.94, 1.06)
    p["W"] = float(W)                                   # body half width (mm)
    p["B"] = float(W * rng.uniform(0.60, 0.74))         # body half AP depth
    p["fat"] = float(rng.uniform(3, 10) + 60 * max(0.0, size - 0.88) * rng.uniform(0.5, 1.5))
    p["muscle"] = float(rng.uniform(6, 12))
    p["insp"] = float(rng.uniform(0.0, 1.0))           # inspiration level
    p["Lh"] = float((188 + 45 * p["insp"]) * (0.85 + 0.15 * size) * rng.uniform(0.95, 1.05))
    p["lung_hu"] = float(-915 + 70 * (1 - p["insp"]) + rng.normal(0, 12))
    p["grad_hu"] = float(rng.uniform(20, 70))           # dependent density gradient
    fov = 2 * W * rng.uniform(1.05, 1.3)
    p["spacing"] = float(np.clip(fov / 512.0, 0.6, 0.9))
    ts, pr = THICKNESSES[profile]
    p["thickness"] = float(rng.choice(ts, p=np.array(pr) / np.sum(pr)))
    p["scan_above"] = float(rng.uniform(15, 50))        # scan start above the apex
    p["scan_len"] = float(rng.uniform(290, 350) * (0.9 + 0.1 * size))
    p["cx"], p["cy"] = float(rng.uniform(-18, 18)), float(rng.uniform(-25, 5))
    p["rot"] = float(np.deg2rad(rng.uniform(-6, 6)))
    p["kernel"] = int(rng.integers(0, 3))                # 0 soft, 1 standard, 2 sharp (lung)
    p["header"] = str(rng.choice(["int16_inter1024_LPS", "int16_inter1024_LAS", "int16_RAS",
                                   "int16_LPS", "float32_RAS", "float32_LPS"]))
    p["pad_hu"] = float(rng.choice([-1024.0, -1024.0, -2048.0, -3024.0]))
    p["table"] = bool(rng.random() < 0.92)
    p["pad"] = bool(rng.random() < 0.5)
    p["heart_scale"] = float(rng.uniform(0.9, 1.12))
    p["left_dome"] = float(rng.uniform(-22, -6))
    p["stomach_gas"] = bool(rng.random() < 0.6)
    return p


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------
def _vtube(frac, zs, gy, gx, cy, cx, r, z0, z1, sp):
    """Vertical tube: per slice disk of radius r(z) centred at (cy(z), cx(z)) in grid mm coordinates
    (gy, gx: 1-D arrays of the grid centres); max-combined partial-volume fraction into frac."""
    ks = np.nonzero((zs >= z0) & (zs <= z1))[0]
    if len(ks) == 0:
        return
    cyk = np.broadcast_to(np.asarray(cy, np.float32), zs.shape)[ks]
    cxk = np.broadcast_to(np.asarray(cx, np.float32), zs.shape)[ks]
    rk = np.broadcast_to(np.asarray(r, np.float32), zs.shape)[ks]
    rmax = float(rk.max()) + 2 * sp
    y0 = max(0, int(np.searchsorted(gy, cyk.min() - rmax))); y1 = min(len(gy), int(np.searchsorted(gy, cyk.max() + rmax)) + 1)
    x0 = max(0, int(np.searchsorted(gx, cxk.min() - rmax))); x1 = min(len(gx), int(np.searchsorted(gx, cxk.max() + rmax)) + 1)
    if y1 <= y0 or x1 <= x0:
        return
    dy = gy[None, y0:y1, None] - cyk[:, None, None]
    dx = gx[None, None, x0:x1] - cxk[:, None, None]
    d = np.sqrt(dy * dy + dx * dx)
    f = np.clip((rk[:, None, None] - d) / sp + 0.5, 0, 1)
    sub = frac[ks, y0:y1, x0:x1]
    frac[ks, y0:y1, x0:x1] = np.maximum(sub, f)


def _blend(hu, frac, value, where=None):
    if where is not None:
        frac = frac * where
    hu += frac * (value - hu)


class Phantom:
    """Internal-resolution anatomy of one case.  Attributes used downstream:
    hu (Z,N,N float32), lung (Z,N,N uint8: 1 right, 2 left), airway (Z,N,N bool lumen of the deep
    bronchial tree), zs (Z,) slice centres mm, sp (in-plane mm), dz, X, Y (N,N patient frame mm),
    lower_lobe(z-index slice) helper, params p."""

    def __init__(self, p, rng):
        self.p = p
        self.rng = rng
        self.build()

    # ------------------------------------------------------------------------------------------
    def build(self):
        """Anatomy as 2-D templates (body wall, table, spine) plus 3-D work restricted to the list
        of thoracic-cavity pixels (Z x nC arrays): ~10x cheaper than full-volume numpy."""
        p, rng = self.p, self.rng
        N = N_INT
        sp = 2.0 * p["spacing"]
        self.sp = sp
        t = p["thickness"]
        self.nsub = 2 if t >= 4 else 1
        dz = t / self.nsub if t >= 2.5 else 2.5
        self.dz = dz
        Lh = p["Lh"]
        z_top = Lh + p["scan_above"]
        z_bot = z_top - p["scan_len"]
        Z = int(np.ceil((z_top - z_bot) / dz)) + 2
        zs = (z_bot - dz + dz * np.arange(Z)).astype(np.float32)
        self.zs, self.Z = zs, Z
        g = ((np.arange(N) - (N - 1) / 2.0) * sp).astype(np.float32)
        self.g = g
        gy, gx = g[:, None], g[None, :]
        c, s = np.float32(np.cos(p["rot"])), np.float32(np.sin(p["rot"]))
        X = (c * (gx - p["cx"]) + s * (gy - p["cy"])).astype(np.float32)
        Y = (-s * (gx - p["cx"]) + c * (gy - p["cy"])).astype(np.float32)
        self.X, self.Y = X, Y
        rho = np.sqrt(X * X + Y * Y) + np.float32(1e-3)
        phi = np.arctan2(X, Y)                     # 0 at posterior midline, +-pi anterior
        aphi = np.abs(phi)
        theta = aphi / np.float32(np.pi)
        h1 = zs / Lh                               # normalised height per slice
        zedges = np.arange(0.45, 1.06, 0.05)
        zone = np.digitize(h1, zedges)
        upper = zone > 0
        W, B = p["W"], p["B"]

        # ---------------- 2-D templates: table, body wall --------------------------------------
        base = np.full((N, N), -1000.0, np.float32)
        if p["table"]:
            ytop = p["cy"] + B * 0.93 + (12.0 if p["pad"] else 1.0)
            dy = gy - (ytop - 0.0004 * gx * gx)
            inside_w = np.abs(gx) < 235
            base = np.where(inside_w & (dy >= 0) & (dy < 3.5), 230.0, base)
            base = np.where(inside_w & (dy >= 3.5) & (dy < 38), -880.0, base)
            base = np.where(inside_w & (dy >= 38) & (dy < 42), 230.0, base)
            base = np.where((np.abs(np.abs(gx) - 200) < 6) & (dy >= 42) & (dy < 54), 700.0, base)
            if p["pad"]:
                base = np.where((np.abs(gx) < 220) & (dy < 0) & (dy >= -11), -930.0, base)
        post = Y > 0
        Bpost, Bant = B * 0.93, B
        pe = np.where(post, 3.2, 2.3).astype(np.float32)
        rb = ((np.abs(X) / W) ** pe + (np.abs(Y) / np.where(post, Bpost, Bant)) ** pe) ** (1.0 / pe)
        depth = rho * (1.0 / np.maximum(rb, 1e-3) - 1.0)          # mm below the skin along the ray
        body = rb <= 1.0
        F = p["fat"] * (0.6 + 0.55 * np.abs(np.sin(phi)))
        scap_zone = (aphi > 0.5) & (aphi < 1.3)
        M_lo = p["muscle"] + 28 * np.exp(-(phi / 0.36) ** 2)
        M_up = M_lo + 9 * np.exp(-((aphi - 2.5) / 0.35) ** 2) + 14 * scap_zone
        d_mus = 1.5 + F
        Yac = -(Bant - 1.5 - p["fat"] * 0.6 - p["muscle"])
        tmpl, cavs, ribshs = [], [], []
        lat = np.abs(np.sin(phi)) ** 1.5
        zc_ = np.concatenate([[0.0], zedges + 0.025])
        Ms = [M_lo] + [M_up + 46.0 * np.clip((hz - 0.45) / 0.55, 0, 1) ** 1.6 * lat for hz in zc_[1:]]
        for zi_, M in enumerate(Ms):
            d_rib = d_mus + M
            d_cav = d_rib + 7.0
            tm = np.where(body, HU_FAT, base)
            tm = np.where(body & (depth < 1.5), HU_SKIN, tm)
            tm = np.where(body & (depth >= d_mus) & (depth < d_cav), HU_MUSCLE, tm)
            if zi_ > 0:
                scap = scap_zone & (np.abs(depth - (d_mus + 0.45 * M)) < 2.0) & body
                tm = np.where(scap, 520.0, tm)
            tmpl.append(tm.astype(np.float32))
            cavs.append(body & (depth >= d_cav))
            ribshs.append(body & (depth >= d_rib) & (depth < d_cav))
        hu = np.empty((Z, N, N), np.float32)
        for zi_ in range(len(Ms)):
            hu[zone == zi_] = tmpl[zi_]
        hu2 = hu.reshape(Z, N * N)
        Ks = np.arange(Z)

        # ---------------- ribs (only ring pixels) ----------------------------------------------
        sp_rib = (Lh + 55.0) / 11.0
        for zi in range(len(Ms)):
            ks = Ks[zone == zi]
            if len(ks) == 0:
                continue
            ring = np.flatnonzero(ribshs[zi])
            th = theta.ravel()[ring]
            dep = depth.ravel()[ring] - (d_mus + Ms[zi]).ravel()[ring]
            u = (Lh + 18.0 - zs[ks][:, None] - 58.0 * th[None] ** 1.4) / sp_rib
            k = np.rint(u)
            fu = np.abs(u - k)
            wf = 9.5 / sp_rib / 2.0
            thmax = np.where(k > 6, 0.93 - 0.06 * (k - 6), 0.95)
            rib = (fu < wf) & (k >= 0) & (k <= 11) & (th[None] > 0.05) & (th[None] < thmax)
            q = np.maximum(np.abs(dep - 3.5)[None] / 3.5, fu / wf)
            val = np.where(th[None] > 0.8, 130.0, np.where(q > 0.72, 750.0, 260.0))
            sub = hu2[np.ix_(ks, ring)]
            hu2[np.ix_(ks, ring)] = np.where(rib, val, sub)

        # ---------------- sternum ----------------------------------------------------------------
        for lo, hi, ws in ((0.18, 0.78, 13.0), (0.78, 0.98, 24.0)):
            st = (np.abs(X) < ws) & (Y > Yac - 2) & (Y < Yac + 10) & body
            qs = np.maximum(np.abs(X) / ws, np.abs(Y - (Yac + 4)) / 6.0)
            ks = Ks[(h1 > lo) & (h1 <= hi)]
            pix = np.flatnonzero(st)
            vals = np.where(qs.ravel()[pix] > 0.75, 650.0, 230.0).astype(np.float32)
            hu2[np.ix_(ks, pix)] = vals[None]

        # ---------------- geometry of the mediastinum and spine -----------------------------------
        Ypc = Bpost - (1.5 + p["fat"] * 0.6 + p["muscle"] + 28 + 7.0)
        Rv = 15.0 + 3.5 * (p["size"] - 0.85) / 0.3
        Yv = Ypc - Rv * 0.45
        Yc = Yv + Rv + 9.0
        self.Yv, self.Rv = Yv, Rv
        Wm_z = np.interp(h1, [-1, 0.3, 0.45, 0.6, 0.85, 1.2], [26, 28, 38, 36, 22, 20]).astype(np.float32)
        xm = 4.0
        Ys = Yac + 10
        fmed = np.clip((Y - Ys) / 45.0, 0.22, 1.0)

        def to_grid(Xp, Yp):
            return s * Xp + c * Yp + p["cy"], c * Xp - s * Yp + p["cx"]

        hs = p["heart_scale"]
        Xh, Yh, zh = 0.14 * W, -0.22 * B, 0.24 * Lh
        ah, bh, ch = 0.33 * W * hs, 0.40 * B * hs, 0.25 * Lh * hs
        ca, sa = np.cos(0.75), np.sin(0.75)
        u1 = ((X - Xh) * ca - (Y - Yh) * sa) / ah
        u2 = ((X - Xh) * sa + (Y - Yh) * ca) / bh
        q2 = (u1 * u1 + u2 * u2).astype(np.float32)
        self.heart_center = (Xh, Yh, zh)
        # tubes (fractions, full grid but bbox-limited)
        frac = np.zeros((Z, N, N), np.float32)
        Ra, Rd = 13.0 * (0.9 + 0.1 * p["size"]), 11.0
        z_arch = 0.74 * Lh
        Xasc, Yasc = -6.0, Yh + 0.1 * B
        Xdes, Ydes = Rv * 0.65 + 9, Yv - Rv * 0.35
        _vtube(frac, zs, g, g, *to_grid(Xasc, Yasc), Ra, zh + 0.35 * ch, z_arch, sp)
        _vtube(frac, zs, g, g, *to_grid(Xdes, Ydes), Rd, zs[0] - 10, z_arch, sp)
        _vtube(frac, zs, g, g, *to_grid(-30.0, Yasc - 2), 9.0, zh + 0.5 * ch, 0.9 * Lh, sp)   # SVC
        tt = np.linspace(0, 1, 25)
        Xa = Xasc + (Xdes - Xasc) * tt
        Ya = Yasc + (Ydes - Yasc) * tt
        za = z_arch + 14 * np.sin(np.pi * tt)
        zb = 0.60 * Lh
        Xpt0, Ypt0, zpt0 = Xh + 8, Yh - 0.25 * B, zh + 0.6 * ch
        Xbif, Ybif = 8.0, Yasc + 6
        XhR, XhL = -(float(Wm_z.max()) + 4), (float(Wm_z.max()) + 10)
        YhR = YhL = Yv - Rv - 10
        zhR, zhL = 0.55 * Lh, 0.56 * Lh
        self.hila = {1: (zhR, YhR, XhR), 2: (zhL, YhL, XhL)}
        segs = [((za[i], Ya[i], Xa[i]), (za[i + 1], Ya[i + 1], Xa[i + 1]), Ra - 1.5 * tt[i], Ra - 1.5 * tt[i + 1])
                for i in range(len(tt) - 1)]
        segs += [((zpt0, Ypt0, Xpt0), (zb, Ybif, Xbif), 13.0, 12.0),
                 ((zb, Ybif, Xbif), (zhR + 3, YhR, XhR + 6), 10.5, 9.0),
                 ((zb, Ybif, Xbif), (zhL + 4, YhL, XhL - 8), 9.5, 8.5)]
        sp3 = (dz, sp, sp)
        self._splat_segs(frac, segs, 3.0)
        air = np.zeros((Z, N, N), np.float32)
        wall = np.zeros((Z, N, N), np.float32)
        oes = np.zeros((Z, N, N), np.float32)
        zc = 0.63 * Lh
        Yt = Yv - Rv - 17
        _vtube(wall, zs, g, g, *to_grid(0.0, Yt), 10.5, zc, zs[-1] + 10, sp)
        _vtube(air, zs, g, g, *to_grid(0.0, Yt), 8.8, zc, zs[-1] + 10, sp)
        _vtube(oes, zs, g, g, *to_grid(9.0, Yv - Rv - 3), 7.0, -40, zs[-1] + 10, sp)
        bp = [((zc, Yt, 0.0), (zhR + 8, YhR + 8, XhR + 2), 7.0, 6.0),
              ((zc, Yt, 0.0), (zhL - 2, YhL + 9, XhL - 2), 6.3, 5.5)]
        self._splat_segs(wall, [(a, b_, r0 + 1.8, r1 + 1.8) for a, b_, r0, r1 in bp], 1.0)
        self._splat_segs(air, bp, 1.0)

        # ---------------- spine (2-D masks, z-periodic discs / processes) --------------------------
        rv = np.sqrt(X * X + (Y - Yv) ** 2)
        rc = np.sqrt(X * X + (Y - Yc) ** 2)
        per = ((zs + 500.0) / 27.0) % 1.0
        vb = (rv < Rv) & body
        arch = (((rc >= 7.0) & (rc < 12.5) & (Y > Yc - 3)) |
                ((np.abs(X) < 4) & (Y > Yc + 10) & (Y < Yc + 34)) |
                ((np.abs(X) > 5) & (np.abs(X) < 10) & (Y > Yv + Rv - 4) & (Y < Yc))) & body
        transverse = (np.abs(Y - Yc + 2) < 5) & (np.abs(X) > 8) & (np.abs(X) < 30) & body & ~vb
        canal = (rc < 7.0) & body
        spine_zone = vb | (rc < 12.5) | arch | transverse
        pv = np.flatnonzero(vb)
        vval = np.where(rv.ravel()[pv] > Rv - 2.2, 600.0, 210.0).astype(np.float32)
        disc = per < 0.2
        hu2[np.ix_(Ks[disc], pv)] = 85.0
        hu2[np.ix_(Ks[~disc], pv)] = vval[None]
        hu2[:, np.flatnonzero(arch)] = 480.0
        tk = Ks[(per > 0.35) & (per < 0.75)]
        hu2[np.ix_(tk, np.flatnonzero(transverse))] = 480.0
        hu2[:, np.flatnonzero(canal)] = 25.0

        # ---------------- thoracic cavity contents (Z x nC) --------------------------------------
        cav_any = cavs[0] & ~spine_zone
        for cv in cavs[1:]:
            cav_any |= cv
        C = np.flatnonzero(cav_any)
        self.C = C
        cavC = np.stack([cv.ravel()[C] for cv in cavs])
        valid = cavC[zone]
        Xc, Yc_ = X.ravel()[C][None], Y.ravel()[C][None]
        zz = zs[:, None]
        hc = h1[:, None]
        u3 = ((zs - zh) / ch) ** 2
        rh = q2.ravel()[C][None] + u3[:, None]
        heart = (rh < 1.0) & (zz > -22) & valid
        peri = (rh < 1.18) & (zz > -28) & valid
        med = (np.abs(Xc - xm) < Wm_z[:, None] * fmed.ravel()[C][None]) & (Yc_ < Yv + 2) & valid
        # domes: highest antero-medially, deep posterior / lateral costophrenic recesses, so that
        # below the dome top the liver (spleen) is continuous with the anterior chest wall
        xr, yd = -0.3 * W, -0.35 * B
        Dd = 40.0 * (1 + 0.8 * np.clip((Y - yd) / B, 0, 1))
        ya = np.where(Y < yd, (Y - yd) / (0.5 * B), (Y - yd) / (1.1 * B))
        domeR = -Dd * (((X - xr) / (0.6 * W)) ** 2 + ya ** 2)
        domeL = p["left_dome"] - Dd * (((X + xr) / (0.6 * W)) ** 2 + ya ** 2)
        dome = np.where(X < 0, np.maximum(domeR, domeL - 40), np.maximum(domeL, domeR - 40))
        above = zz > dome.ravel()[C][None]
        s_ap2 = np.clip((1.03 - h1) / 0.33, 1e-4, 1)[:, None]
        capA = np.where(X < 0, ((X + 0.42 * W) / (0.5 * W)) ** 2, ((X - 0.42 * W) / (0.5 * W)) ** 2) + \
            ((Y - 0.12 * B) / (0.78 * B)) ** 2
        cap_ok = (hc < 0.7) | (capA.ravel()[C][None] < s_ap2)
        fr = frac[:, np.arange(1)] if False else None
        fracC = frac.reshape(Z, -1)[:, C]
        wallC = wall.reshape(Z, -1)[:, C]
        oesC = oes.reshape(Z, -1)[:, C]
        airC = air.reshape(Z, -1)[:, C]
        organs = med | peri | (fracC > 0.5) | (wallC > 0.5) | (oesC > 0.5)
        lung = valid & above & cap_ok & ~organs
        V = hu2[:, C].copy()
        V[valid] = HU_FAT
        # abdomen
        abd = valid & ~above & ~heart
        liver = Xc < 0.22 * W - 0.15 * np.clip(-zz, 0, 200)
        stom_r = ((Xc - 0.38 * W) / (0.32 * W)) ** 2 + ((Yc_ + 0.3 * B) / (0.45 * B)) ** 2 + \
            ((zz - p["left_dome"] + 55) / 60.0) ** 2
        spleen_r = ((Xc - 0.58 * W) / (0.2 * W)) ** 2 + ((Yc_ - 0.42 * B) / (0.35 * B)) ** 2 + \
            ((zz - p["left_dome"] + 45) / 55.0) ** 2
        ab = np.where(liver, HU_LIVER, np.where(spleen_r < 1, 48.0, np.where(stom_r < 1, 25.0, -60.0)))
        if p["stomach_gas"]:
            ab = np.where((stom_r < 0.85) & (Yc_ < -0.3 * B) & ~liver, -1000.0, ab)
        V = np.where(abd, ab, V)
        V = np.where(peri, HU_FAT, V)
        V = np.where(heart, HU_BLOOD, V)
        V += (oesC * valid) * (35.0 - V)
        V += (fracC * valid) * (HU_BLOOD - V)
        lung_hu = p["lung_hu"] + p["grad_hu"] * np.clip((Yc_ + B * 0.8) / (1.6 * B), 0, 1)
        V = np.where(lung, lung_hu, V)
        V += (wallC * ~lung) * (30.0 - V)
        V += airC * (-1000.0 - V)
        hu2[:, C] = V
        lung3 = np.zeros((Z, N * N), np.uint8)
        lung3[:, C] = np.where(lung, np.where(Xc < xm, 1, 2), 0)
        self.lung = lung3.reshape(Z, N, N)
        self.hu = hu
        self._trees()

    def _splat_segs(self, tgt, segs, step):
        P0 = np.array([a for a, b_, r0, r1 in segs], np.float32)
        P1 = np.array([b_ for a, b_, r0, r1 in segs], np.float32)
        R0 = np.array([r0 for a, b_, r0, r1 in segs], np.float32)
        R1 = np.array([r1 for a, b_, r0, r1 in segs], np.float32)
        P, R = raster.sample_segments(self._pf_to_idxmm(P0), self._pf_to_idxmm(P1), R0, R1, step)
        raster.splat_tubes(tgt, (self.dz, self.sp, self.sp), P, R)

    # ------------------------------------------------------------------------------------------
    def _pf_to_idxmm(self, P):
        """patient-frame (z, Y, X) mm -> index-space mm (z from first slice, y, x from voxel 0)."""
        p = self.p
        c, s = np.cos(p["rot"]), np.sin(p["rot"])
        P = np.asarray(P, np.float32)
        Xp, Yp = P[:, 2], P[:, 1]
        xg = c * Xp - s * Yp + p["cx"]
        yg = s * Xp + c * Yp + p["cy"]
        off = self.g[0]
        return np.stack([P[:, 0] - self.zs[0], yg - off, xg - off], 1).astype(np.float32)

    def idx_to_pf(self, iz, iy, ix):
        """grid indices -> patient frame (z, Y, X) mm."""
        p = self.p
        c, s = np.cos(p["rot"]), np.sin(p["rot"])
        z = self.zs[iz]
        gy = self.g[iy] - p["cy"]; gx = self.g[ix] - p["cx"]
        return z, -s * gx + c * gy, c * gx + s * gy

    def lower_lobe(self, z, Y):
        """Patient-frame test for the lower lobes (below the oblique fissure)."""
        B, Lh = self.p["B"], self.p["Lh"]
        zf = Lh * (0.10 + 0.62 * np.clip((Y + 0.8 * B) / (1.6 * B), 0, 1))
        return z < zf

    def _trees(self):
        """Pulmonary arteries + airways (paired) and veins: territory-partition trees."""
        rng, p = self.rng, self.p
        hu, lung = self.hu, self.lung
        sp3 = (self.dz, self.sp, self.sp)
        vf = np.zeros(hu.shape, np.float32)      # vessel fraction
        aw_l = np.zeros(hu.shape, np.float32)    # airway lumen fraction
        aw_w = np.zeros(hu.shape, np.float32)    # airway wall fraction
        segs_a, segs_w, segs_l = [], [], []
        for side in (1, 2):
            idx = np.flatnonzero(lung == side)
            if len(idx) < 100:
                continue
            for tree in ("artery", "vein"):
                n = 700
                pick = idx[rng.integers(0, len(idx), n)]
                iz, rem = np.divmod(pick, lung.shape[1] * lung.shape[2])
                iy, ix = np.divmod(rem, lung.shape[2])
                pts = np.stack(self.idx_to_pf(iz, iy, ix), 1).astype(np.float32)
                pts += rng.uniform(-0.5, 0.5, pts.shape).astype(np.float32) * np.array(sp3, np.float32)
                hz, hy, hx = self.hila[side]
                if tree == "artery":
                    root = np.array([hz, hy, hx], np.float32)
                    r_root = 8.5
                else:
                    Xh, Yh, zh = self.heart_center
                    root = np.array([zh + 0.15 * p["Lh"] * 0.3, Yh + 0.45 * p["B"] * 0.6,
                                     (-30.0 if side == 1 else 25.0) + Xh * 0.3], np.float32)
                    r_root = 8.0
                segs = _partition_tree(pts, root, r_root, rng)
                if tree == "artery":
                    segs_a.append(segs)
                else:
                    segs_a.append(segs)
                if tree == "artery":
                    # bronchi accompany the arteries; lumen down to ~1 mm, walls for the larger ones
                    a0, a1, r0, r1 = segs
                    off = np.array([0.0, 1.0, 0.0], np.float32) * (r0[:, None] * 1.9 + 1.0)
                    rb0, rb1 = r0 * 0.85, r1 * 0.85
                    keep = rb1 > 0.6
                    segs_l.append((a0[keep] + off[keep], a1[keep] + off[keep], rb0[keep], rb1[keep]))
                    keepw = rb1 > 1.3
                    segs_w.append((a0[keepw] + off[keepw], a1[keepw] + off[keepw],
                                   rb0[keepw] * 1.25 + 0.6, rb1[keepw] * 1.25 + 0.6))
        h = float(np.cbrt(self.dz * self.sp * self.sp))
        for lst, tgt in ((segs_a, vf), (segs_w, aw_w), (segs_l, aw_l)):
            if not lst:
                continue
            a0 = np.concatenate([s[0] for s in lst]); a1 = np.concatenate([s[1] for s in lst])
            r0 = np.concatenate([s[2] for s in lst]); r1 = np.concatenate([s[3] for s in lst])
            P, R = raster.sample_segments(self._pf_to_idxmm(a0), self._pf_to_idxmm(a1), r0, r1,
                                          step=0.7 * min(self.sp, self.dz))
            raster.splat_tubes(tgt, sp3, P, R)
        # blend only inside the lungs (vessels that leave the lung near the hila are dropped)
        L = np.flatnonzero(lung.reshape(-1))
        hf = hu.reshape(-1)
        h_ = hf[L]
        v_ = vf.reshape(-1)[L]
        h_ += v_ * (HU_BLOOD - h_)
        w_ = aw_w.reshape(-1)[L]
        h_ += w_ * (0.0 - h_)
        l_ = aw_l.reshape(-1)[L]
        h_ += l_ * (-1000.0 - h_)
        hf[L] = h_
        air = np.zeros(hu.size, bool)
        air[L[l_ > 0.5]] = True
        self.airway = air.reshape(hu.shape)
        ves = np.zeros(hu.size, np.float32)
        ves[L] = v_
        self.vessel = ves.reshape(hu.shape)


def _partition_tree(pts, root, r_root, rng, frac_go=0.5, r_min=0.35):
    """Space-filling vessel tree: each node owns a set of lung sample points (its territory),
    grows toward their centroid and splits them along their principal axis.  Radii follow a
    Murray-like power law of the territory size.  Vectorised level by level.  Returns segment
    arrays (p0, p1, r0, r1) in patient-frame mm (z, Y, X)."""
    pts = np.asarray(pts, np.float64)
    n_all = len(pts)
    node = np.zeros(n_all, np.int64)
    ids = np.arange(n_all)
    starts = np.asarray(root, np.float64)[None, :]
    P0, P1, R0, R1 = [], [], [], []
    while len(ids):
        nd = node[ids]
        K = starts.shape[0]
        cnt = np.bincount(nd, minlength=K).astype(np.float64)
        cen = np.stack([np.bincount(nd, weights=pts[ids, c], minlength=K) for c in range(3)], 1)
        cen /= np.maximum(cnt, 1)[:, None]
        valid = cnt > 0
        r = r_root * (cnt / n_all) ** 0.38
        leaf = cnt <= 2
        end = np.where(leaf[:, None], cen, starts + (cen - starts) * frac_go)
        v = np.flatnonzero(valid)
        P0.append(starts[v]); P1.append(end[v]); R0.append(r[v])
        R1.append(np.where(leaf[v], r[v] * 0.8, r[v] * 0.92))
        split = valid & ~leaf & (r >= r_min)
        keep = split[nd]
        ids, nd = ids[keep], nd[keep]
        if len(ids) == 0:
            break
        x = pts[ids] - cen[nd]
        C = np.zeros((K, 3, 3))
        for a in range(3):
            for b in range(a, 3):
                C[:, a, b] = C[:, b, a] = np.bincount(nd, weights=x[:, a] * x[:, b], minlength=K)
        axis = np.zeros((K, 3))
        sv = np.flatnonzero(split)
        w, V = np.linalg.eigh(C[sv])
        axis[sv] = V[:, :, -1]
        proj = (x * axis[nd]).sum(1)
        order = np.lexsort((proj, nd))
        nds = nd[order]
        first = np.searchsorted(nds, np.arange(K))
        rank = np.arange(len(order)) - first[nds]
        c = cnt.astype(np.int64)
        cut = np.clip(c // 2 + rng.integers(-(c // 6), c // 6 + 1), 1, np.maximum(c - 1, 1))
        node[ids[order]] = 2 * nds + (rank >= cut[nds])
        starts = np.repeat(end, 2, axis=0)
    return (np.concatenate(P0).astype(np.float32), np.concatenate(P1).astype(np.float32),
            np.concatenate(R0).astype(np.float32), np.concatenate(R1).astype(np.float32))
