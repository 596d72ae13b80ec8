/*
 * durable.c - durable SEND routes: admission, held ACCEPTEDs, group
 * commit, final states, recovery and dead letters (see durable.h).
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "alloc.h"
#include "batch.h"
#include "core.h"
#include "durable.h"
#include "log.h"
#include "msg.h"
#include "waiter.h"

/* An ACCEPTED held until the records of its pass are synced. */
struct held_ack {
    struct bd_waiter *w;      /* holds a reference */
    uint64_t req_id;          /* the client's id */
    uint8_t type;             /* SEND or SEND_MANY */
};

struct bd_durable {
    struct bd_spool *sp;      /* owned */
    struct held_ack *acks;    /* owned: ACCEPTEDs waiting for the commit;
                               * bounded by the queue bounds (each is a
                               * queued item) */
    size_t nacks, cacks;
    struct event *window_ev;  /* spool_sync_window_us timer, NULL when 0 */
    int window_armed;         /* window_ev is pending */
};

/* ---- the commit ------------------------------------------------------------ */

/* Answer every held ACCEPTED: ACCEPTED after a good commit, OVERLOADED
 * naming the spool after a failed one (the item may still be delivered:
 * it is queued). */
static void answer_acks(struct bd_core *core, int ok)
{
    struct bd_durable *d = core->durable;
    static const char why[] = "spool: write or fdatasync failed; not durable";

    for (size_t i = 0; i < d->nacks; i++) {
        struct held_ack *h = &d->acks[i];
        int st = ok ? BATCHD_ACCEPTED : BATCHD_OVERLOADED;

        core->ctr.status[st]++;
        bd_waiter_deliver(h->w, h->type, h->req_id, st, ok ? NULL : why,
                          ok ? 0 : sizeof(why) - 1, !ok);
        bd_waiter_release(h->w);
    }
    d->nacks = 0;
}

static void commit(struct bd_core *core)
{
    struct bd_durable *d = core->durable;

    answer_acks(core, bd_spool_commit(d->sp) == 0);
}

static void window_cb(evutil_socket_t fd, short what, void *arg)
{
    struct bd_core *core = arg;

    (void)fd;
    (void)what;
    bd_core_tick(core);
    core->durable->window_armed = 0;
    commit(core);
    bd_core_want_flush(core); /* write the replies */
}

/* Something was appended: make sure a commit comes. */
static void want_commit(struct bd_core *core)
{
    struct bd_durable *d = core->durable;

    if (d->window_ev == NULL) {
        bd_core_want_flush(core);
        return;
    }
    if (!d->window_armed) {
        uint32_t us = core->cfg->spool_sync_window_us;
        struct timeval tv = {us / 1000000, us % 1000000};

        if (evtimer_add(d->window_ev, &tv) == 0)
            d->window_armed = 1;
        else
            bd_core_want_flush(core); /* no timer: commit at pass end */
    }
}

void bd_durable_end_pass(struct bd_core *core)
{
    struct bd_durable *d = core->durable;

    if (d != NULL && (d->window_ev == NULL || !d->window_armed))
        commit(core);
}

/* ---- admission and final states ---------------------------------------------- */

static int hold_ack(struct bd_durable *d, struct bd_waiter *w, uint64_t req_id,
                    int type)
{
    if (d->nacks == d->cacks) {
        size_t nc = d->cacks ? d->cacks * 2 : 256;
        struct held_ack *p = bd_realloc(d->acks, nc * sizeof(*p));

        if (p == NULL)
            return -1;
        d->acks = p;
        d->cacks = nc;
    }
    bd_waiter_hold(w);
    d->acks[d->nacks++] = (struct held_ack){w, req_id, (uint8_t)type};
    return 0;
}

int bd_durable_admit(struct bd_core *core, struct bd_key *k, struct bd_item *it,
                     struct bd_admit *a)
{
    struct bd_durable *d = core->durable;
    int rc;

    a->deferred = 0;
    if (d == NULL)
        return 1; /* unit tests without a spool */
    rc = bd_spool_append(d->sp, it->spool_id, k->name, k->len, it->data,
                         it->len, &it->seg, &it->spool_id);
    if (rc == BD_SPOOL_OK && a->ack != NULL &&
        hold_ack(d, a->ack, it->req_id, it->reply_type) != 0) {
        /* Cannot hold the answer: the record stays, and is marked final
         * at once (the item is refused and freed by the caller). */
        bd_spool_done(d->sp, it->seg, it->spool_id);
        it->seg = NULL;
        rc = BD_SPOOL_NOSPACE;
        snprintf(a->msg, sizeof(a->msg), "spool: out of memory");
    } else if (rc != BD_SPOOL_OK) {
        snprintf(a->msg, sizeof(a->msg), rc == BD_SPOOL_FULL ?
                 "spool full: spool_max_bytes=%llu" : rc == BD_SPOOL_TOO_LARGE ?
                 "spool: record too large (%llu)" :
                 "spool: no disk space for a new segment (%llu bytes)",
                 (unsigned long long)(rc == BD_SPOOL_FULL ? core->cfg->spool_max_bytes :
                                      core->cfg->spool_segment_bytes));
    }
    if (rc != BD_SPOOL_OK) {
        it->seg = NULL;
        a->status = rc == BD_SPOOL_TOO_LARGE ? BATCHD_BAD_REQUEST :
                    BATCHD_OVERLOADED;
        a->reason = BD_REJECT_SPOOL;
        return 0;
    }
    a->deferred = a->ack != NULL;
    want_commit(core);
    return 1;
}

