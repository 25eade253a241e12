"""torch_bench.py - PyTorch (oneDNN) forward of CSAC-Net-3D v1 at 64x128x128:
the reference module (train/csacnet.py, BN folded) with the same safetensors
weights, torch.jit.trace + torch.jit.optimize_for_inference (oneDNN convs).

    /usr/bin/python3 bench/torch_bench.py [--threads 2] [--runs 10] [--warmup 3]
        [--weights weights/csac_v1.safetensors] [--input INPUT.f32]    # prints one JSON line
    /usr/bin/python3 bench/torch_bench.py --serve ...   # a bench/compare.mjs worker (see bench/worker.mjs)

Without --input: csacnet.random_input(1). The output is the logit (no sigmoid).
"""
import argparse
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "train"))


def build(weights, threads, inp):
    import numpy as np
    import torch
    import csacnet
    from evaluate import load_safetensors
    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)
    m = csacnet.fold_bn(csacnet.CSACNet3D())
    m.load_state_dict({k: torch.from_numpy(v) for k, v in load_safetensors(weights).items()})
    m.eval()
    if inp:
        x = torch.from_numpy(np.fromfile(inp, "<f4", 64 * 128 * 128).reshape(1, 1, 64, 128, 128))
    else:
        x = csacnet.random_input(1)
    with torch.no_grad():
        # no check_trace: it reruns eager, whose dilated conv3d is very slow (~7 s a forward)
        f = torch.jit.optimize_for_inference(torch.jit.trace(m, (x,), check_trace=False))

    def run():
        with torch.no_grad():
            c0, t0 = time.process_time(), time.perf_counter()
            y = f(x)
            t1, c1 = time.perf_counter(), time.process_time()
            return {"ms": (t1 - t0) * 1e3, "cpu": (c1 - c0) * 1e3, "logit": float(y.reshape(-1)[0])}
    info = "torch %s oneDNN %s, %d thread(s)" % (torch.__version__, torch.backends.mkldnn.is_available(),
                                                 torch.get_num_threads())
    return run, info


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--weights", default=os.path.join(HERE, "..", "weights", "csac_v1.safetensors"))
    ap.add_argument("--input", help="raw float32 1x1x64x128x128")
    ap.add_argument("--serve", action="store_true", help="worker: one forward per 'run' line on stdin")
    a = ap.parse_args()
    run, info = build(a.weights, a.threads, a.input)
    if a.serve:
        first = run()  # optimize_for_inference compiles on the first calls
        print(json.dumps({"ready": True, "info": info, "logit": first["logit"], "ms": first["ms"]}), flush=True)
        for line in sys.stdin:
            if line.strip() != "run":
                break
            print(json.dumps(run()), flush=True)
        return
    for _ in range(a.warmup):
        run()
    rs = [run() for _ in range(a.runs)]
    ms = [r["ms"] for r in rs]
    med = statistics.median(ms)
    print(json.dumps({"info": info, "ms": ms, "median_ms": med, "min_ms": min(ms), "max_ms": max(ms),
                      "gflops": 8.53 / (med * 1e-3), "logit": rs[-1]["logit"]}))


if __name__ == "__main__":
    main()
