/*
 * ctl_top.h - batchctl top: a live view of the daemon from its stats
 * (daemon-wide rates and latency; per route item rates, queue depths
 * and queue-wait percentiles).
 */
#ifndef CTL_TOP_H
#define CTL_TOP_H

/* The top lines of batchctl's usage text. */
#define CTL_TOP_USAGE \
    "  top [--once] [-n FRAMES] [-i MS]\n" \
    "                        live view, refreshed every MS (default 1000):\n" \
    "                        items/s, batches/s, latency percentiles; per\n" \
    "                        route items out/s, queued, in flight, queue-wait\n" \
    "                        p50/p99 (over the last interval);\n" \
    "                        --once prints one frame (= -n 1)\n"

/*
 * Run "top" with argv[0] = "top"; socket and timeout_ms as for bench.
 * Returns an enum ctl_exit; CTL_EXIT_USAGE after printing why.
 */
int ctl_top(const char *socket, int timeout_ms, int argc, char **argv);

#endif
