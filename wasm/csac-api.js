// csac-api.js - the JavaScript face of the C API (nn/csac.h), shared by the
// node module (csac.mjs) and the browser Worker. Plain ES module, no deps.
// Every call checks the C status and throws CsacError with the C message.

export const GRID = { D: 64, H: 128, W: 128 };
export const N_FEATURES = 288;

// The most the wasm heap can grow to: -sMAXIMUM_MEMORY in CMakeLists.txt
// (tests/node/memory_budget.test.mjs checks that the two agree).
export const HEAP_MAX_BYTES = 2 ** 31;
const E_NOMEM = 2;

// An allocation failure in the wasm heap, said as what it is: the scan (with
// what the engine already holds) is more than the heap can ever hold.
export function heapMessage(what) {
  return `${what}: the scan does not fit in the ${HEAP_MAX_BYTES / 2 ** 20} MB memory of the WebAssembly engine ` +
    '(a .nii.gz or a smaller scan may; the native CLI has no such limit)';
}

export class CsacError extends Error {
  constructor(code, status, message) {
    super(message);
    this.name = 'CsacError';
    this.code = code;      // numeric status
    this.status = status;  // e.g. "CSAC_E_TRUNCATED"
  }
}

// Views must be made fresh after every call: memory can grow (and, in the
// threaded build, another thread can grow it), which detaches old views.
function buffer(M) {
  return (M.wasmMemory && M.wasmMemory.buffer) || M.HEAPU8.buffer;
}

export class Csac {
  // M: an instantiated Emscripten module of build/wasm (mt or st).
  constructor(M, { threads = 1 } = {}) {
    this.M = M;
    const st = M._malloc(4);
    this.ctx = M._csac_wasm_init(threads, st);
    const status = new Int32Array(buffer(M), st, 1)[0];
    M._free(st);
    if (!this.ctx) throw new CsacError(2, 'CSAC_E_NOMEM', 'out of memory creating the context');
    if (status !== 0) {
      const msg = this.lastError();
      M._csac_free(this.ctx);
      this.ctx = 0;
      throw new CsacError(status, this.statusName(status), msg);
    }
  }

  statusName(code) { return this.M.UTF8ToString(this.M._csac_status_name(code)); }
  lastError() { return this.M.UTF8ToString(this.M._csac_last_error(this.ctx)); }
  get threads() { return this.M._csac_n_threads(this.ctx); }
  buildInfo() { return this.M.UTF8ToString(this.M._csac_build_info()); }

  check(status) {
    if (status === E_NOMEM) throw new CsacError(status, this.statusName(status), heapMessage(this.lastError()));
    if (status !== 0) throw new CsacError(status, this.statusName(status), this.lastError());
  }

  // Copies bytes into the wasm heap for the duration of fn(ptr, n).
  withBytes(bytes, fn) {
    const u8 = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
    const ptr = this.M._malloc(Math.max(1, u8.length));
    if (!ptr) throw new CsacError(E_NOMEM, 'CSAC_E_NOMEM', heapMessage(`cannot allocate ${u8.length} bytes`));
    try {
      new Uint8Array(buffer(this.M), ptr, u8.length).set(u8);
      return fn(ptr, u8.length);
    } finally {
      this.M._free(ptr);
    }
  }

  selftest() {
    const out = this.M._malloc(24);
    try {
      const st = this.M._csac_wasm_selftest(this.ctx, out);
      const r = new Float64Array(buffer(this.M), out, 3);
      const rep = { threadsUsed: r[0], simdLanes: r[1], maxAbsErr: r[2] };
      this.check(st);
      return rep;
    } finally {
      this.M._free(out);
    }
  }

  loadModel(bytes) {
    this.withBytes(bytes, (p, n) => this.check(this.M._csac_load_model_buffer(this.ctx, p, n)));
    return this.M.UTF8ToString(this.M._csac_model_info(this.ctx));
  }

  // Reads a NIfTI (.nii / .nii.gz) from bytes. The caller frees the volume.
  // The C reader takes the heap copy and frees it as soon as the voxels are
  // decoded, so the compressed bytes and the analysis never share the heap.
  readVolume(bytes) {
    const M = this.M;
    const u8 = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
    const out = M._malloc(4);
    const p = M._malloc(Math.max(1, u8.length));
    if (!out || !p) {
      M._free(out);
      M._free(p);
      throw new CsacError(E_NOMEM, 'CSAC_E_NOMEM', heapMessage(`cannot allocate ${u8.length} bytes for the file`));
    }
    try {
      const t0 = now();
      new Uint8Array(buffer(M), p, u8.length).set(u8);
      this.check(M._csac_volume_read_buffer_take(this.ctx, p, u8.length, out));
      const vol = new CsacVolume(this, new Uint32Array(buffer(M), out, 1)[0]);
      vol.msRead = now() - t0;
      return vol;
    } finally {
      M._free(out);
    }
  }

  // Preprocessing + network on a volume. The grid mapping is kept on the
  // volume for its heatmap.
  screen(vol) {
    const M = this.M;
    if (!vol.gridPtr) vol.gridPtr = M._malloc(2 * 16 * 8);
    const t0 = now();
    this.check(M._csac_preprocess(this.ctx, vol.ptr, M._csac_model_input(this.ctx), vol.gridPtr));
    const t1 = now();
    const out = M._malloc(5 * 8 + N_FEATURES * 4);
    try {
      this.check(M._csac_wasm_forward(this.ctx, out, out + 40));
      const r = new Float64Array(buffer(M), out, 5);
      this.lastVolume = vol;
      return {
        probability: r[0],
        logit: r[1],
        features: new Float32Array(buffer(M), out + 40, N_FEATURES).slice(),
        timings_ms: { read: vol.msRead ?? 0, preprocess: t1 - t0, forward: r[4] },
      };
    } finally {
      M._free(out);
    }
  }

