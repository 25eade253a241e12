#!/usr/bin/env bash
# Fetches the sources of zlib, nifti_clib and libdeflate through Debian's
# package manager (apt-get source) into third_party/ (git-ignored). Nothing
# third-party is committed. Idempotent: does nothing when third_party/.complete
# (zlib + nifticlib) and third_party/libdeflate/lib/deflate_decompress.c exist;
# a tree fetched before libdeflate was added gets only libdeflate.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dest="$root/third_party"
pkgs=""
[ -f "$dest/.complete" ] || pkgs="zlib nifticlib"
[ -f "$dest/libdeflate/lib/deflate_decompress.c" ] || pkgs="$pkgs libdeflate"
pkgs=${pkgs# }
[ -z "$pkgs" ] && exit 0

die() { echo "fetch-deps: $*" >&2; exit 1; }
command -v apt-get >/dev/null || die "apt-get not found. This build fetches zlib, nifticlib and libdeflate sources with
  'apt-get source zlib nifticlib libdeflate' (Debian/Ubuntu). On other systems unpack zlib >= 1.2.13, nifticlib 3.0.x
  and libdeflate 1.14 into $dest/zlib, $dest/nifticlib and $dest/libdeflate and create $dest/.complete."
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
( cd "$tmp" && apt-get source -qq $pkgs >&2 ) || {
  # A stale package list can name versions the mirror no longer has.
  [ "$(id -u)" = 0 ] && apt-get -o DPkg::Lock::Timeout=600 update >&2 &&
  ( cd "$tmp" && apt-get source -qq $pkgs >&2 ); } ||
  die "'apt-get source $pkgs' failed (no network to the Debian mirror, or no deb-src entry)"
mkdir -p "$dest"
case " $pkgs " in *" zlib "*)
  zdir=$(find "$tmp" -maxdepth 1 -type d -name 'zlib-*' | head -1)
  ndir=$(find "$tmp" -maxdepth 1 -type d -name 'nifticlib-*' | head -1)
  [ -f "$zdir/inflate.c" ] || die "zlib source not found in the fetched package"
  [ -f "$ndir/nifti2/nifti2_io.c" ] || die "nifti2/nifti2_io.c not found in the fetched nifticlib package"
  rm -rf "$dest/zlib" "$dest/nifticlib"
  mv "$zdir" "$dest/zlib"
  mv "$ndir" "$dest/nifticlib" ;;
esac
case " $pkgs " in *" libdeflate "*)
  ddir=$(find "$tmp" -maxdepth 1 -type d -name 'libdeflate-*' | head -1)
  [ -f "$ddir/lib/deflate_decompress.c" ] || die "lib/deflate_decompress.c not found in the fetched libdeflate package"
  rm -rf "$dest/libdeflate"
  mv "$ddir" "$dest/libdeflate" ;;
esac
touch "$dest/.complete"
echo "fetch-deps: $pkgs sources in $dest" >&2
