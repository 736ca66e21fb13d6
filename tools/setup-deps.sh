#!/bin/sh
# setup-deps.sh — install the Debian packages that `make demo` and `make test` need, if missing.
#
# usage: sh tools/setup-deps.sh [--for NAME] [--why TEXT] [--no-data] [--fashion] [--list]
#
# The Makefile runs it first for the goals demo and test. It checks each required package with
# dpkg-query (installed, not merely known to dpkg) and, when some are missing, says in one line
# what it installs and why, then runs `apt-get install -y` (through sudo when not root; when
# that fails, one `apt-get update` and a second try). While MNIST is not yet in data/mnist/,
# curl and ca-certificates join the list (data/fetch.sh downloads with them), and so does npm,
# unless a Node.js with its own npm is there (Debian's npm conflicts with the nodesource build).
# Optional packages (chromium, openmpi, luarocks) are never installed here: see docs/install.md.
#
#   --for NAME   who asks, at the start of each message (the Makefile: "make test", "make demo")
#   --why TEXT   what the required packages are for (default: to build and run cnnlab and its tests)
#   --no-data    leave MNIST's download tools out
#   --fashion    also Debian's dataset-fashion-mnist, while Fashion-MNIST is neither in
#                data/fashion-mnist/ nor in /usr/share/datasets/fashion-mnist/ (data/fetch_fashion.sh)
#   --list       print the required packages and exit
# Environment:
#   NO_INSTALL=1              install nothing: print the command to run and exit 1 if any is missing
#   CNNLAB_REQUIRED_PACKAGES  replaces the list of required packages
#   BLAS=none                 the build without OpenBLAS: libopenblas-dev is not required
#   CNNLAB_MNIST_DIR          where MNIST is looked for (default data/mnist/)
# Exit status 0 when every package is installed (or was just installed), 1 otherwise. Where there
# is no dpkg-query or apt-get (not Debian) it does nothing and exits 0: the Makefile's pkg-config
# check then names what is missing.
set -u

root=$(cd "$(dirname "$0")/.." && pwd)
label=setup-deps
why_required="to build and run cnnlab and its tests"
data=1
fashion=0
list_only=0
while [ $# -gt 0 ]; do
  case "$1" in
  --for) label=${2:?--for needs a name}; shift 2 ;;
  --why) why_required=${2:?--why needs a text}; shift 2 ;;
  --no-data) data=0; shift ;;
  --fashion) fashion=1; shift ;;
  --list) list_only=1; shift ;;
  *) echo "setup-deps.sh: unknown option '$1'" >&2; exit 2 ;;
  esac
done

required=${CNNLAB_REQUIRED_PACKAGES:-"build-essential pkg-config liblua5.4-dev lua5.4 zlib1g-dev
  libpng-dev libopenblas-dev libcjson-dev libreadline-dev lua-busted lua-cjson"}
if [ "${BLAS:-openblas}" != openblas ]; then
  required=$(echo $required | tr ' ' '\n' | grep -vx libopenblas-dev | tr '\n' ' ')
fi
required=$(echo $required) # one line, single spaces

if [ "$list_only" = 1 ]; then
  echo "$required"
  exit 0
fi

command -v dpkg-query >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 || exit 0

# The packages of $* that are not installed, on one line.
missing_of() {
  have=$(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "$@" 2>/dev/null |
    awk '$2 == "installed" {print $1}')
  out=""
  for p in "$@"; do
    echo "$have" | grep -qx -- "$p" || out="$out $p"
  done
  echo $out
}

need_build=$(missing_of $required)

# MNIST's download tools, only while the four files are not all in data/mnist/.
need_data=""
mnist=${CNNLAB_MNIST_DIR:-$root/data/mnist}
mnist_missing=0
for f in $(awk '{print $2}' "$root/data/mnist.md5"); do
  [ -f "$mnist/$f" ] || [ -f "$mnist/$f.gz" ] || mnist_missing=1
done
if [ "$data" = 1 ] && [ "$mnist_missing" = 1 ]; then
  need_data=$(missing_of curl ca-certificates)
  if ! command -v npm >/dev/null 2>&1 &&
    ! dpkg-query -W -f='${Version}' nodejs 2>/dev/null | grep -q nodesource; then
    need_data=$(echo $need_data $(missing_of npm))
  fi
fi

# Fashion-MNIST (the data set colored_fashion_mnist), only when asked for and not found.
if [ "$fashion" = 1 ]; then
  fashion_missing=0
  for f in $(awk '{print $2}' "$root/data/fashion-mnist.md5"); do
    [ -f "$root/data/fashion-mnist/$f" ] || [ -f "/usr/share/datasets/fashion-mnist/$f.gz" ] ||
      fashion_missing=1
  done
  [ "$fashion_missing" = 1 ] && need_data=$(echo $need_data $(missing_of dataset-fashion-mnist))
fi

[ -n "$need_build$need_data" ] || exit 0

all=$(echo $need_build $need_data)
why=""
[ -n "$need_build" ] && why="$need_build ($why_required)"
[ -n "$need_data" ] && why="${why:+$why, }$need_data (to download MNIST into data/mnist/)"
[ -n "$need_data" ] && [ "$fashion" = 1 ] && why="$why (dataset-fashion-mnist: Fashion-MNIST for colored_fashion_mnist)"

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  sudo=sudo
  if ! command -v sudo >/dev/null 2>&1; then
    echo "$label: missing Debian packages: $why; installing them needs root and there is no sudo: as root, run: apt-get install -y $all" >&2
    exit 1
  fi
fi

if [ "${NO_INSTALL:-0}" != 0 ] && [ -n "${NO_INSTALL:-}" ]; then
  echo "$label: missing Debian packages: $why; NO_INSTALL=1 (or make -n), so nothing is installed; run: ${sudo:+sudo }apt-get install -y $all" >&2
  exit 1
fi

echo "$label: installing missing Debian packages with ${sudo:+sudo }apt-get install -y: $why" >&2
log=$(mktemp "${TMPDIR:-/tmp}/cnnlab-apt.XXXXXX")
apt() {
  # A lock held by another apt or dpkg run is waited for (up to 5 minutes), not an error.
  echo "\$ ${sudo:+sudo }apt-get $*" >>"$log"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 "$@" >>"$log" 2>&1
}
if apt install -y --no-install-recommends $all ||
  { apt update; apt install -y --no-install-recommends $all; }; then
  rm -f "$log"
  exit 0
fi
echo "$label: apt-get install -y $all failed; the end of its log ($log):" >&2
tail -n 15 "$log" | sed 's/^/  /' >&2
exit 1
