// Proves: the wasm build (node API and node CLI) gives the same answer as the
// native CLI on real scans from ../shared/ct (within 1e-5), with 1 thread
// (`st`) and 2 threads (`mt`); a batch over every real scan plus two
// malformed files gives one line per scan, a specific reason for each bad
// file and exit code 1 (partial failure), in both CLIs; the native triage
// report is sorted and has a thumbnail per screened scan.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { load } from '../../wasm/csac.mjs';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const ct = process.env.CSAC_SHARED_CT || join(repo, '..', 'shared', 'ct');
const weights = process.env.CSAC_TEST_WEIGHTS || join(repo, 'weights', 'csac_v1.safetensors');
const native = join(repo, 'build', 'native', 'csac');
const cliJs = join(repo, 'wasm', 'csac-cli.mjs');
const scans = readdirSync(ct).filter((f) => f.endsWith('.nii.gz')).sort().map((f) => join(ct, f));
const small = scans.filter((f) => f.includes('_5mm'));

function run(cmd, args) {
  const p = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 1 << 24, timeout: 600000 });
  return { code: p.status, lines: p.stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l)), stderr: p.stderr };
}

let tmp;
before(() => {
  assert.ok(existsSync(weights), `weights missing: ${weights}`);
  assert.ok(existsSync(native), `native CLI missing: ${native} (cmake --build --preset native)`);
  assert.ok(small.length >= 4, `real scans missing in ${ct}`);
  tmp = mkdtempSync(join(tmpdir(), 'csac-screen-'));
});
after(() => rmSync(tmp, { recursive: true, force: true }));

test('node API (mt, 2 threads and st, 1 thread) agrees with the native CLI', async () => {
  const nat = run(native, ['screen', '--json', '--weights', weights, ...small]);
  assert.equal(nat.code, 0, nat.stderr);
  for (const threads of [2, 1]) {
    const csac = await load({ threads });
    try {
      csac.loadModel(weights);
      for (const [i, file] of small.entries()) {
        const r = csac.screenFile(file);
        assert.equal(nat.lines[i].file, file);
        assert.ok(Math.abs(r.probability - nat.lines[i].probability) <= 1e-5,
          `${file} threads=${threads}: wasm ${r.probability} vs native ${nat.lines[i].probability}`);
        assert.ok(Math.abs(r.logit - nat.lines[i].logit) <= 1e-4);
        assert.deepEqual(r.warnings, nat.lines[i].warnings);
      }
    } finally {
      csac.close();
    }
  }
});

test('batch over every real scan plus two malformed files: partial failure, in both CLIs', () => {
  const notNifti = join(tmp, 'notes.nii');
  writeFileSync(notNifti, 'this is a text file, not a NIfTI image\n'.repeat(20));
  const truncated = join(tmp, 'truncated.nii.gz');
  writeFileSync(truncated, Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0, 3, 1, 2, 3]));
  const inputs = [...scans, notNifti, truncated];
  const nat = run(native, ['screen', '--json', '--weights', weights, ...inputs]);
  const js = run(process.execPath, [cliJs, '--json', '--weights', weights, '--threads', '2', ...inputs]);
  for (const [name, r] of [['native', nat], ['wasm', js]]) {
    assert.equal(r.code, 1, `${name}: exit code 1 = some inputs failed (${r.stderr})`);
    assert.equal(r.lines.length, inputs.length, `${name}: one line per input`);
    for (const [i, f] of inputs.entries()) assert.equal(r.lines[i].file, f);
    for (const l of r.lines.slice(0, scans.length)) {
      assert.ok(l.probability >= 0 && l.probability <= 1, `${name} ${l.file}`);
      assert.ok(['positive', 'negative'].includes(l.decision));
    }
    assert.match(r.lines[scans.length].error, /not a NIfTI/i);
    assert.match(r.lines[scans.length + 1].error, /truncat|gunzip|gzip/i);
  }
  for (let i = 0; i < scans.length; i++) assert.ok(Math.abs(nat.lines[i].probability - js.lines[i].probability) <= 1e-5);
  assert.equal(nat.lines[scans.length].error, js.lines[scans.length].error, 'the same message native and wasm');
});

test('triage report: CSV sorted by probability, HTML with a PNG thumbnail per screened scan', () => {
  const dir = join(tmp, 'report');
  const bad = join(tmp, 'bad.nii');
  writeFileSync(bad, 'not an image');
  const p = spawnSync(native, ['screen', '--json', '--weights', weights, '--report', dir, ...small, bad], { encoding: 'utf8' });
  assert.equal(p.status, 1, p.stderr);
  const rows = readFileSync(join(dir, 'triage.csv'), 'utf8').trim().split('\n').slice(1).map((l) => l.split(','));
  assert.equal(rows.length, small.length + 1);
  const probs = rows.slice(0, small.length).map((r) => Number(r[2]));
  assert.deepEqual(probs, [...probs].sort((a, b) => b - a), 'sorted by probability, highest first');
  assert.equal(rows[small.length][2], '', 'the failed file comes last, without a probability');
  const html = readFileSync(join(dir, 'triage.html'), 'utf8');
  const imgs = [...html.matchAll(/<img src="(thumbs\/\d+\.png)"/g)].map((m) => m[1]);
  assert.equal(imgs.length, small.length);
  for (const f of imgs) {
    const b = readFileSync(join(dir, f));
    assert.deepEqual([...b.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], `${f} is a PNG`);
    assert.ok(b.length > 2000, `${f}: ${b.length} bytes`);
  }
  assert.match(html, /not for diagnosis/);
  assert.doesNotMatch(html, /https?:\/\//, 'self-contained: no remote resource');
});

test('the native-resolution scan screens the same in wasm and native', async () => {
  const big = scans.find((f) => f.endsWith('covidctmd_P001.nii.gz'));
  assert.ok(big);
  const nat = run(native, ['screen', '--json', '--weights', weights, big]);
  assert.equal(nat.code, 0, nat.stderr);
  const csac = await load({ threads: 2 });
  try {
    csac.loadModel(weights);
    const r = csac.screenFile(big);
    assert.ok(Math.abs(r.probability - nat.lines[0].probability) <= 1e-5, `${r.probability} vs ${nat.lines[0].probability}`);
  } finally {
    csac.close();
  }
});

test('usage errors exit 2 with a message', () => {
  for (const cmd of [[native, 'screen'], [process.execPath, cliJs]]) {
    const bad = spawnSync(cmd[0], [...cmd.slice(1), '--threshold', '2', 'x.nii'], { encoding: 'utf8' });
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /--threshold needs 0\.\.1/);
  }
});
