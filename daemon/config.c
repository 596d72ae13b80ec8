/*
 * config.c - the option table, the INI loader (inih), --check-config.
 *
 * Every option is one row of a table (redis config.c static_configs[]):
 * name, kind, field offset and width, default as written in a file, and
 * bounds. Parsing, range checks, defaults, printing and freeing are
 * written once per kind and driven by the rows.
 *
 * inih splits "key = value" and strips comments. Our reader hands it one
 * physical line per call, so its line numbers and ours agree, and keeps
 * the current line for error messages. The reader also reads section
 * headers itself: inih truncates section names to 49 bytes and calls the
 * handler only for keys, and an empty [route.x] must still be seen.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include <ini.h>

#include "alloc.h"
#include "config.h"

#ifndef BD_SINKDIR
#define BD_SINKDIR "/usr/local/lib/batchd/sinks"
#endif

#define KIB 1024ULL
#define MIB (1024ULL * KIB)
#define GIB (1024ULL * MIB)
#define TIB (1024ULL * GIB)

#define NAME_MAX_LEN 64     /* [sink.NAME] and [route.NAME] */
#define MAX_OPTS 28         /* rows per table (per-section bookkeeping) */
#define MAX_ERRORS 100      /* error lines kept; the rest are counted */
#define RAW_LINE 1024       /* our line buffer; inih's is smaller anyway */

enum opt_kind {
    OPT_STR,                /* non-empty string */
    OPT_INT,                /* decimal integer */
    OPT_SIZE,               /* integer, optional K/M/G suffix (x 1024) */
    OPT_OCTAL,              /* octal integer (a file mode) */
    OPT_ENUM,               /* one of names[]; stored as int, the index */
};

#define OPT_REQUIRED 0x1u   /* no default: leaving it out is an error */
#define OPT_NOSTORE 0x2u    /* checked, not stored (printed as its default) */

struct opt {
    const char *name;
    enum opt_kind kind;
    unsigned flags;         /* OPT_REQUIRED, OPT_NOSTORE */
    size_t off;             /* field offset in the section's struct */
    size_t width;           /* field size (numbers: 4 or 8 bytes) */
    const char *def;        /* default as written in a file; NULL = unset */
    uint64_t min, max;      /* numbers: inclusive bounds */
    const char *const *names;              /* OPT_ENUM: NULL-terminated */
    const char *(*check)(const char *val); /* OPT_STR: extra validator */
    const char *help;       /* one sentence for batchd.conf(5) (--dump-options) */
};

#define AT(type, field) .off = offsetof(struct type, field), \
                        .width = sizeof(((struct type *)0)->field)

/*
 * Validator messages. The ones compared by address get their details
 * (bounds, allowed names) added by the one caller that reports them.
 */
static const char msg_range[] = "out of range";
static const char msg_enum[] = "unknown value";

_Static_assert(sizeof(((struct sockaddr_un *)0)->sun_path) == 108,
               "check_socket_path's message names 107 bytes");

static const char *check_socket_path(const char *v)
{
    if (strlen(v) >= sizeof(((struct sockaddr_un *)0)->sun_path))
        return "too long for a Unix socket path (max 107 bytes)";
    return NULL;
}

/* Index = enum batchd_log_level / enum bd_policy. */
static const char *const log_names[] = {
    "error", "warn", "info", "debug", NULL
};
/* "0, alice, 1001": names or numbers, checked for shape here; names
 * are looked up when the daemon starts (access.c). */
static const char *check_id_list(const char *v)
{
    for (const char *p = v; *p; p++)
        if (!isalnum((unsigned char)*p) && strchr(" ,_.-", *p) == NULL)
            return "must be a comma-separated list of names or numbers";
    return NULL;
}

/* "HOST:PORT" with a loopback address, or "unix:/path": the metrics
 * endpoint is for this machine only (metrics.c binds it). */
static const char *check_metrics_listen(const char *v)
{
    const char *colon = strrchr(v, ':');
    char *end;
    unsigned long port;

    if (strncmp(v, "unix:/", 6) == 0)
        return check_socket_path(v + 5);
    if (colon == NULL || colon == v)
        return "must be HOST:PORT (a loopback address) or unix:/PATH";
    if (strncmp(v, "127.", 4) != 0 && strncmp(v, "localhost:", 10) != 0 &&
        strncmp(v, "[::1]:", 6) != 0)
        return "must listen on a loopback address (127.x.x.x, [::1], "
               "localhost) or a Unix socket";
    port = strtoul(colon + 1, &end, 10);
    if (*end != '\0' || colon[1] == '\0' || port == 0 || port > 65535)
        return "port must be 1..65535";
    return NULL;
}

static const char *const no_yes_names[] = {"no", "yes", NULL};
static const char *const isolation_names[] = {"inproc", "process", NULL};
static const char *const on_timeout_names[] = {"retry", "fail", NULL};
static const char *const policy_names[] = {
    "immediate", "size", "duration", "balanced", NULL
};
_Static_assert(BATCHD_LOG_ERROR == 0 && BATCHD_LOG_DEBUG == 3,
               "log_names[] follows enum batchd_log_level");
_Static_assert(BD_POLICY_IMMEDIATE == 0 && BD_POLICY_BALANCED == 3,
               "policy_names[] follows enum bd_policy");

