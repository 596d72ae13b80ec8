#!/usr/bin/env bash
# bench/icount.sh - instructions per item on the daemon's hot path.
#
# Runs bench/icount (the daemon's modules in one process, one connection
# over a socketpair, null sink, C frames in flight) under
# valgrind --tool=callgrind for two item counts N1 < N2 and prints
#
#   instructions per item = (Ir(N2) - Ir(N1)) / (N2 - N1)
#
# from callgrind's total Ir, which cancels start-up, config, sink loading
# and teardown. A second pair of runs with --toggle-collect=event_base_loop
# counts only what runs inside the event loop (the daemon's own work,
# without the driver's writes and reads), as a cross-check. The top 15
# functions by inclusive Ir of the larger whole-process run go to
# $ICOUNT_TOP (default bench/results/icount.txt).
#
#   bench/icount.sh [N1 N2]        default 20000 120000
#
# Environment: ICOUNT_BIN (default build/bench/icount), BATCHD_SINK_DIR
# (default build/sinks), ICOUNT_CHUNK (frames per write, default 64),
# ICOUNT_SINK (default null), ICOUNT_TOP, ICOUNT_MODE (request options:
# plain, empty, deadline, prio, dedup, join, trace; see bench/icount.c; default plain).
set -u

top=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
n1=${1:-20000}
n2=${2:-120000}
bin=${ICOUNT_BIN:-$top/$BUILD/bench/icount}
sinks=${BATCHD_SINK_DIR:-$top/$BUILD/sinks}
chunk=${ICOUNT_CHUNK:-64}
sink=${ICOUNT_SINK:-null}
mode=${ICOUNT_MODE:-plain}
top_file=${ICOUNT_TOP:-$top/bench/results/icount.txt}

if [ "$n2" -le "$n1" ]; then
    echo "icount.sh: N2 must be larger than N1" >&2
    exit 2
fi
command -v valgrind >/dev/null || { echo "icount.sh: valgrind not installed" >&2; exit 1; }
[ -x "$bin" ] || { echo "icount.sh: $bin missing (make bench-build)" >&2; exit 1; }

tmp=$(mktemp -d /tmp/batchd-icount.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

# total_ir FILE -> the "totals:" (or "summary:") line of a callgrind file
total_ir() {
    awk '/^(totals|summary):/ { print $2; exit }' "$1"
}

# run NAME N [callgrind options...] -> total Ir on stdout
run() {
    local name=$1 n=$2
    shift 2
    if ! valgrind --tool=callgrind --callgrind-out-file="$tmp/$name" "$@" \
            "$bin" -n "$n" -c "$chunk" -s "$sink" -d "$sinks" -o "$mode" \
            >"$tmp/$name.out" 2>"$tmp/$name.err"; then
        echo "icount.sh: icount -n $n failed:" >&2
        grep -v '^==' "$tmp/$name.err" | tail -n 5 >&2
        cat "$tmp/$name.out" >&2
        return 1
    fi
    total_ir "$tmp/$name"
}

all1=$(run all1 "$n1") || exit 1
all2=$(run all2 "$n2") || exit 1
loop1=$(run loop1 "$n1" --toggle-collect=event_base_loop) || exit 1
loop2=$(run loop2 "$n2" --toggle-collect=event_base_loop) || exit 1

per_all=$(( (all2 - all1) / (n2 - n1) ))
per_loop=$(( (loop2 - loop1) / (n2 - n1) ))
echo "icount: sink $sink, options $mode, ${chunk} frames per write, 64-byte payloads; $(cat "$tmp/all2.out")"
echo "icount: N1=$n1 Ir=$all1  N2=$n2 Ir=$all2"
echo "instructions per item: $per_all (whole process)  $per_loop (inside event_base_loop)  target <= ~1600"

# top_fns FILE INCLUSIVE(yes|no) -> 15 lines "Ir (pct) function [object]",
# one per function (callgrind_annotate may list a function under two
# file names), without the libc/ld start-up frames above main.
top_fns() {
    callgrind_annotate --inclusive="$2" "$1" 2>/dev/null |
        awk '/file:function/ { on = 1; getline; next }
             on && NF && !/below main|libc-start|ld-linux/ {
                 sub(/\[\/tmp\/batchd-bench[^]]*\/bin\//, "[")
                 fn = $0; sub(/^[ 0-9,]+\([ 0-9.]+%\) +/, "", fn)
                 name = fn; sub(/ \[.*$/, "", name); sub(/^.*:/, "", name)
                 if (name in seen) next
                 seen[name] = 1; print }' |
        head -n 15
}

mkdir -p "$(dirname "$top_file")"
{
    echo "# bench/icount.sh: icount -n $n2 -c $chunk -s $sink under callgrind"
    echo "# instructions per item: $per_all (whole process), $per_loop (inside event_base_loop)"
    echo "# total Ir of this run: $all2"
    echo
    echo "## top 15 functions by inclusive Ir"
    top_fns "$tmp/all2" yes
    echo
    echo "## top 15 functions by self (exclusive) Ir"
    top_fns "$tmp/all2" no
} >"$top_file"
echo "top functions of the N=$n2 run (also in $top_file):"
sed -n '5,$p' "$top_file"
