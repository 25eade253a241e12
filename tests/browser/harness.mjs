// harness.mjs - shared by the browser tests: serves web/ with scripts/serve.mjs
// on a free loopback port and drives Debian's Chromium through playwright-core.
// Every request the page makes is recorded, so tests can assert privacy.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const repo = fileURLToPath(new URL('../..', import.meta.url));

export async function startServer({ isolation = true } = {}) {
  const args = [join(repo, 'scripts/serve.mjs'), '--port', '0'];
  if (!isolation) args.push('--no-isolation');
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
