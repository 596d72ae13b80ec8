/*
 * config.h - batchd configuration: the option table, the INI loader
 * (inih), --check-config.
 *
 * The file has one [daemon] section, one [sink.NAME] per sink and one
 * [route.NAME] per route (conf/batchd.conf documents every option).
 * Unknown sections and keys in [daemon] and [route.*] are errors; keys
 * in [sink.*] other than plugin/isolation are handed to the sink, which
 * checks them against its own option table when it is loaded.
 */
#ifndef BD_CONFIG_H
#define BD_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "batchd_sink.h"

enum bd_policy {
    BD_POLICY_IMMEDIATE = 0,  /* dispatch whenever a concurrency slot is free */
    BD_POLICY_SIZE = 1,       /* only full batches (and at shutdown) */
    BD_POLICY_DURATION = 2,   /* full batches, or max_delay_us after the first item */
    BD_POLICY_BALANCED = 3,   /* wait for min_items while no key slot is free */
};

enum bd_isolation {
    BD_ISOLATION_INPROC = 0,  /* the plugin runs inside the daemon */
    BD_ISOLATION_PROCESS = 1, /* the plugin runs in a sink-runner child */
};

enum bd_on_timeout {
    BD_ON_TIMEOUT_RETRY = 0,  /* a timed-out call counts as an attempt, retried */
    BD_ON_TIMEOUT_FAIL = 1,   /* its items are answered SINK_TIMEOUT at once */
};

struct bd_sink_conf {
    char *name;               /* from [sink.NAME] */
    char *plugin;             /* a path, or a bare name looked up in sink_dir */
    int line;                 /* line of the section header, for errors */
    int isolation;            /* enum bd_isolation */
    uint32_t restart_base_ms; /* process: first restart backoff after a crash */
    uint32_t restart_cap_ms;  /* process: longest restart backoff */
    uint32_t unhealthy_after; /* process: crashes in a row that mark it unhealthy */
    struct batchd_kv *kv;     /* every other key, in file order; owned */
    size_t nkv;
};

struct bd_route_conf {
    char *name;               /* from [route.NAME] */
    char *match;              /* exact key or fnmatch(3) glob; "*" = default */
    char *sink;               /* name of a [sink.NAME] */
    size_t sink_idx;          /* index into bd_config.sinks, resolved on load */
    int line;                 /* line of the section header */
    int policy;               /* enum bd_policy */
    uint32_t max_items;       /* items per batch, >= 1 */
    uint64_t max_bytes;       /* payload bytes per batch (hard ceiling) */
    uint64_t max_delay_us;    /* from a batch's first item (duration/balanced) */
    uint32_t min_items;       /* balanced: wait for this many while no slot is free */
    uint32_t key_concurrency; /* sink calls in flight per key */
    uint64_t key_max_items;   /* queued items per key */
    uint64_t key_max_bytes;   /* queued payload bytes per key */
    uint32_t deadline_ms;     /* default item deadline, 0 = none; clients may shorten */
    uint32_t max_attempts;    /* sink calls per item, 1 = no retries */
    uint32_t retry_base_ms;   /* first retry backoff (nominal) */
    uint32_t retry_cap_ms;    /* longest retry backoff (nominal) */
    uint32_t delivery_timeout_ms; /* give up retrying this long after accept, 0 = never */
    uint32_t sink_timeout_ms; /* bound on one sink call, 0 = none */
    int on_sink_timeout;      /* enum bd_on_timeout */
    int coalesce_inflight;    /* 1: an item with a dedup_id also joins a
                               * call in flight for it (batch.c, dedup.c) */
    uint32_t priority_aging_ms; /* an item queued this long counts as top
                               * priority (batch.c: lanes), 0 = never */
    int durable;              /* 1: SENDs are spooled to disk before
                               * ACCEPTED (durable.c, spool.c) */
    int metrics_keys;         /* 1: the metrics endpoint labels its keys'
                               * gauges by key name (cardinality: opt-in) */
};

