"""Minimal NIfTI-1 reader/writer (numpy only, .nii and .nii.gz).

Arrays are handled in "C order with reversed axes": a numpy array vol[z, y, x] is written so that
NIfTI dim1 = x, dim2 = y, dim3 = z (the on-disk voxel order of NIfTI is x fastest), so no transpose
is needed.  The affine maps (i, j, k) = (x, y, z) indices to RAS+ world millimetres.
"""
import gzip
import struct

import numpy as np

_DT = {  # NIfTI datatype code -> numpy dtype, bitpix
    2: (np.uint8, 8), 4: (np.int16, 16), 8: (np.int32, 32), 16: (np.float32, 32),
    64: (np.float64, 64), 256: (np.int8, 8), 512: (np.uint16, 16),
}
_CODE = {np.dtype(v[0]): k for k, v in _DT.items()}


def _quatern_from_affine(aff):
    """qform quaternion parameters (b, c, d, qx, qy, qz, qfac, pixdim[1:4]) for an affine whose
    3x3 part is a rotation times a positive diagonal (possibly with one reflection)."""
    m = np.asarray(aff, dtype=np.float64)[:3, :3]
    pix = np.sqrt((m * m).sum(axis=0))
    r = m / pix
    qfac = 1.0
    if np.linalg.det(r) < 0:
        qfac = -1.0
        r[:, 2] = -r[:, 2]
    a = 1.0 + r[0, 0] + r[1, 1] + r[2, 2]
    if a > 0.5:
        a = 0.5 * np.sqrt(a)
        b = 0.25 * (r[2, 1] - r[1, 2]) / a
        c = 0.25 * (r[0, 2] - r[2, 0]) / a
        d = 0.25 * (r[1, 0] - r[0, 1]) / a
    else:
        xd = 1.0 + r[0, 0] - (r[1, 1] + r[2, 2])
        yd = 1.0 + r[1, 1] - (r[0, 0] + r[2, 2])
        zd = 1.0 + r[2, 2] - (r[0, 0] + r[1, 1])
        if xd > 1.0:
            b = 0.5 * np.sqrt(xd); c = 0.25 * (r[0, 1] + r[1, 0]) / b
            d = 0.25 * (r[0, 2] + r[2, 0]) / b; a = 0.25 * (r[2, 1] - r[1, 2]) / b
        elif yd > 1.0:
            c = 0.5 * np.sqrt(yd); b = 0.25 * (r[0, 1] + r[1, 0]) / c
            d = 0.25 * (r[1, 2] + r[2, 1]) / c; a = 0.25 * (r[0, 2] - r[2, 0]) / c
        else:
            d = 0.5 * np.sqrt(zd); b = 0.25 * (r[0, 2] + r[2, 0]) / d
            c = 0.25 * (r[1, 2] + r[2, 1]) / d; a = 0.25 * (r[1, 0] - r[0, 1]) / d
        if a < 0:
            b, c, d = -b, -c, -d
    return b, c, d, qfac, pix


def header_bytes(shape_xyz, dtype, affine, scl_slope=1.0, scl_inter=0.0, qform_code=1,
                 sform_code=1, descrip=b"synthetic chest CT (csac train/synth)", xyzt_units=2,
                 cal=(0.0, 0.0)):
    dtype = np.dtype(dtype)
    code = _CODE[dtype]
    bitpix = _DT[code][1]
    aff = np.asarray(affine, dtype=np.float64)
    b, c, d, qfac, pix = _quatern_from_affine(aff)
    dim = [3] + list(shape_xyz) + [1, 1, 1, 1]
    pixdim = [qfac] + list(pix) + [0.0, 0.0, 0.0, 0.0]
    h = bytearray(352)
    struct.pack_into("<i", h, 0, 348)
    struct.pack_into("<c", h, 39, b"r")                          # regular
    struct.pack_into("<8h", h, 40, *dim)
    struct.pack_into("<hhh", h, 70, code, bitpix, 0)             # datatype, bitpix, slice_start
    struct.pack_into("<8f", h, 76, *pixdim)
    struct.pack_into("<f", h, 108, 352.0)                        # vox_offset
    struct.pack_into("<ff", h, 112, scl_slope, scl_inter)
    struct.pack_into("<B", h, 123, xyzt_units)
    struct.pack_into("<ff", h, 124, cal[1], cal[0])              # cal_max, cal_min
    h[148:148 + min(79, len(descrip))] = descrip[:79]
    struct.pack_into("<hh", h, 252, qform_code, sform_code)
    struct.pack_into("<6f", h, 256, b, c, d, aff[0, 3], aff[1, 3], aff[2, 3])
    struct.pack_into("<4f", h, 280, *aff[0])
    struct.pack_into("<4f", h, 296, *aff[1])
    struct.pack_into("<4f", h, 312, *aff[2])
    h[344:348] = b"n+1\0"
    return bytes(h)


