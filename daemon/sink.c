/*
 * sink.c - dlopen sink plugins, check their ABI, lend them the host
 * table, run batches through them (see sink.h).
 *
 * Load order (STYLE.md): dlopen(RTLD_NOW|RTLD_LOCAL), look up the one
 * fixed symbol, check abi_version, then the required members, then the
 * option keys, and only then call init. Every failure names the file.
 */
#include <dlfcn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "isolate.h"
#include "log.h"
#include "sink.h"

static void (*complete_hook)(struct bd_batch *b);

void bd_sink_set_complete_hook(void (*hook)(struct bd_batch *b))
{
    complete_hook = hook;
}

/* ---- host table ------------------------------------------------------ */

static void host_log(const struct batchd_host *host, int level,
                     const char *fmt, ...)
{
    const struct bd_sink *s = host->host_priv;
    char msg[768];
    va_list ap;

    if (!bd_log_enabled(level))
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    bd_log(level, "sink %s: %s", s->name, msg);
}

int bd_result_set_slow(struct bd_result *r, int code, const void *data,
                       size_t len)
{
    if (code < BATCHD_RESULT_OK || code > BATCHD_RESULT_FAIL)
        return -1;
    if (r->data != NULL) { /* a sink may answer an item twice */
        bd_free(r->data);
        r->data = NULL;
    }
    r->len = 0;
    r->code = code;
    if (len > 0 && data != NULL) {
        r->data = bd_malloc(len);
        if (r->data == NULL) {
            r->code = BATCHD_RESULT_FAIL;
            return -1;
        }
        memcpy(r->data, data, len);
        r->len = len;
    }
    return 0;
}

void bd_error_set(char **slot, const char *msg)
{
    bd_free(*slot);
    *slot = msg ? bd_strdup(msg) : NULL;
}

static int host_result(struct batchd_batch *pb, size_t i, int code,
                       const void *data, size_t len)
{
    struct bd_batch *b = pb->host_priv;

    if (i >= pb->nitems)
        return -1;
    return bd_result_set(&b->results[i], code, data, len);
}

static void host_batch_error(struct batchd_batch *pb, const char *msg)
{
    struct bd_batch *b = pb->host_priv;

    bd_error_set(&b->error, msg);
}

static const char *host_item_trace(const struct batchd_batch *pb, size_t i)
{
    const struct bd_batch *b = pb->host_priv;

    if (i >= pb->nitems || b->trace_of == NULL)
        return NULL;
    return b->trace_of(b->items[i]);
}

static const char *host_batch_span_id(const struct batchd_batch *pb)
{
    const struct bd_batch *b = pb->host_priv;

    return b->span_id;
}

static void host_complete(struct batchd_batch *pb, int rc)
{
    struct bd_batch *b = pb->host_priv;

    b->rc = rc;
    complete_hook(b);
}

/* The longest host->retry_after taken (a day): past that any item's time
 * runs out anyway, and ms * 10^6 must not overflow. */
#define BD_RETRY_AFTER_MAX_MS (86400ull * 1000)

/* ABI 2: the least wait before b's RETRY items go again (call.c). The
 * isolation proxy calls this too, with the runner's hint. */
static void host_retry_after(struct batchd_batch *pb, uint64_t ms)
{
    struct bd_batch *b = pb->host_priv;

    /* Clamp: a hint of centuries must not wrap to no wait at all. */
    if (ms > BD_RETRY_AFTER_MAX_MS)
        ms = BD_RETRY_AFTER_MAX_MS;
    b->retry_after_ns = ms * 1000000ull;
}

/* ---- loading --------------------------------------------------------- */

static char *resolve_path(const char *plugin, const char *dir)
{
    char *p;
    size_t n;

    if (strchr(plugin, '/') != NULL)
        return bd_strdup(plugin);
    n = strlen(dir) + strlen(plugin) + 5;
    p = bd_malloc(n);
    if (p != NULL)
        snprintf(p, n, "%s/%s.so", dir, plugin);
    return p;
}

/*
 * Bytes of struct batchd_sink a plugin of ABI version v provides. The
 * daemon reads no member past this (bd_sink_has): a plugin built against
 * an older header has a shorter table. Every version so far has the same
 * table; a version that appends a member gets its own case here.
 */
