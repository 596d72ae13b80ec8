/*
 * check_pg.c - the postgres sink against a real PostgreSQL 15 server
 * (tests/pgserver.c), through the real daemon and real client processes.
 *
 * One throwaway server serves the whole suite (main starts and stops it);
 * each test makes its own tables and its own daemon. After a run the test
 * reads the table with libpq: every item got exactly one reply, and the
 * table holds exactly the rows whose items were answered OK.
 *
 * Test cases:
 *   core       COPY rows land exactly; a bad row fails alone; query mode
 *              (key and ordinality matching, json, missing = fail);
 *              isolation = process
 *   failures   server restarted mid-load; server down at daemon start;
 *              a pool of one under key_concurrency 4
 *   malformed  --check-config: a wrong option or value fails naming it,
 *              an unreachable server only warns
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "batchd.h"
#include "helpers.h"
#include "pg_errors.h"
#include "pgserver.h"

static struct bd_pg *pg;      /* the suite's server (main) */

/* ---- SQL from the test ---------------------------------------------------- */

static void quiet(void *arg, const char *msg)
{
    (void)arg;
    (void)msg;
}

/* Run sql (no result wanted) on a fresh connection; asserts success. */
static void sql_exec(const char *sql)
{
    PGconn *c = PQconnectdb(bd_pg_conninfo(pg));
    PGresult *r;

    ck_assert_msg(PQstatus(c) == CONNECTION_OK, "connect: %s", PQerrorMessage(c));
    PQsetNoticeProcessor(c, quiet, NULL);   /* "does not exist, skipping" */
    r = PQexec(c, sql);
    ck_assert_msg(PQresultStatus(r) == PGRES_COMMAND_OK ||
                  PQresultStatus(r) == PGRES_TUPLES_OK, "%s: %s", sql,
                  PQresultErrorMessage(r));
    PQclear(r);
    PQfinish(c);
}

/* counts[id] = rows of table with that id (ids 0..n-1; others fail). */
static void sql_count_ids(const char *table, int *counts, int n)
{
    PGconn *c = PQconnectdb(bd_pg_conninfo(pg));
    char sql[128];
    PGresult *r;

    ck_assert_msg(PQstatus(c) == CONNECTION_OK, "connect: %s", PQerrorMessage(c));
    snprintf(sql, sizeof(sql), "SELECT id FROM %s", table);
    r = PQexec(c, sql);
    ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK, "%s: %s", sql,
                  PQresultErrorMessage(r));
    memset(counts, 0, (size_t)n * sizeof(*counts));
    for (int i = 0; i < PQntuples(r); i++) {
        int id = atoi(PQgetvalue(r, i, 0));

        ck_assert_msg(id >= 0 && id < n, "unexpected id %d in %s", id, table);
        counts[id]++;
    }
    PQclear(r);
    PQfinish(c);
}

/* ---- client processes --------------------------------------------------------- */

#define MAX_ITEMS 8192

/* Shared with the forked clients: what to send and what came back. */
struct load {
    char sock[256];           /* the daemon's socket */
    char key[32];             /* every item's key */
    int clients;              /* processes */
    int per;                  /* items per process */
    int depth;                /* in flight per process */
    int pause_us;             /* between submits, to spread the load */
    int replies[MAX_ITEMS];   /* replies per item (must end at 1) */
    int status[MAX_ITEMS];    /* last status per item */
    char body[MAX_ITEMS][128]; /* first bytes of each reply */
};

/* Item id -> payload: "<id>\tv<id>" (a row of table (id int, v text)). */
static void row_of(int id, char *p, size_t len)
{
    snprintf(p, len, "%d\tv%d", id, id);
}

struct slot {
    struct load *ld;          /* shared */
    int id;                   /* item */
    int *answered;            /* the client's count */
};

static void reply_cb(struct batchd_client *c, const struct batchd_reply *r, void *arg)
{
    struct slot *s = arg;

    (void)c;
    s->ld->replies[s->id]++;
    s->ld->status[s->id] = r ? r->status : -1;
    if (r != NULL && r->data != NULL)
        snprintf(s->ld->body[s->id], sizeof(s->ld->body[0]), "%.*s", (int)r->len,
                 (const char *)r->data);
    (*s->answered)++;
}

/* Send ld->per rows, ld->depth in flight, wait for every reply. */
static int load_client(int idx, void *arg)
{
    struct load *ld = arg;
    struct batchd_client *c = batchd_connect_unix(ld->sock, 10000);
    struct slot *slots = calloc((size_t)ld->per, sizeof(*slots));
    int next = 0, answered = 0;
    double until = bd_test_now_ms() + 90000;

    /* A client process: on failure it exits at once, the OS frees all. */
    if (slots == NULL || batchd_err(c) != BATCHD_ERR_NONE)
        return bd_test_child_fail(idx, "connect: %s", batchd_errstr(c));
    if (bd_test_procs_barrier() != 0) {
        free(slots);
        return bd_test_child_fail(idx, "barrier");
    }
    while (answered < ld->per) {
        while (next < ld->per && next - answered < ld->depth) {
            char p[48];
            int id = idx * ld->per + next;

            slots[next] = (struct slot){ .ld = ld, .id = id, .answered = &answered };
            row_of(id, p, sizeof(p));
            if (batchd_submit_load(c, ld->key, p, strlen(p), NULL, reply_cb,
                                   &slots[next], NULL) != BATCHD_CLIENT_OK)
                return bd_test_child_fail(idx, "submit: %s", batchd_errstr(c));
            next++;
            if (ld->pause_us > 0)
                usleep((useconds_t)ld->pause_us);
        }
        if (batchd_process(c, 100) < 0)
            return bd_test_child_fail(idx, "process: %s", batchd_errstr(c));
        if (bd_test_now_ms() > until)
            return bd_test_child_fail(idx, "%d of %d replies after 90 s", answered, ld->per);
    }
    batchd_free(c);
    free(slots);
    return 0;
}

