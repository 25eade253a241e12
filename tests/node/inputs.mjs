// inputs.mjs - hostile and out-of-distribution inputs, generated in memory for
// the node and browser tests (not a test itself). Real scans are only read
// from ../shared/ct and edited copies are written to temporary folders.
import zlib from 'node:zlib';
import { closeSync, ftruncateSync, openSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = fileURLToPath(new URL('../..', import.meta.url));
export const SHARED_CT = process.env.CSAC_SHARED_CT || join(REPO, '..', 'shared', 'ct');
export const BASE_SCAN = join(SHARED_CT, 'chest00_5mm.nii.gz'); // 256x256x56 int16, 5 mm, sform only

// Default limits of csac_default_params() (nn/csac.c).
export const MAX_DECOMPRESSED_BYTES = 2 ** 30;
export const MAX_FILE_BYTES = 2 ** 30;

// A NIfTI-1 header (352 bytes with the 4-byte extension flag) for an axis-aligned volume.
export function niftiHeader({ dim, datatype = 4, bitpix = 16, spacing = [1, 1, 1], inter = 0 }) {
  const h = Buffer.alloc(352);
  h.writeInt32LE(348, 0);
  h.writeInt16LE(3, 40);
  dim.forEach((d, i) => h.writeInt16LE(d, 42 + 2 * i));
  for (let i = 4; i < 8; i++) h.writeInt16LE(1, 40 + 2 * i);
  h.writeInt16LE(datatype, 70);
  h.writeInt16LE(bitpix, 72);
  h.writeFloatLE(1, 76);
  spacing.forEach((s, i) => h.writeFloatLE(s, 80 + 4 * i));
  h.writeFloatLE(352, 108);
  h.writeFloatLE(1, 112); // scl_slope
  h.writeFloatLE(inter, 116);
  h.writeInt16LE(2, 254); // sform_code aligned
  for (let r = 0; r < 3; r++) h.writeFloatLE(spacing[r], 280 + 16 * r + 4 * r);
  h.write('n+1\0', 344, 'latin1');
  return h;
}

// A DICOM Part 10 file: 128-byte preamble, "DICM", a few file-meta elements.
export function dicomFile() {
  const el = (group, elem, vr, value) => {
    const v = Buffer.from(value.length % 2 ? value + '\0' : value, 'latin1');
    const b = Buffer.alloc(8);
    b.writeUInt16LE(group, 0); b.writeUInt16LE(elem, 2); b.write(vr, 4, 'latin1'); b.writeUInt16LE(v.length, 6);
    return Buffer.concat([b, v]);
  };
  return Buffer.concat([Buffer.alloc(128), Buffer.from('DICM'),
    el(2, 0x2, 'UI', '1.2.840.10008.5.1.4.1.1.2'), el(2, 0x10, 'UI', '1.2.840.10008.1.2.1'),
    el(8, 0x60, 'CS', 'CT'), Buffer.alloc(2048, 0x55)]);
}

// A single-member gzip whose stream inflates to `total` bytes (head, then zeros)
// but is about 1/1000 of that: 64 MiB blocks of zeros end in a full flush, so
// the same compressed block can be repeated. CRC-32 and ISIZE are correct.
export function gzipBomb(head, total) {
  const CH = 64 << 20;
  const opt = { finishFlush: zlib.constants.Z_FULL_FLUSH, level: 9 };
  const first = Buffer.concat([head, Buffer.alloc(CH - head.length)]);
  const zeros = Buffer.alloc(CH);
  const n = Math.ceil(total / CH);
  const zFirst = zlib.deflateRawSync(first, opt);
  const zRest = zlib.deflateRawSync(zeros, opt);
  let crc = zlib.crc32(first);
  for (let i = 1; i < n; i++) crc = zlib.crc32(zeros, crc);
  const trailer = Buffer.alloc(8);
  trailer.writeUInt32LE(crc >>> 0, 0);
  trailer.writeUInt32LE((n * CH) % 2 ** 32, 4);
  return Buffer.concat([Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 2, 3]), zFirst, ...Array(n - 1).fill(zRest),
    zlib.deflateRawSync(Buffer.alloc(0)), trailer]);
}