static size_t sink_table_size(uint32_t v)
{
    switch (v) {
    case 1:
    case 2:
        return offsetof(struct batchd_sink, shutdown) +
               sizeof(((struct batchd_sink *)0)->shutdown);
    default:
        return sizeof(struct batchd_sink);
    }
}

int bd_sink_has(const struct batchd_sink *vt, size_t off, size_t size)
{
    return off + size <= sink_table_size(vt->abi_version);
}

/* Does option name o take key? "NAME" takes itself; "PREFIX.*" takes
 * every "PREFIX.something" (the http sink's header.NAME, the kafka
 * sink's rdkafka.* pass-through). */
static int option_takes(const char *o, const char *key)
{
    size_t n = strlen(o);

    if (n >= 2 && o[n - 2] == '.' && o[n - 1] == '*')
        return strncmp(o, key, n - 1) == 0 && key[n - 1] != '\0';
    return strcmp(o, key) == 0;
}

const struct batchd_sink_option *
bd_sink_option_find(const struct batchd_sink_option *opts, const char *key)
{
    for (; opts != NULL && opts->name != NULL; opts++)
        if (option_takes(opts->name, key))
            return opts;
    return NULL;
}

static int check_options(const char *name, const char *path,
                         const struct batchd_kv *kv, size_t nkv,
                         const struct batchd_sink *vt, char *err,
                         size_t errlen)
{
    for (size_t i = 0; i < nkv; i++) {
        if (bd_sink_option_find(vt->options, kv[i].key) == NULL) {
            snprintf(err, errlen, "sink %s (%s): unknown option '%s'",
                     name, path, kv[i].key);
            return -1;
        }
    }
    return 0;
}

int bd_sink_open(const char *name, const char *path,
                 const struct batchd_kv *kv, size_t nkv, void **dl,
                 const struct batchd_sink **vtp, char *err, size_t errlen)
{
    const struct batchd_sink *(*entry)(void);
    const struct batchd_sink *vt;
    void *h;

    h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (h == NULL) {
        snprintf(err, errlen, "sink %s: cannot load %s: %s", name, path,
                 dlerror());
        return -1;
    }
    *(void **)&entry = dlsym(h, BATCHD_SINK_ENTRY);
    if (entry == NULL) {
        snprintf(err, errlen, "sink %s (%s): no symbol %s; not a batchd sink",
                 name, path, BATCHD_SINK_ENTRY);
        goto out_close;
    }
    vt = entry();
    if (vt == NULL) {
        snprintf(err, errlen, "sink %s (%s): %s returned NULL", name, path,
                 BATCHD_SINK_ENTRY);
        goto out_close;
    }
    if (vt->abi_version < BATCHD_SINK_ABI_MIN ||
        vt->abi_version > BATCHD_SINK_ABI_VERSION) {
        snprintf(err, errlen, "sink %s (%s): ABI %u, daemon speaks %u to %u",
                 name, path, vt->abi_version, (unsigned)BATCHD_SINK_ABI_MIN,
                 (unsigned)BATCHD_SINK_ABI_VERSION);
        goto out_close;
    }
    if (!BD_SINK_HAS(vt, shutdown) || vt->name == NULL || vt->init == NULL ||
        vt->process == NULL || vt->shutdown == NULL) {
        snprintf(err, errlen,
                 "sink %s (%s): table lacks name, init, process or shutdown",
                 name, path);
        goto out_close;
    }
    if ((vt->acquire == NULL) != (vt->release == NULL)) {
        snprintf(err, errlen, "sink %s (%s): acquire and release go together",
                 name, path);
        goto out_close;
    }
    if (check_options(name, path, kv, nkv, vt, err, errlen) != 0)
        goto out_close;
    *dl = h;
    *vtp = vt;
    return 0;

out_close:
    dlclose(h);
    return -1;
}

/* dlopen + symbol + ABI + members + options; fills s->dl, s->vt. */
static int open_plugin(struct bd_sink *s, const struct bd_sink_conf *sc,
                       char *err, size_t errlen)
{
    if (bd_sink_open(sc->name, s->path, sc->kv, sc->nkv, &s->dl, &s->vt,
                     err, errlen) != 0)
        return -1;
    s->nonblocking = (s->vt->flags & BATCHD_SINK_NONBLOCKING) != 0;
    return 0;
}

