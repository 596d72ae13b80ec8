#!/bin/bash
# fuzz/run.sh - run the libFuzzer targets (called by mk/fuzz.mk).
#
#   fuzz/run.sh replay 0 TARGET...     every corpus file once (-runs=0)
#   fuzz/run.sh fuzz SECONDS TARGET... fuzz each target SECONDS seconds
#
# Each target works on a scratch copy of fuzz/corpus/TARGET under
# $FUZZ_BUILD/run/TARGET/ (corpus/, artifacts/, log), so fuzzing never
# grows the committed corpus. Prints one line per target and a summary
# "fuzz: N targets ok, N failed"; exits non-zero when any target failed.
set -u

mode=${1:?usage: run.sh replay|fuzz SECONDS TARGET...}
secs=${2:?usage: run.sh replay|fuzz SECONDS TARGET...}
shift 2
build=${FUZZ_BUILD:-build-fuzz}
ok=0
failed=0

# The value of "stat::NAME: V" in the final stats, or "?".
stat() {
    sed -n "s/^stat::$1: *//p" "$2" | tail -n 1 | grep . || echo '?'
}

for t in "$@"; do
    bin=$build/fuzz_$t
    work=$build/run/$t
    log=$work/log
    rm -rf "$work"
    mkdir -p "$work/corpus" "$work/artifacts"
    cp fuzz/corpus/"$t"/* "$work/corpus/"
    seeds=$(ls "$work/corpus" | wc -l)
    args=(-detect_leaks=1 -timeout=20 -rss_limit_mb=2048 -print_final_stats=1
          -artifact_prefix="$work/artifacts/")
    if [ "$mode" = replay ]; then
        args+=(-runs=0)
    else
        args+=(-max_total_time="$secs" -print_pcs=0)
    fi
    "$bin" "${args[@]}" "$work/corpus" >"$log" 2>&1
    rc=$?
    runs=$(stat number_of_executed_units "$log")
    eps=$(stat average_exec_per_sec "$log")
    cov=$(grep -o 'cov: [0-9]* ft: [0-9]*' "$log" | tail -n 1)
    if [ $rc -eq 0 ]; then
        ok=$((ok + 1))
        echo "fuzz_$t: ok: $runs runs, $eps exec/s, ${cov:-cov: ?}," \
             "corpus $seeds -> $(ls "$work/corpus" | wc -l) files"
    else
        failed=$((failed + 1))
        echo "fuzz_$t: FAILED (exit $rc) after $runs runs; log: $log"
        for a in "$work"/artifacts/*; do
            [ -e "$a" ] && echo "fuzz_$t: input: $a ($(od -An -tx1 -v "$a" |
                tr -d '\n' | cut -c1-300))"
        done
        grep -E -A 30 '^(==[0-9]+==ERROR|fuzz_[a-z]+: )' "$log" | head -n 60 |
            sed "s/^/fuzz_$t: | /"
        if [ "$mode" = replay ]; then
            # The run stops at the first failure: name every failing file.
            for f in fuzz/corpus/"$t"/*; do
                if ! "$bin" -timeout=20 "$f" >"$work/one.log" 2>&1; then
                    why=$(grep -E -m1 '^(==[0-9]+==ERROR|fuzz_[a-z]+: |SUMMARY)' \
                          "$work/one.log")
                    echo "fuzz_$t: fails: $f: $why"
                fi
            done
        fi
    fi
done
echo "fuzz: $ok targets ok, $failed failed"
[ $failed -eq 0 ]