/* [daemon]. conf/batchd.conf documents every row; keep them in step. */
static const struct opt daemon_opts[] = {
    { .name = "socket", .kind = OPT_STR, AT(bd_config, socket),
      .def = "/run/batchd/batchd.sock", .check = check_socket_path,
      .help = "Path of the listening Unix socket (at most 107 bytes). Not used "
              "when systemd passes the socket (batchd.socket)." },
    { .name = "socket_mode", .kind = OPT_OCTAL, AT(bd_config, socket_mode),
      .def = "0660", .min = 0, .max = 0777,
      .help = "Mode of the socket file, in octal, applied from the moment it is"
              " created." },
    { .name = "socket_group", .kind = OPT_STR, AT(bd_config, socket_group),
      .help = "Group that owns the socket file (a name or number); unset: the "
              "daemon's group." },
    { .name = "sink_dir", .kind = OPT_STR, AT(bd_config, sink_dir),
      .def = BD_SINKDIR,
      .help = "Where a bare plugin name (plugin = echo) is looked up as "
              "NAME.so; --sink-dir overrides it." },
    { .name = "max_frame", .kind = OPT_SIZE, AT(bd_config, max_frame),
      .def = "1M", .min = 64, .max = 64 * MIB,
      .help = "Largest request frame body in bytes; a larger frame is refused "
              "unread." },
    { .name = "max_conns", .kind = OPT_INT, AT(bd_config, max_conns),
      .def = "1024", .min = 1, .max = 1000000,
      .help = "Client connections open at once; above it new connections are "
              "closed." },
    { .name = "max_queued_items", .kind = OPT_INT,
      AT(bd_config, max_queued_items), .def = "1000000", .min = 1,
      .max = TIB,
      .help = "Items queued over all keys; above it items are answered "
              "OVERLOADED." },
    { .name = "max_queued_bytes", .kind = OPT_SIZE,
      AT(bd_config, max_queued_bytes), .def = "256M", .min = KIB,
      .max = TIB,
      .help = "Payload bytes queued over all keys: the main memory bound." },
    { .name = "max_concurrency", .kind = OPT_INT,
      AT(bd_config, max_concurrency), .def = "8", .min = 1, .max = 1024,
      .help = "Sink calls in flight over all sinks; also the number of sink "
              "worker threads." },
    { .name = "shutdown_grace_ms", .kind = OPT_INT,
      AT(bd_config, shutdown_grace_ms), .def = "10000", .min = 0,
      .max = 3600000,
      .help = "At SIGTERM, how long running sink calls may finish after every "
              "open batch was flushed; what is left is answered SHUTTING_DOWN." },
    { .name = "conn_out_soft", .kind = OPT_SIZE, AT(bd_config, conn_out_soft),
      .def = "4M", .min = KIB, .max = GIB,
      .help = "Reply backlog of one connection at which the daemon stops "
              "reading from it." },
    { .name = "conn_out_hard", .kind = OPT_SIZE, AT(bd_config, conn_out_hard),
      .def = "64M", .min = 4 * KIB, .max = 4 * GIB,
      .help = "Reply backlog of one connection at which it is closed (more than"
              " conn_out_soft)." },
    { .name = "log_level", .kind = OPT_ENUM, AT(bd_config, log_level),
      .def = "info", .names = log_names,
      .help = "Least severe log lines written." },
    { .name = "frame_timeout_ms", .kind = OPT_INT,
      AT(bd_config, frame_timeout_ms), .def = "10000", .min = 0,
      .max = 3600000,
      .help = "A frame whose first byte arrived must be complete within this "
              "time, or the connection is closed (0 = off)." },
    { .name = "idle_timeout_ms", .kind = OPT_INT,
      AT(bd_config, idle_timeout_ms), .def = "0", .min = 0, .max = 86400000,
      .help = "Close a connection with nothing in flight that sent nothing for "
              "this long (0 = off)." },
    { .name = "write_stall_timeout_ms", .kind = OPT_INT,
      AT(bd_config, write_stall_timeout_ms), .def = "30000", .min = 0,
      .max = 3600000,
      .help = "Close a connection whose pending replies could not be written "
              "for this long (0 = off)." },
    { .name = "max_bad_requests", .kind = OPT_INT,
      AT(bd_config, max_bad_requests), .def = "16", .min = 1, .max = 1000000,
      .help = "Malformed or refused requests in a row after which a connection "
              "is closed." },
    { .name = "allow_uids", .kind = OPT_STR, AT(bd_config, allow_uids),
      .check = check_id_list,
      .help = "Users (names or uids, comma-separated) allowed to connect; unset"
              " with allow_gids unset: anyone who can open the socket." },
    { .name = "allow_gids", .kind = OPT_STR, AT(bd_config, allow_gids),
      .check = check_id_list,
      .help = "Groups (names or gids, comma-separated) whose members may "
              "connect." },
    { .name = "admin_uids", .kind = OPT_STR, AT(bd_config, admin_uids),
      .check = check_id_list,
      .help = "Users who may pause, resume, drain and see per-key stats, "
              "besides root and the daemon's own user." },
    { .name = "admin_gids", .kind = OPT_STR, AT(bd_config, admin_gids),
      .check = check_id_list,
      .help = "Groups whose members are admins, as admin_uids." },
    { .name = "spool_dir", .kind = OPT_STR, AT(bd_config, spool_dir),
      .help = "Directory of the durable SEND spool and its dead letters; "
              "required when a route is durable." },
    { .name = "spool_sync_window_us", .kind = OPT_INT,
      AT(bd_config, spool_sync_window_us), .def = "0", .min = 0,
      .max = 1000000,
      .help = "Group commit window in microseconds; 0 = one write and "
              "fdatasync per loop pass." },
    { .name = "spool_max_bytes", .kind = OPT_SIZE,
      AT(bd_config, spool_max_bytes), .def = "1G", .min = 64 * KIB,
      .max = TIB,
      .help = "Cap on the spool's bytes; past it durable SENDs get "
              "OVERLOADED \"spool full\"." },
    { .name = "spool_segment_bytes", .kind = OPT_SIZE,
      AT(bd_config, spool_segment_bytes), .def = "16M", .min = 4 * KIB,
      .max = GIB,
      .help = "Size past which a spool segment is closed and a new one started." },
    { .name = "metrics_listen", .kind = OPT_STR,
      AT(bd_config, metrics_listen), .check = check_metrics_listen,
      .help = "Prometheus endpoint (GET /metrics): a loopback HOST:PORT or "
              "unix:/PATH; unset = off. Needs a restart to change." },
    { .name = NULL },
};

/* [sink.NAME]; any other key goes to the sink's kv list. */
static const struct opt sink_opts[] = {
    { .name = "plugin", .kind = OPT_STR, .flags = OPT_REQUIRED,
      AT(bd_sink_conf, plugin),
      .help = "Required. A path to the plugin's .so, or a bare name looked up "
              "in sink_dir as NAME.so." },
    { .name = "isolation", .kind = OPT_ENUM, AT(bd_sink_conf, isolation),
      .def = "inproc", .names = isolation_names,
      .help = "inproc: the plugin runs inside the daemon; process: in a sink-"
              "runner child, so its crash or hang cannot take the daemon down." },
    { .name = "restart_base_ms", .kind = OPT_INT,
      AT(bd_sink_conf, restart_base_ms), .def = "100", .min = 1,
      .max = 3600000,
      .help = "process: first restart delay after a crash, doubled on each "
              "crash in a row." },
    { .name = "restart_cap_ms", .kind = OPT_INT,
      AT(bd_sink_conf, restart_cap_ms), .def = "10000", .min = 1,
      .max = 3600000,
      .help = "process: longest restart delay." },
    { .name = "unhealthy_after", .kind = OPT_INT,
      AT(bd_sink_conf, unhealthy_after), .def = "5", .min = 1, .max = 1000,
      .help = "process: crashes in a row after which new items get "
              "SINK_UNAVAILABLE at once, until a restarted runner completes a "
              "batch." },
    { .name = NULL },
};

