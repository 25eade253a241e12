// serve.mjs - static server for web/ on 127.0.0.1 with the headers the app
// needs: COOP + COEP (cross-origin isolation -> SharedArrayBuffer -> threads)
// and a Content-Security-Policy that allows no other origin.
//   node scripts/serve.mjs [--port 8000] [--no-isolation] [--root web]
import { createServer } from 'node:http';
import { createReadStream, statSync } from 'node:fs';
import { extname, join, normalize, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const args = process.argv.slice(2);
const opt = (name, dflt) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : dflt; };
const port = Number(opt('--port', process.env.PORT || 8000));
const isolate = !args.includes('--no-isolation');
const root = resolve(opt('--root', join(fileURLToPath(new URL('.', import.meta.url)), '..', 'web')));

export const CSP = [
  "default-src 'self'", "script-src 'self' 'wasm-unsafe-eval'", "worker-src 'self' blob:",
  "connect-src 'self'", "img-src 'self' blob: data:", "style-src 'self'", "font-src 'self'",
  "object-src 'none'", "base-uri 'none'", "form-action 'none'", "frame-ancestors 'none'",
].join('; ');

const TYPES = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8',
  '.wasm': 'application/wasm', '.json': 'application/json', '.png': 'image/png',
  '.svg': 'image/svg+xml', '.gz': 'application/gzip', '.nii': 'application/octet-stream',
  '.safetensors': 'application/octet-stream', '.webmanifest': 'application/manifest+json',
};

const server = createServer((req, res) => {
  const headers = {
    'Content-Security-Policy': CSP,
    'X-Content-Type-Options': 'nosniff',
    'Referrer-Policy': 'no-referrer',
    'Cross-Origin-Resource-Policy': 'same-origin',
    'Cache-Control': 'no-cache',
  };
  if (isolate) {
    headers['Cross-Origin-Opener-Policy'] = 'same-origin';
    headers['Cross-Origin-Embedder-Policy'] = 'require-corp';
  }
  let path;
  try { path = decodeURIComponent(new URL(req.url, 'http://x').pathname); } catch { path = null; }
  const file = path && normalize(join(root, path.endsWith('/') ? path + 'index.html' : path));
  let st = null;
  if (file && (file === root || file.startsWith(root + sep))) { try { st = statSync(file); } catch { st = null; } }
  if (req.method !== 'GET' && req.method !== 'HEAD') { res.writeHead(405, headers); res.end(); return; }
  if (!st || !st.isFile()) { res.writeHead(404, { ...headers, 'Content-Type': 'text/plain' }); res.end('not found\n'); return; }
  res.writeHead(200, { ...headers, 'Content-Type': TYPES[extname(file)] || 'application/octet-stream', 'Content-Length': st.size });
  if (req.method === 'HEAD') { res.end(); return; }
  createReadStream(file).pipe(res);
});
server.listen(port, '127.0.0.1', () => {
  console.log(`csac: serving ${root} at http://127.0.0.1:${server.address().port}/` +
    (isolate ? ' (cross-origin isolated: threads on)' : ' (not isolated: single-threaded build)'));
});