void bd_durable_final(struct bd_core *core, const char *key,
                      const struct bd_item *it, int status, const void *body,
                      size_t len)
{
    struct bd_durable *d = core->durable;

    /* Not final for a durable item: the next start delivers it. */
    if (d == NULL || status == BATCHD_SHUTTING_DOWN)
        return;
    if (status != BATCHD_OK) {
        struct bd_rec r = {
            .type = BD_REC_DEAD, .id = it->spool_id, .key = key,
            .key_len = strlen(key), .payload = it->data, .len = it->len,
            .attempts = it->attempt, .time_s = (uint64_t)time(NULL),
            .err = body, .err_len = body ? (len > 1024 ? 1024 : len) : 0,
        };

        bd_spool_dead(d->sp, &r);
    }
    bd_spool_done(d->sp, it->seg, it->spool_id);
    want_commit(core);
}

/* ---- start and stop ------------------------------------------------------------ */

static int any_durable(const struct bd_config *cfg)
{
    for (size_t i = 0; i < cfg->nroutes; i++)
        if (cfg->routes[i].durable)
            return 1;
    return 0;
}

/* Recovery's callback: queue one unfinished item again. */
static void restore_one(const struct bd_rec *r, void *arg)
{
    struct bd_core *core = arg;
    struct bd_admit a = {0};

    if (bd_batch_restore(core, r->key, r->key_len, r->payload, r->len, r->id,
                         &a) != 0)
        bd_log_error("spool: item %llu (key %.*s) not queued again: %s",
                     (unsigned long long)r->id, (int)(r->key_len > 64 ? 64 : r->key_len),
                     r->key, a.msg);
}

int bd_durable_start(struct bd_core *core, char *err, size_t errlen)
{
    const struct bd_config *cfg = core->cfg;
    struct bd_durable *d;

    if (!any_durable(cfg))
        return 0;
    if (cfg->spool_dir == NULL) {
        snprintf(err, errlen, "a route is durable but [daemon] spool_dir "
                 "is not set");
        return -1;
    }
    d = bd_calloc(1, sizeof(*d));
    if (d == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    d->sp = bd_spool_open(cfg->spool_dir, cfg->spool_segment_bytes,
                          cfg->spool_max_bytes, err, errlen);
    if (d->sp == NULL) {
        bd_free(d);
        return -1;
    }
    if (cfg->spool_sync_window_us > 0 &&
        (d->window_ev = evtimer_new(core->base, window_cb, core)) == NULL) {
        snprintf(err, errlen, "libevent: no timer for spool_sync_window_us");
        bd_spool_close(d->sp);
        bd_free(d);
        return -1;
    }
    core->durable = d;
    if (bd_spool_recover(d->sp, restore_one, core, err, errlen) != 0)
        return -1;
    /* The items are on disk again in new segments before the old ones
     * go: a crash in between recovers them twice, and ids dedupe. */
    if (bd_spool_commit(d->sp) != 0) {
        snprintf(err, errlen, "spool %s: cannot write the recovered items",
                 cfg->spool_dir);
        return -1;
    }
    bd_spool_recover_finish(d->sp);
    return 0;
}

void bd_durable_stop(struct bd_core *core)
{
    struct bd_durable *d = core->durable;

    if (d == NULL)
        return;
    commit(core);
    if (d->window_ev != NULL)
        event_free(d->window_ev);
    bd_spool_close(d->sp);
    bd_free(d->acks);
    bd_free(d);
    core->durable = NULL;
}

const struct bd_spool_stats *bd_durable_stats(const struct bd_core *core,
                                              uint64_t *disk_bytes)
{
    if (core->durable == NULL)
        return NULL;
    *disk_bytes = core->durable->sp->disk_bytes;
    return &core->durable->sp->st;
}

/* ---- dead letters --------------------------------------------------------------- */

long bd_durable_dead_list(struct bd_core *core,
                          void (*fn)(const struct bd_rec *r, void *arg),
                          void *arg)
{
    if (core->durable == NULL)
        return -1;
    commit(core); /* letters still in memory too */
    return bd_spool_dead_read(core->durable->sp, fn, arg);
}

/* resend's callback: a fresh durable item (new spool id). */
static void resend_one(const struct bd_rec *r, void *arg)
{
    restore_one(&(struct bd_rec){.type = BD_REC_ITEM, .id = 0, .key = r->key,
                                 .key_len = r->key_len, .payload = r->payload,
                                 .len = r->len}, arg);
}

long bd_durable_dead_resend(struct bd_core *core)
{
    long n;

    if (core->durable == NULL)
        return -1;
    commit(core);
    n = bd_spool_dead_read(core->durable->sp, resend_one, core);
    /* The file goes only once the re-sent items are synced: a crash in
     * between sends them twice, never loses them. */
    if (bd_spool_commit(core->durable->sp) == 0 && n > 0)
        bd_spool_dead_clear(core->durable->sp);
    return n;
}
