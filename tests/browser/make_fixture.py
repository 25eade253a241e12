"""Random-weight model for the browser tests (the real weights may not exist yet):
writes OUT_DIR/csac_v1.safetensors (deterministic random weights, seed 1, with
test operating points in its metadata) and OUT_DIR/csac_v1.selftest.json (the
PyTorch logit for the app's network self-test input "hash-v1":
x[i] = ((i * 7919) % 1009) / 1008, i over 64*128*128, w fastest).

    /usr/bin/python3 tests/browser/make_fixture.py OUT_DIR [--wrong-selftest]
"""
import json
import os
import sys

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "train"))
import csacnet  # noqa: E402
from export import save_safetensors  # noqa: E402


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    ops = [{"threshold": t, "sensitivity": s, "specificity": p}
           for t, s, p in [(0.3, 0.95, 0.70), (0.5, 0.90, 0.85), (0.7, 0.80, 0.93)]]
    save_safetensors(csacnet.random_state_dict(1), os.path.join(out, "csac_v1.safetensors"),
                     metadata={"model": "csac-net-3d-v1", "version": "random-seed-1 (test fixture)",
                               "operating_points": json.dumps(ops)})
    i = np.arange(int(np.prod(csacnet.GRID)), dtype=np.int64)
    x = (((i * 7919) % 1009) / 1008).astype(np.float32).reshape(1, 1, *csacnet.GRID)
    with torch.no_grad():
        logit = csacnet.folded_random_model(1)(torch.from_numpy(x))[0, 0].item()
    if "--wrong-selftest" in sys.argv:
        logit += 1.0
    with open(os.path.join(out, "csac_v1.selftest.json"), "w") as f:
        json.dump({"input": "hash-v1", "logit": logit, "tol": 1e-3}, f)
    print(out, logit)


if __name__ == "__main__":
    main()
