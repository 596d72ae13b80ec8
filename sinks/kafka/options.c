/*
 * options.c - the kafka sink's [sink.NAME] keys.
 *
 * Named options that are librdkafka settings (brokers, partitioner,
 * acks, compression) and every "rdkafka.NAME = value" go straight to
 * rd_kafka_conf_set, so a bad value is refused in librdkafka's own
 * words, with the batchd key in front. The sink's own options (topic,
 * message_key, flush_timeout_ms) stay in struct kafka_opts. Keys are
 * applied in file order on top of the defaults, so a later key wins.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kafka.h"

#define RDKAFKA_PREFIX "rdkafka."
#define FLUSH_MAX_MS 3600000L

/* batchd name -> librdkafka property, for the named shortcuts. */
static const struct {
    const char *name;
    const char *prop;
} shortcuts[] = {
    { "brokers", "bootstrap.servers" },
    { "partitioner", "partitioner" },
    { "acks", "acks" },
    { "compression", "compression.codec" },
};

/*
 * The sink's defaults, before the user's keys. Idempotence keeps
 * librdkafka's own retries from duplicating messages (it implies acks =
 * all). message.timeout.ms bounds how long a message may wait for a
 * broker before its report says "timed out" (RETRY in batchd): librdkafka's
 * 300 s default would outlive batchd's default sink_timeout_ms (30 s),
 * and a call abandoned there is answered SINK_TIMEOUT while the message
 * may still be delivered. linger.ms = 1: batchd has formed the batch
 * already and process() queues it in one burst, so librdkafka's 5 ms
 * default mostly adds 5 ms to every item; 0 sends so many small requests
 * under load that both items/s and p99 suffer (measured in
 * bench/README.md, "Kafka").
 */
static const char *const defaults[][2] = {
    { "enable.idempotence", "true" },
    { "acks", "all" },
    { "message.timeout.ms", "20000" },
    { "linger.ms", "1" },
    { "client.id", "batchd" },
};

rd_kafka_conf_t *kafka_conf_defaults(char *err, size_t errlen)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char why[256];

    for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++) {
        if (rd_kafka_conf_set(conf, defaults[i][0], defaults[i][1], why,
                              sizeof(why)) != RD_KAFKA_CONF_OK) {
            snprintf(err, errlen, "kafka: default %s = %s: %s",
                     defaults[i][0], defaults[i][1], why);
            rd_kafka_conf_destroy(conf);
            return NULL;
        }
    }
    return conf;
}

/* Set prop on conf; on refusal say which batchd key it came from. */
static int conf_set(rd_kafka_conf_t *conf, const char *key, const char *prop,
                    const char *value, char *err, size_t errlen)
{
    char why[256];

    if (rd_kafka_conf_set(conf, prop, value, why, sizeof(why)) ==
        RD_KAFKA_CONF_OK)
        return 0;
    snprintf(err, errlen, "kafka: %s = %s: %s", key, value, why);
    return -1;
}

static int parse_message_key(struct kafka_opts *opts, const char *v,
                             char *err, size_t errlen)
{
    if (strcmp(v, "key") == 0)
        opts->key_as_message_key = 1;
    else if (strcmp(v, "none") == 0)
        opts->key_as_message_key = 0;
    else {
        snprintf(err, errlen, "kafka: message_key = %s: use 'key' or 'none'", v);
        return -1;
    }
    return 0;
}

static int parse_flush(struct kafka_opts *opts, const char *v, char *err,
                       size_t errlen)
{
    char *end;

    errno = 0;
    opts->flush_timeout_ms = strtol(v, &end, 10);
    if (*v < '0' || *v > '9' || *end != '\0' || errno != 0 ||
        opts->flush_timeout_ms > FLUSH_MAX_MS) {
        snprintf(err, errlen,
                 "kafka: flush_timeout_ms = %s: not a number of ms (0..%ld)",
                 v, FLUSH_MAX_MS);
        return -1;
    }
    return 0;
}

static int set_topic(struct kafka_opts *opts, const char *v, char *err,
                     size_t errlen)
{
    free(opts->topic);
    opts->topic = strdup(v);
    if (opts->topic == NULL) {
        snprintf(err, errlen, "kafka: out of memory");
        return -1;
    }
    return 0;
}

/* One key; the daemon has already refused keys missing from the table. */
static int parse_one(struct kafka_opts *opts, rd_kafka_conf_t *conf,
                     const struct batchd_kv *kv, char *err, size_t errlen)
{
    size_t plen = strlen(RDKAFKA_PREFIX);

    if (strncmp(kv->key, RDKAFKA_PREFIX, plen) == 0) {
        /* Verdicts come from the report of every message. */
        if (strcmp(kv->key + plen, "delivery.report.only.error") == 0) {
            snprintf(err, errlen, "kafka: %s: the sink needs every delivery "
                     "report; leave it unset", kv->key);
            return -1;
        }
        return conf_set(conf, kv->key, kv->key + plen, kv->value, err, errlen);
    }
    for (size_t i = 0; i < sizeof(shortcuts) / sizeof(shortcuts[0]); i++)
        if (strcmp(kv->key, shortcuts[i].name) == 0)
            return conf_set(conf, kv->key, shortcuts[i].prop, kv->value, err,
                            errlen);
    if (strcmp(kv->key, "topic") == 0)
        return set_topic(opts, kv->value, err, errlen);
    if (strcmp(kv->key, "message_key") == 0)
        return parse_message_key(opts, kv->value, err, errlen);
    if (strcmp(kv->key, "flush_timeout_ms") == 0)
        return parse_flush(opts, kv->value, err, errlen);
    snprintf(err, errlen, "kafka: unknown option '%s'", kv->key);
    return -1;
}

int kafka_opts_parse(struct kafka_opts *opts, rd_kafka_conf_t *conf,
                     const struct batchd_kv *kv, size_t nkv, char *err,
                     size_t errlen)
{
    int have_brokers = 0;

    opts->key_as_message_key = 1;
    opts->flush_timeout_ms = 10000;
    for (size_t i = 0; i < nkv; i++) {
        if (parse_one(opts, conf, &kv[i], err, errlen) != 0)
            return -1;
        have_brokers |= strcmp(kv[i].key, "brokers") == 0 ||
                        strcmp(kv[i].key, "rdkafka.bootstrap.servers") == 0 ||
                        strcmp(kv[i].key, "rdkafka.metadata.broker.list") == 0;
    }
    if (!have_brokers) {
        snprintf(err, errlen, "kafka: option 'brokers' is required");
        return -1;
    }
    if (opts->topic == NULL) {
        snprintf(err, errlen, "kafka: option 'topic' is required");
        return -1;
    }
    return kafka_topic_template_check(opts, err, errlen);
}

void kafka_opts_free(struct kafka_opts *opts)
{
    free(opts->topic);
    opts->topic = NULL;
}