// ~1.1 MB .nii.gz that inflates to 1.2 GB, past max_decompressed_bytes (1 GiB):
// a valid header declaring 2048x2048x40 float64 (168 M voxels, within max_voxels), then zeros.
export function niftiBomb() {
  const head = niftiHeader({ dim: [2048, 2048, 40], datatype: 64, bitpix: 64, spacing: [0.2, 0.2, 8] });
  return gzipBomb(head, 352 + 2048 * 2048 * 40 * 8);
}

// A sparse plain .nii of float32 zeros, 1024x1024x255 (1.07 GB): within every
// limit of the C reader (file, decompressed bytes, voxels, dims), but the file
// and its float32 voxels together do not fit in a 2 GB wasm heap. No disk space used.
export function writeSparseFloat32(path, dim = [1024, 1024, 255]) {
  const head = niftiHeader({ dim, datatype: 16, bitpix: 32, spacing: [0.35, 0.35, 1.2] });
  const fd = openSync(path, 'w');
  try {
    writeSync(fd, head);
    ftruncateSync(fd, 352 + dim[0] * dim[1] * dim[2] * 4);
  } finally {
    closeSync(fd);
  }
  return path;
}

// An edited copy of a real .nii.gz: edit(nii Buffer) changes it in place or returns a new one.
export function editScan(edit, src = BASE_SCAN) {
  const nii = zlib.gunzipSync(readFileSync(src));
  return zlib.gzipSync(edit(nii) || nii, { level: 1 });
}

// Out-of-distribution versions of BASE_SCAN, each with the warning phrase it must get.
export const OOD = {
  // 10 mm apart (sform and pixdim): 560 mm of z.
  thick: {
    phrase: 'thicker than 8 mm',
    make: () => editScan((b) => { b.writeFloatLE(10, 88); b.writeFloatLE(10, 320); }),
  },
  // scl_inter +1024: no value below 0 (as an MR scan or unscaled CT data).
  mr: {
    phrase: 'looks like MR',
    make: () => editScan((b) => { b.writeFloatLE(1, 112); b.writeFloatLE(1024, 116); }),
  },
  // the first 20 slices only: 100 mm of z.
  short: {
    phrase: 'covers only 100 mm',
    make: () => editScan((b) => { b.writeInt16LE(20, 46); return b.subarray(0, 352 + 256 * 256 * 20 * 2); }),
  },
  // every spacing (pixdim and sform) x 0.65: a patient with lungs of ~1.5 L, below the
  // zoom's range (the grid zooms by 1.25 only; also under 200 mm of z).
  small: {
    phrase: 'are smaller than the model was trained on',
    make: () => editScan((b) => {
      for (let i = 0; i < 3; i++) b.writeFloatLE(b.readFloatLE(80 + 4 * i) * 0.65, 80 + 4 * i);
      for (let i = 0; i < 12; i++) b.writeFloatLE(b.readFloatLE(280 + 4 * i) * 0.65, 280 + 4 * i);
    }),
  },
  // a water cylinder in air: a body, but no enclosed air (no lungs).
  nolungs: {
    phrase: 'no lungs found',
    make: () => {
      const [nx, ny, nz] = [128, 128, 60];
      const v = new Int16Array(nx * ny * nz);
      for (let k = 0; k < nz; k++) for (let j = 0; j < ny; j++) for (let i = 0; i < nx; i++) {
        const x = (i - 64) * 2.5, y = (j - 64) * 2.5;
        v[i + nx * (j + ny * k)] = x * x + y * y < 130 * 130 ? 40 + ((i + j + k) % 7) : -1000;
      }
      return zlib.gzipSync(Buffer.concat([niftiHeader({ dim: [nx, ny, nz], spacing: [2.5, 2.5, 5] }), Buffer.from(v.buffer)]), { level: 1 });
    },
  },
};
