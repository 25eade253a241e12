// worker.mjs - one runtime of bench/compare.mjs, kept loaded and warm in its
// own process (ORT-web initialises its wasm once per process, with one thread
// count). Line protocol: after loading it prints one JSON line
// {"ready":true,"info":..,"logit":..}; then for every "run" line on stdin it
// runs one forward (or, for e2e, the whole scan) and prints {"ms":..,"logit":..}.
//
//   node bench/worker.mjs RUNTIME THREADS --weights W --onnx M --input I [--file SCAN]
// RUNTIME: ours-wasm (the 'mt' build; CSAC_WASM_DIR picks the build dir),
// ort-web, ort-node, e2e (ours-wasm, file bytes -> probability + heatmap).
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(join(here, 'package.json'));
const [runtime, thrArg, ...rest] = process.argv.slice(2);
const threads = Number(thrArg);
const opt = (n) => { const i = rest.indexOf(n); return i >= 0 ? rest[i + 1] : undefined; };
const SHAPE = [1, 1, 64, 128, 128];
const readInput = () => { // a copy: a Buffer's byteOffset need not be 4-aligned
  const b = readFileSync(opt('--input'));
  const x = new Float32Array(b.length / 4);
  new Uint8Array(x.buffer).set(b);
  return x;
};
const now = () => performance.now();

async function oursWasm(e2e) {
  const { load } = await import('../wasm/csac.mjs');
  const csac = await load({ variant: 'mt', threads });
  const M = csac.M;
  const info = `${csac.buildInfo()}, ${csac.threads} thread(s), ${relative(join(here, '..'), process.env.CSAC_WASM_DIR || join(here, '..', 'build', 'wasm'))}`;
  csac.loadModel(readFileSync(opt('--weights')));
  if (e2e) {
    const bytes = readFileSync(opt('--file')); // "file bytes": the disk read is not timed
    return {
      info,
      run() {
        const t0 = now();
        const vol = csac.readVolume(bytes);
        try {
          const r = csac.screen(vol);
          const t1 = now();
          csac.heatmap(); // the default map (the lesion head) on the model grid
          const t2 = now();
          csac.heatmapSlices(vol, 0, vol.info.dim[2]); // on the original voxels, as the page shows it
          const t3 = now();
          const T = r.timings_ms;
          // ms: to the heatmap on the model grid (what docs/heatmaps.md times); the resample to every original slice apart
          return {
            ms: t2 - t0, logit: r.logit, probability: r.probability,
            stages: {
              read: T.read, 'read: inflate + HU': vol.info.read_ms.inflate, 'of which gunzip': vol.info.read_ms.gunzip,
              'read: analyse': vol.info.read_ms.analyse,
              preprocess: T.preprocess, forward: T.forward, heatmap: t2 - t1, resample: t3 - t2,
            },
          };
        } finally {
          vol.free();
        }
      },
    };
  }
  const x = readInput();
  new Float32Array(M.HEAPF32.buffer, M._csac_model_input(csac.ctx), x.length).set(x);
  const out = M._malloc(5 * 8);
  return {
    info,
    run() {
      const t0 = now();
      csac.check(M._csac_wasm_forward(csac.ctx, out, 0));
      const ms = now() - t0;
      return { ms, logit: new Float64Array(M.HEAPF64.buffer, out, 5)[1] }; // fresh view: memory may grow
    },
  };
}

async function ort(kind) {
  const x = readInput();
  let ortm, session;
  const model = opt('--onnx');
  if (kind === 'web') {
    const dist = join(here, 'node_modules', 'onnxruntime-web', 'dist', '/');
    ortm = await import(pathToFileURL(join(dist, 'ort.wasm.min.mjs')).href); // the CPU (wasm) backend only
    ortm.env.wasm.numThreads = threads; // > 1: Emscripten pthreads on node worker_threads (SharedArrayBuffer)
    ortm.env.wasm.wasmPaths = dist;
    // its fetch() takes URLs only: hand it the bytes
    session = await ortm.InferenceSession.create(new Uint8Array(readFileSync(model)), { executionProviders: ['wasm'] });
  } else {
    ortm = require('onnxruntime-node');
    session = await ortm.InferenceSession.create(model, {
      executionProviders: ['cpu'], intraOpNumThreads: threads, interOpNumThreads: 1, executionMode: 'sequential',
    });
  }
  const ver = JSON.parse(readFileSync(join(here, 'node_modules', `onnxruntime-${kind}`, 'package.json'), 'utf8')).version;
  const info = `onnxruntime-${kind} ${ver}, ${kind === 'web' ? `wasm numThreads ${ortm.env.wasm.numThreads}` : `intraOp ${threads}`}`;
  const input = new ortm.Tensor('float32', x, SHAPE);
  return {
    info,
    async run() {
      const t0 = now();
      const r = await session.run({ input });
      const ms = now() - t0;
      return { ms, logit: r.logit.data[0] };
    },
  };
}

const rt = runtime === 'ours-wasm' ? await oursWasm(false)
  : runtime === 'e2e' ? await oursWasm(true)
  : runtime === 'ort-web' ? await ort('web')
  : runtime === 'ort-node' ? await ort('node')
  : (() => { throw new Error(`unknown runtime ${runtime}`); })();
// cpu: CPU time of the whole process (all threads) during the run
const timed = async () => { const c = process.cpuUsage(); const o = await rt.run(); const d = process.cpuUsage(c); return { ...o, cpu: (d.user + d.system) / 1e3 }; };
const first = await timed();
process.stdout.write(JSON.stringify({ ready: true, info: rt.info, logit: first.logit, ms: first.ms }) + '\n');
for await (const line of createInterface({ input: process.stdin })) {
  if (line.trim() !== 'run') break;
  process.stdout.write(JSON.stringify(await timed()) + '\n');
}
process.exit(0); // pthread / ORT worker threads would keep node alive
