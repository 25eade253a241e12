"""Render an internal-resolution volume to the native CT grid: 2x in-plane upsampling (linear),
slab averaging or linear interpolation in z, correlated CT noise from a fixed noise bank, the
reconstruction circle, and the stored data type of the chosen header variant."""
import ctypes
import os
import subprocess
import tempfile

import numpy as np

_BANK = {}
_LIB = [None, False]       # (library, tried)
_SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_render.c")
_LIBDIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "build", "synth")


def fast_lib():
    """ctypes handle of the compiled _render.c (built on first use into build/synth/ with the
    system C compiler; None -> numpy fallback).  Set CSAC_SYNTH_NOC=1 to force the fallback."""
    if _LIB[1]:
        return _LIB[0]
    _LIB[1] = True
    if os.environ.get("CSAC_SYNTH_NOC"):
        return None
    try:
        d = os.path.normpath(_LIBDIR)
        os.makedirs(d, exist_ok=True)
        so = os.path.join(d, "libsynth_render.so")
        if not os.path.exists(so) or os.path.getmtime(so) < os.path.getmtime(_SRC):
            fd, tmp = tempfile.mkstemp(suffix=".so", dir=d)
            os.close(fd)
            subprocess.run([os.environ.get("CC", "cc"), "-O3", "-fno-math-errno", "-shared", "-fPIC",
                            "-o", tmp, _SRC, "-lm"],
                           check=True, capture_output=True)
            os.replace(tmp, so)
        lib = ctypes.CDLL(so)
        P = ctypes.c_void_p
        lib.synth_up2_noise.argtypes = [P, ctypes.c_int, ctypes.c_int, ctypes.c_int, P, P, P, P,
                                        ctypes.c_float, ctypes.c_float, ctypes.c_float, ctypes.c_int, P]
        lib.synth_up2_noise.restype = None
        lib.synth_up2_label.argtypes = [P, ctypes.c_int, ctypes.c_int, ctypes.c_int, P]
        lib.synth_up2_label.restype = None
        _LIB[0] = lib
    except Exception:  # noqa: BLE001  (no compiler: numpy path)
        _LIB[0] = None
    return _LIB[0]
NB_TILES = 6


def noise_bank(kernel):
    """Periodic 512x512 correlated-noise tiles (unit std) for kernel 0 soft / 1 standard /
    2 sharp, doubled to 1024x1024 so that any 512x512 window is a (wrapped) crop.  Built from a
    fixed seed, once per process."""
    b = _BANK.get(kernel)
    if b is None:
        rng = np.random.default_rng(12345 + kernel)
        fy = np.fft.fftfreq(512)[:, None]
        fx = np.fft.rfftfreq(512)[None, :]
        f = np.sqrt(fx * fx + fy * fy)
        fc = (0.18, 0.26, 0.40)[kernel]
        nps = f * np.exp(-(f / fc) ** 2) + 0.015          # ramp x apodisation (FBP-like NPS shape)
        amp = np.sqrt(nps)
        tiles = []
        for _ in range(NB_TILES):
            w = rng.standard_normal((512, 512))
            t = np.fft.irfft2(np.fft.rfft2(w) * amp, s=(512, 512))
            t /= t.std()
            tiles.append(np.tile(t.astype(np.float32), (2, 2)))
        b = np.stack(tiles)
        _BANK[kernel] = b
    return b


def _up2(a, out=None):
    """Linear 2x upsampling of the last two axes (cell-centred grids), few temporaries."""
    Z, H, W = a.shape
    t = np.empty((Z, H, 2 * W), np.float32)
    np.multiply(a, 0.75, out=t[:, :, 0::2])
    np.multiply(a, 0.75, out=t[:, :, 1::2])
    t[:, :, 2::2] += 0.25 * a[:, :, :-1]
    t[:, :, 0] += 0.25 * a[:, :, 0]
    t[:, :, 1:-1:2] += 0.25 * a[:, :, 1:]
    t[:, :, -1] += 0.25 * a[:, :, -1]
    o = out if out is not None else np.empty((Z, 2 * H, 2 * W), np.float32)
    np.multiply(t, 0.75, out=o[:, 0::2])
    np.multiply(t, 0.75, out=o[:, 1::2])
    o[:, 2::2] += 0.25 * t[:, :-1]
    o[:, 0] += 0.25 * t[:, 0]
    o[:, 1:-1:2] += 0.25 * t[:, 1:]
    o[:, -1] += 0.25 * t[:, -1]
    return o


def z_plan(nz_int, dz, nsub, thickness):
    """Native slices as (i0, i1, w) rows: slice = (1-w) a[i0] + w a[i1] (thin slices, linear
    interpolation of the 2.5 mm internal grid) or the mean of nsub internal slices (nsub >= 1)."""
    if thickness >= 2.5:
        n = nz_int // nsub
        return [("mean", j * nsub, nsub) for j in range(n)]
    length = (nz_int - 1) * dz
    n = int(np.floor(length / thickness)) + 1
    rows = []
    for j in range(n):
        pz = j * thickness / dz
        i0 = min(int(np.floor(pz)), nz_int - 2)
        rows.append(("lerp", i0, float(pz - i0)))
    return rows


