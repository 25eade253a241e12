// app.js - page side of the screening tool. The wasm engine runs in a Worker
// (engine.js / wasm/worker.js); this thread only reads the chosen file, draws
// and reacts, so the page never freezes. Nothing is uploaded anywhere.
import { Engine } from './engine.js';
import { Viewer, drawLegend } from './viewer.js';
import { heatmapNifti, gzipBlob, sha256Hex, download, baseName, toUint8 } from './export.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const fmtMs = (ms) => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${Math.round(ms)} ms`);
const fmtMB = (b) => `${(b / 1e6).toFixed(1)} MB`;
const fmtSize = (b) => (b >= 1e5 ? fmtMB(b) : `${(b / 1e3).toFixed(1)} kB`);

// Where each stage sits on the one progress bar (start, end).
const STAGES = {
  reading: [0, 0.05], decompressing: [0.05, 0.4], parsing: [0.3, 0.4], preprocessing: [0.4, 0.5],
  network: [0.5, 0.8], heatmap: [0.8, 1],
};
const STAGE_LABEL = {
  engine: 'Starting the engine', model: 'Loading the model weights', selftest: 'Running the self-test',
  reading: 'Reading the file', decompressing: 'Decompressing and reading the NIfTI volume', parsing: 'Reading the NIfTI volume',
  preprocessing: 'Preprocessing', network: 'Running the network', heatmap: 'Computing the heatmap',
};

// Operating points when the model card gives none: thresholds only.
const DEFAULT_THRESHOLDS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9];

const S = {
  engineInfo: null, file: null, result: null, volumeInfo: null, warnings: [],
  t0: 0, timings: {}, scores: null, busy: false, sw: 'not registered',
};
window.csacApp = S; // read by the tests and the benchmark

// ---------- engine ----------
const budget = {};
for (const [k, v] of params) if (k.startsWith('budget.')) budget[k.slice(7)] = Number(v);
const engine = new Engine({
  budget,
  // The C reader inflates .gz (measured faster here than the browser's DecompressionStream);
  // ?gunzip=browser streams the file through DecompressionStream instead (for comparisons).
  jsGunzip: params.get('gunzip') === 'browser',
  mockHeatmap: params.has('mockHeatmap'), // test hook: a stand-in heatmap (see wasm/worker.js)
  onReady: showEngine,
  onProgress: (m) => setStage(m.stage, m.fraction),
  onFatal: (e) => {
    if (!S.busy) showError(e.message, e);
    if (!engine.info) { $('build').textContent = `error: ${e.message}`; document.body.dataset.ready = 'error'; }
  },
});

S.engine = engine; // tests adjust the stage budgets through this

function showEngine(m) {
  S.engineInfo = m;
  $('build').textContent = m.build;
  $('variant').textContent = m.variant === 'mt'
    ? 'mt (SIMD + threads)'
    : `st (SIMD, single thread${m.crossOriginIsolated ? '' : ': page not cross-origin isolated'})`;
  $('simd').textContent = m.selftest.simdLanes ? `${m.selftest.simdLanes} lanes` : '–';
  $('threads').textContent = `${m.threads} (${m.selftest.threadsUsed ?? '?'} used by the self-test; ${m.hardwareConcurrency ?? '?'} logical CPUs)`;
  const nt = m.networkSelftest;
  let st = m.selftest.ok ? `passed (max error ${Number(m.selftest.maxAbsErr).toExponential(1)})` : `FAILED (${m.selftest.error || m.selftest.maxAbsErr})`;
  if (nt) st += nt.ok ? (nt.compared ? `; network matches the stored answer (|Δlogit| ${nt.absErr.toExponential(1)})` : '; network ran (no stored answer to compare)') : '; network self-test FAILED';
  if (m.fallback.length) st += `; fallback: ${m.fallback.join('; ')}`;
  $('selftest').textContent = st;
  $('model').textContent = m.model.loaded ? `${modelVersion()} (${fmtMB(m.model.bytes)})` : `not loaded: ${m.model.error}`;
  $('memory').textContent = memoryText(m.memoryBytes);
  $('stage-times').textContent = Object.entries(m.timings_ms).map(([k, v]) => `${k} ${fmtMs(v)}`).join(', ');
  $('coi-reload').hidden = crossOriginIsolated || !navigator.serviceWorker?.controller;
  fillThresholds();
  document.body.dataset.ready = m.selftest.ok ? '1' : 'selftest-failed';
  document.body.dataset.variant = m.variant;
  if (!S.busy) setStage(null);
  if (!m.model.loaded) note(`Model unavailable: ${m.model.error}. Scans can still be viewed.`);
}

