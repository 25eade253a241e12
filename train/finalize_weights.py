"""finalize_weights.py - writes the metadata that the apps read into the
shipped safetensors (the tensors stay bit for bit the same):
  version, trained (recipe summary), operating_points (sensitivity and
  specificity at 0.3 / 0.5 / 0.7 on the shifted synthetic test set, from
  evaluate.py's eval.json), selftest_logit (PyTorch's logit for the browser
  self-test input "hash-v1": x[i] = ((i * 7919) % 1009) / 1008).

    /usr/bin/python3 train/finalize_weights.py weights/csac_v1.safetensors docs/eval/eval.json \
        --version "csac_v1 (2026-11-26, preliminary)"
"""
import argparse
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import csacnet  # noqa: E402
from evaluate import load_safetensors  # noqa: E402
from export import save_safetensors  # noqa: E402


def read_meta(path):
    import struct
    with open(path, "rb") as fh:
        n = struct.unpack("<Q", fh.read(8))[0]
        h = json.loads(fh.read(n))
    return h.get("__metadata__", {}), {k: v["dtype"] for k, v in h.items() if k != "__metadata__"}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("weights")
    ap.add_argument("eval_json")
    ap.add_argument("--version", required=True)
    a = ap.parse_args()
    meta, dtypes = read_meta(a.weights)
    sd = load_safetensors(a.weights)
    m = csacnet.fold_bn(csacnet.CSACNet3D())
    m.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()})
    m.eval()
    i = np.arange(int(np.prod(csacnet.GRID)), dtype=np.int64)
    x = (((i * 7919) % 1009) / 1008).astype(np.float32).reshape(1, 1, *csacnet.GRID)
    with torch.no_grad():
        logit = float(m(torch.from_numpy(x))[0, 0])
    ev = json.load(open(a.eval_json))
    res = ev["methods"]["CSAC-Net-3D (C core)"]["all"]
    ops = [{"threshold": t, "sensitivity": round(res[f"t{t}"]["sensitivity"][0], 4),
            "specificity": round(res[f"t{t}"]["specificity"][0], 4)} for t in (0.3, 0.5, 0.7)]
    meta.update({"model": "csac-net-3d-v1", "version": a.version, "operating_points": json.dumps(ops),
                 "operating_points_source": f"shifted synthetic test set ({ev['n']} cases), see weights/MODEL_CARD.md",
                 "test_auc": f"{res['auc'][0]:.4f}", "selftest_logit": repr(logit), "selftest_tol": "1e-3"})
    f16 = all(d == "F16" for d in dtypes.values())
    save_safetensors(sd, a.weights, f16=f16, metadata=meta)
    print(json.dumps({"selftest_logit": logit, "operating_points": ops, "f16": f16}))


if __name__ == "__main__":
    main()
