#!/usr/bin/env bash
# Benchmark (prints numbers; not a test): load + preprocess of one scan with
# the native CLI, a few runs, with the timing breakdown and peak memory.
#   bench/load_preprocess.sh [FILE] [RUNS] [THREADS]
# Default FILE: ../shared/ct/covidctmd_P001.nii.gz (512x512x148 int16, 47 MB gz).
# Targets (issue 3): <= 0.35 s native, <= 0.6 s wasm (node), peak memory < 3x
# the decompressed volume. On a busy machine compare CPU time (user+sys), not
# wall time. Also runs bench/load_preprocess.mjs when build/wasm is built.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
file=${1:-$root/../shared/ct/covidctmd_P001.nii.gz}
runs=${2:-3}
threads=${3:-1}
cli=$root/build/native/csac
[ -x "$cli" ] || { echo "build first: cmake --preset native && cmake --build --preset native" >&2; exit 2; }
out=$(mktemp /tmp/csac_bench.XXXXXX.nii)
trap 'rm -f "$out"' EXIT
echo "file: $file  threads: $threads  machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq "$runs"); do
  echo "--- run $r"
  "$cli" preprocess "$file" "$out" --time --threads "$threads"
done
if [ -x /usr/bin/time ]; then
  /usr/bin/time -f "max RSS (kernel, /usr/bin/time): %M KiB; wall %e s, CPU user %U s + sys %S s" "$cli" preprocess "$file" "$out" --threads "$threads" 2>&1 | tail -1
fi
if [ -f "$root/build/wasm/csac-mt.wasm" ] && command -v node >/dev/null; then
  echo "--- wasm (node)"
  node "$root/bench/load_preprocess.mjs" "$file" "$runs" 1 2
fi
