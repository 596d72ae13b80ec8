/*
 * check_core.c - the batching core (core.h, batch.c, call.c) driven
 * directly: a fake clock, fake waiters, no sockets and no loop running.
 *
 * The sink side is the core's own call-outcome entry point: the test
 * sink (NONBLOCKING, so calls start on the "loop") keeps every batch it
 * is given and returns PENDING; a test then writes the verdicts into the
 * batch with the host's own bd_result_set and hands it back with
 * bd_call_complete, exactly as worker.c's completion path does.
 */
#include <check.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "batch.h"
#include "call.h"
#include "config.h"
#include "core.h"
#include "msg.h"
#include "sink.h"
#include "waiter.h"

#define MS 1000000ull

/* ---- fake clock ---------------------------------------------------------- */

static uint64_t fake_now = 1000 * MS;

static uint64_t fake_clock(void)
{
    return fake_now;
}

/* ---- fake waiters: remember every reply ---------------------------------- */

#define MAX_REPLIES 256

struct reply {
    uint64_t req_id;
    int status;
    char body[64];
};

struct fake_waiter {
    struct bd_waiter w;       /* what the core holds */
    struct reply got[MAX_REPLIES];
    size_t n;                 /* replies delivered */
};

static void fake_deliver(struct bd_waiter *w, int type, uint64_t req_id,
                         int status, const void *body, size_t len, int is_str)
{
    struct fake_waiter *f = (struct fake_waiter *)w;

    (void)type;
    (void)is_str;
    ck_assert_uint_lt(f->n, MAX_REPLIES);
    f->got[f->n].req_id = req_id;
    f->got[f->n].status = status;
    snprintf(f->got[f->n].body, sizeof(f->got[0].body), "%.*s",
             (int)(len > 60 ? 60 : len), body ? (const char *)body : "");
    f->n++;
}

static void fake_release_slow(struct bd_waiter *w)
{
    w->refs--;
}

static const struct bd_waiter_ops fake_ops = {
    .deliver = fake_deliver,
    .release_slow = fake_release_slow,
};

static void waiter_init(struct fake_waiter *f)
{
    memset(f, 0, sizeof(*f));
    f->w.ops = &fake_ops;
    f->w.refs = 1;
}

/* The reply to req_id, or NULL. */
static const struct reply *reply_to(const struct fake_waiter *f, uint64_t id)
{
    for (size_t i = 0; i < f->n; i++)
        if (f->got[i].req_id == id)
            return &f->got[i];
    return NULL;
}

/* ---- the sink side: calls wait here until the test answers them -------- */

#define MAX_CALLS 64

static struct bd_batch *calls[MAX_CALLS];
static size_t ncalls;

static int keep_process(void *state, void *res, struct batchd_batch *pb)
{
    (void)state;
    (void)res;
    ck_assert_uint_lt(ncalls, MAX_CALLS);
    calls[ncalls++] = pb->host_priv;
    return BATCHD_SINK_PENDING;
}

static const struct batchd_sink keep_vt = {
    .abi_version = BATCHD_SINK_ABI_VERSION,
    .flags = BATCHD_SINK_NONBLOCKING,
    .name = "keep",
    .process = keep_process,
};

/* ---- the core under test ------------------------------------------------- */

struct rig {
    struct event_base *base;
    struct bd_config *cfg;
    struct bd_sink sink;
    struct bd_sink *sinkp;    /* &sink: the core's table of one sink */
    struct bd_core core;
    int flushes;              /* want_flush calls */
};

static void rig_want_flush(void *arg)
{
    ((struct rig *)arg)->flushes++;
}

/* A core over one route (route_opts appended to its section). */
static void rig_start(struct rig *r, const char *route_opts)
{
    char text[2048], *errs = NULL;

    memset(r, 0, sizeof(*r));
    snprintf(text, sizeof(text),
             "[daemon]\nmax_concurrency = 4\n"
             "[sink.s]\nplugin = keep\n"
             "[route.r]\nmatch = *\nsink = s\nsink_timeout_ms = 0\n%s",
             route_opts);
    r->cfg = bd_config_load_string(text, "core.conf", &errs);
    ck_assert_msg(r->cfg != NULL, "config: %s", errs ? errs : "?");
    r->base = event_base_new();
    ck_assert_ptr_nonnull(r->base);
    r->sink.name = (char *)"s";
    r->sink.vt = &keep_vt;
    r->sink.nonblocking = 1;
    r->sinkp = &r->sink;
    ck_assert_int_eq(bd_core_init(&r->core, r->base, r->cfg, &r->sinkp, NULL,
                                  fake_clock, rig_want_flush, r), 0);
    ncalls = 0;
}

