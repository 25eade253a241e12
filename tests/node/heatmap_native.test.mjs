// Proves: the wasm build's heatmaps (mt with 2 threads, st with 1) equal the
// native build's on the model grid within 1e-4, on real scans from
// ../shared/ct with the shipped weights, for the default map (the lesion
// head), the stage2.pool activation, the Grad-CAM of subB.pool1 and of the
// merge, and a subnet activation map (issue 7). The native maps come
// from build/native/libcsac.so through the training code's ctypes binding.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { load } from '../../wasm/csac.mjs';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const ct = process.env.CSAC_SHARED_CT || join(repo, '..', 'shared', 'ct');
const weights = process.env.CSAC_TEST_WEIGHTS || join(repo, 'weights', 'csac_v1.safetensors');
const lib = join(repo, 'build', 'native', 'libcsac.so');
const SCANS = ['covidctmd_P001_5mm.nii.gz', 'ricord_000082_5mm.nii.gz'];
const MAPS = [{ layer: null, mode: -1 }, { layer: 'stage2.pool', mode: 1 }, { layer: 'subB.pool1', mode: 0 }, { layer: 'merge', mode: 0 },
  { layer: 'subB.pool1', mode: 1 }];
const N = 64 * 128 * 128;

const NATIVE = `
import sys
sys.path.insert(0, sys.argv[1] + "/train")
from evaluate import Core
scan, weights, out = sys.argv[2], sys.argv[3], sys.argv[4]
core = Core(weights, n_threads=2)
core.forward(core.preprocess_file(scan))
for k, spec in enumerate(sys.argv[5:]):
    layer, mode = spec.split(":")
    core.heatmap(layer or None, int(mode)).tofile(f"{out}.{k}")
`;

let tmp;
before(() => {
  assert.ok(existsSync(weights), `weights missing: ${weights}`);
  assert.ok(existsSync(lib), `native library missing: ${lib} (cmake --build --preset native)`);
  tmp = mkdtempSync(join(tmpdir(), 'csac-hm-'));
});
after(() => rmSync(tmp, { recursive: true, force: true }));

function nativeMaps(scan) {
  const out = join(tmp, 'native');
  const p = spawnSync('/usr/bin/python3', ['-c', NATIVE, repo, scan, weights, out, ...MAPS.map((m) => `${m.layer ?? ''}:${m.mode}`)],
    { encoding: 'utf8', env: { ...process.env, CSAC_LIB: lib }, timeout: 300000 });
  assert.equal(p.status, 0, p.stderr);
  return MAPS.map((_, k) => new Float32Array(readFileSync(`${out}.${k}`).buffer.slice(0)));
}

for (const threads of [2, 1]) {
  test(`wasm ${threads === 2 ? 'mt, 2 threads' : 'st, 1 thread'}: heatmaps equal the native ones within 1e-4`, async () => {
    const csac = await load({ threads });
    try {
      csac.loadModel(weights);
      for (const name of SCANS) {
        const scan = join(ct, name);
        const nat = nativeMaps(scan);
        const vol = csac.readVolume(scan);
        try {
          csac.screen(vol);
          MAPS.forEach((spec, k) => {
            const h = csac.heatmap(spec);
            if (!spec.layer) assert.deepEqual([h.layer, h.mode], ['lesion', 2], 'the default pair');
            const w = csac.heatmapGrid();
            assert.equal(w.length, N);
            let err = 0, max = 0;
            for (let i = 0; i < N; i++) { err = Math.max(err, Math.abs(w[i] - nat[k][i])); max = Math.max(max, nat[k][i]); }
            if (spec.mode === 1) assert.equal(max, 1, `${name} ${spec.layer}: an activation map is normalised to max 1`);
            assert.ok(err <= 1e-4, `${name} ${spec.layer ?? 'default'} mode ${spec.mode}: max |wasm - native| ${err}`);
          });
        } finally {
          vol.free();
        }
      }
    } finally {
      csac.close();
    }
  });
}
