// compare.mjs - issue #10's comparison, in ONE run: our wasm 'mt' and native
// forward of CSAC-Net-3D v1 (64x128x128) against onnxruntime-web (wasm, in
// node), PyTorch oneDNN and onnxruntime-node, same weights and input, plus the
// end-to-end time of one scan in node. Every runtime lives in its own warm
// worker process (bench/worker.mjs, native_worker.py, torch_bench.py --serve);
// each round runs each of them once, one at a time, in an order rotated every
// round, so load from other work on the machine hits all runtimes alike.
// Prints and writes (--out) medians, min-max, GFLOP/s, per-round ratios.
//
//   bench/compare.sh [options]            (installs bench/node_modules first)
//   node bench/compare.mjs [--rounds 12] [--warmup 2] [--weights weights/csac_v1.safetensors]
//     [--runtimes ours-wasm-2,ort-web-2,...] [--file SCAN.nii.gz | --file none]
//     [--out bench/results.md] [--tol 1e-4] [--gap-ms 20]
// Other builds: CSAC_WASM_DIR=build/b-wasm, CSAC_LIB=build/b-native/libcsac.so.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..');
const DENSE_GFLOP = 8.53; // docs/model.md: every conv tap counted
const args = process.argv.slice(2);
const opt = (n, d) => { const i = args.indexOf(n); return i >= 0 && i + 1 < args.length ? args[i + 1] : d; };
const rounds = Math.max(1, Number(opt('--rounds', '12')) | 0);
const warmup = Math.max(0, Number(opt('--warmup', '2')) | 0);
const weights = resolve(opt('--weights', join(root, 'weights', 'csac_v1.safetensors')));
const ct = process.env.CSAC_SHARED_CT || join(root, '..', 'shared', 'ct');
const fileOpt = opt('--file', join(ct, 'covidctmd_P001.nii.gz'));
const scan = fileOpt === 'none' ? null : resolve(fileOpt);
const outMd = resolve(opt('--out', join(here, 'results.md')));
const tol = Number(opt('--tol', '1e-4'));
const gapMs = Number(opt('--gap-ms', '20')); // lets thread pools of the last runtime go idle
const python = process.env.PYTHON || '/usr/bin/python3';
const outDir = join(here, 'out');
const envSet = ['CSAC_WASM_DIR', 'CSAC_LIB'].filter((k) => process.env[k]).map((k) => `${k}=${process.env[k]} `).join('');
// the workers run in the repository root: make the build paths absolute
const wasmDir = process.env.CSAC_WASM_DIR = resolve(process.env.CSAC_WASM_DIR || join(root, 'build', 'wasm'));
const lib = process.env.CSAC_LIB = resolve(process.env.CSAC_LIB || join(root, 'build', 'native', 'libcsac.so'));
mkdirSync(outDir, { recursive: true });

if (!existsSync(join(here, 'node_modules', 'onnxruntime-web'))) {
  console.error('bench/node_modules missing: run bench/compare.sh (npm ci in bench/ first)');
  process.exit(2);
}