static void rig_stop(struct rig *r)
{
    bd_batch_destroy_all(&r->core);
    event_base_free(r->base);
    bd_config_free(r->cfg);
}

/* End of a loop pass at fake_now: timers that are due, then the keys. */
static void pass(struct rig *r)
{
    bd_core_tick(&r->core);
    bd_batch_timers_due(&r->core);
    bd_batch_run_dirty(&r->core);
}

/* Admit one item; returns the admission status. opts may be NULL. */
static int admit(struct rig *r, struct fake_waiter *w, uint64_t req_id,
                 const char *key, const char *payload,
                 const struct bd_opts *opts)
{
    struct bd_msg_item in = {
        .type = w ? BD_MSG_LOAD : BD_MSG_SEND,
        .req_id = req_id,
        .key = key,
        .key_len = strlen(key),
        .payload = (const uint8_t *)payload,
        .payload_len = strlen(payload),
    };
    struct bd_admit a;

    bd_core_tick(&r->core);
    bd_batch_admit(&r->core, &in, opts, w ? &w->w : NULL, &a);
    return a.status;
}

/* The payload of item i of call c, as a string. */
static const char *item_payload(size_t c, size_t i)
{
    static char buf[128];
    const struct batchd_item *it = &calls[c]->pub.items[i];

    snprintf(buf, sizeof(buf), "%.*s", (int)it->len, (const char *)it->data);
    return buf;
}

/* Answer every item of call c with code (payload: the item's own). */
static void answer(struct rig *r, size_t c, int code)
{
    struct bd_batch *b = calls[c];

    for (size_t i = 0; i < b->pub.nitems; i++)
        bd_result_set(&b->results[i], code, b->pub.items[i].data,
                      b->pub.items[i].len);
    b->rc = BATCHD_SINK_DONE;
    bd_core_tick(&r->core);
    bd_call_complete(&r->core, b);
    calls[c] = NULL;
}

/* ---- close rules ---------------------------------------------------------- */

START_TEST(test_size_policy_waits_for_a_full_batch)
{
    struct rig r;
    struct fake_waiter w;

    waiter_init(&w);
    rig_start(&r, "policy = size\nmax_items = 3\n");
    admit(&r, &w, 1, "k", "a", NULL);
    admit(&r, &w, 2, "k", "b", NULL);
    pass(&r);
    ck_assert_uint_eq(ncalls, 0);
    fake_now += 60000 * MS; /* no delay rule under size */
    pass(&r);
    ck_assert_uint_eq(ncalls, 0);
    admit(&r, &w, 3, "k", "c", NULL);
    pass(&r);
    ck_assert_uint_eq(ncalls, 1);
    ck_assert_uint_eq(calls[0]->pub.nitems, 3);
    ck_assert_str_eq(item_payload(0, 0), "a");
    ck_assert_str_eq(item_payload(0, 2), "c");
    answer(&r, 0, BATCHD_RESULT_OK);
    ck_assert_uint_eq(w.n, 3);
    ck_assert_int_eq(reply_to(&w, 2)->status, BATCHD_OK);
    ck_assert_str_eq(reply_to(&w, 2)->body, "b");
    ck_assert_uint_eq(w.w.refs, 1); /* every item let go of its waiter */
    rig_stop(&r);
}
END_TEST

START_TEST(test_duration_policy_leaves_after_the_delay)
{
    struct rig r;
    struct fake_waiter w;

    waiter_init(&w);
    rig_start(&r, "policy = duration\nmax_items = 10\nmax_delay_us = 5000\n");
    admit(&r, &w, 1, "k", "a", NULL);
    pass(&r);
    ck_assert_uint_eq(ncalls, 0);
    fake_now += 4 * MS;
    admit(&r, &w, 2, "k", "b", NULL);
    pass(&r);
    ck_assert_uint_eq(ncalls, 0);
    fake_now += 1 * MS; /* 5 ms after the first item */
    pass(&r);
    ck_assert_uint_eq(ncalls, 1);
    ck_assert_uint_eq(calls[0]->pub.nitems, 2);
    answer(&r, 0, BATCHD_RESULT_OK);
    ck_assert_uint_eq(w.n, 2);
    rig_stop(&r);
}
END_TEST

