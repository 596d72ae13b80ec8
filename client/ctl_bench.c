/*
 * ctl_bench.c - "batchctl bench": a load generator of real client
 * processes (DESIGN section 7).
 *
 * The parent forks CLIENTS children. Each opens its own connection,
 * reports ready, waits for the common start, then keeps INFLIGHT
 * requests in flight until it has done ITEMS of them: every reply's
 * callback records the latency and submits the next request from the
 * same slot, so there is no allocation per request. A child sends its
 * whole result (a fixed-size histogram and counters) to the parent over
 * its own pipe; the parent merges and prints.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "batchd.h"
#include "ctl_bench.h"
#include "hist.h"
#include "io.h"


#define BENCH_MAX_CLIENTS 4096
#define BENCH_MAX_INFLIGHT 1000000
#define BENCH_MAX_KEYS 10000000
#define BENCH_MAX_SIZE (64u << 20)

struct bench_args {
    const char *socket;       /* NULL: the library's default */
    int timeout_ms;           /* connect, and the longest wait for a reply */
    uint64_t clients;         /* processes */
    uint64_t inflight;        /* requests in flight per process */
    uint64_t items;           /* requests per process */
    uint64_t keys;            /* distinct keys, used round-robin */
    uint64_t size;            /* payload bytes */
    int send;                 /* SEND instead of LOAD */
    int json;                 /* machine-readable output */
    const char *prefix;       /* key name prefix */
};

/* What a child writes to the parent; fixed size, no pointers. */
struct bench_result {
    int connected;            /* 0: errstr says why the connect failed */
    char errstr[160];         /* first error seen, "" if none */
    uint64_t t_start;         /* CLOCK_MONOTONIC ns at the common start */
    uint64_t t_end;           /* ... when the last reply came */
    uint64_t failed;          /* requests without a reply (connection lost) */
    uint64_t status[BATCHD_STATUS_COUNT]; /* replies per status */
    uint64_t max_ns;          /* slowest reply */
    uint64_t hist[BD_HIST_BUCKETS]; /* latency histogram, ns */
};

struct bench_child;

/* One of INFLIGHT request slots; its address is the callback's arg. */
struct bench_slot {
    struct bench_child *b;
    uint64_t t0;              /* submit time of the request in flight, ns */
};

