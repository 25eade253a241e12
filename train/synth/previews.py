"""Per-class preview PNGs for the docs (small, grayscale, lung window W1500/L-600).

    /usr/bin/python3 train/synth/previews.py --out docs/img [--seed 3] [--n 4]

Writes synth_covid.png, synth_cap.png, synth_normal.png (phantoms) and synth_real.png (lesions
inserted into the real training bases: covid, cap, normal).  Each tile is axial (through the
largest lesion slice, or mid-lung) | coronal (through the lesions, or mid-chest).
"""
import argparse
import os
import sys

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from synth import generate  # noqa: E402


def tile_row(cases, size):
    ims = []
    for c in cases:
        ax, co = generate.thumbs(c, size)
        ims.append(np.concatenate([ax, co], 1))
    return np.concatenate(ims, 1)


def label_img(arr, texts, size):
    im = Image.fromarray(arr)
    d = ImageDraw.Draw(im)
    for i, t in enumerate(texts):
        d.text((i * 2 * size + 3, 2), t, fill=255)
    return im


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="docs/img")
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--size", type=int, default=192)
    a = ap.parse_args(argv)
    os.makedirs(a.out, exist_ok=True)
    for li, lab in enumerate(generate.LABELS):
        cases = [generate.make_case(a.seed, li + 3 * k, "train") for k in range(a.n)]
        arr = tile_row(cases, a.size)
        txt = ["%s t=%gmm %.1f%%" % (lab, c["p"]["thickness"], 100 * c["lesion_fraction"]) for c in cases]
        label_img(arr, txt, a.size).save(os.path.join(a.out, "synth_%s.png" % lab), optimize=True)
    # real-scan insertion: one covid, cap and normal case per base
    cases = []
    k = 0
    while len(cases) < 3 and k < 60:
        c = generate.make_case(a.seed + 100, len(cases) + 3 * k, "train", real_frac=1.0)
        k += 1
        if c["source"].startswith("real:covidctmd_normal001.nii"):
            cases.append(c)
    arr = tile_row(cases, a.size)
    txt = ["real+%s %.1f%%" % (c["label"], 100 * c["lesion_fraction"]) for c in cases]
    label_img(arr, txt, a.size).save(os.path.join(a.out, "synth_real.png"), optimize=True)
    for f in sorted(os.listdir(a.out)):
        if f.startswith("synth_"):
            print(f, os.path.getsize(os.path.join(a.out, f)))


if __name__ == "__main__":
    main()