function memoryText(wasmBytes) {
  const js = performance.memory ? `; page JS heap ${fmtMB(performance.memory.usedJSHeapSize)}` : '';
  const dev = navigator.deviceMemory ? `; device ~${navigator.deviceMemory} GB` : '';
  return `wasm heap ${fmtMB(wasmBytes)}${js}${dev}`;
}

function modelVersion() {
  const m = S.engineInfo?.model;
  if (!m || !m.loaded) return null;
  const meta = m.meta || {};
  return meta.version || meta.model_version || meta.name || (m.info ? m.info.slice(0, 80) : 'csac_v1');
}

// ---------- progress / messages ----------
function setStage(stage, fraction) {
  const label = $('stage');
  const bar = $('progress');
  // the list under the bar: stages passed in this job get a tick (parsing a plain .nii counts as reading)
  const shown = stage === 'parsing' ? 'reading' : stage;
  if (stage && STAGES[stage]) (S.seen || (S.seen = new Set())).add(shown);
  for (const li of $('stages').children) {
    const st = li.dataset.stage;
    li.className = !stage || !STAGES[stage] ? '' : st === shown ? 'current' : S.seen?.has(st) ? 'done' : '';
  }
  if (!stage) {
    bar.value = S.result ? 1 : 0;
    label.textContent = S.engineInfo ? (S.result ? 'Done.' : 'Ready. Open or drop a scan.') : 'Starting the engine…';
    document.body.classList.remove('busy');
    return;
  }
  const span = STAGES[stage];
  if (span) bar.value = span[0] + (span[1] - span[0]) * (fraction ?? 0);
  else bar.removeAttribute('value');
  label.textContent = `${STAGE_LABEL[stage] || stage}${fraction != null && fraction < 1 ? ` ${Math.round(fraction * 100)}%` : ''}…`;
}

function showError(message, e = {}) {
  const el = $('error');
  el.replaceChildren();
  const p = document.createElement('p');
  p.textContent = message;
  el.append(p);
  if (e.status || e.stage) {
    const d = document.createElement('p');
    d.className = 'muted small-text';
    d.textContent = [e.stage && `stage: ${e.stage}`, e.status && `code: ${e.status}`].filter(Boolean).join(', ');
    el.append(d);
  }
  el.hidden = false;
  document.body.dataset.error = message;
}
function clearError() { $('error').hidden = true; delete document.body.dataset.error; }
function note(text) { const n = $('notes'); n.textContent = text; n.hidden = !text; }

// ---------- screening ----------
async function screenFile(file) {
  if (!file) return;
  if (engine.busy) await engine.cancel('replaced by a new file').catch(() => {});
  S.t0 = performance.now();
  S.busy = true;
  S.file = file; S.result = null; S.scores = null; S.volumeInfo = null; S.warnings = [];
  S.timings = {};
  S.seen = new Set();
  document.body.dataset.state = 'busy';
  for (const k of ['result', 'heatmap', 'heatmapShown', 'settled']) delete document.body.dataset[k];
  clearError(); note('');
  $('cancel').disabled = false;
  $('result').hidden = true;
  setExports();
  // The previous scan goes away with its result: what is shown is always what the card describes.
  viewer.clear();
  $('views').hidden = true; $('controls').hidden = true; $('empty').hidden = false;
  $('empty-msg').textContent = `Opening ${file.name} (${fmtSize(file.size)})…`;
  $('scan-name').textContent = '';
  document.body.classList.add('busy');
  try {
    setStage('reading', 0);
    const { result, heatmap } = await engine.screen(file, file.name, {
      onProgress: (m) => setStage(m.stage, m.fraction),
      onVolume: showVolume,
      onResult: showResult,
      onHeatmapSlab: showHeatmapSlab,
    });
    finishHeatmap(result, heatmap);
    document.body.dataset.state = 'done';
  } catch (e) {
    if (e.cancelled) {
      if (!viewer.vol) $('empty-msg').textContent = 'Cancelled. Open or drop a scan (.nii / .nii.gz).';
      note(`Cancelled (${file.name}).`);
      document.body.dataset.state = 'cancelled';
    } else {
      const where = ['reading', 'decompressing', 'parsing'].includes(e.stage) ? 'Could not read' : 'Could not screen';
      showError(`${where} ${file.name}: ${e.message}`, e);
      if (!viewer.vol) $('empty-msg').textContent = 'Open or drop another scan (.nii / .nii.gz).';
      document.body.dataset.state = 'error';
    }
  } finally {
    S.busy = false;
    $('cancel').disabled = true;
    setStage(null);
    setExports();
  }
}

