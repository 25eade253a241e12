"""Live parity of the C core with PyTorch (needs python3-torch and a native build).

Proves, on weights that do NOT come from the shared generator:
  1. fold_bn() is exact: the BN module (random BN statistics, eval mode) and its
     folded copy give the same logit (within 1e-4) on the same input;
  2. the C forward (build/native/libcsac.so via ctypes) on that folded model,
     exported by train/export.py as F32 safetensors, matches PyTorch:
     probability within 1e-5, logit within 1e-4, the 288 features within 1e-4,
     and the maps stem.pool / subA.pool1 / merge within 1e-4 relative;
  3. the same for an F16 export, against PyTorch run with the F16-rounded weights;
  4. the generator is mirrored: C's csac_model_init_random(7) and Python's
     random_state_dict(7) / random_input(7) give the same outputs.
Exit 0 = pass, 1 = fail, 0 with "SKIP" when torch or the library is missing.

    /usr/bin/python3 tests/python/parity_live.py [build/native/libcsac.so]
"""
import ctypes
import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "train"))

try:
    import numpy as np
    import torch
except ImportError as e:
    print("SKIP parity_live: %s (install python3-torch)" % e)
    sys.exit(0)

import csacnet  # noqa: E402
from export import save_safetensors  # noqa: E402

N = csacnet.N_FEATURES
GRID = csacnet.GRID
failures = []


def check(ok, msg):
    print(("ok   " if ok else "FAIL ") + msg)
    if not ok:
        failures.append(msg)


class Result(ctypes.Structure):
    """The leading fields of csac_result; padded, so fields csac.h adds later fit."""
    _fields_ = [("probability", ctypes.c_float), ("logit", ctypes.c_float), ("features", ctypes.c_float * N),
                ("rest", ctypes.c_char * 65536)]


def load_lib(path):
    lib = ctypes.CDLL(path)
    lib.csac_init.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p)]
    lib.csac_free.argtypes = [ctypes.c_void_p]
    lib.csac_last_error.argtypes = [ctypes.c_void_p]
    lib.csac_last_error.restype = ctypes.c_char_p
    lib.csac_load_model_file.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.csac_model_init_random.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    lib.csac_model_input.argtypes = [ctypes.c_void_p]
    lib.csac_model_input.restype = ctypes.POINTER(ctypes.c_float)
    lib.csac_forward.argtypes = [ctypes.c_void_p, ctypes.POINTER(Result)]
    lib.csac_layer_output.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int)]
    lib.csac_layer_output.restype = ctypes.POINTER(ctypes.c_float)
    return lib


class C:
    def __init__(self, lib):
        self.lib = lib
        self.ctx = ctypes.c_void_p()
        if lib.csac_init(None, ctypes.byref(self.ctx)) != 0:
            raise RuntimeError("csac_init failed")

    def err(self):
        return self.lib.csac_last_error(self.ctx).decode()

    def run(self, x=None):
        if x is not None:
            inp = self.lib.csac_model_input(self.ctx)
            a = np.ascontiguousarray(x.reshape(-1).numpy(), dtype=np.float32)
            ctypes.memmove(inp, a.ctypes.data, a.nbytes)
        r = Result()
        st = self.lib.csac_forward(self.ctx, ctypes.byref(r))
        if st != 0:
            raise RuntimeError(self.err())
        return r

    def layer(self, name):
        shape = (ctypes.c_int * 4)()
        p = self.lib.csac_layer_output(self.ctx, name.encode(), shape)
        n = shape[0] * shape[1] * shape[2] * shape[3]
        return np.ctypeslib.as_array(p, shape=(n,)).reshape(tuple(shape)).copy()

    def close(self):
        self.lib.csac_free(self.ctx)


def torch_run(model, x):
    taps = {}
    with torch.no_grad():
        logit = model(x, taps)[0, 0].item()
    return logit, taps


def compare(tag, r, logit, taps, c=None):
    p_ref = 1.0 / (1.0 + np.exp(-np.float64(logit)))
    check(abs(r.probability - p_ref) <= 1e-5, "%s probability C %.7f PyTorch %.7f" % (tag, r.probability, p_ref))
    check(abs(r.logit - logit) <= 1e-4, "%s logit C %.6f PyTorch %.6f" % (tag, r.logit, logit))
    f_ref = taps["features"][0].numpy()
    err = np.abs(np.array(r.features[:]) - f_ref).max()
    check(err <= 1e-4, "%s features max abs err %.3g" % (tag, err))
    if c is not None:
        for name in ("stem.pool", "subA.pool1", "merge"):
            a, b = c.layer(name), taps[name][0].numpy()
            rel = np.abs(a - b).max() / max(1e-12, np.abs(b).max())
            check(a.shape == b.shape and rel <= 1e-4, "%s map %s %s rel err %.3g" % (tag, name, a.shape, rel))


def main():
    lib_path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build", "native", "libcsac.so")
    if not os.path.exists(lib_path):
        print("SKIP parity_live: %s not built (cmake --preset native && cmake --build --preset native)" % lib_path)
        return 0
    lib = load_lib(lib_path)
    torch.manual_seed(0)
    torch.set_num_threads(max(1, os.cpu_count() or 1))

    # 1. BN folding, on a model with non-trivial BN statistics
    net = csacnet.CSACNet3D()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm3d):
                m.weight.uniform_(0.5, 1.0)
                m.bias.uniform_(-0.1, 0.1)
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.8, 1.6)
    net.eval()
    folded = csacnet.fold_bn(net)
    x = torch.rand(1, 1, *GRID)
    logit_bn, _ = torch_run(net, x)
    logit, taps = torch_run(folded, x)
    check(abs(logit_bn - logit) <= 1e-4 * max(1.0, abs(logit)), "fold_bn logit %.6f vs BN module %.6f" % (logit, logit_bn))

    with tempfile.TemporaryDirectory() as tmp:
        # 2. F32 export of the folded model -> C
        path = os.path.join(tmp, "w32.safetensors")
        save_safetensors(folded.state_dict(), path, metadata={"model": "csac-net-3d-v1", "test": "parity_live"})
        c = C(lib)
        st = lib.csac_load_model_file(c.ctx, path.encode())
        check(st == 0, "C loads the F32 export (%s)" % (c.err() if st else "ok"))
        if st == 0:
            compare("F32", c.run(x), logit, taps, c)

        # 3. F16 export vs PyTorch with F16-rounded weights
        path16 = os.path.join(tmp, "w16.safetensors")
        save_safetensors(folded.state_dict(), path16, f16=True)
        rounded = csacnet.fold_bn(csacnet.CSACNet3D())
        rounded.load_state_dict({k: v.half().float() for k, v in folded.state_dict().items()})
        logit16, taps16 = torch_run(rounded.eval(), x)
        st = lib.csac_load_model_file(c.ctx, path16.encode())
        check(st == 0, "C loads the F16 export (%s)" % (c.err() if st else "ok"))
        if st == 0:
            compare("F16", c.run(x), logit16, taps16)
        c.close()

    # 4. the shared generator, another seed
    c = C(lib)
    check(lib.csac_model_init_random(c.ctx, 7) == 0, "C init_random(7)")
    r = c.run()
    logit7, taps7 = torch_run(csacnet.folded_random_model(7), csacnet.random_input(7))
    inp = np.ctypeslib.as_array(lib.csac_model_input(c.ctx), shape=(int(np.prod(GRID)),))
    check(np.array_equal(inp, csacnet.random_input(7).reshape(-1).numpy()), "generator input identical (seed 7)")
    compare("seed 7", r, logit7, taps7, c)
    c.close()

    print("parity_live: %d failures" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
