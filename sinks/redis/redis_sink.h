/*
 * redis_sink.h - the redis sink's state, shared by its files:
 *
 *   sink.c      the plugin table: init, acquire, release, process, shutdown
 *   options.c   [sink.NAME] options          template.c  the command template
 *   connect.c   one connection (AUTH/SELECT) pool.c      the connection pool
 *   pipeline.c  one batch = one pipeline     reply.c     a reply -> a verdict
 */
#ifndef RS_REDIS_SINK_H
#define RS_REDIS_SINK_H

#include <hiredis.h>

#include "batchd_sink.h"
#include "options.h"
#include "pool.h"

/* One instance per [sink.NAME]; everything lives here, never in globals. */
struct rs_sink {
    const struct batchd_host *host; /* lent by the daemon until shutdown */
    struct rs_options opt;    /* parsed options; owned */
    struct rs_pool pool;      /* connections; owned */
};

/* Send the batch over c as one pipeline and answer every item (or the
 * whole batch). Returns a process() code. */
int rs_pipeline_run(struct rs_sink *st, struct rs_conn *c, struct batchd_batch *b);

/* Answer item i from its reply (borrowed). */
void rs_reply_answer(const struct rs_sink *st, struct batchd_batch *b, size_t i,
                     const redisReply *r);

#endif
