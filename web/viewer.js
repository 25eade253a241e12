// viewer.js - slice views of the ORIGINAL scan at full resolution, with a
// heatmap overlay on the same voxel grid. Axial, coronal and sagittal views
// share one voxel cursor. Display convention (radiological, as in NiiVue's
// default): patient right on screen left, anterior up (axial/coronal),
// superior up (coronal/sagittal), anterior left (sagittal). The axis mapping
// comes from the volume's vox2world matrix, so LAS and RAS files look alike.

// Heatmap colormap ("hot"-like, dark red -> yellow -> white), 256 RGB entries.
export const COLORMAP = (() => {
  const stops = [[0, 40, 0, 0], [0.35, 200, 20, 0], [0.65, 255, 140, 0], [0.85, 255, 230, 40], [1, 255, 255, 220]];
  const lut = new Uint8Array(256 * 3);
  for (let i = 0; i < 256; i++) {
    const t = i / 255;
    let s = 0;
    while (s < stops.length - 2 && t > stops[s + 1][0]) s++;
    const [t0, r0, g0, b0] = stops[s], [t1, r1, g1, b1] = stops[s + 1];
    const u = (t - t0) / (t1 - t0);
    lut[i * 3] = r0 + (r1 - r0) * u;
    lut[i * 3 + 1] = g0 + (g1 - g0) * u;
    lut[i * 3 + 2] = b0 + (b1 - b0) * u;
  }
  return lut;
})();

// Values below this fraction of the map's range stay transparent, so the
// anatomy remains readable where the network did not look.
export const OVERLAY_FLOOR = 0.15;

export function drawLegend(canvas) {
  const ctx = canvas.getContext('2d');
  const img = ctx.createImageData(canvas.width, canvas.height);
  for (let x = 0; x < canvas.width; x++) {
    const c = Math.round((x / (canvas.width - 1)) * 255) * 3;
    for (let y = 0; y < canvas.height; y++) {
      const o = (y * canvas.width + x) * 4;
      img.data[o] = COLORMAP[c]; img.data[o + 1] = COLORMAP[c + 1]; img.data[o + 2] = COLORMAP[c + 2]; img.data[o + 3] = 255;
    }
  }
  ctx.putImageData(img, 0, 0);
}

// For voxel axis a: which world axis (RAS+: 0 = x toward patient right) it mostly follows, and the sign.
function axisMap(v2w) {
  const m = (r, c) => v2w[r * 4 + c];
  const out = [];
  const used = new Set();
  for (let a = 0; a < 3; a++) {
    let best = -1, bv = -1;
    for (let w = 0; w < 3; w++) {
      const v = Math.abs(m(w, a));
      if (!used.has(w) && v > bv) { bv = v; best = w; }
    }
    used.add(best);
    out.push({ world: best, sign: m(best, a) >= 0 ? 1 : -1 });
  }
  return out; // out[a] = {world, sign}
}

export class Viewer {
  constructor(els) {
    this.els = els; // {axial, axialOv, coronal, coronalOv, sagittal, sagittalOv}
    this.vol = null;
    this.hm = null;
    this.window = 1500; this.level = -600;
    this.opacity = 0.5; this.overlayOn = true;
    this.cursor = [0, 0, 0];
    this.onChange = null;
  }

  // data: Int16Array or Float32Array of HU (i fastest); info: reader JSON.
  setVolume(data, info) {
    const dims = info.dim.map(Number);
    const sp = info.spacing.map((s) => Math.abs(Number(s)) || 1);
    const v2w = (info.vox2world || [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]).map(Number);
    const am = axisMap(v2w);
    const byWorld = [0, 1, 2].map((w) => am.findIndex((x) => x.world === w));
    this.vol = { data, dims, sp, am, byWorld, info };
    this.hm = null;
    this.cursor = [dims[0] >> 1, dims[1] >> 1, dims[2] >> 1];
    this.views = {
      // RAS+ world: +x = patient right. Slice across z; screen x toward patient left (-x), y toward posterior (-y)
      axial: this._view(2, 0, -1, 1, -1),
      // slice across world y; screen x: -x; screen y: toward inferior (-z)
      coronal: this._view(1, 0, -1, 2, -1),
      // slice across world x; screen x: toward posterior (-y); screen y: inferior (-z)
      sagittal: this._view(0, 1, -1, 2, -1),
    };
    for (const [name, v] of Object.entries(this.views)) {
      const c = this.els[name], o = this.els[name + 'Ov'];
      c.width = o.width = v.w; c.height = o.height = v.h;
      // aspect from the voxel spacing: the CSS box keeps mm proportions
      c.parentElement.style.aspectRatio = `${v.w * v.su} / ${v.h * v.sv}`;
      c.parentElement.style.setProperty('--ar', String((v.w * v.su) / (v.h * v.sv)));
      v.img = c.getContext('2d').createImageData(v.w, v.h);
      v.ovImg = o.getContext('2d').createImageData(v.w, v.h);
    }
    this._lut();
    this.render();
  }

