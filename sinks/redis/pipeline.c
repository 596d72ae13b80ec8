/*
 * pipeline.c - one batch, one round trip: every item's command is
 * appended to the connection's output buffer (argv with lengths, never a
 * formatted string), the first redisGetReply writes them all, and the
 * replies are read back in order, one per item.
 *
 * When the connection breaks part way, the items that already have a
 * reply keep it and the rest are answered RETRY: Redis may or may not
 * have run their commands, so a retry is at-least-once.
 *
 * transaction = on wraps the batch in MULTI ... EXEC. Redis then answers
 * +OK, one +QUEUED (or an error) per item, and EXEC's array, whose
 * elements are mapped like plain replies. An item refused while queuing
 * makes Redis discard the whole transaction (EXECABORT): that item fails
 * with its own error, the others are retried without it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connect.h"
#include "redis_sink.h"

/* Grow c's scratch buffer to at least n bytes (never 0: memcpy wants a
 * real pointer even for empty arguments). */
static int scratch_reserve(struct rs_conn *c, size_t n)
{
    char *p;

    if (n == 0)
        n = 1;
    if (n <= c->scratch_cap)
        return 0;
    p = realloc(c->scratch, n);
    if (p == NULL)
        return -1;
    c->scratch = p;
    c->scratch_cap = n;
    return 0;
}

/* Append item i's command. 0, or -1 when memory is short. */
static int append_item(struct rs_sink *st, struct rs_conn *c,
                       const struct batchd_batch *b, size_t i)
{
    const struct rs_template *t = &st->opt.command;
    const char *argv[RS_TEMPLATE_MAX_ARGS];
    size_t argvlen[RS_TEMPLATE_MAX_ARGS];
    struct rs_vals v = {
        .payload = b->items[i].data, .payload_len = b->items[i].len,
        .key = b->key, .key_len = b->key_len,
    };

    rs_vals_set_id(&v, b->items[i].id);
    if (scratch_reserve(c, rs_template_scratch(t, &v)) != 0)
        return -1;
    rs_template_expand(t, &v, c->scratch, argv, argvlen);
    return redisAppendCommandArgv(c->ctx, (int)t->nargs, argv, argvlen) == REDIS_OK
           ? 0 : -1;
}

/* Queue the whole batch (with MULTI/EXEC when configured). */
static int append_batch(struct rs_sink *st, struct rs_conn *c,
                        const struct batchd_batch *b)
{
    if (st->opt.transaction && redisAppendCommand(c->ctx, "MULTI") != REDIS_OK)
        return -1;
    for (size_t i = 0; i < b->nitems; i++)
        if (append_item(st, c, b, i) != 0)
            return -1;
    if (st->opt.transaction && redisAppendCommand(c->ctx, "EXEC") != REDIS_OK)
        return -1;
    return 0;
}

/* The connection failed: log the outage once, mark c, and answer items
 * from..nitems-1 RETRY. */
static void lost_from(struct rs_sink *st, struct rs_conn *c,
                      struct batchd_batch *b, size_t from)
{
    char msg[200];
    int n = snprintf(msg, sizeof(msg), "redis %s: connection lost: %s",
                     st->opt.where, c->ctx->errstr);

    rs_pool_lost(&st->pool, c, c->ctx->errstr);
    for (size_t i = from; i < b->nitems; i++)
        st->host->result(b, i, BATCHD_RESULT_RETRY, msg,
                         n < (int)sizeof(msg) ? (size_t)n : sizeof(msg) - 1);
}

static int run_plain(struct rs_sink *st, struct rs_conn *c, struct batchd_batch *b)
{
    for (size_t i = 0; i < b->nitems; i++) {
        redisReply *r;

        if (redisGetReply(c->ctx, (void **)&r) != REDIS_OK) {
            lost_from(st, c, b, i);
            return BATCHD_SINK_DONE;
        }
        rs_reply_answer(st, b, i, r);
        freeReplyObject(r);
    }
    return BATCHD_SINK_DONE;
}

/* Read the MULTI reply and one reply per queued item. errs[i] keeps an
 * item's queuing error (NULL when queued). Returns the number of items
 * refused, or -1 when the connection broke. */
