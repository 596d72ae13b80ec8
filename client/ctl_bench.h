/*
 * ctl_bench.h - batchctl's bench subcommand (ctl_bench.c), plus the exit
 * codes and the number parser that batchctl.c shares with it.
 */
#ifndef CTL_BENCH_H
#define CTL_BENCH_H

#include <stdint.h>

/* batchctl exit codes: scripts and tests rely on them. */
enum ctl_exit {
    CTL_EXIT_OK = 0,          /* every answer was OK or ACCEPTED */
    CTL_EXIT_STATUS = 1,      /* the daemon answered another status */
    CTL_EXIT_USAGE = 2,       /* bad command line; a hint was printed */
    CTL_EXIT_IO = 3,          /* could not connect, or the connection failed */
};

/* The bench lines of batchctl's usage text. */
#define CTL_BENCH_USAGE \
    "  bench [-c CLIENTS] [-d INFLIGHT] [-n ITEMS] [-k KEYS] [-z SIZE]\n" \
    "        [--send] [--key-prefix P] [--json]\n" \
    "                        fork CLIENTS processes (default 1), each with its\n" \
    "                        own connection keeping INFLIGHT requests (default\n" \
    "                        1) in flight until it has done ITEMS requests\n" \
    "                        (-n is per client, default 10000); keys P0..PK-1\n" \
    "                        round-robin (default 1 key, prefix \"bench-\"),\n" \
    "                        SIZE-byte payloads (default 64); LOADs, or SENDs\n" \
    "                        with --send. Prints items/s, p50/p99/p999 latency\n" \
    "                        and counts per status; exit 1 on any failure\n"

/*
 * Parse a decimal number in min..max into *out. Returns 0, or -1 when s
 * is not a number or out of range.
 */
int ctl_parse_num(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/*
 * Run "bench" with argv[0] = "bench". socket may be NULL (the library's
 * default); timeout_ms bounds the connect and each wait for a reply.
 * Returns an enum ctl_exit; CTL_EXIT_USAGE after printing why, so the
 * caller adds the usage text.
 */
int ctl_bench(const char *socket, int timeout_ms, int argc, char **argv);

#endif
