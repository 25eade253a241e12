#!/usr/bin/env bash
# Native CLI throughput on 20 scans (the real scans of ../shared/ct, cycled):
# files per minute of `csac screen --threads N`, where reading and
# preprocessing of the next file overlap the network on the current one.
#   bench/throughput.sh [N_FILES=20] [THREADS=2]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-20}; threads=${2:-2}
ct=${CSAC_SHARED_CT:-../shared/ct}
csac=build/native/csac
[ -x "$csac" ] || { echo "build first: cmake --preset native && cmake --build --preset native" >&2; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
mapfile -t scans < <(ls "$ct"/*.nii.gz | sort)
for i in $(seq 0 $((n - 1))); do
  ln -s "$(realpath "${scans[$((i % ${#scans[@]}))]}")" "$tmp/$(printf '%02d' "$i")_$(basename "${scans[$((i % ${#scans[@]}))]}")"
done
bytes=$(du -cLb "$tmp"/* | tail -1 | cut -f1)
t0=$(date +%s.%N)
"$csac" screen --json --threads "$threads" "$tmp" > "$tmp/out.jsonl"
t1=$(date +%s.%N)
ok=$(grep -c '"probability"' "$tmp/out.jsonl" || true)
awk -v t0="$t0" -v t1="$t1" -v n="$n" -v ok="$ok" -v b="$bytes" 'BEGIN {
  s = t1 - t0; printf "%d files (%d screened, %.0f MB compressed) in %.1f s: %.1f files/min\n", n, ok, b / 1e6, s, n * 60 / s }'
awk -F'"read":|,"preprocess":|,"forward":|}' '/"read"/ { r += $2; p += $3; f += $4; k++ }
  END { printf "per file (mean): read %.0f ms, preprocess %.0f ms, forward %.0f ms; sum %.0f ms\n", r/k, p/k, f/k, (r+p+f)/k }' "$tmp/out.jsonl"
