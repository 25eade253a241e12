"""export.py - write the folded CSAC-Net-3D to safetensors (F32 or F16).

    /usr/bin/python3 train/export.py CHECKPOINT.pt weights/csac_v1.safetensors [--f16]
    /usr/bin/python3 train/export.py --random SEED OUT.safetensors [--f16]

CHECKPOINT.pt is a state_dict of the training module train/csacnet.CSACNet3D
(BatchNorm not folded); BN is folded here. Tensor names are the folded module's
state_dict names, which nn/model.c validates (names, shapes, dtypes).
The writer is ours (no safetensors package): 8-byte LE header length, JSON
header with dtype/shape/data_offsets (sorted by name, data in that order),
padded with spaces to a multiple of 8, then raw little-endian data.
"""
import argparse
import json
import os
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def save_safetensors(tensors, path, f16=False, metadata=None):
    """tensors: name -> numpy/torch array. Returns the bytes written."""
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        a = tensors[name]
        a = a.detach().cpu().numpy() if hasattr(a, "detach") else np.asarray(a)
        a = np.ascontiguousarray(a.astype("<f2" if f16 else "<f4"))
        b = a.tobytes()
        header[name] = {"dtype": "F16" if f16 else "F32", "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    return 8 + len(h) + off


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src", help="checkpoint .pt (state_dict of CSACNet3D), or a seed with --random")
    ap.add_argument("out")
    ap.add_argument("--random", action="store_true", help="src is a seed: deterministic random folded weights")
    ap.add_argument("--f16", action="store_true", help="store F16 (the loader converts to F32)")
    args = ap.parse_args()
    import torch
    import csacnet
    if args.random:
        sd = csacnet.random_state_dict(int(args.src))
        meta = {"model": "csac-net-3d-v1", "weights": "random seed %s" % args.src}
    else:
        m = csacnet.CSACNet3D()
        m.load_state_dict(torch.load(args.src, map_location="cpu"))
        sd = csacnet.fold_bn(m).state_dict()
        meta = {"model": "csac-net-3d-v1", "source": os.path.basename(args.src)}
    n = save_safetensors(sd, args.out, args.f16, meta)
    print("wrote %s: %d tensors, %d bytes" % (args.out, len(sd), n))


if __name__ == "__main__":
    main()
