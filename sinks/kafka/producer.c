/*
 * producer.c - the kafka sink: init, process, the poll thread, shutdown,
 * and the table the daemon loads (see kafka.h for the shape).
 *
 * process() runs on the daemon's event loop and never blocks: it hands
 * every item to rd_kafka_produce() without copying (the daemon lends the
 * payloads until complete(), and a message's delivery report always comes
 * before its batch completes), and an item librdkafka cannot take now (a
 * full queue) is answered RETRY at once instead of waiting for room.
 *
 * The poll thread is the only caller of rd_kafka_poll() while the sink
 * runs, so delivery reports, error and throttle callbacks run there.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kafka.h"

#define POLL_MS 100               /* poll wait; reports wake it at once */

static const struct batchd_sink_option kafka_options[] = {
    { .name = "brokers", .def = NULL,
      .help = "bootstrap brokers, host:port[,host:port...] (required)" },
    { .name = "topic", .def = NULL,
      .help = "topic, or a template where {key} is the batch key (required)" },
    { .name = "message_key", .def = "key",
      .help = "'key': the batchd key is the message key; 'none': no key" },
    { .name = "partitioner", .def = "consistent_random",
      .help = "librdkafka partitioner (random, consistent, murmur2, ...)" },
    { .name = "acks", .def = "all",
      .help = "broker acks: all, 1, 0 (idempotence needs all)" },
    { .name = "compression", .def = "none",
      .help = "none, gzip, snappy, lz4 or zstd" },
    { .name = "flush_timeout_ms", .def = "10000",
      .help = "shutdown: wait this long for outstanding delivery reports" },
    { .name = "rdkafka.*", .def = NULL,
      .help = "any librdkafka property, e.g. rdkafka.linger.ms = 5" },
    { .name = NULL },
};

/* librdkafka's syslog levels -> batchd's. */
static int log_level(int level)
{
    if (level <= 3)
        return BATCHD_LOG_ERROR;
    if (level == 4)
        return BATCHD_LOG_WARN;
    return level <= 6 ? BATCHD_LOG_INFO : BATCHD_LOG_DEBUG;
}

/* librdkafka's own log lines, through the daemon's log (any thread). */
static void log_cb(const rd_kafka_t *rk, int level, const char *fac,
                   const char *buf)
{
    const struct kafka_sink *ks = rd_kafka_opaque(rk);

    ks->host->log(ks->host, log_level(level), "rdkafka %s: %s", fac, buf);
}

/*
 * Client-level errors. librdkafka logs each connection failure through
 * log_cb already; this adds the two that matter to an operator: every
 * broker down (once per outage, not per item) and a fatal idempotence
 * error, after which every item fails until the daemon restarts.
 */
static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    const struct kafka_sink *ks = opaque;

    (void)rk;
    if (err == RD_KAFKA_RESP_ERR__FATAL)
        ks->host->log(ks->host, BATCHD_LOG_ERROR,
                      "fatal producer error, items fail until a restart: %s",
                      reason);
    else if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
        ks->host->log(ks->host, BATCHD_LOG_WARN, "%s", reason);
}

static void *poll_main(void *arg)
{
    struct kafka_sink *ks = arg;

    while (!atomic_load(&ks->stopping))
        rd_kafka_poll(ks->rk, POLL_MS);
    return NULL;
}

/* The producer from a config with the callbacks set; takes conf. */
static int producer_new(struct kafka_sink *ks, rd_kafka_conf_t *conf,
                        char *err, size_t errlen)
{
    char why[512];

    rd_kafka_conf_set_opaque(conf, ks);
    rd_kafka_conf_set_dr_msg_cb(conf, kafka_dr_cb);
    rd_kafka_conf_set_log_cb(conf, log_cb);
    rd_kafka_conf_set_error_cb(conf, error_cb);
    ks->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof(why));
    if (ks->rk == NULL) {
        rd_kafka_conf_destroy(conf);
        snprintf(err, errlen, "kafka: %s", why);
        return -1;
    }
    if (!ks->opts.topic_has_key) {
        ks->fixed = rd_kafka_topic_new(ks->rk, ks->opts.topic, NULL);
        if (ks->fixed == NULL) {
            snprintf(err, errlen, "kafka: topic %s: %s", ks->opts.topic,
                     rd_kafka_err2str(rd_kafka_last_error()));
            return -1;
        }
    }
    return 0;
}

static void kafka_free(struct kafka_sink *ks)
{
    if (ks->fixed != NULL)
        rd_kafka_topic_destroy(ks->fixed);
    if (ks->rk != NULL)
        rd_kafka_destroy(ks->rk);
    kafka_opts_free(&ks->opts);
    free(ks);
}

static void *kafka_init(const struct batchd_host *host,
                        const struct batchd_kv *kv, size_t nkv, char *err,
                        size_t errlen)
{
    struct kafka_sink *ks = calloc(1, sizeof(*ks));
    rd_kafka_conf_t *conf;

    if (ks == NULL) {
        snprintf(err, errlen, "kafka: out of memory");
        return NULL;
    }
    ks->host = host;
    conf = kafka_conf_defaults(err, errlen);
    if (conf == NULL)
        goto out_free;
    if (kafka_opts_parse(&ks->opts, conf, kv, nkv, err, errlen) != 0) {
        rd_kafka_conf_destroy(conf);
        goto out_free;
    }
    if (producer_new(ks, conf, err, errlen) != 0)
        goto out_free;
    if (pthread_create(&ks->poll_thread, NULL, poll_main, ks) != 0) {
        snprintf(err, errlen, "kafka: cannot start the poll thread");
        goto out_free;
    }
    host->log(host, BATCHD_LOG_INFO, "producing to %s (%s)", ks->opts.topic,
              rd_kafka_name(ks->rk));
    return ks;

out_free:
    kafka_free(ks);
    return NULL;
}

