// Node 20 has fetch() but it cannot read file paths, and the Emscripten 3.1.6
// loader prefers fetch when it exists: under node, read the .wasm from disk.
if (typeof process == 'object' && process.versions && process.versions.node &&
    !Module['wasmBinary'] && !Module['wasmModule'] && typeof __filename == 'string' &&
    /csac-(mt|st)\.js$/.test(__filename)) {
  try {
    Module['wasmBinary'] = require('fs').readFileSync(__filename.replace(/\.js$/, '.wasm'));
  } catch (e) { /* let the loader report the missing file */ }
}
// Worker threads for the pool are started with the module (a thread created
// later could not start while the caller blocks); the loader sets the count.
if (!Module['csacPoolSize']) Module['csacPoolSize'] = 2;
