/*
 * httpbench.c - HTTP: one request per item vs the same items through
 * batchd and the http sink (DESIGN section 7: HTTP >= 20x per-item
 * requests; bench/README.md "HTTP").
 *
 * One local server (tests/tools/httpd.c, evhttp) that costs a fixed
 * time per request: it answers each request delay_ms later (a timer, so
 * requests of different connections wait at once, like a backend with
 * fixed latency and spare capacity). Then, interleaved, reps times:
 *
 *   direct   P processes, each one libcurl easy handle (keep-alive), one
 *            POST per item, one after the other;
 *   batchd   P processes, each one libbatchd connection with D LOADs in
 *            flight, through a fresh batchd whose http sink POSTs batches
 *            (NDJSON, reply = status) to the same server.
 *
 * Prints items/s of each run, the medians and their ratio.
 *
 *   httpbench --batchd BIN --sink-dir DIR [--reps 3] [--procs 32]
 *             [--direct-items 300] [--batchd-items 20000] [--depth 256]
 *             [--delay-ms 2]
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "batchd.h"
#include "tools/httpd.h"

struct opts {
    const char *batchd;       /* daemon binary */
    const char *sink_dir;     /* where http.so is */
    int reps;
    int procs;
    int direct_items;         /* per process */
    int batchd_items;         /* per process */
    int depth;                /* LOADs in flight per batchd client */
    int delay_ms;             /* server cost per request */
};

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- clients ------------------------------------------------------------- */

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
    (void)p;
    (void)arg;
    return size * n;
}

/* One process of the direct mode: n POSTs of one item each. */
static int direct_client(const char *url, int idx, int n)
{
    CURL *h = curl_easy_init();
    struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/x-ndjson");
    char body[96];
    int ok = 0;

    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    for (int i = 0; i < n; i++) {
        long status = 0;

        snprintf(body, sizeof(body), "{\"client\":%d,\"item\":%d,\"pad\":\"xxxxxxxx\"}\n",
                 idx, i);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        if (curl_easy_perform(h) == CURLE_OK &&
            curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK &&
            status == 200)
            ok++;
    }
    curl_slist_free_all(hdr);
    curl_easy_cleanup(h);
    return ok == n ? 0 : 1;
}

static void count_ok(struct batchd_client *c, const struct batchd_reply *r,
                     void *arg)
{
    (void)c;
    if (r != NULL && r->status == BATCHD_OK)
        ++*(int *)arg;
}

/* One process of the batchd mode: n LOADs, depth in flight. */
static int batchd_client(const char *sock, int idx, int n, int depth)
{
    struct batchd_client *c = batchd_connect_unix(sock, 5000);
    char body[96];
    int sent = 0, ok = 0;

    if (batchd_err(c) != 0) {
        fprintf(stderr, "client %d: %s\n", idx, batchd_errstr(c));
        batchd_free(c);
        return 1;
    }
    while (sent < n || batchd_pending(c) > 0) {
        while (sent < n && batchd_pending(c) < (size_t)depth) {
            int len = snprintf(body, sizeof(body),
                               "{\"client\":%d,\"item\":%d,\"pad\":\"xxxxxxxx\"}",
                               idx, sent);

            if (batchd_submit_load(c, "events", body, (size_t)len, NULL,
                                   count_ok, &ok, NULL) != BATCHD_CLIENT_OK)
                break;
            sent++;
        }
        if (batchd_process(c, -1) < 0)
            break;
    }
    batchd_free(c);
    return ok == n ? 0 : 1;
}

/* Fork procs clients that wait on a pipe, start them together, and
 * return the seconds until the last one exited (-1 when one failed). */
