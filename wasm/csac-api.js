// csac-api.js - the JavaScript face of the C API (nn/csac.h), shared by the
// node module (csac.mjs) and the browser Worker. Plain ES module, no deps.
// Every call checks the C status and throws CsacError with the C message.

export const GRID = { D: 64, H: 128, W: 128 };
export const N_FEATURES = 288;

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
    if (status !== 0) throw new CsacError(status, this.statusName(status), this.lastError());
  }

  // Copies bytes into the wasm heap for the duration of fn(ptr, n).
  withBytes(bytes, fn) {
    const u8 = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
    const ptr = this.M._malloc(Math.max(1, u8.length));
    if (!ptr) throw new CsacError(2, 'CSAC_E_NOMEM', `cannot allocate ${u8.length} bytes in the wasm heap`);
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
  readVolume(bytes) {
    const M = this.M;
    const out = M._malloc(4);
    try {
      const t0 = now();
      this.withBytes(bytes, (p, n) => this.check(M._csac_volume_read_buffer(this.ctx, p, n, out)));
      const vol = new CsacVolume(this, new Uint32Array(buffer(M), out, 1)[0]);
      vol.msRead = now() - t0;
      return vol;
    } finally {
      M._free(out);
    }
  }

  // Preprocessing + network on a volume.
  screen(vol) {
    const M = this.M;
    const out = M._malloc(5 * 8 + N_FEATURES * 4);
    try {
      this.check(M._csac_wasm_screen(this.ctx, vol.ptr, out, out + 40));
      const r = new Float64Array(buffer(M), out, 5);
      return {
        probability: r[0],
        logit: r[1],
        features: new Float32Array(buffer(M), out + 40, N_FEATURES).slice(),
        timings_ms: { read: vol.msRead ?? 0, preprocess: r[3], forward: r[4] },
      };
    } finally {
      M._free(out);
    }
  }

  free() {
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
    this.ptr = 0;
  }
}

function now() {
  return typeof performance !== 'undefined' ? performance.now() : Date.now();
}