START_TEST(test_max_items_splits_batches)
{
    struct rig r;
    struct fake_waiter w;

    waiter_init(&w);
    rig_start(&r, "policy = size\nmax_items = 2\nkey_concurrency = 4\n");
    for (int i = 0; i < 5; i++)
        admit(&r, &w, (uint64_t)i, "k", "x", NULL);
    pass(&r);
    ck_assert_uint_eq(ncalls, 2); /* the fifth waits for a full batch */
    ck_assert_uint_eq(r.core.nqueued, 1);
    answer(&r, 0, BATCHD_RESULT_OK);
    answer(&r, 1, BATCHD_RESULT_OK);
    ck_assert_uint_eq(w.n, 4);
    rig_stop(&r);
}
END_TEST

/* ---- deadlines ------------------------------------------------------------- */

START_TEST(test_expired_item_never_reaches_the_sink)
{
    struct rig r;
    struct fake_waiter w;
    struct bd_opts o = {.has_deadline = 1, .deadline_ms = 5};

    waiter_init(&w);
    rig_start(&r, "policy = size\nmax_items = 10\n");
    ck_assert_int_eq(admit(&r, &w, 7, "k", "a", &o), BATCHD_OK);
    admit(&r, &w, 8, "k", "b", NULL);
    pass(&r);
    fake_now += 10 * MS;
    pass(&r);
    ck_assert_uint_eq(w.n, 1);
    ck_assert_int_eq(reply_to(&w, 7)->status, BATCHD_DEADLINE_EXCEEDED);
    ck_assert_uint_eq(ncalls, 0);
    ck_assert_uint_eq(r.core.nqueued, 1);
    rig_stop(&r);
}
END_TEST

START_TEST(test_tight_deadline_makes_the_batch_leave_early)
{
    struct rig r;
    struct fake_waiter w;
    struct bd_opts o = {.has_deadline = 1, .deadline_ms = 20};

    waiter_init(&w);
    rig_start(&r, "policy = duration\nmax_items = 10\nmax_delay_us = 1000000\n");
    admit(&r, &w, 1, "k", "a", NULL);
    admit(&r, &w, 2, "k", "b", &o);
    pass(&r);
    ck_assert_uint_eq(ncalls, 0);
    fake_now += 19 * MS + MS / 2; /* within the margin before 20 ms */
    pass(&r);
    ck_assert_uint_eq(ncalls, 1);
    ck_assert_uint_eq(calls[0]->pub.nitems, 2);
    answer(&r, 0, BATCHD_RESULT_OK);
    ck_assert_int_eq(reply_to(&w, 2)->status, BATCHD_OK);
    rig_stop(&r);
}
END_TEST

/* ---- retries ---------------------------------------------------------------- */

START_TEST(test_retry_waits_its_backoff_then_succeeds)
{
    struct rig r;
    struct fake_waiter w;

    waiter_init(&w);
    rig_start(&r, "policy = immediate\nmax_attempts = 3\nretry_base_ms = 100\n"
              "retry_cap_ms = 100\n");
    admit(&r, &w, 1, "k", "a", NULL);
    pass(&r);
    ck_assert_uint_eq(ncalls, 1);
    answer(&r, 0, BATCHD_RESULT_RETRY);
    pass(&r);
    ck_assert_uint_eq(w.n, 0);
    ck_assert_uint_eq(r.core.nretry, 1);
    fake_now += 49 * MS; /* the wait is 50..100 ms */
    pass(&r);
    ck_assert_uint_eq(ncalls, 1);
    fake_now += 51 * MS;
    pass(&r);
    ck_assert_uint_eq(ncalls, 2);
    ck_assert_uint_eq(calls[1]->pub.items[0].attempt, 2);
    answer(&r, 1, BATCHD_RESULT_OK);
    ck_assert_uint_eq(w.n, 1);
    ck_assert_int_eq(w.got[0].status, BATCHD_OK);
    ck_assert_uint_eq(r.core.ctr.retries, 1);
    rig_stop(&r);
}
END_TEST