/* A new shared load description for daemon d. */
static struct load *load_new(struct bd_test_daemon *d, const char *key, int clients,
                             int per, int depth)
{
    struct load *ld = bd_test_shared_alloc(sizeof(*ld));

    ck_assert_int_le(clients * per, MAX_ITEMS);
    snprintf(ld->sock, sizeof(ld->sock), "%s", bd_test_daemon_socket(d));
    snprintf(ld->key, sizeof(ld->key), "%s", key);
    ld->clients = clients;
    ld->per = per;
    ld->depth = depth;
    return ld;
}

/* Start the clients and release them together. */
static struct bd_test_procs *load_start(struct load *ld)
{
    struct bd_test_procs *p = bd_test_procs_start(ld->clients, load_client, ld);

    bd_test_procs_release(p);
    return p;
}

/* Wait for the clients; assert each exited well. */
static void load_wait(struct bd_test_procs *p)
{
    ck_assert_int_eq(bd_test_procs_wait(p, bd_test_scaled(120000), NULL), 0);
}

/*
 * The oracle: every item exactly one reply, and table holds exactly the
 * items answered OK, once each. Returns how many were OK.
 */
static int assert_exact(const struct load *ld, const char *table)
{
    int n = ld->clients * ld->per, ok = 0;
    int *counts = calloc((size_t)n, sizeof(int));

    ck_assert_ptr_nonnull(counts);
    sql_count_ids(table, counts, n);
    for (int id = 0; id < n; id++) {
        ck_assert_msg(ld->replies[id] == 1, "item %d: %d replies", id, ld->replies[id]);
        if (ld->status[id] == BATCHD_OK) {
            ok++;
            ck_assert_msg(counts[id] == 1, "item %d answered OK, %d rows in %s", id,
                          counts[id], table);
        } else {
            ck_assert_msg(counts[id] == 0, "item %d answered %s (%s), yet %d rows in %s",
                          id, batchd_status_name(ld->status[id]), ld->body[id],
                          counts[id], table);
        }
    }
    free(counts);
    return ok;
}

/* Lines of the daemon's log holding needle. */
static int log_count(struct bd_test_daemon *d, const char *needle)
{
    char *log = bd_test_daemon_log(d);
    int n = 0;

    for (const char *p = log; p != NULL && (p = strstr(p, needle)) != NULL; p++)
        n++;
    free(log);
    return n;
}

/* ---- configs ------------------------------------------------------------------- */

/* A config: one postgres sink "pg" with extra options, one route for
 * every key with extra route options. A new string (free). */
static char *conf_copy(const char *table, const char *conninfo, const char *sink_extra,
                       const char *route_extra)
{
    char *s = NULL;

    ck_assert_int_ge(asprintf(&s,
        "[daemon]\nmax_concurrency = 8\n\n"
        "[sink.pg]\nplugin = postgres\nconninfo = %s\ntable = %s\ncolumns = id, v\n%s\n"
        "[route.all]\nmatch = *\nsink = pg\n%s",
        conninfo, table, sink_extra, route_extra), 0);
    return s;
}

static struct bd_test_daemon *daemon_copy(const char *table, const char *sink_extra,
                                          const char *route_extra)
{
    char *conf = conf_copy(table, bd_pg_conninfo(pg), sink_extra, route_extra);
    struct bd_test_daemon *d = bd_test_daemon_start(conf);

    free(conf);
    return d;
}

/* One blocking LOAD; returns the status, the reply in body. */
static int load_one(struct bd_test_daemon *d, const char *key, const char *payload,
                    char *body, size_t blen)
{
    struct batchd_client *c = bd_test_connect(d);
    struct batchd_reply *r = NULL;
    int st;

    ck_assert_msg(batchd_load(c, key, payload, strlen(payload), NULL,
                              bd_test_scaled(30000), &r) == BATCHD_CLIENT_OK,
                  "LOAD %s: %s", key, batchd_errstr(c));
    st = r->status;
    snprintf(body, blen, "%.*s", (int)r->len, r->data ? (const char *)r->data : "");
    batchd_reply_free(r);
    batchd_free(c);
    return st;
}

/* ================================ core ======================================= */

