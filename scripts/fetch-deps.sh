#!/usr/bin/env bash
# Fetches the sources of zlib and nifti_clib through Debian's package manager
# (apt-get source) into third_party/ (git-ignored). Nothing third-party is
# committed. Idempotent: does nothing when third_party/.complete exists.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dest="$root/third_party"
[ -f "$dest/.complete" ] && exit 0

die() { echo "fetch-deps: $*" >&2; exit 1; }
command -v apt-get >/dev/null || die "apt-get not found. This build fetches zlib and nifticlib sources with
  'apt-get source zlib nifticlib' (Debian/Ubuntu). On other systems unpack zlib >= 1.2.13 and nifticlib 3.0.x
  into $dest/zlib and $dest/nifticlib and create $dest/.complete."
command -v dpkg-source >/dev/null || {
  if [ "$(id -u)" = 0 ]; then apt-get -o DPkg::Lock::Timeout=600 install -y dpkg-dev >&2
  else die "dpkg-source missing: run 'sudo apt-get install -y dpkg-dev'"; fi; }

# apt-get source needs a deb-src entry for the same mirror and suites as the binary one.
if ! grep -rqs '^\(Types:.*deb-src\|deb-src \)' /etc/apt/sources.list /etc/apt/sources.list.d/; then
  src=/etc/apt/sources.list.d/csac-deb-src.sources
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    entry=$(sed 's/^Types:.*/Types: deb-src/' /etc/apt/sources.list.d/debian.sources)
  elif [ -f /etc/apt/sources.list ]; then
    entry=$(grep '^deb ' /etc/apt/sources.list | sed 's/^deb /deb-src /')
    src=/etc/apt/sources.list.d/csac-deb-src.list
  else
    die "no apt sources found to derive a deb-src entry from"
  fi
  if [ "$(id -u)" = 0 ]; then printf '%s\n' "$entry" > "$src"
  else die "apt-get source needs a deb-src entry. As root, write this to $src and rerun:
$entry"; fi
  apt-get -o DPkg::Lock::Timeout=600 update >&2 || die "apt-get update failed"
fi

tmp=$(mktemp -d "$root/third_party.tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
( cd "$tmp" && apt-get source -qq zlib nifticlib >&2 ) || {
  # A stale package list can name versions the mirror no longer has.
  [ "$(id -u)" = 0 ] && apt-get -o DPkg::Lock::Timeout=600 update >&2 &&
  ( cd "$tmp" && apt-get source -qq zlib nifticlib >&2 ); } ||
  die "'apt-get source zlib nifticlib' failed (no network to the Debian mirror, or no deb-src entry)"
zdir=$(find "$tmp" -maxdepth 1 -type d -name 'zlib-*' | head -1)
ndir=$(find "$tmp" -maxdepth 1 -type d -name 'nifticlib-*' | head -1)
[ -f "$zdir/inflate.c" ] || die "zlib source not found in the fetched package"
[ -f "$ndir/nifti2/nifti2_io.c" ] || die "nifti2/nifti2_io.c not found in the fetched nifticlib package"
rm -rf "$dest"
mkdir -p "$dest"
mv "$zdir" "$dest/zlib"
mv "$ndir" "$dest/nifticlib"
touch "$dest/.complete"
echo "fetch-deps: zlib and nifticlib sources in $dest" >&2
