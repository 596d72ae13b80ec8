/*
 * durable.c - durable SEND routes: admission, held ACCEPTEDs, group
 * commit, final states, recovery and dead letters (see durable.h).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

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
    struct held_ack *acks;    /* owned: ACCEPTEDs waiting for the next
                               * commit; bounded by the queue bounds (each
                               * is a queued item) */
    size_t nacks, cacks;
    struct held_ack *sacks;   /* owned: those of the commit syncing now */
    size_t nsacks, csacks;
    struct event *window_ev;  /* spool_sync_window_us timer, NULL when 0 */
    int window_armed;         /* window_ev is pending */
    /* The sync thread: one fdatasync round at a time, while the loop
     * reads and admits the next pass's requests. */
    pthread_t thread;
    int thread_ok;            /* thread was started */
    pthread_mutex_t mu;       /* guards job, done, result, stop */
    pthread_cond_t cv;        /* job or stop for the thread; done for a
                               * loop thread that waits (drain) */
    int job;                  /* a sync is asked for */
    int done;                 /* ... and has finished */
    int result;               /* its bd_spool_commit_sync result */
    int stop;                 /* the thread must leave */
    int efd;                  /* eventfd: the thread's "done" to the loop */
    struct event *done_ev;    /* reads efd */
    int syncing;              /* a commit is between _write and _finish */
};