/* The sink's error readers on the server's own words (no server needed). */
START_TEST(test_error_readers)
{
    static const struct { const char *ctx; unsigned long line; } lines[] = {
        { "COPY t_bad, line 3, column id: \"three\"", 3 },
        { "COPY t_bad, line 8", 8 },
        { "COPY t, line 12: \"a\tb\"\nSQL statement \"COPY t, line 99\"", 12 },
        { "COPY \"a, line 9x\", line 4, column v: \", line 7\"", 4 },
        { "COPY t, line 0", 0 },
        { "COPY t, line 007", 0 },
        { "COPY t, line 99999999999999999999999", 0 },
        { "PL/pgSQL function f() line 3 at RAISE", 0 },
        { "SQL statement \"x\"\nCOPY t, line 5", 0 },
        { "", 0 },
    };
    char msg[] = "server closed the connection unexpectedly\n\tThis probably means\n";

    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
        ck_assert_msg(pg_copy_error_line(lines[i].ctx, strlen(lines[i].ctx)) == lines[i].line,
                      "'%s': want %lu", lines[i].ctx, lines[i].line);
    /* Not NUL-terminated: the length bounds the read. */
    ck_assert_uint_eq(pg_copy_error_line("COPY t, line 42", 14), 4);
    ck_assert_uint_eq(pg_copy_error_line(NULL, 0), 0);
    ck_assert_int_eq(pg_err_classify("40001"), PG_ERR_RETRY);
    ck_assert_int_eq(pg_err_classify("40P01"), PG_ERR_RETRY);
    ck_assert_int_eq(pg_err_classify("57P01"), PG_ERR_RETRY);
    ck_assert_int_eq(pg_err_classify("53300"), PG_ERR_RETRY);
    ck_assert_int_eq(pg_err_classify("08006"), PG_ERR_RETRY);
    ck_assert_int_eq(pg_err_classify(NULL), PG_ERR_RETRY);
    ck_assert_int_eq(pg_err_classify("22P02"), PG_ERR_DATA);
    ck_assert_int_eq(pg_err_classify("23505"), PG_ERR_DATA);
    ck_assert_int_eq(pg_err_classify("42P01"), PG_ERR_FATAL);
    ck_assert_int_eq(pg_err_classify("42501"), PG_ERR_FATAL);
    /* CSV records: breaks inside quotes, '\r' in the first, '\n' after. */
    ck_assert_uint_eq(pg_csv_breaks("1,\"a\nb\"", 7, 0), 1);
    ck_assert_uint_eq(pg_csv_breaks("1,\"a\nb\"", 7, 1), 0);
    ck_assert_uint_eq(pg_csv_breaks("1,\"a\rb\"", 7, 1), 1);
    ck_assert_uint_eq(pg_csv_breaks("1,\"a\r\nb\"\"\n\"", 11, 0), 2);
    ck_assert_uint_eq(pg_csv_breaks("1,a", 3, 0), 0);
    pg_one_line(msg);
    ck_assert_str_eq(msg, "server closed the connection unexpectedly This probably means");
}
END_TEST

START_TEST(test_copy_rows_land_exactly)
{
    struct bd_test_daemon *d;
    struct load *ld;

    sql_exec("CREATE TABLE t_exact (id int NOT NULL, v text)");
    d = daemon_copy("t_exact", "pool_size = 4\n",
                    "policy = duration\nmax_items = 200\nmax_delay_us = 2000\n"
                    "key_concurrency = 4\n");
    ld = load_new(d, "rows", 16, 250, 8);
    load_wait(load_start(ld));
    ck_assert_int_eq(assert_exact(ld, "t_exact"), 16 * 250);
    bd_test_daemon_stop(d);
    bd_test_shared_free(ld, sizeof(*ld));
}
END_TEST

/* One batch of ten: a row that is not an int and a duplicate key fail
 * alone, with the server's message; the other eight land. */
START_TEST(test_copy_bad_rows_fail_alone)
{
    struct bd_test_daemon *d;
    struct batchd_client *c;
    struct slot slots[10];
    struct load *ld;
    int answered = 0;

    sql_exec("CREATE TABLE t_bad (id int PRIMARY KEY, v text)");
    sql_exec("INSERT INTO t_bad VALUES (7, 'there before')");
    d = daemon_copy("t_bad", "", "policy = size\nmax_items = 10\nmax_attempts = 1\n");
    ld = load_new(d, "rows", 1, 10, 10);
    c = bd_test_connect(d);
    for (int i = 0; i < 10; i++) {
        char p[48];

        if (i == 3)
            snprintf(p, sizeof(p), "three\tnot an int");
        else
            row_of(i, p, sizeof(p));
        slots[i] = (struct slot){ .ld = ld, .id = i, .answered = &answered };
        ck_assert_int_eq(batchd_submit_load(c, "rows", p, strlen(p), NULL, reply_cb,
                                            &slots[i], NULL), BATCHD_CLIENT_OK);
    }
    while (answered < 10)
        ck_assert_int_ge(batchd_process(c, 10000), 1);
    batchd_free(c);
    for (int i = 0; i < 10; i++) {
        if (i == 3) {
            ck_assert_int_eq(ld->status[i], BATCHD_FAIL);
            ck_assert_msg(strstr(ld->body[i], "invalid input syntax") != NULL, "%s",
                          ld->body[i]);
        } else if (i == 7) {
            ck_assert_int_eq(ld->status[i], BATCHD_FAIL);
            ck_assert_msg(strstr(ld->body[i], "duplicate key") != NULL, "%s", ld->body[i]);
        } else {
            ck_assert_msg(ld->status[i] == BATCHD_OK, "item %d: %s %s", i,
                          batchd_status_name(ld->status[i]), ld->body[i]);
        }
    }
    /* Row 7 is the one inserted before; the eight good rows, once each. */
    {
        int counts[10];

        sql_count_ids("t_bad", counts, 10);
        for (int i = 0; i < 10; i++)
            ck_assert_int_eq(counts[i], i == 3 ? 0 : 1);
    }
    bd_test_daemon_stop(d);
    bd_test_shared_free(ld, sizeof(*ld));
}
END_TEST

