// screenshots.mjs - the app's main states as small PNGs for the docs:
//   node tests/browser/screenshots.mjs [--out docs/img]
// app_start.png (engine ready), app_progress.png (a scan running),
// app_result.png (scan + result card), app_heatmap.png (overlay; only when
// the engine computes heatmaps), app_error.png (a malformed file).
// Uses weights/csac_v1.safetensors when it exists, else the random-weight
// test model (the result then says so in its caption: NOT a real result).
// PNGs are scaled and reduced to a palette by Pillow (/usr/bin/python3) until
// each is under 150 KB.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, launch, openPage, waitReady, screenFile, engineClaims, modelFixture, rootWithWeights, SHARED_CT, REPO } from './harness.mjs';

const args = process.argv.slice(2);
const out = join(REPO, args.includes('--out') ? args[args.indexOf('--out') + 1] : 'docs/img');
const SCAN = join(SHARED_CT, 'covidctmd_P001_5mm.nii.gz');
const real = engineClaims().model;
const root = real ? null : rootWithWeights(modelFixture().dir);
const srv = await startServer({ root: root && root.root });
const chrome = await launch();
const tmp = mkdtempSync(join(tmpdir(), 'csac-shots-'));
const shots = [];
async function shot(page, name) {
  const raw = join(tmp, name);
  await page.screenshot({ path: raw });
  const dst = join(out, name);
  execFileSync('/usr/bin/python3', ['-c', `
import io, sys
from PIL import Image
src = Image.open(sys.argv[1]).convert('RGB')
for scale, colors in ((0.75, 128), (0.75, 96), (0.75, 64), (0.66, 64), (0.6, 48)):
    im = src.resize((int(src.width * scale), int(src.height * scale)), Image.LANCZOS)
    im = im.quantize(colors=colors, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    b = io.BytesIO(); im.save(b, 'PNG', optimize=True)
    if b.tell() < 145 * 1024: break
open(sys.argv[2], 'wb').write(b.getvalue())
`, raw, dst]);
  shots.push(`${name} ${(statSync(dst).size / 1024).toFixed(0)} KB`);
}
try {
  const { page } = await openPage(chrome.browser);
  await page.setViewportSize({ width: 1280, height: 860 });
  await page.goto(srv.url + '?nosw');
  await waitReady(page, 120000);
  await shot(page, 'app_start.png');

  await page.evaluate(() => { delete document.body.dataset.state; });
  await page.setInputFiles('#file', join(SHARED_CT, 'covidctmd_P001.nii.gz'));
  await page.waitForFunction(() => /Running the network|Preprocessing|Reading the NIfTI/.test(document.getElementById('stage').textContent), null, { timeout: 120000, polling: 50 });
  await shot(page, 'app_progress.png');
  await page.waitForFunction(() => ['done', 'error'].includes(document.body.dataset.state), null, { timeout: 240000 });

  const r = await screenFile(page, SCAN);
  await page.evaluate(() => window.scrollTo(0, 0));
  if (r.state !== 'done') throw new Error(r.error);
  if (!real) {
    await page.evaluate(() => {
      document.getElementById('scan-name').textContent += ' — RANDOM TEST WEIGHTS, not a real result';
    });
  }
  await shot(page, 'app_result.png');
  if (r.heatmap) {
    await page.click('#goto-max');
    await page.evaluate(() => window.scrollTo(0, 0));
    await shot(page, 'app_heatmap.png');
  }
  const bad = join(tmp, 'broken_scan.nii.gz');
  writeFileSync(bad, Buffer.from('not a NIfTI file\n'.repeat(40)));
  await screenFile(page, bad);
  await shot(page, 'app_error.png');
  console.log(`wrote to ${out}: ${shots.join(', ')}${real ? '' : ' (random test weights)'}${r.heatmap ? '' : '; no heatmap yet: app_heatmap.png not made'}`);
  if (!existsSync(join(out, 'app_heatmap.png'))) process.exitCode = 0;
} finally {
  await chrome.close();
  await srv.stop();
  root?.remove();
  rmSync(tmp, { recursive: true, force: true });
}
