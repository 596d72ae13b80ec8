/*
 * check_kafka.c - the kafka sink (sinks/kafka/) through the real daemon,
 * into librdkafka's mock cluster.
 *
 * Each test starts a mock cluster in its own process (the cluster has its
 * own threads and keeps serving while the test waits on its clients),
 * points a real daemon's kafka sink at the cluster's loopback bootstrap
 * address, sends items from real client processes, and then consumes the
 * topic back with a librdkafka consumer: every item answered OK must be
 * in the topic exactly once, at the partition:offset its reply named,
 * and no item answered otherwise may be there. Broker errors come from
 * the mock (pushed request errors, a broker set down).
 *
 * "core":      round trip with keyed messages; the topic template and a
 *              key that makes no valid topic; isolation = process.
 * "errors":    permanent broker errors and an oversized message -> FAIL;
 *              retriable broker errors retried inside librdkafka without
 *              duplicates; a full producer queue -> RETRY; a broker down
 *              -> RETRY, then OK once it is back; down for good ->
 *              RETRY_EXHAUSTED.
 * "config":    --check-config names a bad key and takes rdkafka.*; a bad
 *              rdkafka.* value or a conflict stops the daemon at start
 *              with librdkafka's words.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "batchd.h"
#include "helpers.h"

#define MAXC 8                /* clients per test */
#define MAXN 400              /* items per client */
#define DEPTH 64              /* a client's items in flight */
#define TAGLEN 40             /* "r<round>c<idx>-<j>" */
#define KAFKA_API_PRODUCE 0   /* the Produce ApiKey (rdkafka_protocol.h is not installed) */

/* ---- the mock cluster ----------------------------------------------------- */

struct mock {
    rd_kafka_t *rk;           /* the handle the cluster lives in */
    rd_kafka_mock_cluster_t *mc;
    char boot[256];           /* its bootstrap servers (loopback) */
};

static void mock_start(struct mock *m, int nbrokers)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char err[256];

    ck_assert_int_eq(rd_kafka_conf_set(conf, "log_level", "3", err, sizeof(err)),
                     RD_KAFKA_CONF_OK);
    m->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    ck_assert_msg(m->rk != NULL, "rd_kafka_new: %s", err);
    m->mc = rd_kafka_mock_cluster_new(m->rk, nbrokers);
    ck_assert_ptr_nonnull(m->mc);
    snprintf(m->boot, sizeof(m->boot), "%s", rd_kafka_mock_cluster_bootstraps(m->mc));
}

static void mock_topic(struct mock *m, const char *topic, int partitions)
{
    ck_assert_int_eq(rd_kafka_mock_topic_create(m->mc, topic, partitions, 1),
                     RD_KAFKA_RESP_ERR_NO_ERROR);
}

static void mock_stop(struct mock *m)
{
    rd_kafka_mock_cluster_destroy(m->mc);
    rd_kafka_destroy(m->rk);
}

/* ---- consuming a topic back ------------------------------------------------ */

struct msg {
    char tag[TAGLEN];         /* payload up to ':' */
    char key[64];             /* message key, "" when none (nokey set) */
    int nokey;
    int32_t partition;
    int64_t offset;
};

struct topic_dump {
    struct msg *m;
    size_t n;
};

static rd_kafka_t *consumer_new(const struct mock *mk)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char err[256];
    rd_kafka_t *rk;

    ck_assert_int_eq(rd_kafka_conf_set(conf, "bootstrap.servers", mk->boot, err,
                                       sizeof(err)), RD_KAFKA_CONF_OK);
    ck_assert_int_eq(rd_kafka_conf_set(conf, "group.id", "check_kafka", err,
                                       sizeof(err)), RD_KAFKA_CONF_OK);
    ck_assert_int_eq(rd_kafka_conf_set(conf, "enable.auto.commit", "false", err,
                                       sizeof(err)), RD_KAFKA_CONF_OK);
    rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    ck_assert_msg(rk != NULL, "consumer: %s", err);
    return rk;
}

