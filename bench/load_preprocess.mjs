// Benchmark (prints numbers; not a test): load + preprocess of one scan in the
// WebAssembly build under node, the same work as `csac preprocess FILE --time`
// (read = copy into the wasm heap + gunzip + convert to HU + decimate + find
// lungs; preprocess = resample to the model grid), median of RUNS runs after
// one warm-up run (V8 compiles the module lazily; the warm-up is shown apart).
// CSAC_WASM_DIR=DIR picks another build directory (e.g. a baseline build).
//   node bench/load_preprocess.mjs [FILE] [RUNS] [THREADS...]
// Default FILE: ../shared/ct/covidctmd_P001.nii.gz; RUNS 5; THREADS 1 2 (the
// 'mt' build, csac-mt.js, with that many threads; "st" runs the 'st' build).
// Targets (issue 3): <= 0.6 s in wasm under node.
import { readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { load } from '../wasm/csac.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const [file = join(root, '..', 'shared', 'ct', 'covidctmd_P001.nii.gz'), runsArg = '5', ...thr] = process.argv.slice(2);
const runs = Math.max(1, Number(runsArg) | 0);
const configs = thr.length ? thr : ['1', '2'];
const GRID = 64 * 128 * 128; // CSAC_GRID_D * H * W floats
const now = () => performance.now();
const median = (a) => { const s = [...a].sort((x, y) => x - y); const m = s.length >> 1; return s.length & 1 ? s[m] : (s[m - 1] + s[m]) / 2; };
const fmt = (x) => x.toFixed(1).padStart(7);

let t = now();
const bytes = readFileSync(file);
const msFile = now() - t;
console.log(`file: ${file} (${(bytes.length / 1e6).toFixed(1)} MB, read from disk in ${msFile.toFixed(1)} ms)`);
console.log(`node ${process.version}, ${cpus().length} cores, load ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);

let peakRss = 0;
const sampleRss = () => { peakRss = Math.max(peakRss, process.memoryUsage().rss); };

for (const c of configs) {
  const variant = c === 'st' ? 'st' : 'mt';
  const threads = c === 'st' ? 1 : Number(c);
  const csac = await load({ variant, threads });
  const M = csac.M;
  // preprocess(vol): csac_preprocess into a heap buffer (output and grid freed after).
  const preprocess = (vol) => {
    const out = M._malloc(GRID * 4), grid = M._malloc(2 * 16 * 8);
    try { csac.check(M._csac_preprocess(csac.ctx, vol.ptr, out, grid)); } finally { M._free(out); M._free(grid); }
  };
  const rows = [];
  for (let r = 0; r <= runs; r++) {
    const c0 = process.cpuUsage();
    const t0 = now();
    const vol = csac.readVolume(bytes);
    const t1 = now();
    sampleRss();
    preprocess(vol);
    const t2 = now();
    const c = process.cpuUsage(c0);
    vol.free();
    rows.push({ read: t1 - t0, pre: t2 - t1, total: t2 - t0, cpu: (c.user + c.system) / 1000 });
  }
  const heapMB = ((M.wasmMemory && M.wasmMemory.buffer) || M.HEAPU8.buffer).byteLength / 2 ** 20;
  const [warm, ...rest] = rows;
  console.log(`--- ${variant} build, ${csac.threads} thread${csac.threads > 1 ? 's' : ''} (runs: ${rest.map((x) => x.total.toFixed(0)).join(' ')} ms)`);
  console.log(`read+gunzip+analyse ${fmt(median(rest.map((x) => x.read)))} ms   preprocess ${fmt(median(rest.map((x) => x.pre)))} ms   total ${fmt(median(rest.map((x) => x.total)))} ms (median of ${rest.length}; warm-up run ${warm.total.toFixed(0)} ms)`);
  // CPU time of the whole process (all threads): on a busy machine closer to the unloaded wall time than wall time is.
  console.log(`process CPU time per run ${fmt(median(rest.map((x) => x.cpu)))} ms (median)`);
  console.log(`wasm memory ${heapMB.toFixed(0)} MiB; node RSS peak so far (all modules loaded by this process) ${(peakRss / 2 ** 20).toFixed(0)} MiB`);
  csac.close();
}