/* [route.NAME] */
static const char *const off_on_names[] = {"off", "on", NULL};

static const struct opt route_opts[] = {
    { .name = "match", .kind = OPT_STR, .flags = OPT_REQUIRED,
      AT(bd_route_conf, match),
      .help = "Required. An exact key or an fnmatch(3) glob; \"*\" makes a "
              "default route. Routes are tried in file order." },
    { .name = "sink", .kind = OPT_STR, .flags = OPT_REQUIRED,
      AT(bd_route_conf, sink),
      .help = "Required. NAME of a [sink.NAME] section." },
    { .name = "policy", .kind = OPT_ENUM, AT(bd_route_conf, policy),
      .def = "duration", .names = policy_names,
      .help = "When a batch is sent: immediate (a free slot), size (only full "
              "batches), duration (full, or max_delay_us after its first item),"
              " balanced (wait for min_items only while every slot is busy)." },
    { .name = "max_items", .kind = OPT_INT, AT(bd_route_conf, max_items),
      .def = "100", .min = 1, .max = 1000000,
      .help = "Items per batch." },
    { .name = "max_bytes", .kind = OPT_SIZE, AT(bd_route_conf, max_bytes),
      .def = "1M", .min = 1, .max = 256 * MIB,
      .help = "Payload bytes per batch, a hard ceiling: the item that would "
              "overflow it starts the next batch." },
    { .name = "max_delay_us", .kind = OPT_INT,
      AT(bd_route_conf, max_delay_us), .def = "1000", .min = 0,
      .max = 60000000,
      .help = "Microseconds from a batch's first item until it is sent "
              "(duration, balanced)." },
    { .name = "min_items", .kind = OPT_INT, AT(bd_route_conf, min_items),
      .def = "1", .min = 1, .max = 1000000,
      .help = "balanced: items to wait for while no slot is free (at most "
              "max_items)." },
    { .name = "key_concurrency", .kind = OPT_INT,
      AT(bd_route_conf, key_concurrency), .def = "1", .min = 1, .max = 1024,
      .help = "Sink calls in flight per key; above 1, batches of one key may "
              "finish out of order." },
    { .name = "key_max_items", .kind = OPT_INT,
      AT(bd_route_conf, key_max_items), .def = "100000", .min = 1,
      .max = TIB,
      .help = "Items queued per key; above it items are answered OVERLOADED." },
    { .name = "key_max_bytes", .kind = OPT_SIZE,
      AT(bd_route_conf, key_max_bytes), .def = "64M", .min = 1, .max = TIB,
      .help = "Payload bytes queued per key." },
    { .name = "deadline_ms", .kind = OPT_INT, AT(bd_route_conf, deadline_ms),
      .def = "0", .min = 0, .max = 86400000,
      .help = "Default deadline of each item from its arrival; a client may "
              "shorten it (0 = none)." },
    { .name = "max_attempts", .kind = OPT_INT,
      AT(bd_route_conf, max_attempts), .def = "3", .min = 1, .max = 100,
      .help = "Sink calls per item (1 = no retries); then RETRY_EXHAUSTED." },
    { .name = "retry_base_ms", .kind = OPT_INT,
      AT(bd_route_conf, retry_base_ms), .def = "100", .min = 1,
      .max = 3600000,
      .help = "First retry delay; each next one doubles up to retry_cap_ms, "
              "drawn between 50% and 100% (jitter)." },
    { .name = "retry_cap_ms", .kind = OPT_INT,
      AT(bd_route_conf, retry_cap_ms), .def = "10000", .min = 1,
      .max = 3600000,
      .help = "Longest retry delay." },
    { .name = "delivery_timeout_ms", .kind = OPT_INT,
      AT(bd_route_conf, delivery_timeout_ms), .def = "60000", .min = 0,
      .max = 86400000,
      .help = "No retry is scheduled past this long after the item arrived (0 ="
              " no limit)." },
    { .name = "sink_timeout_ms", .kind = OPT_INT,
      AT(bd_route_conf, sink_timeout_ms), .def = "30000", .min = 0,
      .max = 86400000,
      .help = "Bound on one sink call; a later answer is dropped (0 = none)." },
    { .name = "on_sink_timeout", .kind = OPT_ENUM,
      AT(bd_route_conf, on_sink_timeout), .def = "retry",
      .names = on_timeout_names,
      .help = "retry: a timed-out call counts as an attempt; fail: its items "
              "are answered SINK_TIMEOUT at once." },
    { .name = "coalesce_inflight", .kind = OPT_ENUM,
      AT(bd_route_conf, coalesce_inflight), .def = "off",
      .names = off_on_names,
      .help = "on: an item with a dedup_id also joins a sink call already "
              "running for it; off: only a queued item." },
    { .name = "priority_aging_ms", .kind = OPT_INT,
      AT(bd_route_conf, priority_aging_ms), .def = "1000", .min = 0,
      .max = 86400000,
      .help = "An item queued this long counts as top priority, so low "
              "priorities are never starved (0 = never)." },
    { .name = "durable", .kind = OPT_ENUM, AT(bd_route_conf, durable),
      .def = "no", .names = no_yes_names,
      .help = "yes: SENDs to this route are spooled and synced before "
              "ACCEPTED (at least once across crashes)." },
    { .name = "metrics_keys", .kind = OPT_ENUM,
      AT(bd_route_conf, metrics_keys), .def = "no", .names = no_yes_names,
      .help = "yes: the metrics endpoint also reports this route's keys one "
              "by one (label key)." },
    { .name = NULL },
};

_Static_assert(sizeof(daemon_opts) / sizeof(daemon_opts[0]) <= MAX_OPTS + 1 &&
               sizeof(route_opts) / sizeof(route_opts[0]) <= MAX_OPTS + 1 &&
               MAX_OPTS <= 32, "grow MAX_OPTS (and sec_state.bad)");

/* Cross-checks within one section: lo <= hi, or lo < hi when strict. */
struct cross {
    const char *lo, *hi;
    bool strict;
};

static const struct cross daemon_cross[] = {
    { "conn_out_soft", "conn_out_hard", true },
};

static const struct cross route_cross[] = {
    { "min_items", "max_items", false },
    { "retry_base_ms", "retry_cap_ms", false },
};