/* A child's state. */
struct bench_child {
    const struct bench_args *a;
    struct batchd_client *c;
    struct bench_result *res;
    char **keys;              /* a->keys names */
    void *payload;            /* a->size bytes */
    uint64_t issued;          /* requests submitted */
    uint64_t completed;       /* requests answered or failed */
};

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int ctl_parse_num(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end;
    unsigned long long v;

    if (s == NULL || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}


/* ---- child ------------------------------------------------------------- */

static void bench_cb(struct batchd_client *c, const struct batchd_reply *r,
                     void *arg);

/* Submit the next request from slot s; t is "now" when known. */
static void bench_issue(struct bench_slot *s, uint64_t t)
{
    struct bench_child *b = s->b;
    const struct bench_args *a = b->a;
    const char *key = b->keys[b->issued % a->keys];
    int rc;

    b->issued++;
    s->t0 = t;
    if (a->send)
        rc = batchd_submit_send(b->c, key, b->payload, a->size, NULL,
                                bench_cb, s, NULL);
    else
        rc = batchd_submit_load(b->c, key, b->payload, a->size, NULL,
                                bench_cb, s, NULL);
    if (rc != BATCHD_CLIENT_OK) {
        b->res->failed++;
        b->completed++;
        if (b->res->errstr[0] == '\0')
            snprintf(b->res->errstr, sizeof(b->res->errstr), "%s",
                     batchd_errstr(b->c));
    }
}

static void bench_cb(struct batchd_client *c, const struct batchd_reply *r,
                     void *arg)
{
    struct bench_slot *s = arg;
    struct bench_child *b = s->b;
    struct bench_result *res = b->res;
    uint64_t t = now_ns(), lat = t - s->t0;

    b->completed++;
    if (r == NULL) {
        res->failed++;
        if (res->errstr[0] == '\0')
            snprintf(res->errstr, sizeof(res->errstr), "%s",
                     batchd_errstr(c));
        return;
    }
    res->hist[bd_hist_index(lat)]++;
    if (lat > res->max_ns)
        res->max_ns = lat;
    if (r->status >= 0 && r->status < BATCHD_STATUS_COUNT)
        res->status[r->status]++;
    if (b->issued < b->a->items)
        bench_issue(s, t);
}

/* Keep the slots busy until every item is done or the connection fails. */
static void bench_loop(struct bench_child *b, struct bench_slot *slots)
{
    const struct bench_args *a = b->a;
    uint64_t n = a->inflight < a->items ? a->inflight : a->items;
    uint64_t t = now_ns();

    b->res->t_start = t;
    for (uint64_t i = 0; i < n; i++) {
        slots[i].b = b;
        bench_issue(&slots[i], t);
    }
    while (b->completed < b->issued || b->issued < a->items) {
        int rc = batchd_process(b->c, a->timeout_ms > 0 ? a->timeout_ms : -1);

        if (rc < 0)
            break;
        if (rc == 0 && batchd_pending(b->c) > 0) {
            snprintf(b->res->errstr, sizeof(b->res->errstr),
                     "no reply within %d ms", a->timeout_ms);
            break;
        }
        if (rc == 0)
            break; /* nothing pending and nothing left to issue */
    }
    b->res->t_end = now_ns();
    /* Requests never submitted count as failed; batchd_free fails the
     * ones still in flight through their callbacks. */
    b->res->failed += a->items - b->issued;
}

static void bench_keys_free(char **keys, uint64_t n)
{
    if (keys == NULL)
        return;
    for (uint64_t i = 0; i < n; i++)
        free(keys[i]);
    free(keys);
}

/* Returns the key names "<prefix>0".."<prefix>K-1", or NULL; free with
 * bench_keys_free. */
static char **bench_keys(const struct bench_args *a)
{
    char **keys = calloc(a->keys, sizeof(*keys));

    if (keys == NULL)
        return NULL;
    for (uint64_t i = 0; i < a->keys; i++) {
        if (asprintf(&keys[i], "%s%" PRIu64, a->prefix, i) < 0) {
            keys[i] = NULL;
            bench_keys_free(keys, i);
            return NULL;
        }
    }
    return keys;
}

/* Connect, say ready (one byte, also after a failed connect), wait for
 * the common start (EOF on go_fd), run, send the result. */
static int bench_child_run(struct bench_child *b, struct bench_slot *slots,
                           int res_fd, int go_fd)
{
    const struct bench_args *a = b->a;
    struct bench_result *res = b->res;
    char ready = 'r', ch;

    memset(b->payload, 'x', a->size);
    b->c = batchd_connect_unix(a->socket, a->timeout_ms);
    if (b->c == NULL)
        return CTL_EXIT_IO;
    res->connected = batchd_err(b->c) == BATCHD_ERR_NONE;
    if (!res->connected)
        snprintf(res->errstr, sizeof(res->errstr), "%s", batchd_errstr(b->c));
    if (bd_write_all(res_fd, &ready, 1) != 0)
        return CTL_EXIT_IO;
    while (read(go_fd, &ch, 1) < 0 && errno == EINTR)
        ;
    if (res->connected)
        bench_loop(b, slots);
    batchd_free(b->c); /* fails what is still in flight, via bench_cb */
    b->c = NULL;
    return bd_write_all(res_fd, res, sizeof(*res)) == 0 ? 0 : CTL_EXIT_IO;
}

/* A child's whole life; returns its exit code. */
static int bench_child_main(const struct bench_args *a, int res_fd, int go_fd)
{
    struct bench_child b = { .a = a };
    struct bench_slot *slots;
    int rc = CTL_EXIT_IO;

    b.res = calloc(1, sizeof(*b.res));
    if (b.res == NULL)
        return rc;
    slots = calloc(a->inflight, sizeof(*slots));
    if (slots == NULL)
        goto out_free_result;
    b.keys = bench_keys(a);
    if (b.keys == NULL)
        goto out_free_slots;
    b.payload = malloc(a->size ? a->size : 1);
    if (b.payload == NULL)
        goto out_free_keys;
    rc = bench_child_run(&b, slots, res_fd, go_fd);
    batchd_free(b.c);
    free(b.payload);
out_free_keys:
    bench_keys_free(b.keys, a->keys);
out_free_slots:
    free(slots);
out_free_result:
    free(b.res);
    return rc;
}

/* ---- parent ------------------------------------------------------------ */

/* Fork the children; *res_fds gets one read end per child. Returns 0 or
 * -1 (children already started are killed by the caller's cleanup). */
static int bench_fork(const struct bench_args *a, int *res_fds, pid_t *pids,
                      int go[2])
{
    for (uint64_t i = 0; i < a->clients; i++) {
        int p[2];

        if (pipe(p) != 0) {
            perror("batchctl bench: pipe");
            return -1;
        }
        pids[i] = fork();
        if (pids[i] < 0) {
            perror("batchctl bench: fork");
            close(p[0]);
            close(p[1]);
            return -1;
        }
        if (pids[i] == 0) {
            int rc;

            close(p[0]);
            close(go[1]); /* or the start signal (EOF) never comes */
            free(res_fds);
            free(pids);
            rc = bench_child_main(a, p[1], go[0]);
            _exit(rc);
        }
        close(p[1]);
        res_fds[i] = p[0];
    }
    return 0;
}

/* Wait until every child is connected, then start them all at once by
 * closing the go pipe. A child that died shows as a short read later. */
static void bench_start(const struct bench_args *a, const int *res_fds,
                        int go[2])
{
    char ch;

    for (uint64_t i = 0; i < a->clients; i++)
        (void)bd_read_all(res_fds[i], &ch, 1);
    close(go[1]);
    go[1] = -1;
}

/* Fold child results into total. Returns the number of children that
 * sent nothing readable (crashed). */
static uint64_t bench_collect(const struct bench_args *a, const int *res_fds,
                              struct bench_result *total, char *err,
                              size_t errlen)
{
    struct bench_result r;
    uint64_t lost = 0;

    memset(total, 0, sizeof(*total));
    total->connected = 1;
    total->t_start = UINT64_MAX;
    for (uint64_t i = 0; i < a->clients; i++) {
        if (bd_read_all(res_fds[i], &r, sizeof(r)) != 0) {
            lost++;
            snprintf(err, errlen, "client %" PRIu64 " died", i);
            continue;
        }
        if (r.errstr[0] != '\0' && err[0] == '\0')
            snprintf(err, errlen, "client %" PRIu64 ": %s", i, r.errstr);
        if (!r.connected) {
            total->connected = 0;
            continue;
        }
        if (r.t_start < total->t_start)
            total->t_start = r.t_start;
        if (r.t_end > total->t_end)
            total->t_end = r.t_end;
        total->failed += r.failed;
        if (r.max_ns > total->max_ns)
            total->max_ns = r.max_ns;
        for (int s = 0; s < BATCHD_STATUS_COUNT; s++)
            total->status[s] += r.status[s];
        for (unsigned h = 0; h < BD_HIST_BUCKETS; h++)
            total->hist[h] += r.hist[h];
    }
    return lost;
}

static uint64_t replies(const struct bench_result *t)
{
    uint64_t n = 0;

    for (int s = 0; s < BATCHD_STATUS_COUNT; s++)
        n += t->status[s];
    return n;
}

static void print_text(const struct bench_args *a, const struct bench_result *t,
                       double secs)
{
    uint64_t n = replies(t);

    printf("clients      %" PRIu64 "\n", a->clients);
    printf("inflight     %" PRIu64 " per client\n", a->inflight);
    printf("items        %" PRIu64 " (%" PRIu64 " per client, %s, %" PRIu64
           " bytes, %" PRIu64 " keys)\n", a->clients * a->items, a->items,
           a->send ? "send" : "load", a->size, a->keys);
    printf("elapsed      %.3f s\n", secs);
    printf("throughput   %.0f items/s\n", secs > 0 ? (double)n / secs : 0.0);
    printf("latency      p50 %.1f us  p99 %.1f us  p999 %.1f us  max %.1f us\n",
           bd_hist_quantile(t->hist, n, 0.50) / 1e3,
           bd_hist_quantile(t->hist, n, 0.99) / 1e3,
           bd_hist_quantile(t->hist, n, 0.999) / 1e3, t->max_ns / 1e3);
    for (int s = 0; s < BATCHD_STATUS_COUNT; s++)
        if (t->status[s] > 0)
            printf("status       %s %" PRIu64 "\n", batchd_status_name(s),
                   t->status[s]);
    printf("failed       %" PRIu64 "\n", t->failed);
}

static void print_json(const struct bench_args *a, const struct bench_result *t,
                       double secs)
{
    uint64_t n = replies(t);
    const char *sep = "";

    printf("{\"clients\":%" PRIu64 ",\"inflight\":%" PRIu64
           ",\"items\":%" PRIu64 ",\"items_per_client\":%" PRIu64
           ",\"mode\":\"%s\",\"size\":%" PRIu64 ",\"keys\":%" PRIu64
           ",\"elapsed_s\":%.6f,\"items_per_s\":%.1f,", a->clients,
           a->inflight, a->clients * a->items, a->items,
           a->send ? "send" : "load", a->size, a->keys, secs,
           secs > 0 ? (double)n / secs : 0.0);
    printf("\"latency_us\":{\"p50\":%.3f,\"p99\":%.3f,\"p999\":%.3f,"
           "\"max\":%.3f},\"status\":{",
           bd_hist_quantile(t->hist, n, 0.50) / 1e3,
           bd_hist_quantile(t->hist, n, 0.99) / 1e3,
           bd_hist_quantile(t->hist, n, 0.999) / 1e3, t->max_ns / 1e3);
    for (int s = 0; s < BATCHD_STATUS_COUNT; s++) {
        if (t->status[s] == 0)
            continue;
        printf("%s\"%s\":%" PRIu64, sep, batchd_status_name(s), t->status[s]);
        sep = ",";
    }
    printf("},\"failed\":%" PRIu64 "}\n", t->failed);
}

/* Exit code for the merged result: any failure or any status other than
 * OK/ACCEPTED is 1, so tests can rely on it. */
static int bench_verdict(const struct bench_result *t)
{
    if (t->failed > 0)
        return CTL_EXIT_STATUS;
    for (int s = 0; s < BATCHD_STATUS_COUNT; s++)
        if (s != BATCHD_OK && s != BATCHD_ACCEPTED && t->status[s] > 0)
            return CTL_EXIT_STATUS;
    return CTL_EXIT_OK;
}

/* Report, then decide the exit code. */
static int bench_report(const struct bench_args *a, struct bench_result *t,
                        uint64_t lost, const char *err)
{
    double secs;

    if (!t->connected) {
        fprintf(stderr, "batchctl bench: %s\n", err);
        return CTL_EXIT_IO;
    }
    secs = t->t_end > t->t_start ? (t->t_end - t->t_start) / 1e9 : 0.0;
    t->failed += lost * a->items;
    if (a->json)
        print_json(a, t, secs);
    else
        print_text(a, t, secs);
    fflush(stdout);
    if (err[0] != '\0')
        fprintf(stderr, "batchctl bench: %s\n", err);
    return bench_verdict(t);
}

/* Start the children, gather and print. Returns the exit code. */
static int bench_finish(const struct bench_args *a, const int *res_fds,
                        int go[2])
{
    struct bench_result *total = malloc(sizeof(*total));
    char err[256] = "";
    uint64_t lost;
    int rc;

    bench_start(a, res_fds, go); /* even without memory: let them go */
    if (total == NULL) {
        fprintf(stderr, "batchctl bench: out of memory\n");
        return CTL_EXIT_IO;
    }
    lost = bench_collect(a, res_fds, total, err, sizeof(err));
    rc = bench_report(a, total, lost, err);
    free(total);
    return rc;
}

/* Close the result pipes and wait for every child; kill them first when
 * the run never started. */
static void bench_reap(const struct bench_args *a, const int *res_fds,
                       const pid_t *pids, int kill_them)
{
    for (uint64_t i = 0; i < a->clients; i++) {
        if (kill_them && pids[i] > 0)
            kill(pids[i], SIGTERM);
        if (res_fds[i] >= 0)
            close(res_fds[i]);
    }
    for (uint64_t i = 0; i < a->clients; i++)
        if (pids[i] > 0)
            waitpid(pids[i], NULL, 0);
}

static int bench_run(const struct bench_args *a)
{
    int *res_fds = malloc(a->clients * sizeof(*res_fds));
    pid_t *pids = calloc(a->clients, sizeof(*pids));
    int go[2] = { -1, -1 }, rc = CTL_EXIT_IO, forked;

    if (res_fds == NULL || pids == NULL) {
        fprintf(stderr, "batchctl bench: out of memory\n");
        goto out_free;
    }
    for (uint64_t i = 0; i < a->clients; i++)
        res_fds[i] = -1;
    if (pipe(go) != 0) {
        perror("batchctl bench: pipe");
        goto out_free;
    }
    fflush(NULL); /* children must not flush the parent's stdio buffers */
    forked = bench_fork(a, res_fds, pids, go) == 0;
    if (forked)
        rc = bench_finish(a, res_fds, go);
    bench_reap(a, res_fds, pids, !forked);
    close(go[0]);
    if (go[1] >= 0)
        close(go[1]);
out_free:
    free(pids);
    free(res_fds);
    return rc;
}

/* Returns 0, or -1 after printing why. */
static int bench_parse(int argc, char **argv, struct bench_args *a)
{
    static const struct option longopts[] = {
        { "send", no_argument, NULL, 'S' },
        { "key-prefix", required_argument, NULL, 'p' },
        { "json", no_argument, NULL, 'j' },
        { NULL, 0, NULL, 0 },
    };
    int ch, bad = 0;

    optind = 0; /* GNU: rescan from argv[1] */
    while (!bad && (ch = getopt_long(argc, argv, "c:d:n:k:z:", longopts,
                                     NULL)) != -1) {
        switch (ch) {
        case 'c': bad = ctl_parse_num(optarg, 1, BENCH_MAX_CLIENTS, &a->clients); break;
        case 'd': bad = ctl_parse_num(optarg, 1, BENCH_MAX_INFLIGHT, &a->inflight); break;
        case 'n': bad = ctl_parse_num(optarg, 1, UINT32_MAX, &a->items); break;
        case 'k': bad = ctl_parse_num(optarg, 1, BENCH_MAX_KEYS, &a->keys); break;
        case 'z': bad = ctl_parse_num(optarg, 0, BENCH_MAX_SIZE, &a->size); break;
        case 'S': a->send = 1; break;
        case 'p': a->prefix = optarg; break;
        case 'j': a->json = 1; break;
        default: return -1;
        }
        if (bad)
            fprintf(stderr, "batchctl bench: -%c: bad number '%s'\n", ch,
                    optarg);
    }
    if (bad)
        return -1;
    if (optind < argc) {
        fprintf(stderr, "batchctl bench: unexpected '%s'\n", argv[optind]);
        return -1;
    }
    if (strlen(a->prefix) + 8 > 256) {
        fprintf(stderr, "batchctl bench: --key-prefix is too long\n");
        return -1;
    }
    return 0;
}

int ctl_bench(const char *socket, int timeout_ms, int argc, char **argv)
{
    struct bench_args a = {
        .socket = socket,
        .timeout_ms = timeout_ms,
        .clients = 1,
        .inflight = 1,
        .items = 10000,
        .keys = 1,
        .size = 64,
        .prefix = "bench-",
    };

    if (bench_parse(argc, argv, &a) != 0)
        return CTL_EXIT_USAGE;
    return bench_run(&a);
}
