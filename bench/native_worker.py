"""native_worker.py - our native forward (build/native/libcsac.so over ctypes) as
a bench/compare.mjs worker; the line protocol of bench/worker.mjs.

    /usr/bin/python3 bench/native_worker.py THREADS WEIGHTS INPUT.f32

CSAC_LIB picks another build of the library. Times csac_forward only.
"""
import ctypes as C
import json
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
LIB = os.environ.get("CSAC_LIB", os.path.join(HERE, "..", "build", "native", "libcsac.so"))
N = 64 * 128 * 128


class Params(C.Structure):  # csac_params (nn/csac.h)
    _fields_ = [("n_threads", C.c_int), ("max_file_bytes", C.c_uint64),
                ("max_decompressed_bytes", C.c_uint64), ("max_voxels", C.c_uint64), ("max_dim", C.c_int64)]


class Result(C.Structure):  # csac_result
    _fields_ = [("probability", C.c_float), ("logit", C.c_float), ("features", C.c_float * 288),
                ("ms_read", C.c_double), ("ms_preprocess", C.c_double), ("ms_forward", C.c_double),
                ("grid", C.c_double * 32)]


def main():
    threads, weights, inp = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    lib = C.CDLL(LIB)
    lib.csac_default_params.restype = Params
    lib.csac_init.argtypes = [C.POINTER(Params), C.POINTER(C.c_void_p)]
    lib.csac_last_error.restype = C.c_char_p
    lib.csac_last_error.argtypes = [C.c_void_p]
    lib.csac_build_info.restype = C.c_char_p
    lib.csac_load_model_file.argtypes = [C.c_void_p, C.c_char_p]
    lib.csac_model_input.restype = C.POINTER(C.c_float)
    lib.csac_model_input.argtypes = [C.c_void_p]
    lib.csac_forward.argtypes = [C.c_void_p, C.POINTER(Result)]
    lib.csac_n_threads.argtypes = [C.c_void_p]
    p = lib.csac_default_params()
    p.n_threads = threads
    ctx = C.c_void_p()

    def check(st):
        if st != 0:
            raise SystemExit("native_worker: %s" % (lib.csac_last_error(ctx).decode() if ctx else "init failed"))
    check(lib.csac_init(C.byref(p), C.byref(ctx)))
    check(lib.csac_load_model_file(ctx, os.fsencode(weights)))
    np.ctypeslib.as_array(lib.csac_model_input(ctx), (N,))[:] = np.fromfile(inp, "<f4", N)
    r = Result()

    def run():
        c0, t0 = time.process_time(), time.perf_counter()
        check(lib.csac_forward(ctx, C.byref(r)))
        t1, c1 = time.perf_counter(), time.process_time()
        return {"ms": (t1 - t0) * 1e3, "cpu": (c1 - c0) * 1e3, "logit": r.logit}
    first = run()
    info = "%s, %d thread(s), %s" % (lib.csac_build_info().decode(), lib.csac_n_threads(ctx), os.path.relpath(LIB, os.path.join(HERE, "..")))
    print(json.dumps({"ready": True, "info": info, "logit": first["logit"], "ms": first["ms"]}), flush=True)
    for line in sys.stdin:
        if line.strip() != "run":
            break
        print(json.dumps(run()), flush=True)


if __name__ == "__main__":
    main()