static long read_queued(struct rs_conn *c, const struct batchd_batch *b,
                        redisReply **errs)
{
    redisReply *r;
    long refused = 0;

    if (redisGetReply(c->ctx, (void **)&r) != REDIS_OK)
        return -1;
    freeReplyObject(r); /* +OK; an error here shows again at EXEC */
    for (size_t i = 0; i < b->nitems; i++) {
        if (redisGetReply(c->ctx, (void **)&r) != REDIS_OK)
            return -1;
        if (r->type == REDIS_REPLY_ERROR) {
            errs[i] = r;
            refused++;
        } else {
            freeReplyObject(r);
        }
    }
    return refused;
}

/* EXEC was refused: fail the refused items (retry them when the error
 * is a "try later" one), retry the others. */
static void answer_aborted(struct rs_sink *st, struct batchd_batch *b,
                           redisReply **errs, const redisReply *exec)
{
    char msg[256];
    int n = snprintf(msg, sizeof(msg), "redis: transaction discarded (%.*s)",
                     (int)(exec->len < 150 ? exec->len : 150), exec->str);

    for (size_t i = 0; i < b->nitems; i++) {
        if (errs[i] != NULL)
            st->host->result(b, i, rs_error_is_transient(errs[i]->str, errs[i]->len)
                                   ? BATCHD_RESULT_RETRY : BATCHD_RESULT_FAIL,
                             errs[i]->str, errs[i]->len);
        else
            st->host->result(b, i, BATCHD_RESULT_RETRY, msg,
                             n < (int)sizeof(msg) ? (size_t)n : sizeof(msg) - 1);
    }
}

/* Map EXEC's reply. Returns a process() code. */
static int answer_exec(struct rs_sink *st, struct batchd_batch *b,
                       redisReply **errs, long refused, const redisReply *exec)
{
    char msg[256];

    if (exec->type == REDIS_REPLY_ARRAY && exec->elements == b->nitems) {
        for (size_t i = 0; i < b->nitems; i++)
            rs_reply_answer(st, b, i, exec->element[i]);
        return BATCHD_SINK_DONE;
    }
    if (exec->type == REDIS_REPLY_ERROR && refused > 0) {
        answer_aborted(st, b, errs, exec);
        return BATCHD_SINK_DONE;
    }
    if (exec->type != REDIS_REPLY_ERROR) {
        st->host->batch_error(b, "redis: EXEC: unexpected reply");
        return BATCHD_SINK_RETRY;
    }
    snprintf(msg, sizeof(msg), "redis: EXEC: %.*s",
             (int)(exec->len < 200 ? exec->len : 200), exec->str);
    st->host->batch_error(b, msg);
    return rs_error_is_transient(exec->str, exec->len) ? BATCHD_SINK_RETRY
                                                       : BATCHD_SINK_FAIL;
}

static int run_transaction(struct rs_sink *st, struct rs_conn *c,
                           struct batchd_batch *b)
{
    redisReply **errs = calloc(b->nitems, sizeof(*errs)), *exec = NULL;
    long refused;
    int rc;

    if (errs == NULL) {
        c->broken = 1; /* the queued commands were never read back */
        st->host->batch_error(b, "redis sink: out of memory");
        return BATCHD_SINK_RETRY;
    }
    refused = read_queued(c, b, errs);
    if (refused < 0 || redisGetReply(c->ctx, (void **)&exec) != REDIS_OK) {
        /* Nothing is known to have committed: everything is retried. */
        lost_from(st, c, b, 0);
        rc = BATCHD_SINK_DONE;
    } else {
        rc = answer_exec(st, b, errs, refused, exec);
        freeReplyObject(exec);
    }
    for (size_t i = 0; i < b->nitems; i++)
        if (errs[i] != NULL)
            freeReplyObject(errs[i]);
    free(errs);
    return rc;
}

int rs_pipeline_run(struct rs_sink *st, struct rs_conn *c, struct batchd_batch *b)
{
    if (append_batch(st, c, b) != 0) {
        /* Half a batch may sit in the output buffer: never reuse c. */
        c->broken = 1;
        st->host->batch_error(b, "redis sink: out of memory");
        return BATCHD_SINK_RETRY;
    }
    return st->opt.transaction ? run_transaction(st, c, b) : run_plain(st, c, b);
}