/* A foreign key is checked after the last row: the error names no line.
 * The batch is answered RETRY, the daemon's poison split isolates the
 * bad row, and it fails alone once it is alone; the others land. */
START_TEST(test_copy_unknown_row_split)
{
    struct bd_test_daemon *d;
    struct batchd_client *c;
    struct slot slots[8];
    struct load *ld;
    int answered = 0, counts[8];

    sql_exec("CREATE TABLE t_parent (k text PRIMARY KEY)");
    sql_exec("INSERT INTO t_parent SELECT 'v' || g FROM generate_series(0, 7) g");
    sql_exec("CREATE TABLE t_fk (id int, v text REFERENCES t_parent (k))");
    d = daemon_copy("t_fk", "", "policy = size\nmax_items = 8\nmax_attempts = 10\n"
                    "retry_base_ms = 20\nretry_cap_ms = 100\n");
    ld = load_new(d, "rows", 1, 8, 8);
    c = bd_test_connect(d);
    for (int i = 0; i < 8; i++) {
        char p[48];

        if (i == 5)
            snprintf(p, sizeof(p), "5\tno such parent");
        else
            row_of(i, p, sizeof(p));
        slots[i] = (struct slot){ .ld = ld, .id = i, .answered = &answered };
        ck_assert_int_eq(batchd_submit_load(c, "rows", p, strlen(p), NULL, reply_cb,
                                            &slots[i], NULL), BATCHD_CLIENT_OK);
    }
    while (answered < 8)
        ck_assert_int_ge(batchd_process(c, 30000), 1);
    batchd_free(c);
    for (int i = 0; i < 8; i++) {
        if (i == 5) {
            ck_assert_int_eq(ld->status[i], BATCHD_FAIL);
            ck_assert_msg(strstr(ld->body[i], "foreign key") != NULL, "%s", ld->body[i]);
        } else {
            ck_assert_msg(ld->status[i] == BATCHD_OK, "item %d: %s %s", i,
                          batchd_status_name(ld->status[i]), ld->body[i]);
        }
    }
    sql_count_ids("t_fk", counts, 8);
    for (int i = 0; i < 8; i++)
        ck_assert_int_eq(counts[i], i == 5 ? 0 : 1);
    bd_test_daemon_stop(d);
    bd_test_shared_free(ld, sizeof(*ld));
}
END_TEST

/* CSV: quoted commas, quotes and line breaks inside one record; the bad
 * row comes after a two-line record, so only a record count (what the
 * server reports) finds it. */
START_TEST(test_copy_csv)
{
    static const char *const rows[] = {
        "0,\"a,b\"", "1,\"two\nlines\"", "notanint,x", "3,\"say \"\"hi\"\"\"", "4,",
    };
    static const char *const want[] = { "a,b", "two\nlines", NULL, "say \"hi\"", NULL };
    struct bd_test_daemon *d;
    struct batchd_client *c;
    struct slot slots[5];
    struct load *ld;
    int answered = 0;

    sql_exec("CREATE TABLE t_csv (id int, v text)");
    d = daemon_copy("t_csv", "format = csv\n", "policy = size\nmax_items = 5\nmax_attempts = 1\n");
    ld = load_new(d, "rows", 1, 5, 5);
    c = bd_test_connect(d);
    for (int i = 0; i < 5; i++) {
        slots[i] = (struct slot){ .ld = ld, .id = i, .answered = &answered };
        ck_assert_int_eq(batchd_submit_load(c, "rows", rows[i], strlen(rows[i]), NULL,
                                            reply_cb, &slots[i], NULL), BATCHD_CLIENT_OK);
    }
    while (answered < 5)
        ck_assert_int_ge(batchd_process(c, 10000), 1);
    batchd_free(c);
    for (int i = 0; i < 5; i++) {
        char q[160];

        if (i == 2) {
            ck_assert_int_eq(ld->status[i], BATCHD_FAIL);
            ck_assert_msg(strstr(ld->body[i], "notanint") != NULL, "%s", ld->body[i]);
            continue;
        }
        ck_assert_msg(ld->status[i] == BATCHD_OK, "row %d: %s %s", i,
                      batchd_status_name(ld->status[i]), ld->body[i]);
        /* NULL for an empty unquoted CSV field, the text as sent otherwise. */
        snprintf(q, sizeof(q), "DO $$ BEGIN IF (SELECT count(*) FROM t_csv WHERE id = %d AND "
                 "v IS NOT DISTINCT FROM %s) <> 1 THEN RAISE 'row %d'; END IF; END $$", i,
                 want[i] == NULL ? "NULL" : i == 0 ? "'a,b'" : i == 1 ? "E'two\\nlines'"
                 : "'say \"hi\"'", i);
        sql_exec(q);
    }
    bd_test_daemon_stop(d);
    bd_test_shared_free(ld, sizeof(*ld));
}
END_TEST