def render(hu_int, lab_int, p, rng, dz, nsub, chunk=16, native_label=True):
    """Return (native volume in the stored dtype of p["header"] (Zn,512,512), native label uint8
    or None, noise sigma, (slope, inter)).  HU = stored * slope + inter."""
    t = p["thickness"]
    rows = z_plan(hu_int.shape[0], dz, nsub, t)
    Zn = len(rows)
    dt, slope, inter = stored_type(p)
    out = np.empty((Zn, 512, 512), dt)
    if not native_label:
        lab_int = None
    lab = np.zeros((Zn, 512, 512), np.uint8) if lab_int is not None else None
    kern = p["kernel"]
    bank = noise_bank(kern)
    kfac = (0.8, 1.0, 1.7)[kern]
    sigma = p["noise5"] * np.sqrt(5.0 / t) * (p["W"] / 158.0) ** 1.3 * kfac
    ti = rng.integers(0, NB_TILES, Zn)
    oy = rng.integers(0, 512, Zn)
    ox = rng.integers(0, 512, Zn)
    yy, xx = np.mgrid[0:512, 0:512]
    rr = (yy - 255.5) ** 2 + (xx - 255.5) ** 2
    outside_idx = np.flatnonzero(rr > 256.0 ** 2)
    tmp = np.empty((512, 512), np.float32)
    for c0 in range(0, Zn, chunk):
        rs = rows[c0:c0 + chunk]
        sl = np.empty((len(rs),) + hu_int.shape[1:], np.float32)
        ls = np.empty((len(rs),) + hu_int.shape[1:], np.uint8) if lab is not None else None
        for j, r in enumerate(rs):
            if r[0] == "mean":
                sl[j] = hu_int[r[1]:r[1] + r[2]].mean(0)
                if ls is not None:
                    ls[j] = lab_int[r[1]:r[1] + r[2]].max(0) if r[2] > 1 else lab_int[r[1]]
            else:
                i0, w = r[1], r[2]
                sl[j] = (1 - w) * hu_int[i0] + w * hu_int[i0 + 1]
                if ls is not None:
                    ls[j] = lab_int[i0] if w < 0.5 else lab_int[i0 + 1]
        lib = fast_lib()
        if lib is not None:
            ks = np.arange(c0, c0 + len(rs))
            ti_ = np.ascontiguousarray(ti[ks], np.int32)
            oy_ = np.ascontiguousarray(oy[ks], np.int32)
            ox_ = np.ascontiguousarray(ox[ks], np.int32)
            dst = out[c0:c0 + len(rs)]
            lib.synth_up2_noise(sl.ctypes.data, len(rs), sl.shape[1], sl.shape[2], bank.ctypes.data,
                                ti_.ctypes.data, oy_.ctypes.data, ox_.ctypes.data, float(sigma),
                                float(p["pad_hu"]), float(inter), int(dt == np.int16), dst.ctypes.data)
            if lab is not None:
                ls = np.ascontiguousarray(ls)
                lib.synth_up2_label(ls.ctypes.data, len(rs), ls.shape[1], ls.shape[2],
                                    lab[c0:c0 + len(rs)].ctypes.data)
            continue
        up = _up2(sl)
        for j in range(len(rs)):
            k = c0 + j
            np.multiply(bank[ti[k], oy[k]:oy[k] + 512, ox[k]:ox[k] + 512], sigma, out=tmp)
            up[j] += tmp
        up.reshape(len(rs), -1)[:, outside_idx] = p["pad_hu"]
        if dt == np.int16:     # values stay within [-3100, 3100]: no overflow possible
            if inter != 0.0:
                up -= inter
            np.rint(up, out=up)
        out[c0:c0 + len(rs)] = up
        if lab is not None:
            lab[c0:c0 + len(rs)] = np.repeat(np.repeat(ls, 2, 1), 2, 2)
    return out, lab, float(sigma), (slope, inter)


def stored_type(p):
    """(numpy dtype, scl_slope, scl_inter) of the header variant."""
    hv = p["header"]
    if hv.startswith("int16_inter1024"):
        return np.int16, 1.0, -1024.0
    if hv.startswith("int16"):
        return np.int16, 1.0, 0.0
    return np.float32, 1.0, 0.0


def to_hu(stored, scale):
    slope, inter = scale
    if stored.dtype == np.float32 and slope == 1.0 and inter == 0.0:
        return stored
    return stored.astype(np.float32) * np.float32(slope) + np.float32(inter)


def orient(arr, p, spacing, thickness, origin):
    """Apply the header variant's axis flips to arr[z, y, x] (canonical: x -> patient left,
    y -> posterior) and return (array, affine RAS+, qform_code, sform_code)."""
    hv = p["header"]
    nz, ny, nx = arr.shape
    s, t = spacing, thickness
    x0, y0, z0 = origin                     # LPS mm of voxel (0,0,0) in canonical orientation
    if hv.endswith("RAS"):
        arr = arr[:, ::-1, ::-1]
        aff = np.array([[s, 0, 0, -x0 - (nx - 1) * s], [0, s, 0, -y0 - (ny - 1) * s],
                        [0, 0, t, z0], [0, 0, 0, 1]], np.float64)
        codes = (0, 2)
    elif hv.endswith("LAS"):
        arr = arr[:, ::-1, :]
        aff = np.array([[-s, 0, 0, -x0], [0, s, 0, -y0 - (ny - 1) * s], [0, 0, t, z0], [0, 0, 0, 1]], np.float64)
        codes = (1, 1)
    else:  # LPS
        aff = np.array([[-s, 0, 0, -x0], [0, -s, 0, -y0], [0, 0, t, z0], [0, 0, 0, 1]], np.float64)
        codes = (1, 1) if hv.startswith("int16") else (1, 0)
    return arr, aff, codes[0], codes[1]
