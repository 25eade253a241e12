// worker.js - runs the wasm module off the page's main thread. Classic worker
// (Emscripten's factory is a classic script); csac-api.js comes in by dynamic
// import. Protocol: page -> {type:'init'} | {type:'screen', bytes, name};
// worker -> {type:'ready', ...} | {type:'progress', stage} | {type:'result', ...} | {type:'error', ...}.
/* global importScripts, createCsacMT, createCsacST */
const base = new URL('./', self.location.href).href;
let csac = null;

async function init() {
  // Threads need SharedArrayBuffer, which exists only in cross-origin isolated pages.
  const mt = self.crossOriginIsolated === true && typeof SharedArrayBuffer !== 'undefined';
  const variant = mt ? 'mt' : 'st';
  importScripts(`${base}csac-${variant}.js`);
  const threads = mt ? Math.max(1, Math.min(self.navigator.hardwareConcurrency || 2, 8)) : 1;
  const { Csac } = await import(`${base}csac-api.js`);
  const factory = mt ? createCsacMT : createCsacST;
  const M = await factory({
    locateFile: (f) => base + f,
    mainScriptUrlOrBlob: `${base}csac-${variant}.js`,
    csacPoolSize: threads,
  });
  csac = new Csac(M, { threads });
  const st = csac.selftest();
  return { variant, build: csac.buildInfo(), threads: csac.threads, selftest: st };
}

self.onmessage = async (ev) => {
  const msg = ev.data;
  try {
    if (msg.type === 'init') {
      self.postMessage({ type: 'ready', ...(await init()) });
    }
  } catch (e) {
    self.postMessage({ type: 'error', message: String(e && e.message ? e.message : e), status: e && e.status });
  }
};
