// Proves: weights and core go together for node and CLI users too. The shipped
// weights with their model grid changed to 1 (a file for the grid before the
// zoom), or with no grid at all (weights v6 and older), are refused by the
// node API (wasm, st and mt) and by the native and node CLIs with the C core's
// message, and the shipped file itself loads.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { load } from '../../wasm/csac.mjs';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const weights = process.env.CSAC_TEST_WEIGHTS || join(repo, 'weights', 'csac_v1.safetensors');
const native = join(repo, 'build', 'native', 'csac');
const cliJs = join(repo, 'wasm', 'csac-cli.mjs');
const ct = process.env.CSAC_SHARED_CT || join(repo, '..', 'shared', 'ct');
const scan = join(ct, 'covidctmd_normal001_5mm.nii.gz');
const GRID = Number(/#define CSAC_GRID_VERSION (\d+)/.exec(readFileSync(join(repo, 'nn', 'csac.h'), 'utf8'))[1]);

// The same bytes with the header's "grid":"<GRID>" replaced (same length, so the offsets stay).
function withGrid(bytes, replacement) {
  const text = Buffer.from(bytes).toString('latin1');
  const key = `"grid":"${GRID}"`;
  assert.ok(text.includes(key), `${weights} names no grid ${GRID}`);
  assert.equal(replacement.length, key.length);
  return Buffer.from(text.replace(key, replacement), 'latin1');
}

let tmp, good, cases;
before(() => {
  assert.ok(existsSync(weights), `weights missing: ${weights}`);
  tmp = mkdtempSync(join(tmpdir(), 'csac-grid-'));
  good = readFileSync(weights);
  cases = [
    { name: 'grid 1', bytes: withGrid(good, `"grid":"1"`), message: new RegExp(`trained on model grid '1'; this core computes grid ${GRID}`) },
    { name: 'no grid', bytes: withGrid(good, `"gird":"${GRID}"`), message: /the weights name no model grid/ },
  ];
  for (const c of cases) writeFileSync((c.path = join(tmp, `${c.name.replace(' ', '_')}.safetensors`)), c.bytes);
});
after(() => rmSync(tmp, { recursive: true, force: true }));

test('node API: weights of another grid are refused, the shipped ones load', async () => {
  for (const threads of [1, 2]) {
    const csac = await load({ threads });
    try {
      for (const c of cases) assert.throws(() => csac.loadModel(c.bytes), c.message, `${c.name}, ${threads} thread(s)`);
      assert.match(csac.loadModel(good), new RegExp(`grid=${GRID}`));
    } finally {
      csac.close();
    }
  }
});

test('both CLIs: screening with weights of another grid fails with the reason', { skip: !existsSync(scan) && `no ${scan}` }, () => {
  for (const c of cases) {
    for (const [cmd, args] of [[native, []], [process.execPath, [cliJs]]]) {
      const p = spawnSync(cmd, [...args, 'screen', '--json', '--weights', c.path, scan], { encoding: 'utf8', timeout: 300000 });
      assert.notEqual(p.status, 0, `${c.name} via ${cmd} should fail`);
      assert.match(p.stderr, c.message, `${c.name} via ${cmd}: ${p.stderr}`);
    }
  }
});
