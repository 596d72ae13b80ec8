/*
 * runner.c - the sink runner child (`batchd --sink-runner FD PATH NAME`)
 * and the wire it shares with the daemon's proxy (see runner.h and
 * isolate.h).
 *
 * The runner is started by isolate.c with its end of a socketpair on
 * BD_RUNNER_FD. It reads INIT, loads the plugin with the daemon's own
 * checks (bd_sink_open), calls init, answers, then runs one batch at a
 * time: process() on this thread (a NONBLOCKING plugin may complete from
 * its own thread; the runner waits for that), the answer goes back as
 * one RESULT. EOF from the daemon means stop: the plugin's shutdown runs
 * and the runner exits 0. It dies with the daemon (PR_SET_PDEATHSIG),
 * and ignores SIGINT/SIGTERM/SIGHUP, which are the daemon's to act on:
 * the daemon drains it through the socket when it stops.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "enc.h"
#include "frame.h"
#include "isolate.h"
#include "log.h"
#include "runner.h"
#include "sink.h"

#define READ_CHUNK (1u << 20)  /* grow the input buffer by what arrives */

static uint64_t mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- I/O ---------------------------------------------------------------- */

void bd_runner_io_init(struct bd_runner_io *io, int fd, int wakefd)
{
    memset(io, 0, sizeof(*io));
    io->fd = fd;
    io->wakefd = wakefd;
    bd_buf_init(&io->in);
    bd_buf_init(&io->out);
}

void bd_runner_io_destroy(struct bd_runner_io *io)
{
    bd_buf_destroy(&io->in);
    bd_buf_destroy(&io->out);
}

void bd_runner_io_reset(struct bd_runner_io *io, int fd)
{
    io->fd = fd;
    io->deadline_ns = 0;
    io->frame_len = 0;
    bd_buf_consume(&io->in, io->in.len);
    bd_buf_consume(&io->out, io->out.len);
    bd_buf_shrink(&io->in, 64 * 1024);
    bd_buf_shrink(&io->out, 64 * 1024);
}

/* Wait for ev on io->fd. 0 ready, -1 deadline (why), -2 woken. */
static int io_wait(struct bd_runner_io *io, short ev, const char **why)
{
    struct pollfd pf[2];
    int n = 1, tmo = -1, rc;

    if (io->wakefd < 0 && io->deadline_ns == 0)
        return 0; /* a blocking fd: just do the call */
    pf[0].fd = io->fd;
    pf[0].events = ev;
    if (io->wakefd >= 0) {
        pf[1].fd = io->wakefd;
        pf[1].events = POLLIN;
        n = 2;
    }
    for (;;) {
        if (io->deadline_ns != 0) {
            uint64_t now = mono_ns();

            if (now >= io->deadline_ns) {
                *why = "timed out";
                return -1;
            }
            tmo = (int)((io->deadline_ns - now + 999999) / 1000000);
        }
        rc = poll(pf, (nfds_t)n, tmo);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc < 0) {
            *why = strerror(errno);
            return -1;
        }
        if (n == 2 && (pf[1].revents & POLLIN))
            return -2;
        if (rc > 0)
            return 0;
    }
}