static void dump_add(struct topic_dump *d, const rd_kafka_message_t *rm)
{
    struct msg *m;
    size_t tl = 0;

    d->m = realloc(d->m, (d->n + 1) * sizeof(*d->m));
    ck_assert_ptr_nonnull(d->m);
    m = &d->m[d->n++];
    memset(m, 0, sizeof(*m));
    while (tl < rm->len && tl < TAGLEN - 1 && ((const char *)rm->payload)[tl] != ':')
        tl++;
    memcpy(m->tag, rm->payload, tl);
    m->nokey = rm->key == NULL;
    if (rm->key != NULL)
        snprintf(m->key, sizeof(m->key), "%.*s", (int)rm->key_len,
                 (const char *)rm->key);
    m->partition = rm->partition;
    m->offset = rm->offset;
}

/* Every message of topic (partitions 0..np-1), read up to the high
 * watermark of each partition as it is now. */
static struct topic_dump consume_all(const struct mock *mk, const char *topic, int np)
{
    rd_kafka_t *rk = consumer_new(mk);
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(np);
    struct topic_dump d = { NULL, 0 };
    int64_t want = 0;
    double end = bd_test_now_ms() + 30000;

    for (int p = 0; p < np; p++) {
        int64_t lo, hi;

        ck_assert_int_eq(rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi,
                                                          10000),
                         RD_KAFKA_RESP_ERR_NO_ERROR);
        want += hi - lo;
        rd_kafka_topic_partition_list_add(parts, topic, p)->offset =
            RD_KAFKA_OFFSET_BEGINNING;
    }
    ck_assert_int_eq(rd_kafka_assign(rk, parts), RD_KAFKA_RESP_ERR_NO_ERROR);
    while ((int64_t)d.n < want && bd_test_now_ms() < end) {
        rd_kafka_message_t *rm = rd_kafka_consumer_poll(rk, 500);

        if (rm == NULL)
            continue;
        if (rm->err == RD_KAFKA_RESP_ERR_NO_ERROR)
            dump_add(&d, rm);
        rd_kafka_message_destroy(rm);
    }
    ck_assert_msg((int64_t)d.n == want, "%s: consumed %zu of %lld messages", topic,
                  d.n, (long long)want);
    rd_kafka_topic_partition_list_destroy(parts);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return d;
}

/* The messages whose tag is tag: count, and the last one in *found. */
static int dump_count(const struct topic_dump *d, const char *tag,
                      const struct msg **found)
{
    int n = 0;

    for (size_t i = 0; i < d->n; i++)
        if (strcmp(d->m[i].tag, tag) == 0) {
            n++;
            *found = &d->m[i];
        }
    return n;
}

/* ---- client processes ------------------------------------------------------ */

/* What the clients do, and what they were told: shared memory. */
struct plan {
    char sock[128];
    int round;                /* tags are "r<round>c<idx>-<j>" */
    int nclients, nitems;
    const char *keys[4];      /* item j of client c: keys[(c + j) % nkeys] */
    int nkeys;
    int big_every;            /* every big_every-th item is big_len bytes */
    size_t big_len;
    int status[MAXC * MAXN];  /* reply status, -1 none */
    int32_t part[MAXC * MAXN];  /* OK: the reply's partition:offset */
    int64_t off[MAXC * MAXN];
    char fail_msg[MAXC][200]; /* a client's first non-OK message */
};

/* One item's slot, for the reply callback (in the client). */
struct slot {
    struct plan *pl;
    int idx, j;
    int *answered;
};

static const char *item_key(const struct plan *pl, int c, int j)
{
    return pl->keys[(c + j) % pl->nkeys];
}

static void item_tag(const struct plan *pl, int c, int j, char *tag)
{
    snprintf(tag, TAGLEN, "r%dc%d-%d", pl->round, c, j);
}

