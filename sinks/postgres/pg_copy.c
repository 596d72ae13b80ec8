/*
 * pg_copy.c - the postgres sink's write path: one batch, one COPY FROM
 * STDIN (see pg.h).
 *
 * Each payload is one row in COPY text or CSV format. The COPY runs as
 * its own transaction (autocommit): the server reports it complete only
 * after the commit, and only then are the items answered OK.
 *
 * One bad row must not fail its neighbours. When the server refuses the
 * data (SQLSTATE class 22 or 23) it names the row in the error's CONTEXT
 * ("COPY t, line N"; in CSV, line breaks inside quotes count as lines,
 * the way the server counts them, see pg_csv_breaks): that item gets
 * FAIL with the server's message and
 * the COPY runs again without it, in the same call, until the rest lands
 * (the failed attempts rolled back, so the good rows land exactly once,
 * in one transaction). When the row cannot be told, the whole batch is
 * answered RETRY and the daemon's poison split isolates the item.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg.h"

const char *pg_copy_row_check(int fmt, const char *data, size_t len)
{
    int quoted = 0;

    if (memchr(data, '\0', len) != NULL)
        return "payload holds a NUL byte, which COPY cannot store";
    if (len == 2 && data[0] == '\\' && data[1] == '.')
        return "payload \"\\.\" is COPY's end-of-data marker";
    for (size_t i = 0; i < len; i++) {
        if (fmt == PG_FORMAT_CSV && data[i] == '"')
            quoted = !quoted;   /* "" inside quotes toggles twice */
        else if ((data[i] == '\n' || data[i] == '\r') && !quoted)
            return fmt == PG_FORMAT_CSV
                   ? "payload holds a line break outside quotes: more than one CSV row"
                   : "payload holds a raw line break: write it as \\n in COPY text format";
    }
    if (quoted)
        return "payload has an unterminated CSV quote";
    return NULL;
}

/* The rows of items idx[0..n-1], each followed by '\n', into one new
 * buffer (free with free). NULL when memory is short. */
static char *rows_build(const struct batchd_batch *b, const size_t *idx, size_t n,
                        size_t *outlen)
{
    size_t total = 0, i;
    char *buf, *p;

    for (i = 0; i < n; i++)
        total += b->items[idx[i]].len + 1;
    buf = malloc(total > 0 ? total : 1);
    if (buf == NULL)
        return NULL;
    p = buf;
    for (i = 0; i < n; i++) {
        const struct batchd_item *it = &b->items[idx[i]];

        if (it->len > 0)
            memcpy(p, it->data, it->len);
        p += it->len;
        *p++ = '\n';
    }
    *outlen = total;
    return buf;
}

/*
 * One COPY of the rows idx[0..n-1]. Returns the final result of the
 * statement (PQclear it): PGRES_COMMAND_OK when it committed. NULL when
 * the connection broke before any result.
 */
static PGresult *copy_once(struct pg_pool *p, struct pg_conn *c,
                           const struct batchd_batch *b, const size_t *idx,
                           size_t n, int *oom)
{
    PGresult *r, *last = NULL;
    size_t len = 0;
    char *buf;

    *oom = 0;
    buf = rows_build(b, idx, n, &len);
    if (buf == NULL) {
        *oom = 1;
        return NULL;
    }
    r = PQexec(c->pg, p->conf->copy_sql);
    if (PQresultStatus(r) != PGRES_COPY_IN) {
        free(buf);
        return r;               /* the COPY itself failed (no table, ...) */
    }
    PQclear(r);
    /* The whole batch in as few calls as libpq's int length allows; a
     * failure here surfaces in the results read below. */
    for (size_t off = 0, part; off < len; off += part) {
        part = len - off < (1u << 30) ? len - off : (1u << 30);
        if (PQputCopyData(c->pg, buf + off, (int)part) != 1)
            break;
    }
    (void)PQputCopyEnd(c->pg, NULL);
    free(buf);
    /* Read to the end so that the connection is idle again; keep the
     * first error (or the completion). */
    while ((r = PQgetResult(c->pg)) != NULL) {
        if (last == NULL || (PQresultStatus(last) == PGRES_COMMAND_OK &&
                             PQresultStatus(r) != PGRES_COMMAND_OK)) {
            PQclear(last);
            last = r;
        } else {
            PQclear(r);
        }
    }
    return last;
}