int bd_runner_io_flush(struct bd_runner_io *io, const char **why)
{
    while (io->out.len > 0) {
        ssize_t n = send(io->fd, bd_buf_head(&io->out), io->out.len,
                         MSG_NOSIGNAL);
        int rc;

        if (n > 0) {
            bd_buf_consume(&io->out, (size_t)n);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno != EAGAIN) {
            *why = strerror(errno);
            return -1;
        }
        rc = io_wait(io, POLLOUT, why);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int bd_runner_io_recv(struct bd_runner_io *io, const uint8_t **body,
                      size_t *len, const char **why)
{
    if (io->frame_len > 0) {
        bd_buf_consume(&io->in, io->frame_len);
        io->frame_len = 0;
    }
    for (;;) {
        size_t blen = 0, want;
        int rc = bd_frame_peek(bd_buf_head(&io->in), io->in.len,
                               BD_RUNNER_MAX_FRAME, &blen);
        ssize_t n;

        if (rc == BD_FRAME_BAD_LENGTH) {
            *why = "frame length 0 or over the limit";
            return -1;
        }
        if (rc == BD_FRAME_OK && io->in.len >= BD_FRAME_HDR + blen) {
            if (bd_frame_check(bd_buf_head(&io->in) + BD_FRAME_HDR, blen,
                               why) != 0)
                return -1;
            *body = bd_buf_head(&io->in) + BD_FRAME_HDR;
            *len = blen;
            io->frame_len = BD_FRAME_HDR + blen;
            return 1;
        }
        /* Memory grows with the bytes that came, not with the length the
         * peer announced. */
        want = (rc == BD_FRAME_OK ? BD_FRAME_HDR + blen : BD_FRAME_HDR) -
               io->in.len;
        if (want > READ_CHUNK)
            want = READ_CHUNK;
        if (bd_buf_room(&io->in) < want &&
            bd_buf_reserve(&io->in, want) != 0) {
            *why = "out of memory";
            return -1;
        }
        rc = io_wait(io, POLLIN, why);
        if (rc != 0)
            return rc;
        n = read(io->fd, bd_buf_tail(&io->in), bd_buf_room(&io->in));
        if (n == 0) {
            if (io->in.len == 0)
                return 0;
            *why = "EOF inside a frame";
            return -1;
        }
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            *why = strerror(errno);
            return -1;
        }
        io->in.len += (size_t)n;
    }
}

/* ---- encoding and decoding -------------------------------------------- */

/* The runner's frames have their own ceiling on top of the encoder's. */
static int enc_end_bounded(struct bd_enc *e)
{
    if (e->rc == 0 && e->out->len - e->mark - BD_FRAME_HDR > BD_RUNNER_MAX_FRAME)
        e->rc = -1;
    return bd_enc_end(e);
}

int bd_runner_encode_init(struct bd_buf *out, const struct batchd_kv *kv,
                          size_t nkv, int log_level)
{
    struct bd_enc e;

    bd_enc_begin(&e, out);
    BD_ENC(&e, msgpack_pack_array(&e.pk, 2));
    BD_ENC(&e, msgpack_pack_map(&e.pk, nkv));
    for (size_t i = 0; i < nkv; i++) {
        bd_enc_str(&e, kv[i].key, strlen(kv[i].key));
        bd_enc_str(&e, kv[i].value, strlen(kv[i].value));
    }
    BD_ENC(&e, msgpack_pack_int(&e.pk, log_level));
    return enc_end_bounded(&e);
}

int bd_runner_encode_batch(struct bd_buf *out, uint64_t seq,
                           const struct batchd_batch *b, int64_t age_ms,
                           const struct batchd_host *host)
{
    const char *span = host->batch_span_id(b);
    struct bd_enc e;

    bd_enc_begin(&e, out);
    BD_ENC(&e, msgpack_pack_array(&e.pk, 4));
    BD_ENC(&e, msgpack_pack_uint64(&e.pk, seq));
    bd_enc_str(&e, b->key, b->key_len);
    BD_ENC(&e, msgpack_pack_array(&e.pk, b->nitems));
    for (size_t i = 0; i < b->nitems && e.rc == 0; i++) {
        const struct batchd_item *it = &b->items[i];
        int64_t dl = it->deadline_ms;

        if (dl >= 0)
            dl = dl > age_ms ? dl - age_ms : 0;
        const char *trace = host->item_trace(b, i);

        BD_ENC(&e, msgpack_pack_array(&e.pk, 5));
        BD_ENC(&e, msgpack_pack_uint64(&e.pk, it->id));
        BD_ENC(&e, msgpack_pack_uint32(&e.pk, it->attempt));
        BD_ENC(&e, msgpack_pack_int64(&e.pk, dl));
        bd_enc_bin(&e, it->len ? it->data : "", it->len);
        if (trace != NULL)
            bd_enc_str(&e, trace, strlen(trace));
        else
            BD_ENC(&e, msgpack_pack_nil(&e.pk));
    }
    bd_enc_str(&e, span, strlen(span));
    return enc_end_bounded(&e);
}

/* Runner side: the answer to INIT. */
static int encode_init_reply(struct bd_buf *out, int ok, const char *msg)
{
    struct bd_enc e;

    bd_enc_begin(&e, out);
    BD_ENC(&e, msgpack_pack_array(&e.pk, 2));
    BD_ENC(&e, ok ? msgpack_pack_true(&e.pk) : msgpack_pack_false(&e.pk));
    if (msg == NULL)
        BD_ENC(&e, msgpack_pack_nil(&e.pk));
    else
        bd_enc_str(&e, msg, strlen(msg));
    return enc_end_bounded(&e);
}

static int unpack(const uint8_t *body, size_t len, msgpack_zone *zone,
                  msgpack_object *obj)
{
    size_t off = 0;

    /* The body passed bd_frame_check, so declared sizes are honest. */
    if (msgpack_unpack((const char *)body, len, &off, zone, obj) !=
        MSGPACK_UNPACK_SUCCESS || off != len)
        return -1;
    return 0;
}

static int is_raw(const msgpack_object *o)
{
    return o->type == MSGPACK_OBJECT_STR || o->type == MSGPACK_OBJECT_BIN;
}

static const void *raw_ptr(const msgpack_object *o)
{
    return o->type == MSGPACK_OBJECT_STR ? (const void *)o->via.str.ptr :
                                           (const void *)o->via.bin.ptr;
}

static size_t raw_len(const msgpack_object *o)
{
    return o->type == MSGPACK_OBJECT_STR ? o->via.str.size : o->via.bin.size;
}

int bd_runner_decode_init_reply(const uint8_t *body, size_t len,
                                msgpack_zone *zone, int *ok, char *msg,
                                size_t msglen)
{
    msgpack_object o;
    const msgpack_object *a;

    msg[0] = '\0';
    if (unpack(body, len, zone, &o) != 0 || o.type != MSGPACK_OBJECT_ARRAY ||
        o.via.array.size != 2)
        return -1;
    a = o.via.array.ptr;
    if (a[0].type != MSGPACK_OBJECT_BOOLEAN ||
        (a[1].type != MSGPACK_OBJECT_NIL && a[1].type != MSGPACK_OBJECT_STR))
        return -1;
    *ok = a[0].via.boolean;
    if (a[1].type == MSGPACK_OBJECT_STR)
        snprintf(msg, msglen, "%.*s", (int)(a[1].via.str.size > 1000 ?
                                            1000 : a[1].via.str.size),
                 a[1].via.str.ptr);
    return 0;
}

static int result_bad(char *err, size_t errlen, const char *why)
{
    snprintf(err, errlen, "RESULT: %s", why);
    return -1;
}

int bd_runner_decode_result(const uint8_t *body, size_t len,
                            msgpack_zone *zone, struct bd_runner_result *r,
                            char *err, size_t errlen)
{
    msgpack_object o;
    const msgpack_object *a;

    memset(r, 0, sizeof(*r));
    if (unpack(body, len, zone, &o) != 0)
        return result_bad(err, errlen, "not one msgpack object");
    if (o.type != MSGPACK_OBJECT_ARRAY ||
        (o.via.array.size != 4 && o.via.array.size != 5))
        return result_bad(err, errlen, "must be an array of 4 or 5");
    a = o.via.array.ptr;
    if (o.via.array.size == 5) {
        if (a[4].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
            return result_bad(err, errlen, "retry_after_ms must be an integer");
        r->retry_after_ms = a[4].via.u64;
    }
    if (a[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return result_bad(err, errlen, "seq must be an integer");
    r->seq = a[0].via.u64;
    if (a[1].type == MSGPACK_OBJECT_POSITIVE_INTEGER && a[1].via.u64 <= INT32_MAX)
        r->rc = (int)a[1].via.u64;
    else if (a[1].type == MSGPACK_OBJECT_NEGATIVE_INTEGER &&
             a[1].via.i64 >= INT32_MIN)
        r->rc = (int)a[1].via.i64;
    else
        return result_bad(err, errlen, "rc must be a 32-bit integer");
    if (a[2].type == MSGPACK_OBJECT_STR) {
        r->error = a[2].via.str.ptr;
        r->error_len = a[2].via.str.size;
    } else if (a[2].type != MSGPACK_OBJECT_NIL) {
        return result_bad(err, errlen, "error must be str or nil");
    }
    if (a[3].type != MSGPACK_OBJECT_ARRAY)
        return result_bad(err, errlen, "results must be an array");
    r->items = a[3].via.array.ptr;
    r->nitems = a[3].via.array.size;
    for (size_t i = 0; i < r->nitems; i++) {
        const msgpack_object *it = &r->items[i];
        const msgpack_object *f = it->via.array.ptr;

        if (it->type != MSGPACK_OBJECT_ARRAY || it->via.array.size != 2 ||
            f[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
            f[0].via.u64 > BATCHD_RESULT_FAIL ||
            (f[1].type != MSGPACK_OBJECT_NIL && !is_raw(&f[1]))) {
            snprintf(err, errlen, "RESULT: item %zu must be [code 0..3, "
                     "bin or nil]", i);
            return -1;
        }
    }
    return 0;
}

void bd_runner_result_item(const struct bd_runner_result *r, size_t i,
                           int *code, const void **data, size_t *len)
{
    const msgpack_object *f = r->items[i].via.array.ptr;

    *code = (int)f[0].via.u64;
    *data = f[1].type == MSGPACK_OBJECT_NIL ? NULL : raw_ptr(&f[1]);
    *len = f[1].type == MSGPACK_OBJECT_NIL ? 0 : raw_len(&f[1]);
}

/* ---- the runner ---------------------------------------------------------- */

/* One item's answer, as the plugin gave it. */
/* One batch lent to the plugin; pub.host_priv points here. */
struct rbatch {
    struct batchd_batch pub;
    struct batchd_item *items;  /* payloads point into the frame body */
    struct bd_result *res;       /* one per item, as the daemon keeps them */
    char *error;              /* batch_error text, owned */
    char **traces;            /* per item: its traceparent or NULL, owned */
    char span[17];            /* the batch's span id, from the daemon */
    uint64_t retry_after_ms;  /* host->retry_after, 0 = none */
    int rc;                   /* from complete() */
    int done;                 /* complete() was called */
};

struct runner {
    const char *name;         /* [sink.NAME] */
    const char *path;         /* the plugin */
    struct batchd_host host;  /* lent to the plugin; host_priv = this */
    void *dl;                 /* dlopen handle */
    const struct batchd_sink *vt;
    void *state;              /* from vt->init */
    struct bd_runner_io io;   /* BD_RUNNER_FD, blocking */
    msgpack_zone zone;        /* decoded frames, cleared per message */
    struct batchd_kv *kv;     /* from INIT, owned */
    size_t nkv;
};

/* complete() may come from a plugin thread, before process() returned. */
static pthread_mutex_t done_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t done_cv = PTHREAD_COND_INITIALIZER;

static void rhost_log(const struct batchd_host *host, int level,
                      const char *fmt, ...)
{
    const struct runner *r = host->host_priv;
    char msg[768];
    va_list ap;

    if (!bd_log_enabled(level))
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    bd_log(level, "sink %s: %s", r->name, msg);
}

static int rhost_result(struct batchd_batch *pb, size_t i, int code,
                        const void *data, size_t len)
{
    struct rbatch *b = pb->host_priv;

    if (i >= pb->nitems)
        return -1;
    return bd_result_set(&b->res[i], code, data, len);
}

static void rhost_batch_error(struct batchd_batch *pb, const char *msg)
{
    struct rbatch *b = pb->host_priv;

    bd_error_set(&b->error, msg);
}

static const char *rhost_item_trace(const struct batchd_batch *pb, size_t i)
{
    const struct rbatch *b = pb->host_priv;

    return i < pb->nitems ? b->traces[i] : NULL;
}

static const char *rhost_batch_span_id(const struct batchd_batch *pb)
{
    const struct rbatch *b = pb->host_priv;

    return b->span;
}

static void rhost_retry_after(struct batchd_batch *pb, uint64_t ms)
{
    struct rbatch *b = pb->host_priv;

    b->retry_after_ms = ms;
}

static void rhost_complete(struct batchd_batch *pb, int rc)
{
    struct rbatch *b = pb->host_priv;

    pthread_mutex_lock(&done_mu);
    b->rc = rc;
    b->done = 1;
    pthread_cond_broadcast(&done_cv);
    pthread_mutex_unlock(&done_mu);
}

static int send_frame(struct runner *r)
{
    const char *why = "";

    if (bd_runner_io_flush(&r->io, &why) != 0) {
        bd_log_error("sink %s: runner: write to the daemon: %s", r->name, why);
        return -1;
    }
    return 0;
}

/* INIT: the kv list (copied, NUL-terminated) and the log level. */
static int read_init(struct runner *r)
{
    const uint8_t *body;
    size_t len;
    const char *why = "EOF before INIT";
    msgpack_object o;
    const msgpack_object *a;
    const msgpack_object_kv *m;

    if (bd_runner_io_recv(&r->io, &body, &len, &why) != 1)
        goto out_bad;
    why = "INIT: must be [map of str, log level]";
    if (unpack(body, len, &r->zone, &o) != 0 ||
        o.type != MSGPACK_OBJECT_ARRAY || o.via.array.size != 2)
        goto out_bad;
    a = o.via.array.ptr;
    if (a[0].type != MSGPACK_OBJECT_MAP ||
        a[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
        a[1].via.u64 > BATCHD_LOG_DEBUG)
        goto out_bad;
    bd_log_set_level((int)a[1].via.u64);
    m = a[0].via.map.ptr;
    r->kv = bd_calloc(a[0].via.map.size + 1, sizeof(*r->kv));
    if (r->kv == NULL)
        goto out_bad;
    for (size_t i = 0; i < a[0].via.map.size; i++) {
        if (m[i].key.type != MSGPACK_OBJECT_STR ||
            m[i].val.type != MSGPACK_OBJECT_STR ||
            memchr(m[i].key.via.str.ptr, 0, m[i].key.via.str.size) ||
            memchr(m[i].val.via.str.ptr, 0, m[i].val.via.str.size))
            goto out_bad;
        r->kv[i].key = bd_strndup(m[i].key.via.str.ptr, m[i].key.via.str.size);
        r->kv[i].value = bd_strndup(m[i].val.via.str.ptr, m[i].val.via.str.size);
        r->nkv = i + 1;
        if (r->kv[i].key == NULL || r->kv[i].value == NULL)
            goto out_bad;
    }
    msgpack_zone_clear(&r->zone);
    return 0;

out_bad:
    bd_log_error("sink %s: runner: %s", r->name, why);
    return -1;
}

/* Load and init the plugin, and tell the daemon how it went. */
static int start_plugin(struct runner *r)
{
    char err[640], why[512] = "";

    if (bd_sink_open(r->name, r->path, r->kv, r->nkv, &r->dl, &r->vt, err,
                     sizeof(err)) != 0)
        goto out_refuse;
    r->host.abi_version = BATCHD_SINK_ABI_VERSION;
    r->host.log = rhost_log;
    r->host.result = rhost_result;
    r->host.batch_error = rhost_batch_error;
    r->host.complete = rhost_complete;
    r->host.item_trace = rhost_item_trace;
    r->host.batch_span_id = rhost_batch_span_id;
    r->host.host_priv = r;
    r->host.retry_after = rhost_retry_after;
    r->state = r->vt->init(&r->host, r->kv, r->nkv, why, sizeof(why));
    if (r->state == NULL) {
        snprintf(err, sizeof(err), "sink %s (%s): init failed: %s", r->name,
                 r->path, why[0] ? why : "no reason given");
        goto out_refuse;
    }
    if (encode_init_reply(&r->io.out, 1, NULL) != 0 || send_frame(r) != 0)
        return -1;
    return 0;

out_refuse:
    if (encode_init_reply(&r->io.out, 0, err) == 0)
        send_frame(r);
    return -1;
}

static void rbatch_free(struct rbatch *b)
{
    if (b == NULL)
        return;
    for (size_t i = 0; b->res != NULL && i < b->pub.nitems; i++)
        bd_free(b->res[i].data);
    for (size_t i = 0; b->traces != NULL && i < b->pub.nitems; i++)
        bd_free(b->traces[i]);
    bd_free(b->traces);
    bd_free(b->res);
    bd_free(b->items);
    bd_free((char *)b->pub.key);
    bd_free(b->error);
    bd_free(b);
}

/* A BATCH frame as the plugin will see it; NULL when it does not parse. */
static struct rbatch *decode_batch(struct runner *r, const uint8_t *body,
                                   size_t len, uint64_t *seq)
{
    msgpack_object o;
    const msgpack_object *a, *it;
    struct rbatch *b;
    size_t n;

    if (unpack(body, len, &r->zone, &o) != 0 ||
        o.type != MSGPACK_OBJECT_ARRAY || o.via.array.size != 4)
        return NULL;
    a = o.via.array.ptr;
    if (a[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
        a[1].type != MSGPACK_OBJECT_STR || a[2].type != MSGPACK_OBJECT_ARRAY ||
        a[2].via.array.size == 0 || a[3].type != MSGPACK_OBJECT_STR ||
        a[3].via.str.size != 16)
        return NULL;
    *seq = a[0].via.u64;
    n = a[2].via.array.size;
    b = bd_calloc(1, sizeof(*b));
    if (b == NULL)
        return NULL;
    b->items = bd_calloc(n, sizeof(*b->items));
    b->res = bd_calloc(n, sizeof(*b->res));
    b->traces = bd_calloc(n, sizeof(*b->traces));
    b->pub.key = bd_strndup(a[1].via.str.ptr, a[1].via.str.size);
    b->pub.nitems = n;
    if (b->items == NULL || b->res == NULL || b->traces == NULL ||
        b->pub.key == NULL)
        goto out_free;
    memcpy(b->span, a[3].via.str.ptr, 16);
    b->span[16] = '\0';
    b->pub.key_len = a[1].via.str.size;
    b->pub.items = b->items;
    b->pub.host_priv = b;
    for (size_t i = 0; i < n; i++) {
        const msgpack_object *f;

        it = &a[2].via.array.ptr[i];
        f = it->via.array.ptr;
        if (it->type != MSGPACK_OBJECT_ARRAY || it->via.array.size != 5 ||
            f[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
            f[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
            f[1].via.u64 > UINT32_MAX ||
            (f[2].type != MSGPACK_OBJECT_POSITIVE_INTEGER &&
             f[2].type != MSGPACK_OBJECT_NEGATIVE_INTEGER) ||
            !is_raw(&f[3]) ||
            (f[4].type != MSGPACK_OBJECT_STR && f[4].type != MSGPACK_OBJECT_NIL))
            goto out_free;
        if (f[4].type == MSGPACK_OBJECT_STR &&
            (b->traces[i] = bd_strndup(f[4].via.str.ptr,
                                       f[4].via.str.size)) == NULL)
            goto out_free;
        b->items[i].id = f[0].via.u64;
        b->items[i].attempt = (uint32_t)f[1].via.u64;
        b->items[i].deadline_ms = f[2].via.i64;
        b->items[i].data = raw_ptr(&f[3]);
        b->items[i].len = raw_len(&f[3]);
    }
    return b;

out_free:
    rbatch_free(b);
    return NULL;
}

/* acquire, process, wait for complete() if PENDING, release. */
static int run_batch(struct runner *r, struct rbatch *b)
{
    void *res = NULL;
    char why[256] = "";
    int rc;

    if (r->vt->acquire != NULL) {
        res = r->vt->acquire(r->state, b->pub.key, b->pub.key_len, why,
                             sizeof(why));
        if (res == NULL) {
            rhost_batch_error(&b->pub, why[0] ? why : "acquire failed");
            return BD_SINK_ACQUIRE_FAILED;
        }
    }
    rc = r->vt->process(r->state, res, &b->pub);
    if (rc == BATCHD_SINK_PENDING) {
        /* Also for a blocking plugin that broke the ABI: the batch must
         * outlive any late complete(). A plugin that never completes is
         * killed by the daemon at sink_timeout_ms. */
        pthread_mutex_lock(&done_mu);
        while (!b->done)
            pthread_cond_wait(&done_cv, &done_mu);
        rc = b->rc;
        pthread_mutex_unlock(&done_mu);
    }
    if (res != NULL)
        r->vt->release(r->state, res);
    return rc;
}

static int encode_result(struct bd_buf *out, uint64_t seq,
                         const struct rbatch *b, int rc)
{
    struct bd_enc e;

    bd_enc_begin(&e, out);
    BD_ENC(&e, msgpack_pack_array(&e.pk, 5));
    BD_ENC(&e, msgpack_pack_uint64(&e.pk, seq));
    BD_ENC(&e, msgpack_pack_int(&e.pk, rc));
    if (b->error == NULL)
        BD_ENC(&e, msgpack_pack_nil(&e.pk));
    else
        bd_enc_str(&e, b->error, strlen(b->error));
    BD_ENC(&e, msgpack_pack_array(&e.pk, b->pub.nitems));
    for (size_t i = 0; i < b->pub.nitems; i++) {
        BD_ENC(&e, msgpack_pack_array(&e.pk, 2));
        BD_ENC(&e, msgpack_pack_int(&e.pk, b->res[i].code));
        if (b->res[i].code == 0)
            BD_ENC(&e, msgpack_pack_nil(&e.pk));
        else
            bd_enc_bin(&e, b->res[i].len ? (const void *)b->res[i].data : "",
                    b->res[i].len);
    }
    BD_ENC(&e, msgpack_pack_uint64(&e.pk, b->retry_after_ms));
    return enc_end_bounded(&e);
}

/* Answer a batch that could not be answered item by item. */
static int encode_whole(struct bd_buf *out, uint64_t seq, size_t n, int rc,
                        const char *msg)
{
    struct rbatch b = {0};
    int ret;

    b.pub.nitems = n;
    b.res = bd_calloc(n ? n : 1, sizeof(*b.res));
    if (b.res == NULL)
        return -1;
    b.error = (char *)msg;
    ret = encode_result(out, seq, &b, rc);
    bd_free(b.res);
    return ret;
}

/* Batches until EOF. Returns the exit code. */
static int serve(struct runner *r)
{
    for (;;) {
        const uint8_t *body;
        const char *why = "";
        struct rbatch *b;
        uint64_t seq = 0;
        size_t len;
        int rc = bd_runner_io_recv(&r->io, &body, &len, &why);

        if (rc == 0)
            return 0;
        if (rc < 0) {
            bd_log_error("sink %s: runner: reading from the daemon: %s",
                         r->name, why);
            return 1;
        }
        b = decode_batch(r, body, len, &seq);
        if (b == NULL) {
            bd_log_error("sink %s: runner: a BATCH that does not parse", r->name);
            return 1;
        }
        rc = run_batch(r, b);
        if (encode_result(&r->io.out, seq, b, rc) != 0 &&
            encode_whole(&r->io.out, seq, b->pub.nitems, BATCHD_SINK_RETRY,
                         "sink runner: out of memory for the answer") != 0) {
            rbatch_free(b);
            return 1;
        }
        rbatch_free(b);
        msgpack_zone_clear(&r->zone);
        if (send_frame(r) != 0)
            return 1;
        bd_buf_shrink(&r->io.out, 64 * 1024); /* after a big batch */
    }
}

static void runner_free(struct runner *r)
{
    for (size_t i = 0; i < r->nkv; i++) {
        bd_free((char *)r->kv[i].key);
        bd_free((char *)r->kv[i].value);
    }
    bd_free(r->kv);
    bd_runner_io_destroy(&r->io);
    msgpack_zone_destroy(&r->zone);
}

int bd_runner_main(int argc, char **argv)
{
    struct runner r;
    char *end;
    long fd;
    int code;

    if (argc != 5) {
        fprintf(stderr, "usage: batchd --sink-runner FD PLUGIN NAME\n"
                "(started by batchd itself for isolation = process)\n");
        return 2;
    }
    errno = 0;
    fd = strtol(argv[2], &end, 10);
    if (errno != 0 || *end != '\0' || fd < 0 || fd > 65535) {
        fprintf(stderr, "batchd --sink-runner: bad descriptor '%s'\n", argv[2]);
        return 2;
    }
    /* Die with the daemon even when the plugin hangs and never reads. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    memset(&r, 0, sizeof(r));
    r.path = argv[3];
    r.name = argv[4];
    bd_runner_io_init(&r.io, (int)fd, -1);
    msgpack_zone_init(&r.zone, 4096);
    if (read_init(&r) != 0 || start_plugin(&r) != 0) {
        code = 1;
        goto out_free;
    }
    code = serve(&r);
    r.vt->shutdown(r.state);
out_free:
    close((int)fd);
    /* The handle stays open: plugin threads or atexit hooks may still
     * run its code until the process is gone. */
    runner_free(&r);
    return code;
}
