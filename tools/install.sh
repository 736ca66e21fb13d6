#!/bin/sh
# install.sh — the work of `make install`, `make uninstall` and `make rock-install` (luarocks).
#
# usage: sh tools/install.sh install   DESTDIR PREFIX EXE CORE_SO LIB_A
#        sh tools/install.sh uninstall DESTDIR PREFIX
#        sh tools/install.sh rock      LUADIR LIBDIR CORE_SO
#
# install puts, under DESTDIR/PREFIX (docs/install.md):
#   bin/cnnlab                      the interpreter
#   share/lua/5.4/cnnlab/...        every file of lua/cnnlab/, subfolders included
#   lib/lua/5.4/cnnlab/core.so      the C module, for plain lua5.4
#   lib/libcnnlab.a                 the C core
#   share/cnnlab/installed-files    what it put there: each file, and each folder it created
# /usr/local and /usr are on Debian's lua5.4 search paths; for any other PREFIX it prints the
# two lines (LUA_PATH, LUA_CPATH) that put it there. Installing again removes the files of the
# previous install that this one no longer has (a module moved into a folder would otherwise be
# shadowed by its old file). uninstall removes exactly what the list names — the files, then
# the folders install created, when they are empty — and the list itself.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
LIST=share/cnnlab/installed-files

die() {
  echo "make $1: error: $2" >&2
  exit 1
}

# The Lua files to install, one path relative to lua/ a line (cnnlab/init.lua, cnnlab/debias/erm.lua).
lua_files() {
  (cd "$root/lua" && find cnnlab -type f ! -name '.*' ! -name '*~' | LC_ALL=C sort)
}