// ---- same weights and input for every runtime ----
const base = weights.replace(/^.*\//, '').replace(/\.safetensors$/, '');
const onnx = join(outDir, `${base}.onnx`);
const mtime = (p) => statSync(p).mtimeMs;
const srcs = [weights, join(root, 'train', 'export.py'), join(root, 'train', 'csacnet.py')];
const stamp = `${weights} ${statSync(weights).size} ${mtime(weights)}\n`; // which weights the cached ONNX holds
const stale = () => !existsSync(onnx) || srcs.some((s) => mtime(s) > mtime(onnx)) ||
  !existsSync(`${onnx}.src`) || readFileSync(`${onnx}.src`, 'utf8') !== stamp;
if (stale()) {
  const r = spawnSync(python, [join(root, 'train', 'export.py'), '--onnx', weights, onnx], { stdio: 'inherit' });
  if (r.status !== 0) { console.error('ONNX export failed'); process.exit(2); }
  writeFileSync(`${onnx}.src`, stamp);
}
const input = join(outDir, 'input_lcg1.f32'); // the input of `csac bench --weights`: LCG seed 1, [0,1)
if (!existsSync(input)) {
  const x = new Float32Array(64 * 128 * 128);
  let s = 1;
  for (let i = 0; i < x.length; i++) { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; x[i] = (s >>> 8) / 16777216; }
  writeFileSync(input, new Uint8Array(x.buffer));
}

// ---- runtimes ----
const nodeW = (rt, t, extra = []) => [process.execPath, [join(here, 'worker.mjs'), rt, String(t), '--weights', weights, '--onnx', onnx, '--input', input, ...extra]];
const ALL = {
  'ours-wasm-1': nodeW('ours-wasm', 1), 'ours-wasm-2': nodeW('ours-wasm', 2),
  'ort-web-1': nodeW('ort-web', 1), 'ort-web-2': nodeW('ort-web', 2),
  'ours-native-1': [python, [join(here, 'native_worker.py'), '1', weights, input]],
  'ours-native-2': [python, [join(here, 'native_worker.py'), '2', weights, input]],
  'torch-1': [python, [join(here, 'torch_bench.py'), '--serve', '--threads', '1', '--weights', weights, '--input', input]],
  'torch-2': [python, [join(here, 'torch_bench.py'), '--serve', '--threads', '2', '--weights', weights, '--input', input]],
  'ort-node-1': nodeW('ort-node', 1), 'ort-node-2': nodeW('ort-node', 2),
};
if (scan && existsSync(scan)) ALL['e2e-wasm-2'] = nodeW('e2e', 2, ['--file', scan]);
else if (scan) console.error(`no ${scan}: end-to-end measure skipped`);
const names = opt('--runtimes', Object.keys(ALL).join(',')).split(',').filter((n) => {
  if (!ALL[n]) console.error(`unknown or unavailable runtime ${n} (known: ${Object.keys(ALL).join(', ')})`);
  return !!ALL[n];
});
// our time / theirs; target: the most allowed (issue #10), null = shown only
const PAIRS = [
  ['ours-wasm-2', 'ort-web-2', 0.5], ['ours-wasm-1', 'ort-web-1', 0.5],
  ['ours-native-2', 'torch-2', 1.0], ['ours-native-2', 'ort-node-2', 0.6],
  ['ours-native-1', 'torch-1', null], ['ours-native-1', 'ort-node-1', null],
];
const E2E_TARGET_MS = 660, WASM_GFLOPS_TARGET = 60;

class Worker {
  constructor(name, [cmd, argv]) {
    this.name = name;
    this.err = '';
    this.p = spawn(cmd, argv, { cwd: root, stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, NODE_NO_WARNINGS: '1' } });
    this.p.stdin.on('error', () => {}); // a worker that died already: its exit is reported
    this.p.stderr.on('data', (d) => { this.err = (this.err + d).slice(-4000); });
    this.lines = createInterface({ input: this.p.stdout })[Symbol.asyncIterator]();
    this.dead = new Promise((res) => this.p.on('exit', (c) => res(c)));
  }
  async next(timeoutMs) {
    let timer;
    const r = await Promise.race([
      this.lines.next(),
      this.dead.then((c) => ({ done: true, code: c })),
      new Promise((res) => { timer = setTimeout(() => res({ timeout: true }), timeoutMs); }),
    ]);
    clearTimeout(timer);
    if (r.timeout) throw new Error(`${this.name}: no answer in ${timeoutMs / 1e3} s`);
    if (r.done) throw new Error(`${this.name}: exited (${r.code ?? 'signal'}): ${this.err.trim().split('\n').slice(-5).join(' | ')}`);
    try { return JSON.parse(r.value); } catch { return this.next(timeoutMs); } // skip stray stdout lines
  }
  async run() { this.p.stdin.write('run\n'); return this.next(120e3); }
  close() { try { this.p.stdin.end('quit\n'); } catch { /* gone */ } setTimeout(() => this.p.kill(), 2000).unref(); }
}

const t0 = Date.now();
const loadStart = loadavg();
console.log(`${new Date().toISOString()}  ${cpus()[0].model}, ${cpus().length} cores, load ${loadStart.map((x) => x.toFixed(2)).join(' ')}`);
console.log(`weights ${relative(root, weights)}, input LCG seed 1 (as csac bench), ONNX ${relative(root, onnx)}; ` +
            `${rounds} rounds after ${warmup} warm-up rounds; runtimes: ${names.join(' ')}`);

