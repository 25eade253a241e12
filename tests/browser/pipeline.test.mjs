// Proves the whole page pipeline with a deterministic random-weight model
// (tests/browser/make_fixture.py; the real weights may not exist yet):
// - the worker fetches the weights from the page's own origin, the network
//   self-test matches the stored PyTorch answer, in mt (2 threads) and st;
// - a real scan through the file input gives a probability, a decision at the
//   selected operating point, sensitivity/specificity from the model metadata;
// - the JSON report and PNG export download locally with the required fields;
// - a self-test answer that does not match disables screening with a readable
//   message after trying the single-threaded fallback;
// - the heatmap overlay, once the engine exports the heatmap functions;
// - the page's own heatmap path now, with a stand-in heatmap (?mockHeatmap).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { join } from 'node:path';
import { startServer, launch, openPage, engineClaims, foreignRequests, waitReady, screenFile, overlayPixels, modelFixture, rootWithWeights, SHARED_CT } from './harness.mjs';

const SCAN = join(SHARED_CT, 'covidctmd_P001_5mm.nii.gz');
let chrome;
before(async () => { chrome = await launch(); });
after(async () => { await chrome?.close(); });

for (const isolation of [true, false]) {
  test(`random-weight model: probability, operating point, exports (${isolation ? 'mt' : 'st'})`, { timeout: 300000 }, async (t) => {
    const fx = modelFixture();
    const root = rootWithWeights(fx.dir);
    const srv = await startServer({ isolation, root: root.root });
    try {
      const { context, page, requests, errors } = await openPage(chrome.browser);
      await page.goto(srv.url + '?nosw');
      const eng = await waitReady(page, 120000);
      assert.equal(eng.variant, isolation ? 'mt' : 'st');
      assert.ok(eng.model.loaded, eng.model.error);
      assert.ok(eng.networkSelftest.compared && eng.networkSelftest.ok, JSON.stringify(eng.networkSelftest));
      assert.ok(Math.abs(eng.networkSelftest.logit - fx.logit) < 1e-3);
      assert.match(await page.textContent('#selftest'), /network matches the stored answer/);

      const r = await screenFile(page, SCAN);
      assert.equal(r.state, 'done', r.error);
      assert.ok(r.probability > 0 && r.probability < 1, `probability ${r.probability}`);
      const opts = await page.$$eval('#threshold option', (o) => o.map((x) => x.textContent));
      assert.deepEqual(opts.length, 3);
      assert.match(opts[1], /^0\.50 \(sens\. 90\.0 %, spec\. 85\.0 %\)$/);
      // the decision follows the threshold
      for (const th of ['0.3', '0.7']) {
        await page.selectOption('#threshold', th);
        const want = r.probability >= Number(th) ? /^Positive/ : /^Negative/;
        assert.match(await page.textContent('#decision'), want);
      }
      const rep = await page.evaluate(() => window.csacApp.report());
      const sha = createHash('sha256').update(readFileSync(SCAN)).digest('hex');
      assert.equal(rep.file, 'covidctmd_P001_5mm.nii.gz');
      assert.equal(rep.sha256, sha);
      assert.equal(rep.probability, r.probability);
      assert.equal(rep.threshold, 0.7);
      assert.equal(rep.decision, r.probability >= 0.7 ? 'positive' : 'negative');
      assert.equal(rep.model_version, 'random-seed-1 (test fixture)');
      for (const k of ['timings_ms', 'warnings', 'engine']) assert.ok(k in rep, k);
      assert.ok(rep.timings_ms.forward > 0 && rep.timings_ms.total_to_shown > 0);
      const [dl] = await Promise.all([page.waitForEvent('download'), page.click('#exp-json')]);
      assert.match(dl.suggestedFilename(), /^covidctmd_P001_5mm_report\.json$/);
      const [png] = await Promise.all([page.waitForEvent('download'), page.click('#exp-png')]);
      assert.equal(readFileSync(await png.path()).subarray(1, 4).toString(), 'PNG');

      await t.test('heatmap overlay', { skip: !engineClaims().heatmap && 'waiting for the engine: _csac_heatmap/_csac_heatmap_resample not exported' }, async () => {
        assert.ok(r.heatmap, r.heatmapError);
        await page.click('#goto-max');
        assert.ok(await overlayPixels(page) > 100);
        const [nii] = await Promise.all([page.waitForEvent('download'), page.click('#exp-nifti')]);
        assert.match(nii.suggestedFilename(), /_heatmap\.nii\.gz$/);
      });
      assert.deepEqual(errors, []);
      assert.deepEqual(foreignRequests(requests, srv.origin), []);
      await context.close();
    } finally {
      await srv.stop();
      root.remove();
    }
  });
}

