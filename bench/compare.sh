#!/usr/bin/env bash
# Issue #10's runtime comparison in one run (see bench/README.md):
#   bench/compare.sh [--rounds 12] [--warmup 2] [--runtimes a,b,..] [--file SCAN|none] [--out FILE]
# Installs onnxruntime-web/-node into bench/node_modules (npm ci, once; no
# CUDA download), exports the ONNX model (train/export.py --onnx, cached in
# bench/out/), then runs bench/compare.mjs, which writes bench/results.md.
# Other builds: CSAC_WASM_DIR=build/b-wasm CSAC_LIB=build/b-native/libcsac.so bench/compare.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [ ! -d "$here/node_modules/onnxruntime-web" ] || [ "$here/package-lock.json" -nt "$here/node_modules/.package-lock.json" ]; then
  # the CPU binaries come inside the packages: no install scripts (ORT-node's would fetch CUDA EPs)
  (cd "$here" && ONNXRUNTIME_NODE_INSTALL=skip npm ci --ignore-scripts --no-audit --no-fund >&2)
fi
export NODE_PATH=${NODE_PATH:-/usr/share/nodejs}
exec node "$here/compare.mjs" "$@"
