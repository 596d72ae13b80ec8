/*
 * pgload.c - the PostgreSQL benchmark (DESIGN section 7, "the frontier"):
 * batchd's postgres sink against the same clients talking to PostgreSQL
 * directly, same server, same tables, same run. Driven by bench/pg_bench.sh.
 *
 * It starts a throwaway PostgreSQL 15 (tests/pgserver.c: Unix socket,
 * fsync off) and batchd with two postgres sinks, then runs each cell
 * --reps times, interleaved (rep 1: every cell; rep 2: ...):
 *
 *   batchd-copy     P processes, each keeping D one-row LOADs in flight
 *                   (libbatchd) on key "w": the COPY path
 *   direct-insert   the same P processes, each with its own connection,
 *                   single-row INSERTs (prepared, autocommit)
 *   bulk-copy       one connection, one COPY of as many rows as
 *                   batchd-copy wrote in this repetition
 *   batchd-lookup   P processes, one LOAD in flight each, a random id of
 *                   the --rows table on key "r": one = ANY($1) per batch
 *   direct-lookup   the same P processes, each with its own connection,
 *                   SELECT ... WHERE id = $1 (prepared)
 *
 * The timed cells run --seconds each: every client stops submitting at
 * the deadline and drains its replies; rate = answers / (last client
 * done - start). Every answer is checked (OK, and a lookup's name is the
 * id's). Output: one line per cell and repetition, then the medians and
 * the ratios as a markdown table on stdout. Exit 1 when anything failed.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "batchd.h"
#include "pgserver.h"

#define MAX_CLIENTS 256
#define MAX_REPS 15

enum cell { C_BCOPY, C_INSERT, C_BULK, C_BLOOKUP, C_LOOKUP, C_NCELLS };
static const char *const cell_names[C_NCELLS] = {
    "batchd-copy", "direct-insert", "bulk-copy", "batchd-lookup", "direct-lookup",
};

struct args {
    int reps;                 /* repetitions of every cell */
    double seconds;           /* length of a timed cell */
    int clients;              /* P */
    int depth;                /* D for batchd-copy */
    long rows;                /* rows of the lookup table */
    const char *batchd;       /* daemon binary */
    const char *sink_dir;     /* where postgres.so is */
    int wconc;                /* key_concurrency (and pool) of route w */
    int rconc;                /* key_concurrency (and pool) of route r */
    int rmin;                 /* route r: balanced with this min_items (0: immediate) */
    int lookups_only;         /* --lookups-only: skip the write cells */
};

/* Shared with the client processes (MAP_SHARED). */
struct shared {
    long done[MAX_CLIENTS];   /* answers counted per client */
    long bad[MAX_CLIENTS];    /* wrong answers per client */
    double end_ms[MAX_CLIENTS]; /* when the client finished */
};

static struct shared *sh;
static struct bd_pg *pg;
static char dir[64];          /* batchd's config and socket */
static char sock[128];
static pid_t daemon_pid;

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static PGconn *db(void)
{
    PGconn *c = PQconnectdb(bd_pg_conninfo(pg));

    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "pgload: connect: %s", PQerrorMessage(c));
        exit(1);
    }
    return c;
}

static void sql(PGconn *c, const char *q)
{
    PGresult *r = PQexec(c, q);

    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
        fprintf(stderr, "pgload: %s: %s", q, PQresultErrorMessage(r));
        exit(1);
    }
    PQclear(r);
}

/* ---- batchd ------------------------------------------------------------- */

