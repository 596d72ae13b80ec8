/*
 * pg_query.c - the postgres sink's query path: the whole batch bound as
 * one text[] parameter ($1) of a statement prepared once per connection,
 * and the rows matched back to items (see pg.h).
 *
 * match = ordinality: the first column is the 1-based index of the item
 * (unnest($1) WITH ORDINALITY); match = key: column 'key' in its text
 * form equals the payload byte for byte (WHERE id = ANY($1::bigint[])).
 * The first row of an item wins; rows that match no item are ignored.
 * Each item gets OK with its row's value: text (the first column that
 * is not the match column; empty when there is none or it is NULL) or
 * json (the row as an object, built with jansson). An item without a row
 * gets OK empty, or FAIL "not found" (missing = fail).
 *
 * The statement runs as its own transaction (autocommit), so its rows
 * are committed when the result arrives.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "pg.h"

#define TEXT_ARRAY_OID 1009

/*
 * The payloads as a text[] literal, {"a","b\"c"}: every element quoted,
 * '"' and '\' escaped; items already answered (done) are "" so that the
 * indexes stay. A new string (free with free), or NULL.
 */
static char *array_literal(const struct batchd_batch *b, const int *done)
{
    size_t total = 3, i, j;
    char *s, *p;

    for (i = 0; i < b->nitems; i++)
        total += 2 * b->items[i].len + 3;
    s = malloc(total);
    if (s == NULL)
        return NULL;
    p = s;
    *p++ = '{';
    for (i = 0; i < b->nitems; i++) {
        const char *d = b->items[i].data;

        if (i > 0)
            *p++ = ',';
        *p++ = '"';
        for (j = 0; !done[i] && j < b->items[i].len; j++) {
            if (d[j] == '"' || d[j] == '\\')
                *p++ = '\\';
            *p++ = d[j];
        }
        *p++ = '"';
    }
    *p++ = '}';
    *p = '\0';
    return s;
}

int pg_query_prepare(struct pg_pool *p, struct pg_conn *c, char *msg, size_t len,
                     int *cls)
{
    static const Oid types[1] = { TEXT_ARRAY_OID };
    unsigned long n;
    char name[32];
    PGresult *r;

    if (c->stmt != 0)
        return 0;
    /* A fresh name each time: a statement that failed half way may still
     * exist on the connection, and names cannot be reused. */
    n = pg_pool_next_stmt(p);
    snprintf(name, sizeof(name), "batchd_%lu", n);
    r = PQprepare(c->pg, name, p->conf->sql, 1, types);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        *cls = pg_fail_describe(p, c, r, msg, len);
        PQclear(r);
        return -1;
    }
    PQclear(r);
    c->stmt = n;
    return 0;
}

/* Items that have a NUL byte (a text parameter cannot carry it) get
 * FAIL; returns how many are left. */
static size_t refuse_nul(struct pg_pool *p, struct batchd_batch *b, int *done)
{
    static const char why[] = "payload holds a NUL byte, which a text parameter cannot carry";
    size_t left = 0;

    for (size_t i = 0; i < b->nitems; i++) {
        if (b->items[i].len > 0 && memchr(b->items[i].data, '\0', b->items[i].len)) {
            p->host->result(b, i, BATCHD_RESULT_FAIL, why, sizeof(why) - 1);
            done[i] = 1;
        } else {
            left++;
        }
    }
    return left;
}

/* ---- matching rows to items ------------------------------------------- */

struct key_ref {
    const char *data;         /* the item's payload, borrowed */
    size_t len;
    size_t item;              /* its index in the batch */
};

static int key_cmp(const void *a, const void *b)
{
    const struct key_ref *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = n > 0 ? memcmp(x->data, y->data, n) : 0;

    if (c != 0)
        return c;
    return x->len < y->len ? -1 : x->len > y->len;
}