/* Payloads that cannot be one row fail before the server sees them. */
START_TEST(test_copy_refuses_multi_line_payload)
{
    struct bd_test_daemon *d;
    char body[128];

    sql_exec("CREATE TABLE t_nl (id int, v text)");
    d = daemon_copy("t_nl", "", "policy = immediate\n");

    ck_assert_int_eq(load_one(d, "rows", "1\ta\n2\tb", body, sizeof(body)), BATCHD_FAIL);
    ck_assert_msg(strstr(body, "line break") != NULL, "%s", body);
    bd_test_daemon_stop(d);
}
END_TEST

/* Lookups: 8 processes ask for ids (some twice, some missing) through
 * match = key with missing = fail, and through ordinality with json. */
struct lookup {
    char sock[256];
    int status[2][8][40];     /* [route][client][i] */
    char body[2][8][40][96];
};

static int lookup_client(int idx, void *arg)
{
    static const char *const keys[2] = { "byid", "ord" };
    struct lookup *lk = arg;
    struct batchd_client *c = batchd_connect_unix(lk->sock, 10000);

    if (batchd_err(c) != BATCHD_ERR_NONE)
        return bd_test_child_fail(idx, "connect: %s", batchd_errstr(c));
    if (bd_test_procs_barrier() != 0)
        return bd_test_child_fail(idx, "barrier");
    for (int k = 0; k < 2; k++) {
        for (int i = 0; i < 40; i++) {
            struct batchd_reply *r = NULL;
            char id[16];

            /* ids 1..40, and 1000+ (missing) for every 10th */
            snprintf(id, sizeof(id), "%d", i % 10 == 9 ? 1000 + i : 1 + (idx * 7 + i) % 40);
            if (batchd_load(c, keys[k], id, strlen(id), NULL, 30000, &r) != BATCHD_CLIENT_OK)
                return bd_test_child_fail(idx, "load: %s", batchd_errstr(c));
            lk->status[k][idx][i] = r->status;
            snprintf(lk->body[k][idx][i], sizeof(lk->body[0][0][0]), "%.*s", (int)r->len,
                     r->data ? (const char *)r->data : "");
            batchd_reply_free(r);
        }
    }
    batchd_free(c);
    return 0;
}

START_TEST(test_query_lookups)
{
    struct lookup *lk = bd_test_shared_alloc(sizeof(*lk));
    struct bd_test_daemon *d;
    char *conf = NULL;

    sql_exec("CREATE TABLE users (id bigint PRIMARY KEY, name text)");
    sql_exec("INSERT INTO users SELECT g, 'name-' || g FROM generate_series(1, 40) g");
    ck_assert_int_ge(asprintf(&conf,
        "[sink.byid]\nplugin = postgres\nconninfo = %s\nmode = query\n"
        "sql = SELECT id, name FROM users WHERE id = ANY($1::bigint[])\n"
        "match = key\nkey = id\nmissing = fail\n\n"
        "[sink.ord]\nplugin = postgres\nconninfo = %s\nmode = query\n"
        "sql = SELECT x.o, u.id, u.name FROM unnest($1::bigint[]) WITH ORDINALITY "
        "x(id, o) JOIN users u ON u.id = x.id\n"
        "result = json\n\n"
        "[route.byid]\nmatch = byid\nsink = byid\npolicy = duration\nmax_delay_us = 5000\n"
        "[route.ord]\nmatch = ord\nsink = ord\npolicy = duration\nmax_delay_us = 5000\n",
        bd_pg_conninfo(pg), bd_pg_conninfo(pg)), 0);
    d = bd_test_daemon_start(conf);
    free(conf);
    snprintf(lk->sock, sizeof(lk->sock), "%s", bd_test_daemon_socket(d));
    {
        struct bd_test_procs *p = bd_test_procs_start(8, lookup_client, lk);

        bd_test_procs_release(p);
        ck_assert_int_eq(bd_test_procs_wait(p, bd_test_scaled(60000), NULL), 0);
    }
    for (int c = 0; c < 8; c++) {
        for (int i = 0; i < 40; i++) {
            int id = 1 + (c * 7 + i) % 40;
            char want[96];

            if (i % 10 == 9) {
                ck_assert_int_eq(lk->status[0][c][i], BATCHD_FAIL);
                ck_assert_str_eq(lk->body[0][c][i], "not found");
                ck_assert_int_eq(lk->status[1][c][i], BATCHD_OK);
                ck_assert_str_eq(lk->body[1][c][i], "");
                continue;
            }
            snprintf(want, sizeof(want), "name-%d", id);
            ck_assert_int_eq(lk->status[0][c][i], BATCHD_OK);
            ck_assert_str_eq(lk->body[0][c][i], want);
            ck_assert_int_eq(lk->status[1][c][i], BATCHD_OK);
            snprintf(want, sizeof(want), "\"id\":%d,\"name\":\"name-%d\"}", id, id);
            ck_assert_msg(strstr(lk->body[1][c][i], want) != NULL, "json '%s', want '%s'",
                          lk->body[1][c][i], want);
        }
    }
    bd_test_daemon_stop(d);
    bd_test_shared_free(lk, sizeof(*lk));
}
END_TEST

/* INSERT ... RETURNING matched by ordinality: each item gets its new
 * row's id; quotes and backslashes survive the text[] literal. */
