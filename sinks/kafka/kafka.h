/*
 * kafka.h - the kafka sink's internals, shared by its files.
 *
 * The sink (sinks/README.md, "kafka") turns every item into one Kafka
 * message through librdkafka's producer and answers each item from that
 * message's delivery report. It is NONBLOCKING: process() produces the
 * whole batch on the event loop and returns PENDING; the sink's own poll
 * thread serves the delivery reports and, with the last report of a
 * batch, answers its items and calls host->complete().
 *
 *   options.c   [sink.NAME] keys -> struct kafka_opts + rd_kafka_conf_t
 *   topic.c     the topic template ("events.{key}") and name checks
 *   verdict.c   delivery report / produce error -> item verdict; answering
 *   producer.c  init, process, the poll thread, shutdown; the entry table
 *
 * Nothing here is exported: the .so is built with -fvisibility=hidden
 * and only batchd_sink_entry() is marked for export.
 */
#ifndef BD_KAFKA_H
#define BD_KAFKA_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "batchd_sink.h"

/* Kafka's limit on a topic name (and its alphabet, see topic.c). */
#define KAFKA_TOPIC_MAX 249

/* What the sink itself does with the options librdkafka does not own. */
struct kafka_opts {
    char *topic;              /* the topic or its template; owned */
    int topic_has_key;        /* the template holds "{key}" */
    int key_as_message_key;   /* message_key = key (1) or none (0) */
    long flush_timeout_ms;    /* shutdown: wait this long for reports */
};

/* One [sink.NAME]: the state init() returns. */
struct kafka_sink {
    const struct batchd_host *host; /* lent by the daemon until shutdown */
    struct kafka_opts opts;   /* parsed options; owns its strings */
    rd_kafka_t *rk;           /* the producer; owned */
    rd_kafka_topic_t *fixed;  /* the topic when it has no "{key}"; owned */
    pthread_t poll_thread;    /* serves delivery reports (producer.c) */
    atomic_int stopping;      /* shutdown asked the poll thread to end */
};

/* One item's message in flight; its address is the message's opaque. */
struct kafka_slot {
    struct kafka_batch *kb;   /* the batch it belongs to */
    rd_kafka_resp_err_t err;  /* NO_ERROR once delivered */
    int32_t partition;        /* where it landed (when delivered) */
    int64_t offset;
};

/*
 * One PENDING batch. Allocated by process(), freed by whoever sets the
 * last verdict (the poll thread, or process() itself when no message
 * needs a report). left starts at nitems + 1: the extra count is
 * process()'s own, so the batch cannot finish while it is producing.
 */
struct kafka_batch {
    struct kafka_sink *ks;    /* the sink */
    struct batchd_batch *b;   /* borrowed from the daemon until complete() */
    atomic_size_t left;       /* verdicts still to come, + 1 while producing */
    struct kafka_slot slots[]; /* one per item, in order */
};

/* ---- options.c ---- */

/*
 * Apply kv[0..nkv) to opts and to conf (created by the caller with the
 * sink's defaults already set). Returns 0, or -1 with one line in err
 * naming the option, with librdkafka's own words for its options.
 * opts strings are owned by opts: free with kafka_opts_free.
 */
int kafka_opts_parse(struct kafka_opts *opts, rd_kafka_conf_t *conf,
                     const struct batchd_kv *kv, size_t nkv, char *err,
                     size_t errlen);
void kafka_opts_free(struct kafka_opts *opts);

/* A new librdkafka config with the sink's defaults (idempotence on,
 * acks all, a delivery timeout under batchd's sink_timeout_ms), or NULL
 * with err set. */
rd_kafka_conf_t *kafka_conf_defaults(char *err, size_t errlen);

/* ---- topic.c ---- */

/* Does name[0..len) satisfy Kafka's topic rules? */
int kafka_topic_name_ok(const char *name, size_t len);

/* Check a template at init (as if "{key}" were a valid key). Returns 0,
 * or -1 with err set. Sets opts->topic_has_key. */
int kafka_topic_template_check(struct kafka_opts *opts, char *err,
                               size_t errlen);

/* The topic for key into out[outlen]. Returns 0, or -1 with a message
 * for the client in err (the name is not a valid topic). */
int kafka_topic_for_key(const char *tmpl, const char *key, size_t key_len,
                        char *out, size_t outlen, char *err, size_t errlen);

/* ---- verdict.c ---- */

/* The batchd verdict (enum batchd_result_code) for a produce error or a
 * delivery report's error. */
int kafka_verdict_of(rd_kafka_resp_err_t err);

/* Record slot's outcome and count it; returns 1 when it was the last
 * verdict of its batch (the caller then answers it). */
int kafka_slot_settle(struct kafka_slot *slot, rd_kafka_resp_err_t err,
                      int32_t partition, int64_t offset);

/* Hand every item its verdict through host->result and free kb. The
 * caller then completes the batch (or returns DONE from process()). */
void kafka_batch_answer(struct kafka_batch *kb);

/* librdkafka's dr_msg_cb: settle the message's slot; the last one
 * answers and completes the batch. Runs on the poll thread. */
void kafka_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque);

#endif
