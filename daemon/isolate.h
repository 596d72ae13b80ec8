/*
 * isolate.h - process isolation for sinks (isolation = process).
 *
 * The daemon side is a proxy sink: a NONBLOCKING struct batchd_sink
 * whose process() hands the batch to a sink-runner child (the same
 * batchd binary, started as `batchd --sink-runner ...`), which dlopens
 * the real plugin and speaks batchd framing over a socketpair. A crash,
 * abort, exit or hang of the plugin kills only the runner: the batch
 * completes with BD_SINK_UNAVAILABLE (retried, then SINK_UNAVAILABLE),
 * the runner is restarted with growing backoff (batches meanwhile wait
 * for it without using attempts: BD_SINK_NOT_STARTED), and after
 * unhealthy_after crashes in a row the sink is marked unhealthy.
 */
#ifndef BD_ISOLATE_H
#define BD_ISOLATE_H

#include <stddef.h>

struct batchd_host;
struct bd_sink;
struct bd_sink_conf;

/*
 * Make s a proxy for the plugin at s->path run in a child process:
 * sets s->vt (the proxy table), s->state and s->nonblocking, starts the
 * first runner and waits for the plugin's init answer, so that a bad
 * plugin is still a clear start-up error. Returns 0, or -1 with err.
 */
int bd_isolate_load(struct bd_sink *s, const struct bd_sink_conf *sc,
                    const struct batchd_host *host, char *err, size_t errlen);

/* The child's main, for `batchd --sink-runner ARGS`; returns the exit
 * code. */
int bd_runner_main(int argc, char **argv);

#endif
