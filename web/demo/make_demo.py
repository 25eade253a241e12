"""Makes web/demo/demo.nii.gz, the app's "Demo scan": one synthetic COVID-19 case
from the project's generator (train/synth, seed 20261126, case 0: 5 mm slices,
LAS, int16 with scl_inter -1024), reduced to fit the app's size budget (< 3 MB):
3x3 in-plane block average (512 -> 170 voxels, 0.6 -> 1.8 mm; finer than the
model grid's 2.8 mm), rounded to int16, header variant and geometry otherwise
kept (the affine is rescaled so world positions stay the same).

    /usr/bin/python3 web/demo/make_demo.py      (~5 s)
"""
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "train"))
from synth import niftiio  # noqa: E402

SEED, F = 20261126, 3


def main():
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "synth.generate", "--out", tmp, "--n", "1", "--seed", str(SEED),
                        "--tensors", "no", "--preview", "0", "--workers", "1"],
                       cwd=os.path.join(ROOT, "train"), check=True, stdout=subprocess.DEVNULL)
        img = niftiio.read(os.path.join(tmp, "case_00000.nii"))
    d = img.data.astype(np.float32)  # [z, y, x] as stored
    z, y, x = d.shape
    d = d[:, : y // F * F, : x // F * F].reshape(z, y // F, F, x // F, F).mean(axis=(2, 4))
    aff = img.affine.copy()
    # voxel (i, j) of the new grid is the centre of an FxF block of the old one
    aff[:3, 3] = aff[:3, 3] + aff[:3, 0] * (F - 1) / 2 + aff[:3, 1] * (F - 1) / 2
    aff[:3, 0] *= F
    aff[:3, 1] *= F
    out = os.path.join(HERE, "demo.nii.gz")
    niftiio.write(out, np.round(d).astype(img.data.dtype), aff, scl_slope=img.slope or 1.0, scl_inter=img.inter,
                  gzip_level=9, descrip=b"csac demo: synthetic COVID-19 case (train/synth seed 20261126)")
    print(out, os.path.getsize(out), "bytes", d.shape[::-1])


if __name__ == "__main__":
    main()