static void reply_cb(struct batchd_client *c, const struct batchd_reply *r, void *arg)
{
    struct slot *s = arg;
    struct plan *pl = s->pl;
    int at = s->idx * pl->nitems + s->j;
    long long off;
    int part;

    (void)c;
    (*s->answered)++;
    if (r == NULL)
        return;
    pl->status[at] = r->status;
    if (r->status == BATCHD_OK) {
        char buf[64];

        snprintf(buf, sizeof(buf), "%.*s", (int)r->len, (const char *)r->data);
        if (sscanf(buf, "%d:%lld", &part, &off) != 2)
            pl->status[at] = -2;   /* not "partition:offset" */
        pl->part[at] = part;
        pl->off[at] = off;
    } else if (pl->fail_msg[s->idx][0] == '\0') {
        snprintf(pl->fail_msg[s->idx], sizeof(pl->fail_msg[0]), "%s: %.*s",
                 batchd_status_name(r->status), (int)r->len, (const char *)r->data);
    }
}

static size_t make_payload(const struct plan *pl, int c, int j, char *p, size_t cap)
{
    size_t n;

    item_tag(pl, c, j, p);
    n = strlen(p);
    p[n++] = ':';
    if (pl->big_every > 0 && j % pl->big_every == pl->big_every - 1) {
        memset(p + n, 'x', pl->big_len - n);
        return pl->big_len;
    }
    n += (size_t)snprintf(p + n, cap - n, "%s", "payload");
    return n;
}

static int load_client(int idx, void *arg)
{
    struct plan *pl = arg;
    struct batchd_client *c = batchd_connect_unix(pl->sock, 10000);
    struct slot *slots = calloc((size_t)pl->nitems, sizeof(*slots));
    char *p = malloc(pl->big_len + 64);
    int next = 0, answered = 0;
    double end = bd_test_now_ms() + 90000;

    if (slots == NULL || p == NULL || batchd_err(c) != BATCHD_ERR_NONE)
        return bd_test_child_fail(idx, "connect: %s", batchd_errstr(c));
    while (answered < pl->nitems && bd_test_now_ms() < end) {
        while (next < pl->nitems && next - answered < DEPTH) {
            size_t n = make_payload(pl, idx, next, p, pl->big_len + 64);

            slots[next] = (struct slot){ pl, idx, next, &answered };
            if (batchd_submit_load(c, item_key(pl, idx, next), p, n, NULL, reply_cb,
                                   &slots[next], NULL) != BATCHD_CLIENT_OK)
                return bd_test_child_fail(idx, "submit: %s", batchd_errstr(c));
            next++;
        }
        if (batchd_process(c, 1000) < 0)
            return bd_test_child_fail(idx, "process: %s", batchd_errstr(c));
    }
    batchd_free(c);
    free(slots);
    free(p);
    return answered == pl->nitems ? 0 : bd_test_child_fail(idx, "%d answered", answered);
}

static struct plan *plan_new(struct bd_test_daemon *d, int nclients, int nitems)
{
    struct plan *pl = bd_test_shared_alloc(sizeof(*pl));

    snprintf(pl->sock, sizeof(pl->sock), "%s", bd_test_daemon_socket(d));
    pl->nclients = nclients;
    pl->nitems = nitems;
    pl->keys[0] = "k0";
    pl->keys[1] = "k1";
    pl->nkeys = 2;
    pl->big_len = 64;
    for (int i = 0; i < MAXC * MAXN; i++)
        pl->status[i] = -1;
    return pl;
}

static void plan_run(struct plan *pl)
{
    struct bd_test_procs *p = bd_test_procs_start(pl->nclients, load_client, pl);

    ck_assert_int_eq(bd_test_procs_wait(p, 120000, NULL), 0);
}

/* Items with status st. */
static int plan_count(const struct plan *pl, int st)
{
    int n = 0;

    for (int i = 0; i < pl->nclients * pl->nitems; i++)
        n += pl->status[i] == st;
    return n;
}

/*
 * The oracle: an OK item is in d exactly once, at the partition:offset
 * of its reply; no other item of the plan is in d at all. Returns the
 * number of OK items (see plan_verify).
 */