/* The batch's topic handle (the fixed one, or a new reference to
 * destroy), or NULL with the reason in why. */
static rd_kafka_topic_t *batch_topic(struct kafka_sink *ks,
                                     const struct batchd_batch *b, char *why,
                                     size_t whylen)
{
    char name[KAFKA_TOPIC_MAX + 2];
    rd_kafka_topic_t *rkt;

    if (!ks->opts.topic_has_key)
        return ks->fixed;
    if (kafka_topic_for_key(ks->opts.topic, b->key, b->key_len, name,
                            sizeof(name), why, whylen) != 0)
        return NULL;
    /* A lookup after the first time: librdkafka keeps one per name. */
    rkt = rd_kafka_topic_new(ks->rk, name, NULL);
    if (rkt == NULL)
        snprintf(why, whylen, "kafka: topic %s: %s", name,
                 rd_kafka_err2str(rd_kafka_last_error()));
    return rkt;
}

/* Every item FAIL with why: final, where a whole-batch FAIL would be
 * retried by the daemon (DESIGN §4) and fail the same way again. */
static int fail_all(const struct kafka_sink *ks, struct batchd_batch *b,
                    const char *why)
{
    for (size_t i = 0; i < b->nitems; i++)
        ks->host->result(b, i, BATCHD_RESULT_FAIL, why, strlen(why));
    return BATCHD_SINK_DONE;
}

/* Produce item i; a refusal settles its slot at once (no report comes).
 * process() still holds its own count, so this is never the last one. */
static void produce_one(struct kafka_sink *ks, rd_kafka_topic_t *rkt,
                        struct kafka_batch *kb, size_t i)
{
    const struct batchd_batch *b = kb->b;
    const struct batchd_item *it = &b->items[i];
    struct kafka_slot *slot = &kb->slots[i];
    int keyed = ks->opts.key_as_message_key;

    slot->kb = kb;
    /* msgflags 0: the payload is not copied; it outlives the report.
     * (librdkafka always copies the key.) */
    if (rd_kafka_produce(rkt, RD_KAFKA_PARTITION_UA, 0,
                         (void *)(it->len > 0 ? it->data : ""), it->len,
                         keyed ? b->key : NULL, keyed ? b->key_len : 0,
                         slot) != 0)
        kafka_slot_settle(slot, rd_kafka_last_error(), -1, -1);
}

static int kafka_process(void *state, void *res, struct batchd_batch *b)
{
    struct kafka_sink *ks = state;
    struct kafka_batch *kb;
    rd_kafka_topic_t *rkt;
    char why[384];
    int last = 0;

    (void)res;
    rkt = batch_topic(ks, b, why, sizeof(why));
    if (rkt == NULL)
        return fail_all(ks, b, why);
    kb = malloc(sizeof(*kb) + b->nitems * sizeof(kb->slots[0]));
    if (kb == NULL) {
        if (rkt != ks->fixed)
            rd_kafka_topic_destroy(rkt);
        ks->host->batch_error(b, "kafka: out of memory");
        return BATCHD_SINK_RETRY;
    }
    kb->ks = ks;
    kb->b = b;
    atomic_init(&kb->left, b->nitems + 1);
    for (size_t i = 0; i < b->nitems; i++)
        produce_one(ks, rkt, kb, i);
    if (rkt != ks->fixed)
        rd_kafka_topic_destroy(rkt);   /* queued messages hold their own */
    /* Drop process()'s own count: when nothing else is outstanding (every
     * produce refused), the batch is ours to answer right here. */
    last = atomic_fetch_sub_explicit(&kb->left, 1, memory_order_acq_rel) == 1;
    if (!last)
        return BATCHD_SINK_PENDING;    /* kb and b belong to the reports */
    kafka_batch_answer(kb);
    return BATCHD_SINK_DONE;
}

/*
 * Stop the poll thread, then wait (bounded) for the reports still owed
 * on this thread. The daemon calls shutdown with no batch PENDING, so
 * this is normally immediate; whatever is still queued after the wait is
 * purged, which reports it (RETRY) and so completes its batch.
 */
static void kafka_shutdown(void *state)
{
    struct kafka_sink *ks = state;

    atomic_store(&ks->stopping, 1);
    pthread_join(ks->poll_thread, NULL);
    if (rd_kafka_flush(ks->rk, (int)ks->opts.flush_timeout_ms) ==
        RD_KAFKA_RESP_ERR__TIMED_OUT) {
        ks->host->log(ks->host, BATCHD_LOG_WARN,
                      "%d messages not delivered after %ld ms; purged",
                      rd_kafka_outq_len(ks->rk), ks->opts.flush_timeout_ms);
        rd_kafka_purge(ks->rk, RD_KAFKA_PURGE_F_QUEUE |
                                   RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_flush(ks->rk, 1000);
    }
    kafka_free(ks);
}

static const struct batchd_sink kafka_sink_table = {
    .abi_version = BATCHD_SINK_ABI_VERSION,
    .flags = BATCHD_SINK_NONBLOCKING,
    .name = "kafka",
    .options = kafka_options,
    .init = kafka_init,
    .process = kafka_process,
    .shutdown = kafka_shutdown,
};

BATCHD_SINK_EXPORT const struct batchd_sink *batchd_sink_entry(void)
{
    return &kafka_sink_table;
}