  // View through world axis `sw`; screen u along world axis wu in direction du, v along wv in dv.
  _view(sw, wu, du, wv, dv) {
    const { dims, sp, am, byWorld } = this.vol;
    const as = byWorld[sw], au = byWorld[wu], av = byWorld[wv];
    const stride = [1, dims[0], dims[0] * dims[1]];
    const fu = am[au].sign * du < 0, fv = am[av].sign * dv < 0; // flip index along u / v
    return { as, au, av, fu, fv, w: dims[au], h: dims[av], su: sp[au], sv: sp[av], stride };
  }

  clear() {
    this.vol = null;
    this.hm = null;
    this.hmValid = null;
  }

  get nSlices() { return this.vol ? this.vol.dims[this.views.axial.as] : 0; }
  get slice() { return this.vol ? this.cursor[this.views.axial.as] : 0; }

  setSlice(k) {
    if (!this.vol) return;
    const as = this.views.axial.as;
    k = Math.max(0, Math.min(this.vol.dims[as] - 1, Math.round(k)));
    if (k === this.cursor[as]) return;
    this.cursor[as] = k;
    this.render();
  }

  setWindow(w, l) {
    this.window = Math.max(1, Math.round(w));
    this.level = Math.round(l);
    this._lut();
    this.render();
  }

  // heatmap: Uint8Array (0..255) or Float32Array ([0,1]) on the volume grid; null clears.
  // valid: optional Uint8Array over the third voxel axis (k): slices with valid values (a map that is
  // still arriving); null = all.
  setHeatmap(hm, valid = null) {
    if (hm && this.vol && hm.length !== this.vol.data.length) throw new Error('heatmap and volume grids differ');
    this.hm = hm || null; // Uint8 (0..255) as is; Float32 ([0,1]) read per pixel, no copy
    this.hmValid = hm ? valid : null;
    this.render(true); // the scan itself is unchanged
  }

  setOverlay({ on = this.overlayOn, opacity = this.opacity } = {}) {
    this.overlayOn = on; this.opacity = opacity;
    this.render(true);
  }

  // HU -> grey through a 64k-entry table indexed by HU + 32768 (Int16 data).
  _lut() {
    const lo = this.level - this.window / 2, w = this.window;
    const lut = this.grey || (this.grey = new Uint8ClampedArray(65536));
    for (let i = 0; i < 65536; i++) lut[i] = ((i - 32768 - lo) / w) * 255;
  }

  _indexer(v) {
    const { dims } = this.vol;
    const st = v.stride;
    const n = dims;
    const base = this.cursor[v.as] * st[v.as] + (v.fu ? (n[v.au] - 1) * st[v.au] : 0) + (v.fv ? (n[v.av] - 1) * st[v.av] : 0);
    return { base, du: v.fu ? -st[v.au] : st[v.au], dv: v.fv ? -st[v.av] : st[v.av] };
  }

  render(overlayOnly = false) {
    if (!this.vol) return;
    for (const name of ['axial', 'coronal', 'sagittal']) this._renderView(name, overlayOnly);
    if (this.onChange) this.onChange();
  }

