// Proves: after one visit the service worker has cached the app, the wasm
// engine (mt and st) and the weights (when the server has them), and the app
// starts and screens a file with the server stopped (still threaded: the
// cached responses carry COOP/COEP). No request goes to another origin.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { startServer, launch, openPage, engineClaims, foreignRequests, waitReady, screenFile, SHARED_CT } from './harness.mjs';

let chrome;
before(async () => { chrome = await launch(); });
after(async () => { await chrome?.close(); });

test('works offline once cached (server stopped)', { timeout: 180000 }, async () => {
  const srv = await startServer();
  let stopped = false;
  try {
    const { context, page, requests, errors } = await openPage(chrome.browser);
    await page.goto(srv.url);
    assert.equal((await waitReady(page)).ready, '1');
    await page.waitForFunction(() => document.body.dataset.offline === '1' && navigator.serviceWorker.controller, null, { timeout: 60000 });
    const sw = await page.evaluate(() => window.csacApp.sw);
    if (engineClaims().model) assert.doesNotMatch(sw, /weights\/csac_v1\.safetensors/, 'weights are cached');

    await srv.stop();
    stopped = true;
    await page.reload();
    const eng = await waitReady(page);
    assert.equal(eng.ready, '1', 'engine starts from the cache');
    assert.equal(eng.variant, 'mt', 'still cross-origin isolated offline');
    assert.equal(eng.model.loaded, engineClaims().model, `model offline: ${eng.model.error}`);
    const r = await screenFile(page, join(SHARED_CT, 'chest00_5mm.nii.gz'));
    assert.equal(r.state, 'done', r.error);
    assert.equal(r.volume, '256x256x56');
    assert.deepEqual(errors, []);
    assert.deepEqual(foreignRequests(requests, srv.origin), []);
    await context.close();
  } finally {
    if (!stopped) await srv.stop();
  }
});

test('on a host without COOP/COEP the service worker makes the page isolated after one reload (threads)', { timeout: 120000 }, async () => {
  const srv = await startServer({ isolation: false });
  try {
    const { context, page, requests, errors } = await openPage(chrome.browser);
    await page.goto(srv.url);
    const first = await waitReady(page);
    assert.equal(first.variant, 'st');
    await page.waitForFunction(() => document.body.dataset.offline === '1' && navigator.serviceWorker.controller, null, { timeout: 60000 });
    assert.ok(await page.isVisible('#coi-reload'), 'the page offers the reload');
    await page.click('#coi-reload');
    await page.waitForLoadState();
    const second = await waitReady(page);
    assert.equal(await page.evaluate(() => crossOriginIsolated), true);
    assert.equal(second.variant, 'mt');
    assert.ok(second.threads >= 2);
    assert.deepEqual(errors, []);
    assert.deepEqual(foreignRequests(requests, srv.origin), []);
    await context.close();
  } finally {
    await srv.stop();
  }
});
