#!/usr/bin/env bash
# bench/redis_bench.sh - 256 processes x 1 GET in flight against one
# redis-server: each process talking to Redis directly (256 connections),
# vs the same processes LOADing through batchd, whose redis sink turns
# them into pipelines on a small pool (bench/README.md, "Redis sink").
#
#   bench/redis_bench.sh [--reps N] [--clients P] [--requests N] [--pool K]
#                        [--no-build] [--keep]
#
#   --reps N      repetitions, direct and batchd interleaved (default 3)
#   --clients P   client processes, one request in flight each (default 256)
#   --requests N  requests per client, 10 % warm-up (default 400)
#   --pool K      the sink's pool_size, also key_concurrency (default 4)
#
# One redis-server for the whole run (Unix socket, no persistence) holding
# "bench" = 64 bytes; a fresh batchd for each batchd run. The load is
# bench/loadgen (--proto redis --redis-get, or --proto batchd with the key
# "bench" and a sink command "GET {key}"), so both sides GET the same key
# and count the same 64-byte reply. Redis connections are sampled with
# INFO clients every 50 ms during each run (the sampler's own connection
# is not counted), redis-server's CPU time (/proc/PID/stat) per reply, and
# batchd's (loadgen's srv_ns_item: CPU inside the measured window).
# Prints a table of medians and the ratios batchd/direct.
set -u

top=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
reps=3 clients=256 requests=400 pool=4 build=1 keep=0
while [ $# -gt 0 ]; do
    case $1 in
    --reps) reps=$2; shift ;;
    --clients) clients=$2; shift ;;
    --requests) requests=$2; shift ;;
    --pool) pool=$2; shift ;;
    --no-build) build=0 ;;
    --keep) keep=1 ;;
    -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "redis_bench: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
command -v redis-server >/dev/null && command -v redis-cli >/dev/null || {
    echo "redis_bench: needs redis-server and redis-cli (apt-get install redis-server)" >&2
    exit 1
}
if [ "$build" = 1 ]; then
    make -C "$top" -j2 all "$BUILD/bench/loadgen" >/dev/null || exit 1
fi
BATCHD=$top/$BUILD/batchd SINK_DIR=$top/$BUILD/sinks LOADGEN=$top/$BUILD/bench/loadgen
tmp=$(mktemp -d /tmp/redis-bench.XXXXXX)
RSOCK=$tmp/redis.sock BSOCK=$tmp/batchd.sock
REDIS_PID="" BATCHD_PID=""

cleanup() {
    [ -n "$BATCHD_PID" ] && kill "$BATCHD_PID" 2>/dev/null && wait "$BATCHD_PID" 2>/dev/null
    [ -n "$REDIS_PID" ] && kill "$REDIS_PID" 2>/dev/null && wait "$REDIS_PID" 2>/dev/null
    [ "$keep" = 1 ] || rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_socket() { # PATH PID
    for _ in $(seq 1 500); do
        [ -S "$1" ] && return 0
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.01
    done
    return 1
}

rcli() { redis-cli -s "$RSOCK" "$@"; }

redis-server --port 0 --unixsocket "$RSOCK" --unixsocketperm 700 --save "" \
    --appendonly no --daemonize no --maxclients 4096 --dir "$tmp" \
    --logfile "$tmp/redis.log" &
REDIS_PID=$!
wait_socket "$RSOCK" "$REDIS_PID" || { echo "redis-server did not start" >&2; exit 1; }
rcli set bench "$(printf '%064d' 0)" >/dev/null

cat >"$tmp/batchd.conf" <<CONF
[daemon]
socket = $BSOCK
max_concurrency = $((pool + 2))
log_level = warn
[sink.r]
plugin = redis
socket = $RSOCK
command = GET {key}
missing = fail
pool_size = $pool
[route.all]
match = *
sink = r
policy = immediate
max_items = 256
key_concurrency = $pool
CONF

# sample_clients OUT: the largest connected_clients seen, minus the
# sampler's own connection, written to OUT when killed.
sample_clients() {
    local max=0 n
    trap 'echo $max >"$1"; exit 0' TERM
    while :; do
        n=$(rcli info clients | sed -n 's/^connected_clients:\([0-9]*\).*/\1/p')
        [ -n "$n" ] && [ $((n - 1)) -gt "$max" ] && max=$((n - 1))
        sleep 0.05
    done
}

# CPU time of pid in ms (utime + stime).
cpu_ms() { awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) * 1000 / hz }' "/proc/$1/stat"; }