function showVolume(m) {
  S.volumeInfo = m.info;
  S.warnings = m.warnings || [];
  S.timings.volume_shown = performance.now() - S.t0;
  $('scan-name').textContent = `– ${S.file.name} (${fmtSize(S.file.size)})`;
  const data = m.volume || new Float32Array(m.volumeShared.buffer, m.volumeShared.byteOffset, m.volumeShared.length);
  const tr = performance.now();
  viewer.setVolume(data, m.info);
  S.timings.draw_volume = performance.now() - tr;
  $('empty').hidden = true;
  $('views').hidden = false;
  $('controls').hidden = false;
  const sl = $('slice');
  sl.max = String(viewer.nSlices - 1);
  sl.value = String(viewer.slice);
  $('hm-status').textContent = 'heatmap pending…';
  drawStrip();
  document.body.dataset.volume = m.info.dim.join('x');
}

// The probability: the heatmap may still be on its way (heatmap-slab messages).
function showResult(r) {
  S.result = r;
  Object.assign(S.timings, r.timings_ms);
  if (r.probability == null) {
    // the result card stays hidden: the scan's warnings go in the note
    const w = r.warnings && r.warnings.length ? ` Warnings about this scan: ${r.warnings.join('; ')}.` : '';
    note(`Scan shown without a result: ${r.modelError}.${w}`);
  } else {
    $('result').hidden = false;
    $('prob').textContent = `${(r.probability * 100).toFixed(1)} %`;
    updateDecision();
  }
  if (!r.heatmapPending) $('hm-status').textContent = `heatmap unavailable${r.heatmapError ? `: ${r.heatmapError}` : ''}`;
  requestAnimationFrame(() => {
    S.timings.probability_shown = performance.now() - S.t0;
    renderTimings(S.timings);
    document.body.dataset.result = r.probability == null ? 'no-model' : 'ok';
  });
  const v = S.volumeInfo;
  $('lungs').textContent = !v || v.lung_ml == null ? ''
    : v.lung_ml > 0 ? `Lungs found: ${(v.lung_ml / 1000).toFixed(1)} L of aerated lung; the model grid is scaled ×${v.grid_zoom.toFixed(2)} so that they fill it as the training median lungs do.`
      : 'No lungs found: the model grid is centred on the body and not scaled.';
  const ul = $('warnings');
  ul.replaceChildren(...(r.warnings || []).map((w) => { const li = document.createElement('li'); li.textContent = w; return li; }));
  if (r.memoryBytes) $('memory').textContent = memoryText(r.memoryBytes);
  setExports();
}