  // Heatmap of the last screen() on the model grid (64*128*128, [0,1]), kept
  // in the heap for the calls below. mode: -1 default, 0 Grad-CAM, 1 activation,
  // 2 lesion head (layer 'lesion'); {} = the default pair (docs/heatmaps.md).
  heatmap({ layer = null, mode = layer ? 0 : -1 } = {}) {
    const M = this.M;
    if (!this.mapPtr) this.mapPtr = M._malloc(GRID.D * GRID.H * GRID.W * 4);
    const lp = layer ? M._malloc(M.lengthBytesUTF8(layer) + 1) : 0;
    if (lp) M.stringToUTF8(layer, lp, M.lengthBytesUTF8(layer) + 1);
    const t0 = now();
    try {
      this.check(M._csac_heatmap(this.ctx, lp, mode, this.mapPtr));
    } finally {
      if (lp) M._free(lp);
    }
    this.mapVolume = this.lastVolume;
    return { layer: layer ?? M.UTF8ToString(M._csac_heatmap_default_layer()),
      mode: mode >= 0 ? mode : M._csac_heatmap_default_mode(), ms: now() - t0 };
  }

  // The last heatmap() on the model grid: a copy (D*H*W floats, w fastest).
  heatmapGrid() {
    if (!this.mapPtr || !this.mapVolume) throw new CsacError(10, 'CSAC_E_STATE', 'call screen(vol) and heatmap() first');
    return new Float32Array(buffer(this.M), this.mapPtr, GRID.D * GRID.H * GRID.W).slice();
  }

  #needMap(vol) {
    if (!this.mapPtr || this.mapVolume !== vol) throw new CsacError(10, 'CSAC_E_STATE', 'call screen(vol) and heatmap() first');
  }

  // The heatmap on the original voxels of slices k0..k1-1 (i fastest), a copy.
  heatmapSlices(vol, k0, k1) {
    this.#needMap(vol);
    const M = this.M;
    const [x, y] = vol.info.dim;
    const o = M._malloc(x * y * (k1 - k0) * 4);
    try {
      this.check(M._csac_wasm_heatmap_resample(this.ctx, vol.ptr, vol.gridPtr, this.mapPtr, k0, k1, o));
      return new Float32Array(buffer(M), o, x * y * (k1 - k0)).slice();
    } finally {
      M._free(o);
    }
  }

  // Per original slice: the heatmap's maximum (ranks slices).
  heatmapSliceScores(vol) {
    this.#needMap(vol);
    const M = this.M;
    const nz = vol.info.dim[2];
    const o = M._malloc(nz * 4);
    try {
      this.check(M._csac_heatmap_slice_scores(this.ctx, vol.ptr, vol.gridPtr, this.mapPtr, o));
      return new Float32Array(buffer(M), o, nz).slice();
    } finally {
      M._free(o);
    }
  }

  // The heatmap as .nii.gz bytes with the input's dims, qform and sform.
  heatmapNifti(vol, { gzip = true } = {}) {
    this.#needMap(vol);
    const M = this.M;
    const pp = M._malloc(8);
    try {
      this.check(M._csac_heatmap_nifti(this.ctx, vol.ptr, vol.gridPtr, this.mapPtr, gzip ? 1 : 0, pp, pp + 4));
      const [p, n] = new Uint32Array(buffer(M), pp, 2);
      const bytes = new Uint8Array(buffer(M), p, n).slice();
      M._csac_buffer_free(p);
      return bytes;
    } finally {
      M._free(pp);
    }
  }

  free() {
    if (this.mapPtr) this.M._free(this.mapPtr);
    this.mapPtr = 0;
    if (this.ctx) this.M._csac_free(this.ctx);
    this.ctx = 0;
  }
}

export class CsacVolume {
  constructor(csac, ptr) {
    this.csac = csac;
    this.ptr = ptr;
    this.msRead = 0;
    const M = csac.M;
    let cap = 4096;
    for (;;) {
      const b = M._malloc(cap);
      const n = M._csac_wasm_volume_json(ptr, b, cap);
      const s = n >= 0 && n < cap ? M.UTF8ToString(b, n) : null;
      M._free(b);
      if (n < 0) throw new CsacError(10, 'CSAC_E_STATE', 'volume has no header information');
      if (s !== null) { this.info = JSON.parse(s); break; }
      cap = n + 1;
    }
    this.warnings = this.info.warnings;
  }

  // HU values (i fastest), a copy that stays valid after later calls.
  data() {
    const [x, y, z] = this.info.dim;
    const p = this.csac.M._csac_volume_data(this.ptr);
    return new Float32Array(buffer(this.csac.M), p, x * y * z).slice();
  }

  free() {
    if (this.ptr) this.csac.M._csac_volume_free(this.ptr);
    if (this.gridPtr) this.csac.M._free(this.gridPtr);
    this.ptr = 0;
    this.gridPtr = 0;
  }
}

function now() {
  return typeof performance !== 'undefined' ? performance.now() : Date.now();
}