# run MODE REP -> one line "MODE items_s p50 p99 conns failed redis_us" in $tmp/results
run() {
    local mode=$1 line conns sampler cpu0 redis_us bd_us
    if [ "$mode" = batchd ]; then
        rm -f "$BSOCK"
        "$BATCHD" -c "$tmp/batchd.conf" --sink-dir "$SINK_DIR" 2>>"$tmp/batchd.log" &
        BATCHD_PID=$!
        wait_socket "$BSOCK" "$BATCHD_PID" || { echo "batchd did not start" >&2; exit 1; }
        args=(--proto batchd -s "$BSOCK" -p "$BATCHD_PID")
    else
        args=(--proto redis --redis-get -s "$RSOCK" -p "$REDIS_PID")
    fi
    sample_clients "$tmp/conns" &
    sampler=$!
    cpu0=$(cpu_ms "$REDIS_PID")
    line=$("$LOADGEN" "${args[@]}" -P "$clients" -D 1 -n "$requests" -k bench \
           -l "$mode" 2>"$tmp/loadgen.err")
    kill -TERM "$sampler"
    wait "$sampler" 2>/dev/null
    conns=$(cat "$tmp/conns")
    redis_us=$(awk -v a="$cpu0" -v b="$(cpu_ms "$REDIS_PID")" -v n="$(val "$line" replies)" \
               'BEGIN { printf "%.2f", (n > 0 ? (b - a) * 1000 / n : 0) }')
    if [ "$mode" = batchd ]; then
        kill -TERM "$BATCHD_PID"
        wait "$BATCHD_PID" 2>/dev/null
        BATCHD_PID=""
    fi
    echo "$mode $line conns=$conns redis_us_item=$redis_us" >>"$tmp/raw"
    bd_us=0
    [ "$mode" = batchd ] && bd_us=$(awk -v n="$(val "$line" srv_ns_item)" 'BEGIN { printf "%.2f", n / 1000 }')
    echo "$mode $(val "$line" items_s) $(val "$line" p50_us) $(val "$line" p99_us) $conns" \
         "$(val "$line" failed) $redis_us $bd_us" >>"$tmp/results"
    echo "  rep $2 $mode: $(val "$line" items_s) items/s, p50 $(val "$line" p50_us) us," \
         "p99 $(val "$line" p99_us) us, $conns connections, redis CPU $redis_us us/item," \
         "batchd CPU $bd_us us/item," \
         "failed $(val "$line" failed)" >&2
}

val() { [[ $1 =~ (^|[[:space:]])$2=([^[:space:]]*) ]] && echo "${BASH_REMATCH[2]}"; }

# median MODE COLUMN
median() {
    awk -v m="$1" -v c="$2" '$1 == m { print $c }' "$tmp/results" | sort -g |
        awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

echo "redis_bench: $clients processes x 1 in flight, $requests GETs each, $reps reps, pool_size $pool ($(redis-server --version | sed 's/ sha=.*//'), $(nproc) CPUs)" >&2
for rep in $(seq 1 "$reps"); do
    run direct "$rep"
    run batchd "$rep"
done

failed=$(awk '{ s += $6 } END { print s + 0 }' "$tmp/results")
printf '\n| %s | items/s | p50 us | p99 us | Redis connections | Redis CPU us/item | batchd CPU us/item |\n' \
    "$clients x 1 GET (median of $reps)"
printf '|---|---|---|---|---|---|---|\n'
for m in direct batchd; do
    printf '| %s | %.0f | %.0f | %.0f | %s | %.2f | %s |\n' "$m" "$(median $m 2)" "$(median $m 3)" \
        "$(median $m 4)" "$(median $m 5)" "$(median $m 7)" \
        "$([ $m = batchd ] && printf %.2f "$(median $m 8)" || echo -)"
done
awk -v a="$(median batchd 2)" -v b="$(median direct 2)" -v c="$(median batchd 3)" \
    -v d="$(median direct 3)" -v e="$(median batchd 4)" -v f="$(median direct 4)" \
    -v g="$(median batchd 7)" -v h="$(median direct 7)" \
    'BEGIN { printf "| batchd / direct | %.2fx | %.2fx | %.2fx | | %.2fx | |\n", a / b, c / d, e / f, (h > 0 ? g / h : 0) }'
echo
echo "failed requests: $failed"
[ "$failed" = 0 ]
