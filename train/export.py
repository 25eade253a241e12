"""export.py - write the folded CSAC-Net-3D to safetensors (F32 or F16).

    /usr/bin/python3 train/export.py CHECKPOINT.pt weights/csac_v1.safetensors [--f16]
    /usr/bin/python3 train/export.py --random SEED OUT.safetensors [--f16]
    /usr/bin/python3 train/export.py --onnx WEIGHTS.safetensors|CHECKPOINT.pt OUT.onnx
    /usr/bin/python3 train/export.py --onnx --random SEED OUT.onnx

CHECKPOINT.pt is a state_dict of the training module train/csacnet.CSACNet3D
(BatchNorm not folded); BN is folded here. Tensor names are the folded module's
state_dict names, which nn/model.c validates (names, shapes, dtypes).
The writer is ours (no safetensors package): 8-byte LE header length, JSON
header with dtype/shape/data_offsets (sorted by name, data in that order),
padded with spaces to a multiple of 8, then raw little-endian data.

--onnx writes the folded module as ONNX instead (for other runtimes, e.g.
bench/compare.mjs): static input 1x1x64x128x128 "input", output "logit" 1x1
(no sigmoid), F32. A .safetensors source (F16 or F32) is read as folded weights.
torch.onnx.export needs no `onnx` Python package.
"""
import argparse
import json
import os
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from csac import GRID_VERSION  # noqa: E402


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
    meta = {"grid": str(GRID_VERSION), **(metadata or {})}  # the C core loads only weights of its own grid
    header["__metadata__"] = {str(k): str(v) for k, v in meta.items()}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    return 8 + len(h) + off


ONNX_OPSET = 17  # the newest torch 1.13 writes; onnxruntime reads it


def export_onnx(state_dict, path, opset=ONNX_OPSET):
    """Writes the folded CSAC-Net-3D with these weights as ONNX (static shape)."""
    import torch
    import csacnet
    m = csacnet.fold_bn(csacnet.CSACNet3D())
    m.load_state_dict({k: torch.as_tensor(v, dtype=torch.float32) for k, v in state_dict.items()})
    x = torch.zeros(1, 1, *csacnet.GRID)
    with torch.no_grad():
        torch.onnx.export(m.eval(), (x,), path, opset_version=opset, input_names=["input"],
                          output_names=["logit"], do_constant_folding=True)
    return os.path.getsize(path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src", help="checkpoint .pt (state_dict of CSACNet3D), or a seed with --random")
    ap.add_argument("out")
    ap.add_argument("--random", action="store_true", help="src is a seed: deterministic random folded weights")
    ap.add_argument("--f16", action="store_true", help="store F16 (the loader converts to F32)")
    ap.add_argument("--onnx", action="store_true", help="write ONNX (F32); src may also be a .safetensors")
    args = ap.parse_args()
    import torch
    import csacnet
    if args.onnx and not args.random and args.src.endswith(".safetensors"):
        from evaluate import load_safetensors
        sd = load_safetensors(args.src)
        n = export_onnx(sd, args.out)
        print("wrote %s: ONNX opset %d from %s, %d bytes" % (args.out, ONNX_OPSET, args.src, n))
        return
    if args.random:
        sd = csacnet.random_state_dict(int(args.src))
        meta = {"model": "csac-net-3d-v1", "weights": "random seed %s" % args.src}
    else:
        m = csacnet.CSACNet3D()
        m.load_state_dict(torch.load(args.src, map_location="cpu"))
        sd = csacnet.fold_bn(m).state_dict()
        meta = {"model": "csac-net-3d-v1", "source": os.path.basename(args.src)}
    if args.onnx:
        n = export_onnx(sd, args.out)
        print("wrote %s: ONNX opset %d, %d bytes" % (args.out, ONNX_OPSET, n))
        return
    n = save_safetensors(sd, args.out, args.f16, meta)
    print("wrote %s: %d tensors, %d bytes" % (args.out, len(sd), n))


if __name__ == "__main__":
    main()