// Start two at a time (startup is not timed; a 2-core machine).
const W = {};
{
  const queue = [...names];
  const starter = async () => {
    for (let n; (n = queue.shift());) {
      const w = new Worker(n, ALL[n]);
      const ts = Date.now();
      try {
        const r = await w.next(300e3);
        w.info = r.info;
        w.ref = r.logit;
        W[n] = w;
        console.log(`  ready ${n.padEnd(13)} in ${((Date.now() - ts) / 1e3).toFixed(1)} s: ${r.info}`);
      } catch (e) {
        console.error(`  FAILED ${n}: ${e.message}`);
        w.close();
      }
    }
  };
  await Promise.all([starter(), starter()]);
}
const live = names.filter((n) => W[n]);
const res = Object.fromEntries(live.map((n) => [n, { ms: [], cpu: [], logits: [], stages: [] }]));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
try {
  for (let r = -warmup; r < rounds; r++) {
    const k = ((r % live.length) + live.length) % live.length;
    const order = [...live.slice(k), ...live.slice(0, k)];
    const line = [];
    for (const n of order) {
      const o = await W[n].run();
      if (r >= 0) {
        res[n].ms.push(o.ms);
        res[n].logits.push(o.logit);
        res[n].cpu.push(o.cpu);
        if (o.stages) res[n].stages.push(o.stages);
        line.push(`${n} ${o.ms.toFixed(0)}`);
      }
      if (gapMs > 0) await sleep(gapMs);
    }
    console.log(r < 0 ? `warm-up round ${r + warmup + 1}/${warmup}` : `round ${r + 1}/${rounds}: ${line.join(', ')}`);
  }
} finally {
  for (const n of live) W[n].close();
}
const loadEnd = loadavg();

// ---- statistics ----
const median = (a) => { const s = [...a].sort((x, y) => x - y); const m = s.length >> 1; return s.length & 1 ? s[m] : (s[m - 1] + s[m]) / 2; };
const sig = (x) => 1 / (1 + Math.exp(-x));
const f1 = (x) => x.toFixed(1), f0 = (x) => x.toFixed(0), f2 = (x) => x.toFixed(2);
const refName = ['torch-1', 'torch-2', 'ours-native-1'].find((n) => res[n]) || live.find((n) => n !== 'e2e-wasm-2');
const refLogit = refName ? res[refName].logits[0] ?? W[refName].ref : NaN;
let agree = true;
const rows = live.map((n) => {
  const t = res[n].ms, med = median(t);
  const e2e = n.startsWith('e2e');
  const all = [W[n].ref, ...res[n].logits];
  const ref = e2e ? all[0] : refLogit; // the scan: every run must give its first run's answer
  const dl = Math.max(...all.map((l) => Math.abs(l - ref)));
  const dp = Math.max(...all.map((l) => Math.abs(sig(l) - sig(ref))));
  if (!(dp <= tol)) agree = false;
  return { n, med, cpu: median(res[n].cpu), min: Math.min(...t), max: Math.max(...t), gf: e2e ? NaN : DENSE_GFLOP / (med * 1e-3), logit: all[all.length - 1], dl, dp };
});
const byName = Object.fromEntries(rows.map((r) => [r.n, r]));
const pairs = PAIRS.filter(([a, b]) => res[a] && res[b]).map(([a, b, target]) => {
  const ratios = res[a].ms.map((x, i) => x / res[b].ms[i]);
  const med = median(ratios);
  return { a, b, target, ratios, med, ofMedians: byName[a].med / byName[b].med, met: target == null ? null : med <= target };
});

// ---- report ----
const date = new Date().toISOString().slice(0, 16).replace('T', ' ') + ' UTC';
const md = [];
md.push(`# bench/compare results, ${date}`, '');
md.push(`Machine: ${cpus()[0].model}, ${cpus().length} cores, node ${process.version}; load average ` +
        `${loadStart.map(f2).join(' ')} at start, ${loadEnd.map(f2).join(' ')} at end; ${rounds} rounds ` +
        `(after ${warmup} warm-up), every runtime once per round in rotated order; ${((Date.now() - t0) / 1e3).toFixed(0)} s in all.`);
const git = spawnSync('git', ['describe', '--always', '--dirty'], { cwd: root, encoding: 'utf8' }).stdout?.trim() || '?';
const built = (p) => (existsSync(p) ? new Date(mtime(p)).toISOString().slice(0, 16).replace('T', ' ') : 'missing');
md.push(`Tree ${git}; builds: \`${relative(root, wasmDir)}\` (csac-mt.wasm of ${built(join(wasmDir, 'csac-mt.wasm'))}), ` +
        `\`${relative(root, lib)}\` (of ${built(lib)}).`);