START_TEST(test_retries_exhausted)
{
    struct rig r;
    struct fake_waiter w;

    waiter_init(&w);
    rig_start(&r, "policy = immediate\nmax_attempts = 2\nretry_base_ms = 10\n"
              "retry_cap_ms = 10\n");
    admit(&r, &w, 1, "k", "a", NULL);
    pass(&r);
    answer(&r, 0, BATCHD_RESULT_RETRY);
    fake_now += 10 * MS;
    pass(&r);
    ck_assert_uint_eq(ncalls, 2);
    answer(&r, 1, BATCHD_RESULT_RETRY);
    ck_assert_uint_eq(w.n, 1);
    ck_assert_int_eq(w.got[0].status, BATCHD_RETRY_EXHAUSTED);
    rig_stop(&r);
}
END_TEST

/* ---- waiters --------------------------------------------------------------- */

START_TEST(test_gone_waiter_cancels_its_queued_loads_only)
{
    struct rig r;
    struct fake_waiter a, b;

    waiter_init(&a);
    waiter_init(&b);
    rig_start(&r, "policy = size\nmax_items = 10\n");
    admit(&r, &a, 1, "k", "a1", NULL);
    admit(&r, &b, 1, "k", "b1", NULL);
    admit(&r, NULL, 9, "k", "s1", NULL); /* a SEND: nobody waits */
    a.w.gone = 1;
    bd_batch_cancel_waiter(&r.core, &a.w);
    ck_assert_uint_eq(a.w.refs, 1);
    ck_assert_uint_eq(r.core.ctr.cancelled, 1);
    bd_batch_flush_all(&r.core);
    r.core.state = BD_STATE_STOPPING; /* flush: size rule lifted */
    pass(&r);
    ck_assert_uint_eq(ncalls, 1);
    ck_assert_uint_eq(calls[0]->pub.nitems, 2);
    answer(&r, 0, BATCHD_RESULT_OK);
    ck_assert_uint_eq(a.n, 0);
    ck_assert_uint_eq(b.n, 1);
    ck_assert_str_eq(b.got[0].body, "b1");
    rig_stop(&r);
}
END_TEST

START_TEST(test_bounds_refuse_at_key_max_items)
{
    struct rig r;
    struct fake_waiter w;

    waiter_init(&w);
    rig_start(&r, "policy = size\nmax_items = 10\nkey_max_items = 2\n");
    ck_assert_int_eq(admit(&r, &w, 1, "k", "a", NULL), BATCHD_OK);
    ck_assert_int_eq(admit(&r, &w, 2, "k", "b", NULL), BATCHD_OK);
    ck_assert_int_eq(admit(&r, &w, 3, "k", "c", NULL), BATCHD_OVERLOADED);
    ck_assert_uint_eq(r.core.ctr.rejects[BD_REJECT_KEY_ITEMS], 1);
    /* The queue cannot grow: its batch leaves without being full. */
    pass(&r);
    ck_assert_uint_eq(ncalls, 1);
    ck_assert_uint_eq(calls[0]->pub.nitems, 2);
    answer(&r, 0, BATCHD_RESULT_OK);
    rig_stop(&r);
}
END_TEST


/* ---- priority lanes ---------------------------------------------------------- */

static struct bd_opts prio(uint32_t p)
{
    struct bd_opts o = {.has_priority = 1, .priority = p};

    return o;
}

/* The payloads of call c, joined with spaces. */
static const char *call_payloads(size_t c)
{
    static char buf[512];
    size_t n = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < calls[c]->pub.nitems && n < sizeof(buf) - 70; i++)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s%s", i ? " " : "",
                              item_payload(c, i));
    return buf;
}

static void lanes_cb(const struct bd_key *k, void *arg)
{
    *(const struct bd_key **)arg = k;
}

static const struct bd_key *only_key(struct rig *r)
{
    const struct bd_key *k = NULL;

    bd_batch_foreach_key(&r->core, lanes_cb, &k);
    ck_assert_ptr_nonnull(k);
    return k;
}

#define DELAYED "policy = duration\nmax_delay_us = 10000\nkey_concurrency = 8\n"