static int start_daemon(const struct args *a)
{
    char conf[160];
    FILE *f;

    snprintf(dir, sizeof(dir), "/tmp/pgbench.XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    snprintf(sock, sizeof(sock), "%s/s.sock", dir);
    snprintf(conf, sizeof(conf), "%s/batchd.conf", dir);
    f = fopen(conf, "w");
    if (f == NULL)
        return -1;
    fprintf(f, "[daemon]\nsocket = %s\nmax_concurrency = 8\nlog_level = warn\n"
            "max_queued_items = 10000000\n\n"
            "[sink.w]\nplugin = postgres\nconninfo = %s\ntable = w_rows\n"
            "columns = id, v\npool_size = %d\n\n"
            "[sink.r]\nplugin = postgres\nconninfo = %s\nmode = query\n"
            "sql = SELECT id, name FROM ids WHERE id = ANY($1::bigint[])\n"
            "match = key\nkey = id\nmissing = fail\npool_size = %d\n\n"
            "[route.w]\nmatch = w\nsink = w\npolicy = immediate\nmax_items = 2000\n"
            "key_concurrency = %d\nkey_max_items = 1000000\n\n"
            "[route.r]\nmatch = r\nsink = r\nmax_items = 1000\nkey_concurrency = %d\n",
            sock, bd_pg_conninfo(pg), a->wconc, bd_pg_conninfo(pg), a->rconc, a->wconc,
            a->rconc);
    if (a->rmin > 0)
        fprintf(f, "policy = balanced\nmin_items = %d\nmax_delay_us = 1000\n", a->rmin);
    else
        fprintf(f, "policy = immediate\n");
    fclose(f);
    daemon_pid = fork();
    if (daemon_pid == 0) {
        execl(a->batchd, a->batchd, "-c", conf, "--sink-dir", a->sink_dir, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 200; i++) {
        struct batchd_client *c = batchd_connect_unix(sock, 1000);
        int ok = batchd_err(c) == BATCHD_ERR_NONE;

        batchd_free(c);
        if (ok)
            return 0;
        usleep(50000);
    }
    return -1;
}

/* ---- clients ---------------------------------------------------------------- */

struct run {
    enum cell cell;
    const struct args *a;
    double deadline;          /* now_ms() value at which to stop */
    int idx;
    struct batchd_client *bc; /* batchd cells: connected before the start */
    PGconn *pc;               /* direct cells: connected (and prepared) before */
};

static unsigned long long rng_state;

static long rand_id(long rows)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return 1 + (long)(rng_state % (unsigned long long)rows);
}

struct wslot {
    long *done, *bad, *answered;
};

static void write_cb(struct batchd_client *c, const struct batchd_reply *r, void *arg)
{
    struct wslot *w = arg;

    (void)c;
    if (r != NULL && r->status == BATCHD_OK)
        (*w->done)++;
    else
        (*w->bad)++;
    (*w->answered)++;
}

/* batchd-copy: D one-row LOADs in flight until the deadline, then drain. */
static void run_bcopy(struct run *r)
{
    struct batchd_client *c = r->bc;
    long sent = 0, answered = 0;
    struct wslot w = { &sh->done[r->idx], &sh->bad[r->idx], &answered };
    char p[96];

    while (now_ms() < r->deadline) {
        while (sent - answered < r->a->depth) {
            int n = snprintf(p, sizeof(p), "%ld\tpayload of a row written through batchd %d",
                             (long)r->idx * 100000000L + sent, r->idx);

            if (batchd_submit_load(c, "w", p, (size_t)n, NULL, write_cb, &w, NULL) != 0)
                goto out;
            sent++;
        }
        if (batchd_process(c, 100) < 0)
            goto out;
    }
    while (answered < sent)
        if (batchd_process(c, 1000) < 0)
            break;
out:
    sh->bad[r->idx] += sent - answered;
    batchd_free(c);
}

/* batchd-lookup: one LOAD at a time, random ids, check the name. */
static void run_blookup(struct run *r)
{
    struct batchd_client *c = r->bc;

    while (now_ms() < r->deadline) {
        struct batchd_reply *rep = NULL;
        char id[24], want[40];
        long k = rand_id(r->a->rows);
        int n = snprintf(id, sizeof(id), "%ld", k);

        if (batchd_load(c, "r", id, (size_t)n, NULL, 30000, &rep) != BATCHD_CLIENT_OK) {
            sh->bad[r->idx]++;
            break;
        }
        snprintf(want, sizeof(want), "user %ld", k);
        if (rep->status == BATCHD_OK && rep->len == strlen(want) &&
            memcmp(rep->data, want, rep->len) == 0)
            sh->done[r->idx]++;
        else
            sh->bad[r->idx]++;
        batchd_reply_free(rep);
    }
    batchd_free(c);
}

/* direct cells: a connection with the statement prepared, before the
 * start, so that the timed window holds only the statements. */
static PGconn *direct_connect(enum cell cell)
{
    PGconn *c = db();
    PGresult *res = PQprepare(c, "s", cell == C_INSERT
                              ? "INSERT INTO w_rows (id, v) VALUES ($1, $2)"
                              : "SELECT name FROM ids WHERE id = $1",
                              cell == C_INSERT ? 2 : 1, NULL);

    PQclear(res);
    return c;
}

/* direct-insert / direct-lookup: one statement at a time on our own
 * connection. */
static void run_direct(struct run *r)
{
    PGconn *c = r->pc;
    long i = 0;

    while (now_ms() < r->deadline) {
        char id[24], v[64];
        const char *params[2] = { id, v };
        long k = r->cell == C_INSERT ? (long)r->idx * 100000000L + i++ : rand_id(r->a->rows);
        PGresult *res;

        snprintf(id, sizeof(id), "%ld", k);
        snprintf(v, sizeof(v), "payload of a row written directly %d", r->idx);
        res = PQexecPrepared(c, "s", r->cell == C_INSERT ? 2 : 1, params, NULL, NULL, 0);
        if ((r->cell == C_INSERT && PQresultStatus(res) == PGRES_COMMAND_OK) ||
            (r->cell == C_LOOKUP && PQresultStatus(res) == PGRES_TUPLES_OK &&
             PQntuples(res) == 1))
            sh->done[r->idx]++;
        else
            sh->bad[r->idx]++;
        PQclear(res);
    }
    PQfinish(c);
}

/* Fork P clients of a timed cell, start them together, wait. Returns
 * answers per second, or -1 when any answer was wrong. */
static double timed_cell(const struct args *a, enum cell cell, long *total)
{
    int go[2], ready[2];
    pid_t pids[MAX_CLIENTS];
    double start, last = 0;
    long bad = 0;

    memset(sh, 0, sizeof(*sh));
    if (pipe(go) != 0 || pipe(ready) != 0)
        return -1;
    for (int i = 0; i < a->clients; i++) {
        pids[i] = fork();
        if (pids[i] == 0) {
            struct run r = { .cell = cell, .a = a, .idx = i };
            char b;

            close(go[1]);
            rng_state = 0x9e3779b97f4a7c15ull ^ ((unsigned long long)getpid() << 20);
            if (cell == C_BCOPY || cell == C_BLOOKUP)
                r.bc = batchd_connect_unix(sock, 10000);
            else
                r.pc = direct_connect(cell);
            /* Connected: say so (and let go of the pipe, so that the
             * parent sees EOF if a client dies), then wait for the start. */
            close(ready[0]);
            if (write(ready[1], "r", 1) != 1)
                _exit(1);
            close(ready[1]);
            if (read(go[0], &b, 1) < 0)
                _exit(1);
            r.deadline = now_ms() + a->seconds * 1000;
            if (cell == C_BCOPY)
                run_bcopy(&r);
            else if (cell == C_BLOOKUP)
                run_blookup(&r);
            else
                run_direct(&r);
            sh->end_ms[i] = now_ms();
            _exit(0);
        }
    }
    close(go[0]);
    close(ready[1]);
    for (int i = 0; i < a->clients; i++) {
        char b;

        if (read(ready[0], &b, 1) != 1)
            break;              /* a client died: its count shows it */
    }
    close(ready[0]);
    start = now_ms();
    close(go[1]);             /* EOF wakes them all */
    for (int i = 0; i < a->clients; i++)
        waitpid(pids[i], NULL, 0);
    *total = 0;
    for (int i = 0; i < a->clients; i++) {
        *total += sh->done[i];
        bad += sh->bad[i];
        if (sh->end_ms[i] > last)
            last = sh->end_ms[i];
    }
    if (bad > 0) {
        fprintf(stderr, "pgload: %s: %ld wrong answers\n", cell_names[cell], bad);
        return -1;
    }
    return *total / ((last - start) / 1000);
}

/* bulk-copy: one COPY of n rows on one connection; rows/s. */
static double bulk_copy(long n)
{
    PGconn *c = db();
    char row[96];
    double t0, t1;
    PGresult *r;

    sql(c, "TRUNCATE w_rows");
    t0 = now_ms();
    r = PQexec(c, "COPY w_rows (id, v) FROM STDIN (FORMAT text)");
    PQclear(r);
    for (long i = 0; i < n; i++) {
        int len = snprintf(row, sizeof(row), "%ld\tpayload of a row written by bulk copy\n", i);

        PQputCopyData(c, row, len);
    }
    PQputCopyEnd(c, NULL);
    r = PQgetResult(c);
    t1 = now_ms();
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        fprintf(stderr, "pgload: bulk copy: %s", PQresultErrorMessage(r));
        PQclear(r);
        PQfinish(c);
        return -1;
    }
    PQclear(r);
    while ((r = PQgetResult(c)) != NULL)
        PQclear(r);
    PQfinish(c);
    return n / ((t1 - t0) / 1000);
}

