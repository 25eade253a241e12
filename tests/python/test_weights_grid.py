"""Weights and C core go together: the model grid a file was trained on (its __metadata__ "grid",
written by export.save_safetensors from the one constant) must be the core's (nn/csac.h
CSAC_GRID_VERSION), or the load fails with a message that says so. The shipped weights name it."""
import os
import re
import sys
import tempfile
import unittest

import torch

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
sys.path.insert(0, os.path.join(ROOT, "train"))
import csac  # noqa: E402
import csacnet  # noqa: E402
import export  # noqa: E402
from finalize_weights import read_meta  # noqa: E402


def header_grid():
    with open(os.path.join(ROOT, "nn", "csac.h")) as fh:
        return int(re.search(r"#define CSAC_GRID_VERSION (\d+)", fh.read()).group(1))


class WeightsGrid(unittest.TestCase):
    def test_python_and_c_name_the_same_grid(self):
        self.assertEqual(csac.GRID_VERSION, header_grid())

    def test_shipped_weights_name_this_grid(self):
        meta, _ = read_meta(os.path.join(ROOT, "weights", "csac_v1.safetensors"))
        self.assertEqual(meta.get("grid"), str(header_grid()))

    def test_core_loads_only_its_grid(self):
        try:
            from evaluate import Core
            csac._ctx()
        except Exception as e:  # noqa: BLE001
            raise unittest.SkipTest("libcsac.so not available: %s" % e)
        torch.manual_seed(0)
        sd = csacnet.fold_bn(csacnet.CSACNet3D()).state_dict()
        with tempfile.TemporaryDirectory() as tmp:
            good, old, other = (os.path.join(tmp, f"{n}.safetensors") for n in ("good", "old", "other"))
            export.save_safetensors(sd, good, f16=True, metadata={"version": "test"})
            export.save_safetensors(sd, other, f16=True, metadata={"grid": "1"})
            export.save_safetensors(sd, old, f16=True)
            with open(old, "rb") as fh:  # a v6-style file: the same bytes without the grid key
                b = fh.read()
            b = b.replace(b'"grid":"%d"' % header_grid(), b'"gird":"%d"' % header_grid(), 1)
            with open(old, "wb") as fh:
                fh.write(b)
            Core(good, n_threads=1).close()
            with self.assertRaisesRegex(RuntimeError, "trained on model grid '1'; this core computes grid %d"
                                        % header_grid()):
                Core(other, n_threads=1)
            with self.assertRaisesRegex(RuntimeError, "the weights name no model grid"):
                Core(old, n_threads=1)


if __name__ == "__main__":
    unittest.main()