START_TEST(test_highest_lanes_first_fifo_within)
{
    struct rig r;
    struct fake_waiter w;
    struct bd_opts p0 = prio(0), p5 = prio(5), p9 = prio(9);

    waiter_init(&w);
    rig_start(&r, DELAYED "max_items = 3\npriority_aging_ms = 0\n");
    admit(&r, &w, 1, "k", "l1", NULL);
    admit(&r, &w, 2, "k", "l2", &p0);
    admit(&r, &w, 3, "k", "h1", &p9);
    admit(&r, &w, 4, "k", "m1", &p5);
    admit(&r, &w, 5, "k", "h2", &p9);
    admit(&r, &w, 6, "k", "l3", NULL);
    admit(&r, &w, 7, "k", "m2", &p5);
    ck_assert_uint_eq(only_key(&r)->lanes->n[9], 2);
    ck_assert_uint_eq(only_key(&r)->lanes->n[5], 2);
    ck_assert_uint_eq(only_key(&r)->lanes->n[0], 3);
    fake_now += 10 * MS;
    pass(&r);
    ck_assert_uint_eq(ncalls, 3);
    ck_assert_str_eq(call_payloads(0), "h1 h2 m1");
    ck_assert_str_eq(call_payloads(1), "m2 l1 l2");
    ck_assert_str_eq(call_payloads(2), "l3");
    for (size_t i = 0; i < 3; i++)
        answer(&r, i, BATCHD_RESULT_OK);
    ck_assert_uint_eq(w.n, 7);
    rig_stop(&r);
}
END_TEST

START_TEST(test_aged_item_counts_as_top_priority)
{
    struct rig r;
    struct fake_waiter w;
    struct bd_opts p1 = prio(1), p9 = prio(9);

    waiter_init(&w);
    rig_start(&r, "policy = immediate\nmax_items = 2\n"
              "priority_aging_ms = 100\n");
    /* A call in flight holds the key's one slot while items queue. */
    admit(&r, &w, 1, "k", "first", NULL);
    pass(&r);
    ck_assert_uint_eq(ncalls, 1);
    admit(&r, &w, 2, "k", "low0", NULL);
    fake_now += 10 * MS;
    admit(&r, &w, 3, "k", "low1", &p1);
    fake_now += 60 * MS;
    for (int i = 0; i < 4; i++)
        admit(&r, &w, 10 + (uint64_t)i, "k", "high", &p9);
    fake_now += 35 * MS; /* low0 waited 105 ms: aged; low1 95 ms: not */
    answer(&r, 0, BATCHD_RESULT_OK);
    pass(&r);
    ck_assert_uint_eq(ncalls, 2);
    ck_assert_str_eq(call_payloads(1), "low0 high");
    fake_now += 10 * MS; /* now low1 has aged too */
    answer(&r, 1, BATCHD_RESULT_OK);
    pass(&r);
    ck_assert_uint_eq(ncalls, 3);
    /* low1 waited 105 ms: top priority, before the highs (45 ms). */
    ck_assert_str_eq(call_payloads(2), "low1 high");
    answer(&r, 2, BATCHD_RESULT_OK);
    pass(&r);
    ck_assert_str_eq(call_payloads(3), "high high");
    answer(&r, 3, BATCHD_RESULT_OK);
    ck_assert_uint_eq(w.n, 7);
    rig_stop(&r);
}
END_TEST

START_TEST(test_no_aging_starves_the_low_lane)
{
    struct rig r;
    struct fake_waiter w;
    struct bd_opts p9 = prio(9);

    waiter_init(&w);
    rig_start(&r, "policy = immediate\nmax_items = 1\n"
              "priority_aging_ms = 0\n");
    admit(&r, &w, 1, "k", "first", NULL);
    pass(&r);
    admit(&r, &w, 2, "k", "low", NULL);
    for (size_t i = 0; i < 5; i++) {
        admit(&r, &w, 10 + i, "k", "high", &p9);
        fake_now += 1000 * MS;
        answer(&r, i, BATCHD_RESULT_OK);
        pass(&r);
        ck_assert_str_eq(call_payloads(i + 1), "high");
    }
    answer(&r, 5, BATCHD_RESULT_OK);
    pass(&r);
    ck_assert_str_eq(call_payloads(6), "low");
    answer(&r, 6, BATCHD_RESULT_OK);
    rig_stop(&r);
}
END_TEST