static int plan_check(const struct plan *pl, const struct topic_dump *d)
{
    int ok = 0;

    for (int c = 0; c < pl->nclients; c++)
        for (int j = 0; j < pl->nitems; j++) {
            int at = c * pl->nitems + j, st = pl->status[at], n;
            const struct msg *m = NULL;
            char tag[TAGLEN];

            item_tag(pl, c, j, tag);
            n = dump_count(d, tag, &m);
            if (st != BATCHD_OK) {
                ck_assert_msg(n == 0, "%s answered %d but in the topic %d times",
                              tag, st, n);
                continue;
            }
            ok++;
            ck_assert_msg(n == 1, "%s answered OK, in the topic %d times", tag, n);
            ck_assert_msg(m->partition == pl->part[at] && m->offset == pl->off[at],
                          "%s: reply %d:%lld, topic %d:%lld", tag, pl->part[at],
                          (long long)pl->off[at], m->partition, (long long)m->offset);
        }
    return ok;
}

/* plan_check, and d holds nothing else. */
static void plan_verify(const struct plan *pl, const struct topic_dump *d)
{
    ck_assert_int_eq((int)d->n, plan_check(pl, d));
}

static void dump_free(struct topic_dump *d)
{
    free(d->m);
}

/* ---- daemon configs -------------------------------------------------------- */

/* A daemon with one kafka sink "k" (extra sink lines in sink_extra) and a
 * route for every key (extra lines in route_extra). */
static struct bd_test_daemon *kafka_daemon(const struct mock *mk, const char *topic,
                                           const char *sink_extra,
                                           const char *route_extra)
{
    struct bd_test_daemon *d;
    char *body;

    ck_assert_int_ge(asprintf(&body,
                              "[sink.k]\nplugin = kafka\nbrokers = %s\ntopic = %s\n%s\n"
                              "[route.all]\nmatch = *\nsink = k\n%s\n",
                              mk->boot, topic, sink_extra, route_extra), 0);
    d = bd_test_daemon_start(body);
    free(body);
    return d;
}

/* ================================ core ====================================== */

/* Many clients, two keys, three partitions: every item OK exactly once,
 * keyed by its batchd key (so one key stays on one partition). */
START_TEST(test_roundtrip_keyed)
{
    struct mock mk;
    struct bd_test_daemon *d;
    struct plan *pl;
    struct topic_dump td;
    int32_t part_of[2] = { -1, -1 };

    mock_start(&mk, 3);
    mock_topic(&mk, "events", 3);
    d = kafka_daemon(&mk, "events", "", "");
    pl = plan_new(d, 4, 250);
    plan_run(pl);
    ck_assert_int_eq(plan_count(pl, BATCHD_OK), 4 * 250);
    td = consume_all(&mk, "events", 3);
    plan_verify(pl, &td);
    for (size_t i = 0; i < td.n; i++) {
        int k = strcmp(td.m[i].key, "k1") == 0;

        ck_assert_msg(strcmp(td.m[i].key, k ? "k1" : "k0") == 0, "key '%s'",
                      td.m[i].key);
        if (part_of[k] < 0)
            part_of[k] = td.m[i].partition;
        ck_assert_int_eq(td.m[i].partition, part_of[k]);
    }
    dump_free(&td);
    bd_test_daemon_stop(d);
    bd_test_shared_free(pl, sizeof(*pl));
    mock_stop(&mk);
}
END_TEST

/* topic = ev.{key}: each key to its own topic, no message key; a key that
 * makes no valid topic name fails its items, and nothing is produced. */
