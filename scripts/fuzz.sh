#!/usr/bin/env bash
# Fuzzing with libFuzzer (Debian's clang + libclang-rt-14-dev), ASan + UBSan.
#   scripts/fuzz.sh TARGET|all [SECONDS]   build, then fuzz each target SECONDS (default 60), one after another
#   scripts/fuzz.sh build                  only build the targets (build/fuzz/)
#   scripts/fuzz.sh merge TARGET [MAXBYTES] add to fuzz/corpus/TARGET the working-corpus files (up to
#                                          MAXBYTES, default 4096) that reach new edges (-merge=1), to commit
# TARGET: nifti_header, nifti_data, safetensors, load_preprocess, pinflate (or fuzz_<name>).
# One fuzzer process at a time (no -jobs/-workers): the machine has 2 cores.
# Fuzzing reads the committed corpus fuzz/corpus/TARGET/ (only merge writes it); new inputs
# go to build/fuzz/corpus/TARGET/, findings to build/fuzz/artifacts/TARGET/,
# logs to build/fuzz/logs/, one summary line per run to build/fuzz/summary.txt.
# FUZZ_ARGS adds libFuzzer options (e.g. FUZZ_ARGS=-use_value_profile=1).
set -euo pipefail
cd "$(dirname "$0")/.."
B=build/fuzz
ALL=(fuzz_nifti_header fuzz_nifti_data fuzz_safetensors fuzz_load_preprocess fuzz_pinflate)

usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
[ $# -ge 1 ] || usage

if ! command -v clang >/dev/null || ! ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1; then
  echo "fuzz.sh: needs clang and libFuzzer: scripts/install-deps.sh fuzz (apt-get install -y clang libclang-rt-14-dev)" >&2
  exit 1
fi

build() {
  if [ ! -f "$B/CMakeCache.txt" ]; then
    cmake -S . -B "$B" -DCMAKE_C_COMPILER=clang -DCSAC_FUZZ=ON -DCMAKE_BUILD_TYPE=Debug \
      -DCMAKE_C_FLAGS_DEBUG="-O1 -g" \
      -DCMAKE_C_FLAGS="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer" \
      >"$B.configure.log" 2>&1 || { cat "$B.configure.log"; exit 1; }
  fi
  cmake --build "$B" -j2 --target "${ALL[@]}" >"$B/build.log" 2>&1 || { grep -E -A5 'error' "$B/build.log" | head -40; exit 1; }
}

name() { case $1 in fuzz_*) echo "$1" ;; *) echo "fuzz_$1" ;; esac; }

# per target: libFuzzer's largest input (the header target stays small to be fast)
max_len() { case $1 in fuzz_nifti_header) echo 4096 ;; fuzz_safetensors) echo 32768 ;; *) echo 65536 ;; esac; }
dict() { case $1 in fuzz_safetensors) echo -dict=fuzz/safetensors.dict ;; fuzz_pinflate) ;; *) echo -dict=fuzz/nifti.dict ;; esac; }

run() { # target seconds
  local t=$1 secs=$2 log work art
  mkdir -p "$B/logs" "$B/corpus/$t" "$B/artifacts/$t"
  log=$B/logs/$t-$(date +%Y%m%d-%H%M%S).log
  work=$B/corpus/$t
  art=$B/artifacts/$t
  local before
  before=$(ls "$art" | wc -l)
  echo "fuzz.sh: $t for ${secs}s (log $log)"
  set +e
  ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    "$B/$t" "$work" "fuzz/corpus/$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
    -max_len="$(max_len "$t")" $(dict "$t") -artifact_prefix="$art/" -print_final_stats=1 \
    ${FUZZ_ARGS:-} >"$log" 2>&1
  local rc=$?
  set -e
  local execs rate corpus crash leak timeout oom
  execs=$(grep -E '^stat::number_of_executed_units:' "$log" | awk '{print $2}')
  rate=$(grep -E '^stat::average_exec_per_sec:' "$log" | awk '{print $2}')
  corpus=$(ls "$work" | wc -l)
  crash=$(ls "$art" | grep -c '^crash-' || true)
  leak=$(ls "$art" | grep -c '^leak-' || true)
  timeout=$(ls "$art" | grep -c '^timeout-' || true)
  oom=$(ls "$art" | grep -c '^oom-' || true)
  local line
  line=$(printf '%s %-22s %6ss execs=%s exec/s=%s corpus=%s(+%s committed) artifacts: crash=%s leak=%s timeout=%s oom=%s (new %s) rc=%s' \
    "$(date -u +%FT%TZ)" "$t" "$secs" "${execs:-?}" "${rate:-?}" "$corpus" "$(ls "fuzz/corpus/$t" | wc -l)" \
    "$crash" "$leak" "$timeout" "$oom" "$(( $(ls "$art" | wc -l) - before ))" "$rc")
  echo "$line" | tee -a "$B/summary.txt"
  [ "$rc" = 0 ] || { grep -E -m3 'ERROR|SUMMARY|fuzz check failed' "$log" || true; }
  return 0
}

mkdir -p "$B"
case $1 in
  build) build ;;
  merge)
    [ $# -ge 2 ] || usage
    build
    t=$(name "$2")
    # candidates: working-corpus files up to MAXBYTES (keeps the committed corpus small);
    # -use_counters=0: a file must reach a new edge, not just a new hit count
    cand=$B/merge-$t
    rm -rf "$cand"; mkdir -p "$cand" "$B/corpus/$t"
    find "$B/corpus/$t" -type f -size -"${3:-4096}"c -exec cp {} "$cand/" \;
    "$B/$t" -merge=1 -use_counters=0 -max_len="$(max_len "$t")" "fuzz/corpus/$t" "$cand" 2>&1 | tail -2
    rm -rf "$cand"
    echo "fuzz/corpus/$t: $(ls "fuzz/corpus/$t" | wc -l) files, $(cat "fuzz/corpus/$t"/* | wc -c) bytes"
    ;;
  all|fuzz_*|nifti_header|nifti_data|safetensors|load_preprocess|pinflate)
    secs=${2:-60}
    build
    if [ "$1" = all ]; then targets=("${ALL[@]}"); else targets=("$(name "$1")"); fi
    for t in "${targets[@]}"; do run "$t" "$secs"; done
    ;;
  *) usage ;;
esac
