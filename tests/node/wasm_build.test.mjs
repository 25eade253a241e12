// Proves: the `mt` build really runs SIMD across 2 pthreads (the self-test's
// SIMD kernel is split over the pool and matches a scalar reference, with
// both threads doing work), and the `st` build runs without
// SharedArrayBuffer (hidden before the module loads) on the serial path.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';

import { load } from '../../wasm/csac.mjs';

test('mt build: SIMD kernel split over 2 threads', async () => {
  const csac = await load({ threads: 2 });
  try {
    assert.match(csac.buildInfo(), /simd=wasm-simd128 threads=pthread/);
    assert.equal(csac.threads, 2);
    const r = csac.selftest();
    assert.equal(r.simdLanes, 4);
    assert.equal(r.threadsUsed, 2, 'both pool threads did part of the work');
    assert.ok(r.maxAbsErr < 1e-4, `SIMD vs scalar error ${r.maxAbsErr}`);
  } finally {
    csac.close();
  }
});

test('st build: runs without SharedArrayBuffer', () => {
  // A child process where SharedArrayBuffer does not exist, as in a page that
  // is not cross-origin isolated.
  const script = `
    delete globalThis.SharedArrayBuffer;
    const { load } = await import(${JSON.stringify(new URL('../../wasm/csac.mjs', import.meta.url).href)});
    const csac = await load({ threads: 1 });
    const r = csac.selftest();
    console.log(JSON.stringify({ info: csac.buildInfo(), threads: csac.threads, ...r }));
    csac.close();`;
  const p = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  assert.equal(p.status, 0, p.stderr);
  const r = JSON.parse(p.stdout.trim().split('\n').pop());
  assert.match(r.info, /simd=wasm-simd128 threads=none/);
  assert.equal(r.threads, 1);
  assert.equal(r.threadsUsed, 1);
  assert.ok(r.maxAbsErr < 1e-4);
});

test('st build refuses more threads gracefully (clamped to 1)', async () => {
  const { instantiate, Csac } = await import('../../wasm/csac.mjs');
  const M = await instantiate({ variant: 'st', threads: 1 });
  const c = new Csac(M, { threads: 4 });
  assert.equal(c.threads, 1);
  c.free();
});

