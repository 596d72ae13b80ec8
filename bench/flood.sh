#!/usr/bin/env bash
# bench/flood.sh - hash flooding benchmark (issue 10, item 1).
#
# For each of R repetitions, interleaved: a fresh daemon (null sink, one
# `size` route whose batches never fill, so every key stays in the key
# table), then bench/flood sends N keys from one connection while a
# second connection pings; once with keys that all collide under the
# old unkeyed FNV-1a, once with random keys of the same length. Prints
# each run and the medians:
#
#   admit ratio = admit time (fnv keys) / admit time (random keys)
#   ping max    = slowest ping round trip during a flood
#
# Targets: ratio <= 2, ping max < 50 ms.
#
#   bench/flood.sh [-n KEYS] [-r REPS] [-w]  default 40000 keys, 3 reps
#
# -w: the route is `immediate` and its sink's one call slot stays busy
# (max_concurrency = 1, a sink call of 60 s), so every key waits on the
# daemon's list of keys waiting for a global slot instead (a second
# place where many keys could cost the square of their number).
#
# BATCHD_BIN, BATCHD_SINK_DIR and FLOOD_BIN pick other binaries (say,
# an older build to compare); default $BUILD (build/).
set -u

top=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
n=40000 reps=3 wait=0
while getopts n:r:w o; do
    case $o in
    n) n=$OPTARG ;;
    r) reps=$OPTARG ;;
    w) wait=1 ;;
    *) sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
    esac
done
batchd=${BATCHD_BIN:-$top/$BUILD/batchd}
sinks=${BATCHD_SINK_DIR:-$top/$BUILD/sinks}
flood=${FLOOD_BIN:-$top/$BUILD/bench/flood}
for f in "$batchd" "$flood" "$sinks/null.so"; do
    [ -e "$f" ] || { echo "flood.sh: $f missing (make bench-build)" >&2; exit 1; }
done

tmp=$(mktemp -d /tmp/batchd-flood.XXXXXX)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT
if [ "$wait" = 1 ]; then
    daemon_extra="max_concurrency = 1
shutdown_grace_ms = 100"
    sink="plugin = cost
call_us = 60000000"
    route="policy = immediate"
else
    daemon_extra= sink="plugin = null" route="policy = size
max_items = 100000"
fi
cat >"$tmp/flood.conf" <<EOF
[daemon]
socket = $tmp/s.sock
sink_dir = $sinks
log_level = error
$daemon_extra

[sink.n]
$sink

[route.flood]
match = flood.*
sink = n
$route
EOF

# one MODE -> the flood line on stdout
one() {
    local out rc
    "$batchd" -c "$tmp/flood.conf" 2>>"$tmp/daemon.log" &
    pid=$!
    for _ in $(seq 200); do [ -S "$tmp/s.sock" ] && break; sleep 0.05; done
    out=$("$flood" -s "$tmp/s.sock" -n "$n" -m "$1")
    rc=$?
    kill -TERM "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    pid=
    echo "$out"
    return $rc
}

# median of the numbers on stdin
median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
field() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p"; }

status=0
: >"$tmp/fnv" ; : >"$tmp/random"
for r in $(seq "$reps"); do
    for mode in fnv random; do
        line=$(one "$mode") || status=1
        echo "rep $r: $line"
        echo "$line" >>"$tmp/$mode"
    done
done
fa=$(field admit_s <"$tmp/fnv" | median)
ra=$(field admit_s <"$tmp/random" | median)
fp=$(field ping_max_ms <"$tmp/fnv" | median)
rp=$(field ping_max_ms <"$tmp/random" | median)
echo "medians of $reps: fnv keys admit ${fa} s, ping max ${fp} ms;" \
     "random keys admit ${ra} s, ping max ${rp} ms"
awk -v f="$fa" -v r="$ra" -v p="$fp" 'BEGIN {
    printf "admit ratio fnv/random: %.2f (target <= 2); ping max during the fnv flood: %s ms (target < 50)\n", f / r, p }'
[ -s "$tmp/daemon.log" ] && { echo "daemon log:"; tail -n 5 "$tmp/daemon.log"; }
exit $status
