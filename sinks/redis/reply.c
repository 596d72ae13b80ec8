/*
 * reply.c - one Redis reply becomes one item's verdict:
 *   bulk string, status     -> OK with its bytes
 *   integer                 -> OK with its decimal text
 *   nil                     -> OK empty, or FAIL "not found" (missing = fail)
 *   error                   -> FAIL with Redis's message; RETRY for the
 *                              "try later" errors (LOADING, BUSY, ...)
 *   array                   -> FAIL: one item, one value (see sinks/README.md)
 */
#include <stdio.h>

#include "connect.h"
#include "redis_sink.h"

void rs_reply_answer(const struct rs_sink *st, struct batchd_batch *b, size_t i,
                     const redisReply *r)
{
    const struct batchd_host *h = st->host;
    static const char not_found[] = "not found";
    static const char array[] = "redis sink: the command returned an array; "
                                "use a command with one value per item";
    char num[32];
    int n;

    switch (r->type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
        h->result(b, i, BATCHD_RESULT_OK, r->str, r->len);
        break;
    case REDIS_REPLY_INTEGER:
        n = snprintf(num, sizeof(num), "%lld", r->integer);
        h->result(b, i, BATCHD_RESULT_OK, num, (size_t)n);
        break;
    case REDIS_REPLY_NIL:
        if (st->opt.missing == RS_MISSING_FAIL)
            h->result(b, i, BATCHD_RESULT_FAIL, not_found, sizeof(not_found) - 1);
        else
            h->result(b, i, BATCHD_RESULT_OK, "", 0);
        break;
    case REDIS_REPLY_ERROR:
        h->result(b, i, rs_error_is_transient(r->str, r->len) ? BATCHD_RESULT_RETRY
                                                             : BATCHD_RESULT_FAIL,
                  r->str, r->len);
        break;
    default:
        h->result(b, i, BATCHD_RESULT_FAIL, array, sizeof(array) - 1);
        break;
    }
}