// One slab of heatmap slices has arrived: the overlay shows it at once.
function showHeatmapSlab(m) {
  const r = S.result;
  if (!r || !viewer.vol) return;
  const [nx, ny, nz] = S.volumeInfo.dim;
  if (!r.heatmap) {
    if (m.shared) {
      r.heatmap = new Float32Array(m.shared.buffer, m.shared.byteOffset, m.shared.length);
      r.heatmapValid = new Uint8Array(nz); // slices not yet computed hold no values
    } else {
      r.heatmap = new Uint8Array(nx * ny * nz);
    }
    if (m.data) r.heatmap.set(m.data, m.k0 * nx * ny);
    if (r.heatmapValid) r.heatmapValid.fill(1, m.k0, m.k1);
    viewer.setHeatmap(r.heatmap, r.heatmapValid || null); // draws the first slab (it holds the displayed slice)
    requestAnimationFrame(() => {
      // "heatmap shown": the frame with the first overlay (the displayed slice) is painted
      S.timings.heatmap_shown = performance.now() - S.t0;
      S.timings.total_to_shown = S.timings.heatmap_shown;
      renderTimings(S.timings);
      document.body.dataset.heatmapShown = '1';
    });
    return;
  }
  if (m.data) r.heatmap.set(m.data, m.k0 * nx * ny);
  if (r.heatmapValid) r.heatmapValid.fill(1, m.k0, m.k1);
  // slabs can arrive faster than frames: one overlay redraw per frame
  if (!S.overlayFrame) S.overlayFrame = requestAnimationFrame(() => { S.overlayFrame = 0; viewer.render(true); });
}

// What the overlay is, in words, for the JSON report (csac_heatmap_default_layer / _mode).
function heatmapKind(m) {
  if (!m) return null;
  if (m.mode === 2) return `${m.layer}: ground-glass score per cell (lesion head), not normalised`;
  return `${m.layer}: ${m.mode === 0 ? 'Grad-CAM' : 'channel-mean activation'}, divided by its maximum`;
}

function finishHeatmap(r, h) {
  if (h && h.scores && r.heatmap) {
    S.scores = h.scores;
    r.heatmapMap = h.map || null;
    viewer.setHeatmap(r.heatmap, null); // complete
    $('hm-status').textContent = S.engineInfo?.capabilities?.mockHeatmap ? 'TEST MODE: stand-in heatmap (?mockHeatmap)' : '';
    $('goto-max').disabled = false;
  } else {
    if (r && r.heatmap) r.heatmap = null;
    viewer.setHeatmap(null);
    $('goto-max').disabled = true;
    const why = (h && h.heatmapError) || (r && r.heatmapError);
    $('hm-status').textContent = `heatmap unavailable${why ? `: ${why}` : ''}`;
  }
  if (h) Object.assign(S.timings, h.timings_ms);
  if (h && h.memoryBytes) $('memory').textContent = memoryText(h.memoryBytes);
  drawStrip();
  requestAnimationFrame(() => {
    S.timings.all_done = performance.now() - S.t0;
    if (S.timings.total_to_shown == null) S.timings.total_to_shown = S.timings.probability_shown ?? S.timings.all_done;
    renderTimings(S.timings);
    document.body.dataset.heatmap = r && r.heatmap ? '1' : '0';
    document.body.dataset.settled = '1';
  });
}

function renderTimings(T) {
  const order = [['file', 'read file'], ['decompress', 'decompress'], ['read', 'NIfTI'], ['to_page', 'to page'],
    ['preprocess', 'preprocess'], ['forward', 'network'], ['heatmap', 'heatmap (all slices)'],
    ['probability_shown', 'to probability'], ['heatmap_shown', 'to heatmap shown'], ['all_done', 'total']];
  const dl = $('timings');
  dl.replaceChildren();
  for (const [k, label] of order) {
    if (T[k] == null) continue;
    const dt = document.createElement('dt'); dt.textContent = label;
    const dd = document.createElement('dd'); dd.textContent = fmtMs(T[k]);
    dl.append(dt, dd);
  }
  $('stage-times').textContent = order.filter(([k]) => T[k] != null).map(([k, l]) => `${l} ${fmtMs(T[k])}`).join(', ');
}

// ---------- operating point ----------
function operatingPoints() {
  const meta = S.engineInfo?.model?.meta;
  let ops = meta && meta.operating_points;
  if (typeof ops === 'string') { try { ops = JSON.parse(ops); } catch { ops = null; } }
  if (Array.isArray(ops) && ops.length) {
    return ops.map((o) => ({ threshold: Number(o.threshold), sensitivity: o.sensitivity, specificity: o.specificity, source: 'model card' }));
  }
  return DEFAULT_THRESHOLDS.map((t) => ({ threshold: t }));
}