# rock LUADIR LIBDIR CORE_SO: luarocks keeps its own record of what it installed.
if [ "${1:-}" = rock ]; then
  [ $# -eq 4 ] || die rock-install "usage: install.sh rock LUADIR LIBDIR CORE_SO"
  luadir=$2 libdir=$3 core=$4
  [ -n "$luadir" ] && [ -n "$libdir" ] || die rock-install "INST_LUADIR and INST_LIBDIR must be set (luarocks sets them)"
  lua_files | while IFS= read -r f; do
    install -d "$luadir/$(dirname "$f")"
    install -m 644 "$root/lua/$f" "$luadir/$f"
  done
  install -d "$libdir/cnnlab"
  install -m 755 "$core" "$libdir/cnnlab/core.so"
  exit 0
fi

mode=${1:-}
[ "$mode" = install ] || [ "$mode" = uninstall ] || die install "usage: install.sh install|uninstall|rock ..."
destdir=${2:-}
prefix=${3:-}
case "$prefix" in
/*) ;;
*) die "$mode" "PREFIX must be an absolute path, got '$prefix'" ;;
esac
while [ "$prefix" != / ] && [ "${prefix%/}" != "$prefix" ]; do prefix=${prefix%/}; done
top="$destdir$prefix"

if [ "$mode" = uninstall ]; then
  if [ ! -f "$top/$LIST" ]; then
    if [ -e "$top/share/lua/5.4/cnnlab" ] || [ -e "$top/lib/lua/5.4/cnnlab/core.so" ]; then
      die uninstall "$top has cnnlab files but no $LIST (not put there by this make install): remove $top/share/lua/5.4/cnnlab, $top/lib/lua/5.4/cnnlab, $top/bin/cnnlab and $top/lib/libcnnlab.a yourself"
    fi
    echo "make uninstall: nothing to remove: no cnnlab install under $top"
    exit 0
  fi
  listed=$(cat "$top/$LIST")
  n=0
  while IFS= read -r line; do
    case "$line" in
    "f "*) rm -f "$top/${line#f }"; n=$((n + 1)) ;;
    esac
  done <<EOF
$listed
EOF
  dirs=$(echo "$listed" | grep '^d ' | cut -c3- | LC_ALL=C sort -r)
  kept=""
  # deepest first, so that a folder's subfolders are gone before it; "." is PREFIX itself
  for d in $(echo "$dirs" | grep -vx '\.') $(echo "$dirs" | grep -x '\.'); do
    path=$top/$d
    [ "$d" != . ] || path=$top
    if [ -d "$path" ] && ! rmdir "$path" 2>/dev/null; then
      case "$kept " in
      *" $path/"*) ;; # kept because a folder inside it was: named already
      *) kept="$kept $path" ;;
      esac
    fi
  done
  echo "make uninstall: removed the $n files that make install put under $top"
  [ -z "$kept" ] || echo "make uninstall: kept, as they hold files that make install did not put there:$kept (and the folders above them)"
  exit 0
fi

# ---- install
[ $# -eq 6 ] || die install "usage: install.sh install DESTDIR PREFIX EXE CORE_SO LIB_A"
exe=$4 core=$5 liba=$6
for f in "$exe" "$core" "$liba"; do
  [ -f "$f" ] || die install "$f is not built"
done

# Each file to install: "MODE SOURCE DEST" with DEST relative to PREFIX.
plan=$(
  echo "755 $exe bin/cnnlab"
  lua_files | while IFS= read -r f; do echo "644 $root/lua/$f share/lua/5.4/$f"; done
  echo "755 $core lib/lua/5.4/cnnlab/core.so"
  echo "644 $liba lib/libcnnlab.a"
)
dests=$(echo "$plan" | cut -d' ' -f3-)

# The folders this install creates (relative to PREFIX, "." for PREFIX itself), and those a
# previous install created and listed: uninstall removes them once empty.
created=$(
  { echo "$dests"; echo "$LIST"; } | while IFS= read -r f; do
    d=$(dirname "$f")
    while :; do
      [ -d "$top/$d" ] || echo "$d"
      [ "$d" = . ] && break
      d=$(dirname "$d")
    done
  done
  if [ -f "$top/$LIST" ]; then grep '^d ' "$top/$LIST" | cut -c3- || true; fi
)
created=$(echo "$created" | grep -v '^$' | LC_ALL=C sort -u || true)
old=""
[ -f "$top/$LIST" ] && old=$(grep '^f ' "$top/$LIST" | cut -c3- | grep -vx "$LIST" || true)

echo "$plan" | while read -r m src dest; do
  install -d "$top/$(dirname "$dest")"
  install -m "$m" "$src" "$top/$dest"
done

# Files of the previous install that this one does not have.
stale=0
if [ -n "$old" ]; then
  for f in $(echo "$old" | grep -vxF "$dests" || true); do
    rm -f "$top/$f"
    stale=$((stale + 1))
  done
fi

install -d "$top/$(dirname "$LIST")"
{
  echo "$created" | grep -v '^$' | sed 's/^/d /'
  echo "$dests" | sed 's/^/f /'
  echo "f $LIST"
} >"$top/$LIST.tmp"
mv "$top/$LIST.tmp" "$top/$LIST"
chmod 644 "$top/$LIST"

n=$(echo "$dests" | wc -l)
also=""
[ "$stale" -eq 0 ] || also=" and removed $stale left by the previous install"
echo "make install: installed $n files under $top$also (listed in $top/$LIST; make uninstall${destdir:+ DESTDIR=$destdir} PREFIX=$prefix removes them)"

# Is PREFIX on Debian's lua5.4 search paths? (-E: ignore LUA_PATH and LUA_CPATH)
on_path() {
  if command -v lua5.4 >/dev/null 2>&1; then
    CNNLAB_PREFIX=$prefix lua5.4 -E -e '
      local p = os.getenv("CNNLAB_PREFIX")
      local lua = (";" .. package.path .. ";"):find(";" .. p .. "/share/lua/5.4/?.lua;", 1, true)
      local c = (";" .. package.cpath .. ";"):find(";" .. p .. "/lib/lua/5.4/?.so;", 1, true)
      os.exit(lua and c and 0 or 1)'
  else
    [ "$prefix" = /usr/local ] || [ "$prefix" = /usr ]
  fi
}
if ! on_path; then
  echo "make install: $prefix is not on lua5.4's search paths; for plain lua5.4 to require \"cnnlab\", add these two lines to your shell's start-up file:"
  echo "export LUA_PATH='$prefix/share/lua/5.4/?.lua;$prefix/share/lua/5.4/?/init.lua;;'"
  echo "export LUA_CPATH='$prefix/lib/lua/5.4/?.so;;'"
fi
