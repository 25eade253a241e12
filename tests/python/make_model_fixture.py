"""Writes tests/data/model_random_v1.txt: PyTorch (eager, fp32) outputs of
CSAC-Net-3D v1 with the deterministic random weights and input of seed 1
(train/csacnet.py, mirrored by nn/model.c). tests/c/test_model.c compares the
C forward with it, natively and in wasm, so the parity check needs no torch.

    /usr/bin/python3 tests/python/make_model_fixture.py   (~5 s)
"""
import os
import sys

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "train"))
import csacnet  # noqa: E402

# maps whose checksums the C test compares (csac_layer_output names)
CHECK_LAYERS = ["stem", "stem.pool", "stage1", "stage2.pool", "stage2", "stage3", "stage4",
                "subA.conv1", "subA.pool1", "subA.pool2", "subB.pool1", "subB.pool2", "subC.pool1", "merge"]


def main(seed=1, out=os.path.join(ROOT, "tests", "data", "model_random_v1.txt")):
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    m = csacnet.folded_random_model(seed)
    taps = {}
    with torch.no_grad():
        logit = m(csacnet.random_input(seed), taps)[0, 0].item()
    prob = torch.sigmoid(torch.tensor(logit, dtype=torch.float64)).item()
    feats = taps["features"][0].numpy()
    with open(out, "w") as f:
        f.write("# PyTorch %s eager fp32 reference of CSAC-Net-3D v1, random weights (tests/python/make_model_fixture.py)\n"
                % torch.__version__)
        f.write("seed %d\n" % seed)
        f.write("probability %.9g\n" % prob)
        f.write("logit %.9g\n" % logit)
        f.write("features %d\n" % len(feats))
        for i in range(0, len(feats), 8):
            f.write(" ".join("%.9g" % v for v in feats[i:i + 8]) + "\n")
        f.write("layers %d  (name c d h w sum sumabs wsum)\n" % len(CHECK_LAYERS))
        for name in CHECK_LAYERS:
            v = taps[name][0].double().numpy()
            # wsum weights voxel i by (i % 7) - 3: a swapped or shifted voxel changes it
            w = (np.arange(v.size) % 7 - 3).astype(np.float64)
            f.write("%s %s %.12g %.12g %.12g\n" % (name, " ".join(str(s) for s in v.shape), v.sum(), np.abs(v).sum(),
                                                   (v.reshape(-1) * w).sum()))
    print("wrote %s: probability %.6f logit %.6f" % (out, prob, logit))


if __name__ == "__main__":
    main()