static void *sync_main(void *arg)
{
    struct bd_durable *d = arg;
    uint64_t one = 1;

    pthread_mutex_lock(&d->mu);
    for (;;) {
        int rc;

        while (!d->job && !d->stop)
            pthread_cond_wait(&d->cv, &d->mu);
        if (!d->job)
            break;
        pthread_mutex_unlock(&d->mu);
        rc = bd_spool_commit_sync(d->sp);
        pthread_mutex_lock(&d->mu);
        d->job = 0;
        d->done = 1;
        d->result = rc;
        pthread_cond_broadcast(&d->cv);
        if (write(d->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
            bd_log_error("spool: eventfd write: %s", strerror(errno));
    }
    pthread_mutex_unlock(&d->mu);
    return NULL;
}

/* ---- the commit ------------------------------------------------------------ */

/* Answer n held ACCEPTEDs: ACCEPTED after a good commit, OVERLOADED
 * naming the spool after a failed one (the item may still be
 * delivered: it is queued). */
static void answer(struct bd_core *core, struct held_ack *acks, size_t n, int ok)
{
    static const char why[] = "spool: write or fdatasync failed; not durable";

    for (size_t i = 0; i < n; i++) {
        struct held_ack *h = &acks[i];
        int st = ok ? BATCHD_ACCEPTED : BATCHD_OVERLOADED;

        core->ctr.status[st]++;
        bd_waiter_deliver(h->w, h->type, h->req_id, st, ok ? NULL : why,
                          ok ? 0 : sizeof(why) - 1, !ok);
        bd_waiter_release(h->w);
    }
}

/* The held ACCEPTEDs go with the commit that starts now. */
static void swap_acks(struct bd_durable *d)
{
    struct held_ack *a = d->sacks;
    size_t c = d->csacks;

    d->sacks = d->acks;
    d->csacks = d->cacks;
    d->nsacks = d->nacks;
    d->acks = a;
    d->cacks = c;
    d->nacks = 0;
}

static void commit_start(struct bd_core *core);

/* A sync finished (rc its result): finish the commit, answer. */
static void sync_finished(struct bd_core *core, int rc)
{
    struct bd_durable *d = core->durable;

    bd_spool_commit_finish(d->sp, rc);
    d->syncing = 0;
    answer(core, d->sacks, d->nsacks, rc == 0);
    d->nsacks = 0;
    bd_core_want_flush(core); /* write the replies */
    /* What came in during the sync goes now (its window, if any, has
     * been running meanwhile or its timer will start it). */
    if (d->sp->dirty && !d->window_armed)
        commit_start(core);
}

/* Start a commit of everything pending, unless one is syncing (then it
 * starts when that one is done). */
static void commit_start(struct bd_core *core)
{
    struct bd_durable *d = core->durable;
    int rc;

    if (d->syncing)
        return;
    swap_acks(d);
    rc = bd_spool_commit_write(d->sp);
    if (rc > 0 && !d->thread_ok) {
        /* No thread (start-up): sync here. */
        rc = bd_spool_commit_sync(d->sp);
        bd_spool_commit_finish(d->sp, rc);
        rc = rc == 0 ? 0 : -1;
    }
    if (rc <= 0) {
        answer(core, d->sacks, d->nsacks, rc == 0);
        d->nsacks = 0;
        return;
    }
    d->syncing = 1;
    pthread_mutex_lock(&d->mu);
    d->job = 1;
    d->done = 0;
    pthread_cond_signal(&d->cv);
    pthread_mutex_unlock(&d->mu);
}

static void done_cb(evutil_socket_t fd, short what, void *arg)
{
    struct bd_core *core = arg;
    struct bd_durable *d = core->durable;
    uint64_t v;
    int done, rc;

    (void)what;
    if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
        bd_log_error("spool: eventfd read: %s", strerror(errno));
    bd_core_tick(core);
    pthread_mutex_lock(&d->mu);
    done = d->done;
    rc = d->result;
    d->done = 0;
    pthread_mutex_unlock(&d->mu);
    if (done && d->syncing)
        sync_finished(core, rc);
}

/* Wait for the sync in progress, if any, and finish it (loop thread:
 * exit, and commands that need everything on disk). */
static void drain(struct bd_core *core)
{
    struct bd_durable *d = core->durable;
    int rc;

    if (!d->syncing)
        return;
    pthread_mutex_lock(&d->mu);
    while (!d->done)
        pthread_cond_wait(&d->cv, &d->mu);
    d->done = 0;
    rc = d->result;
    pthread_mutex_unlock(&d->mu);
    sync_finished(core, rc);
}

/* Everything pending on disk now, and answered (blocking). */
static void commit(struct bd_core *core)
{
    drain(core);
    commit_start(core);
    drain(core);
}

static void window_cb(evutil_socket_t fd, short what, void *arg)
{
    struct bd_core *core = arg;

    (void)fd;
    (void)what;
    bd_core_tick(core);
    core->durable->window_armed = 0;
    commit_start(core);
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
        commit_start(core);
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

/* Queue one item again; one that cannot be (its route is gone, no
 * memory, no spool space) becomes a dead letter rather than a record
 * every start trips over. */
static void restore(struct bd_core *core, const struct bd_rec *r,
                    struct bd_spool_seg *seg)
{
    struct bd_admit a = {0};
    struct bd_rec dead;

    if (bd_batch_restore(core, r->key, r->key_len, r->payload, r->len, r->id,
                         seg, &a) == 0)
        return;
    bd_log_error("spool: item %llu (key %.*s) not queued again: %s; "
                 "dead-lettered", (unsigned long long)r->id,
                 (int)(r->key_len > 64 ? 64 : r->key_len), r->key, a.msg);
    dead = *r;
    dead.type = BD_REC_DEAD;
    dead.time_s = (uint64_t)time(NULL);
    dead.err = a.msg;
    dead.err_len = strlen(a.msg);
    bd_spool_dead(core->durable->sp, &dead);
    if (seg != NULL)
        bd_spool_done(core->durable->sp, seg, r->id);
}

/* Recovery's callback. */
static void restore_one(const struct bd_rec *r, struct bd_spool_seg *seg,
                        void *arg)
{
    restore(arg, r, seg);
}

/* The sync thread and its wakeup; 0 or -1 (err set). */
static int start_thread(struct bd_core *core, char *err, size_t errlen)
{
    struct bd_durable *d = core->durable;
    int rc;

    d->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (d->efd < 0) {
        snprintf(err, errlen, "spool: eventfd: %s", strerror(errno));
        return -1;
    }
    d->done_ev = event_new(core->base, d->efd, EV_READ | EV_PERSIST, done_cb,
                           core);
    if (d->done_ev == NULL || event_add(d->done_ev, NULL) != 0) {
        snprintf(err, errlen, "libevent: cannot watch the spool's eventfd");
        return -1;
    }
    rc = pthread_create(&d->thread, NULL, sync_main, d);
    if (rc != 0) {
        snprintf(err, errlen, "spool: pthread_create: %s", strerror(rc));
        return -1;
    }
    d->thread_ok = 1;
    return 0;
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
    /* From here bd_durable_stop undoes whatever was set up. */
    d->efd = -1;
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->cv, NULL);
    core->durable = d;
    d->sp = bd_spool_open(cfg->spool_dir, cfg->spool_segment_bytes,
                          cfg->spool_max_bytes, err, errlen);
    if (d->sp == NULL)
        return -1;
    if (cfg->spool_sync_window_us > 0 &&
        (d->window_ev = evtimer_new(core->base, window_cb, core)) == NULL) {
        snprintf(err, errlen, "libevent: no timer for spool_sync_window_us");
        return -1;
    }
    if (bd_spool_recover(d->sp, restore_one, core, err, errlen) != 0)
        return -1;
    /* The records of damaged files are on disk again before those files
     * are moved aside. When that fails (a full disk) the start goes on:
     * the items are queued, and the damaged files stay for the next try. */
    if (bd_spool_commit(d->sp) == 0) {
        bd_spool_recover_finish(d->sp, 1);
    } else {
        bd_log_error("spool %s: cannot write the records of damaged "
                     "segments again; they stay in place", cfg->spool_dir);
        bd_spool_recover_finish(d->sp, 0);
    }
    return start_thread(core, err, errlen);
}

void bd_durable_stop(struct bd_core *core)
{
    struct bd_durable *d = core->durable;

    if (d == NULL)
        return;
    if (d->sp != NULL)
        commit(core);
    if (d->thread_ok) {
        pthread_mutex_lock(&d->mu);
        d->stop = 1;
        pthread_cond_signal(&d->cv);
        pthread_mutex_unlock(&d->mu);
        pthread_join(d->thread, NULL);
    }
    if (d->done_ev != NULL)
        event_free(d->done_ev);
    if (d->efd >= 0)
        close(d->efd);
    if (d->window_ev != NULL)
        event_free(d->window_ev);
    pthread_mutex_destroy(&d->mu);
    pthread_cond_destroy(&d->cv);
    bd_spool_close(d->sp);
    bd_free(d->acks);
    bd_free(d->sacks);
    bd_free(d);
    core->durable = NULL;
}

void bd_durable_commit_now(struct bd_core *core)
{
    if (core->durable != NULL)
        commit(core);
}

int bd_durable_busy(const struct bd_core *core)
{
    const struct bd_durable *d = core->durable;

    return d != NULL && (d->syncing || d->nacks > 0 || d->sp->dirty);
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
    restore(arg, &(struct bd_rec){.type = BD_REC_ITEM, .id = 0, .key = r->key,
                                  .key_len = r->key_len, .payload = r->payload,
                                  .len = r->len}, NULL);
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
