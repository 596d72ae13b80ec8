/*
 * pg_sink.c - the "postgres" sink: the table the daemon loads, and the
 * glue between its calls and the pool, COPY and query paths (pg.h).
 *
 * Blocking: acquire/process/release run on the daemon's sink worker
 * threads. acquire lends a pooled connection (so a key's concurrency
 * slot covers it); process writes the batch with one COPY (mode = copy)
 * or runs one statement with the batch as a text[] (mode = query).
 *
 * init checks every option and tries one connection: a server that
 * cannot be reached is a warning, not an error (the pool connects
 * again for every batch until it is back), so --check-config passes
 * and the daemon starts with the database down.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg.h"

struct pg_state {
    const struct batchd_host *host; /* lent by the daemon until shutdown */
    struct pg_conf conf;      /* the parsed options; owned */
    struct pg_pool pool;      /* the connections; owned */
};

int pg_fail_describe(struct pg_pool *p, struct pg_conn *c, const PGresult *res,
                     char *buf, size_t len)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *prim = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    const char *detail = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL) : NULL;

    if (prim != NULL)
        snprintf(buf, len, "%s%s%s%s [SQLSTATE %s]", prim, detail ? " (" : "",
                 detail ? detail : "", detail ? ")" : "", state ? state : "?");
    else
        snprintf(buf, len, "%s", PQerrorMessage(c->pg));
    pg_one_line(buf);
    if (buf[0] == '\0')
        snprintf(buf, len, "postgres: no result (connection lost)");
    if (PQstatus(c->pg) != CONNECTION_OK) {
        pg_pool_lost(p, c, buf);
        return PG_ERR_RETRY;
    }
    return pg_err_classify(state);
}

int pg_batch_verdict(const struct batchd_host *host, struct batchd_batch *b,
                     int cls, const char *msg)
{
    host->batch_error(b, msg);
    return cls == PG_ERR_RETRY ? BATCHD_SINK_RETRY : BATCHD_SINK_FAIL;
}

/*
 * With the server there at init, try what batches will run: the query
 * prepared (kept on the connection), or the COPY's table and columns
 * read. A failure is a warning, not an error: a migration may create the
 * table after the daemon starts; the batches then say why they fail.
 */
static void check_statement(struct pg_state *st)
{
    struct pg_conn *c = &st->pool.conns[0];
    char msg[1024], sql[1024];
    int cls = PG_ERR_FATAL;

    if (st->conf.mode == PG_MODE_QUERY) {
        if (pg_query_prepare(&st->pool, c, msg, sizeof(msg), &cls) == 0)
            return;
    } else {
        PGresult *r;

        snprintf(sql, sizeof(sql), "SELECT %s FROM %s LIMIT 0",
                 st->conf.columns && st->conf.columns[0] ? st->conf.columns : "*",
                 st->conf.table);
        r = PQexec(c->pg, sql);
        if (PQresultStatus(r) == PGRES_TUPLES_OK) {
            PQclear(r);
            return;
        }
        cls = pg_fail_describe(&st->pool, c, r, msg, sizeof(msg));
        PQclear(r);
    }
    if (cls != PG_ERR_RETRY)
        st->host->log(st->host, BATCHD_LOG_WARN, "%s: %s",
                      st->conf.mode == PG_MODE_QUERY ? "sql does not prepare"
                                                     : "table or columns not readable", msg);
}

static void *pgs_init(const struct batchd_host *host, const struct batchd_kv *kv,
                      size_t nkv, char *err, size_t errlen)
{
    struct pg_state *st = calloc(1, sizeof(*st));
    char why[512];

    if (st == NULL) {
        snprintf(err, errlen, "postgres sink: out of memory");
        return NULL;
    }
    st->host = host;
    if (pg_conf_parse(&st->conf, kv, nkv, err, errlen) != 0)
        goto out_free_conf;
    if (pg_pool_init(&st->pool, host, &st->conf, err, errlen) != 0)
        goto out_free_conf;
    /* A warning only (logged by the pool): the server may come later. */
    if (pg_pool_probe(&st->pool, why, sizeof(why)) == 0) {
        host->log(host, BATCHD_LOG_INFO, "mode %s, pool of %u, server reachable",
                  st->conf.mode == PG_MODE_COPY ? "copy" : "query", st->conf.pool_size);
        check_statement(st);
    }
    return st;

out_free_conf:
    pg_conf_free(&st->conf);
    free(st);
    return NULL;
}

static void *pgs_acquire(void *state, const char *key, size_t key_len,
                         char *err, size_t errlen)
{
    struct pg_state *st = state;

    (void)key;
    (void)key_len;
    return pg_pool_acquire(&st->pool, err, errlen);
}

static void pgs_release(void *state, void *res)
{
    struct pg_state *st = state;

    pg_pool_release(&st->pool, res);
}

static int pgs_process(void *state, void *res, struct batchd_batch *b)
{
    struct pg_state *st = state;

    if (st->conf.mode == PG_MODE_COPY)
        return pg_copy_run(&st->pool, res, b);
    return pg_query_run(&st->pool, res, b);
}

static void pgs_shutdown(void *state)
{
    struct pg_state *st = state;

    pg_pool_destroy(&st->pool);
    pg_conf_free(&st->conf);
    free(st);
}

static const struct batchd_sink pg_sink = {
    .abi_version = BATCHD_SINK_ABI_VERSION,
    .flags = 0,
    .name = "postgres",
    .options = pg_options,
    .init = pgs_init,
    .acquire = pgs_acquire,
    .release = pgs_release,
    .process = pgs_process,
    .shutdown = pgs_shutdown,
};

BATCHD_SINK_EXPORT const struct batchd_sink *batchd_sink_entry(void)
{
    return &pg_sink;
}