static const struct cross sink_cross[] = {
    { "restart_base_ms", "restart_cap_ms", false },
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* ---- parse state ---- */

enum sec_kind {
    SEC_NONE,               /* before the first header */
    SEC_SKIP,               /* a bad or duplicate header: keys ignored */
    SEC_DAEMON,
    SEC_SINK,
    SEC_ROUTE,
};

struct sec_state {
    int line;               /* line of the [header]; 0 = none */
    int opt_line[MAX_OPTS]; /* line each table option was set on; 0 = default */
    uint32_t bad;           /* bit i: option i had a bad value */
    int *kv_line;           /* [sink.*]: line of each kv entry */
};

struct err_line {
    int line;               /* 0 = about the whole file */
    char *text;             /* "path:line: ...\n" */
};

struct parse {
    struct bd_config *cfg;
    const char *path;       /* for error lines */
    FILE *fp;               /* the source: a file ... */
    const char *str;        /* ... or a string */
    int lineno;             /* line last handed to inih */
    int pending;            /* key line inih has not passed to the handler */
    enum sec_kind kind;     /* current section */
    size_t idx;             /* its index in cfg->sinks or cfg->routes */
    char sect[RAW_LINE];    /* its name as written, for messages */
    struct sec_state daemon;
    struct sec_state *sink_st;  /* parallel to cfg->sinks */
    struct sec_state *route_st; /* parallel to cfg->routes */
    struct err_line *errs;
    size_t nerrs;
    size_t ndropped;        /* errors past MAX_ERRORS */
    bool oom;
    int read_errno;         /* nonzero after a read error */
};

/* Returns a new string (free with bd_free), or NULL when memory is short. */
static char *xvasprintf(const char *fmt, va_list ap)
{
    va_list ap2;
    char *s;
    int n;

    va_copy(ap2, ap);
    n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return NULL;
    s = bd_malloc((size_t)n + 1);
    if (s != NULL)
        vsnprintf(s, (size_t)n + 1, fmt, ap);
    return s;
}

static char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *xasprintf(const char *fmt, ...)
{
    va_list ap;
    char *s;

    va_start(ap, fmt);
    s = xvasprintf(fmt, ap);
    va_end(ap);
    return s;
}

/*
 * Record "path:line: [sect] key: message". sect and key may be NULL;
 * line 0 leaves out the line number.
 */
static void add_err(struct parse *st, int line, const char *sect,
                    const char *key, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void add_err(struct parse *st, int line, const char *sect,
                    const char *key, const char *fmt, ...)
{
    struct err_line *e;
    char lbuf[16] = "";
    char *msg, *text;
    va_list ap;

    if (st->oom)
        return;
    if (st->nerrs == MAX_ERRORS) {
        st->ndropped++;
        return;
    }
    va_start(ap, fmt);
    msg = xvasprintf(fmt, ap);
    va_end(ap);
    if (msg == NULL)
        goto out_oom;
    if (line > 0)
        snprintf(lbuf, sizeof(lbuf), ":%d", line);
    text = xasprintf("%s%s: %s%s%s%s%s%s%s\n", st->path, lbuf,
                     sect ? "[" : "", sect ? sect : "", sect ? "]" : "",
                     sect && key ? " " : "", key ? key : "",
                     sect || key ? ": " : "", msg);
    bd_free(msg);
    if (text == NULL)
        goto out_oom;
    e = bd_realloc(st->errs, (st->nerrs + 1) * sizeof(*e));
    if (e == NULL) {
        bd_free(text);
        goto out_oom;
    }
    st->errs = e;
    e[st->nerrs].line = line;
    e[st->nerrs].text = text;
    st->nerrs++;
    return;
out_oom:
    st->oom = true;
}

static bool has_err_at(const struct parse *st, int line)
{
    for (size_t i = 0; i < st->nerrs; i++)
        if (st->errs[i].line == line)
            return true;
    return false;
}

/* Grow arr (n elements of size elem) by one zeroed element. Returns the
 * new array, or NULL with st->oom set (arr is then unchanged). */
static void *grow(struct parse *st, void *arr, size_t n, size_t elem)
{
    char *p = bd_realloc(arr, (n + 1) * elem);

    if (p == NULL) {
        st->oom = true;
        return NULL;
    }
    memset(p + n * elem, 0, elem);
    return p;
}

/* ---- values, once per kind ---- */

static const struct opt *find_opt(const struct opt *opts, const char *name)
{
    for (; opts->name != NULL; opts++)
        if (strcmp(opts->name, name) == 0)
            return opts;
    return NULL;
}

static uint64_t get_num(const void *base, const struct opt *o)
{
    const char *p = (const char *)base + o->off;

    if (o->kind == OPT_ENUM)
        return (uint64_t)*(const int *)p;
    if (o->width == sizeof(uint32_t))
        return *(const uint32_t *)p;
    return *(const uint64_t *)p;
}

static void put_num(void *base, const struct opt *o, uint64_t v)
{
    char *p = (char *)base + o->off;

    if (o->kind == OPT_ENUM)
        *(int *)p = (int)v;
    else if (o->width == sizeof(uint32_t))
        *(uint32_t *)p = (uint32_t)v;
    else
        *(uint64_t *)p = v;
}

/* The value as it would be written in a file: sizes with the largest
 * exact suffix, modes in octal, enums by name. */
static void fmt_num(const struct opt *o, uint64_t v, char *buf, size_t len)
{
    static const char *const suffix[] = { "", "K", "M", "G" };
    size_t s = 0;

    switch (o->kind) {
    case OPT_SIZE:
        while (s < 3 && v != 0 && v % 1024 == 0) {
            v /= 1024;
            s++;
        }
        snprintf(buf, len, "%" PRIu64 "%s", v, suffix[s]);
        break;
    case OPT_OCTAL:
        snprintf(buf, len, "%04" PRIo64, v);
        break;
    case OPT_ENUM:
        snprintf(buf, len, "%s", o->names[v]);
        break;
    default:
        snprintf(buf, len, "%" PRIu64, v);
        break;
    }
}

/* Digits in the kind's base, then (sizes) one of K/M/G; nothing else. */
static const char *parse_number(const struct opt *o, const char *s,
                                uint64_t *out)
{
    unsigned base = o->kind == OPT_OCTAL ? 8 : 10;
    const char *bad = o->kind == OPT_OCTAL ? "not an octal number"
                    : o->kind == OPT_SIZE
                    ? "not a size (an integer, optionally with K, M or G)"
                    : "not an integer";
    uint64_t v = 0, mul = 1;

    /* Below every option's minimum: report the range, as for any
     * number out of it (the rest must still be a number). */
    if (*s == '-' && s[1] != '-' && s[1] != '+')
        return parse_number(o, s + 1, out) ?: msg_range;
    if (*s == '+')
        return "a sign is not allowed";
    if (!isdigit((unsigned char)*s))
        return bad;
    for (; isdigit((unsigned char)*s); s++) {
        unsigned d = (unsigned)(*s - '0');

        if (d >= base)
            return bad;
        if (v > (UINT64_MAX - d) / base)
            return "number too large";
        v = v * base + d;
    }
    if (o->kind == OPT_SIZE && isalpha((unsigned char)*s)) {
        switch (*s) {
        case 'K': case 'k': mul = KIB; break;
        case 'M': case 'm': mul = MIB; break;
        case 'G': case 'g': mul = GIB; break;
        default: mul = 0; break;
        }
        if (mul == 0 || s[1] != '\0')
            return "bad size suffix (use K, M or G)";
        s++;
    }
    if (*s != '\0')
        return bad;
    if (v > UINT64_MAX / mul)
        return "number too large";
    *out = v * mul;
    return NULL;
}

/* Validate value for o; numbers and enums come back in *num. Returns
 * NULL, or why the value is bad (a static string). */
static const char *opt_parse(const struct opt *o, const char *value,
                             uint64_t *num)
{
    const char *why;

    if (*value == '\0')
        return "empty value";
    switch (o->kind) {
    case OPT_STR:
        return o->check ? o->check(value) : NULL;
    case OPT_ENUM:
        for (size_t i = 0; o->names[i] != NULL; i++) {
            if (strcmp(o->names[i], value) == 0) {
                *num = i;
                return NULL;
            }
        }
        return msg_enum;
    default:
        why = parse_number(o, value, num);
        if (why == NULL && (*num < o->min || *num > o->max))
            why = msg_range;
        return why;
    }
}

/* Store a value opt_parse accepted. Returns 0, or -1 (st->oom). */
static int opt_store(struct parse *st, const struct opt *o, void *base,
                     const char *value, uint64_t num)
{
    char **field;
    char *copy;

    if (o->flags & OPT_NOSTORE)
        return 0;
    if (o->kind != OPT_STR) {
        put_num(base, o, num);
        return 0;
    }
    copy = bd_strdup(value);
    if (copy == NULL) {
        st->oom = true;
        return -1;
    }
    field = (char **)((char *)base + o->off);
    bd_free(*field);
    *field = copy;
    return 0;
}

static void apply_defaults(struct parse *st, const struct opt *opts,
                           void *base)
{
    uint64_t num = 0;

    for (const struct opt *o = opts; o->name != NULL && !st->oom; o++) {
        if (o->def == NULL || (o->flags & OPT_NOSTORE))
            continue;
        if (opt_parse(o, o->def, &num) != NULL) {
            add_err(st, 0, NULL, o->name, "bad built-in default \"%s\"", o->def);
            continue;
        }
        opt_store(st, o, base, o->def, num);
    }
}

/* Report why value was refused, with bounds or allowed names. */
static void report_value(struct parse *st, const struct opt *o,
                         const char *sect, const char *value, const char *why)
{
    char lo[32], hi[32], names[128] = "";
    size_t len = 0;

    if (why == msg_range) {
        fmt_num(o, o->min, lo, sizeof(lo));
        fmt_num(o, o->max, hi, sizeof(hi));
        add_err(st, st->lineno, sect, o->name, "\"%s\": out of range (%s..%s)",
                value, lo, hi);
    } else if (why == msg_enum) {
        for (size_t i = 0; o->names[i] != NULL && len < sizeof(names); i++)
            len += (size_t)snprintf(names + len, sizeof(names) - len, "%s%s",
                                    i ? ", " : "", o->names[i]);
        add_err(st, st->lineno, sect, o->name, "\"%s\": must be one of %s",
                value, names);
    } else {
        add_err(st, st->lineno, sect, o->name, "\"%s\": %s", value, why);
    }
}

/* One "key = value" line for a table option of the current section. */
static void set_option(struct parse *st, const struct opt *opts,
                       const struct opt *o, struct sec_state *ss, void *base,
                       const char *value)
{
    size_t i = (size_t)(o - opts);
    uint64_t num = 0;
    const char *why;

    if (ss->opt_line[i] != 0) {
        add_err(st, st->lineno, st->sect, o->name,
                "duplicate key (first set on line %d)", ss->opt_line[i]);
        return;
    }
    ss->opt_line[i] = st->lineno;
    why = opt_parse(o, value, &num);
    if (why != NULL) {
        ss->bad |= 1u << i;
        report_value(st, o, st->sect, value, why);
        return;
    }
    opt_store(st, o, base, value, num);
}

/* ---- sections ---- */

/* 1..64 of [A-Za-z0-9_.-] */
static bool valid_name(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > NAME_MAX_LEN)
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("_.-", *s))
            return false;
    return true;
}