/*
 * The position in idx[0..n-1] of the row that the server's COPY line
 * 'line' (1-based) falls in, or n when none. Text rows are one line each
 * (raw line breaks were refused); CSV rows may hold line breaks in quotes,
 * counted as the server counts them (pg_csv_breaks).
 */
static size_t row_at_line(int fmt, const struct batchd_batch *b, const size_t *idx,
                          size_t n, unsigned long line)
{
    unsigned long start = 1;

    if (fmt != PG_FORMAT_CSV)
        return line >= 1 && line <= n ? (size_t)line - 1 : n;
    for (size_t k = 0; k < n; k++) {
        const struct batchd_item *it = &b->items[idx[k]];
        unsigned long next = start + 1 +
            pg_csv_breaks(it->data ? it->data : "", it->len, k == 0);

        if (line >= start && line < next)
            return k;
        start = next;
    }
    return n;
}

/* Drop idx[k] from idx[0..*n-1], keeping the order. */
static void drop_row(size_t *idx, size_t *n, size_t k)
{
    memmove(&idx[k], &idx[k + 1], (*n - k - 1) * sizeof(*idx));
    (*n)--;
}

/* Refuse rows that cannot be one COPY row; keep the others in idx. */
static size_t precheck(struct pg_pool *p, struct batchd_batch *b, size_t *idx)
{
    size_t n = 0;

    for (size_t i = 0; i < b->nitems; i++) {
        const char *why = pg_copy_row_check(p->conf->format, b->items[i].data
                                            ? b->items[i].data : "", b->items[i].len);

        if (why != NULL)
            p->host->result(b, i, BATCHD_RESULT_FAIL, why, strlen(why));
        else
            idx[n++] = i;
    }
    return n;
}

int pg_copy_run(struct pg_pool *p, struct pg_conn *c, struct batchd_batch *b)
{
    size_t *idx = malloc(b->nitems * sizeof(*idx));
    size_t n;
    char msg[1024];
    int rc = BATCHD_SINK_DONE;

    if (idx == NULL) {
        p->host->batch_error(b, "postgres: out of memory");
        return BATCHD_SINK_RETRY;
    }
    n = precheck(p, b, idx);
    /* Each round either commits or drops one row: at most n + 1 rounds. */
    while (n > 0) {
        int oom;
        PGresult *r = copy_once(p, c, b, idx, n, &oom);
        unsigned long line;
        size_t bad;
        int cls;

        if (oom) {
            p->host->batch_error(b, "postgres: out of memory");
            rc = BATCHD_SINK_RETRY;
            break;
        }
        if (PQresultStatus(r) == PGRES_COMMAND_OK) {
            PQclear(r);
            for (size_t i = 0; i < n; i++)
                p->host->result(b, idx[i], BATCHD_RESULT_OK, "", 0);
            break;
        }
        cls = pg_fail_describe(p, c, r, msg, sizeof(msg));
        line = 0;
        if (r != NULL) {
            const char *ctx = PQresultErrorField(r, PG_DIAG_CONTEXT);

            line = pg_copy_error_line(ctx, ctx ? strlen(ctx) : 0);
        }
        PQclear(r);
        bad = n == 1 ? 0 : row_at_line(p->conf->format, b, idx, n, line);
        if (cls == PG_ERR_DATA && bad < n) {    /* one row left: it is the one */
            p->host->result(b, idx[bad], BATCHD_RESULT_FAIL, msg, strlen(msg));
            drop_row(idx, &n, bad);
            continue;
        }
        /* Row unknown (data error): RETRY, and the daemon's split finds it. */
        rc = pg_batch_verdict(p->host, b, cls == PG_ERR_DATA ? PG_ERR_RETRY : cls, msg);
        break;
    }
    free(idx);
    return rc;
}
