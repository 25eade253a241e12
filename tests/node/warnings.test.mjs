// Proves: out-of-distribution scans are screened and the warning travels with
// the result, never silently: very thick slices (10 mm), MR-like intensities
// (nothing below 0), too little z coverage (100 mm), lungs too small for the
// grid's zoom and no lungs found each
// put their warning in the JSON line of the native CLI (build/native/csac) and
// of the wasm CLI (wasm/csac-cli.mjs), the same words in both, next to a
// probability; a normal real scan gets none. Also in the native --csv output.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BASE_SCAN, OOD, REPO } from './inputs.mjs';

const weights = process.env.CSAC_TEST_WEIGHTS || join(REPO, 'weights', 'csac_v1.safetensors');
const native = join(REPO, 'build', 'native', 'csac');
const cliJs = join(REPO, 'wasm', 'csac-cli.mjs');
let tmp, files;
before(() => {
  assert.ok(existsSync(native), `native CLI missing: ${native} (cmake --build --preset native)`);
  assert.ok(existsSync(weights), `weights missing: ${weights}`);
  assert.ok(existsSync(BASE_SCAN), `real scan missing: ${BASE_SCAN}`);
  tmp = mkdtempSync(join(tmpdir(), 'csac-ood-'));
  files = Object.entries(OOD).map(([name, o]) => {
    const f = join(tmp, `${name}.nii.gz`);
    writeFileSync(f, o.make());
    return { name, file: f, phrase: o.phrase };
  });
});
after(() => rmSync(tmp, { recursive: true, force: true }));

function run(cmd, args) {
  const p = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 1 << 24, timeout: 300000 });
  return { code: p.status, stdout: p.stdout, stderr: p.stderr };
}

test('warnings are in the JSON line of both CLIs, with the probability', { timeout: 300000 }, () => {
  const inputs = [BASE_SCAN, ...files.map((f) => f.file)];
  const nat = run(native, ['screen', '--json', '--weights', weights, ...inputs]);
  const js = run(process.execPath, [cliJs, '--json', '--threads', '2', '--weights', weights, ...inputs]);
  const out = {};
  for (const [name, r] of [['native', nat], ['wasm', js]]) {
    assert.equal(r.code, 0, `${name}: every file is screened (${r.stderr})`);
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
    assert.equal(lines.length, inputs.length);
    assert.deepEqual(lines[0].warnings, [], `${name}: no warning for a normal chest CT`);
    for (const [i, f] of files.entries()) {
      const l = lines[i + 1];
      assert.equal(l.file, f.file);
      assert.ok(l.probability >= 0 && l.probability <= 1, `${name} ${f.name}: screened`);
      assert.ok(Array.isArray(l.warnings) && l.warnings.some((w) => w.includes(f.phrase)),
        `${name} ${f.name}: a warning with '${f.phrase}' in ${JSON.stringify(l.warnings)}`);
    }
    out[name] = lines;
  }
  for (let i = 0; i < inputs.length; i++) assert.deepEqual(out.wasm[i].warnings, out.native[i].warnings, 'the same warnings native and wasm');
});

test('the native CSV output has the warnings column filled', { timeout: 300000 }, () => {
  const r = run(native, ['screen', '--csv', '--weights', weights, ...files.map((f) => f.file)]);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  assert.match(lines[0], /,warnings,/);
  for (const [i, f] of files.entries()) assert.ok(lines[i + 1].includes(f.phrase), `${f.name}: ${lines[i + 1]}`);
});