static void begin_daemon(struct parse *st)
{
    if (st->daemon.line != 0) {
        add_err(st, st->lineno, st->sect, NULL,
                "duplicate section (first on line %d)", st->daemon.line);
        return;
    }
    st->daemon.line = st->lineno;
    st->kind = SEC_DAEMON;
}

static void begin_sink(struct parse *st, const char *name)
{
    struct bd_config *cfg = st->cfg;
    struct bd_sink_conf *sinks;
    struct sec_state *ss;
    size_t n = cfg->nsinks;

    if (!valid_name(name)) {
        add_err(st, st->lineno, st->sect, NULL,
                "bad sink name (1 to 64 of A-Z a-z 0-9 _ . -)");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (strcmp(cfg->sinks[i].name, name) == 0) {
            add_err(st, st->lineno, st->sect, NULL,
                    "duplicate section (first on line %d)", cfg->sinks[i].line);
            return;
        }
    }
    if ((sinks = grow(st, cfg->sinks, n, sizeof(*sinks))) == NULL)
        return;
    cfg->sinks = sinks;
    if ((ss = grow(st, st->sink_st, n, sizeof(*ss))) == NULL)
        return;
    st->sink_st = ss;
    if ((sinks[n].name = bd_strdup(name)) == NULL) {
        st->oom = true;
        return;
    }
    sinks[n].line = ss[n].line = st->lineno;
    cfg->nsinks++;
    apply_defaults(st, sink_opts, &sinks[n]);
    st->kind = SEC_SINK;
    st->idx = n;
}

