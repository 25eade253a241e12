// Proves: hostile files chosen in the page each show a specific message within
// 2 s of being chosen (measured in the page, from the input's change event to
// the painted frame), and the next valid scan still works in the same page: a
// DICOM file (named .dcm, and named .nii.gz), a truncated .nii.gz of a real scan,
// and a gzip bomb (1.4 MB that inflates to 1.3 GB, past the 1 GiB decompressed
// limit). A 1.07 GB float32 .nii within the reader's limits but too big for the
// 2 GB wasm heap gets the heap message, not an abort; the Worker is replaced and
// the next scan works. Out-of-distribution scans (10 mm slices, MR-like
// intensities) are screened, the warning is shown next to the result and the
// JSON report carries it; without a model the note under the progress bar
// says it. Nothing leaves the local server.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, launch, openPage, foreignRequests, waitReady, screenFile, rootWithWeights, SHARED_CT } from './harness.mjs';
import { OOD, dicomFile, niftiBomb, writeSparseFloat32 } from '../node/inputs.mjs';

const GOOD = join(SHARED_CT, 'chest00_5mm.nii.gz');
const LIMIT_MS = 2000;
let chrome, dir;
before(async () => {
  chrome = await launch();
  dir = mkdtempSync(join(tmpdir(), 'csac-hostile-'));
  writeFileSync(join(dir, 'scan.dcm'), dicomFile());
  writeFileSync(join(dir, 'dicom.nii.gz'), dicomFile());
  const good = readFileSync(GOOD);
  writeFileSync(join(dir, 'truncated.nii.gz'), good.subarray(0, good.length >> 1));
  writeFileSync(join(dir, 'bomb.nii.gz'), niftiBomb());
  for (const k of ['thick', 'mr']) writeFileSync(join(dir, `${k}.nii.gz`), OOD[k].make());
});
after(async () => { await chrome?.close(); rmSync(dir, { recursive: true, force: true }); });

// Chooses a file and times, in the page, "change event" -> "frame painted with the outcome".
async function chooseTimed(page, path, timeout = 120000) {
  await page.evaluate(() => {
    delete document.body.dataset.state;
    const t = (window.__t = {});
    document.addEventListener('change', () => { t.chosen = performance.now(); }, { capture: true, once: true });
    const obs = new MutationObserver(() => {
      const s = document.body.dataset.state;
      if (!['done', 'error', 'cancelled'].includes(s)) return;
      obs.disconnect();
      requestAnimationFrame(() => { t.state = s; t.shown = performance.now(); });
    });
    obs.observe(document.body, { attributes: true, attributeFilter: ['data-state'] });
  });
  await page.setInputFiles('#file', path);
  await page.waitForFunction(() => window.__t.shown != null, null, { timeout });
  return page.evaluate(() => ({
    ms: window.__t.shown - window.__t.chosen,
    state: window.__t.state,
    error: document.body.dataset.error || null,
    shown: !document.getElementById('error').hidden && document.getElementById('error').textContent,
  }));
}

test('DICOM, truncated .nii.gz and gzip bomb: a specific message within 2 s, then a good scan works', { timeout: 300000 }, async (t) => {
  const srv = await startServer();
  try {
    const { context, page, requests, errors } = await openPage(chrome.browser);
    await page.goto(srv.url + '?nosw');
    assert.equal((await waitReady(page)).ready, '1');
    const cases = [
      ['scan.dcm', /^Could not read scan\.dcm: not a NIfTI file: a DICOM file \("DICM" at byte 128\): convert the series to NIfTI first \(e\.g\. dcm2niix\)$/],
      ['dicom.nii.gz', /^Could not read dicom\.nii\.gz: not a NIfTI file: a DICOM file/],
      ['truncated.nii.gz', /^Could not read truncated\.nii\.gz: truncated: the gzip stream ends after \d+ of the 7340384 bytes the header declares/],
      ['bomb.nii.gz', /^Could not read bomb\.nii\.gz: the first volume needs 1342177632 bytes \(vox_offset 352 \+ 167772160 voxels x 8 bytes\), over the limit max_decompressed_bytes = 1073741824$/],
    ];
    const times = {};
    for (const [name, re] of cases) {
      const r = await chooseTimed(page, join(dir, name));
      assert.equal(r.state, 'error', `${name} should fail`);
      assert.match(r.error, re);
      assert.ok(r.shown && r.shown.includes(r.error), `${name}: the message is visible in the page`);
      times[name] = Math.round(r.ms);
      assert.ok(r.ms < LIMIT_MS, `${name}: message after ${Math.round(r.ms)} ms (limit ${LIMIT_MS})`);
    }
    t.diagnostic(`chosen -> message shown (ms): ${JSON.stringify(times)}`);
    const ok = await screenFile(page, GOOD);
    assert.equal(ok.state, 'done', `good file after the hostile ones: ${ok.error}`);
    assert.equal(ok.volume, '256x256x56');
    assert.ok(ok.probability >= 0 && ok.probability <= 1);
    assert.ok(await page.isHidden('#error'), 'the old error is cleared');
    assert.deepEqual(errors, []);
    assert.deepEqual(foreignRequests(requests, srv.origin), []);
    await context.close();
  } finally {
    await srv.stop();
  }
});

