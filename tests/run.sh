#!/bin/sh
# Runs every test suite — the C test programs and the busted specs under the cnnlab
# interpreter — and ends with one line: "N passed, N failed". Exit status 1 on any failure.
# BUILD selects the build directory (build, build-asan, ...); SPECS limits the Lua specs.
BUILD=${BUILD:-build}
EXE="$BUILD/cnnlab"
BUSTED=${BUSTED:-$(command -v busted || echo /usr/bin/busted)}
SPECS=${SPECS:-$(ls tests/*_spec.lua 2>/dev/null)}
passed=0
failed=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT

count() { # $1: suite name, $2: seconds; reads "N passed, N failed" from the log's last line
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1)
  if [ -z "$line" ]; then
    echo "  $1: no result line (crashed?)"
    failed=$((failed + 1))
    return
  fi
  p=${line%% passed*}
  f=${line#*, }
  f=${f%% failed*}
  passed=$((passed + p))
  failed=$((failed + f))
  echo "  $1: $line ($2 s)"
}

for t in "$BUILD"/tests/test_*; do
  [ -x "$t" ] || continue
  t0=$(date +%s)
  "$t" >"$log" 2>&1
  status=$?
  count "$(basename "$t")" "$(($(date +%s) - t0))"
  if [ $status -ne 0 ]; then
    grep -E '^FAIL|ERROR|Sanitizer|runtime error' "$log" | head -20
    grep -qE '^[0-9]+ passed, [1-9]' "$log" || failed=$((failed + 1))
  fi
done

# busted's TAP output: one "ok N - name" or "not ok N - name" line per test.
for spec in $SPECS; do
  t0=$(date +%s)
  CNNLAB_BIN="$EXE" "$EXE" "$BUSTED" --output=TAP "$spec" >"$log" 2>&1
  status=$?
  # pending cases come out as "ok N - name # SKIP": counted apart, not as passed
  k=$(grep -E '^ok ' "$log" | grep -c '# SKIP')
  p=$(($(grep -cE '^ok ' "$log") - k))
  f=$(grep -cE '^not ok ' "$log")
  if [ $status -ne 0 ] && [ "$f" -eq 0 ]; then
    f=1 # the spec did not load or the process died
  fi
  passed=$((passed + p))
  failed=$((failed + f))
  if [ "$k" -gt 0 ]; then
    echo "  $spec: $p passed, $f failed, $k pending ($(($(date +%s) - t0)) s)"
  else
    echo "  $spec: $p passed, $f failed ($(($(date +%s) - t0)) s)"
  fi
  [ $status -eq 0 ] || grep -vE '^ok ' "$log" | head -60
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