START_TEST(test_query_insert_returning)
{
    static const char *const vals[] = { "a \"quoted\" \\ value", "", "{x,y}", "NULL" };
    struct bd_test_daemon *d;
    char *conf = NULL, body[64], sql[160];

    sql_exec("CREATE TABLE t_ret (id serial PRIMARY KEY, v text NOT NULL)");
    ck_assert_int_ge(asprintf(&conf,
        "[sink.ins]\nplugin = postgres\nconninfo = %s\nmode = query\n"
        "sql = WITH x AS (SELECT v, o FROM unnest($1::text[]) WITH ORDINALITY x(v, o)), "
        "ins AS (INSERT INTO t_ret (v) SELECT v FROM x RETURNING id, v) "
        "SELECT x.o, ins.id FROM x JOIN ins USING (v)\n"
        "missing = fail\n\n"
        "[route.all]\nmatch = *\nsink = ins\npolicy = immediate\n", bd_pg_conninfo(pg)), 0);
    d = bd_test_daemon_start(conf);
    free(conf);
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        int st = load_one(d, "k", vals[i], body, sizeof(body));

        ck_assert_msg(st == BATCHD_OK, "'%s': %s %s", vals[i], batchd_status_name(st), body);
        ck_assert_int_eq(atoi(body), (int)i + 1);
        /* The row holds the payload as sent, byte for byte. */
        snprintf(sql, sizeof(sql), "DO $$ BEGIN IF (SELECT v FROM t_ret WHERE id = %zu) "
                 "IS DISTINCT FROM %s THEN RAISE 'row %zu'; END IF; END $$", i + 1,
                 i == 0 ? "E'a \"quoted\" \\\\ value'" : i == 1 ? "''" :
                 i == 2 ? "'{x,y}'" : "'NULL'", i + 1);
        sql_exec(sql);
    }
    bd_test_daemon_stop(d);
}
END_TEST

/* conf/examples/postgres.conf works as shipped: against this server (its
 * conninfo swapped in, the socket the test's), one write and one lookup. */
START_TEST(test_example_config_works)
{
    char path[512], body[128], *text, *conf, *at;
    const char *const from = "host=/var/run/postgresql dbname=postgres";
    const char *const sock = "socket = /tmp/batchd-pg.sock\n";
    struct bd_test_daemon *d;
    size_t n = 0;

    snprintf(path, sizeof(path), "%s/conf/examples/postgres.conf", bd_test_src_dir());
    text = bd_test_read_file(path, NULL);
    ck_assert_msg(text != NULL, "read %s", path);
    at = strstr(text, sock);
    ck_assert_ptr_nonnull(at);
    memset(at, ' ', strlen(sock) - 1);
    conf = calloc(1, strlen(text) * 2 + 1);
    ck_assert_ptr_nonnull(conf);
    for (const char *p = text; *p != '\0';) {
        if (strncmp(p, from, strlen(from)) == 0) {
            n += (size_t)sprintf(conf + n, "%s", bd_pg_conninfo(pg));
            p += strlen(from);
        } else {
            conf[n++] = *p++;
        }
    }
    /* Its own tables (test_query_lookups has a users table too). */
    sql_exec("DROP TABLE IF EXISTS events, users");
    sql_exec("CREATE TABLE events (id bigint, kind text, body text)");
    sql_exec("CREATE TABLE users (id bigint PRIMARY KEY, name text)");
    sql_exec("INSERT INTO users VALUES (42, 'Ada')");
    d = bd_test_daemon_start(conf);
    ck_assert_int_eq(load_one(d, "events.click", "1\tclick\thello", body, sizeof(body)),
                     BATCHD_OK);
    ck_assert_int_eq(load_one(d, "user", "42", body, sizeof(body)), BATCHD_OK);
    ck_assert_str_eq(body, "Ada");
    ck_assert_int_eq(load_one(d, "user", "43", body, sizeof(body)), BATCHD_FAIL);
    ck_assert_str_eq(body, "not found");
    sql_exec("DO $$ BEGIN IF (SELECT count(*) FROM events WHERE kind = 'click') <> 1 "
             "THEN RAISE 'no row'; END IF; END $$");
    bd_test_daemon_stop(d);
    free(conf);
    free(text);
}
END_TEST

/* A data error in query mode cannot be pinned on one item: the batch
 * fails with the server's message; the next batch works (the statement
 * is prepared again on the same connection, under a new name). */
START_TEST(test_query_data_error)
{
    struct bd_test_daemon *d;
    char *conf = NULL, body[256];

    ck_assert_int_ge(asprintf(&conf,
        "[sink.q]\nplugin = postgres\nconninfo = %s\nmode = query\npool_size = 1\n"
        "sql = SELECT o, (v::int * 2)::text FROM unnest($1) WITH ORDINALITY x(v, o)\n\n"
        "[route.all]\nmatch = *\nsink = q\npolicy = immediate\nmax_attempts = 1\n",
        bd_pg_conninfo(pg)), 0);
    d = bd_test_daemon_start(conf);
    free(conf);
    ck_assert_int_eq(load_one(d, "k", "21", body, sizeof(body)), BATCHD_OK);
    ck_assert_str_eq(body, "42");
    {
        int st = load_one(d, "k", "x", body, sizeof(body));

        /* A whole-batch FAIL is final (DESIGN 4), in the server's words. */
        ck_assert_msg(st == BATCHD_FAIL, "%s: %s", batchd_status_name(st), body);
    }
    ck_assert_msg(strstr(body, "invalid input syntax for type integer") &&
                  strstr(body, "22P02"), "%s", body);
    ck_assert_int_eq(load_one(d, "k", "5", body, sizeof(body)), BATCHD_OK);
    ck_assert_str_eq(body, "10");
    bd_test_daemon_stop(d);
}
END_TEST