START_TEST(test_cancel_inside_lanes_keeps_their_order)
{
    struct rig r;
    struct fake_waiter a, b;
    struct bd_opts p3 = prio(3), p7 = prio(7);

    waiter_init(&a);
    waiter_init(&b);
    rig_start(&r, DELAYED "max_items = 10\npriority_aging_ms = 0\n");
    admit(&r, &b, 1, "k", "b0", NULL);
    admit(&r, &a, 1, "k", "a7", &p7);  /* the tail of lane 7 leaves */
    admit(&r, &b, 2, "k", "b3", &p3);
    admit(&r, &a, 2, "k", "a3", &p3);  /* the tail of lane 3 leaves */
    admit(&r, &b, 3, "k", "b7", &p7);
    a.w.gone = 1;
    bd_batch_cancel_waiter(&r.core, &a.w);
    ck_assert_uint_eq(only_key(&r)->lanes->n[7], 1);
    ck_assert_uint_eq(only_key(&r)->lanes->n[3], 1);
    /* New items must land after what is left of their lanes. */
    admit(&r, &b, 4, "k", "c3", &p3);
    admit(&r, &b, 5, "k", "c7", &p7);
    fake_now += 10 * MS;
    pass(&r);
    ck_assert_str_eq(call_payloads(0), "b7 c7 b3 c3 b0");
    answer(&r, 0, BATCHD_RESULT_OK);
    ck_assert_uint_eq(a.n, 0);
    ck_assert_uint_eq(b.n, 5);
    rig_stop(&r);
}
END_TEST

START_TEST(test_retried_items_lead_the_lanes)
{
    struct rig r;
    struct fake_waiter w;
    struct bd_opts p9 = prio(9);

    waiter_init(&w);
    rig_start(&r, "policy = immediate\nmax_items = 10\nretry_base_ms = 10\n"
              "retry_cap_ms = 10\npriority_aging_ms = 0\n");
    admit(&r, &w, 1, "k", "old", NULL);
    pass(&r);
    answer(&r, 0, BATCHD_RESULT_RETRY);
    admit(&r, &w, 2, "k", "high", &p9);  /* queued while "old" waits */
    pass(&r);
    ck_assert_uint_eq(ncalls, 2);          /* "high" went at once */
    admit(&r, &w, 3, "k", "high2", &p9);
    fake_now += 10 * MS;
    answer(&r, 1, BATCHD_RESULT_OK);
    pass(&r);
    ck_assert_str_eq(call_payloads(2), "old high2");
    answer(&r, 2, BATCHD_RESULT_OK);
    ck_assert_uint_eq(w.n, 3);
    rig_stop(&r);
}
END_TEST

/* ---- coalescing ---------------------------------------------------------------- */

static struct bd_opts dedup(const char *id)
{
    struct bd_opts o = {.dedup_id = id, .dedup_len = strlen(id)};

    return o;
}

START_TEST(test_same_dedup_id_shares_one_slot)
{
    struct rig r;
    struct fake_waiter a, b, c;
    struct bd_opts x = dedup("user42"), y = dedup("user7");

    waiter_init(&a);
    waiter_init(&b);
    waiter_init(&c);
    rig_start(&r, DELAYED "max_items = 10\n");
    admit(&r, &a, 1, "k", "first", &x);
    admit(&r, &b, 5, "k", "second", &x);  /* payload unused: first wins */
    admit(&r, &c, 9, "k", "other", &y);
    admit(&r, &c, 10, "k", "third", &x);
    ck_assert_uint_eq(r.core.nqueued, 2);
    ck_assert_uint_eq(only_key(&r)->coalesced, 2);
    ck_assert_uint_eq(r.core.ctr.coalesced, 2);
    fake_now += 10 * MS;
    pass(&r);
    ck_assert_uint_eq(ncalls, 1);
    ck_assert_str_eq(call_payloads(0), "first other");
    answer(&r, 0, BATCHD_RESULT_OK);
    ck_assert_uint_eq(a.n, 1);
    ck_assert_uint_eq(b.n, 1);
    ck_assert_uint_eq(c.n, 2);
    ck_assert_str_eq(reply_to(&a, 1)->body, "first");
    ck_assert_str_eq(reply_to(&b, 5)->body, "first");
    ck_assert_str_eq(reply_to(&c, 10)->body, "first");
    ck_assert_str_eq(reply_to(&c, 9)->body, "other");
    ck_assert_uint_eq(a.w.refs, 1);
    ck_assert_uint_eq(c.w.refs, 1);
    rig_stop(&r);
}
END_TEST