/* row_of[i] = first row matching item i (or -1), by the key column. */
static int match_key(const struct batchd_batch *b, const PGresult *r, int col,
                     const int *done, int *row_of)
{
    struct key_ref *refs = malloc(b->nitems * sizeof(*refs));
    size_t n = 0;

    if (refs == NULL)
        return -1;
    for (size_t i = 0; i < b->nitems; i++)
        if (!done[i])
            refs[n++] = (struct key_ref){ .data = b->items[i].data ? b->items[i].data : "",
                                          .len = b->items[i].len, .item = i };
    qsort(refs, n, sizeof(*refs), key_cmp);
    for (int row = 0; row < PQntuples(r); row++) {
        struct key_ref want, *hit;
        size_t lo;

        if (PQgetisnull(r, row, col))
            continue;
        want = (struct key_ref){ .data = PQgetvalue(r, row, col),
                                 .len = (size_t)PQgetlength(r, row, col) };
        hit = bsearch(&want, refs, n, sizeof(*refs), key_cmp);
        if (hit == NULL)
            continue;
        /* Every item with this payload (several clients asked for it). */
        lo = (size_t)(hit - refs);
        while (lo > 0 && key_cmp(&refs[lo - 1], &want) == 0)
            lo--;
        for (; lo < n && key_cmp(&refs[lo], &want) == 0; lo++)
            if (row_of[refs[lo].item] < 0)
                row_of[refs[lo].item] = row;
    }
    free(refs);
    return 0;
}

/* row_of[i] = first row whose column col is i + 1. */
static void match_ordinality(const struct batchd_batch *b, const PGresult *r,
                             int col, int *row_of)
{
    for (int row = 0; row < PQntuples(r); row++) {
        const char *v = PQgetvalue(r, row, col);
        char *end;
        unsigned long long k;

        if (PQgetisnull(r, row, col) || *v < '0' || *v > '9')
            continue;
        k = strtoull(v, &end, 10);
        if (*end == '\0' && k >= 1 && k <= b->nitems && row_of[k - 1] < 0)
            row_of[k - 1] = row;
    }
}

/* ---- values ---------------------------------------------------------------- */

/* One column as JSON: numbers, booleans and json(b) keep their type. */
static json_t *json_cell(const PGresult *r, int row, int col)
{
    const char *v = PQgetvalue(r, row, col);
    json_t *j = NULL;

    if (PQgetisnull(r, row, col))
        return json_null();
    switch (PQftype(r, col)) {
    case 16:                  /* bool */
        return json_boolean(v[0] == 't');
    case 20: case 21: case 23: case 26: case 700: case 701: case 1700:
    case 114: case 3802:      /* ints, floats, numeric, json, jsonb */
        j = json_loads(v, JSON_DECODE_ANY, NULL);  /* NaN stays a string */
        break;
    default:
        break;
    }
    return j != NULL ? j : json_string(v);
}

/* Answer item i with row 'row' of r as a JSON object. */
static void answer_json(struct pg_pool *p, struct batchd_batch *b, size_t i,
                        const PGresult *r, int row)
{
    json_t *o = json_object();
    char *s = NULL;

    for (int col = 0; o != NULL && col < PQnfields(r); col++)
        json_object_set_new(o, PQfname(r, col), json_cell(r, row, col));
    if (o != NULL)
        s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    /* Not RETRY: the statement ran (and may have written) already. */
    if (s == NULL)
        p->host->result(b, i, BATCHD_RESULT_FAIL, "postgres: out of memory for the JSON reply",
                        strlen("postgres: out of memory for the JSON reply"));
    else
        p->host->result(b, i, BATCHD_RESULT_OK, s, strlen(s));
    free(s);
    json_decref(o);
}

/* Answer every item not done from its row (row_of) or as missing. */
static void answer_all(struct pg_pool *p, struct batchd_batch *b, const PGresult *r,
                       int mcol, const int *done, const int *row_of)
{
    static const char nf[] = "not found";
    int vcol = mcol == 0 ? 1 : 0;   /* text: first column not the match one */

    for (size_t i = 0; i < b->nitems; i++) {
        int row = row_of[i];

        if (done[i])
            continue;
        if (row < 0 && p->conf->missing == PG_MISSING_FAIL)
            p->host->result(b, i, BATCHD_RESULT_FAIL, nf, sizeof(nf) - 1);
        else if (row < 0)
            p->host->result(b, i, BATCHD_RESULT_OK, "", 0);
        else if (p->conf->result == PG_RESULT_JSON)
            answer_json(p, b, i, r, row);
        else if (vcol < PQnfields(r) && !PQgetisnull(r, row, vcol))
            p->host->result(b, i, BATCHD_RESULT_OK, PQgetvalue(r, row, vcol),
                            (size_t)PQgetlength(r, row, vcol));
        else
            p->host->result(b, i, BATCHD_RESULT_OK, "", 0);
    }
}