START_TEST(test_isolation_process)
{
    struct bd_test_daemon *d;
    struct load *ld;

    sql_exec("CREATE TABLE t_iso (id int, v text)");
    d = daemon_copy("t_iso", "isolation = process\n",
                    "policy = duration\nmax_items = 100\nmax_delay_us = 2000\n");
    ld = load_new(d, "rows", 4, 200, 8);
    load_wait(load_start(ld));
    ck_assert_int_eq(assert_exact(ld, "t_iso"), 4 * 200);
    bd_test_daemon_stop(d);
    bd_test_shared_free(ld, sizeof(*ld));
}
END_TEST

/* ============================== failures ===================================== */

#define RETRY_ROUTE "max_attempts = 60\nretry_base_ms = 50\nretry_cap_ms = 500\n"

START_TEST(test_restart_mid_load)
{
    struct bd_test_daemon *d;
    struct bd_test_procs *p;
    struct load *ld;

    sql_exec("CREATE TABLE t_restart (id int, v text)");
    d = daemon_copy("t_restart", "pool_size = 4\n",
                    "policy = duration\nmax_items = 50\nmax_delay_us = 2000\n"
                    "key_concurrency = 4\n" RETRY_ROUTE);
    ld = load_new(d, "rows", 8, 400, 2);
    ld->pause_us = 3000;          /* ~1.5 s of load: the restart falls inside */
    p = load_start(ld);
    usleep(400000);
    {
        int answered = 0;

        for (int i = 0; i < 8 * 400; i++)
            answered += ld->replies[i];
        ck_assert_msg(answered < 8 * 400, "the load ended before the restart");
    }
    ck_assert_int_eq(bd_pg_restart(pg), 0);
    load_wait(p);
    /* Nothing accepted is lost or doubled, and with attempts to spare
     * every item made it. */
    ck_assert_int_eq(assert_exact(ld, "t_restart"), 8 * 400);
    /* One warning per outage, not one per item or batch. */
    ck_assert_int_le(log_count(d, "connection lost") + log_count(d, "cannot connect"), 2);
    bd_test_daemon_stop(d);
    bd_test_shared_free(ld, sizeof(*ld));
}
END_TEST

START_TEST(test_down_at_start)
{
    struct bd_test_daemon *d;
    struct bd_test_procs *p;
    struct load *ld;

    sql_exec("CREATE TABLE t_down (id int, v text)");
    ck_assert_int_eq(bd_pg_stop(pg), 0);
    d = daemon_copy("t_down", "", "policy = duration\nmax_delay_us = 2000\n" RETRY_ROUTE);
    ld = load_new(d, "rows", 4, 50, 4);
    p = load_start(ld);
    usleep(1500000);              /* the first attempts fail */
    ck_assert_int_eq(bd_pg_start(pg), 0);
    load_wait(p);
    ck_assert_int_eq(assert_exact(ld, "t_down"), 4 * 50);
    ck_assert_int_eq(log_count(d, "cannot connect"), 1);
    ck_assert_int_eq(log_count(d, "connected again"), 1);
    bd_test_daemon_stop(d);
    bd_test_shared_free(ld, sizeof(*ld));
}
END_TEST

/* A server that never comes: the daemon runs, every item gets one final
 * SINK_UNAVAILABLE naming the reason (a failed acquire), never OK. */
START_TEST(test_down_for_good)
{
    char *conf = conf_copy("t_never", bd_pg_conninfo_nowhere(pg), "",
                           "policy = immediate\nmax_attempts = 2\nretry_base_ms = 10\n");
    struct bd_test_daemon *d = bd_test_daemon_start(conf);
    char body[256];

    for (int i = 0; i < 3; i++) {
        int st = load_one(d, "rows", "1\tx", body, sizeof(body));

        ck_assert_msg(st == BATCHD_SINK_UNAVAILABLE, "status %s: %s",
                      batchd_status_name(st), body);
        ck_assert_msg(strstr(body, "No such file or directory") != NULL, "%s", body);
    }
    bd_test_daemon_assert_alive(d);
    ck_assert_int_eq(log_count(d, "cannot connect"), 1);
    bd_test_daemon_stop(d);
    free(conf);
}
END_TEST

START_TEST(test_pool_of_one)
{
    struct bd_test_daemon *d;
    struct load *ld;

    sql_exec("CREATE TABLE t_pool (id int, v text)");
    d = daemon_copy("t_pool", "pool_size = 1\npool_wait_ms = 30000\n",
                    "policy = immediate\nmax_items = 5\nkey_concurrency = 4\n");
    ld = load_new(d, "rows", 8, 200, 4);
    load_wait(load_start(ld));
    ck_assert_int_eq(assert_exact(ld, "t_pool"), 8 * 200);
    bd_test_daemon_stop(d);
    bd_test_shared_free(ld, sizeof(*ld));
}
END_TEST

/* ============================== malformed ==================================== */