function fillThresholds() {
  const sel = $('threshold');
  const prev = Number(sel.value || params.get('threshold') || 0.5);
  const ops = operatingPoints();
  sel.replaceChildren(...ops.map((o) => {
    const opt = document.createElement('option');
    opt.value = String(o.threshold);
    const ss = o.sensitivity != null ? ` (sens. ${pct(o.sensitivity)}, spec. ${pct(o.specificity)})` : '';
    opt.textContent = `${o.threshold.toFixed(2)}${ss}`;
    return opt;
  }));
  const best = ops.reduce((a, o) => (Math.abs(o.threshold - prev) < Math.abs(a.threshold - prev) ? o : a), ops[0]);
  sel.value = String(best.threshold);
  updateDecision();
}
const pct = (v) => (v == null ? '–' : `${(Number(v) <= 1 ? Number(v) * 100 : Number(v)).toFixed(1)} %`);

function currentOp() {
  const t = Number($('threshold').value || 0.5);
  return operatingPoints().find((o) => o.threshold === t) || { threshold: t };
}

function updateDecision() {
  const op = currentOp();
  $('op-desc').textContent = op.sensitivity != null
    ? `At this threshold the model card gives sensitivity ${pct(op.sensitivity)} and specificity ${pct(op.specificity)}.`
    : 'The model card gives no sensitivity/specificity for this model yet.';
  const r = S.result;
  const el = $('decision');
  if (!r || r.probability == null) { el.textContent = '–'; el.className = 'decision'; return; }
  const pos = r.probability >= op.threshold;
  el.textContent = pos ? `Positive at threshold ${op.threshold.toFixed(2)}: findings suggest COVID-19 pneumonia` : `Negative at threshold ${op.threshold.toFixed(2)}`;
  el.className = `decision ${pos ? 'pos' : 'neg'}`;
}

// ---------- viewer ----------
const viewer = new Viewer({
  axial: $('axial'), axialOv: $('axial-ov'), coronal: $('coronal'), coronalOv: $('coronal-ov'),
  sagittal: $('sagittal'), sagittalOv: $('sagittal-ov'),
});
viewer.onChange = () => {
  $('slice').value = String(viewer.slice);
  $('slice-out').textContent = `${viewer.slice + 1} / ${viewer.nSlices}`;
  $('wl-out').textContent = `L ${viewer.level} / W ${viewer.window}`;
  for (const b of document.querySelectorAll('.wl')) b.setAttribute('aria-pressed', String(Number(b.dataset.w) === viewer.window && Number(b.dataset.l) === viewer.level));
  document.body.dataset.overlayPixels = String(viewer.views?.axial?.overlayPixels ?? 0);
  drawStripCursor();
};
drawLegend($('legend'));

function drawStrip() {
  const c = $('strip');
  const n = viewer.nSlices || 1;
  c.width = Math.max(n, 2);
  const ctx = c.getContext('2d');
  ctx.clearRect(0, 0, c.width, c.height);
  const s = S.scores;
  if (s && s.length === n) {
    let max = 0;
    for (const v of s) max = Math.max(max, v);
    ctx.fillStyle = '#ff8c00';
    for (let k = 0; k < n; k++) {
      const h = max > 0 ? (s[k] / max) * (c.height - 2) : 0;
      ctx.fillRect(k, c.height - h, 1, h);
    }
  }
  S.stripImage = ctx.getImageData(0, 0, c.width, c.height);
  drawStripCursor();
}
function drawStripCursor() {
  const c = $('strip');
  if (!S.stripImage || S.stripImage.width !== c.width) return;
  const ctx = c.getContext('2d');
  ctx.putImageData(S.stripImage, 0, 0);
  ctx.fillStyle = '#6cb6ff';
  ctx.fillRect(viewer.slice, 0, 1, c.height);
}
function mostSuspicious() {
  const s = S.scores;
  if (!s) return -1;
  let best = 0;
  for (let k = 1; k < s.length; k++) if (s[k] > s[best]) best = k;
  return best;
}