/* Match rows to items and answer them. Returns a process() code. */
static int answer_rows(struct pg_pool *p, struct batchd_batch *b, const PGresult *r,
                       const int *done)
{
    int mcol = 0, *row_of;
    char msg[256];

    if (p->conf->match == PG_MATCH_KEY) {
        char quoted[300];

        /* PQfnumber folds unquoted names to lower case, as SQL does;
         * quote the configured name so that it is taken as written. */
        snprintf(quoted, sizeof(quoted), "\"%s\"", p->conf->key);
        mcol = PQfnumber(r, quoted);
    } else if (PQnfields(r) == 0 && PQntuples(r) == 0) {
        mcol = -1;              /* no rows at all (INSERT without RETURNING) */
    }
    if (p->conf->match == PG_MATCH_KEY && mcol < 0 && PQnfields(r) > 0) {
        snprintf(msg, sizeof(msg), "postgres: the result has no column '%s' (option key)",
                 p->conf->key);
        p->host->batch_error(b, msg);
        return BATCHD_SINK_FAIL;
    }
    row_of = malloc(b->nitems * sizeof(*row_of));
    if (row_of == NULL) {
        p->host->batch_error(b, "postgres: out of memory");
        return BATCHD_SINK_RETRY;
    }
    for (size_t i = 0; i < b->nitems; i++)
        row_of[i] = -1;
    if (mcol >= 0 && p->conf->match == PG_MATCH_KEY) {
        if (match_key(b, r, mcol, done, row_of) != 0) {
            free(row_of);
            p->host->batch_error(b, "postgres: out of memory");
            return BATCHD_SINK_RETRY;
        }
    } else if (mcol >= 0) {
        match_ordinality(b, r, mcol, row_of);
    }
    answer_all(p, b, r, mcol < 0 ? 0 : mcol, done, row_of);
    free(row_of);
    return BATCHD_SINK_DONE;
}

int pg_query_run(struct pg_pool *p, struct pg_conn *c, struct batchd_batch *b)
{
    int *done = calloc(b->nitems, sizeof(*done));
    char msg[1024], name[32], *arr = NULL;
    const char *params[1];
    PGresult *r = NULL;
    int cls, rc;

    if (done == NULL)
        goto out_oom;
    if (refuse_nul(p, b, done) == 0) {
        free(done);
        return BATCHD_SINK_DONE;
    }
    if (pg_query_prepare(p, c, msg, sizeof(msg), &cls) != 0) {
        free(done);
        return pg_batch_verdict(p->host, b, cls, msg);
    }
    arr = array_literal(b, done);
    if (arr == NULL)
        goto out_oom;
    params[0] = arr;
    snprintf(name, sizeof(name), "batchd_%lu", c->stmt);
    r = PQexecPrepared(c->pg, name, 1, params, NULL, NULL, 0);
    free(arr);
    if (PQresultStatus(r) == PGRES_TUPLES_OK || PQresultStatus(r) == PGRES_COMMAND_OK) {
        rc = answer_rows(p, b, r, done);
    } else {
        cls = pg_fail_describe(p, c, r, msg, sizeof(msg));
        /* The plan may be stale (schema changed): prepare again next time. */
        c->stmt = 0;
        /* The item behind a data error cannot be told from one
         * statement: the whole batch gets the FAIL. */
        rc = pg_batch_verdict(p->host, b, cls, msg);
    }
    PQclear(r);
    free(done);
    return rc;

out_oom:
    free(done);
    p->host->batch_error(b, "postgres: out of memory");
    return BATCHD_SINK_RETRY;
}