def write(path, vol_zyx, affine, scl_slope=1.0, scl_inter=0.0, qform_code=1, sform_code=1,
          gzip_level=1, **kw):
    """Write vol[z, y, x] (any supported dtype) to .nii or .nii.gz."""
    vol = np.ascontiguousarray(vol_zyx)
    hdr = header_bytes(vol.shape[::-1], vol.dtype, affine, scl_slope, scl_inter,
                       qform_code, sform_code, **kw)
    if str(path).endswith(".gz"):
        with gzip.open(path, "wb", compresslevel=gzip_level) as f:
            f.write(hdr)
            f.write(memoryview(vol).cast("B"))
    else:
        with open(path, "wb") as f:
            f.write(hdr)
            f.write(memoryview(vol).cast("B"))


class Image:
    """Result of read(): data[z, y, x] (as stored), scaling, affine (sform if code>0, else qform)."""

    def __init__(self, data, affine, slope, inter, hdr):
        self.data, self.affine, self.slope, self.inter, self.hdr = data, affine, slope, inter, hdr

    def hu(self, dtype=np.float32):
        d = self.data.astype(dtype)
        if self.slope not in (0.0, 1.0):
            d *= self.slope
        if self.inter != 0.0:
            d += self.inter
        return d

    @property
    def spacing_xyz(self):
        return np.sqrt((self.affine[:3, :3] ** 2).sum(axis=0))


def _qform_affine(hdr):
    b, c, d, qx, qy, qz = struct.unpack_from("<6f", hdr, 256)
    pixdim = struct.unpack_from("<8f", hdr, 76)
    a2 = 1.0 - (b * b + c * c + d * d)
    a = np.sqrt(a2) if a2 > 0 else 0.0
    r = np.array([[a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c)],
                  [2 * (b * c + a * d), a * a + c * c - b * b - d * d, 2 * (c * d - a * b)],
                  [2 * (b * d - a * c), 2 * (c * d + a * b), a * a + d * d - c * c - b * b]])
    qfac = -1.0 if pixdim[0] < 0 else 1.0
    aff = np.eye(4)
    aff[:3, :3] = r * np.array([pixdim[1], pixdim[2], pixdim[3] * qfac])
    aff[:3, 3] = (qx, qy, qz)
    return aff


def read(path):
    op = gzip.open if str(path).endswith(".gz") else open
    with op(path, "rb") as f:
        raw = f.read()
    hdr = raw[:348]
    if struct.unpack_from("<i", hdr, 0)[0] != 348:
        raise ValueError("%s: not a little-endian NIfTI-1 file" % path)
    dim = struct.unpack_from("<8h", hdr, 40)
    code = struct.unpack_from("<h", hdr, 70)[0]
    off = int(struct.unpack_from("<f", hdr, 108)[0])
    slope, inter = struct.unpack_from("<ff", hdr, 112)
    qc, sc = struct.unpack_from("<hh", hdr, 252)
    shape = tuple(int(v) for v in dim[1:1 + dim[0]])[:3]
    dt = np.dtype(_DT[code][0]).newbyteorder("<")
    n = int(np.prod(shape))
    data = np.frombuffer(raw, dtype=dt, count=n, offset=off).reshape(shape[::-1])
    if sc > 0:
        aff = np.eye(4)
        aff[0] = struct.unpack_from("<4f", hdr, 280)
        aff[1] = struct.unpack_from("<4f", hdr, 296)
        aff[2] = struct.unpack_from("<4f", hdr, 312)
    elif qc > 0:
        aff = _qform_affine(hdr)
    else:
        pd = struct.unpack_from("<8f", hdr, 76)
        aff = np.diag([pd[1], pd[2], pd[3], 1.0])
    return Image(data, aff, float(slope), float(inter), hdr)