// pointer on the axial view: drag = window/level, click = read value
{
  const ax = $('axial');
  let drag = null;
  ax.addEventListener('pointerdown', (e) => {
    if (!viewer.vol) return;
    ax.setPointerCapture(e.pointerId);
    drag = { x: e.clientX, y: e.clientY, w: viewer.window, l: viewer.level };
  });
  ax.addEventListener('pointermove', (e) => {
    if (!viewer.vol) return;
    const r = ax.getBoundingClientRect();
    const x = Math.floor(((e.clientX - r.left) / r.width) * ax.width), y = Math.floor(((e.clientY - r.top) / r.height) * ax.height);
    if (x >= 0 && y >= 0 && x < ax.width && y < ax.height) {
      const c = viewer.voxelAt('axial', x, y);
      const v = viewer.valueAt(c);
      $('readout').textContent = `voxel (${c.join(', ')})  ${Math.round(v.hu)} HU${v.hm != null ? `  heatmap ${v.hm.toFixed(2)}` : ''}`;
    }
    if (drag) viewer.setWindow(drag.w + (e.clientX - drag.x) * 4, drag.l + (e.clientY - drag.y) * 2);
  });
  ax.addEventListener('pointerup', () => { drag = null; });
  ax.addEventListener('wheel', (e) => {
    if (!viewer.vol) return;
    e.preventDefault();
    viewer.setSlice(viewer.slice + (e.deltaY > 0 ? -1 : 1));
  }, { passive: false });
  for (const name of ['coronal', 'sagittal']) {
    const c = $(name);
    c.addEventListener('click', (e) => {
      if (!viewer.vol) return;
      const r = c.getBoundingClientRect();
      viewer.pick(name, Math.floor(((e.clientX - r.left) / r.width) * c.width), Math.floor(((e.clientY - r.top) / r.height) * c.height));
    });
  }
  const strip = $('strip');
  strip.addEventListener('click', (e) => {
    const r = strip.getBoundingClientRect();
    viewer.setSlice(Math.floor(((e.clientX - r.left) / r.width) * strip.width));
  });
  strip.addEventListener('keydown', (e) => {
    const d = { ArrowLeft: -1, ArrowRight: 1, ArrowDown: -1, ArrowUp: 1 }[e.key];
    if (d) { e.preventDefault(); viewer.setSlice(viewer.slice + d); }
  });
}

$('slice').addEventListener('input', (e) => viewer.setSlice(Number(e.target.value)));
for (const b of document.querySelectorAll('.wl')) b.addEventListener('click', () => viewer.setWindow(Number(b.dataset.w), Number(b.dataset.l)));
$('ov-on').addEventListener('change', (e) => viewer.setOverlay({ on: e.target.checked }));
$('ov-opacity').addEventListener('input', (e) => viewer.setOverlay({ opacity: Number(e.target.value) }));
$('goto-max').addEventListener('click', () => { const k = mostSuspicious(); if (k >= 0) viewer.setSlice(k); });
$('threshold').addEventListener('change', updateDecision);

// keyboard: slice keys work whenever focus is not in a form field
document.addEventListener('keydown', (e) => {
  const t = e.target;
  const inField = t instanceof HTMLInputElement || t instanceof HTMLSelectElement || t instanceof HTMLTextAreaElement;
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  if (e.key === 'Escape' && S.busy) { e.preventDefault(); $('cancel').click(); return; }
  if (inField || t.id === 'strip') return;
  if (e.key === 'o' || e.key === 'O') { e.preventDefault(); $('file').click(); return; }
  if (!viewer.vol) return;
  const steps = { ArrowUp: 1, ArrowDown: -1, ArrowRight: 1, ArrowLeft: -1, PageUp: 10, PageDown: -10 };
  if (e.key in steps && (t === document.body || t.tagName === 'CANVAS' || t.tagName === 'BUTTON')) {
    e.preventDefault(); viewer.setSlice(viewer.slice + steps[e.key]);
  } else if (e.key === 'Home' && t.tagName === 'CANVAS') { viewer.setSlice(0); }
  else if (e.key === 'End' && t.tagName === 'CANVAS') { viewer.setSlice(viewer.nSlices - 1); }
  else if (e.key === 's' || e.key === 'S') { $('goto-max').click(); }
  else if (e.key === 'h' || e.key === 'H') { const c = $('ov-on'); c.checked = !c.checked; viewer.setOverlay({ on: c.checked }); }
  else if (e.key === '1') viewer.setWindow(1500, -600);
  else if (e.key === '2') viewer.setWindow(400, 40);
});