/* ---- the run ----------------------------------------------------------------- */

static int cmp_d(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;

    return a < b ? -1 : a > b;
}

static double median(double *v, int n)
{
    double s[MAX_REPS];

    memcpy(s, v, (size_t)n * sizeof(*v));
    qsort(s, (size_t)n, sizeof(*s), cmp_d);
    return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

static void setup_tables(const struct args *a)
{
    PGconn *c = db();
    char q[256];

    sql(c, "CREATE TABLE w_rows (id bigint, v text)");
    sql(c, "CREATE TABLE ids (id bigint PRIMARY KEY, name text)");
    snprintf(q, sizeof(q), "INSERT INTO ids SELECT g, 'user ' || g FROM "
             "generate_series(1, %ld) g", a->rows);
    sql(c, q);
    sql(c, "VACUUM ANALYZE ids");
    /* Into shared_buffers (128 MB), so that no cell pays the first reads. */
    sql(c, "CREATE EXTENSION IF NOT EXISTS pg_prewarm");
    sql(c, "SELECT pg_prewarm('ids'), pg_prewarm('ids_pkey')");
    PQfinish(c);
}

static void usage(void)
{
    fprintf(stderr, "usage: pgload [--reps N] [--seconds S] [--clients P] [--depth D]\n"
            "              [--rows N] [--batchd PATH] [--sink-dir DIR]\n"
            "              [--w-conc N] [--r-conc N] [--r-min N] [--lookups-only]\n");
    exit(2);
}

static void parse(int argc, char **argv, struct args *a)
{
    static const struct option lo[] = {
        {"reps", required_argument, NULL, 'r'}, {"seconds", required_argument, NULL, 's'},
        {"clients", required_argument, NULL, 'P'}, {"depth", required_argument, NULL, 'D'},
        {"rows", required_argument, NULL, 'n'}, {"batchd", required_argument, NULL, 'b'},
        {"sink-dir", required_argument, NULL, 'k'}, {"w-conc", required_argument, NULL, 'W'},
        {"r-conc", required_argument, NULL, 'R'}, {"r-min", required_argument, NULL, 'm'},
        {"lookups-only", no_argument, NULL, 'L'},
        {NULL, 0, NULL, 0},
    };
    int o;

    *a = (struct args){ .reps = 3, .seconds = 2, .clients = 32, .depth = 64,
                        .rows = 1000000, .batchd = "build/batchd", .sink_dir = "build/sinks",
                        .wconc = 2, .rconc = 1, .rmin = 24 };
    while ((o = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (o) {
        case 'r': a->reps = atoi(optarg); break;
        case 's': a->seconds = atof(optarg); break;
        case 'P': a->clients = atoi(optarg); break;
        case 'D': a->depth = atoi(optarg); break;
        case 'n': a->rows = atol(optarg); break;
        case 'b': a->batchd = optarg; break;
        case 'k': a->sink_dir = optarg; break;
        case 'W': a->wconc = atoi(optarg); break;
        case 'R': a->rconc = atoi(optarg); break;
        case 'm': a->rmin = atoi(optarg); break;
        case 'L': a->lookups_only = 1; break;
        default: usage();
        }
    }
    if (a->reps < 1 || a->reps > MAX_REPS || a->clients < 1 || a->clients > MAX_CLIENTS ||
        a->depth < 1 || a->seconds <= 0 || a->rows < 1 || a->wconc < 1 || a->rconc < 1 ||
        a->rmin < 0)
        usage();
}

int main(int argc, char **argv)
{
    double v[C_NCELLS][MAX_REPS], m[C_NCELLS];
    struct args a;
    int failed = 0;

    parse(argc, argv, &a);
    signal(SIGPIPE, SIG_IGN);
    sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    pg = bd_pg_new();
    if (sh == MAP_FAILED || pg == NULL)
        return 1;
    setup_tables(&a);
    if (start_daemon(&a) != 0) {
        fprintf(stderr, "pgload: batchd did not start (%s)\n", a.batchd);
        bd_pg_free(pg);
        return 1;
    }
    for (int rep = 0; rep < a.reps; rep++) {
        long wrote = 0, n = 0;
        PGconn *c = db();

        if (!a.lookups_only) {
            sql(c, "TRUNCATE w_rows");
            v[C_BCOPY][rep] = timed_cell(&a, C_BCOPY, &wrote);
            sql(c, "TRUNCATE w_rows");
            v[C_INSERT][rep] = timed_cell(&a, C_INSERT, &n);
            v[C_BULK][rep] = bulk_copy(wrote > 0 ? wrote : 100000);
        } else {
            v[C_BCOPY][rep] = v[C_INSERT][rep] = v[C_BULK][rep] = 0;
        }
        v[C_BLOOKUP][rep] = timed_cell(&a, C_BLOOKUP, &n);
        v[C_LOOKUP][rep] = timed_cell(&a, C_LOOKUP, &n);
        PQfinish(c);
        for (int k = 0; k < C_NCELLS; k++) {
            printf("pgload rep=%d cell=%s per_s=%.0f\n", rep + 1, cell_names[k], v[k][rep]);
            failed |= v[k][rep] < 0;
        }
        fflush(stdout);
    }
    for (int k = 0; k < C_NCELLS; k++)
        m[k] = median(v[k], a.reps);
    printf("\n| cell (P=%d, batchd-copy D=%d, %.1f s, lookups over %ld rows) | per s, median of %d |\n"
           "|---|---|\n", a.clients, a.depth, a.seconds, a.rows, a.reps);
    for (int k = 0; k < C_NCELLS; k++)
        printf("| %s | %.0f |\n", cell_names[k], m[k]);
    /* Ratios per repetition (same minute of the machine), then medians. */
    {
        static const struct { enum cell a, b; const char *what; } rt[] = {
            { C_BCOPY, C_BULK, "batchd-copy / bulk-copy (target >= 0.4)" },
            { C_BCOPY, C_INSERT, "batchd-copy / direct-insert" },
            { C_INSERT, C_BULK, "direct-insert / bulk-copy" },
            { C_BLOOKUP, C_LOOKUP, "batchd-lookup / direct-lookup (target >= 5)" },
        };
        double r[MAX_REPS];

        printf("\n| ratio, per repetition | median |\n|---|---|\n");
        for (size_t k = 0; k < sizeof(rt) / sizeof(rt[0]); k++) {
            if (a.lookups_only && rt[k].a != C_BLOOKUP)
                continue;
            for (int rep = 0; rep < a.reps; rep++)
                r[rep] = v[rt[k].b][rep] > 0 ? v[rt[k].a][rep] / v[rt[k].b][rep] : 0;
            printf("| %s | %.3g |\n", rt[k].what, median(r, a.reps));
        }
    }
    kill(daemon_pid, SIGTERM);
    waitpid(daemon_pid, NULL, 0);
    bd_pg_free(pg);
    {
        char path[160];

        snprintf(path, sizeof(path), "%s/batchd.conf", dir);
        unlink(path);
        rmdir(dir);
    }
    return failed;
}
