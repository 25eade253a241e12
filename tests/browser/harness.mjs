// harness.mjs - shared by the browser tests: serves web/ with scripts/serve.mjs
// on a free loopback port and drives Debian's Chromium through playwright-core.
// Every request the page makes is recorded, so tests can assert privacy.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const repo = fileURLToPath(new URL('../..', import.meta.url));

export async function startServer({ isolation = true, root = null } = {}) {
  const args = [join(repo, 'scripts/serve.mjs'), '--port', '0'];
  if (!isolation) args.push('--no-isolation');
  if (root) args.push('--root', root);
  const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise((res, rej) => {
    let out = '';
    proc.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/http:\/\/127\.0\.0\.1:\d+\//);
      if (m) res(m[0]);
    });
    proc.on('exit', (c) => rej(new Error(`server exited ${c}`)));
  });
  return { url, origin: new URL(url).origin, stop: () => new Promise((r) => { proc.on('exit', r); proc.kill(); }) };
}

export async function launch() {
  const profile = mkdtempSync(join(tmpdir(), 'csac-chromium-'));
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const close = async () => { await browser.close(); rmSync(profile, { recursive: true, force: true }); };
  return { browser, close };
}

// A page whose every request (page, workers, service worker) is recorded.
export async function openPage(browser) {
  const context = await browser.newContext();
  const requests = [];
  context.on('request', (r) => requests.push(r.url()));
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  return { context, page, requests, errors };
}

// ---- shared by the app tests ----
export const SHARED_CT = process.env.CSAC_SHARED_CT || join(repo, '..', 'shared', 'ct');
export const REPO = repo;

// What the engine claims to support, from the files that say so. A test that
// needs a claimed feature fails when it is missing; one that needs an
// unclaimed feature reports "waiting for the engine" (a named skip).
export function engineClaims() {
  const exportsTxt = readFileSync(join(repo, 'wasm/exports.txt'), 'utf8');
  return {
    model: existsSync(join(repo, 'weights/csac_v1.safetensors')),
    heatmap: /^_csac_heatmap$/m.test(exportsTxt) && /^_csac_heatmap_resample$/m.test(exportsTxt),
  };
}

// Requests that went anywhere but the local server (blob:/data: stay in the page).
export function foreignRequests(requests, origin) {
  return requests.filter((u) => !u.startsWith(origin + '/') && !u.startsWith('blob:') && !u.startsWith('data:'));
}

export async function waitReady(page, timeout = 60000) {
  await page.waitForFunction(() => document.body.dataset.ready, null, { timeout });
  return page.evaluate(() => ({ ready: document.body.dataset.ready, ...window.csacApp.engineInfo }));
}

// Chooses a file through the file input and waits until the app settles.
export async function screenFile(page, path, timeout = 240000) {
  await page.evaluate(() => { delete document.body.dataset.state; });
  await page.setInputFiles('#file', path);
  await page.waitForFunction(() => ['done', 'error', 'cancelled'].includes(document.body.dataset.state), null, { timeout });
  return page.evaluate(() => ({
    state: document.body.dataset.state,
    error: document.body.dataset.error || null,
    volume: document.body.dataset.volume || null,
    probability: window.csacApp.result ? window.csacApp.result.probability : undefined,
    modelError: window.csacApp.result ? window.csacApp.result.modelError || null : null,
    heatmap: !!(window.csacApp.result && window.csacApp.result.heatmap),
    heatmapError: window.csacApp.result ? window.csacApp.result.heatmapError || null : null,
  }));
}

// Non-transparent pixels of the axial overlay canvas (what the user sees).
export function overlayPixels(page) {
  return page.evaluate(() => {
    const c = document.getElementById('axial-ov');
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
    return n;
  });
}

// Random-weight model (tests/browser/make_fixture.py), cached in the temp dir
// by a hash of the scripts that define it: {dir, logit}. ~5-20 s the first time.
export function modelFixture({ wrongSelftest = false } = {}) {
  const h = createHash('sha256');
  for (const f of ['tests/browser/make_fixture.py', 'train/csacnet.py', 'train/export.py']) h.update(readFileSync(join(repo, f)));
  const dir = join(tmpdir(), `csac-fixture-${h.digest('hex').slice(0, 12)}${wrongSelftest ? '-wrong' : ''}`);
  if (!existsSync(join(dir, 'csac_v1.selftest.json'))) {
    execFileSync('/usr/bin/python3', [join(repo, 'tests/browser/make_fixture.py'), dir, ...(wrongSelftest ? ['--wrong-selftest'] : [])], { stdio: 'ignore' });
  }
  return { dir, ...JSON.parse(readFileSync(join(dir, 'csac_v1.selftest.json'), 'utf8')) };
}

// A server root that is web/ with weights/ replaced by dir (symlinks only).
export function rootWithWeights(dir) {
  const root = mkdtempSync(join(tmpdir(), 'csac-root-'));
  for (const e of readdirSync(join(repo, 'web'))) if (e !== 'weights') symlinkSync(join(repo, 'web', e), join(root, e));
  symlinkSync(dir, join(root, 'weights'));
  return { root, remove: () => rmSync(root, { recursive: true, force: true }) };
}
