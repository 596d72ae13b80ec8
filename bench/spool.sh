#!/usr/bin/env bash
# bench/spool.sh - durable SEND against plain SEND, in the same run, on
# the same daemon (bench/README.md, "Durable SEND"; issue 16).
#
#   bench/spool.sh [--cells "32x64"] [--n N] [--reps R] [--window US] [--dir DIR]
#
# One daemon, the null sink, two routes that differ only in
# `durable = yes`: keys d* are spooled (ACCEPTED after the group commit's
# fdatasync), keys p* are not. For each P x D cell and repetition,
# bench/loadgen --send runs against p then d (interleaved), and the
# table gives items/s, p50, p99 and daemon CPU per item, plus the ratio
# durable/plain of the medians. The spool lives in --dir (default: a
# temporary directory under $TMPDIR or /tmp; its file system is printed,
# since fdatasync's cost is the file system's). --window sets
# spool_sync_window_us (default 0: one commit per loop pass).
# Needs `make all bench-build` first (build/ or $BUILD).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
B=$top/$BUILD
cells="32x64"
n=200000
reps=3
window=0
dir=""
while [ $# -gt 0 ]; do
    case $1 in
    --cells) cells=$2; shift 2 ;;
    --n) n=$2; shift 2 ;;
    --reps) reps=$2; shift 2 ;;
    --window) window=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    *) echo "usage: $0 [--cells \"PxD ...\"] [--n N] [--reps R] [--window US] [--dir DIR]" >&2; exit 2 ;;
    esac
done

tmp=$(mktemp -d)
bd_pid=""
cleanup() {
    [ -n "$bd_pid" ] && kill "$bd_pid" 2>/dev/null && wait "$bd_pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
spool=${dir:-$tmp/spool}

cat >"$tmp/batchd.conf" <<CONF
[daemon]
socket = $tmp/s.sock
log_level = warn
spool_dir = $spool
spool_sync_window_us = $window
[sink.n]
plugin = null
[route.durable]
match = d*
sink = n
durable = yes
max_items = 1000
[route.plain]
match = p*
sink = n
max_items = 1000
CONF
"$B/batchd" -c "$tmp/batchd.conf" --sink-dir "$B/sinks" 2>"$tmp/batchd.log" &
bd_pid=$!
for _ in $(seq 100); do [ -S "$tmp/s.sock" ] && break; sleep 0.1; done
mkdir -p "$spool"
echo "spool: $spool on $(df -T "$spool" | awk 'NR == 2 {print $2}'), spool_sync_window_us = $window"

get() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$line"; }
median() { sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
printf '| route | P x D | items/s | p50 us | p99 us | daemon CPU ns/item |\n'
printf '|---|---|---|---|---|---|\n'
for cell in $cells; do
    p=${cell%x*} d=${cell#*x}
    per=$(( n / p > 1000 ? n / p : 1000 ))
    : >"$tmp/p.ips"; : >"$tmp/d.ips"
    for _ in $(seq "$reps"); do
        for route in p d; do
            line=$("$B/bench/loadgen" --proto batchd --send -s "$tmp/s.sock" \
                -P "$p" -D "$d" -n "$per" -k "${route}0" -p "$bd_pid" -l "$route")
            [ "$(get failed)" = 0 ] || { echo "$line" >&2; exit 1; }
            printf '| %s | %s | %s | %s | %s | %s |\n' \
                "$([ $route = d ] && echo durable || echo plain)" "$cell" \
                "$(get items_s)" "$(get p50_us)" "$(get p99_us)" "$(get srv_ns_item)"
            get items_s >>"$tmp/$route.ips"
        done
    done
    pm=$(median <"$tmp/p.ips") dm=$(median <"$tmp/d.ips")
    echo
    echo "$cell: median items/s plain $pm, durable $dm, ratio $(awk -v a="$dm" -v b="$pm" 'BEGIN {printf "%.2f", a / b}')"
done
line=$("$top/$BUILD/batchctl" -s "$tmp/s.sock" stats --json 2>/dev/null || true)
syncs=$(sed -n 's/.*"spool_syncs":\([0-9]*\).*/\1/p' <<<"$line")
us=$(sed -n 's/.*"spool_sync_us_total":\([0-9]*\).*/\1/p' <<<"$line")
items=$(sed -n 's/.*"spool_items":\([0-9]*\).*/\1/p' <<<"$line")
maxus=$(sed -n 's/.*"spool_sync_us_max":\([0-9]*\).*/\1/p' <<<"$line")
[ -n "$syncs" ] && [ "$syncs" -gt 0 ] &&
    echo "commits: $syncs for $items items ($(( items / syncs )) per commit), mean $(( us / syncs )) us, max $maxus us"