/* The host table lent to the plugin (or to the isolation proxy). */
static void host_fill(struct bd_sink *s)
{
    s->host.abi_version = BATCHD_SINK_ABI_VERSION;
    s->host.log = host_log;
    s->host.result = host_result;
    s->host.batch_error = host_batch_error;
    s->host.complete = host_complete;
    s->host.item_trace = host_item_trace;
    s->host.batch_span_id = host_batch_span_id;
    s->host.host_priv = s;
    s->host.retry_after = host_retry_after;
}

/* do_init: LOAD_RUN (the daemon), LOAD_CHECK (--check-config: init in
 * this process, whatever the isolation). */
enum { LOAD_RUN = 1, LOAD_CHECK = 2 };

static int init_one(struct bd_sink *s, const struct bd_sink_conf *sc,
                    const char *dir, int do_init, char *err, size_t errlen)
{
    char why[512] = "";

    s->name = bd_strdup(sc->name);
    s->path = resolve_path(sc->plugin, dir);
    if (s->name == NULL || s->path == NULL) {
        snprintf(err, errlen, "sink %s: out of memory", sc->name);
        return -1;
    }
    if (do_init == LOAD_RUN && sc->isolation == BD_ISOLATION_PROCESS) {
        /* The plugin is only ever loaded by the runner child; the
         * daemon gets the proxy table (isolate.c). --check-config
         * (LOAD_CHECK) loads and inits it here, then shuts it down. */
        s->isolation = sc->isolation;
        host_fill(s);
        return bd_isolate_load(s, sc, &s->host, err, errlen);
    }
    if (open_plugin(s, sc, err, errlen) != 0)
        return -1;
    host_fill(s);
    s->state = s->vt->init(&s->host, sc->kv, sc->nkv, why, sizeof(why));
    if (s->state == NULL) {
        snprintf(err, errlen, "sink %s (%s): init failed: %s", sc->name,
                 s->path, why[0] ? why : "no reason given");
        dlclose(s->dl);
        s->dl = NULL;
        s->vt = NULL;
        return -1;
    }
    bd_log_info("sink %s: loaded %s (%s, %s)", s->name, s->path, s->vt->name,
                s->nonblocking ? "non-blocking, on the loop" : "on workers");
    return 0;
}

static struct bd_sink *load(const struct bd_config *cfg, const char *dir,
                            int do_init, char *err, size_t errlen)
{
    struct bd_sink *sinks = bd_calloc(cfg->nsinks ? cfg->nsinks : 1,
                                      sizeof(*sinks));

    if (sinks == NULL) {
        snprintf(err, errlen, "sinks: out of memory");
        return NULL;
    }
    if (dir == NULL)
        dir = cfg->sink_dir;
    for (size_t i = 0; i < cfg->nsinks; i++) {
        if (init_one(&sinks[i], &cfg->sinks[i], dir, do_init, err,
                     errlen) != 0) {
            bd_sink_unload_all(sinks, i + 1, 1);
            return NULL;
        }
    }
    return sinks;
}

struct bd_sink *bd_sink_load_all(const struct bd_config *cfg,
                                 const char *sink_dir, char *err,
                                 size_t errlen)
{
    return load(cfg, sink_dir, LOAD_RUN, err, errlen);
}

int bd_sink_check_all(const struct bd_config *cfg, const char *sink_dir,
                      char *err, size_t errlen)
{
    struct bd_sink *s = load(cfg, sink_dir, LOAD_CHECK, err, errlen);

    if (s == NULL)
        return -1;
    bd_sink_unload_all(s, cfg->nsinks, 1);
    return 0;
}

/* Shut one sink down and free what it owns (not the struct). */
static void unload(struct bd_sink *s, int may_dlclose)
{
    if (s->vt != NULL && s->state != NULL)
        s->vt->shutdown(s->state);
    if (s->dl != NULL && may_dlclose)
        dlclose(s->dl);
    bd_free(s->name);
    bd_free(s->path);
}