START_TEST(test_topic_template)
{
    struct mock mk;
    struct bd_test_daemon *d;
    struct plan *pl;
    struct topic_dump ta, tb, all;

    mock_start(&mk, 1);
    mock_topic(&mk, "ev.a", 1);
    mock_topic(&mk, "ev.b", 1);
    d = kafka_daemon(&mk, "ev.{key}", "message_key = none", "");
    pl = plan_new(d, 2, 90);
    pl->keys[0] = "a";
    pl->keys[1] = "b";
    pl->keys[2] = "no good";
    pl->nkeys = 3;
    plan_run(pl);
    ck_assert_int_eq(plan_count(pl, BATCHD_OK), 2 * 60);
    ck_assert_int_eq(plan_count(pl, BATCHD_FAIL), 2 * 30);
    ck_assert_msg(strstr(pl->fail_msg[0], "does not make a valid topic name") != NULL,
                  "%s", pl->fail_msg[0]);
    ta = consume_all(&mk, "ev.a", 1);
    tb = consume_all(&mk, "ev.b", 1);
    all.n = ta.n + tb.n;
    all.m = calloc(all.n, sizeof(*all.m));
    memcpy(all.m, ta.m, ta.n * sizeof(*ta.m));
    memcpy(all.m + ta.n, tb.m, tb.n * sizeof(*tb.m));
    ck_assert_int_eq((int)ta.n, 60);
    plan_verify(pl, &all);
    for (size_t i = 0; i < all.n; i++)
        ck_assert(all.m[i].nokey);
    dump_free(&ta);
    dump_free(&tb);
    dump_free(&all);
    bd_test_daemon_stop(d);
    bd_test_shared_free(pl, sizeof(*pl));
    mock_stop(&mk);
}
END_TEST

/* The same round trip with the plugin in a sink runner child. */
START_TEST(test_isolation_process)
{
    struct mock mk;
    struct bd_test_daemon *d;
    struct plan *pl;
    struct topic_dump td;

    mock_start(&mk, 1);
    mock_topic(&mk, "iso", 2);
    d = kafka_daemon(&mk, "iso", "isolation = process", "");
    pl = plan_new(d, 3, 100);
    plan_run(pl);
    ck_assert_int_eq(plan_count(pl, BATCHD_OK), 3 * 100);
    td = consume_all(&mk, "iso", 2);
    plan_verify(pl, &td);
    dump_free(&td);
    bd_test_daemon_stop(d);
    bd_test_shared_free(pl, sizeof(*pl));
    mock_stop(&mk);
}
END_TEST

/* ================================ errors ==================================== */

/* A permanent broker error on Produce fails the messages it hits with
 * librdkafka's words; a message over message.max.bytes fails at once;
 * the others of the batch go through. */
START_TEST(test_permanent_errors_fail)
{
    struct mock mk;
    struct bd_test_daemon *d;
    struct plan *warm, *pa, *pb;
    struct topic_dump td;

    mock_start(&mk, 1);
    mock_topic(&mk, "perm", 1);
    d = kafka_daemon(&mk, "perm", "rdkafka.message.max.bytes = 4096",
                     "max_attempts = 1\n");
    /* First past the producer's id and metadata setup, so that the
     * pushed error hits a Produce request. */
    warm = plan_new(d, 1, 1);
    plan_run(warm);
    ck_assert_int_eq(plan_count(warm, BATCHD_OK), 1);

    rd_kafka_mock_push_request_errors(mk.mc, KAFKA_API_PRODUCE, 1,
                                      RD_KAFKA_RESP_ERR_INVALID_RECORD);
    pa = plan_new(d, 1, 30);
    pa->round = 1;
    plan_run(pa);
    ck_assert_int_ge(plan_count(pa, BATCHD_FAIL), 1);
    ck_assert_int_eq(plan_count(pa, BATCHD_FAIL) + plan_count(pa, BATCHD_OK), 30);
    ck_assert_msg(strstr(pa->fail_msg[0], "FAIL: kafka: Broker: ") != NULL &&
                  strstr(pa->fail_msg[0], "(INVALID_RECORD)") != NULL, "%s",
                  pa->fail_msg[0]);

    pb = plan_new(d, 1, 40);
    pb->round = 2;
    pb->big_every = 10;
    pb->big_len = 10000;
    plan_run(pb);
    ck_assert_int_eq(plan_count(pb, BATCHD_FAIL), 4);
    ck_assert_int_eq(plan_count(pb, BATCHD_OK), 36);
    for (int j = 9; j < 40; j += 10)
        ck_assert_int_eq(pb->status[j], BATCHD_FAIL);
    ck_assert_msg(strstr(pb->fail_msg[0], "(MSG_SIZE_TOO_LARGE)") != NULL, "%s",
                  pb->fail_msg[0]);

    td = consume_all(&mk, "perm", 1);
    ck_assert_int_eq((int)td.n, plan_check(warm, &td) + plan_check(pa, &td) +
                                    plan_check(pb, &td));
    dump_free(&td);
    bd_test_daemon_stop(d);
    bd_test_shared_free(warm, sizeof(*warm));
    bd_test_shared_free(pa, sizeof(*pa));
    bd_test_shared_free(pb, sizeof(*pb));
    mock_stop(&mk);
}
END_TEST

