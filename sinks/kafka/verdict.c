/*
 * verdict.c - from librdkafka's outcome of one message to batchd's
 * verdict for its item, and answering a finished batch.
 *
 * Delivered -> OK with "partition:offset". Errors that a later attempt
 * may get past (a broker down, a timeout, a full queue, a leader moving)
 * -> RETRY, so batchd's backoff and max_attempts apply. Everything else
 * (a message too large, a topic refused or unknown, a fatal idempotence
 * error) -> FAIL with librdkafka's words. With the idempotent producer,
 * librdkafka has already retried the transient broker errors itself
 * until message.timeout.ms, so a report with one of them means time ran
 * out: a batchd retry is then a fresh message (at least once).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kafka.h"

/* Errors a later attempt may get past. */
static const rd_kafka_resp_err_t retriable[] = {
    RD_KAFKA_RESP_ERR__MSG_TIMED_OUT,
    RD_KAFKA_RESP_ERR__QUEUE_FULL,
    RD_KAFKA_RESP_ERR__PURGE_QUEUE,
    RD_KAFKA_RESP_ERR__PURGE_INFLIGHT,
    RD_KAFKA_RESP_ERR__TRANSPORT,
    RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN,
    RD_KAFKA_RESP_ERR__TIMED_OUT,
    RD_KAFKA_RESP_ERR__TIMED_OUT_QUEUE,
    RD_KAFKA_RESP_ERR__RESOLVE,
    RD_KAFKA_RESP_ERR__RETRY,
    RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
    RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE,
    RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
    RD_KAFKA_RESP_ERR_BROKER_NOT_AVAILABLE,
    RD_KAFKA_RESP_ERR_REPLICA_NOT_AVAILABLE,
    RD_KAFKA_RESP_ERR_NETWORK_EXCEPTION,
    RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
    RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND,
    RD_KAFKA_RESP_ERR_KAFKA_STORAGE_ERROR,
    RD_KAFKA_RESP_ERR_FENCED_LEADER_EPOCH,
    RD_KAFKA_RESP_ERR_UNKNOWN_LEADER_EPOCH,
    RD_KAFKA_RESP_ERR_THROTTLING_QUOTA_EXCEEDED,
};

int kafka_verdict_of(rd_kafka_resp_err_t err)
{
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
        return BATCHD_RESULT_OK;
    for (size_t i = 0; i < sizeof(retriable) / sizeof(retriable[0]); i++)
        if (err == retriable[i])
            return BATCHD_RESULT_RETRY;
    return BATCHD_RESULT_FAIL;
}

int kafka_slot_settle(struct kafka_slot *slot, rd_kafka_resp_err_t err,
                      int32_t partition, int64_t offset)
{
    slot->err = err;
    slot->partition = partition;
    slot->offset = offset;
    /* acq_rel: the thread that takes the count to 0 sees every slot. */
    return atomic_fetch_sub_explicit(&slot->kb->left, 1,
                                     memory_order_acq_rel) == 1;
}

/* The client's message for a failed item: librdkafka's text and name,
 * and for a fatal producer error, the reason it gives. */
static int fail_text(const struct kafka_batch *kb, rd_kafka_resp_err_t err,
                     char *out, size_t outlen)
{
    char why[256];

    if (err == RD_KAFKA_RESP_ERR__FATAL &&
        rd_kafka_fatal_error(kb->ks->rk, why, sizeof(why)) !=
            RD_KAFKA_RESP_ERR_NO_ERROR)
        return snprintf(out, outlen, "kafka: fatal producer error: %s", why);
    return snprintf(out, outlen, "kafka: %s (%s)", rd_kafka_err2str(err),
                    rd_kafka_err2name(err));
}

void kafka_batch_answer(struct kafka_batch *kb)
{
    struct batchd_batch *b = kb->b;
    const struct batchd_host *host = kb->ks->host;

    for (size_t i = 0; i < b->nitems; i++) {
        const struct kafka_slot *s = &kb->slots[i];
        int code = kafka_verdict_of(s->err);
        char text[320];
        int n = 0;

        if (code == BATCHD_RESULT_OK)
            n = snprintf(text, sizeof(text), "%d:%lld", (int)s->partition,
                         (long long)s->offset);
        else
            n = fail_text(kb, s->err, text, sizeof(text));
        if (n < 0)
            n = 0;
        if ((size_t)n >= sizeof(text))
            n = (int)sizeof(text) - 1;
        host->result(b, i, code, text, (size_t)n);
    }
    free(kb);
}

void kafka_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque)
{
    struct kafka_slot *slot = msg->_private;
    struct kafka_batch *kb = slot->kb;
    struct batchd_batch *b = kb->b;
    const struct batchd_host *host = kb->ks->host;

    (void)rk;
    (void)opaque;
    /* Not rd_kafka_message_errstr(): for a producer's report it returns
     * the message payload as if it were the error text. */
    if (!kafka_slot_settle(slot, msg->err, msg->partition, msg->offset))
        return;
    kafka_batch_answer(kb);
    host->complete(b, BATCHD_SINK_DONE);   /* b is the daemon's again */
}