START_TEST(test_send_and_load_deliver_once)
{
    struct rig r;
    struct fake_waiter l;
    struct bd_opts x = dedup("x");

    waiter_init(&l);
    rig_start(&r, DELAYED "max_items = 10\n");
    admit(&r, NULL, 1, "k", "sent", &x);
    admit(&r, &l, 2, "k", "loaded", &x);
    /* The LOAD's client leaves: the SEND still holds the item. */
    l.w.gone = 1;
    bd_batch_cancel_waiter(&r.core, &l.w);
    ck_assert_uint_eq(r.core.nqueued, 1);
    ck_assert_uint_eq(l.w.refs, 1);
    fake_now += 10 * MS;
    pass(&r);
    ck_assert_uint_eq(ncalls, 1);
    ck_assert_uint_eq(calls[0]->pub.nitems, 1);
    answer(&r, 0, BATCHD_RESULT_OK);
    ck_assert_uint_eq(l.n, 0);
    rig_stop(&r);
}
END_TEST

START_TEST(test_send_then_load_the_load_gets_the_result)
{
    struct rig r;
    struct fake_waiter l;
    struct bd_opts x = dedup("x");

    waiter_init(&l);
    rig_start(&r, DELAYED "max_items = 10\n");
    admit(&r, NULL, 1, "k", "sent", &x);
    admit(&r, &l, 2, "k", "loaded", &x);
    fake_now += 10 * MS;
    pass(&r);
    ck_assert_uint_eq(calls[0]->pub.nitems, 1);
    answer(&r, 0, BATCHD_RESULT_OK);
    ck_assert_uint_eq(l.n, 1);
    ck_assert_int_eq(l.got[0].status, BATCHD_OK);
    ck_assert_str_eq(l.got[0].body, "sent");
    rig_stop(&r);
}
END_TEST

START_TEST(test_waiters_leave_one_by_one)
{
    struct rig r;
    struct fake_waiter a, b;
    struct bd_opts x = dedup("x");

    waiter_init(&a);
    waiter_init(&b);
    rig_start(&r, DELAYED "max_items = 10\n");
    admit(&r, &a, 1, "k", "p", &x);
    admit(&r, &b, 2, "k", "p", &x);
    a.w.gone = 1;
    bd_batch_cancel_waiter(&r.core, &a.w);
    ck_assert_uint_eq(r.core.nqueued, 1);   /* b still waits */
    ck_assert_uint_eq(r.core.ctr.cancelled, 1);
    b.w.gone = 1;
    bd_batch_cancel_waiter(&r.core, &b.w);
    ck_assert_uint_eq(r.core.nqueued, 0);   /* nobody left: cancelled */
    ck_assert_uint_eq(r.core.ctr.cancelled, 2);
    fake_now += 10 * MS;
    pass(&r);
    ck_assert_uint_eq(ncalls, 0);
    ck_assert_uint_eq(a.w.refs + b.w.refs, 2);
    rig_stop(&r);
}
END_TEST

START_TEST(test_each_waiter_has_its_own_deadline)
{
    struct rig r;
    struct fake_waiter a, b;
    struct bd_opts x = dedup("x"), xd = dedup("x");

    xd.has_deadline = 1;
    xd.deadline_ms = 5;
    waiter_init(&a);
    waiter_init(&b);
    rig_start(&r, "policy = size\nmax_items = 2\n");
    admit(&r, &a, 1, "k", "p", &xd);
    admit(&r, &b, 2, "k", "p", &x);        /* no deadline: the item keeps none */
    pass(&r);
    fake_now += 6 * MS;
    pass(&r);
    ck_assert_uint_eq(a.n, 1);
    ck_assert_int_eq(a.got[0].status, BATCHD_DEADLINE_EXCEEDED);
    ck_assert_uint_eq(b.n, 0);
    ck_assert_uint_eq(r.core.nqueued, 1);
    admit(&r, &b, 3, "k", "q", NULL);
    pass(&r);
    ck_assert_uint_eq(ncalls, 1);
    answer(&r, 0, BATCHD_RESULT_OK);
    ck_assert_int_eq(reply_to(&b, 2)->status, BATCHD_OK);
    ck_assert_uint_eq(a.n, 1);
    rig_stop(&r);
}
END_TEST

START_TEST(test_join_counts_no_bound)
{
    struct rig r;
    struct fake_waiter w;
    struct bd_opts x = dedup("x"), y = dedup("y");

    waiter_init(&w);
    rig_start(&r, "policy = size\nmax_items = 10\nkey_max_items = 1\n");
    ck_assert_int_eq(admit(&r, &w, 1, "k", "p", &x), BATCHD_OK);
    ck_assert_int_eq(admit(&r, &w, 2, "k", "p", &x), BATCHD_OK);
    ck_assert_int_eq(admit(&r, &w, 3, "k", "p", &x), BATCHD_OK);
    ck_assert_int_eq(admit(&r, &w, 4, "k", "p", &y), BATCHD_OVERLOADED);
    ck_assert_uint_eq(r.core.nqueued, 1);
    pass(&r);
    ck_assert_uint_eq(ncalls, 1);
    answer(&r, 0, BATCHD_RESULT_OK);
    ck_assert_uint_eq(w.n, 3); /* the refusal is the request layer's reply */
    rig_stop(&r);
}
END_TEST

