// worker.js - runs the wasm engine off the page's main thread (classic Worker:
// Emscripten's factories are classic scripts; csac-api.js comes in by dynamic
// import). The page never blocks, and cancelling = terminating this Worker.
//
// Protocol (page <-> worker):
//   -> {type:'init', weightsUrl?, selftestUrl?, forceVariant?, mockHeatmap? (test hook)}
//   <- {type:'progress', stage:'engine'|'model'|'selftest', fraction?}
//   <- {type:'ready', variant, build, threads, selftest, fallback, model, capabilities}
//   -> {type:'screen', id, file (File/Blob, cloned by reference) | bytes (ArrayBuffer, transferred), name, jsGunzip?}
//   <- {type:'progress', id, stage:'reading'|'decompressing'|'parsing'|'preprocessing'|'network'|'heatmap', fraction?}
//      (reading = the file into the heap; decompressing = the C reader inflating and parsing a .gz,
//      or the browser's inflater with jsGunzip; parsing = the C reader on plain bytes)
//   <- {type:'volume', id, info, warnings, timings_ms, volume (Int16Array HU, transferred) |
//       volumeShared {buffer: the wasm SharedArrayBuffer, byteOffset, length} (float HU, mt only, no copy)}
//   <- {type:'result', id, probability|null, logit|null, modelError?, timings_ms, warnings, info,
//       heatmapPending (true: heatmap messages follow), heatmapError?}
//   <- {type:'heatmap-slab', id, k0, k1, data? (Uint8Array 0..255 of slices k0..k1-1, st) |
//       shared? {buffer, byteOffset, length} (Float32 [0,1] in the wasm memory, mt; with the first slab)}
//   <- {type:'heatmap-done', id, scores? (Float32Array, max per slice), map? ({layer, mode}), heatmapError?, timings_ms}
//   <- {type:'error', id?, stage, message, status, restart? (the page starts a fresh worker), fatal?}
// Without shared memory the volume goes as Int16 HU (half the memory of float;
// CT HU are integers) and the heatmap as Uint8 (1/255 steps are far below what
// a colormap shows).
/* global importScripts, createCsacMT, createCsacST */
'use strict';
const base = new URL('./', self.location.href).href;
const GRID_N = 64 * 128 * 128;        // CSAC_GRID_D*H*W (csac.h)
const SELFTEST_TOL = 1e-3;            // |logit - stored logit| allowed by the network self-test
const MAX_PLAIN_BYTES = 1.5 * 2 ** 30; // refuse gzip bombs before the C reader's own limits
let eng = null;        // {csac, M, variant}
let Csac = null;
let heapMessage = (what) => what; // from csac-api.js
let state = { model: { loaded: false } };
let weightsBytes = null;

const now = () => performance.now();
const post = (m, transfer) => self.postMessage(m, transfer || []);
const buf = (M) => (M.wasmMemory && M.wasmMemory.buffer) || M.HEAPU8.buffer;
const errMsg = (e) => String(e && e.message ? e.message : e);

async function makeEngine(variant) {
  const mt = variant === 'mt';
  if (typeof (mt ? self.createCsacMT : self.createCsacST) !== 'function') importScripts(`${base}csac-${variant}.js`);
  const threads = mt ? Math.max(2, Math.min(self.navigator.hardwareConcurrency || 2, 8)) : 1;
  if (!Csac) ({ Csac, heapMessage } = await import(`${base}csac-api.js`));
  const M = await (mt ? createCsacMT : createCsacST)({
    locateFile: (f) => base + f,
    mainScriptUrlOrBlob: `${base}csac-${variant}.js`,
    csacPoolSize: threads,
    print: () => {}, printErr: (s) => console.warn('[csac]', s),
  });
  return { csac: new Csac(M, { threads }), M, variant };
}

// SIMD kernel over all threads vs a scalar reference (csac_selftest).
function kernelSelftest(e) {
  try {
    const r = e.csac.selftest();
    return { ...r, ok: Number.isFinite(r.maxAbsErr) && r.maxAbsErr < 1e-4 };
  } catch (err) {
    return { ok: false, error: errMsg(err) };
  }
}