test('a scan too big for the wasm heap: a message, not an abort; the worker is replaced and the next scan works', { timeout: 300000 }, async (t) => {
  const big = writeSparseFloat32(join(dir, 'big_float32.nii'));
  const srv = await startServer();
  try {
    const { context, page, requests, errors } = await openPage(chrome.browser);
    await page.goto(srv.url + '?nosw');
    assert.equal((await waitReady(page)).ready, '1');
    const restarts = await page.evaluate(() => window.csacApp.engine.restarts);
    const r = await screenFile(page, big);
    t.diagnostic(r.error);
    assert.equal(r.state, 'error');
    assert.match(r.error, /^Could not read big_float32\.nii: (out of memory for 267386880 voxels \(1020 MB as float32\)|cannot allocate \d+ bytes for the file): the scan does not fit in the 2048 MB memory of the WebAssembly engine/);
    assert.equal(await page.evaluate(() => window.csacApp.engine.restarts), restarts + 1, 'a fresh worker (the heap gives its memory back)');
    assert.equal((await waitReady(page)).ready, '1');
    const ok = await screenFile(page, GOOD);
    assert.equal(ok.state, 'done', `file after the heap error: ${ok.error}`);
    assert.ok(ok.probability >= 0 && ok.probability <= 1);
    assert.deepEqual(errors, []);
    assert.deepEqual(foreignRequests(requests, srv.origin), []);
    await context.close();
  } finally {
    await srv.stop();
    rmSync(big, { force: true });
  }
});

test('out-of-distribution scans: the warning is shown with the result and is in the JSON report', { timeout: 300000 }, async () => {
  const srv = await startServer();
  try {
    const { context, page, requests, errors } = await openPage(chrome.browser);
    await page.goto(srv.url + '?nosw');
    const info = await waitReady(page);
    assert.equal(info.ready, '1');
    assert.ok(info.model.loaded, `the page has a model: ${info.model.error}`);
    for (const k of ['thick', 'mr']) {
      const r = await screenFile(page, join(dir, `${k}.nii.gz`));
      assert.equal(r.state, 'done', `${k}: screened (${r.error})`);
      assert.ok(r.probability >= 0 && r.probability <= 1);
      assert.ok(await page.isVisible('#result'), 'the result card is shown');
      const shown = await page.$$eval('#warnings li', (li) => li.map((x) => x.textContent));
      assert.ok(shown.some((w) => w.includes(OOD[k].phrase)), `${k}: warning shown: ${JSON.stringify(shown)}`);
      assert.ok(await page.isVisible('#warnings'), 'the warning list is visible');
      const rep = await page.evaluate(() => window.csacApp.report());
      assert.equal(rep.file, `${k}.nii.gz`);
      assert.deepEqual(rep.warnings, shown, `${k}: the JSON report carries the warnings shown`);
    }
    const ok = await screenFile(page, GOOD);
    assert.equal(ok.state, 'done');
    assert.deepEqual(await page.$$eval('#warnings li', (li) => li.length), 0, 'a normal scan shows no warning');
    assert.deepEqual(errors, []);
    assert.deepEqual(foreignRequests(requests, srv.origin), []);
    await context.close();
  } finally {
    await srv.stop();
  }
});

test('without a model the warning is in the note next to "no result"', { timeout: 300000 }, async () => {
  const empty = mkdtempSync(join(tmpdir(), 'csac-noweights-'));
  const root = rootWithWeights(empty);
  const srv = await startServer({ root: root.root });
  try {
    const { context, page, requests, errors } = await openPage(chrome.browser);
    await page.goto(srv.url + '?nosw');
    const info = await waitReady(page);
    assert.equal(info.model.loaded, false);
    const r = await screenFile(page, join(dir, 'thick.nii.gz'));
    assert.equal(r.state, 'done', r.error);
    assert.equal(r.volume, '256x256x56');
    assert.ok(await page.isVisible('#notes'));
    assert.match(await page.textContent('#notes'), new RegExp(`Scan shown without a result: .*Warnings about this scan: .*${OOD.thick.phrase}`));
    assert.deepEqual(errors, []);
    assert.deepEqual(foreignRequests(requests, srv.origin), []);
    await context.close();
  } finally {
    await srv.stop();
    root.remove();
    rmSync(empty, { recursive: true, force: true });
  }
});