static void inflight_case(const char *opt, size_t want_calls)
{
    struct rig r;
    struct fake_waiter a, b;
    struct bd_opts x = dedup("x");
    char conf[256];

    waiter_init(&a);
    waiter_init(&b);
    snprintf(conf, sizeof(conf), "policy = immediate\nkey_concurrency = 2\n%s",
             opt);
    rig_start(&r, conf);
    admit(&r, &a, 1, "k", "p", &x);
    pass(&r);
    ck_assert_uint_eq(ncalls, 1);
    admit(&r, &b, 2, "k", "p", &x);        /* while the call runs */
    pass(&r);
    ck_assert_uint_eq(ncalls, want_calls);
    for (size_t i = 0; i < ncalls; i++)
        answer(&r, i, BATCHD_RESULT_OK);
    ck_assert_uint_eq(a.n, 1);
    ck_assert_uint_eq(b.n, 1);
    ck_assert_uint_eq(r.core.ctr.coalesced, want_calls == 1);
    rig_stop(&r);
}

START_TEST(test_in_flight_call_joined_only_with_coalesce_inflight)
{
    inflight_case("", 2);
    inflight_case("coalesce_inflight = on\n", 1);
}
END_TEST

START_TEST(test_coalesced_item_retried_answers_everyone_once)
{
    struct rig r;
    struct fake_waiter a, b;
    struct bd_opts x = dedup("x");

    waiter_init(&a);
    waiter_init(&b);
    rig_start(&r, "policy = size\nmax_items = 1\nretry_base_ms = 10\n"
              "retry_cap_ms = 10\n");
    admit(&r, &a, 1, "k", "p", &x);
    admit(&r, &b, 2, "k", "p", &x);
    pass(&r);
    answer(&r, 0, BATCHD_RESULT_RETRY);
    ck_assert_uint_eq(a.n + b.n, 0);
    fake_now += 10 * MS;
    pass(&r);
    ck_assert_uint_eq(ncalls, 2);
    answer(&r, 1, BATCHD_RESULT_OK);
    ck_assert_uint_eq(a.n, 1);
    ck_assert_uint_eq(b.n, 1);
    rig_stop(&r);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("core");
    TCase *tc = tcase_create("core");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, test_size_policy_waits_for_a_full_batch);
    tcase_add_test(tc, test_duration_policy_leaves_after_the_delay);
    tcase_add_test(tc, test_max_items_splits_batches);
    tcase_add_test(tc, test_expired_item_never_reaches_the_sink);
    tcase_add_test(tc, test_tight_deadline_makes_the_batch_leave_early);
    tcase_add_test(tc, test_retry_waits_its_backoff_then_succeeds);
    tcase_add_test(tc, test_retries_exhausted);
    tcase_add_test(tc, test_gone_waiter_cancels_its_queued_loads_only);
    tcase_add_test(tc, test_bounds_refuse_at_key_max_items);
    tcase_add_test(tc, test_highest_lanes_first_fifo_within);
    tcase_add_test(tc, test_aged_item_counts_as_top_priority);
    tcase_add_test(tc, test_no_aging_starves_the_low_lane);
    tcase_add_test(tc, test_cancel_inside_lanes_keeps_their_order);
    tcase_add_test(tc, test_retried_items_lead_the_lanes);
    tcase_add_test(tc, test_same_dedup_id_shares_one_slot);
    tcase_add_test(tc, test_send_and_load_deliver_once);
    tcase_add_test(tc, test_send_then_load_the_load_gets_the_result);
    tcase_add_test(tc, test_waiters_leave_one_by_one);
    tcase_add_test(tc, test_each_waiter_has_its_own_deadline);
    tcase_add_test(tc, test_join_counts_no_bound);
    tcase_add_test(tc, test_in_flight_call_joined_only_with_coalesce_inflight);
    tcase_add_test(tc, test_coalesced_item_retried_answers_everyone_once);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