static void begin_route(struct parse *st, const char *name)
{
    struct bd_config *cfg = st->cfg;
    struct bd_route_conf *routes;
    struct sec_state *ss;
    size_t n = cfg->nroutes;

    if (!valid_name(name)) {
        add_err(st, st->lineno, st->sect, NULL,
                "bad route name (1 to 64 of A-Z a-z 0-9 _ . -)");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (strcmp(cfg->routes[i].name, name) == 0) {
            add_err(st, st->lineno, st->sect, NULL,
                    "duplicate section (first on line %d)", cfg->routes[i].line);
            return;
        }
    }
    if ((routes = grow(st, cfg->routes, n, sizeof(*routes))) == NULL)
        return;
    cfg->routes = routes;
    if ((ss = grow(st, st->route_st, n, sizeof(*ss))) == NULL)
        return;
    st->route_st = ss;
    if ((routes[n].name = bd_strdup(name)) == NULL) {
        st->oom = true;
        return;
    }
    routes[n].line = ss[n].line = st->lineno;
    cfg->nroutes++;
    apply_defaults(st, route_opts, &routes[n]);
    st->kind = SEC_ROUTE;
    st->idx = n;
}

/*
 * A "[...]" line (trimmed). Finds the ']' the way inih does (a ';' after
 * whitespace starts a comment), then opens the section. On any problem
 * the section's keys are skipped, so they are not filed under the
 * previous section.
 */
static void begin_section(struct parse *st, char *s)
{
    char *end = NULL, *name, *rest;
    bool was_space = false;

    st->kind = SEC_SKIP;
    for (char *p = s + 1; *p; p++) {
        if (*p == ']') {
            end = p;
            break;
        }
        if (was_space && *p == ';')
            break;
        was_space = isspace((unsigned char)*p);
    }
    if (end == NULL) {
        add_err(st, st->lineno, NULL, NULL,
                "syntax error: section header without ']'");
        return;
    }
    for (rest = end + 1; isspace((unsigned char)*rest); rest++)
        ;
    if (*rest != '\0' && *rest != ';' && *rest != '#') {
        add_err(st, st->lineno, NULL, NULL, "syntax error: text after ']'");
        return;
    }
    *end = '\0';
    for (name = s + 1; isspace((unsigned char)*name); name++)
        ;
    while (end > name && isspace((unsigned char)end[-1]))
        *--end = '\0';
    snprintf(st->sect, sizeof(st->sect), "%s", name);

    if (strcmp(name, "daemon") == 0)
        begin_daemon(st);
    else if (strncmp(name, "sink.", 5) == 0)
        begin_sink(st, name + 5);
    else if (strncmp(name, "route.", 6) == 0)
        begin_route(st, name + 6);
    else
        add_err(st, st->lineno, st->sect, NULL,
                "unknown section (expected [daemon], [sink.NAME] or [route.NAME])");
}

/* ---- keys ---- */

static void key_sink(struct parse *st, const char *name, const char *value)
{
    struct bd_sink_conf *sc = &st->cfg->sinks[st->idx];
    struct sec_state *ss = &st->sink_st[st->idx];
    const struct opt *o = find_opt(sink_opts, name);
    struct batchd_kv *kv;
    char *k, *v;
    int *lines;

    if (o != NULL) {
        set_option(st, sink_opts, o, ss, sc, value);
        return;
    }
    for (size_t i = 0; i < sc->nkv; i++) {
        if (strcmp(sc->kv[i].key, name) == 0) {
            add_err(st, st->lineno, st->sect, name,
                    "duplicate key (first set on line %d)", ss->kv_line[i]);
            return;
        }
    }
    if ((kv = grow(st, sc->kv, sc->nkv, sizeof(*kv))) == NULL)
        return;
    sc->kv = kv;
    if ((lines = grow(st, ss->kv_line, sc->nkv, sizeof(*lines))) == NULL)
        return;
    ss->kv_line = lines;
    k = bd_strdup(name);
    v = bd_strdup(value);
    if (k == NULL || v == NULL) {
        bd_free(k);
        bd_free(v);
        st->oom = true;
        return;
    }
    kv[sc->nkv].key = k;
    kv[sc->nkv].value = v;
    lines[sc->nkv] = st->lineno;
    sc->nkv++;
}

static void key_table(struct parse *st, const struct opt *opts,
                      struct sec_state *ss, void *base, const char *name,
                      const char *value)
{
    const struct opt *o = find_opt(opts, name);

    if (o == NULL)
        add_err(st, st->lineno, st->sect, name, "unknown key");
    else
        set_option(st, opts, o, ss, base, value);
}

/*
 * inih calls this for each "key = value" line (section is inih's copy,
 * which may be truncated: ours is in st). Always returns 1: every
 * problem is recorded by us, so inih's return value only tells of
 * lines it could not parse.
 */
static int handler_cb(void *user, const char *section, const char *name,
                      const char *value)
{
    struct parse *st = user;

    (void)section;
    st->pending = 0;
    if (st->oom)
        return 1;
    if (value == NULL)
        value = "";
    if (*name == '\0') {
        add_err(st, st->lineno, NULL, NULL,
                "syntax error: no key name before '='");
        return 1;
    }
    switch (st->kind) {
    case SEC_NONE:
        add_err(st, st->lineno, NULL, name,
                "key outside any section (put it under [daemon], [sink.NAME] or [route.NAME])");
        break;
    case SEC_SKIP:
        break;
    case SEC_DAEMON:
        key_table(st, daemon_opts, &st->daemon, st->cfg, name, value);
        break;
    case SEC_SINK:
        key_sink(st, name, value);
        break;
    case SEC_ROUTE:
        key_table(st, route_opts, &st->route_st[st->idx],
                  &st->cfg->routes[st->idx], name, value);
        break;
    }
    return 1;
}

/* ---- the reader ---- */

static int src_getc(struct parse *st)
{
    if (st->fp != NULL)
        return getc(st->fp);
    if (*st->str == '\0')
        return EOF;
    return (unsigned char)*st->str++;
}

/* A key line inih did not hand to the handler had no '=' or ':'. */
static void check_pending(struct parse *st)
{
    if (st->pending == 0)
        return;
    add_err(st, st->pending, NULL, NULL,
            "syntax error: expected \"key = value\", [section] or a comment");
    st->pending = 0;
}

/*
 * inih's fgets-like reader: one physical line per call, trimmed, so that
 * inih counts lines as we do. Leading whitespace is dropped, so an
 * indented line is never taken as a continuation of the previous value.
 */