// ---------- file input, drop, demo, cancel ----------
$('file').addEventListener('change', (e) => { const f = e.target.files[0]; e.target.value = ''; screenFile(f); });
$('cancel').addEventListener('click', () => { if (engine.busy) engine.cancel(); });
{
  let depth = 0;
  const drop = $('drop');
  const hasFiles = (e) => e.dataTransfer && Array.from(e.dataTransfer.types || []).includes('Files');
  window.addEventListener('dragenter', (e) => { if (!hasFiles(e)) return; e.preventDefault(); depth++; drop.hidden = false; });
  window.addEventListener('dragover', (e) => { if (hasFiles(e)) e.preventDefault(); });
  window.addEventListener('dragleave', () => { if (--depth <= 0) { depth = 0; drop.hidden = true; } });
  window.addEventListener('drop', (e) => {
    e.preventDefault();
    depth = 0; drop.hidden = true;
    const files = e.dataTransfer?.files;
    if (files && files.length) {
      screenFile(files[0]).then(() => { if (files.length > 1) note(`${files.length} files dropped: only ${files[0].name} was screened (one at a time).`); });
    }
  });
}

const DEMO_URL = 'demo/demo.nii.gz';
async function setupDemo() {
  const b = $('demo');
  try {
    const r = await fetch(DEMO_URL, { method: 'HEAD' });
    if (!r.ok) return;
    b.disabled = false;
    b.title = 'Load a synthetic chest CT made by the project\'s generator (ships with the app)';
    b.addEventListener('click', async () => {
      b.disabled = true;
      try {
        const blob = await (await fetch(DEMO_URL)).blob();
        await screenFile(new File([blob], 'demo.nii.gz'));
      } catch (e) {
        showError(`Could not load the demo scan: ${e.message}`);
      } finally { b.disabled = false; }
    });
  } catch { /* offline without a cached demo: leave the button disabled */ }
}

// ---------- exports ----------
function setExports() {
  const r = S.result;
  $('exp-nifti').disabled = !(r && r.heatmap) || S.busy;
  $('exp-png').disabled = !viewer.vol || S.busy;
  $('exp-json').disabled = !(r && S.file) || S.busy;
}
$('exp-png').addEventListener('click', () => {
  const r = S.result;
  const cap = `${S.file?.name ?? ''}  slice ${viewer.slice + 1}/${viewer.nSlices}  L${viewer.level}/W${viewer.window}` +
    (r && r.probability != null ? `  p=${r.probability.toFixed(3)}` : '') + '  research software, not for diagnosis';
  viewer.composite(cap).toBlob((b) => download(b, `${baseName(S.file?.name)}_slice${viewer.slice + 1}.png`), 'image/png');
});
$('exp-nifti').addEventListener('click', async () => {
  const r = S.result;
  const nii = heatmapNifti(toUint8(r.heatmap), S.volumeInfo, `CSAC-Net heatmap p=${r.probability?.toFixed(4)}`);
  const gz = await gzipBlob(nii);
  download(gz || nii, `${baseName(S.file.name)}_heatmap.nii${gz ? '.gz' : ''}`);
});
$('exp-json').addEventListener('click', async () => {
  download(new Blob([JSON.stringify(await report(), null, 2) + '\n'], { type: 'application/json' }), `${baseName(S.file.name)}_report.json`);
});

