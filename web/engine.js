// engine.js - the page's handle on the wasm Worker (wasm/worker.js). One job at
// a time. Cancel = terminate the Worker and start a fresh one; a stage that
// overruns its time budget is treated the same way (a hung worker cannot be
// interrupted any other way), and the job fails with a readable message.

// Time budget per stage (ms). Generous: a 2-core machine shared with other work.
export const STAGE_BUDGET_MS = {
  engine: 60000, model: 120000, selftest: 60000,
  decompressing: 60000, reading: 60000, preprocessing: 60000, network: 120000, heatmap: 60000,
};

export class Engine {
  // opts: {weightsUrl, budget (ms per stage, overrides), onReady(info), onProgress(p), onFatal(err)}
  constructor(opts = {}) {
    this.opts = opts;
    this.budget = { ...STAGE_BUDGET_MS, ...(opts.budget || {}) };
    this.worker = null;
    this.ready = null;     // Promise of the 'ready' info
    this.info = null;
    this.job = null;       // {id, resolve, reject, onVolume, onProgress}
    this.seq = 0;
    this.timer = 0;
    this.restarts = 0;
  }

  start() {
    this.stop();
    const w = new Worker(new URL('wasm/worker.js', document.baseURI));
    this.worker = w;
    this.info = null;
    this.ready = new Promise((resolve, reject) => { this._ready = { resolve, reject }; });
    this.ready.catch(() => {});
    w.onmessage = (ev) => this._onMessage(ev.data);
    w.onerror = (ev) => {
      ev.preventDefault();
      this._fail({ stage: this.stage || 'engine', message: `engine crashed: ${ev.message || 'worker error'}`, fatal: true });
    };
    this._watch('engine');
    w.postMessage({ type: 'init', weightsUrl: this.opts.weightsUrl, mockHeatmap: !!this.opts.mockHeatmap });
    return this.ready;
  }

  stop() {
    clearTimeout(this.timer);
    if (this.worker) this.worker.terminate();
    this.worker = null;
  }

  // Terminates whatever runs and starts a fresh worker; the running job rejects with {cancelled:true}.
  cancel(reason = 'cancelled') {
    const job = this.job;
    this.job = null;
    this.stop();
    if (job) job.reject(Object.assign(new Error(reason), { cancelled: true, stage: this.stage }));
    this.restarts++;
    return this.start();
  }

  get busy() { return !!this.job; }

  // bytes: File/Blob or ArrayBuffer. Resolves with the result message.
  // Callbacks: onProgress(msg), onVolume(msg), onResult(msg) (probability; the heatmap may follow),
  // onHeatmapSlab(msg). Resolves with {result, heatmap} once everything has arrived.
  async screen(bytes, name, { onVolume, onProgress, onResult, onHeatmapSlab } = {}) {
    if (this.job) throw new Error('another scan is still running');
    const id = ++this.seq;
    const done = new Promise((resolve, reject) => { this.job = { id, resolve, reject, onVolume, onProgress, onResult, onHeatmapSlab }; });
    done.catch(() => {}); // the caller awaits it below or gets the same error from the ready promise
    let info;
    try {
      info = await this.ready;
    } catch (e) {
      this.job = null;
      throw e;
    }
    if (!this.job || this.job.id !== id) return done; // cancelled while waiting
    void info;
    this._watch('decompressing');
    // A File/Blob is passed by reference (the worker streams it); an ArrayBuffer is transferred.
    if (bytes instanceof Blob) this.worker.postMessage({ type: 'screen', id, file: bytes, name, jsGunzip: !!this.opts.jsGunzip });
    else this.worker.postMessage({ type: 'screen', id, bytes, name, jsGunzip: !!this.opts.jsGunzip }, [bytes]);
    return done;
  }

  _finish(job, heatmap) {
    clearTimeout(this.timer);
    this.stage = null;
    this.job = null;
    job.resolve({ result: job.result, heatmap });
  }

  _watch(stage) {
    clearTimeout(this.timer);
    this.stage = stage;
    const ms = this.budget[stage] ?? 60000;
    this.timer = setTimeout(() => {
      this._fail({ stage, message: `the engine did not finish "${stage}" within ${Math.round(ms / 1000)} s and was restarted`, hung: true });
    }, ms);
  }

  // A failure that leaves the worker unusable: reject, then start a fresh worker.
  _fail(err) {
    const job = this.job;
    this.job = null;
    const e = Object.assign(new Error(err.message), err);
    if (!this.info && this._ready) this._ready.reject(e);
    if (job) job.reject(e);
    if (this.opts.onFatal) this.opts.onFatal(e);
    this.stop();
    if (err.hung || (err.fatal && this.restarts < 3)) {
      this.restarts++;
      this.start().catch(() => {});
    }
  }

  _onMessage(m) {
    const job = this.job;
    if (m.id && (!job || m.id !== job.id)) return; // a stale message from a cancelled job
    switch (m.type) {
      case 'progress':
        if (m.stage !== this.stage) this._watch(m.stage);
        if (job && job.onProgress) job.onProgress(m);
        else if (this.opts.onProgress) this.opts.onProgress(m);
        break;
      case 'ready':
        clearTimeout(this.timer);
        this.stage = null;
        this.info = m;
        this._ready.resolve(m);
        if (this.opts.onReady) this.opts.onReady(m);
        if (this.job) this._watch('decompressing');
        break;
      case 'volume':
        if (job && job.onVolume) job.onVolume(m);
        break;
      case 'result':
        job.result = m;
        if (job.onResult) job.onResult(m);
        if (!m.heatmapPending) this._finish(job, null);
        break;
      case 'heatmap-slab':
        if (job.onHeatmapSlab) job.onHeatmapSlab(m);
        break;
      case 'heatmap-done':
        this._finish(job, m);
        break;
      case 'error':
        if (!m.id && !job && m.fatal) { this._fail(m); break; }
        if (!m.id && m.fatal) { this._fail(m); break; }
        clearTimeout(this.timer);
        this.stage = null;
        this.job = null;
        if (job) job.reject(Object.assign(new Error(m.message), m));
        if (m.restart) { this.restarts++; this.start().catch(() => {}); }
        break;
      default:
        break;
    }
  }
}