static double run_clients(const struct opts *o, int mode, const char *target)
{
    int gate[2], failed = 0;
    double t0;

    if (pipe(gate) != 0)
        return -1;
    for (int i = 0; i < o->procs; i++) {
        pid_t pid = fork();

        if (pid == 0) {
            char b;

            close(gate[1]);
            if (read(gate[0], &b, 1) < 0)
                _exit(2);
            _exit(mode == 0 ? direct_client(target, i, o->direct_items) :
                  batchd_client(target, i, o->batchd_items, o->depth));
        }
    }
    close(gate[0]);
    t0 = now_s();
    close(gate[1]); /* EOF releases every client at once */
    for (int i = 0; i < o->procs; i++) {
        int st;

        if (wait(&st) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
            failed = 1;
    }
    return failed ? -1 : now_s() - t0;
}

/* ---- batchd -------------------------------------------------------------- */

static pid_t start_batchd(const struct opts *o, const char *dir, const char *url,
                          char *sock, size_t socklen)
{
    char conf[256];
    FILE *f;
    pid_t pid;

    snprintf(sock, socklen, "%s/s.sock", dir);
    snprintf(conf, sizeof(conf), "%s/batchd.conf", dir);
    f = fopen(conf, "w");
    if (f == NULL)
        return -1;
    fprintf(f, "[daemon]\nsocket = %s\nlog_level = warn\nmax_concurrency = 8\n"
            "[sink.h]\nplugin = http\nurl = %s/bulk\n"
            "[route.all]\nmatch = *\nsink = h\npolicy = immediate\n"
            "max_items = 4000\nkey_concurrency = 8\n", sock, url);
    fclose(f);
    pid = fork();
    if (pid == 0) {
        execl(o->batchd, "batchd", "-c", conf, "--sink-dir", o->sink_dir,
              (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 500; i++) { /* up to 10 s for the socket */
        struct batchd_client *c = batchd_connect_unix(sock, 1000);
        int err = batchd_err(c);

        batchd_free(c);
        if (err == 0)
            return pid;
        usleep(20000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
}

static int stop_batchd(pid_t pid)
{
    int st = 0;

    kill(pid, SIGTERM);
    waitpid(pid, &st, 0);
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

/* ---- main ------------------------------------------------------------------ */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static int parse(struct opts *o, int argc, char **argv)
{
    *o = (struct opts){.reps = 3, .procs = 32, .direct_items = 300,
                       .batchd_items = 20000, .depth = 256, .delay_ms = 2};
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];

        if (strcmp(k, "--batchd") == 0) o->batchd = v;
        else if (strcmp(k, "--sink-dir") == 0) o->sink_dir = v;
        else if (strcmp(k, "--reps") == 0) o->reps = atoi(v);
        else if (strcmp(k, "--procs") == 0) o->procs = atoi(v);
        else if (strcmp(k, "--direct-items") == 0) o->direct_items = atoi(v);
        else if (strcmp(k, "--batchd-items") == 0) o->batchd_items = atoi(v);
        else if (strcmp(k, "--depth") == 0) o->depth = atoi(v);
        else if (strcmp(k, "--delay-ms") == 0) o->delay_ms = atoi(v);
        else return -1;
    }
    if (o->batchd == NULL || o->sink_dir == NULL || o->reps < 1 || o->reps > 50 ||
        o->procs < 1 || o->direct_items < 1 || o->batchd_items < 1 || o->depth < 1)
        return -1;
    return 0;
}

int main(int argc, char **argv)
{
    struct opts o;
    struct bd_httpd *srv;
    struct bd_httpd_conf sc = {.dflt = {.status = 200}};
    double direct[50], batched[50];
    char dir[] = "/tmp/bd-httpbench-XXXXXX", url[192], sock[256];
    int bad = 0;

    if (parse(&o, argc, argv) != 0) {
        fprintf(stderr, "usage: httpbench --batchd BIN --sink-dir DIR [--reps N] "
                "[--procs P] [--direct-items N] [--batchd-items N] [--depth D] "
                "[--delay-ms MS]\n");
        return 2;
    }
    if (mkdtemp(dir) == NULL)
        return 1;
    sc.dflt.delay_ms = o.delay_ms;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    srv = bd_httpd_start(&sc);
    if (srv == NULL)
        return 1;
    snprintf(url, sizeof(url), "%s/bulk", bd_httpd_base_url(srv));
    printf("http: server answers each request %d ms later; %d processes\n",
           o.delay_ms, o.procs);
    for (int r = 0; r < o.reps; r++) {
        pid_t d;
        double t = run_clients(&o, 0, url);

        direct[r] = t > 0 ? (double)o.procs * o.direct_items / t : 0;
        bad |= t < 0;
        d = start_batchd(&o, dir, bd_httpd_base_url(srv), sock, sizeof(sock));
        if (d < 0) {
            fprintf(stderr, "httpbench: batchd did not start\n");
            bad = 1;
            break;
        }
        t = run_clients(&o, 1, sock);
        batched[r] = t > 0 ? (double)o.procs * o.batchd_items / t : 0;
        bad |= t < 0 || stop_batchd(d) != 0;
        printf("rep %d: direct %.0f items/s (one request per item), batchd %.0f "
               "items/s\n", r + 1, direct[r], batched[r]);
        fflush(stdout);
    }
    if (!bad) {
        double md = median(direct, o.reps), mb = median(batched, o.reps);

        printf("median of %d: direct %.0f items/s, batchd %.0f items/s: %.1fx "
               "(target >= 20x)\n", o.reps, md, mb, md > 0 ? mb / md : 0);
    }
    bd_httpd_stop(srv);
    rmdir(dir);
    unlink(sock);
    return bad ? 1 : 0;
}