export async function report() {
  const r = S.result, op = currentOp(), e = S.engineInfo;
  const positive = r.probability != null ? r.probability >= op.threshold : null;
  return {
    file: S.file.name,
    size_bytes: S.file.size,
    sha256: await sha256Hex(S.file),
    probability: r.probability,
    logit: r.logit,
    threshold: op.threshold,
    decision: positive == null ? null : positive ? 'positive' : 'negative',
    sensitivity_at_threshold: op.sensitivity ?? null,
    specificity_at_threshold: op.specificity ?? null,
    model_version: modelVersion(),
    engine: { build: e.build, variant: e.variant, threads: e.threads },
    timings_ms: S.timings,
    warnings: r.warnings || [],
    heatmap: r.heatmap ? { map: heatmapKind(r.heatmapMap), most_suspicious_slice: mostSuspicious() }
      : { unavailable: r.heatmapError || 'not computed' },
    volume: S.volumeInfo && { dim: S.volumeInfo.dim, spacing: S.volumeInfo.spacing, orientation: S.volumeInfo.orientation,
      lung_ml: S.volumeInfo.lung_ml, grid_zoom: S.volumeInfo.grid_zoom },
    created: new Date().toISOString(),
    notice: 'research software, not for diagnosis',
  };
}
S.report = report;

// ---------- diagnostics ----------
function diagnosticsText() {
  const e = S.engineInfo || {};
  const lines = [
    `csac web app diagnostics ${new Date().toISOString()}`,
    `user agent: ${navigator.userAgent}`,
    `cross-origin isolated: ${crossOriginIsolated}; logical CPUs: ${navigator.hardwareConcurrency}; device memory: ${navigator.deviceMemory ?? '?'} GB`,
    `service worker: ${S.sw}`,
  ];
  for (const id of ['build', 'variant', 'simd', 'threads', 'selftest', 'model', 'memory', 'stage-times']) lines.push(`${id}: ${$(id).textContent}`);
  if (e.timings_ms) lines.push(`startup: ${JSON.stringify(e.timings_ms)}`);
  if (S.volumeInfo) lines.push(`last volume: ${JSON.stringify({ dim: S.volumeInfo.dim, spacing: S.volumeInfo.spacing, orientation: S.volumeInfo.orientation, datatype: S.volumeInfo.datatype_name })}`);
  if (document.body.dataset.error) lines.push(`last error: ${document.body.dataset.error}`);
  return lines.join('\n');
}
S.diagnosticsText = diagnosticsText;
$('copy-diag').addEventListener('click', async () => {
  const b = $('copy-diag');
  const text = diagnosticsText();
  try {
    await navigator.clipboard.writeText(text);
    b.textContent = 'Copied';
  } catch {
    // no async clipboard (insecure context, permissions): the old way
    const ta = document.createElement('textarea');
    ta.value = text;
    ta.className = 'visually-hidden';
    document.body.append(ta);
    ta.select();
    b.textContent = document.execCommand('copy') ? 'Copied' : 'Copy failed: select the text above';
    ta.remove();
  }
  setTimeout(() => { b.textContent = 'Copy diagnostics'; }, 1500);
});
$('coi-reload').addEventListener('click', () => location.reload());

// ---------- offline (service worker) ----------
async function setupServiceWorker() {
  if (!('serviceWorker' in navigator) || params.has('nosw')) {
    S.sw = 'off';
    $('offline').textContent = params.has('nosw') ? 'off for this page (?nosw)' : 'not available in this browser';
    return;
  }
  try {
    const reg = await navigator.serviceWorker.register('sw.js', { scope: './' });
    navigator.serviceWorker.addEventListener('message', (ev) => {
      if (ev.data?.type === 'cached') {
        S.sw = `cached ${ev.data.count} files${ev.data.missing.length ? `; not on server: ${ev.data.missing.join(', ')}` : ''}`;
        $('offline').textContent = `ready: ${S.sw}`;
        document.body.dataset.offline = '1';
      }
    });
    const offerIsolation = () => { $('coi-reload').hidden = crossOriginIsolated || !navigator.serviceWorker.controller; };
    navigator.serviceWorker.addEventListener('controllerchange', offerIsolation);
    await navigator.serviceWorker.ready;
    offerIsolation();
    S.sw = navigator.serviceWorker.controller ? 'active (this page is served from the offline cache when the server is gone)' : 'installed';
    $('offline').textContent = S.sw;
    (reg.active || navigator.serviceWorker.controller)?.postMessage({ type: 'status' });
  } catch (e) {
    S.sw = `failed: ${e.message}`;
    $('offline').textContent = S.sw;
  }
}

engine.start().catch(() => {});
setupDemo();
setupServiceWorker();
setExports();