// Deterministic network input "hash-v1": x[i] = ((i * 7919) % 1009) / 1008, i over D*H*W (w fastest).
// The stored answer (selftest JSON next to the weights) comes from the native build.
function networkSelftest(e, stored) {
  const M = e.M;
  const p = M._csac_model_input(e.csac.ctx);
  if (!p) return { ok: false, error: 'no model input buffer' };
  const x = new Float32Array(buf(M), p, GRID_N);
  for (let i = 0; i < GRID_N; i++) x[i] = ((i * 7919) % 1009) / 1008;
  const out = M._malloc(40 + 288 * 4);
  try {
    const t0 = now();
    e.csac.check(M._csac_wasm_forward(e.csac.ctx, out, out + 40));
    const logit = new Float64Array(buf(M), out, 5)[1];
    const r = { logit, ms: now() - t0 };
    if (!Number.isFinite(logit)) return { ...r, ok: false, error: 'non-finite logit' };
    if (!stored || typeof stored.logit !== 'number') return { ...r, ok: true, compared: false };
    const err = Math.abs(logit - stored.logit);
    return { ...r, ok: err <= (stored.tol ?? SELFTEST_TOL), compared: true, expected: stored.logit, absErr: err };
  } catch (err) {
    return { ok: false, error: errMsg(err) };
  } finally {
    M._free(out);
  }
}

