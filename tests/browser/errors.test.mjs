// Proves: malformed files (not NIfTI at all; a .nii.gz cut off mid-stream)
// show a readable error in the page, and the next good file still works in
// the same page; cancelling a running scan (47 MB file) restarts the worker
// and the next file still works. Nothing leaves the local server.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, launch, openPage, foreignRequests, waitReady, screenFile, SHARED_CT } from './harness.mjs';

const GOOD = join(SHARED_CT, 'chest00_5mm.nii.gz');
const BIG = join(SHARED_CT, 'covidctmd_P001.nii.gz');
let chrome, dir;
before(async () => {
  chrome = await launch();
  dir = mkdtempSync(join(tmpdir(), 'csac-bad-'));
  writeFileSync(join(dir, 'garbage.nii.gz'), Buffer.from('this is not a NIfTI file, just some text\n'.repeat(50)));
  writeFileSync(join(dir, 'truncated.nii.gz'), readFileSync(GOOD).subarray(0, 200000));
  const hdr = Buffer.alloc(352); // a NIfTI-1 header that claims far more data than follows
  hdr.writeInt32LE(348, 0); hdr.writeInt16LE(3, 40); hdr.writeInt16LE(512, 42); hdr.writeInt16LE(512, 44); hdr.writeInt16LE(300, 46);
  hdr.writeInt16LE(4, 70); hdr.writeInt16LE(16, 72); hdr.writeFloatLE(1, 80); hdr.writeFloatLE(1, 84); hdr.writeFloatLE(1, 88);
  hdr.writeFloatLE(352, 108); hdr.write('n+1\0', 344, 'latin1');
  writeFileSync(join(dir, 'short.nii'), Buffer.concat([hdr, Buffer.alloc(1000)]));
});
after(async () => { await chrome?.close(); rmSync(dir, { recursive: true, force: true }); });

test('malformed files show an error, then a good file works', { timeout: 300000 }, async () => {
  const srv = await startServer();
  try {
    const { context, page, requests, errors } = await openPage(chrome.browser);
    await page.goto(srv.url + '?nosw');
    assert.equal((await waitReady(page)).ready, '1');
    for (const bad of ['garbage.nii.gz', 'truncated.nii.gz', 'short.nii']) {
      const r = await screenFile(page, join(dir, bad));
      assert.equal(r.state, 'error', `${bad} should fail`);
      assert.match(r.error, new RegExp(`^Could not (read|screen) ${bad.replace('.', '\\.')}: \\S`));
      assert.ok(await page.isVisible('#error'), 'the error is shown in the page');
      assert.match(await page.textContent('#error'), /Could not/);
    }
    const ok = await screenFile(page, GOOD);
    assert.equal(ok.state, 'done', `good file after bad ones: ${ok.error}`);
    assert.equal(ok.volume, '256x256x56');
    assert.ok(await page.isHidden('#error'), 'the old error is cleared');
    assert.deepEqual(errors, []);
    assert.deepEqual(foreignRequests(requests, srv.origin), []);
    await context.close();
  } finally {
    await srv.stop();
  }
});

test('cancel restarts the engine and the next file works', { timeout: 300000 }, async () => {
  const srv = await startServer();
  try {
    const { context, page, requests, errors } = await openPage(chrome.browser);
    await page.goto(srv.url + '?nosw');
    assert.equal((await waitReady(page)).ready, '1');
    await page.evaluate(() => { delete document.body.dataset.state; });
    await page.setInputFiles('#file', BIG);
    await page.waitForFunction(() => !document.getElementById('cancel').disabled);
    await page.waitForFunction(() => /Decompressing|Reading/.test(document.getElementById('stage').textContent));
    await page.click('#cancel');
    await page.waitForFunction(() => document.body.dataset.state === 'cancelled');
    assert.match(await page.textContent('#notes'), /Cancelled/);
    const ok = await screenFile(page, GOOD);
    assert.equal(ok.state, 'done', `file after cancel: ${ok.error}`);
    assert.deepEqual(errors, []);
    assert.deepEqual(foreignRequests(requests, srv.origin), []);
    await context.close();
  } finally {
    await srv.stop();
  }
});

test('a stage over its time budget: the worker is replaced, the message is shown, the next file works', { timeout: 300000 }, async () => {
  const srv = await startServer();
  try {
    const { context, page, requests, errors } = await openPage(chrome.browser);
    // 1 ms for the network stage (it takes 100+ ms): it is treated as hung. (A 1 ms budget on a
    // stage that can finish in about a millisecond, like reading a small file, races the timer.)
    await page.goto(srv.url + '?nosw&budget.network=1');
    assert.equal((await waitReady(page)).ready, '1');
    const r = await screenFile(page, GOOD);
    assert.equal(r.state, 'error');
    assert.match(r.error, /did not finish "network" within .* restarted/);
    await page.evaluate(() => { window.csacApp.engine.budget.network = 60000; });
    assert.equal((await waitReady(page)).ready, '1');
    const ok = await screenFile(page, GOOD);
    assert.equal(ok.state, 'done', `file after a hung stage: ${ok.error}`);
    assert.deepEqual(errors, []);
    assert.deepEqual(foreignRequests(requests, srv.origin), []);
    await context.close();
  } finally {
    await srv.stop();
  }
});