/* Retriable broker errors are retried inside librdkafka; the idempotent
 * producer keeps each message once. */
START_TEST(test_retriable_errors_no_duplicates)
{
    struct mock mk;
    struct bd_test_daemon *d;
    struct plan *pl;
    struct topic_dump td;

    mock_start(&mk, 1);
    mock_topic(&mk, "retr", 2);
    rd_kafka_mock_push_request_errors(mk.mc, KAFKA_API_PRODUCE, 4,
                                      RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
                                      RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
                                      RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
                                      RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE);
    d = kafka_daemon(&mk, "retr", "", "");
    pl = plan_new(d, 2, 200);
    plan_run(pl);
    ck_assert_int_eq(plan_count(pl, BATCHD_OK), 2 * 200);
    td = consume_all(&mk, "retr", 2);
    plan_verify(pl, &td);
    dump_free(&td);
    bd_test_daemon_stop(d);
    bd_test_shared_free(pl, sizeof(*pl));
    mock_stop(&mk);
}
END_TEST

/* A producer queue of 10 messages and batches of 40: what does not fit
 * is answered RETRY at once (process() never waits for room), retried
 * by the daemon, and in the end every item is OK exactly once. */
START_TEST(test_queue_full_retries)
{
    struct mock mk;
    struct bd_test_daemon *d;
    struct plan *pl;
    struct topic_dump td;
    long long retries = 0;
    char *js;

    mock_start(&mk, 1);
    mock_topic(&mk, "full", 2);
    d = kafka_daemon(&mk, "full", "rdkafka.queue.buffering.max.messages = 10",
                     "max_items = 40\nmax_attempts = 100\nretry_base_ms = 5\n"
                     "retry_cap_ms = 50\n");
    pl = plan_new(d, 2, 150);
    plan_run(pl);
    ck_assert_int_eq(plan_count(pl, BATCHD_OK), 2 * 150);
    js = bd_test_stats_json(d);
    ck_assert_int_eq(bd_test_json_int(js, "retries", &retries), 0);
    free(js);
    ck_assert_msg(retries >= 1, "the queue never filled");
    td = consume_all(&mk, "full", 2);
    plan_verify(pl, &td);
    dump_free(&td);
    bd_test_daemon_stop(d);
    bd_test_shared_free(pl, sizeof(*pl));
    mock_stop(&mk);
}
END_TEST

/* The one broker down: messages time out in librdkafka (RETRY), batchd
 * retries them, the broker comes back, every item is OK exactly once. */
START_TEST(test_broker_down_then_up)
{
    struct mock mk;
    struct bd_test_daemon *d;
    struct plan *pl;
    struct topic_dump td;
    struct bd_test_procs *p;
    long long retries = 0;
    double end;

    mock_start(&mk, 1);
    mock_topic(&mk, "down", 1);
    ck_assert_int_eq(rd_kafka_mock_broker_set_down(mk.mc, 1), 0);
    d = kafka_daemon(&mk, "down", "rdkafka.message.timeout.ms = 1000",
                     "max_attempts = 50\nretry_base_ms = 100\nretry_cap_ms = 300\n");
    pl = plan_new(d, 2, 50);
    p = bd_test_procs_start(pl->nclients, load_client, pl);
    end = bd_test_now_ms() + bd_test_scaled(30000);
    while (retries < 1 && bd_test_now_ms() < end) {
        char *js = bd_test_stats_json(d);

        bd_test_json_int(js, "retries", &retries);
        free(js);
        usleep(100 * 1000);
    }
    ck_assert_msg(retries >= 1, "no retry while the broker was down");
    ck_assert_int_eq(rd_kafka_mock_broker_set_up(mk.mc, 1), 0);
    ck_assert_int_eq(bd_test_procs_wait(p, 120000, NULL), 0);
    ck_assert_int_eq(plan_count(pl, BATCHD_OK), 2 * 50);
    td = consume_all(&mk, "down", 1);
    plan_verify(pl, &td);
    dump_free(&td);
    bd_test_daemon_stop(d);
    bd_test_shared_free(pl, sizeof(*pl));
    mock_stop(&mk);
}
END_TEST