// csac_model_info: the safetensors __metadata__ as "key=value; key=value"
// (values are strings; JSON-looking values are parsed). Keys the app uses:
// version, operating_points (JSON [{threshold, sensitivity, specificity}]),
// selftest_logit / selftest_tol (the native answer for the "hash-v1" input).
function parseModelInfo(info) {
  if (!info) return {};
  try { const j = JSON.parse(info); if (j && typeof j === 'object') return j; } catch { /* key=value form */ }
  const meta = {};
  const text = [];
  const json = (v) => { try { return JSON.parse(v); } catch { return undefined; } };
  let key = null;
  for (const part of info.split('; ')) {
    const m = /^([\w.-]+)=([\s\S]*)$/.exec(part);
    if (key && /^\s*[[{]/.test(meta[key]) && json(meta[key]) === undefined) meta[key] += `; ${part}`; // "; " inside JSON
    else if (m) { key = m[1]; meta[key] = m[2]; }
    else { key = null; text.push(part); } // free text (the loader's own summary)
  }
  for (const k of Object.keys(meta)) if (/^\s*[[{]/.test(meta[k])) { const j = json(meta[k]); if (j !== undefined) meta[k] = j; }
  if (text.length) meta.summary = text.join('; ');
  return meta;
}

async function fetchBytes(url, stage) {
  const res = await fetch(url, { credentials: 'same-origin' });
  if (!res.ok) throw Object.assign(new Error(`${new URL(url).pathname}: HTTP ${res.status}`), { http: res.status });
  const total = Number(res.headers.get('content-length')) || 0;
  if (!res.body || !total) return new Uint8Array(await res.arrayBuffer());
  const out = new Uint8Array(total);
  let n = 0;
  const rd = res.body.getReader();
  for (;;) {
    const { done, value } = await rd.read();
    if (done) break;
    if (n + value.length > out.length) throw new Error(`${url}: more bytes than Content-Length`);
    out.set(value, n);
    n += value.length;
    post({ type: 'progress', stage, fraction: n / total });
  }
  return out.subarray(0, n);
}

// Test hook (?mockHeatmap on the page): a stand-in for csac_heatmap /
// csac_heatmap_resample (a smooth blob in the middle of the scan), so the
// page's heatmap path can be tested before the engine computes heatmaps.
// Never active unless asked for; the ready message reports it.
let mockDims = null;
function installMockHeatmap(M) {
  M._csac_wasm_heatmap_resample = undefined; // resample() then calls the stand-in below
  M._csac_heatmap_default_layer = undefined; // the report then names no map
  M._csac_heatmap = (ctx, layer, mode, out) => { new Float32Array(buf(M), out, GRID_N).fill(0.5); return 0; };
  M._csac_heatmap_resample = (ctx, vol, grid, map, k0, k0hi, k1, k1hi, out) => {
    const [nx, ny, nz] = mockDims;
    const f = new Float32Array(buf(M), out, nx * ny * (k1 - k0));
    const s2 = 2 * (nx / 8) ** 2;
    for (let k = k0, o = 0; k < k1; k++) {
      const wk = Math.exp(-(((k - nz * 0.6) / (nz / 6)) ** 2));
      for (let j = 0; j < ny; j++) for (let i = 0; i < nx; i++, o++) f[o] = wk * Math.exp(-((i - nx * 0.65) ** 2 + (j - ny * 0.45) ** 2) / s2);
    }
    return 0;
  };
}

async function init(msg) {
  const t0 = now();
  const isolated = self.crossOriginIsolated === true && typeof SharedArrayBuffer !== 'undefined';
  let variant = msg.forceVariant || (isolated ? 'mt' : 'st');
  if (variant === 'mt' && !isolated) variant = 'st';
  const fallback = [];
  post({ type: 'progress', stage: 'engine' });
  eng = await makeEngine(variant);
  let kt = kernelSelftest(eng);
  if (!kt.ok && variant === 'mt') {
    fallback.push(`threaded SIMD self-test failed (${kt.error || `max error ${kt.maxAbsErr}`}); using the single-threaded build`);
    eng.csac.free();
    eng = await makeEngine('st');
    kt = kernelSelftest(eng);
  }
  const ms_engine = now() - t0;

  // Weights: same origin only (the CSP's connect-src 'self' enforces it too).
  const model = { loaded: false };
  const weightsUrl = msg.weightsUrl || new URL('../weights/csac_v1.safetensors', base).href;
  try {
    post({ type: 'progress', stage: 'model', fraction: 0 });
    const t1 = now();
    weightsBytes = await fetchBytes(weightsUrl, 'model');
    model.info = eng.csac.loadModel(weightsBytes);
    model.loaded = true;
    model.bytes = weightsBytes.length;
    model.ms = now() - t1;
    model.meta = parseModelInfo(model.info);
  } catch (e) {
    model.error = e.http === 404 ? 'no model weights on this server (weights/csac_v1.safetensors)' : errMsg(e);
  }

  // Network self-test with a stored answer; on mismatch fall back to `st`, then refuse.
  let nt = null;
  if (model.loaded) {
    post({ type: 'progress', stage: 'selftest' });
    let stored = model.meta && Number.isFinite(Number(model.meta.selftest_logit)) && model.meta.selftest_logit !== ''
      ? { logit: Number(model.meta.selftest_logit), tol: Number(model.meta.selftest_tol) || SELFTEST_TOL } : null;
    if (!stored) try {
      const r = await fetch(msg.selftestUrl || weightsUrl.replace(/\.safetensors$/, '.selftest.json'));
      if (r.ok) stored = await r.json();
    } catch { stored = null; }
    nt = networkSelftest(eng, stored);
    if (!nt.ok && eng.variant === 'mt') {
      fallback.push(`network self-test failed on the threaded build (${nt.error || `logit ${nt.logit} vs ${nt.expected}`}); using the single-threaded build`);
      eng.csac.free();
      eng = await makeEngine('st');
      kt = kernelSelftest(eng);
      try { eng.csac.loadModel(weightsBytes); nt = networkSelftest(eng, stored); } catch (e) { nt = { ok: false, error: errMsg(e) }; }
    }
    if (!nt.ok) {
      model.loaded = false;
      model.error = `network self-test failed (${nt.error || `logit ${nt.logit} vs stored ${nt.expected}`}): results would not be reliable, screening is disabled`;
    }
  }
  if (!kt.ok && model.loaded) {
    // No safe build left: the SIMD kernels miscompute here. Viewing still works.
    model.loaded = false;
    model.error = `SIMD self-test failed (${kt.error || `max error ${kt.maxAbsErr}`}): this browser miscomputes, screening is disabled`;
  }
  weightsBytes = null;
  const M = eng.M;
  if (msg.mockHeatmap) installMockHeatmap(M);
  state = { model, kt, nt };
  return {
    variant: eng.variant,
    build: eng.csac.buildInfo(),
    threads: eng.csac.threads,
    crossOriginIsolated: isolated,
    hardwareConcurrency: self.navigator.hardwareConcurrency || null,
    selftest: { ok: kt.ok, threadsUsed: kt.threadsUsed, simdLanes: kt.simdLanes, maxAbsErr: kt.maxAbsErr, error: kt.error },
    networkSelftest: nt,
    fallback,
    model: { loaded: model.loaded, info: model.info || '', meta: model.meta || null, error: model.error || null, bytes: model.bytes || 0 },
    capabilities: {
      heatmap: typeof M._csac_heatmap === 'function' && typeof M._csac_heatmap_resample === 'function',
      mockHeatmap: !!msg.mockHeatmap,
      screening: model.loaded && kt.ok,
    },
    memoryBytes: buf(M).byteLength,
    timings_ms: { engine: ms_engine, model: model.ms || 0, selftest: nt ? nt.ms || 0 : 0 },
  };
}

// The input's plain (decompressed) bytes, in the wasm heap: {ptr, n}; the
// caller frees ptr. A .gz is streamed from the File through the browser's own
// inflater straight into the heap, so reading the file and inflating overlap
// and no extra copy of the plain bytes exists. The buffer is sized from the
// gzip trailer (ISIZE) and grows if that was wrong (multi-member, >4 GiB).
// If the browser cannot inflate the stream, the raw bytes go to the C reader,
// which says precisely what is wrong with them.
const HEAP_GROW = 1.5;
async function loadInput(src, id, useJsGunzip) {
  const { M } = eng;
  const blob = src instanceof Blob ? src : new Blob([src]);
  const head = new Uint8Array(await blob.slice(0, 2).arrayBuffer());
  const gz = head.length === 2 && head[0] === 0x1f && head[1] === 0x8b;
  if (gz && useJsGunzip && typeof DecompressionStream === 'function') {
    const r = await inflateToHeap(blob, id);
    if (r) return { ...r, gz, inflated: true };
  }
  post({ type: 'progress', id, stage: 'reading', fraction: 0 });
  const bytes = new Uint8Array(await blob.arrayBuffer());
  const ptr = M._malloc(Math.max(1, bytes.length));
  if (!ptr) throw Object.assign(new Error(heapMessage(`cannot allocate ${bytes.length} bytes for the file`)), { status: 'CSAC_E_NOMEM' });
  new Uint8Array(buf(M), ptr, bytes.length).set(bytes);
  return { ptr, n: bytes.length, gz, inflated: false };
}

async function inflateToHeap(blob, id) {
  const { M } = eng;
  const tail = new DataView(await blob.slice(Math.max(0, blob.size - 4)).arrayBuffer());
  let cap = tail.byteLength === 4 ? tail.getUint32(0, true) : 0;
  if (cap < blob.size) cap = blob.size * 3; // ISIZE is mod 2^32: implausible -> a guess
  cap = Math.min(cap, MAX_PLAIN_BYTES);
  let ptr = M._malloc(Math.max(1, cap));
  if (!ptr) return null;
  let n = 0, fed = 0, lastPost = -1;
  const total = blob.size || 1;
  const counter = new TransformStream({
    transform(chunk, ctl) {
      fed += chunk.length;
      const f = Math.floor((fed / total) * 50);
      if (f !== lastPost) { lastPost = f; post({ type: 'progress', id, stage: 'decompressing', fraction: fed / total }); }
      ctl.enqueue(chunk);
    },
  });
  try {
    const rd = blob.stream().pipeThrough(counter).pipeThrough(new DecompressionStream('gzip')).getReader();
    let heap = new Uint8Array(buf(M));
    for (;;) {
      const { done, value } = await rd.read();
      if (done) break;
      if (n + value.length > cap) {
        const ncap = Math.min(MAX_PLAIN_BYTES, Math.max(n + value.length, Math.ceil(cap * HEAP_GROW)));
        if (n + value.length > ncap) throw new Error('too large after decompression');
        const np = M._malloc(ncap);
        if (!np) throw new Error(`cannot allocate ${ncap} bytes in the wasm heap`);
        heap = new Uint8Array(buf(M));
        heap.copyWithin(np, ptr, ptr + n);
        M._free(ptr);
        ptr = np; cap = ncap;
      }
      if (heap.buffer !== buf(M) || heap.byteLength === 0) heap = new Uint8Array(buf(M));
      heap.set(value, ptr + n);
      n += value.length;
    }
    return { ptr, n };
  } catch {
    M._free(ptr);
    return null;
  }
}

// Takes the heap buffer (the C reader frees it, also on error): it may patch
// it in place to inflate a .gz on all threads, and frees it before the analysis.
function readVolume(ptr, n) {
  const { csac, M } = eng;
  const out = M._malloc(4);
  try {
    csac.check(M._csac_volume_read_buffer_take(csac.ctx, ptr, n, out));
    return new Uint32Array(buf(M), out, 1)[0];
  } finally {
    M._free(out);
  }
}

function volumeInfo(vptr) {
  const { M } = eng;
  for (let cap = 4096; ;) {
    const b = M._malloc(cap);
    const n = M._csac_wasm_volume_json(vptr, b, cap);
    const s = n >= 0 && n < cap ? M.UTF8ToString(b, n) : null;
    M._free(b);
    if (n < 0) throw new Error('volume has no header information');
    if (s !== null) return JSON.parse(s);
    cap = n + 1;
  }
}

// Int16 HU for the page. CT HU are integers within int16: then the typed
// array's own conversion does it in one native pass; otherwise round and clamp.
function volumeInt16(vptr, n, info) {
  const { M } = eng;
  const f = new Float32Array(buf(M), M._csac_volume_data(vptr), n);
  const out = new Int16Array(n);
  const integral = Number(info.scl_slope) === 0 || (Number.isInteger(Number(info.scl_slope)) && Number.isInteger(Number(info.scl_inter)));
  if (integral && /INT(8|16)$/.test(info.datatype_name || '') && info.hu_min >= -32768 && info.hu_max <= 32767) {
    out.set(f);
    return out;
  }
  for (let i = 0; i < n; i++) {
    const v = Math.round(f[i]);
    out[i] = v > 32767 ? 32767 : v < -32768 ? -32768 : v;
  }
  return out;
}

// csac_heatmap_resample takes int64 slice bounds: a csac_wasm_ helper with int
// bounds if the build has one, else the legalized (low, high) i32 pairs of a
// build without WASM_BIGINT, else BigInt.
function resample(vptr, gridPtr, g, k0, k1, o) {
  const { csac, M } = eng;
  if (typeof M._csac_wasm_heatmap_resample === 'function') return M._csac_wasm_heatmap_resample(csac.ctx, vptr, gridPtr, g, k0, k1, o);
  try {
    return M._csac_heatmap_resample(csac.ctx, vptr, gridPtr, g, k0, 0, k1, 0, o);
  } catch (e) {
    if (!(e instanceof TypeError)) throw e;
    return M._csac_heatmap_resample(csac.ctx, vptr, gridPtr, g, BigInt(k0), BigInt(k1), o);
  }
}

// The default heatmap on the model grid, then mapped onto the original voxels slab by
// slab, the slab with the displayed (middle) slice first: the overlay is on
// screen after one slab, the rest follows in the background. Each slab is
// announced to the page: threaded build, the map lives in the shared wasm
// memory (no copy; freed at the next scan) and {type:'heatmap-slab', k0, k1}
// says which slices are valid; single-threaded, the slab comes as Uint8
// (0..255). Per-slice score: the maximum of the slice (as the CLI's
// csac_heatmap_slice_scores), from the same resampled values (every 2nd voxel
// when shared). Ends with {type:'heatmap-done', scores, timings_ms}.
function heatmap(vptr, dims, gridPtr, id, firstSlice) {
  const { csac, M } = eng;
  const [nx, ny, nz] = dims;
  const plane = nx * ny;
  const shared = typeof SharedArrayBuffer === 'function' && buf(M) instanceof SharedArrayBuffer;
  const g = M._malloc(GRID_N * 4);
  const slab = Math.max(1, Math.min(nz, Math.floor((8 << 20) / (plane * 4))));
  const o = M._malloc(plane * (shared ? nz : slab) * 4);
  if (!g || !o) { M._free(g); M._free(o); throw new Error('out of memory for the heatmap'); }
  const ms = {};
  let t = now();
  let keep = false;
  try {
    csac.check(M._csac_heatmap(csac.ctx, 0, -1, g)); // the default layer and mode
    ms.grid = now() - t;
    const scores = new Float32Array(nz);
    const first = Math.max(0, Math.min(nz - 1, firstSlice));
    const f0 = Math.floor(first / slab) * slab;
    const starts = [f0];
    for (let k0 = 0; k0 < nz; k0 += slab) if (k0 !== f0) starts.push(k0);
    let done = 0;
    for (const k0 of starts) {
      t = now();
      const k1 = Math.min(nz, k0 + slab);
      const dst = shared ? o + k0 * plane * 4 : o;
      csac.check(resample(vptr, gridPtr, g, k0, k1, dst));
      const f = new Float32Array(buf(M), dst, plane * (k1 - k0));
      const msg = { type: 'heatmap-slab', id, k0, k1 };
      if (shared) {
        if (done === 0) msg.shared = { buffer: buf(M), byteOffset: o, length: plane * nz };
        for (let k = k0; k < k1; k++) {
          let mx = 0;
          for (let i = (k - k0) * plane, e = i + plane; i < e; i += 2) if (f[i] > mx) mx = f[i];
          scores[k] = mx;
        }
        self.postMessage(msg);
      } else {
        const u8 = new Uint8Array(plane * (k1 - k0));
        for (let k = k0; k < k1; k++) {
          let mx = 0;
          for (let i = (k - k0) * plane, e = i + plane; i < e; i++) {
            const v = f[i];
            if (v > mx) mx = v;
            u8[i] = v <= 0 ? 0 : v >= 1 ? 255 : (v * 255 + 0.5) | 0;
          }
          scores[k] = mx;
        }
        msg.data = u8;
        self.postMessage(msg, [u8.buffer]);
      }
      if (done === 0) ms.first_slab = now() - t + ms.grid;
      done += k1 - k0;
      post({ type: 'progress', id, stage: 'heatmap', fraction: done / nz });
    }
    if (shared) { keep = true; keepHeatmap = o; }
    return { scores, ms };
  } finally {
    if (!keep) M._free(o);
    M._free(g);
  }
}

// A volume the page still shows from shared memory (threaded build only).
let keepVolume = 0;
let keepHeatmap = 0;

async function screen(msg) {
  const { id, name } = msg;
  const { csac, M } = eng;
  if (keepVolume) { M._csac_volume_free(keepVolume); keepVolume = 0; } // the page cleared its view
  if (keepHeatmap) { M._free(keepHeatmap); keepHeatmap = 0; }
  const src = msg.file || msg.bytes;
  const T = { bytes: src.size ?? src.byteLength };
  let stage = 'decompressing';
  let vptr = 0, gridPtr = 0, input = null;
  try {
    let t = now();
    input = await loadInput(src, id, msg.jsGunzip === true);
    if (input.gz && input.inflated) T.decompress = now() - t; else T.file = now() - t;
    // A .gz still compressed here is inflated by the C reader in the same call.
    stage = input.gz && !input.inflated ? 'decompressing' : 'parsing';
    post({ type: 'progress', id, stage });
    t = now();
    const taken = input;
    input = null;
    vptr = readVolume(taken.ptr, taken.n);
    T.read = now() - t; // C reader: inflate (unless done above) + parse + HU
    const info = volumeInfo(vptr);
    const dims = info.dim.map(Number);
    mockDims = dims;
    t = now();
    const nvox = dims[0] * dims[1] * dims[2];
    if (typeof SharedArrayBuffer === 'function' && buf(M) instanceof SharedArrayBuffer) {
      // Threaded build: the page reads the float HU straight from the shared
      // wasm memory (no copy). The volume stays allocated until the next scan.
      const volumeShared = { buffer: buf(M), byteOffset: M._csac_volume_data(vptr), length: nvox };
      keepVolume = vptr;
      T.to_page = now() - t;
      post({ type: 'volume', id, name, info, warnings: info.warnings || [], volumeShared, timings_ms: { ...T } });
    } else {
      const volume = volumeInt16(vptr, nvox, info);
      T.to_page = now() - t;
      post({ type: 'volume', id, name, info, warnings: info.warnings || [], volume, timings_ms: { ...T } }, [volume.buffer]);
    }

    if (!state.model.loaded) {
      post({ type: 'result', id, name, probability: null, logit: null, modelError: state.model.error || 'no model loaded', heatmapError: 'needs the model', heatmapPending: false, info, warnings: info.warnings || [], timings_ms: T, memoryBytes: buf(M).byteLength });
      return;
    }
    stage = 'preprocessing';
    post({ type: 'progress', id, stage });
    t = now();
    gridPtr = M._malloc(2 * 16 * 8);
    csac.check(M._csac_preprocess(csac.ctx, vptr, M._csac_model_input(csac.ctx), gridPtr));
    T.preprocess = now() - t;
    stage = 'network';
    post({ type: 'progress', id, stage });
    t = now();
    const out = M._malloc(40 + 288 * 4);
    let probability, logit;
    try {
      csac.check(M._csac_wasm_forward(csac.ctx, out, out + 40));
      const r = new Float64Array(buf(M), out, 5);
      probability = r[0]; logit = r[1];
    } finally { M._free(out); }
    T.forward = now() - t;
    const hasHeatmap = typeof M._csac_heatmap === 'function' && typeof M._csac_heatmap_resample === 'function';
    post({
      type: 'result', id, name, probability, logit, info, warnings: info.warnings || [], timings_ms: { ...T },
      memoryBytes: buf(M).byteLength, heatmapPending: hasHeatmap,
      heatmapError: hasHeatmap ? undefined : 'this engine build has no heatmap functions yet',
    });
    if (hasHeatmap) {
      stage = 'heatmap';
      post({ type: 'progress', id, stage, fraction: 0 });
      t = now();
      try {
        const h = heatmap(vptr, dims, gridPtr, id, msg.firstSlice ?? (dims[2] >> 1));
        T.heatmap = now() - t;
        T.heatmap_grid = h.ms.grid; T.heatmap_first_slab = h.ms.first_slab;
        const map = typeof M._csac_heatmap_default_layer === 'function'
          ? { layer: M.UTF8ToString(M._csac_heatmap_default_layer()), mode: M._csac_heatmap_default_mode() } : null;
        post({ type: 'heatmap-done', id, scores: h.scores, map, timings_ms: T, memoryBytes: buf(M).byteLength }, [h.scores.buffer]);
      } catch (e) {
        post({ type: 'heatmap-done', id, heatmapError: errMsg(e), timings_ms: T });
      }
    }
  } catch (e) {
    // A C status leaves the engine usable; anything else (wasm trap) may not,
    // so the page starts a fresh worker (restart). Out of memory restarts it
    // too: a wasm heap never shrinks, a fresh worker gives the memory back.
    const restart = !(e && e.name === 'CsacError') || e.status === 'CSAC_E_NOMEM';
    post({ type: 'error', id, stage, message: errMsg(e), status: (e && e.status) || null, restart, timings_ms: T });
  } finally {
    try {
      if (input) M._free(input.ptr);
      if (gridPtr) M._free(gridPtr);
      if (vptr && vptr !== keepVolume) M._csac_volume_free(vptr);
    } catch { /* the module trapped; the page restarts this worker */ }
  }
}

self.onmessage = async (ev) => {
  const msg = ev.data;
  if (msg.type === 'init') {
    try {
      post({ type: 'ready', ...(await init(msg)) });
    } catch (e) {
      post({ type: 'error', stage: 'engine', message: `engine failed to start: ${errMsg(e)}`, status: (e && e.status) || null, fatal: true });
    }
  } else if (msg.type === 'screen') {
    if (!eng) post({ type: 'error', id: msg.id, stage: 'engine', message: 'engine not started', status: null });
    else await screen(msg);
  }
};