static char *reader_cb(char *buf, int num, void *user)
{
    struct parse *st = user;
    char raw[RAW_LINE], *s, *e;
    size_t len = 0, total = 0;
    bool nul = false;
    int c;

    check_pending(st);
    if (st->oom)
        return NULL;
    while ((c = src_getc(st)) != EOF && c != '\n') {
        if (c == '\0')
            nul = true;
        if (len < sizeof(raw) - 1)
            raw[len++] = (char)c;
        total++;
    }
    if (c == EOF && total == 0) {
        if (st->fp != NULL && ferror(st->fp))
            st->read_errno = errno ? errno : EIO;
        return NULL;
    }
    raw[len] = '\0';
    st->lineno++;
    s = raw;
    if (st->lineno == 1 && len >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0)
        s += 3;
    while (isspace((unsigned char)*s))
        s++;
    for (e = s + strlen(s); e > s && isspace((unsigned char)e[-1]); e--)
        ;
    *e = '\0';

    buf[0] = '\0';
    if (nul) {
        add_err(st, st->lineno, NULL, NULL, "NUL byte in line");
    } else if (total > len || e - s > num - 1) {
        add_err(st, st->lineno, NULL, NULL,
                "line too long (more than %d characters)", num - 1);
        if (*s == '[')
            st->kind = SEC_SKIP;
    } else {
        memcpy(buf, s, (size_t)(e - s) + 1);
        if (*s == '[')
            begin_section(st, s);       /* cuts up s, not buf */
        else if (*s != '\0' && *s != ';' && *s != '#')
            st->pending = st->lineno;
    }
    return buf;
}

/* ---- after the whole file ---- */

static void check_required(struct parse *st, const struct opt *opts,
                           const struct sec_state *ss, const char *sect)
{
    for (const struct opt *o = opts; o->name != NULL; o++)
        if ((o->flags & OPT_REQUIRED) && ss->opt_line[o - opts] == 0)
            add_err(st, ss->line, sect, o->name, "required key is missing");
}

/* Report a pair that breaks its rule on the line set last. */
static void check_cross(struct parse *st, const struct cross *c, size_t n,
                        const struct opt *opts, const struct sec_state *ss,
                        const void *base, const char *sect)
{
    for (size_t i = 0; i < n; i++, c++) {
        const struct opt *lo = find_opt(opts, c->lo), *hi = find_opt(opts, c->hi);
        size_t il = (size_t)(lo - opts), ih = (size_t)(hi - opts);
        uint64_t vl = get_num(base, lo), vh = get_num(base, hi);
        char a[32], b[32];

        if ((ss->bad & (1u << il | 1u << ih)) || (c->strict ? vl < vh : vl <= vh))
            continue;
        fmt_num(lo, vl, a, sizeof(a));
        fmt_num(hi, vh, b, sizeof(b));
        if (ss->opt_line[il] > ss->opt_line[ih])
            add_err(st, ss->opt_line[il], sect, lo->name, "%s is %s %s (%s)", a,
                    c->strict ? "not less than" : "more than", hi->name, b);
        else
            add_err(st, ss->opt_line[ih] ? ss->opt_line[ih] : ss->line, sect,
                    hi->name, "%s is %s %s (%s)", b,
                    c->strict ? "not more than" : "less than", lo->name, a);
    }
}

static void finish(struct parse *st)
{
    struct bd_config *cfg = st->cfg;
    char sect[NAME_MAX_LEN + 16];

    check_pending(st);
    check_cross(st, daemon_cross, NELEM(daemon_cross), daemon_opts,
                &st->daemon, cfg, "daemon");
    for (size_t i = 0; i < cfg->nsinks; i++) {
        snprintf(sect, sizeof(sect), "sink.%s", cfg->sinks[i].name);
        check_required(st, sink_opts, &st->sink_st[i], sect);
        check_cross(st, sink_cross, NELEM(sink_cross), sink_opts,
                    &st->sink_st[i], &cfg->sinks[i], sect);
    }
    for (size_t i = 0; i < cfg->nroutes; i++) {
        struct bd_route_conf *r = &cfg->routes[i];
        const struct sec_state *ss = &st->route_st[i];
        size_t j;

        snprintf(sect, sizeof(sect), "route.%s", r->name);
        check_required(st, route_opts, ss, sect);
        if (r->sink != NULL) {
            for (j = 0; j < cfg->nsinks; j++)
                if (strcmp(cfg->sinks[j].name, r->sink) == 0)
                    break;
            if (j == cfg->nsinks)
                add_err(st, r->line, sect, "sink",
                        "unknown sink \"%s\" (no [sink.%s] section)", r->sink,
                        r->sink);
            r->sink_idx = j;
        }
        check_cross(st, route_cross, NELEM(route_cross), route_opts, ss, r,
                    sect);
    }
    if (cfg->nsinks == 0)
        add_err(st, 0, NULL, NULL, "no [sink.NAME] section (at least one is required)");
    if (cfg->nroutes == 0)
        add_err(st, 0, NULL, NULL, "no [route.NAME] section (at least one is required)");
}

/* All error lines in line order (whole-file ones last), as one string. */
static char *join_errors(struct parse *st)
{
    char *out, *tail = NULL, *p;
    size_t total = 0;

    if (st->oom)
        return xasprintf("%s: out of memory\n", st->path);
    for (size_t i = 1; i < st->nerrs; i++) {       /* stable insertion sort */
        struct err_line e = st->errs[i];
        int key = e.line ? e.line : INT_MAX;
        size_t j = i;

        for (; j > 0; j--) {
            int prev = st->errs[j - 1].line ? st->errs[j - 1].line : INT_MAX;
            if (prev <= key)
                break;
            st->errs[j] = st->errs[j - 1];
        }
        st->errs[j] = e;
    }
    if (st->ndropped != 0) {
        tail = xasprintf("%s: %zu more errors not shown\n", st->path, st->ndropped);
        if (tail == NULL)
            return NULL;
        total += strlen(tail);
    }
    for (size_t i = 0; i < st->nerrs; i++)
        total += strlen(st->errs[i].text);
    out = p = bd_malloc(total + 1);
    if (out != NULL) {
        for (size_t i = 0; i < st->nerrs; i++)
            p = stpcpy(p, st->errs[i].text);
        stpcpy(p, tail ? tail : "");
    }
    bd_free(tail);
    return out;
}

static void parse_destroy(struct parse *st)
{
    for (size_t i = 0; st->sink_st && i < st->cfg->nsinks; i++)
        bd_free(st->sink_st[i].kv_line);
    bd_free(st->sink_st);
    bd_free(st->route_st);
    for (size_t i = 0; i < st->nerrs; i++)
        bd_free(st->errs[i].text);
    bd_free(st->errs);
}

/* The source is set in st; path and errs as in bd_config_load. */
static struct bd_config *load(struct parse *st, char **errs)
{
    struct bd_config *cfg;
    int rc;

