// csac.mjs - node API over the WebAssembly build.
//
//   import { load } from './wasm/csac.mjs';
//   const csac = await load({ threads: 2 });            // 'mt' build; threads: 1 -> 'st'
//   csac.loadModel('weights/csac_v1.safetensors');
//   const r = csac.screenFile('scan.nii.gz', { heatmap: 'scan_heatmap.nii.gz' }); // {probability, logit, decision, ...}
//   csac.close();
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Csac, CsacError } from './csac-api.js';

export { Csac, CsacError };
const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);

// Finds the built modules: build/wasm next to this folder (a source checkout)
// or this folder itself (an installed package).
function buildDir(explicit) {
  for (const d of [explicit, process.env.CSAC_WASM_DIR, join(here, '..', 'build', 'wasm'), here]) {
    if (d && safeExists(join(d, 'csac-st.wasm'))) return d;
  }
  throw new Error('csac: wasm build not found; run: cmake --preset wasm && cmake --build --preset wasm');
}
function safeExists(p) { try { readFileSync(p, { flag: 'r' }).length; return true; } catch { return false; } }

// Instantiates the module: variant 'mt' (SIMD + threads) or 'st' (SIMD only).
export async function instantiate({ variant = 'mt', threads = 2, dir } = {}) {
  const d = buildDir(dir);
  const factory = require(join(d, `csac-${variant}.js`));
  return factory({
    wasmBinary: readFileSync(join(d, `csac-${variant}.wasm`)),
    csacPoolSize: Math.max(1, threads - 1) + 1,
    print: () => {},
    printErr: (s) => process.stderr.write(`csac: ${s}\n`),
  });
}

export class NodeCsac extends Csac {
  constructor(M, opts) {
    super(M, opts);
    this.threshold = opts.threshold ?? 0.5;
  }
  loadModel(pathOrBytes) {
    return super.loadModel(typeof pathOrBytes === 'string' ? readFileSync(pathOrBytes) : pathOrBytes);
  }
  readVolume(pathOrBytes) {
    return super.readVolume(typeof pathOrBytes === 'string' ? readFileSync(pathOrBytes) : pathOrBytes);
  }
  // Writes the heatmap of the last screen(vol) as .nii.gz (the input's geometry).
  writeHeatmapNifti(vol, path) {
    writeFileSync(path, this.heatmapNifti(vol));
  }

  // Reads, screens and frees; returns the JSON-line record of DESIGN.md.
  // opts.heatmap: a path for the heatmap NIfTI (the default heatmap, the input's geometry).
  screenFile(pathOrBytes, opts = {}) {
    if (typeof opts === 'string') opts = { name: opts };
    const name = opts.name ?? (typeof pathOrBytes === 'string' ? pathOrBytes : '<buffer>');
    const vol = this.readVolume(pathOrBytes);
    try {
      const r = this.screen(vol);
      const rec = {
        file: name,
        probability: r.probability,
        logit: r.logit,
        threshold: this.threshold,
        decision: r.probability >= this.threshold ? 'positive' : 'negative',
        warnings: vol.warnings,
        timings_ms: Object.fromEntries(Object.entries(r.timings_ms).map(([k, v]) => [k, Math.round(v * 10) / 10])),
      };
      if (opts.heatmap) {
        const t0 = performance.now();
        this.heatmap();
        this.writeHeatmapNifti(vol, opts.heatmap);
        rec.timings_ms.heatmap = Math.round((performance.now() - t0) * 10) / 10;
        rec.heatmap = opts.heatmap;
      }
      return rec;
    } finally {
      vol.free();
    }
  }
  close() {
    this.free();
    this.M.PThread?.terminateAllThreads?.();
  }
}

// threads > 1 uses the 'mt' build; threads = 1 the 'st' build (no SharedArrayBuffer needed).
export async function load({ threads = 2, variant, dir, threshold } = {}) {
  const v = variant ?? (threads > 1 ? 'mt' : 'st');
  const M = await instantiate({ variant: v, threads, dir });
  return new NodeCsac(M, { threads, threshold });
}
