#!/usr/bin/python3
"""Writes the seed corpus of the fuzz targets into fuzz/corpus/<target>/
(deterministic: the same bytes on every run; seed-*.nii names, so the
fuzzers' own additions, named by SHA-1, stay apart). Small valid files of
each kind the readers accept and a few bad ones of each kind they refuse.
Run: /usr/bin/python3 fuzz/make_seeds.py   (needs weights/csac_v1.safetensors
for the safetensors seeds: its real JSON header, without the 9 MB of data)."""
import gzip
import json
import math
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
OUT = os.path.join(HERE, "corpus")

DT = {"u8": (2, "B"), "i16": (4, "h"), "i32": (8, "i"), "f32": (16, "f"), "f64": (64, "d"),
      "i8": (256, "b"), "u16": (512, "H"), "u32": (768, "I")}


def gz(b):
    return gzip.compress(b, compresslevel=6, mtime=0)


def nifti(dims, dt="i16", data=None, spacing=(1.0, 1.0, 1.0), sform=None, qform=True, quat=(0, 0, 0),
          slope=0.0, inter=0.0, ver=1, be=False, ext=b"", magic=None, vox_offset=None, dim0=None):
    """A NIfTI-1/2 file; sform: 3x4 rows (default diagonal spacing), or False for none."""
    code, fmt = DT[dt]
    e = ">" if be else "<"
    n = 1
    for d in dims:
        n *= d
    if data is None:
        data = [0] * n
    dimv = [dim0 if dim0 is not None else len(dims)] + list(dims) + [1] * (7 - len(dims))
    pix = [1.0, spacing[0], spacing[1], spacing[2], 1, 1, 1, 1]
    if sform is None:
        sform = [[spacing[0], 0, 0, -10], [0, spacing[1], 0, -20], [0, 0, spacing[2], -30]]
    hsz = 348 if ver == 1 else 540
    extb = (b"\x01\x00\x00\x00" + ext) if ext else b"\x00\x00\x00\x00"
    off = vox_offset if vox_offset is not None else hsz + len(extb)
    if ver == 1:
        h = bytearray(348)
        struct.pack_into(e + "i", h, 0, 348)
        struct.pack_into(e + "8h", h, 40, *dimv)
        struct.pack_into(e + "hh", h, 70, code, 8 * struct.calcsize(fmt))
        struct.pack_into(e + "8f", h, 76, *pix)
        struct.pack_into(e + "fff", h, 108, off, slope, inter)
        h[123] = 2  # xyzt_units: mm
        struct.pack_into(e + "hh", h, 252, 1 if qform else 0, 1 if sform else 0)
        struct.pack_into(e + "6f", h, 256, *quat, -10, -20, -30)
        if sform:
            struct.pack_into(e + "12f", h, 280, *[v for row in sform for v in row])
        h[344:348] = magic if magic is not None else b"n+1\0"
    else:
        h = bytearray(540)
        struct.pack_into(e + "i", h, 0, 540)
        h[4:12] = magic if magic is not None else b"n+2\0\r\n\x1a\n"
        struct.pack_into(e + "hh", h, 12, code, 8 * struct.calcsize(fmt))
        struct.pack_into(e + "8q", h, 16, *dimv)
        struct.pack_into(e + "8d", h, 104, *pix)
        struct.pack_into(e + "qdd", h, 168, int(off), slope, inter)
        struct.pack_into(e + "ii", h, 344, 1 if qform else 0, 1 if sform else 0)
        struct.pack_into(e + "6d", h, 352, *quat, -10, -20, -30)
        if sform:
            struct.pack_into(e + "12d", h, 400, *[v for row in sform for v in row])
        struct.pack_into(e + "i", h, 500, 2)
    pad = bytes(max(0, int(off) - hsz - len(extb)))
    body = struct.pack(e + str(n) + fmt, *data)
    return bytes(h) + extb + pad + body


