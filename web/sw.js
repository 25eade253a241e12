// sw.js - offline cache for the app, the wasm engine and the weights. After
// the first visit the page works with no server at all. It also adds the
// COOP/COEP headers to what it serves, so a plain static host (which sends
// none) becomes cross-origin isolated after one reload: threads on.
// Same-origin GET only; scans are never fetched, so never cached.
const CACHE = 'csac-app-v1';
const APP = [
  './', 'index.html', 'app.js', 'engine.js', 'viewer.js', 'export.js', 'style.css', 'icon.svg', 'app.webmanifest',
  'wasm/worker.js', 'wasm/csac-api.js', 'wasm/csac-mt.js', 'wasm/csac-mt.wasm', 'wasm/csac-mt.worker.js',
  'wasm/csac-st.js', 'wasm/csac-st.wasm',
];
// Cached when present (a build may ship without them).
const OPTIONAL = ['weights/csac_v1.safetensors', 'weights/csac_v1.selftest.json', 'demo/demo.nii.gz'];

let lastReport = null;

async function precache() {
  const cache = await caches.open(CACHE);
  const missing = [];
  let count = 0;
  await Promise.all([...APP, ...OPTIONAL].map(async (path) => {
    try {
      const res = await fetch(new Request(path, { cache: 'no-cache' }));
      if (res.ok) { await cache.put(path, res); count++; } else missing.push(path);
    } catch { missing.push(path); }
  }));
  lastReport = { type: 'cached', count, missing };
  return lastReport;
}

self.addEventListener('install', (ev) => {
  ev.waitUntil(precache().then(() => self.skipWaiting()));
});

self.addEventListener('activate', (ev) => {
  ev.waitUntil((async () => {
    for (const k of await caches.keys()) if (k !== CACHE) await caches.delete(k);
    await self.clients.claim();
    for (const c of await self.clients.matchAll()) if (lastReport) c.postMessage(lastReport);
  })());
});

self.addEventListener('message', (ev) => {
  if (ev.data && ev.data.type === 'status' && lastReport && ev.source) ev.source.postMessage(lastReport);
  else if (ev.data && ev.data.type === 'status' && ev.source) {
    caches.open(CACHE).then((c) => c.keys()).then((ks) => ev.source.postMessage({ type: 'cached', count: ks.length, missing: [] }));
  }
});

// COOP/COEP (+ CORP) on every response, without touching the other headers (CSP stays).
function isolate(res) {
  if (!res || res.status === 0 || res.type === 'opaque' || res.type === 'opaqueredirect') return res;
  const h = new Headers(res.headers);
  if (!h.has('Cross-Origin-Opener-Policy')) h.set('Cross-Origin-Opener-Policy', 'same-origin');
  if (!h.has('Cross-Origin-Embedder-Policy')) h.set('Cross-Origin-Embedder-Policy', 'require-corp');
  if (!h.has('Cross-Origin-Resource-Policy')) h.set('Cross-Origin-Resource-Policy', 'same-origin');
  return new Response(res.body, { status: res.status, statusText: res.statusText, headers: h });
}

async function handle(req) {
  const cache = await caches.open(CACHE);
  const url = new URL(req.url);
  const key = url.pathname.endsWith('/') ? './' : req;
  // Network first (never stale: the weights keep their name across retraining), the cache when offline.
  try {
    const res = await fetch(req);
    // Keep the cache current for files of the app; a HEAD or range request is not cached.
    if (res.ok && req.method === 'GET' && !req.headers.has('range') && res.status === 200) {
      const known = APP.concat(OPTIONAL).some((p) => url.pathname.endsWith(p === './' ? '/' : `/${p}`));
      if (known) cache.put(key, res.clone());
    }
    return res;
  } catch (e) {
    const hit = await cache.match(key, { ignoreSearch: true, ignoreMethod: true });
    if (hit) return hit;
    throw e;
  }
}

self.addEventListener('fetch', (ev) => {
  const req = ev.request;
  const url = new URL(req.url);
  if (url.origin !== self.location.origin || (req.method !== 'GET' && req.method !== 'HEAD')) return;
  ev.respondWith(handle(req).then(isolate));
});