void bd_sink_unload_all(struct bd_sink *sinks, size_t n, int may_dlclose)
{
    if (sinks == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        unload(&sinks[i], may_dlclose);
    bd_free(sinks);
}

struct bd_sink *bd_sink_load_one(const struct bd_sink_conf *sc,
                                 const char *dir, char *err, size_t errlen)
{
    struct bd_sink *s = bd_calloc(1, sizeof(*s));

    if (s == NULL) {
        snprintf(err, errlen, "sink %s: out of memory", sc->name);
        return NULL;
    }
    if (init_one(s, sc, dir, LOAD_RUN, err, errlen) != 0) {
        unload(s, 1);
        bd_free(s);
        return NULL;
    }
    return s;
}

void bd_sink_unload_one(struct bd_sink *s)
{
    if (s == NULL)
        return;
    bd_log_info("sink %s: shut down", s->name);
    unload(s, 1);
    bd_free(s);
}

static int kv_same(const struct bd_sink_conf *a, const struct bd_sink_conf *b)
{
    if (a->nkv != b->nkv)
        return 0;
    for (size_t i = 0; i < a->nkv; i++)
        if (strcmp(a->kv[i].key, b->kv[i].key) != 0 ||
            strcmp(a->kv[i].value, b->kv[i].value) != 0)
            return 0;
    return 1;
}

int bd_sink_conf_same(const struct bd_sink *s, const struct bd_sink_conf *old,
                      const struct bd_sink_conf *sc, const char *dir)
{
    char *path = resolve_path(sc->plugin, dir);
    int same = path != NULL && strcmp(path, s->path) == 0 &&
               strcmp(old->name, sc->name) == 0 &&
               old->isolation == sc->isolation &&
               old->restart_base_ms == sc->restart_base_ms &&
               old->restart_cap_ms == sc->restart_cap_ms &&
               old->unhealthy_after == sc->unhealthy_after && kv_same(old, sc);

    bd_free(path);
    return same;
}

/* ---- batches --------------------------------------------------------- */

struct bd_batch *bd_batch_new(struct bd_sink *sink, struct bd_key *key,
                              const char *keyname, size_t keylen, size_t n)
{
    struct bd_batch *b;
    size_t sz = sizeof(*b) + n * (sizeof(struct bd_item *) +
                                  sizeof(struct batchd_item) +
                                  sizeof(struct bd_result)) + keylen + 1;
    char *name;

    /* One block: the batch, its three arrays and the key, freed together. */
    b = bd_malloc(sz);
    if (b == NULL)
        return NULL;
    memset(b, 0, sizeof(*b));
    b->pitems = (struct batchd_item *)(b + 1);
    b->results = (struct bd_result *)(b->pitems + n);
    b->items = (struct bd_item **)(b->results + n);
    name = (char *)(b->items + n);
    memcpy(name, keyname, keylen);
    name[keylen] = '\0';
    memset(b->results, 0, n * sizeof(struct bd_result));
    b->sink = sink;
    b->key = key;
    b->pub.key = name;
    b->pub.key_len = keylen;
    b->pub.nitems = n;
    b->pub.items = b->pitems;
    b->pub.host_priv = b;
    return b;
}

void bd_batch_free(struct bd_batch *b)
{
    if (b == NULL)
        return;
    for (size_t i = 0; i < b->pub.nitems; i++)
        if (b->results[i].data != NULL) /* most answers carry none */
            bd_free(b->results[i].data);
    bd_free(b->error);
    bd_free(b);
}

int bd_sink_run(struct bd_batch *b)
{
    struct bd_sink *s = b->sink;
    char why[256];
    int rc;

    if (s->vt->acquire != NULL) {
        why[0] = '\0';
        b->res = s->vt->acquire(s->state, b->pub.key, b->pub.key_len, why,
                                sizeof(why));
        if (b->res == NULL) {
            why[sizeof(why) - 1] = '\0'; /* a plugin may not terminate it */
            b->error = bd_strdup(why[0] ? why : "acquire failed");
            b->rc = BD_SINK_ACQUIRE_FAILED;
            return b->rc;
        }
    }
    rc = s->vt->process(s->state, b->res, &b->pub);
    /* After PENDING the batch belongs to the sink until host->complete,
     * which may already have run on another thread and set b->rc: do not
     * touch b at all. */
    if (rc == BATCHD_SINK_PENDING)
        return rc;
    if (b->res != NULL) {
        s->vt->release(s->state, b->res);
        b->res = NULL;
    }
    b->rc = rc;
    return rc;
}
