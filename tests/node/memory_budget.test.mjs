// Proves: the wasm heap's budget (-sMAXIMUM_MEMORY) ends in a message, never
// an abort. (1) A plain float32 .nii of 1.07 GB (sparse: no disk space) passes
// every limit of the C reader (file size, decompressed bytes, voxels, dims) but
// cannot fit in the heap with its float32 voxels: the node CLI (threaded build,
// as in the browser) reports CSAC_E_NOMEM with a message naming the heap's size,
// and the next scan in the same run screens as usual. (2) With the heap filled
// so that only k MB are left, every allocation of reading, preprocessing,
// network and heatmap either succeeds with the usual answer or fails with that
// message (no trap, no corruption, nothing leaked), in the mt and st builds.
// (3) HEAP_MAX_BYTES in wasm/csac-api.js is -sMAXIMUM_MEMORY of CMakeLists.txt.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { load } from '../../wasm/csac.mjs';
import { HEAP_MAX_BYTES } from '../../wasm/csac-api.js';
import { BASE_SCAN, MAX_DECOMPRESSED_BYTES, MAX_FILE_BYTES, REPO, writeSparseFloat32 } from './inputs.mjs';

const weights = process.env.CSAC_TEST_WEIGHTS || join(REPO, 'weights', 'csac_v1.safetensors');
const HEAP_MSG = new RegExp(`does not fit in the ${HEAP_MAX_BYTES / 2 ** 20} MB memory of the WebAssembly engine`);
let tmp;
before(() => {
  assert.ok(existsSync(weights), `weights missing: ${weights}`);
  assert.ok(existsSync(BASE_SCAN), `real scan missing: ${BASE_SCAN}`);
  tmp = mkdtempSync(join(tmpdir(), 'csac-mem-'));
});
after(() => rmSync(tmp, { recursive: true, force: true }));

test('HEAP_MAX_BYTES matches -sMAXIMUM_MEMORY in CMakeLists.txt', () => {
  const cm = readFileSync(join(REPO, 'CMakeLists.txt'), 'utf8');
  const sizes = [...cm.matchAll(/-sMAXIMUM_MEMORY=(\d+)(gb|mb)?/gi)].map((m) => Number(m[1]) * 2 ** ({ gb: 30, mb: 20 }[(m[2] || '').toLowerCase()] || 0));
  assert.ok(sizes.length >= 1);
  for (const s of sizes) assert.equal(s, HEAP_MAX_BYTES);
});

test('a 1.07 GB float32 .nii within every reader limit: a heap message, then the next scan works (node CLI, mt)', { timeout: 300000 }, () => {
  const big = writeSparseFloat32(join(tmp, 'big_float32.nii'));
  const size = statSync(big).size;
  assert.ok(size <= MAX_FILE_BYTES && size <= MAX_DECOMPRESSED_BYTES, 'within the reader limits');
  assert.ok(size + (size - 352) > HEAP_MAX_BYTES - (64 << 20), 'file + float32 voxels exceed the heap');
  const p = spawnSync(process.execPath, [join(REPO, 'wasm', 'csac-cli.mjs'), '--json', '--threads', '2', '--weights', weights, big, BASE_SCAN],
    { encoding: 'utf8', timeout: 240000 });
  assert.equal(p.status, 1, `exit 1 = some inputs failed:\n${p.stderr}`);
  const lines = p.stdout.trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(lines.length, 2);
  assert.equal(lines[0].file, big);
  assert.match(lines[0].error, /^(out of memory|cannot allocate) /, lines[0].error);
  assert.match(lines[0].error, HEAP_MSG);
  assert.ok(lines[1].probability >= 0 && lines[1].probability <= 1, `the next scan: ${JSON.stringify(lines[1])}`);
});

for (const [threads, ks] of [[2, [0, 2, 4, 6, 10, 14, 18, 24, 30, 36, 42, 48, 54, 60]], [1, [0, 6, 18, 36, 60]]]) {
  test(`heap filled to k MB free (${threads > 1 ? 'mt' : 'st'}): each step succeeds or says the heap is full`, { timeout: 300000 }, async () => {
    const csac = await load({ threads });
    try {
      const M = csac.M;
      csac.loadModel(weights);
      const bytes = readFileSync(BASE_SCAN);
      const ref = csac.screenFile(bytes).probability;
      csac.heatmap(); // its grid-map buffer stays allocated: not a leak below
      const blocks = [];
      const fill = () => { for (let p; (p = M._malloc(1 << 20));) blocks.push(p); return blocks.length; };
      const full = fill();
      assert.ok(full * 2 ** 20 > HEAP_MAX_BYTES / 2, `the heap grew to its budget (${full} MB taken)`);
      const seen = new Set();
      for (const k of ks) {
        for (let i = 0; i < k; i++) M._free(blocks.pop());
        let what;
        try {
          const vol = csac.readVolume(bytes);
          try {
            const r = csac.screen(vol);
            assert.equal(r.probability, ref, `${k} MB free: the same answer`);
            csac.heatmap();
            assert.equal(csac.heatmapSliceScores(vol).length, 56);
            what = 'ok';
          } finally {
            vol.free();
          }
        } catch (e) {
          if (e instanceof assert.AssertionError) throw e;
          assert.equal(e.name, 'CsacError', `${k} MB free: ${e.stack}`);
          assert.equal(e.status, 'CSAC_E_NOMEM', `${k} MB free: ${e.message}`);
          assert.match(e.message, HEAP_MSG);
          what = e.message.split(':')[0];
        }
        seen.add(what);
        assert.equal(fill(), full, `${k} MB free: nothing leaked`);
      }
      assert.ok(seen.has('ok') && seen.size >= 3, `failures at several places, and success: ${[...seen].join(' | ')}`);
      for (const p of blocks.splice(0)) M._free(p);
      assert.equal(csac.screenFile(bytes).probability, ref, 'after the sweep');
    } finally {
      csac.close();
    }
  });
}
