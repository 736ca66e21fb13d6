#!/bin/sh
# fuzz/run.sh BUILD_DIR SECONDS TARGET... — runs each libFuzzer target for SECONDS seconds
# (one after the other, at low priority: FUZZ_NICE, default "nice -n 10"), starting from the
# generated seeds (BUILD_DIR/seeds/T) and the corpus earlier runs grew (BUILD_DIR/corpus/T).
# Prints one line per target: executions, seconds, corpus size, and whether it found anything;
# then "N passed, N failed" (a target passes when it found nothing), as .ci/run expects.
# A finding is saved as BUILD_DIR/artifacts/T-crash-... and makes the exit status 1; once the
# bug is fixed, copy the file into fuzz/regressions/T/ so `make test` replays it for good.
set -u
dir=$1
seconds=$2
shift 2
nice_cmd=${FUZZ_NICE-nice -n 10}
status=0
passed=0
failed=0
mkdir -p "$dir/artifacts"
for t in "$@"; do
  corpus="$dir/corpus/$t"
  mkdir -p "$corpus"
  dict=""
  [ -f "fuzz/$t.dict" ] && dict="-dict=fuzz/$t.dict"
  log="$dir/fuzz_$t.log"
  start=$(date +%s)
  # -timeout: an input taking 10 s is a finding (a hang); -rss_limit_mb: so is a blow-up;
  # regressions/ joins the seeds so old findings stay in the corpus.
  # shellcheck disable=SC2086
  $nice_cmd "$dir/fuzz_$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -max_len=16384 -print_final_stats=1 -artifact_prefix="$dir/artifacts/$t-" $dict \
    "$corpus" "$dir/seeds/$t" "fuzz/regressions/$t" >"$log" 2>&1
  rc=$?
  took=$(($(date +%s) - start))
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  [ -n "$runs" ] || runs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$log" | tail -n 1)
  size=$(ls "$corpus" | wc -l)
  if [ $rc -eq 0 ]; then
    passed=$((passed + 1))
    echo "fuzz $t: ${runs:-?} executions in $took s, corpus $size files, no finding"
  else
    status=1
    failed=$((failed + 1))
    echo "fuzz $t: FINDING after ${runs:-?} executions in $took s (exit $rc); log $log:"
    grep -E 'ERROR|SUMMARY|invariant|Test unit written|runtime error' "$log" | head -20
  fi
done
echo "$passed passed, $failed failed"
exit $status
