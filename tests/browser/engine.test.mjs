// Proves: the page loads the wasm engine in a Worker: with COOP/COEP it gets
// the threaded `mt` build with 2+ threads and a passing SIMD self-test;
// without them it falls back to `st`; it requests nothing but its own files;
// and its CSP blocks a connection to another origin before it starts.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launch, openPage } from './harness.mjs';

let chrome;
before(async () => { chrome = await launch(); });
after(async () => { await chrome?.close(); });

for (const isolation of [true, false]) {
  test(`engine starts ${isolation ? 'with' : 'without'} cross-origin isolation`, async () => {
    const srv = await startServer({ isolation });
    try {
      const { context, page, requests, errors } = await openPage(chrome.browser);
      await page.goto(srv.url);
      await page.waitForFunction(() => document.body.dataset.ready, null, { timeout: 30000 });
      assert.equal(await page.evaluate(() => document.body.dataset.ready), '1', await page.textContent('#build'));
      assert.equal(await page.evaluate(() => crossOriginIsolated), isolation);
      const variant = await page.textContent('#variant');
      const threads = parseInt(await page.textContent('#threads'), 10);
      if (isolation) {
        assert.match(variant, /^mt/);
        assert.ok(threads >= 2, `threads ${threads}`);
      } else {
        assert.match(variant, /^st/);
        assert.equal(threads, 1);
      }
      assert.match(await page.textContent('#selftest'), /^passed/);
      assert.deepEqual(errors, []);
      const foreign = requests.filter((u) => !u.startsWith(srv.origin) && !u.startsWith('blob:') && !u.startsWith('data:'));
      assert.deepEqual(foreign, [], 'no request may leave the local server');
      await context.close();
    } finally {
      await srv.stop();
    }
  });
}

test('the Content-Security-Policy blocks connections to other origins', async () => {
  const srv = await startServer();
  try {
    const { context, page, requests } = await openPage(chrome.browser);
    const res = await page.goto(srv.url + '?nosw');
    assert.match(res.headers()['content-security-policy'], /connect-src 'self'/);
    assert.match(await page.getAttribute('meta[http-equiv="Content-Security-Policy"]', 'content'), /connect-src 'self'/);
    const out = await page.evaluate(async () => {
      const seen = [];
      document.addEventListener('securitypolicyviolation', (e) => seen.push(e.violatedDirective));
      let fetched = 'yes';
      try { await fetch('http://192.0.2.1:9/x'); } catch { fetched = 'blocked'; }
      await new Promise((r) => setTimeout(r, 100));
      return { fetched, seen };
    });
    assert.equal(out.fetched, 'blocked');
    assert.ok(out.seen.includes('connect-src'), JSON.stringify(out.seen));
    assert.deepEqual(requests.filter((u) => u.includes('192.0.2.1')), [], 'the blocked request never started');
    await context.close();
  } finally {
    await srv.stop();
  }
});
