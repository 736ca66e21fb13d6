#!/bin/sh
# tests/valgrind.sh EXE — runs tests/valgrind_train.lua (a short training run with checkpoint,
# resume, evaluation and file output) under valgrind's memcheck. Fails on any memory error or
# any definitely-lost byte; "possibly lost" and "still reachable" blocks (the thread pools of
# OpenMP and OpenBLAS, the core's block cache) are reported but allowed. Ends with the usual
# "N passed, N failed" line.
exe=${1:-build/cnnlab}
command -v valgrind >/dev/null 2>&1 || { echo "check-valgrind: valgrind is not installed (apt-get install valgrind)"; echo "0 passed, 1 failed"; exit 1; }
out=$(mktemp -d)
log=$out/valgrind.log
trap 'rm -rf "$out"' EXIT
CNNLAB_THREADS=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 valgrind --tool=memcheck \
  --leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=definite \
  --error-exitcode=99 --num-callers=30 --log-file="$log" \
  "$exe" tests/valgrind_train.lua "$out"
status=$?
grep -E "ERROR SUMMARY|definitely lost|indirectly lost|possibly lost|still reachable" "$log"
if [ $status -eq 0 ]; then
  echo "check-valgrind: no memory errors, no definitely-lost bytes"
  echo "1 passed, 0 failed"
else
  echo "check-valgrind: FAILED (exit $status); the report:"
  sed -n '/HEAP SUMMARY/,$p' "$log" | head -80
  grep -B2 -A25 "Invalid\|uninitialised\|definitely lost in" "$log" | head -120
  echo "0 passed, 1 failed"
  exit 1
fi
