#!/usr/bin/env node
// csac-cli.mjs - `csac screen` computed by the WebAssembly build:
//   node wasm/csac-cli.mjs FILE|DIR... [--json|--csv] [--heatmap-dir DIR]
//        [--threads N] [--threshold T] [--weights F]
// Same arguments, output lines and exit codes as the native CLI
// (0 all screened, 1 some failed, 2 usage error).
import { readdirSync, statSync, existsSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { load } from './csac.mjs';

const USAGE = 'usage: node wasm/csac-cli.mjs FILE|DIR... [--json|--csv] [--heatmap-dir DIR] [--threads N]\n' +
  '                   [--threshold T] [--weights F]';

function usageError(msg) {
  process.stderr.write(`csac screen: ${msg}\n${USAGE}\n`);
  process.exit(2);
}

const isNifti = (n) => n.endsWith('.nii') || n.endsWith('.nii.gz');

// Directories expand to their .nii/.nii.gz files, sorted as the native CLI does.
function collect(path, out, depth = 0) {
  if (path.length > 1) path = path.replace(/\/+$/, '') || '/';
  let st = null;
  try { st = statSync(path); } catch { /* reported when read */ }
  if (depth > 32 || !st || !st.isDirectory()) { out.push(path); return; }
  const names = readdirSync(path).filter((n) => !n.startsWith('.')).map((n) => `${path}/${n}`)
    .filter((p) => { try { return statSync(p).isDirectory() || isNifti(p); } catch { return false; } })
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  for (const p of names) {
    if (statSync(p).isDirectory()) collect(p, out, depth + 1); else out.push(p);
  }
}

function parseArgs(argv) {
  const o = { fmt: 'text', threads: 2, threshold: 0.5, weights: null, heatmapDir: null, files: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--json') o.fmt = 'json';
    else if (a === '--csv') o.fmt = 'csv';
    else if (['--threads', '--threshold', '--weights', '--heatmap-dir'].includes(a)) {
      if (i + 1 >= argv.length) usageError(`missing value after ${a}`);
      const v = argv[++i];
      if (a === '--threads') {
        if (!/^\d+$/.test(v) || +v < 1 || +v > 256) usageError(`--threads needs 1..256, got ${v}`);
        o.threads = +v;
      } else if (a === '--threshold') {
        const t = Number(v);
        if (v.trim() === '' || !(t >= 0 && t <= 1)) usageError(`--threshold needs 0..1, got ${v}`);
        o.threshold = t;
      } else if (a === '--weights') o.weights = v;
      else o.heatmapDir = v;
    } else if (a === '--report') usageError('--report (triage HTML with thumbnails) is available in the native CLI: build/native/csac screen --report DIR');
    else if (a.startsWith('-') && a.length > 1) usageError(`unknown option ${a}`);
    else collect(a, o.files);
  }
  if (!o.files.length) usageError('no input files');
  return o;
}

const csvField = (s) => `"${String(s).replace(/"/g, '""').replace(/\n/g, ' ')}"`;
const fmtG = (x) => Number(x.toPrecision(7)).toString();

async function main() {
  const o = parseArgs(process.argv.slice(2));
  if (o.heatmapDir && !(existsSync(o.heatmapDir) && statSync(o.heatmapDir).isDirectory())) {
    usageError(`--heatmap-dir is not a directory: ${o.heatmapDir}`);
  }
  const here = dirname(fileURLToPath(import.meta.url));
  const weights = o.weights ?? [join('weights', 'csac_v1.safetensors'), join(here, '..', 'weights', 'csac_v1.safetensors')]
    .find((p) => existsSync(p)) ?? 'weights/csac_v1.safetensors';
  const csac = await load({ threads: o.threads, threshold: o.threshold });
  try {
    try {
      csac.loadModel(weights);
    } catch (e) {
      process.stderr.write(`csac screen: cannot load weights '${weights}': ${e.message}\n`);
      return 2;
    }
    if (o.fmt === 'csv') console.log('file,probability,logit,threshold,decision,warnings,error');
    let failed = 0;
    for (const file of o.files) {
      let r;
      try {
        const heatmap = o.heatmapDir ? join(o.heatmapDir, `${basename(file).replace(/\.nii(\.gz)?$/, '')}_heatmap.nii.gz`) : undefined;
        r = csac.screenFile(file, { heatmap });
      } catch (e) {
        failed++;
        const err = e.message;
        if (o.fmt === 'json') console.log(JSON.stringify({ file, error: err }));
        else if (o.fmt === 'csv') console.log(`${csvField(file)},,,${o.threshold},,,${csvField(err)}`);
        else console.log(`${file}: ERROR ${err}`);
        continue;
      }
      if (o.fmt === 'json') console.log(JSON.stringify(r));
      else if (o.fmt === 'csv') {
        console.log(`${csvField(file)},${fmtG(r.probability)},${fmtG(r.logit)},${o.threshold},${r.decision},${csvField(r.warnings.join('; '))},`);
      } else {
        console.log(`${file}: p=${r.probability.toFixed(4)} ${r.decision} (threshold ${o.threshold.toFixed(2)})`);
        for (const w of r.warnings) console.log(`  warning: ${w}`);
      }
    }
    if (failed && o.fmt === 'text') process.stderr.write(`csac screen: ${failed} of ${o.files.length} inputs failed\n`);
    return failed ? 1 : 0;
  } finally {
    csac.close();
  }
}

process.exitCode = await main();
