// forward.mjs - times whole CSAC-Net-3D v1 forwards (64x128x128) in the wasm
// build under node, like `csac bench` natively. A benchmark, not a test.
//
//   node bench/forward.mjs [--threads 2] [--runs 10] [--warmup 3] [--weights F] [--variant mt|st] [--dir D]
//
// --dir (or CSAC_WASM_DIR): the build folder holding csac-mt/st.js (default build/wasm).
// This machine's timings vary by 30% from run to run even when idle: compare
// builds by alternating them, over several invocations.
//
// Weights: deterministic random ones (csac_model_init_random, when the build
// exports it) or --weights FILE.safetensors. GFLOP/s use the dense count
// (every conv tap: 8.53 GFLOP per forward; 7.15 counting only taps inside the input).
import { instantiate, NodeCsac } from '../wasm/csac.mjs';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';

const DENSE_GFLOP = 8.53;
const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : def;
};
const threads = parseInt(opt('--threads', '2'), 10);
const runs = parseInt(opt('--runs', '10'), 10);
const warmup = parseInt(opt('--warmup', '3'), 10); // the first runs include V8's optimising compile
const weights = opt('--weights', null);
const variant = opt('--variant', threads > 1 ? 'mt' : 'st');
const dirArg = opt('--dir', process.env.CSAC_WASM_DIR); // relative paths are relative to the cwd
const dir = dirArg ? resolve(dirArg) : undefined;

const M = await instantiate({ variant, threads, dir });
const csac = new NodeCsac(M, { threads });
try {
  if (weights) {
    csac.loadModel(readFileSync(weights));
    // any input in [0,1] will do for timing
    const inp = M._csac_model_input(csac.ctx) >> 2;
    let s = 12345;
    for (let i = 0; i < 64 * 128 * 128; i++) { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; M.HEAPF32[inp + i] = (s >>> 8) / 16777216; }
  } else if (typeof M._csac_model_init_random === 'function') {
    const st = M._csac_model_init_random(csac.ctx, 1);
    if (st) throw new Error(csac.lastError());
  } else {
    throw new Error('this build does not export csac_model_init_random: pass --weights FILE.safetensors ' +
                    '(e.g. from: /usr/bin/python3 train/export.py --random 1 /tmp/r1.safetensors)');
  }
  console.log(`${M.UTF8ToString(M._csac_build_info())}, ${csac.threads} thread(s), ` +
              `${M.UTF8ToString(M._csac_model_info(csac.ctx))}`);
  const out = M._malloc(5 * 8);
  const ms = [];
  let prob = NaN;
  for (let i = 0; i < warmup + runs; i++) {
    const st = M._csac_wasm_forward(csac.ctx, out, 0);
    if (st) throw new Error(csac.lastError());
    const r = new Float64Array(M.HEAPF64.buffer, out, 5); // re-read: memory may have grown
    prob = r[0];
    if (i >= warmup) {
      ms.push(r[4]);
      console.log(`run ${i - warmup + 1}: ${r[4].toFixed(1)} ms`);
    }
  }
  M._free(out);
  ms.sort((a, b) => a - b);
  const med = ms.length % 2 ? ms[(ms.length - 1) / 2] : (ms[ms.length / 2 - 1] + ms[ms.length / 2]) / 2;
  console.log(`median ${med.toFixed(1)} ms (min ${ms[0].toFixed(1)}, max ${ms[ms.length - 1].toFixed(1)}), ` +
              `${(DENSE_GFLOP / (med * 1e-3)).toFixed(1)} GFLOP/s dense; probability ${prob.toFixed(6)}`);
} finally {
  csac.close();
}
