/*
 * pg.h - the postgres sink's internal interfaces, one section per file:
 * options (pg_options.c), the connection pool (pg_pool.c), the COPY path
 * (pg_copy.c), the query path (pg_query.c) and the glue that the daemon
 * calls (pg_sink.c). Nothing here is exported from postgres.so.
 */
#ifndef BD_PG_H
#define BD_PG_H

#include <pthread.h>
#include <stddef.h>

#include <libpq-fe.h>

#include "batchd_sink.h"
#include "pg_errors.h"

/* ---- options (pg_options.c) -------------------------------------------- */

enum pg_mode { PG_MODE_COPY = 0, PG_MODE_QUERY = 1 };
enum pg_format { PG_FORMAT_TEXT = 0, PG_FORMAT_CSV = 1 };
enum pg_match { PG_MATCH_ORDINALITY = 0, PG_MATCH_KEY = 1 };
enum pg_result_kind { PG_RESULT_TEXT = 0, PG_RESULT_JSON = 1 };
enum pg_missing { PG_MISSING_EMPTY = 0, PG_MISSING_FAIL = 1 };

/* The parsed [sink.NAME] section. Strings owned; free with pg_conf_free. */
struct pg_conf {
    char *conninfo;           /* keyword=value string or postgresql:// URI */
    unsigned pool_size;       /* connections at most */
    unsigned pool_wait_ms;    /* acquire waits this long for a free one */
    unsigned connect_timeout; /* s; 0: keep the conninfo's own */
    unsigned statement_timeout_ms; /* SET per connection, 0: server's */
    int mode;                 /* enum pg_mode */
    /* mode = copy */
    char *table;              /* SQL name, inserted as written */
    char *columns;            /* "a, b" inserted as written; NULL: all */
    int format;               /* enum pg_format */
    char *copy_sql;           /* COPY table (columns) FROM STDIN ... */
    /* mode = query */
    char *sql;                /* statement, $1 = payloads as text[] */
    int match;                /* enum pg_match */
    char *key;                /* match = key: the column equal to payloads */
    int result;               /* enum pg_result_kind */
    int missing;              /* enum pg_missing */
};

/* The option table the daemon checks keys against. */
extern const struct batchd_sink_option pg_options[];

/* Fill c from kv (defaults first). Returns 0, or -1 with one line in err
 * naming the option. On error c may hold some strings: pg_conf_free. */
int pg_conf_parse(struct pg_conf *c, const struct batchd_kv *kv, size_t nkv,
                  char *err, size_t errlen);
void pg_conf_free(struct pg_conf *c);

/* ---- connection pool (pg_pool.c) --------------------------------------- */

/* One pooled connection, lent to one batch at a time. */
struct pg_conn {
    PGconn *pg;               /* NULL while closed; owned */
    unsigned long stmt;       /* name suffix of the prepared statement,
                               * 0 when none is prepared on pg */
    unsigned long epoch;      /* pool outages counter when opened */
    int busy;                 /* lent to a batch */
};

struct pg_pool {
    const struct batchd_host *host; /* lent by the daemon until shutdown */
    const struct pg_conf *conf;     /* the sink's, outlives the pool */
    pthread_mutex_t lock;     /* guards everything below */
    pthread_cond_t freed;     /* a connection came back */
    struct pg_conn *conns;    /* conf->pool_size slots; owned */
    int down;                 /* an outage is logged and not over yet */
    unsigned long outages;    /* outages logged so far */
    unsigned long stmts;      /* prepared statements made, for names */
    const char *kw[5];        /* PQconnectdbParams keywords ... */
    const char *val[5];       /* ... and values (borrowed from conf/below) */
    char timeout[16];         /* connect_timeout as text */
};

/* Set up p (no connection yet). Returns 0, or -1 with err. Pair with
 * pg_pool_destroy. */
int pg_pool_init(struct pg_pool *p, const struct batchd_host *host,
                 const struct pg_conf *conf, char *err, size_t errlen);
void pg_pool_destroy(struct pg_pool *p);

/*
 * Open the pool's first connection now: what init (and so --check-config)
 * does to tell an unreachable server early. Returns 0, or -1 with the
 * reason in err (never fatal: the pool connects again when needed).
 * Call before any acquire.
 */
int pg_pool_probe(struct pg_pool *p, char *err, size_t errlen);

/*
 * Lend a connection, opening it when needed; waits up to pool_wait_ms
 * for a free slot. Returns it, or NULL with err (server down, pool busy).
 * Give it back with pg_pool_release.
 */
struct pg_conn *pg_pool_acquire(struct pg_pool *p, char *err, size_t errlen);
void pg_pool_release(struct pg_pool *p, struct pg_conn *c);

/*
 * c failed at the connection level (PQstatus bad): log it once per
 * outage (connections opened before an outage already logged stay
 * quiet). pg_pool_release then drops it.
 */
void pg_pool_lost(struct pg_pool *p, struct pg_conn *c, const char *why);

/* Next prepared statement number (never 0). */
unsigned long pg_pool_next_stmt(struct pg_pool *p);

/* ---- error reports (pg_sink.c) ------------------------------------------- */

/*
 * Describe a failed result as "<message> (<detail>) [SQLSTATE x]" into
 * buf (the connection's message when res is NULL). Returns its class.
 * When the connection itself broke, tells the pool (pg_pool_lost).
 */
int pg_fail_describe(struct pg_pool *p, struct pg_conn *c, const PGresult *res,
                     char *buf, size_t len);

/* The whole-batch verdict for class cls with message msg: RETRY for
 * PG_ERR_RETRY, FAIL otherwise (sets the batch error). */
int pg_batch_verdict(const struct batchd_host *host, struct batchd_batch *b,
                     int cls, const char *msg);

/* ---- COPY path (pg_copy.c) ------------------------------------------------- */

/*
 * NULL when payload (len bytes) is one COPY row of format fmt, else why
 * not (a static string): a raw newline outside CSV quotes would make it
 * two rows and shift every line number after it, "\." ends the data,
 * and NUL bytes cannot be stored.
 */
const char *pg_copy_row_check(int fmt, const char *data, size_t len);

/* Write the batch with COPY; per-item FAIL for rows the server refused.
 * Returns a process() code. */
int pg_copy_run(struct pg_pool *p, struct pg_conn *c, struct batchd_batch *b);

/* ---- query path (pg_query.c) ----------------------------------------------- */

/* Run the statement with the batch as $1; match rows to items. Returns a
 * process() code. */
int pg_query_run(struct pg_pool *p, struct pg_conn *c, struct batchd_batch *b);

/* Prepare conf->sql on c unless it is. Returns 0, or -1 with the
 * server's message in msg and its class in *cls. */
int pg_query_prepare(struct pg_pool *p, struct pg_conn *c, char *msg, size_t len,
                     int *cls);

#endif