def phantom(nx=16, ny=16, nz=12, air=-1000, lung=-850, tissue=40):
    """A chest-like volume: air around a body with two enclosed lungs (at 10 mm
    voxels, 1 mL each: 6 x 6 x 10 = 360 mL per lung, enough to be found)."""
    v = []
    for k in range(nz):
        for j in range(ny):
            for i in range(nx):
                x = air
                if 1 <= i <= nx - 2 and 2 <= j <= ny - 3:
                    x = tissue + (i + j + k) % 5
                    if 1 <= k <= nz - 2 and 4 <= j <= 9 and (2 <= i <= 7 or 9 <= i <= 14):
                        x = lung
                v.append(x)
    return v


def write(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def header_seeds():
    t = "fuzz_nifti_header"
    r = 2.0
    write(t, "u8-sform.nii", nifti((4, 4, 4), "u8", [i % 256 for i in range(64)], spacing=(r, r, r)))
    write(t, "u8-sform.nii.gz", gz(nifti((4, 4, 4), "u8", [i % 256 for i in range(64)], spacing=(r, r, r))))
    c = math.sqrt(0.5)  # qform: 90 degrees about z
    write(t, "i16-be-qform.nii", nifti((5, 4, 3), "i16", [-1000 + 37 * i for i in range(60)], sform=False,
                                       quat=(0, 0, c), be=True))
    write(t, "f32-scaled-pixdim.nii", nifti((3, 3, 3), "f32", [float(i) for i in range(27)], sform=False,
                                            qform=False, slope=2.0, inter=-1024.0, spacing=(0.7, 0.7, 5.0)))
    write(t, "n2-f64.nii", nifti((3, 3, 3), "f64", [-1000.0 + i for i in range(27)], ver=2))
    write(t, "n2-be-i32.nii", nifti((3, 3, 2), "i32", list(range(-9, 9)), ver=2, be=True))
    write(t, "4d.nii", nifti((3, 3, 3, 2), "i16", [-1000] * 54))
    write(t, "ext.nii", nifti((3, 3, 3), "u16", list(range(27)), ext=b"\x20\x00\x00\x00\x04\x00\x00\x00" + bytes(24)))
    write(t, "oblique-u32.nii", nifti((3, 3, 3), "u32", list(range(27)),
                                      sform=[[0.9, -0.3, 0, 1], [0.3, 0.9, 0.1, 2], [0, -0.1, 3, 3]]))
    write(t, "i8.nii", nifti((3, 4, 2), "i8", list(range(-12, 12))))
    good = nifti((3, 3, 3), "i16", [-1000] * 27)
    write(t, "bad-ni1.nii", nifti((3, 3, 3), "i16", [0] * 27, magic=b"ni1\0"))
    write(t, "bad-analyze.nii", nifti((3, 3, 3), "i16", [0] * 27, magic=b"\0\0\0\0"))
    write(t, "bad-2d.nii", nifti((3, 3), "i16", [0] * 9))
    write(t, "bad-dim3-1.nii", nifti((3, 3, 1), "i16", [0] * 9))
    b = bytearray(good); struct.pack_into("<h", b, 70, 128); write(t, "bad-rgb.nii", bytes(b))
    b = bytearray(good); struct.pack_into("<f", b, 108, 100.0); write(t, "bad-voxoffset.nii", bytes(b))
    b = bytearray(good); struct.pack_into("<f", b, 112, float("nan")); write(t, "bad-slope-nan.nii", bytes(b))
    b = bytearray(good); struct.pack_into("<f", b, 280, float("inf")); write(t, "bad-sform-inf.nii", bytes(b))
    write(t, "bad-singular.nii", nifti((3, 3, 3), "i16", [0] * 27, sform=[[1, 0, 0, 0], [1, 0, 0, 0], [0, 0, 1, 0]]))
    write(t, "bad-spacing.nii", nifti((3, 3, 3), "i16", [0] * 27, spacing=(1000, 1, 1)))
    write(t, "bad-zero-pixdim.nii", nifti((3, 3, 3), "i16", [0] * 27, sform=False, spacing=(1, 0, 1)))
    write(t, "bad-trunc-header.nii", good[:200])
    write(t, "bad-trunc-data.nii", good[:-5])
    write(t, "bad-n2-textmode.nii", nifti((3, 3, 3), "i16", [0] * 27, ver=2, magic=b"n+2\0\n\x1a\n\0"))
    write(t, "bad-dicom.dcm", bytes(128) + b"DICM" + bytes(16))
    write(t, "bad-text.txt", b"this is not a NIfTI file\n")
    write(t, "bad-big-dims.nii", nifti((3, 3, 3), "i16", [0] * 27, dim0=3)[:40] +
          struct.pack("<8h", 3, 30000, 30000, 30000, 1, 1, 1, 1) + good[56:])


def data_seeds(t, prefix_modes):
    """Seeds for the targets with a mode byte (see fuzz_prepare in fuzz_common.h)."""
    ph = phantom()
    sp = (10.0, 10.0, 10.0)
    i16 = nifti((16, 16, 12), "i16", ph, spacing=sp)
    write(t, "m0-phantom-i16.nii", b"\x00" + i16)
    write(t, "m1-phantom-i16.nii.gz", b"\x01" + i16)            # harness gzip: libdeflate path
    write(t, "m2-phantom-i16-2members.nii.gz", b"\x02" + i16)
    write(t, "m3-phantom-i16-truncated.nii.gz", b"\x13" + i16)  # cut 5 bytes
    write(t, "m0-phantom-i16.nii.gz", b"\x00" + gz(i16))
    u8 = nifti((16, 16, 12), "u8", [(x + 1024) // 8 for x in ph], spacing=sp, slope=8.0, inter=-1024.0)
    write(t, "m1-phantom-u8-scaled.nii.gz", b"\x05" + u8)
    lps = nifti((16, 16, 12), "i16", ph, sform=[[-10, 0, 0, 80], [0, -10, 0, 90], [0, 0, 10, -50]])
    write(t, "m0-phantom-lps.nii", b"\x00" + lps)
    if "extra" in prefix_modes:
        write(t, "m1-phantom-f32-be.nii.gz", b"\x01" + nifti((16, 16, 12), "f32", [float(x) for x in ph],
                                                             spacing=sp, be=True))
        write(t, "m0-phantom-n2-f64.nii", b"\x00" + nifti((16, 16, 12), "f64", [float(x) for x in ph],
                                                          spacing=sp, ver=2))
        write(t, "m1-i32-scaled-4d.nii.gz", b"\x01" + nifti((6, 5, 4, 2), "i32", [i * 3 - 1000 for i in range(240)],
                                                            spacing=(3, 3, 6), slope=0.5, inter=-10.0))
        write(t, "m0-u16-ext.nii", b"\x00" + nifti((6, 5, 4), "u16", list(range(120)), ext=bytes(28)))
        nan = nifti((4, 4, 4), "f32", [float("nan") if i == 17 else -1000.0 for i in range(64)])
        write(t, "m0-bad-nan.nii", b"\x00" + nan)
        bad = bytearray(gz(i16)); bad[-8] ^= 0xFF                   # damaged CRC-32
        write(t, "m0-bad-crc.nii.gz", b"\x00" + bytes(bad))
        write(t, "m0-bad-gzip-garbage.nii.gz", b"\x00" + gz(i16)[:60] + bytes(range(40)))
    else:
        obl = nifti((16, 16, 12), "i16", ph,
                    sform=[[9.5, -3, 0, 10], [3, 9.5, 1, 20], [0, -1, 10, 30]])
        write(t, "m0-phantom-oblique.nii", b"\x00" + obl)
        air = nifti((5, 5, 4), "i16", [-1000] * 100, sform=False, qform=False, spacing=(0.5, 0.5, 1.0))
        write(t, "m0-air-pixdim.nii", b"\x00" + air)
        write(t, "m1-body-no-lungs.nii.gz", b"\x01" + nifti((8, 8, 6), "i16", [40] * 384, spacing=(3, 3, 5)))


def st_file(header, data=b""):
    h = json.dumps(header, separators=(",", ":")).encode() if not isinstance(header, bytes) else header
    while len(h) % 8:
        h += b" "
    return struct.pack("<Q", len(h)) + h + data


def safetensors_seeds():
    t = "fuzz_safetensors"
    w = os.path.join(ROOT, "weights", "csac_v1.safetensors")
    with open(w, "rb") as f:
        hl = struct.unpack("<Q", f.read(8))[0]
        real = f.read(hl)
    write(t, "real-header-no-data.safetensors", struct.pack("<Q", hl) + real)  # truncated data
    hdr = json.loads(real)
    small = {k: v for k, v in hdr.items() if k.startswith("head.fc3")}
    data = b""
    part = {"__metadata__": hdr["__metadata__"]}
    for k in sorted(small):
        n = 1
        for d in small[k]["shape"]:
            n *= d
        part[k] = {"dtype": "F16", "shape": small[k]["shape"], "data_offsets": [len(data), len(data) + 2 * n]}
        data += struct.pack("<%de" % n, *[0.25 * (i % 7 - 3) for i in range(n)])
    write(t, "real-names-missing.safetensors", st_file(part, data))  # parses; missing tensors
    f32 = {"head.fc3.bias": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
           "stem.bias": {"dtype": "F32", "shape": [16], "data_offsets": [4, 68]}}
    write(t, "f32-two.safetensors", st_file(f32, struct.pack("<17f", *range(17))))
    write(t, "meta-escapes.safetensors", st_file(
        b'{"__metadata__":{"k\\u00e9y":"v\\"\\\\\\/\\b\\f\\n\\r\\t\\ud83d\\ude00"},'
        b'"head.fc3.bias":{"dtype":"F16","shape":[1],"data_offsets":[0,2]}}', b"\x00\x3c"))
    write(t, "bad-bf16.safetensors", st_file({"head.fc3.bias": {"dtype": "BF16", "shape": [1], "data_offsets": [0, 2]}}, b"\0\0"))
    write(t, "bad-shape.safetensors", st_file({"head.fc3.bias": {"dtype": "F16", "shape": [2], "data_offsets": [0, 4]}}, bytes(4)))
    write(t, "bad-unexpected.safetensors", st_file({"stage9.x": {"dtype": "F16", "shape": [], "data_offsets": [0, 2]}}, bytes(2)))
    write(t, "bad-overlap.safetensors", st_file({"a": {"dtype": "F16", "shape": [2], "data_offsets": [0, 4]},
                                                 "b": {"dtype": "F16", "shape": [2], "data_offsets": [2, 6]}}, bytes(6)))
    write(t, "bad-span.safetensors", st_file({"a": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 20]}}, bytes(24)))
    write(t, "bad-nan.safetensors", st_file({"head.fc3.bias": {"dtype": "F16", "shape": [1], "data_offsets": [0, 2]}}, b"\x00\x7e"))
    write(t, "empty-object.safetensors", st_file(b"{}"))
    write(t, "empty-tensor.safetensors", st_file({"e": {"dtype": "F16", "shape": [2, 0], "data_offsets": [2, 2]},
                                                  "head.fc3.bias": {"dtype": "F16", "shape": [1], "data_offsets": [0, 2]}},
                                                 bytes(2)))
    write(t, "bad-hl-huge.safetensors", struct.pack("<Q", 1 << 40) + b"{}")
    write(t, "bad-not-json.safetensors", st_file(b'{"a":{"dtype":"F16","shape":[01],"data_offsets":[0,2]},}'))
    write(t, "bad-dup.safetensors", st_file(b'{"a":{"dtype":"F16","shape":[1],"data_offsets":[0,2]},'
                                            b'"a":{"dtype":"F16","shape":[1],"data_offsets":[2,4]}}', bytes(4)))


if __name__ == "__main__":
    header_seeds()
    data_seeds("fuzz_nifti_data", {"extra"})
    data_seeds("fuzz_load_preprocess", set())
    safetensors_seeds()
    for t in sorted(os.listdir(OUT)):
        files = os.listdir(os.path.join(OUT, t))
        size = sum(os.path.getsize(os.path.join(OUT, t, f)) for f in files)
        print("%-22s %3d files %7d bytes" % (t, len(files), size))