    st->cfg = cfg = bd_calloc(1, sizeof(*cfg));
    if (cfg == NULL) {
        *errs = xasprintf("%s: out of memory\n", st->path);
        return NULL;
    }
    if ((cfg->path = bd_strdup(st->path)) == NULL)
        st->oom = true;
    apply_defaults(st, daemon_opts, cfg);
    if (!st->oom) {
        rc = ini_parse_stream(reader_cb, st, handler_cb, st);
        if (rc == -2)
            st->oom = true;
        else if (rc > 0 && !has_err_at(st, rc))
            add_err(st, rc, NULL, NULL, "syntax error");
    }
    if (st->read_errno != 0)
        add_err(st, 0, NULL, NULL, "read error: %s", strerror(st->read_errno));
    if (!st->oom)
        finish(st);
    if (st->oom || st->nerrs != 0 || st->ndropped != 0) {
        *errs = join_errors(st);
        parse_destroy(st);
        bd_config_free(cfg);
        return NULL;
    }
    parse_destroy(st);
    return cfg;
}

struct bd_config *bd_config_load(const char *path, char **errs)
{
    struct parse st = { .path = path };
    struct bd_config *cfg;
    char *dummy;

    if (errs == NULL)
        errs = &dummy;
    *errs = NULL;
    st.fp = fopen(path, "re");
    if (st.fp == NULL) {
        int e = errno;

        *errs = xasprintf("%s: cannot open: %s\n", path, strerror(e));
        if (errs == &dummy)
            bd_free(dummy);
        return NULL;
    }
    cfg = load(&st, errs);
    fclose(st.fp);
    if (errs == &dummy)
        bd_free(dummy);
    return cfg;
}

struct bd_config *bd_config_load_string(const char *text, const char *name,
                                        char **errs)
{
    struct parse st = { .path = name, .str = text };
    struct bd_config *cfg;
    char *dummy;

    if (errs == NULL)
        errs = &dummy;
    *errs = NULL;
    cfg = load(&st, errs);
    if (errs == &dummy)
        bd_free(dummy);
    return cfg;
}

static void free_strings(const struct opt *opts, void *base)
{
    for (const struct opt *o = opts; o->name != NULL; o++)
        if (o->kind == OPT_STR && !(o->flags & OPT_NOSTORE))
            bd_free(*(char **)((char *)base + o->off));
}

void bd_config_free(struct bd_config *cfg)
{
    if (cfg == NULL)
        return;
    for (size_t i = 0; i < cfg->nsinks; i++) {
        struct bd_sink_conf *sc = &cfg->sinks[i];

        for (size_t j = 0; j < sc->nkv; j++) {
            bd_free((char *)sc->kv[j].key);
            bd_free((char *)sc->kv[j].value);
        }
        bd_free(sc->kv);
        bd_free(sc->name);
        free_strings(sink_opts, sc);
    }
    bd_free(cfg->sinks);
    for (size_t i = 0; i < cfg->nroutes; i++) {
        bd_free(cfg->routes[i].name);
        free_strings(route_opts, &cfg->routes[i]);
    }
    bd_free(cfg->routes);
    free_strings(daemon_opts, cfg);
    bd_free(cfg->path);
    bd_free(cfg);
}

/* ---- --check-config ---- */

static void print_opts(FILE *out, const struct opt *opts, const void *base)
{
    char buf[32];

    for (const struct opt *o = opts; o->name != NULL; o++) {
        if (o->kind == OPT_STR) {
            const char *v = (o->flags & OPT_NOSTORE) ? o->def
                          : *(char *const *)((const char *)base + o->off);
            if (v == NULL)
                fprintf(out, "# %s is not set\n", o->name);
            else
                fprintf(out, "%s = %s\n", o->name, v);
        } else {
            fmt_num(o, get_num(base, o), buf, sizeof(buf));
            fprintf(out, "%s = %s\n", o->name, buf);
        }
    }
}

int bd_config_print(const struct bd_config *cfg, FILE *out)
{
    fprintf(out, "# batchd effective configuration (from %s)\n[daemon]\n",
            cfg->path);
    print_opts(out, daemon_opts, cfg);
    for (size_t i = 0; i < cfg->nsinks; i++) {
        const struct bd_sink_conf *sc = &cfg->sinks[i];

        fprintf(out, "\n[sink.%s]\n", sc->name);
        print_opts(out, sink_opts, sc);
        for (size_t j = 0; j < sc->nkv; j++)
            fprintf(out, "%s = %s\n", sc->kv[j].key, sc->kv[j].value);
    }
    for (size_t i = 0; i < cfg->nroutes; i++) {
        fprintf(out, "\n[route.%s]\n", cfg->routes[i].name);
        print_opts(out, route_opts, &cfg->routes[i]);
    }
    return ferror(out) ? -1 : 0;
}

const char *bd_policy_name(int policy)
{
    if (policy < BD_POLICY_IMMEDIATE || policy > BD_POLICY_BALANCED)
        return "unknown";
    return policy_names[policy];
}

int bd_policy_parse(const char *s)
{
    for (int i = 0; policy_names[i] != NULL; i++)
        if (strcmp(policy_names[i], s) == 0)
            return i;
    return -1;
}

/* ---- --dump-options ---- */

static const char *const kind_names[] = {
    [OPT_STR] = "string", [OPT_INT] = "integer", [OPT_SIZE] = "size",
    [OPT_OCTAL] = "mode", [OPT_ENUM] = "enum",
};

/* The allowed values: "lo..hi" for numbers, "a|b" for enums, "-". */
static void fmt_range(const struct opt *o, char *buf, size_t len)
{
    char lo[32], hi[32];
    size_t n = 0;

    if (o->kind == OPT_STR) {
        snprintf(buf, len, "-");
    } else if (o->kind == OPT_ENUM) {
        buf[0] = '\0';
        for (size_t i = 0; o->names[i] != NULL && n < len; i++)
            n += (size_t)snprintf(buf + n, len - n, "%s%s", i ? "|" : "",
                                  o->names[i]);
    } else {
        fmt_num(o, o->min, lo, sizeof(lo));
        fmt_num(o, o->max, hi, sizeof(hi));
        snprintf(buf, len, "%s..%s", lo, hi);
    }
}

static void dump_table(FILE *out, const char *section, const struct opt *opts)
{
    char range[128];

    for (const struct opt *o = opts; o->name != NULL; o++) {
        fmt_range(o, range, sizeof(range));
        fprintf(out, "%s\t%s\t%s\t%s\t%s\t%s\n", section, o->name,
                kind_names[o->kind],
                (o->flags & OPT_REQUIRED) ? "(required)"
                : o->def ? o->def : "(unset)",
                range, o->help ? o->help : "");
    }
}

int bd_config_dump_options(FILE *out)
{
    dump_table(out, "daemon", daemon_opts);
    dump_table(out, "sink", sink_opts);
    dump_table(out, "route", route_opts);
    return ferror(out) ? -1 : 0;
}