struct bd_config {
    char *path;               /* file it was read from */
    /* [daemon] */
    char *socket;             /* listening socket path */
    uint32_t socket_mode;     /* e.g. 0660 */
    char *socket_group;       /* group name or NULL */
    char *sink_dir;           /* where bare plugin names are found */
    uint32_t max_frame;       /* bytes, largest request frame body */
    uint32_t max_conns;       /* open client connections */
    uint64_t max_queued_items;/* all keys together */
    uint64_t max_queued_bytes;/* all keys together */
    uint32_t max_concurrency; /* sink calls in flight overall (= worker threads) */
    uint32_t shutdown_grace_ms; /* wait for in-flight calls at SIGTERM */
    uint64_t conn_out_soft;   /* stop reading a client above this output backlog */
    uint64_t conn_out_hard;   /* close a client above this output backlog */
    int log_level;            /* enum batchd_log_level */
    uint32_t frame_timeout_ms;/* a started frame must complete within this, 0 = off */
    uint32_t idle_timeout_ms; /* close a connection idle this long, 0 = off */
    uint32_t write_stall_timeout_ms; /* close when pending output stalls this long, 0 = off */
    uint32_t max_bad_requests;/* bad requests in a row before a connection is closed */
    char *allow_uids;         /* comma list of users/uids allowed to connect, or NULL */
    char *allow_gids;         /* comma list of groups/gids allowed to connect, or NULL */
    char *admin_uids;         /* may pause/resume/drain/reload (besides root and us) */
    char *admin_gids;
    char *spool_dir;          /* durable routes' spool, or NULL */
    uint32_t spool_sync_window_us; /* group commit window; 0 = each loop pass */
    uint64_t spool_max_bytes; /* cap on the spool's segment bytes */
    uint64_t spool_segment_bytes; /* a segment is closed past this */
    char *metrics_listen;     /* "HOST:PORT" (loopback) or "unix:/path" of
                               * the Prometheus endpoint; NULL = off */
    struct bd_sink_conf *sinks;
    size_t nsinks;
    struct bd_route_conf *routes; /* in file order: the first match wins */
    size_t nroutes;
};

/*
 * Read and validate the file at path. Returns a new config (free with
 * bd_config_free), or NULL with *errs set to a new string of one or more
 * "path:line: what is wrong" lines (free with bd_free).
 *
 * Every problem in the file is reported, sorted by line, each line ending
 * in '\n'. Problems about one key read "path:line: [section] key: why";
 * problems about the whole file have no line ("path: why"). When memory
 * runs out the only line is "path: out of memory"; if even that string
 * cannot be allocated, NULL is returned with *errs NULL.
 *
 * Lines hold at most 199 characters after trimming (inih's buffer); an
 * indented line is an ordinary line, not a continuation.
 */
struct bd_config *bd_config_load(const char *path, char **errs);

/* Same, from a string; name is used in error lines. For tests. */
struct bd_config *bd_config_load_string(const char *text, const char *name,
                                        char **errs);

/* Frees cfg and everything it owns; NULL is fine. */
void bd_config_free(struct bd_config *cfg);

/*
 * Write the effective configuration (every option, defaults included)
 * to out as an INI file that loads back to the same config. For
 * batchd --check-config. Returns 0, or -1 on a write error.
 */
int bd_config_print(const struct bd_config *cfg, FILE *out);

/*
 * The option table, one row per option: section (daemon, sink, route),
 * name, type, default ("(unset)", "(required)"), range ("lo..hi",
 * "a|b|c" or "-") and help, separated by tabs. For batchd
 * --dump-options, from which man/gen-conf.sh writes batchd.conf(5).
 */
int bd_config_dump_options(FILE *out);

/* The policy's name ("unknown" when out of range), and back; -1 for an
 * unknown name. */
const char *bd_policy_name(int policy);
int bd_policy_parse(const char *s);

#endif
