#!/usr/bin/env bash
# Installs what the project needs from Debian's packages (and npm for tests).
#   scripts/install-deps.sh build   compilers, cmake, emscripten (./serve.sh)
#   scripts/install-deps.sh test    + python3-torch/numpy/scipy, chromium, npm test deps
#   scripts/install-deps.sh train   + scikit-learn and matplotlib (train/evaluate.py)
#   scripts/install-deps.sh fuzz    + clang and libFuzzer (scripts/fuzz.sh)
# Uses apt-get as root, sudo otherwise, or prints the exact command to run.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
mode=${1:-build}

pkgs=(build-essential cmake dpkg-dev emscripten nodejs)
if [ "$mode" = test ] || [ "$mode" = train ]; then
  pkgs+=(python3 python3-numpy python3-scipy python3-torch python3-pil chromium)
fi
if [ "$mode" = train ]; then
  pkgs+=(python3-sklearn python3-matplotlib)
fi
if [ "$mode" = fuzz ]; then
  pkgs+=(clang libclang-rt-14-dev)
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# nodesource's nodejs satisfies 'nodejs'; a node on PATH from elsewhere does too.
if command -v node >/dev/null; then missing=("${missing[@]/nodejs}"); fi
missing=($(printf '%s\n' "${missing[@]}" | grep -v '^$' || true))

if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}" >&2
  if [ "$(id -u)" = 0 ]; then SUDO=
  elif command -v sudo >/dev/null; then SUDO=sudo
  else
    echo "install-deps: missing packages. Run as root:" >&2
    echo "  apt-get update && apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
  $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq "${missing[@]}" >/dev/null
fi

if [ "$mode" = test ] && [ -f "$root/tests/package.json" ]; then
  if [ ! -d "$root/tests/node_modules" ] || [ "$root/tests/package-lock.json" -nt "$root/tests/node_modules" ]; then
    (cd "$root/tests" && npm ci --no-audit --no-fund --loglevel=error) >&2
    touch "$root/tests/node_modules"
  fi
fi
"$root/scripts/fetch-deps.sh"
