/*
 * check_chaos.c - reliability under failure (DESIGN section 4): every
 * accepted item gets exactly one reply, and OK means the sink really
 * took it.
 *
 * Each test starts a real daemon with the chaos sink (sinks/chaos.c,
 * seeded failures, hangs and crashes, and a ledger of what it took),
 * drives it with tests/tools/chaosload (client processes that write a
 * ledger of what they were told), and judges both ledgers with the
 * oracle (tests/oracle.c). The oracle is the assertion; the counts per
 * status are printed so a run can be compared with the next.
 *
 * The seed is printed by every test and taken from BATCHD_CHAOS_SEED
 * when set (replayable up to thread interleaving). BATCHD_TEST_KEEP=1
 * keeps the ledgers; build/tests/tools/chaosoracle judges them again.
 *
 * "core":       failures and retries, deadlines, poison isolation
 * "disconnect": a client killed with its LOADs queued
 * "hang":       a hung sink, sink_timeout_ms, the loop stays responsive,
 *               SIGTERM owes abandoned calls nothing; every worker hung:
 *               another sink's timed-out batches must not run later
 * "shutdown":   SIGTERM with 20 000 items queued
 * "isolation":  sink crashes under isolation = process
 */
#include <inttypes.h>
#include <libgen.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <check.h>

#include "batchd.h"
#include "helpers.h"
#include "oracle.h"

/* isolate.c may not be linked yet (another change): test it only when it is. */
struct bd_sink;
struct bd_sink_conf;
struct batchd_host;
extern int bd_isolate_load(struct bd_sink *s, const struct bd_sink_conf *sc,
                           const struct batchd_host *host, char *err,
                           size_t errlen) __attribute__((weak));

#define CLIENT_DIR "clients"          /* under the daemon's directory */
#define SINK_LEDGER "sink.ledger"     /* ditto; chaos sink ledger = @DIR@/sink.ledger */

/* ---- seed, tools, stats ------------------------------------------------------ */

static unsigned long long test_seed(const char *scenario)
{
    const char *env = getenv("BATCHD_CHAOS_SEED");
    unsigned long long seed;

    if (env != NULL && env[0] != '\0') {
        seed = strtoull(env, NULL, 10);
    } else {
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        seed = ((unsigned long long)ts.tv_nsec ^ (unsigned long long)getpid() << 20) % 1000000007ull;
    }
    if (seed == 0)
        seed = 1;
    printf("chaos %s: seed %llu (BATCHD_CHAOS_SEED=%llu to replay)\n", scenario,
           seed, seed);
    fflush(stdout);
    return seed;
}

static const char *chaosload_bin(void)
{
    static char path[4096];
    const char *env = getenv("BATCHD_CHAOSLOAD_BIN");
    char dir[4096];

    if (env != NULL && env[0] != '\0')
        return env;
    snprintf(dir, sizeof(dir), "%s", bd_test_batchd_bin());
    snprintf(path, sizeof(path), "%s/tests/tools/chaosload", dirname(dir));
    return path;
}

/* A daemon with the chaos config; @SEED@ in body becomes seed and
 * @SEED1@ seed + 1. */
static struct bd_test_daemon *chaos_daemon(const char *body, unsigned long long seed)
{
    char conf[8192], s0[32], s1[32];
    const char *p = body;
    size_t o = 0;

    snprintf(s0, sizeof(s0), "%llu", seed);
    snprintf(s1, sizeof(s1), "%llu", seed + 1);
    while (*p != '\0' && o + 32 < sizeof(conf)) {
        if (strncmp(p, "@SEED@", 6) == 0) {
            o += (size_t)snprintf(conf + o, sizeof(conf) - o, "%s", s0);
            p += 6;
        } else if (strncmp(p, "@SEED1@", 7) == 0) {
            o += (size_t)snprintf(conf + o, sizeof(conf) - o, "%s", s1);
            p += 7;
        } else {
            conf[o++] = *p++;
        }
    }
    conf[o] = '\0';
    ck_assert_msg(*p == '\0', "config too long");
    return bd_test_daemon_start(conf);
}

/* The argv of one chaosload run: the fixed part, then the words of args. */
struct load_argv {
    char words[1024];
    char sock[256];
    char dir[256];
    char *argv[64];
};

static int exec_load(int idx, void *arg)
{
    struct load_argv *a = arg;

    (void)idx;
    execv(a->argv[0], a->argv);
    return bd_test_child_fail(idx, "exec %s: %m", a->argv[0]);
}

/*
 * Start chaosload against d in the background, with its ledgers in
 * <dir>/clients; args are its options ("-c 4 -n 100 ..."), printf-style.
 * Wait for it with load_wait.
 */