/* Down for good: RETRY until max_attempts, then RETRY_EXHAUSTED;
 * nothing reaches the topic. */
START_TEST(test_broker_down_exhausted)
{
    struct mock mk;
    struct bd_test_daemon *d;
    struct plan *pl;
    struct topic_dump td;

    mock_start(&mk, 1);
    mock_topic(&mk, "gone", 1);
    ck_assert_int_eq(rd_kafka_mock_broker_set_down(mk.mc, 1), 0);
    d = kafka_daemon(&mk, "gone", "rdkafka.message.timeout.ms = 500",
                     "max_attempts = 2\nretry_base_ms = 50\n");
    pl = plan_new(d, 1, 20);
    plan_run(pl);
    ck_assert_int_eq(plan_count(pl, BATCHD_RETRY_EXHAUSTED), 20);
    bd_test_daemon_stop(d);
    ck_assert_int_eq(rd_kafka_mock_broker_set_up(mk.mc, 1), 0);
    td = consume_all(&mk, "gone", 1);
    ck_assert_int_eq((int)td.n, 0);
    dump_free(&td);
    bd_test_shared_free(pl, sizeof(*pl));
    mock_stop(&mk);
}
END_TEST

/* SIGTERM while a broker is down and messages wait in librdkafka: after
 * shutdown_grace_ms the daemon answers them SHUTTING_DOWN and exits 0,
 * without waiting for message.timeout.ms; nothing reaches the topic. */
START_TEST(test_sigterm_broker_down)
{
    struct mock mk;
    struct bd_test_daemon *d;
    struct plan *pl;
    struct bd_test_procs *p;
    struct topic_dump td;
    long long inflight = 0;
    double end, t0;

    mock_start(&mk, 1);
    mock_topic(&mk, "term", 1);
    ck_assert_int_eq(rd_kafka_mock_broker_set_down(mk.mc, 1), 0);
    d = kafka_daemon(&mk, "term", "rdkafka.message.timeout.ms = 60000\n"
                     "[daemon]\nshutdown_grace_ms = 1000",
                     "sink_timeout_ms = 90000\n");
    pl = plan_new(d, 1, 30);
    p = bd_test_procs_start(1, load_client, pl);
    end = bd_test_now_ms() + bd_test_scaled(20000);
    while (inflight < 1 && bd_test_now_ms() < end) {
        char *js = bd_test_stats_json(d);

        bd_test_json_int(js, "inflight", &inflight);
        free(js);
        usleep(50 * 1000);
    }
    ck_assert_msg(inflight >= 1, "no call in flight");
    t0 = bd_test_now_ms();
    ck_assert_int_eq(bd_test_daemon_kill(d, SIGTERM), 0);
    ck_assert_msg(bd_test_now_ms() - t0 < 30000, "exit took %.0f ms",
                  bd_test_now_ms() - t0);
    ck_assert_int_eq(bd_test_procs_wait(p, 30000, NULL), 0);
    ck_assert_int_eq(plan_count(pl, BATCHD_SHUTTING_DOWN), 30);
    bd_test_daemon_free(d);
    ck_assert_int_eq(rd_kafka_mock_broker_set_up(mk.mc, 1), 0);
    td = consume_all(&mk, "term", 1);
    ck_assert_int_eq((int)td.n, 0);
    dump_free(&td);
    bd_test_shared_free(pl, sizeof(*pl));
    mock_stop(&mk);
}
END_TEST

/* ================================ config ==================================== */

