#!/bin/sh
# fetch_fashion.sh — put the four raw Fashion-MNIST files into data/fashion-mnist/ (or --dir DIR)
# and MD5-check them (data/fashion-mnist.md5: the raw files of Debian's dataset-fashion-mnist).
#
# usage: sh data/fetch_fashion.sh [--dir DIR] [--offline] [--help]
#
# Sources, each used only for the files still missing: files already in DIR (raw or NAME.gz);
# Debian's package dataset-fashion-mnist (/usr/share/datasets/fashion-mnist/NAME.gz), installed
# with tools/setup-deps.sh --fashion when it is not there (not with --offline). A file with the
# wrong MD5 is an error naming it and is never used; files are written under a temporary name
# and renamed. Running again when all four files are valid does nothing.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
sums="$here/fashion-mnist.md5"
dir="$here/fashion-mnist"
system=${CNNLAB_FASHION_SYSTEM_DIR:-/usr/share/datasets/fashion-mnist}
offline=0
while [ $# -gt 0 ]; do
  case "$1" in
  --dir) dir=${2:?--dir needs a value}; shift 2 ;;
  --dir=*) dir=${1#--dir=}; shift ;;
  --offline) offline=1; shift ;;
  -h | --help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "fetch_fashion.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
  esac
done

md5_of() { md5sum "$1" | awk '{print $1}'; }
expected() { awk -v f="$1" '$2 == f {print $1}' "$sums"; }
mkdir -p "$dir"

# Tries to place file $1 from the gzip $2; 0 when the file is in place and valid.
from_gz() {
  [ -f "$2" ] || return 1
  tmp="$dir/.$1.tmp.$$"
  gzip -dc "$2" >"$tmp" || { rm -f "$tmp"; return 1; }
  got=$(md5_of "$tmp")
  if [ "$got" != "$(expected "$1")" ]; then
    rm -f "$tmp"
    echo "fetch_fashion.sh: error: $2 unpacks to a $1 with MD5 $got, expected $(expected "$1")" >&2
    exit 1
  fi
  mv "$tmp" "$dir/$1"
}

missing() {
  out=""
  for f in $(awk '{print $2}' "$sums"); do
    if [ -f "$dir/$f" ]; then
      got=$(md5_of "$dir/$f")
      if [ "$got" != "$(expected "$f")" ]; then
        echo "fetch_fashion.sh: error: $dir/$f has MD5 $got, expected $(expected "$f"); remove it" >&2
        exit 1
      fi
    else
      out="$out $f"
    fi
  done
  echo $out
}

todo=$(missing)
[ -z "$todo" ] && exit 0
for f in $todo; do from_gz "$f" "$dir/$f.gz" || from_gz "$f" "$system/$f.gz" || true; done
todo=$(missing)
if [ -n "$todo" ] && [ "$offline" = 0 ]; then
  sh "$here/../tools/setup-deps.sh" --for "make data" --no-data --fashion \
    --why "for the data set colored_fashion_mnist" || true
  for f in $todo; do from_gz "$f" "$system/$f.gz" || true; done
  todo=$(missing)
fi
if [ -n "$todo" ]; then
  echo "fetch_fashion.sh: error: Fashion-MNIST's $todo not found; install Debian's dataset-fashion-mnist or put the files (raw or .gz) into $dir" >&2
  exit 1
fi
echo "fetch_fashion.sh: Fashion-MNIST is in $dir (MD5-checked)" >&2
