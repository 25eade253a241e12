// export.js - local downloads only: heatmap as NIfTI-1 on the input's voxel
// grid and geometry, PNG of the current view, JSON report. Nothing is sent.

// NIfTI-1 single file (.nii) of a Uint8 heatmap with scl_slope 1/255, so the
// stored 0..255 read back as 0..1 in any NIfTI tool. The affine is the one the
// reader used for the input (sform, else qform, else pixdim), written as sform.
export function heatmapNifti(hm, info, descrip = 'CSAC-Net heatmap') {
  const [nx, ny, nz] = info.dim.map(Number);
  const hdr = new ArrayBuffer(352);
  const dv = new DataView(hdr);
  const u8 = new Uint8Array(hdr);
  dv.setInt32(0, 348, true);                      // sizeof_hdr
  const dims = [3, nx, ny, nz, 1, 1, 1, 1];
  dims.forEach((d, i) => dv.setInt16(40 + 2 * i, d, true));
  dv.setInt16(68, 0, true);                        // intent_code NONE
  dv.setInt16(70, 2, true);                        // datatype UINT8
  dv.setInt16(72, 8, true);                        // bitpix
  const sp = info.spacing.map((s) => Math.abs(Number(s)) || 1);
  [1, sp[0], sp[1], sp[2], 1, 0, 0, 0].forEach((p, i) => dv.setFloat32(76 + 4 * i, p, true));
  dv.setFloat32(108, 352, true);                   // vox_offset
  dv.setFloat32(112, 1 / 255, true);               // scl_slope
  dv.setFloat32(116, 0, true);                     // scl_inter
  u8[123] = 2 | 8;                                 // xyzt_units: mm, s
  dv.setFloat32(124, 1, true);                     // cal_max
  dv.setFloat32(128, 0, true);                     // cal_min
  const d = new TextEncoder().encode(descrip.slice(0, 79));
  u8.set(d, 148);
  const code = Number(info.sform_code) > 0 ? Number(info.sform_code) : Number(info.qform_code) > 0 ? Number(info.qform_code) : 2;
  dv.setInt16(252, 0, true);                       // qform_code: not written (sform carries the geometry)
  dv.setInt16(254, code, true);                    // sform_code
  const m = (info.vox2world || [sp[0], 0, 0, 0, 0, sp[1], 0, 0, 0, 0, sp[2], 0, 0, 0, 0, 1]).map(Number);
  for (let r = 0; r < 3; r++) for (let c = 0; c < 4; c++) dv.setFloat32(280 + 16 * r + 4 * c, m[r * 4 + c], true);
  u8.set(new TextEncoder().encode('csac heatmap'), 328); // intent_name
  u8.set([0x6e, 0x2b, 0x31, 0], 344);              // magic "n+1\0"
  return new Blob([hdr, hm], { type: 'application/octet-stream' });
}

export async function gzipBlob(blob) {
  if (typeof CompressionStream !== 'function') return null;
  return new Response(blob.stream().pipeThrough(new CompressionStream('gzip'))).blob();
}

export async function sha256Hex(blob) {
  const d = await crypto.subtle.digest('SHA-256', await blob.arrayBuffer());
  return Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, '0')).join('');
}

export function download(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

export function baseName(name) {
  return (name || 'scan').replace(/\.nii(\.gz)?$/i, '').replace(/[^\w.-]+/g, '_');
}

// A [0,1] float map as 0..255 (the NIfTI export stores Uint8 with scl_slope 1/255).
export function toUint8(hm) {
  if (hm instanceof Uint8Array) return hm;
  const out = new Uint8Array(hm.length);
  for (let i = 0; i < hm.length; i++) { const v = hm[i]; out[i] = v <= 0 ? 0 : v >= 1 ? 255 : (v * 255 + 0.5) | 0; }
  return out;
}