md.push(`Weights \`${relative(root, weights)}\` (ONNX: \`train/export.py --onnx\`, opset 17), input: LCG seed 1 in [0,1) ` +
        `(as \`csac bench --weights\`), 1x1x64x128x128. GFLOP/s: ${DENSE_GFLOP} GFLOP dense per forward / median time.`, '');
md.push('| runtime | build | median ms | min-max ms | GFLOP/s | CPU ms | logit | max abs diff prob (logit) vs ' + refName + ' |');
md.push('|---|---|---|---|---|---|---|---|');
for (const r of rows) {
  md.push(`| ${r.n} | ${W[r.n].info} | ${f1(r.med)} | ${f0(r.min)}-${f0(r.max)} | ${Number.isNaN(r.gf) ? '' : f1(r.gf)} | ${f0(r.cpu)} | ` +
          `${r.logit.toFixed(6)} | ${r.dp.toExponential(1)} (${r.dl.toExponential(1)})${r.n.startsWith('e2e') ? ' vs its first run (a scan)' : ''} |`);
}
md.push('', 'CPU ms: median CPU time of the runtime\'s process (all its threads) during one run; about wall x threads ' +
        'when it had its cores, lower when it waited for them; spin-waiting counts too.');
md.push(`Outputs ${agree ? 'agree' : '**DISAGREE**'}: every run's probability (sigmoid of the logit) within ${tol} of ${refName}'s ` +
        '(e2e: of its own first run).', '');
md.push('| ours / theirs | median of per-round ratios | ratio of medians | target | met | per-round ratios |');
md.push('|---|---|---|---|---|---|');
for (const p of pairs) {
  md.push(`| ${p.a} / ${p.b} | ${f2(p.med)} | ${f2(p.ofMedians)} | ${p.target == null ? '-' : `<= ${p.target}`} | ` +
          `${p.met == null ? '-' : p.met ? 'yes' : '**no**'} | ${p.ratios.map(f2).join(' ')} |`);
}
if (byName['ours-wasm-2']) {
  const g = byName['ours-wasm-2'].gf;
  md.push(`| ours-wasm-2 GFLOP/s | ${f1(g)} | | >= ${WASM_GFLOPS_TARGET} | ${g >= WASM_GFLOPS_TARGET ? 'yes' : '**no**'} | |`);
}
const e = res['e2e-wasm-2'];
if (e && e.ms.length) {
  const st = Object.keys(e.stages[0]);
  const med = median(e.ms);
  md.push(`| e2e-wasm-2 total ms | ${f0(med)} | | <= ${E2E_TARGET_MS} | ${med <= E2E_TARGET_MS ? 'yes' : '**no**'} | |`);
  md.push('', `End to end in node, the 'mt' build with 2 threads, \`${relative(root, scan)}\` (bytes already in memory) -> ` +
          'probability + the default heatmap (csac_heatmap_default_layer); median ms per stage. read = copy into the wasm heap + gunzip + decode + analyse, ' +
          'of which "inflate + HU" (the C reader: gunzip on both threads, convert to float HU) and "analyse" (decimate, find the lungs); ' +
          'heatmap = the heatmap on the model grid (total ends here); resample = that heatmap on every original voxel ' +
          '(all slices at once; the page does it slab by slab after showing the probability), not in the total:', '');
  md.push(`| ${st.join(' | ')} | total | total + resample | probability |`, `|${'---|'.repeat(st.length + 3)}`);
  const withRs = e.ms.map((x, i) => x + e.stages[i].resample);
  md.push(`| ${st.map((s) => f0(median(e.stages.map((x) => x[s])))).join(' | ')} | ${f0(med)} ` +
          `(${f0(Math.min(...e.ms))}-${f0(Math.max(...e.ms))}) | ${f0(median(withRs))} | ${sig(byName['e2e-wasm-2'].logit).toFixed(4)} |`);
}
md.push('', `Command: \`${envSet}bench/compare.sh ${args.join(' ')}\`.`.replace(' `.', '`.'));
const text = md.join('\n') + '\n';
writeFileSync(outMd, text);
console.log('\n' + text);
console.log(`wrote ${relative(process.cwd(), outMd)}`);
process.exit(agree && live.length === names.length ? 0 : 1);
