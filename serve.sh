#!/usr/bin/env bash
# Installs what is missing, builds what is stale, and serves the app at
# http://127.0.0.1:8000 (PORT=... to change) with COOP/COEP and a CSP.
set -euo pipefail
cd "$(dirname "$0")"
scripts/install-deps.sh build
{ [ -f build/wasm/CMakeCache.txt ] || cmake --preset wasm; } >/dev/null
cmake --build --preset wasm >/dev/null
exec node scripts/serve.mjs --port "${PORT:-8000}" "$@"
