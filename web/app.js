// app.js - page side: starts the Worker (the wasm module never runs on the
// page's thread) and shows what it reports.
const $ = (id) => document.getElementById(id);
const worker = new Worker('wasm/worker.js');
worker.onmessage = (ev) => {
  const m = ev.data;
  if (m.type === 'ready') {
    $('build').textContent = m.build;
    $('variant').textContent = m.variant === 'mt' ? 'mt (SIMD + threads)' : 'st (SIMD, single thread: page not cross-origin isolated)';
    $('simd').textContent = `${m.selftest.simdLanes} lanes`;
    $('threads').textContent = `${m.threads} (${m.selftest.threadsUsed} used by the self-test)`;
    $('selftest').textContent = m.selftest.maxAbsErr < 1e-4 ? `passed (max error ${m.selftest.maxAbsErr.toExponential(1)})` : 'FAILED';
    document.body.dataset.ready = '1';
  } else if (m.type === 'error') {
    $('build').textContent = `error: ${m.message}`;
    document.body.dataset.ready = 'error';
  }
};
worker.postMessage({ type: 'init' });
