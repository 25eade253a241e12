"""Rasterisation helpers shared by the phantom and the lesion models (numpy, vectorised).

All volumes are indexed [z, y, x]; physical positions are given in millimetres in the same order
(z, y, x) relative to the centre of voxel [0, 0, 0].
"""
import numpy as np
from scipy import ndimage

_STENCILS = {}


def _stencil(rz, ry, rx):
    key = (rz, ry, rx)
    s = _STENCILS.get(key)
    if s is None:
        oz, oy, ox = np.meshgrid(np.arange(-rz, rz + 1), np.arange(-ry, ry + 1),
                                 np.arange(-rx, rx + 1), indexing="ij")
        s = np.stack([oz.ravel(), oy.ravel(), ox.ravel()], 1).astype(np.int32)
        _STENCILS[key] = s
    return s


def sample_segments(p0, p1, r0, r1, step):
    """Points along segments p0->p1 (arrays (S,3) mm) with linearly varying radius; returns
    (P,3) points and (P,) radii."""
    p0 = np.asarray(p0, np.float32); p1 = np.asarray(p1, np.float32)
    r0 = np.asarray(r0, np.float32); r1 = np.asarray(r1, np.float32)
    length = np.sqrt(((p1 - p0) ** 2).sum(1))
    n = np.maximum(1, np.ceil(length / step).astype(np.int64)) + 1
    seg = np.repeat(np.arange(len(p0)), n)
    start = np.cumsum(n) - n
    t = (np.arange(n.sum()) - np.repeat(start, n)) / np.repeat(n - 1, n).astype(np.float32)
    t = t.astype(np.float32)[:, None]
    pts = p0[seg] * (1 - t) + p1[seg] * t
    rad = r0[seg] * (1 - t[:, 0]) + r1[seg] * t[:, 0]
    return pts, rad


def splat_tubes(frac, spacing, pts, radii, value_scale=1.0):
    """Max-combine the partial-volume fraction of spheres (centres pts mm, radii mm) into the
    float32 volume frac (modified in place).  Chains of spheres sampled densely along a centre
    line give tubes with anti-aliased edges; sub-voxel radii give faint partial-volume dots.
    Points whose stencil leaves the volume are dropped (structures are interior)."""
    if len(pts) == 0:
        return frac
    spacing = np.asarray(spacing, np.float32)
    sz, sy, sx = [float(v) for v in spacing]
    h = float(np.cbrt(sz * sy * sx))
    shape = np.array(frac.shape)
    strides = np.array([shape[1] * shape[2], shape[2], 1], np.int64)
    flat = frac.reshape(-1)
    ci = np.rint(pts / spacing).astype(np.int64)
    delta = (ci * spacing - pts).astype(np.float32)          # voxel centre - point
    reach = radii + 0.5 * h
    kz = np.ceil(reach / sz).astype(np.int64)
    ky = np.ceil(reach / min(sy, sx)).astype(np.int64)
    inside = np.all(ci - np.stack([kz, ky, ky], 1) >= 0, 1) & \
        np.all(ci + np.stack([kz, ky, ky], 1) < shape, 1)
    key = kz * 1000 + ky
    order_all = np.arange(len(pts))
    for k in np.unique(key[inside]):
        sel = order_all[(key == k) & inside]
        kzz, kyy = int(k // 1000), int(k % 1000)
        st = _stencil(kzz, kyy, kyy)
        offs = (st.astype(np.int64) * strides).sum(1)
        os_ = (st * spacing).astype(np.float32)                 # (O, 3)
        o2 = (os_ * os_).sum(1)
        # interleave passes so that spheres written in one pass do not overlap along a chain
        npass = 2 * kyy + 1
        for ps in range(npass):
            ss = sel[ps::npass]
            if len(ss) == 0:
                continue
            d = delta[ss]
            dist2 = (d * d).sum(1)[:, None] + 2.0 * (d @ os_.T) + o2[None, :]
            r = radii[ss][:, None]
            f = (r - np.sqrt(np.maximum(dist2, 0))) * (1.0 / h) + 0.5
            np.clip(f, 0.0, 1.0, out=f)
            f *= np.minimum(1.0, 2.0 * r / h) * value_scale
            idx = ((ci[ss] * strides).sum(1))[:, None] + offs[None, :]
            m = f > 0.02
            idx = idx[m]; v = f[m]
            flat[idx] = np.maximum(flat[idx], v)
    return frac


def smooth_noise(rng, shape, cells, order=1):
    """Smooth random field of the given shape: a coarse normal grid of `cells` (per axis, >= 2)
    upsampled with a spline; roughly unit variance."""
    cells = tuple(max(2, int(c)) for c in cells)
    g = rng.standard_normal(cells).astype(np.float32)
    zoom = [s / c for s, c in zip(shape, cells)]
    out = ndimage.zoom(g, zoom, order=order, mode="reflect", grid_mode=True)
    # zoom can be off by one voxel; crop / pad
    sl = tuple(slice(0, s) for s in shape)
    out = out[sl]
    if out.shape != tuple(shape):
        out = np.pad(out, [(0, s - o) for s, o in zip(shape, out.shape)], mode="edge")
    return out


def smoothstep(x):
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)