test('a network self-test mismatch disables screening, with the reason shown', { timeout: 300000 }, async () => {
  const fx = modelFixture({ wrongSelftest: true });
  const root = rootWithWeights(fx.dir);
  const srv = await startServer({ root: root.root });
  try {
    const { context, page, errors } = await openPage(chrome.browser);
    await page.goto(srv.url + '?nosw');
    const eng = await waitReady(page, 120000);
    assert.equal(eng.model.loaded, false);
    assert.match(eng.model.error, /network self-test failed/);
    assert.equal(eng.variant, 'st', 'fell back to the single-threaded build first');
    assert.match(eng.fallback.join(' '), /network self-test failed on the threaded build/);
    assert.match(await page.textContent('#model'), /network self-test failed/);
    const r = await screenFile(page, SCAN);
    assert.equal(r.state, 'done');
    assert.equal(r.probability, null, 'no probability from an engine that failed its self-test');
    assert.match(await page.textContent('#notes'), /network self-test failed/);
    assert.deepEqual(errors, []);
    await context.close();
  } finally {
    await srv.stop();
    root.remove();
  }
});

// The page's heatmap path (worker slabs -> shared memory or Uint8 transfer ->
// overlay, score strip, most suspicious slice, NIfTI export) with a stand-in
// for the engine's heatmap functions (?mockHeatmap: a blob centred at 60 % of
// the slices). Proves the app side now; the engine's own heatmap is proven by
// the "heatmap overlay" subtests above once it is exported.
for (const isolation of [true, false]) {
  test(`heatmap path of the page with a stand-in heatmap (${isolation ? 'mt, shared memory' : 'st, transferred'})`, { timeout: 300000 }, async () => {
    const fx = modelFixture();
    const root = rootWithWeights(fx.dir);
    const srv = await startServer({ isolation, root: root.root });
    try {
      const { context, page, requests, errors } = await openPage(chrome.browser);
      await page.goto(srv.url + '?nosw&mockHeatmap');
      const eng = await waitReady(page, 120000);
      assert.ok(eng.capabilities.mockHeatmap);
      const r = await screenFile(page, SCAN);
      assert.equal(r.state, 'done', r.error);
      assert.ok(r.heatmap, r.heatmapError);
      await page.click('#goto-max');
      const k = await page.evaluate(() => Number(document.getElementById('slice').value));
      assert.ok(Math.abs(k - Math.round(59 * 0.6)) <= 1, `most suspicious slice ${k}`);
      const n = await overlayPixels(page);
      assert.ok(n > 1000, `overlay pixels ${n}`);
      await page.fill('#ov-opacity', '0');
      await page.dispatchEvent('#ov-opacity', 'input');
      assert.equal(await overlayPixels(page), 0, 'opacity 0 hides the overlay');
      await page.fill('#ov-opacity', '0.5');
      await page.dispatchEvent('#ov-opacity', 'input');
      // clicking the score strip jumps to that slice
      const box = await page.locator('#strip').boundingBox();
      await page.mouse.click(box.x + box.width * (10.5 / 59), box.y + box.height / 2);
      assert.equal(await page.evaluate(() => Number(document.getElementById('slice').value)), 10);
      const [nii] = await Promise.all([page.waitForEvent('download'), page.click('#exp-nifti')]);
      const raw = gunzipSync(readFileSync(await nii.path()));
      const info = await page.evaluate(() => window.csacApp.volumeInfo);
      assert.equal(raw.readInt16LE(70), 2, 'UINT8');
      assert.deepEqual([raw.readInt16LE(42), raw.readInt16LE(44), raw.readInt16LE(46)], info.dim);
      for (let i = 0; i < 12; i++) assert.ok(Math.abs(raw.readFloatLE(280 + 4 * i) - info.vox2world[i]) < 1e-3);
      assert.equal(raw.length, 352 + info.dim[0] * info.dim[1] * info.dim[2]);
      assert.ok(raw.subarray(352).some((b) => b > 200), 'the blob is in the file');
      assert.deepEqual(errors, []);
      assert.deepEqual(foreignRequests(requests, srv.origin), []);
      await context.close();
    } finally {
      await srv.stop();
      root.remove();
    }
  });
}
