// Proves, without needing the network or weights:
// - the slice viewer puts the patient's right on the screen's left and
//   anterior up, for RAS and for LAS files alike (from vox2world);
// - a heatmap on the original voxel grid (Uint8 or Float32 in [0,1]) draws
//   non-empty overlay pixels where it is high, none when toggled off;
// - the heatmap NIfTI export has the input's geometry: read back by the
//   project's own reader (in the app's worker) it gives the same dims and
//   voxel-to-world matrix, and values 0..1.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { startServer, launch, openPage, foreignRequests, waitReady, screenFile, SHARED_CT } from './harness.mjs';

let chrome, srv;
before(async () => { chrome = await launch(); srv = await startServer(); });
after(async () => { await chrome?.close(); await srv?.stop(); });

test('viewer orientation and overlay on synthetic volumes', async () => {
  const { context, page, errors } = await openPage(chrome.browser);
  await page.goto(srv.url + '?nosw');
  const out = await page.evaluate(async () => {
    const { Viewer } = await import('./viewer.js');
    const res = {};
    for (const [name, sx] of [['RAS', 1], ['LAS', -1]]) {
      const host = document.createElement('div');
      const els = {};
      for (const v of ['axial', 'coronal', 'sagittal']) {
        const st = document.createElement('div'); st.className = 'stack';
        els[v] = document.createElement('canvas'); els[v + 'Ov'] = document.createElement('canvas');
        st.append(els[v], els[v + 'Ov']); host.append(st);
      }
      document.body.append(host);
      const [nx, ny, nz] = [64, 48, 20];
      const data = new Int16Array(nx * ny * nz).fill(-1000);
      const hm = new Float32Array(nx * ny * nz);
      for (let k = 0; k < nz; k++) for (let j = 0; j < 8; j++) for (let i = 0; i < 8; i++) {
        data[i + nx * (j + ny * k)] = 1000;     // marker at voxel i, j small
        hm[i + nx * (j + ny * k)] = 0.9;
      }
      const info = { dim: [nx, ny, nz], spacing: [1, 1, 2], vox2world: [sx, 0, 0, 0, 0, 1, 0, 0, 0, 0, 2, 0, 0, 0, 0, 1] };
      const v = new Viewer(els);
      v.setVolume(data, info);
      const px = (c, x, y) => c.getContext('2d').getImageData(x, y, 1, 1).data;
      const a = els.axial;
      // screen corners: bottom-left vs bottom-right
      res[name] = { bl: px(a, 2, a.height - 3)[0], br: px(a, a.width - 3, a.height - 3)[0], w: a.width, h: a.height };
      v.setHeatmap(hm);
      res[name].ovOn = v.views.axial.overlayPixels;
      res[name].ovAlphaAtMarker = sx > 0 ? px(els.axialOv, a.width - 3, a.height - 3)[3] : px(els.axialOv, 2, a.height - 3)[3];
      v.setOverlay({ on: false });
      res[name].ovOff = v.views.axial.overlayPixels;
      host.remove();
    }
    return res;
  });
  // RAS: i=0 is the patient's left -> screen right; j=0 is posterior -> screen bottom.
  assert.equal(out.RAS.br, 255, JSON.stringify(out));
  assert.ok(out.RAS.bl < 100); // -1000 HU in the lung window
  // LAS: i=0 is the patient's right -> screen left.
  assert.equal(out.LAS.bl, 255, JSON.stringify(out));
  assert.ok(out.LAS.br < 100);
  for (const k of ['RAS', 'LAS']) {
    assert.deepEqual([out[k].w, out[k].h], [64, 48]);
    assert.equal(out[k].ovOn, 64, 'the 8x8 hot block is drawn');
    assert.ok(out[k].ovAlphaAtMarker > 0);
    assert.equal(out[k].ovOff, 0);
  }
  assert.deepEqual(errors, []);
  await context.close();
});

test('heatmap NIfTI export keeps the input geometry (read back by the engine)', { timeout: 120000 }, async () => {
  const { context, page, requests, errors } = await openPage(chrome.browser);
  await page.goto(srv.url + '?nosw');
  assert.equal((await waitReady(page)).ready, '1');
  const first = await screenFile(page, join(SHARED_CT, 'covidctmd_P001_5mm.nii.gz'));
  assert.equal(first.state, 'done', first.error);
  const inInfo = await page.evaluate(() => window.csacApp.volumeInfo);
  // A synthetic heatmap on the input grid, exported the way the Export button does, then opened as a scan.
  await page.evaluate(async () => {
    const { heatmapNifti, gzipBlob } = await import('./export.js');
    const info = window.csacApp.volumeInfo;
    const n = info.dim[0] * info.dim[1] * info.dim[2];
    const hm = new Uint8Array(n);
    for (let i = 0; i < n; i++) hm[i] = i % 256;
    const gz = await gzipBlob(heatmapNifti(hm, info));
    const dt = new DataTransfer();
    dt.items.add(new File([gz], 'heatmap.nii.gz'));
    const input = document.getElementById('file');
    input.files = dt.files;
    delete document.body.dataset.state;
    input.dispatchEvent(new Event('change'));
  });
  await page.waitForFunction(() => ['done', 'error'].includes(document.body.dataset.state));
  const outInfo = await page.evaluate(() => window.csacApp.volumeInfo);
  assert.equal(await page.evaluate(() => document.body.dataset.state), 'done', await page.evaluate(() => document.body.dataset.error));
  assert.deepEqual(outInfo.dim, inInfo.dim);
  for (let i = 0; i < 16; i++) assert.ok(Math.abs(outInfo.vox2world[i] - inInfo.vox2world[i]) < 1e-3, `vox2world[${i}] ${outInfo.vox2world[i]} vs ${inInfo.vox2world[i]}`);
  assert.equal(outInfo.orientation, inInfo.orientation);
  assert.ok(Math.abs(outInfo.hu_max - 1) < 1e-4 && Math.abs(outInfo.hu_min) < 1e-6, `values ${outInfo.hu_min}..${outInfo.hu_max}`);
  assert.deepEqual(errors, []);
  assert.deepEqual(foreignRequests(requests, srv.origin), []);
  await context.close();
});