static struct bd_test_procs *load_start(struct bd_test_daemon *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static struct bd_test_procs *load_start(struct bd_test_daemon *d, const char *fmt, ...)
{
    static struct load_argv a;    /* the fork copies it */
    int n = 0;
    char *save = NULL;
    va_list ap;

    memset(&a, 0, sizeof(a));
    va_start(ap, fmt);
    vsnprintf(a.words, sizeof(a.words), fmt, ap);
    va_end(ap);
    snprintf(a.sock, sizeof(a.sock), "%s", bd_test_daemon_socket(d));
    snprintf(a.dir, sizeof(a.dir), "%s/" CLIENT_DIR, bd_test_daemon_dir(d));
    mkdir(a.dir, 0755);
    a.argv[n++] = (char *)chaosload_bin();
    a.argv[n++] = (char *)"-s";
    a.argv[n++] = a.sock;
    a.argv[n++] = (char *)"-o";
    a.argv[n++] = a.dir;
    for (char *w = strtok_r(a.words, " ", &save); w != NULL && n < 62;
         w = strtok_r(NULL, " ", &save))
        a.argv[n++] = w;
    a.argv[n] = NULL;
    ck_assert_msg(access(a.argv[0], X_OK) == 0, "%s: not built (make check-build)",
                  a.argv[0]);
    return bd_test_procs_start(1, exec_load, &a);
}

/* Wait for a chaosload run; assert it exited 0 (no client error). */
static void load_wait(struct bd_test_procs *p, int timeout_ms)
{
    int code = -1;

    bd_test_procs_wait(p, timeout_ms, &code);
    ck_assert_msg(code == 0, "chaosload exited %d (see its stderr above)", code);
}

static long long stat_of(const char *json, const char *name)
{
    long long v = -1;

    ck_assert_msg(bd_test_json_int(json, name, &v) == 0, "stats: no \"%s\"", name);
    return v;
}

static long long stat1(struct bd_test_daemon *d, const char *name)
{
    char *json = bd_test_stats_json(d);
    long long v = stat_of(json, name);

    free(json);
    return v;
}

/* Wait until nothing is queued, waiting to retry, or running. */
static void wait_idle(struct bd_test_daemon *d, int timeout_ms)
{
    double end = bd_test_now_ms() + timeout_ms;

    for (;;) {
        char *json = bd_test_stats_json(d);
        long long q = stat_of(json, "queued_items");
        long long r = stat_of(json, "retry_waiting");
        long long f = stat_of(json, "inflight_batches");

        free(json);
        if (q == 0 && r == 0 && f == 0)
            return;
        ck_assert_msg(bd_test_now_ms() < end, "not idle after %d ms: %lld queued, "
                      "%lld waiting to retry, %lld batches running", timeout_ms,
                      q, r, f);
        usleep(20000);
    }
}

/* Print the daemon's counters that the scenarios look at. */
static void print_stats(struct bd_test_daemon *d, const char *scenario)
{
    char *json = bd_test_stats_json(d);
    const char *names[] = {"items_in", "batches", "retries", "timeouts", "splits",
                           "cancelled", "send_failed"};

    printf("chaos %s: daemon:", scenario);
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        printf(" %s=%lld", names[i], stat_of(json, names[i]));
    printf("\n");
    free(json);
}

/* Run the oracle over d's ledgers, print it, assert it ran. */
static struct bd_oracle *judge(struct bd_test_daemon *d, long long send_failed,
                               unsigned lenient, const char *scenario)
{
    struct bd_oracle_opts opts = { .send_failed = send_failed, .lenient = lenient };
    char cdir[256], ledger[256];
    struct bd_oracle *o;

    snprintf(cdir, sizeof(cdir), "%s/" CLIENT_DIR, bd_test_daemon_dir(d));
    snprintf(ledger, sizeof(ledger), "%s/" SINK_LEDGER, bd_test_daemon_dir(d));
    opts.client_dir = cdir;
    opts.sink_ledger = ledger;
    o = bd_oracle_run(&opts);
    ck_assert_msg(o != NULL, "the oracle could not read %s or %s", cdir, ledger);
    printf("chaos %s:\n", scenario);
    bd_oracle_print(o, stdout);
    fflush(stdout);
    return o;
}

static void assert_clean(const struct bd_oracle *o, unsigned long long seed)
{
    ck_assert_msg(bd_oracle_violations(o) == 0, "seed %llu: %ld violations:\n%s",
                  seed, bd_oracle_violations(o), bd_oracle_report(o));
}

/* Requests of the oracle with a status outside the allowed set. */
static long count_other(const struct bd_oracle *o, const char *prefix,
                        const int *allowed, int n)
{
    long other = bd_oracle_count(o, prefix, -1);

    for (int i = 0; i < n; i++)
        other -= bd_oracle_count(o, prefix, allowed[i]);
    return other;
}

/* CPU seconds (user + system) of pid so far, from /proc. */
static double cpu_seconds(pid_t pid)
{
    char path[64], *text, *p;
    unsigned long ut = 0, st = 0;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    text = bd_test_read_file(path, NULL);
    if (text == NULL)
        return 0;
    p = strrchr(text, ')');
    /* fields after the comm: state(3) ... utime(14) stime(15) */
    if (p == NULL || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
                            &ut, &st) != 2)
        ut = st = 0;
    free(text);
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

#define CHAOS_SINK(name, extra) \
    "[sink." name "]\nplugin = chaos\nledger = @DIR@/" SINK_LEDGER "\n" extra "\n"

/* ---- 1. failures: 30 % of batches RETRY, 5 % FAIL (final), 5 % of items FAIL ---- */

#define FL_CLIENTS 32
#define FL_ITEMS 5000

START_TEST(test_batch_and_item_failures)
{
    unsigned long long seed = test_seed("failures");
    struct bd_test_daemon *d = chaos_daemon(
        CHAOS_SINK("ch", "seed = @SEED@\nfail_batch = 0.05\nretry_batch = 0.3\n"
                   "fail_item = 0.05")
        "[route.all]\nmatch = *\nsink = ch\nmax_attempts = 5\n"
        "retry_base_ms = 1\nretry_cap_ms = 20\nkey_concurrency = 2\n", seed);
    static const int load_ok[] = {BATCHD_OK, BATCHD_FAIL, BATCHD_RETRY_EXHAUSTED,
                                  BATCHD_ACCEPTED};
    double t0 = bd_test_now_ms();
    struct bd_oracle *o;
    char *json;
    long long send_failed, retries, splits, cancelled;

    /* every 4th item a SEND: their losses must show in send_failed;
     * four priority lanes, so retries, splits and aging mix with them */
    load_wait(load_start(d, "-c %d -n %d -k 8 -d 64 -z 48 --send-every 4 "
                         "--priorities 4", FL_CLIENTS, FL_ITEMS), 120000);
    wait_idle(d, 20000);
    print_stats(d, "failures");
    json = bd_test_stats_json(d);
    send_failed = stat_of(json, "send_failed");
    retries = stat_of(json, "retries");
    splits = stat_of(json, "splits");
    cancelled = stat_of(json, "cancelled");
    free(json);
    o = judge(d, send_failed, 0, "failures");
    printf("chaos failures: %.0f ms\n", bd_test_now_ms() - t0);
    assert_clean(o, seed);
    ck_assert_int_eq(bd_oracle_requests(o), FL_CLIENTS * FL_ITEMS);
    ck_assert_msg(count_other(o, NULL, load_ok, 4) == 0,
                  "statuses other than OK/FAIL/RETRY_EXHAUSTED/ACCEPTED");
    ck_assert_int_eq(bd_oracle_count(o, NULL, BATCHD_ACCEPTED), FL_CLIENTS * FL_ITEMS / 4);
    ck_assert_int_gt(bd_oracle_count(o, NULL, BATCHD_OK), 0);
    ck_assert_int_gt(bd_oracle_count(o, NULL, BATCHD_FAIL), 0);
    ck_assert_int_gt(bd_oracle_count(o, NULL, BATCHD_RETRY_EXHAUSTED), 0);
    ck_assert_int_gt(send_failed, 0);
    ck_assert_int_gt(retries, 0);
    ck_assert_int_gt(splits, 0);
    ck_assert_int_eq(cancelled, 0);
    bd_oracle_free(o);
    bd_test_daemon_stop(d);
}
END_TEST

/* ---- 2. deadlines expire while queued behind a slow sink ------------------------- */

START_TEST(test_expired_deadlines_never_reach_the_sink)
{
    unsigned long long seed = test_seed("deadlines");
    struct bd_test_daemon *d = chaos_daemon(
        CHAOS_SINK("ch", "seed = @SEED@\ndelay_ms = 200")
        "[route.all]\nmatch = *\nsink = ch\npolicy = immediate\n"
        "max_items = 100\nkey_concurrency = 1\n", seed);
    static const int allowed[] = {BATCHD_OK, BATCHD_DEADLINE_EXCEEDED};
    double t0 = bd_test_now_ms(), cpu0 = cpu_seconds(bd_test_daemon_pid(d)), wall;
    struct bd_oracle *o;
    long n, expired;

    load_wait(load_start(d, "-c 4 -n 500 -k 1 -d 50 --deadline-ms 50"), 60000);
    wall = (bd_test_now_ms() - t0) / 1000.0;
    printf("chaos deadlines: %.2f s, daemon CPU %.2f s\n", wall,
           cpu_seconds(bd_test_daemon_pid(d)) - cpu0);
    wait_idle(d, 10000);
    print_stats(d, "deadlines");
    o = judge(d, -1, 0, "deadlines");
    assert_clean(o, seed);
    n = bd_oracle_requests(o);
    expired = bd_oracle_count(o, NULL, BATCHD_DEADLINE_EXCEEDED);
    ck_assert_int_eq(n, 2000);
    ck_assert_msg(count_other(o, NULL, allowed, 2) == 0,
                  "statuses other than OK/DEADLINE_EXCEEDED");
    ck_assert_msg(expired * 2 > n, "only %ld of %ld items DEADLINE_EXCEEDED", expired, n);
    ck_assert_int_gt(bd_oracle_count(o, NULL, BATCHD_OK), 0);
    bd_oracle_free(o);
    bd_test_daemon_stop(d);
}
END_TEST

/* ---- 3. poison: one item fails every batch it is in --------------------------------- */

/*
 * c0-7 is poison: every batch it is in fails whole. It must end
 * RETRY_EXHAUSTED without reaching the sink and everything else OK.
 *
 * With stream, client 1 keeps the key busy (64 in flight, 20 ms per
 * call): retried items then wait for the running call and come back
 * together, so the poison's batches keep failing whole until the
 * daemon splits them (splits > 0). Without it, 16 items alone fill one
 * batch of max_items 16, and under the size policy the halves of a
 * split (or any retry) are never a full batch by themselves.
 */
static void poison_scenario(const char *policy, int stream)
{
    unsigned long long seed = test_seed("poison");
    char body[1024];
    struct bd_test_daemon *d;
    struct bd_test_procs *others = NULL;
    struct bd_oracle *o;
    long long splits, big = 0;
    long total = stream ? 16 + 300 : 16;
    int delivered = -1, st;
    char *json;

    printf("chaos poison: policy %s, %s\n", policy,
           stream ? "with another client on the key" : "16 items alone");
    snprintf(body, sizeof(body),
             CHAOS_SINK("ch", "seed = @SEED@\npoison = c0-7\ndelay_ms = %d")
             "[route.all]\nmatch = *\nsink = ch\npolicy = %s\nmax_items = 16\n"
             "max_delay_us = 500000\nmax_attempts = 10\nretry_base_ms = 1\n"
             "retry_cap_ms = 5\n", stream ? 20 : 0, policy);
    d = chaos_daemon(body, seed);
    if (stream)
        others = load_start(d, "--first-client 1 -c 1 -n 300 -k 1 -d 64 -w 10");
    /* all 10 attempts take well under a second: wait 5 s at most */
    load_wait(load_start(d, "-c 1 -n 16 -k 1 -d 16 -w 5"), 30000);
    if (others != NULL)
        load_wait(others, 30000);
    print_stats(d, "poison");
    o = judge(d, -1, 0, "poison");
    assert_clean(o, seed);
    st = bd_oracle_lookup(o, "c0-7", &delivered);
    ck_assert_msg(st == BATCHD_RETRY_EXHAUSTED && delivered == 0,
                  "poison item c0-7: %s, %d times in the sink ledger",
                  bd_oracle_status_name(st), delivered);
    ck_assert_int_eq(bd_oracle_count(o, NULL, BATCHD_OK), total - 1);
    ck_assert_int_eq(bd_oracle_sink_lines(o), total - 1);
    json = bd_test_stats_json(d);
    splits = stat_of(json, "splits");
    /* batch sizes 16..31 count in the "<32" bucket */
    ck_assert_msg(bd_test_json_int(json, "<32", &big) == 0 && big >= 1,
                  "no batch of 16 items: %s", json);
    free(json);
    if (stream)
        ck_assert_int_gt(splits, 0);
    bd_oracle_free(o);
    bd_test_daemon_stop(d);
}

START_TEST(test_poison_item_isolated_by_splitting)
{
    poison_scenario("duration", 1);
}
END_TEST

START_TEST(test_poison_item_isolated_size_policy)
{
    poison_scenario("size", 0);
}
END_TEST

/* ---- 4. a client killed with 5 000 LOADs queued ----------------------------------- */

#define KL_ITEMS 5000
#define KL_MAX_ITEMS 100
#define KL_SENDS 500

START_TEST(test_killed_client_loads_cancelled)
{
    unsigned long long seed = test_seed("kill");
    struct bd_test_daemon *d = chaos_daemon(
        CHAOS_SINK("ch", "seed = @SEED@\ndelay_ms = 100")
        "[route.all]\nmatch = *\nsink = ch\npolicy = immediate\n"
        "max_items = 100\nkey_concurrency = 1\n", seed);
    struct bd_test_procs *others;
    struct bd_oracle *o;
    long long sends_read, items_in, cancelled, killed_read;
    long delivered, others_ok, sends_delivered;
    char *json;

    /* A client that SENDs and dies: what the daemon ACCEPTED is its own
     * and must reach the sink, none of it cancelled. */
    load_wait(load_start(d, "--first-client 9 -c 1 -n %d -k 1 --key-prefix s "
                         "--send-every 1 --kill-after-submit", KL_SENDS), 30000);
    wait_idle(d, 30000);
    json = bd_test_stats_json(d);
    sends_read = stat_of(json, "items_in");
    ck_assert_int_eq(stat_of(json, "cancelled"), 0);
    free(json);
    /* Three clients keep working on one key the whole time ... */
    others = load_start(d, "--first-client 1 -c 3 -n 300 -k 1 --key-prefix q -d 30");
    /* ... while client 0 queues 5 000 LOADs on it and dies without reading. */
    load_wait(load_start(d, "--first-client 0 -c 1 -n %d -k 1 --key-prefix q "
                         "--kill-after-submit", KL_ITEMS), 30000);
    load_wait(others, 60000);
    wait_idle(d, 30000);
    bd_test_daemon_assert_alive(d);
    print_stats(d, "kill");
    json = bd_test_stats_json(d);
    items_in = stat_of(json, "items_in");
    cancelled = stat_of(json, "cancelled");
    free(json);
    o = judge(d, -1, 0, "kill");
    assert_clean(o, seed);
    others_ok = bd_oracle_count(o, NULL, BATCHD_OK);
    sends_delivered = bd_oracle_delivered(o, "c9-");
    delivered = bd_oracle_delivered(o, "c0-");
    killed_read = items_in - sends_read - 900;
    printf("chaos kill: killed SEND client: %d submitted, %lld read, %ld delivered\n",
           KL_SENDS, sends_read, sends_delivered);
    printf("chaos kill: killed LOAD client: %d submitted, %lld read by the daemon, "
           "%ld delivered (were in running calls), %lld cancelled\n", KL_ITEMS,
           killed_read, delivered, cancelled);
    ck_assert_int_gt(sends_read, 0);
    ck_assert_msg(sends_delivered == sends_read, "killed client: %lld SENDs "
                  "accepted, %ld delivered", sends_read, sends_delivered);
    ck_assert_int_eq(others_ok, 900);
    ck_assert_int_eq(bd_oracle_count(o, NULL, BD_ORACLE_KILLED), KL_ITEMS + KL_SENDS);
    ck_assert_int_gt(cancelled, 0);
    /* Every item of the killed client that the daemon read was either
     * delivered (it was in a call already) or cancelled: never both (the
     * sink fails nothing here), never neither. */
    ck_assert_msg(delivered + cancelled == killed_read,
                  "killed client: %lld read, %ld delivered + %lld cancelled",
                  killed_read, delivered, cancelled);
    /* Only calls already running or cut in the same pass may deliver. */
    ck_assert_msg(delivered <= 3 * KL_MAX_ITEMS,
                  "%ld items of the killed client reached the sink", delivered);
    bd_oracle_free(o);
    bd_test_daemon_stop(d);
}
END_TEST

/* ---- 5. a sink that hangs 10 s, sink_timeout_ms 1000 ----------------------------- */

struct ping_stats {
    int n;
    double max_ms, sum_ms;
};

/* Ping the daemon on a connection of its own for about ms. */
static void ping_for(struct bd_test_daemon *d, int ms, struct ping_stats *ps)
{
    struct batchd_client *c = bd_test_connect(d);
    double end = bd_test_now_ms() + ms;

    while (bd_test_now_ms() < end) {
        struct batchd_reply *r = NULL;
        double t = bd_test_now_ms(), dt;

        ck_assert_int_eq(batchd_control(c, "ping", NULL, 0, 5000, &r), BATCHD_CLIENT_OK);
        dt = bd_test_now_ms() - t;
        ck_assert_int_eq(r->status, BATCHD_OK);
        batchd_reply_free(r);
        ps->n++;
        ps->sum_ms += dt;
        if (dt > ps->max_ms)
            ps->max_ms = dt;
        usleep(20000);
    }
    batchd_free(c);
}

#define HG_GRACE_MS 2000
#define HG_GRACE_S "2000"

START_TEST(test_hung_sink_times_out_loop_responsive)
{
    unsigned long long seed = test_seed("hang");
    /* more workers than hung calls, so the healthy route keeps one */
    struct bd_test_daemon *d = chaos_daemon(
        "[daemon]\nmax_concurrency = 16\nshutdown_grace_ms = " HG_GRACE_S "\n\n"
        CHAOS_SINK("hang", "seed = @SEED@\nhang_rate = 1\nhang_ms = 10000")
        CHAOS_SINK("ok", "seed = @SEED1@")
        "[route.hang]\nmatch = hang.*\nsink = hang\npolicy = duration\n"
        "max_delay_us = 50000\nsink_timeout_ms = 1000\nmax_attempts = 3\n"
        "retry_base_ms = 10\nretry_cap_ms = 50\n\n"
        "[route.ok]\nmatch = *\nsink = ok\n", seed);
    static const int hung_ok[] = {BATCHD_SINK_TIMEOUT, BATCHD_RETRY_EXHAUSTED};
    struct bd_test_procs *hung, *fine;
    struct ping_stats ps = {0, 0, 0};
    struct bd_oracle *o;
    long long timeouts;
    long nhung;
    double t0, took;
    int code;

    hung = load_start(d, "--first-client 0 -c 2 -n 20 -k 1 --key-prefix hang. -d 20");
    fine = load_start(d, "--first-client 2 -c 2 -n 2000 -k 2 --key-prefix ok. -d 32");
    usleep(200000);
    ping_for(d, 2500, &ps);   /* the first call hangs all along */
    printf("chaos hang: %d pings while the sink hung: max %.2f ms, mean %.2f ms\n",
           ps.n, ps.max_ms, ps.sum_ms / ps.n);
    load_wait(fine, 60000);
    load_wait(hung, 60000);
    wait_idle(d, 10000);
    print_stats(d, "hang");
    timeouts = stat1(d, "timeouts");
    o = judge(d, -1, 0, "hang");
    assert_clean(o, seed);
    nhung = bd_oracle_count(o, "c0-", -1) + bd_oracle_count(o, "c1-", -1);
    ck_assert_int_eq(nhung, 40);
    ck_assert_msg(count_other(o, "c0-", hung_ok, 2) + count_other(o, "c1-", hung_ok, 2) == 0,
                  "hung items answered other than SINK_TIMEOUT/RETRY_EXHAUSTED");
    ck_assert_int_eq(bd_oracle_count(o, "c2-", BATCHD_OK) +
                     bd_oracle_count(o, "c3-", BATCHD_OK), 4000);
    ck_assert_int_ge(timeouts, 3);
    ck_assert_msg(ps.n > 10 && ps.max_ms < 100, "%d pings, slowest %.1f ms",
                  ps.n, ps.max_ms);
    bd_oracle_free(o);
    /* Every item has its answer and the hung calls were abandoned: SIGTERM
     * owes them nothing, so the exit (0, no leak) comes within the grace. */
    t0 = bd_test_now_ms();
    code = bd_test_daemon_kill(d, SIGTERM);
    took = bd_test_now_ms() - t0;
    printf("chaos hang: exit %d %.0f ms after SIGTERM (shutdown_grace_ms %d, "
           "sink calls still hung)\n", code, took, HG_GRACE_MS);
    if (code != 0 || took > HG_GRACE_MS + 2000) {
        char *log = bd_test_daemon_log(d);

        fprintf(stderr, "---- batchd log ----\n%s---- end ----\n", log);
        free(log);
    }
    ck_assert_msg(code == 0 && took <= HG_GRACE_MS + 2000,
                  "seed %llu: exit %d %.0f ms after SIGTERM, with shutdown_grace_ms "
                  "%d and nothing left to answer (23 = leak report)", seed, code,
                  took, HG_GRACE_MS);
    bd_test_daemon_free(d);
}
END_TEST

/*
 * Every worker thread hung in one sink: a healthy sink's batches wait in
 * the worker queue and time out without ever starting. Such a batch was
 * never run, so it must never run later either: the sink may take each
 * item once at most, and an item answered SINK_TIMEOUT not at all.
 */
START_TEST(test_hung_sink_no_duplicates_in_other_sink)
{
    unsigned long long seed = test_seed("starve");
    struct bd_test_daemon *d = chaos_daemon(
        "[daemon]\nmax_concurrency = 2\n\n"
        CHAOS_SINK("hang", "seed = @SEED@\nhang_rate = 1\nhang_ms = 3000")
        CHAOS_SINK("ok", "seed = @SEED1@")
        "[route.hang]\nmatch = hang.*\nsink = hang\nsink_timeout_ms = 300\n"
        "max_attempts = 1\n\n"
        "[route.ok]\nmatch = *\nsink = ok\nsink_timeout_ms = 500\n"
        "max_attempts = 3\nretry_base_ms = 10\nretry_cap_ms = 50\n", seed);
    static const int fine_ok[] = {BATCHD_OK, BATCHD_SINK_TIMEOUT};
    struct bd_test_procs *hung;
    struct bd_oracle *o;

    /* two hung calls take both workers for 3 s ... */
    hung = load_start(d, "--first-client 0 -c 1 -n 2 -k 2 --key-prefix hang. -d 2");
    usleep(200000);
    /* ... while the healthy sink gets 100 items */
    load_wait(load_start(d, "--first-client 1 -c 1 -n 100 -k 2 --key-prefix ok. -d 50"),
              30000);
    load_wait(hung, 30000);
    usleep(3500000);  /* the workers come back and run what was queued */
    wait_idle(d, 10000);
    print_stats(d, "starve");
    o = judge(d, -1, 0, "starve");
    assert_clean(o, seed);
    ck_assert_msg(count_other(o, "c1-", fine_ok, 2) == 0,
                  "healthy-sink items answered other than OK/SINK_TIMEOUT");
    bd_oracle_free(o);
    bd_test_daemon_stop(d);
}
END_TEST

/* ---- 6. SIGTERM with 20 000 items queued ------------------------------------------ */

#define SD_ITEMS 20000

START_TEST(test_sigterm_drains_every_item)
{
    unsigned long long seed = test_seed("shutdown");
    /* 4 keys x 5 000 items, 512 per call, 150 ms per call: about 1.5 s
     * of draining, plus the retries */
    struct bd_test_daemon *d = chaos_daemon(
        "[daemon]\nshutdown_grace_ms = 20000\n\n"
        CHAOS_SINK("ch", "seed = @SEED@\ndelay_ms = 150\nretry_item = 0.05\n"
                   "fail_item = 0.02")
        "[route.all]\nmatch = *\nsink = ch\npolicy = size\nmax_items = 512\n"
        "key_concurrency = 1\nmax_attempts = 3\nretry_base_ms = 1\n"
        "retry_cap_ms = 20\n", seed);
    static const int allowed[] = {BATCHD_OK, BATCHD_FAIL, BATCHD_RETRY_EXHAUSTED};
    struct batchd_client *c = bd_test_connect(d);
    struct batchd_reply *r = NULL;
    struct bd_test_procs *load;
    struct bd_oracle *o;
    double end, t0, took;
    int code;
    char *log;

    /* Paused: everything stays queued until SIGTERM flushes it. */
    ck_assert_int_eq(batchd_control(c, "pause", NULL, 0, 5000, &r), BATCHD_CLIENT_OK);
    ck_assert_int_eq(r->status, BATCHD_OK);
    batchd_reply_free(r);
    batchd_free(c);
    load = load_start(d, "-c 4 -n %d -k 4 -d %d -z 64", SD_ITEMS / 4, SD_ITEMS / 4);
    end = bd_test_now_ms() + 30000;
    while (stat1(d, "queued_items") < SD_ITEMS) {
        ck_assert_msg(bd_test_now_ms() < end, "only %lld of %d items queued",
                      stat1(d, "queued_items"), SD_ITEMS);
        usleep(20000);
    }
    t0 = bd_test_now_ms();
    code = bd_test_daemon_kill(d, SIGTERM);
    took = bd_test_now_ms() - t0;
    printf("chaos shutdown: %d items queued at SIGTERM, exit %d after %.0f ms\n",
           SD_ITEMS, code, took);
    load_wait(load, 30000);
    log = bd_test_daemon_log(d);
    ck_assert_msg(code == 0, "batchd exited %d after SIGTERM:\n%s", code, log);
    ck_assert_msg(strstr(log, "shutdown_grace over") == NULL,
                  "the drain ran into shutdown_grace_ms:\n%s", log);
    free(log);
    o = judge(d, -1, 0, "shutdown");
    assert_clean(o, seed);
    ck_assert_int_eq(bd_oracle_requests(o), SD_ITEMS);
    ck_assert_int_eq(bd_oracle_count(o, NULL, BD_ORACLE_NO_REPLY), 0);
    ck_assert_msg(count_other(o, NULL, allowed, 3) == 0,
                  "statuses other than OK/FAIL/RETRY_EXHAUSTED");
    ck_assert_msg(took < 20000, "exit took %.0f ms, shutdown_grace_ms is 20000", took);
    bd_oracle_free(o);
    bd_test_daemon_free(d);
}
END_TEST

/* ---- 7. sink crashes under isolation = process --------------------------------------- */

START_TEST(test_isolated_sink_crashes)
{
    unsigned long long seed = test_seed("isolation");
    static const int crashy_ok[] = {BATCHD_OK, BATCHD_FAIL, BATCHD_SINK_UNAVAILABLE,
                                    BATCHD_RETRY_EXHAUSTED};
    static const int loop_ok[] = {BATCHD_SINK_UNAVAILABLE};
    struct bd_test_daemon *d;
    struct bd_test_procs *crashy, *loop;
    struct ping_stats ps = {0, 0, 0};
    struct bd_oracle *o;
    pid_t pid;

    if (bd_isolate_load == NULL) {
        printf("chaos isolation: SKIPPED: daemon/isolate.c is not built in yet "
               "(isolation = process)\n");
        return;
    }
    /* crashy: a segfault in every 26th call of each runner; loop: every
     * call aborts, so its runner never completes anything */
    d = chaos_daemon(
        CHAOS_SINK("crashy", "isolation = process\nrestart_base_ms = 10\n"
                   "restart_cap_ms = 100\nunhealthy_after = 1000\nseed = @SEED@\n"
                   "crash_after = 25\ncrash_mode = segv\nleak_kb = 16\n"
                   "fail_item = 0.02")
        CHAOS_SINK("loop", "isolation = process\nrestart_base_ms = 10\n"
                   "restart_cap_ms = 50\nseed = @SEED1@\ncrash_after = 0\n"
                   "crash_mode = abort")
        "[route.loop]\nmatch = loop.*\nsink = loop\nmax_attempts = 3\n"
        "retry_base_ms = 5\nretry_cap_ms = 20\n\n"
        "[route.all]\nmatch = *\nsink = crashy\nmax_items = 20\nmax_attempts = 6\n"
        "retry_base_ms = 5\nretry_cap_ms = 50\n", seed);
    pid = bd_test_daemon_pid(d);
    crashy = load_start(d, "--first-client 0 -c 4 -n 1000 -k 4 -d 32");
    loop = load_start(d, "--first-client 4 -c 1 -n 100 -k 1 --key-prefix loop. -d 10");
    ping_for(d, 1000, &ps);
    load_wait(crashy, 90000);
    load_wait(loop, 90000);
    wait_idle(d, 20000);
    bd_test_daemon_assert_alive(d);
    ck_assert_int_eq(bd_test_daemon_pid(d), pid);
    print_stats(d, "isolation");
    printf("chaos isolation: %d pings, max %.2f ms\n", ps.n, ps.max_ms);
    o = judge(d, -1, 0, "isolation");
    assert_clean(o, seed);
    ck_assert_msg(count_other(o, "c0-", crashy_ok, 4) + count_other(o, "c1-", crashy_ok, 4) +
                  count_other(o, "c2-", crashy_ok, 4) + count_other(o, "c3-", crashy_ok, 4) == 0,
                  "crashy items answered other than OK/FAIL/SINK_UNAVAILABLE/RETRY_EXHAUSTED");
    ck_assert_msg(count_other(o, "c4-", loop_ok, 1) == 0,
                  "crash-loop items answered other than SINK_UNAVAILABLE");
    ck_assert_int_gt(bd_oracle_count(o, NULL, BATCHD_OK), 0);
    bd_oracle_free(o);
    bd_test_daemon_stop(d);
}
END_TEST

/* ---- the suite ------------------------------------------------------------------------- */

static Suite *chaos_suite(void)
{
    Suite *s = suite_create("chaos");
    TCase *core = tcase_create("core");
    TCase *disconnect = tcase_create("disconnect");
    TCase *hang = tcase_create("hang");
    TCase *shutdown = tcase_create("shutdown");
    TCase *isolation = tcase_create("isolation");

    tcase_set_timeout(core, 180);
    bd_test_add(core, test_batch_and_item_failures);
    bd_test_add(core, test_expired_deadlines_never_reach_the_sink);
    bd_test_add(core, test_poison_item_isolated_by_splitting);
    bd_test_add(core, test_poison_item_isolated_size_policy);
    suite_add_tcase(s, core);
    tcase_set_timeout(disconnect, 120);
    bd_test_add(disconnect, test_killed_client_loads_cancelled);
    suite_add_tcase(s, disconnect);
    tcase_set_timeout(hang, 120);
    bd_test_add(hang, test_hung_sink_times_out_loop_responsive);
    bd_test_add(hang, test_hung_sink_no_duplicates_in_other_sink);
    suite_add_tcase(s, hang);
    tcase_set_timeout(shutdown, 120);
    bd_test_add(shutdown, test_sigterm_drains_every_item);
    suite_add_tcase(s, shutdown);
    tcase_set_timeout(isolation, 180);
    bd_test_add(isolation, test_isolated_sink_crashes);
    suite_add_tcase(s, isolation);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(chaos_suite());
    int failed;

    setvbuf(stdout, NULL, _IOLBF, 0);   /* counts survive a failing assert */
    srunner_run_all(sr, CK_ENV);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
