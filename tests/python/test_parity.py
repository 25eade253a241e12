"""Proves the C core computes what the PyTorch reference computes (see
parity_live.py for the checks). Here torch and the native build are required:
tests/run.sh installs and builds both, so a SKIP counts as a failure."""
import os
import subprocess
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))


class ParityLive(unittest.TestCase):
    def test_c_core_matches_pytorch(self):
        p = subprocess.run([sys.executable, os.path.join(HERE, "parity_live.py")], capture_output=True, text=True,
                           timeout=900)
        out = p.stdout + p.stderr
        self.assertNotIn("SKIP", out, out)
        self.assertEqual(p.returncode, 0, out)


if __name__ == "__main__":
    unittest.main()