/* --check-config on conf; returns the exit code, *err its stderr. */
static int check_config(const char *conf, char **err)
{
    struct bd_test_daemon *d = bd_test_daemon_new(conf);
    const char *argv[] = { bd_test_batchd_bin(), "-c", bd_test_daemon_conf(d),
                           "--sink-dir", bd_test_sink_dir(), "--check-config", NULL };
    char *out = NULL;
    int code = bd_test_run(argv, 30000, &out, err);

    free(out);
    bd_test_daemon_free(d);
    return code;
}

START_TEST(test_check_config)
{
    static const struct { const char *extra, *want; int code; } cases[] = {
        { "colour = blue\n", "unknown option 'colour'", 1 },
        { "mode = upsert\n", "mode 'upsert' is not copy or query", 1 },
        { "pool_size = 0\n", "pool_size '0' is not a number", 1 },
        { "format = json\n", "format 'json' is not text or csv", 1 },
        { "sql = SELECT $1\n", "option 'sql' does not apply to mode copy", 1 },
        { "", "configuration is valid", 0 },
    };
    char *err = NULL;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *conf = conf_copy("t_any", bd_pg_conninfo(pg), cases[i].extra,
                               "policy = immediate\n");
        int code = check_config(conf, &err);

        ck_assert_msg(code == cases[i].code && strstr(err, cases[i].want) != NULL,
                      "case '%s': exit %d, stderr: %s", cases[i].extra, code, err);
        free(err);
        free(conf);
    }
    {
        /* A bad conninfo is an error too (libpq's own words). */
        char *conf = conf_copy("t_any", "host=/tmp/x bogus=1", "", "policy = immediate\n");
        ck_assert_int_eq(check_config(conf, &err), 1);
        ck_assert_msg(strstr(err, "conninfo") && strstr(err, "bogus"), "%s", err);
        free(err);
        free(conf);
    }
}
END_TEST

/* With the server there, a table or statement that does not work is
 * named at once, as a warning (a migration may create it later). */
START_TEST(test_check_config_bad_sql_warns)
{
    char *conf = conf_copy("t_missing", bd_pg_conninfo(pg), "", "policy = immediate\n");
    char *err = NULL, *q = NULL;
    int code = check_config(conf, &err);

    ck_assert_msg(code == 0, "exit %d: %s", code, err);
    ck_assert_msg(strstr(err, "table or columns not readable") &&
                  strstr(err, "\"t_missing\" does not exist"), "%s", err);
    free(err);
    ck_assert_int_ge(asprintf(&q, "[sink.q]\nplugin = postgres\nconninfo = %s\nmode = query\n"
                              "sql = SELECT nope FROM pg_class WHERE relname = ANY($1)\n"
                              "[route.all]\nmatch = *\nsink = q\n", bd_pg_conninfo(pg)), 0);
    code = check_config(q, &err);
    ck_assert_msg(code == 0 && strstr(err, "sql does not prepare") &&
                  strstr(err, "\"nope\" does not exist"), "exit %d: %s", code, err);
    free(err);
    free(q);
    free(conf);
}
END_TEST

START_TEST(test_check_config_unreachable_warns)
{
    char *conf = conf_copy("t_any", bd_pg_conninfo_nowhere(pg), "", "policy = immediate\n");
    char *err = NULL;
    int code = check_config(conf, &err);

    ck_assert_msg(code == 0, "exit %d: %s", code, err);
    ck_assert_msg(strstr(err, "cannot connect") != NULL, "no warning: %s", err);
    ck_assert_msg(strstr(err, "configuration is valid") != NULL, "%s", err);
    free(err);
    free(conf);
}
END_TEST

/* ---- suite ----------------------------------------------------------------------- */

static Suite *pg_suite(void)
{
    Suite *s = suite_create("pg");
    TCase *core = tcase_create("core");
    TCase *failures = tcase_create("failures");
    TCase *malformed = tcase_create("malformed");

    tcase_set_timeout(core, 180);
    bd_test_add(core, test_error_readers);
    bd_test_add(core, test_copy_rows_land_exactly);
    bd_test_add(core, test_copy_bad_rows_fail_alone);
    bd_test_add(core, test_copy_unknown_row_split);
    bd_test_add(core, test_copy_csv);
    bd_test_add(core, test_copy_refuses_multi_line_payload);
    bd_test_add(core, test_query_lookups);
    bd_test_add(core, test_query_insert_returning);
    bd_test_add(core, test_query_data_error);
    bd_test_add(core, test_isolation_process);
    bd_test_add(core, test_example_config_works);
    suite_add_tcase(s, core);

    tcase_set_timeout(failures, 240);
    bd_test_add(failures, test_restart_mid_load);
    bd_test_add(failures, test_down_at_start);
    bd_test_add(failures, test_down_for_good);
    bd_test_add(failures, test_pool_of_one);
    suite_add_tcase(s, failures);

    tcase_set_timeout(malformed, 120);
    bd_test_add(malformed, test_check_config);
    bd_test_add(malformed, test_check_config_unreachable_warns);
    bd_test_add(malformed, test_check_config_bad_sql_warns);
    suite_add_tcase(s, malformed);
    return s;
}

int main(void)
{
    SRunner *sr;
    int failed;

    pg = bd_pg_new();
    if (pg == NULL) {
        fprintf(stderr, "check_pg: cannot start PostgreSQL (see above)\n");
        return EXIT_FAILURE;
    }
    sr = srunner_create(pg_suite());
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    bd_pg_free(pg);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
