/*
 * worker.h - sink worker threads and the completion path back to the
 * loop. The only file that touches pthreads.
 *
 * Blocking sinks run their batches here; any batch (worker-run, or a
 * non-blocking sink's PENDING batch completed from the plugin's own
 * thread) comes back through one mutex-guarded list and an eventfd
 * watched by the loop, which then writes the replies.
 */
#ifndef BD_WORKER_H
#define BD_WORKER_H

#include <stddef.h>

struct event_base;
struct bd_batch;
struct bd_workers;

/*
 * Finished batches go back to whoever started the pool: done(arg, list)
 * runs on the loop thread with every batch finished since the last
 * call, oldest first, linked by b->next (the sink layer never calls up
 * into the batching core; DESIGN section 10).
 */
typedef void bd_workers_done_fn(void *arg, struct bd_batch *list);

/* Start n threads on base (free with bd_workers_free). NULL with err. */
struct bd_workers *bd_workers_new(struct event_base *base, size_t n,
                                  bd_workers_done_fn *done, void *arg,
                                  char *err, size_t errlen);

/* Queue a batch for a worker (loop thread). The dispatcher never hands
 * out more batches than max_concurrency, so the job queue is bounded. */
void bd_workers_submit(struct bd_workers *w, struct bd_batch *b);

/* Take back a batch no worker has started yet (its sink_timeout_ms ran
 * out while it waited behind busy workers). Returns 1 when it was still
 * queued: the sink never saw it. Loop thread. */
int bd_workers_withdraw(struct bd_workers *w, struct bd_batch *b);

/* A started call was abandoned and may hold its thread for long: add a
 * thread so the pool keeps its size, up to twice the configured one. */
void bd_workers_replace_stuck(struct bd_workers *w);

/*
 * Stop and join the threads. join 0 leaves threads that may be stuck in
 * a hung sink call running (the process is about to exit) and frees
 * nothing they could touch.
 */
void bd_workers_free(struct bd_workers *w, int join);

#endif