  _renderView(name, overlayOnly) {
    const v = this.views[name];
    const { data } = this.vol;
    const { base, du, dv } = this._indexer(v);
    const g = this.grey;
    const isInt = data instanceof Int16Array;
    const lo = this.level - this.window / 2, sc = 255 / this.window;
    if (!overlayOnly) {
      const px = v.img.data;
      let o = 0;
      for (let y = 0; y < v.h; y++) {
        let idx = base + y * dv;
        for (let x = 0; x < v.w; x++, idx += du, o += 4) {
          const val = isInt ? g[data[idx] + 32768] : Math.max(0, Math.min(255, (data[idx] - lo) * sc));
          px[o] = px[o + 1] = px[o + 2] = val; px[o + 3] = 255;
        }
      }
      this.els[name].getContext('2d').putImageData(v.img, 0, 0);
    }
    const ov = v.ovImg.data;
    ov.fill(0);
    let nonEmpty = 0;
    if (this.hm && this.overlayOn && this.opacity > 0) {
      const hm = this.hm, cm = COLORMAP, floor = OVERLAY_FLOOR * 255, a = this.opacity * 255;
      const isF = !(hm instanceof Uint8Array);
      const valid = this.hmValid, plane = this.vol.dims[0] * this.vol.dims[1];
      let o = 0;
      for (let y = 0; y < v.h; y++) {
        let idx = base + y * dv;
        for (let x = 0; x < v.w; x++, idx += du, o += 4) {
          if (valid && !valid[(idx / plane) | 0]) continue;
          const hv = hm[idx];
          const h = isF ? (hv <= 0 ? 0 : hv >= 1 ? 255 : (hv * 255 + 0.5) | 0) : hv;
          if (h > floor) {
            ov[o] = cm[h * 3]; ov[o + 1] = cm[h * 3 + 1]; ov[o + 2] = cm[h * 3 + 2];
            ov[o + 3] = a * Math.min(1, (h - floor) / (255 - floor) * 2);
            nonEmpty++;
          }
        }
      }
    }
    this.els[name + 'Ov'].getContext('2d').putImageData(v.ovImg, 0, 0);
    v.overlayPixels = nonEmpty;
    this._crosshair(name);
  }

  // A thin crosshair on the small views marks the axial slice.
  _crosshair(name) {
    if (name === 'axial') return;
    const v = this.views[name];
    const ax = this.views.axial.as;
    if (v.av !== ax && v.au !== ax) return;
    const ctx = this.els[name + 'Ov'].getContext('2d');
    ctx.strokeStyle = 'rgba(108,182,255,0.8)';
    ctx.lineWidth = Math.max(1, v.h / 200);
    const k = this.cursor[ax];
    ctx.beginPath();
    if (v.av === ax) {
      const y = (v.fv ? v.h - 1 - k : k) + 0.5;
      ctx.moveTo(0, y); ctx.lineTo(v.w, y);
    } else {
      const x = (v.fu ? v.w - 1 - k : k) + 0.5;
      ctx.moveTo(x, 0); ctx.lineTo(x, v.h);
    }
    ctx.stroke();
  }

  // Canvas pixel (x, y) of a view -> voxel (i, j, k).
  voxelAt(name, x, y) {
    const v = this.views[name];
    const c = this.cursor.slice();
    c[v.au] = v.fu ? v.w - 1 - x : x;
    c[v.av] = v.fv ? v.h - 1 - y : y;
    return c;
  }

  valueAt(c) {
    const [nx, ny] = this.vol.dims;
    const i = c[0] + nx * (c[1] + ny * c[2]);
    return { hu: this.vol.data[i], hm: this.hm ? (this.hm instanceof Uint8Array ? this.hm[i] / 255 : this.hm[i]) : null };
  }

  // Clicking a small view moves the axial slice to the clicked position.
  pick(name, x, y) {
    const c = this.voxelAt(name, x, y);
    const ax = this.views.axial.as;
    this.setSlice(c[ax]);
  }

  // The current axial view (scan + overlay + caption) as one canvas, at native resolution.
  composite(caption) {
    const v = this.views.axial;
    const scale = Math.max(1, Math.round(512 / Math.max(v.w, v.h)));
    const W = Math.round(v.w * scale), H = Math.round(v.h * scale * (v.sv / v.su));
    const out = document.createElement('canvas');
    out.width = W; out.height = H + 28;
    const ctx = out.getContext('2d');
    ctx.fillStyle = '#000'; ctx.fillRect(0, 0, out.width, out.height);
    ctx.imageSmoothingEnabled = true;
    ctx.drawImage(this.els.axial, 0, 0, W, H);
    ctx.drawImage(this.els.axialOv, 0, 0, W, H);
    ctx.fillStyle = '#e8e8e8';
    ctx.font = '13px sans-serif';
    ctx.fillText(caption, 6, H + 19);
    return out;
  }
}
