#!/usr/bin/env bash
# bench/kafka.sh - items/s and end-to-end latency through batchd into
# librdkafka's mock cluster (DESIGN section 9; bench/README.md, "Kafka").
#
#   bench/kafka.sh [--cells "1x1 32x64"] [--n N] [--linger MS] [--direct]
#
# Starts bench/kafka_mock (3 brokers, topic "bench" with 6 partitions),
# a daemon whose kafka sink produces to it, and for each P x D cell runs
# bench/loadgen: P client processes, each with D LOADs in flight, latency
# from the write of a request to the read of its reply (so it includes
# the produce and the delivery report). At the end the mock reports how
# many messages the topic holds, which must equal the OK replies.
# --direct adds the baseline (bench/kafka_direct): the same P x D cells
# with each process producing for itself (one long-lived producer, D in
# flight), and 32 one-shot senders that make a producer per item.
# Needs `make all bench-build` first (build/ or $BUILD).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
B=$top/$BUILD
cells="1x1 32x64"
n=20000
linger=""
direct=0
while [ $# -gt 0 ]; do
    case $1 in
    --direct) direct=1; shift ;;
    --cells) cells=$2; shift 2 ;;
    --n) n=$2; shift 2 ;;
    --linger) linger=$2; shift 2 ;;
    *) echo "usage: $0 [--cells \"PxD ...\"] [--n N] [--linger MS] [--direct]" >&2; exit 2 ;;
    esac
done

tmp=$(mktemp -d)
mock_pid="" bd_pid=""
cleanup() {
    [ -n "$bd_pid" ] && kill "$bd_pid" 2>/dev/null && wait "$bd_pid" 2>/dev/null
    [ -n "$mock_pid" ] && kill "$mock_pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT

# The mock serves until its stdin closes: keep a pipe to it open.
mkfifo "$tmp/mock.in"
"$B/bench/kafka_mock" -b 3 -p 6 -t bench <"$tmp/mock.in" >"$tmp/mock.out" &
mock_pid=$!
exec 3>"$tmp/mock.in"
for _ in $(seq 100); do grep -q '^bootstrap=' "$tmp/mock.out" && break; sleep 0.1; done
boot=$(sed -n 's/^bootstrap=//p' "$tmp/mock.out")
[ -n "$boot" ] || { echo "kafka_mock did not start" >&2; exit 1; }

cat >"$tmp/batchd.conf" <<CONF
[daemon]
socket = $tmp/s.sock
log_level = warn
[sink.k]
plugin = kafka
brokers = $boot
topic = bench
message_key = none
${linger:+rdkafka.linger.ms = $linger}
[route.all]
match = *
sink = k
policy = immediate
max_items = 1000
key_concurrency = 16
CONF
"$B/batchd" -c "$tmp/batchd.conf" --sink-dir "$B/sinks" 2>"$tmp/batchd.log" &
bd_pid=$!
for _ in $(seq 100); do [ -S "$tmp/s.sock" ] && break; sleep 0.1; done

ok=0
get() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$line"; }
printf '| how | P x D | items/s | p50 us | p99 us | daemon CPU ns/item |\n'
printf '|---|---|---|---|---|---|\n'
for cell in $cells; do
    p=${cell%x*} d=${cell#*x}
    per=$(( n / p > 200 ? n / p : 200 ))
    line=$("$B/bench/loadgen" --proto batchd -s "$tmp/s.sock" -P "$p" -D "$d" \
        -n "$per" -k bench -p "$bd_pid" -l kafka)
    printf '| batchd | %s | %s | %s | %s | %s |\n' "$cell" "$(get items_s)" \
        "$(get p50_us)" "$(get p99_us)" "$(get srv_ns_item)"
    ok=$(( ok + $(get replies) - $(get failed) ))
    if [ "$direct" = 1 ]; then
        line=$("$B/bench/kafka_direct" -b "$boot" -P "$p" -D "$d" -n "$per" \
            -m long -l "${linger:-1}")
        printf '| direct | %s | %s | %s | %s | - |\n' "$cell" "$(get items_s)" \
            "$(get p50_us)" "$(get p99_us)"
        [ "$(get failed_procs)" = 0 ] && ok=$(( ok + p * per ))
    fi
done
if [ "$direct" = 1 ]; then
    line=$("$B/bench/kafka_direct" -b "$boot" -P 32 -n 20 -m fresh -l "${linger:-1}")
    printf '| direct, a producer per item | 32 x 1 | %s | %s | %s | - |\n' \
        "$(get items_s)" "$(get p50_us)" "$(get p99_us)"
    [ "$(get failed_procs)" = 0 ] && ok=$(( ok + 32 * 20 ))
fi
kill "$bd_pid"; wait "$bd_pid" || true; bd_pid=""
exec 3>&-
wait "$mock_pid" || true; mock_pid=""
msgs=$(sed -n 's/^messages=//p' "$tmp/mock.out")
echo
echo "OK replies: $ok, messages in the topic: $msgs"
[ "$ok" = "$msgs" ] || { echo "MISMATCH" >&2; cat "$tmp/batchd.log" >&2; exit 1; }