static int check_config(const char *body, char **err)
{
    struct bd_test_daemon *d = bd_test_daemon_new(body);
    const char *argv[] = { bd_test_batchd_bin(), "--check-config", "-c",
                           bd_test_daemon_conf(d), "--sink-dir", bd_test_sink_dir(),
                           NULL };
    int rc = bd_test_run(argv, 20000, NULL, err);

    bd_test_daemon_free(d);
    return rc;
}

#define SINK_HEAD "[sink.k]\nplugin = kafka\nbrokers = 127.0.0.1:1\ntopic = t\n"
#define ROUTE "[route.all]\nmatch = *\nsink = k\n"

/* --check-config refuses a key the sink does not have, naming it, and
 * takes any rdkafka.* key. */
START_TEST(test_check_config)
{
    char *err = NULL;

    ck_assert_int_ne(check_config(SINK_HEAD "topc = x\n" ROUTE, &err), 0);
    ck_assert_msg(strstr(err, "unknown option 'topc'") != NULL, "%s", err);
    free(err);
    ck_assert_int_ne(check_config(SINK_HEAD "rdkafka. = x\n" ROUTE, &err), 0);
    ck_assert_msg(strstr(err, "unknown option 'rdkafka.'") != NULL, "%s", err);
    free(err);
    ck_assert_int_eq(check_config(SINK_HEAD "rdkafka.linger.ms = 5\n"
                                  "compression = lz4\n" ROUTE, &err), 0);
    free(err);
}
END_TEST

/* Values only librdkafka can judge stop the daemon at start, in its own
 * words and with the key they came from. */
START_TEST(test_bad_values_stop_start)
{
    bd_test_expect_start_failure(SINK_HEAD "rdkafka.linger.ms = soon\n" ROUTE,
                                 "kafka: rdkafka.linger.ms = soon: Invalid value");
    bd_test_expect_start_failure(SINK_HEAD "rdkafka.no.such.thing = 1\n" ROUTE,
                                 "No such configuration property: \"no.such.thing\"");
    bd_test_expect_start_failure(SINK_HEAD "compression = brotli\n" ROUTE,
                                 "kafka: compression = brotli: Invalid value");
    bd_test_expect_start_failure(SINK_HEAD "acks = 1\n" ROUTE, "acks");
    bd_test_expect_start_failure(SINK_HEAD "partitioner = bogus\n" ROUTE,
                                 "kafka: partitioner = bogus: Invalid value");
    bd_test_expect_start_failure(SINK_HEAD "rdkafka.delivery.report.only.error = true\n"
                                 ROUTE, "the sink needs every delivery report");
    bd_test_expect_start_failure(SINK_HEAD "message_key = maybe\n" ROUTE,
                                 "message_key = maybe: use 'key' or 'none'");
    bd_test_expect_start_failure("[sink.k]\nplugin = kafka\nbrokers = x:1\n"
                                 "topic = a b\n" ROUTE,
                                 "topic = a b: not a valid Kafka topic name");
    bd_test_expect_start_failure("[sink.k]\nplugin = kafka\ntopic = t\n" ROUTE,
                                 "option 'brokers' is required");
}
END_TEST

/* ---- suite ------------------------------------------------------------------ */

static Suite *kafka_suite(void)
{
    Suite *s = suite_create("kafka");
    TCase *core = tcase_create("core");
    TCase *errors = tcase_create("errors");
    TCase *config = tcase_create("config");

    tcase_set_timeout(core, 180);
    bd_test_add(core, test_roundtrip_keyed);
    bd_test_add(core, test_topic_template);
    bd_test_add(core, test_isolation_process);
    suite_add_tcase(s, core);

    tcase_set_timeout(errors, 180);
    bd_test_add(errors, test_permanent_errors_fail);
    bd_test_add(errors, test_retriable_errors_no_duplicates);
    bd_test_add(errors, test_queue_full_retries);
    bd_test_add(errors, test_broker_down_then_up);
    bd_test_add(errors, test_broker_down_exhausted);
    bd_test_add(errors, test_sigterm_broker_down);
    suite_add_tcase(s, errors);

    tcase_set_timeout(config, 120);
    bd_test_add(config, test_check_config);
    bd_test_add(config, test_bad_values_stop_start);
    suite_add_tcase(s, config);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(kafka_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
