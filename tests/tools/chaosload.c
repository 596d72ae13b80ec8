/*
 * chaosload.c - the load tool of the chaos suite (tests/check_chaos.c).
 *
 * Forks C client processes that talk to a daemon through libbatchd's
 * async API. Client n (numbered from --first-client) keeps D requests in
 * flight and sends N items over K keys, item s to key "<prefix><s % K>"
 * with the payload "c<n>-<s> " padded to SIZE bytes, so that its tag
 * (the payload up to the first space) names it across the whole test.
 * Every --send-every'th item is a SEND, the rest LOADs.
 *
 * Each client writes <dir>/client-<n>.ledger, one line per submitted
 * request, for tests/oracle.c:
 *
 *     <tag> <key> <checksum> <status>
 *
 * checksum is the FNV-1a 32 of the payload in hex; status is the
 * reply's status name, NO_REPLY when the connection died (or the reply
 * did not come within --wait), or KILLED with --kill-after-submit. An OK
 * reply whose payload is not the one sent (the chaos and echo sinks send
 * it back) is an error, and so is a reply after the last one (the
 * library reports it as a reply for an unknown request id).
 *
 * Output: one summary line on stdout with the count of each status.
 * Exit 0 when every client ran without an error, 1 otherwise, 2 on usage.
 * NO_REPLY is not an error here: judging it is the oracle's job.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "batchd.h"

#define ST_NONE (-1)          /* not submitted */
#define ST_WAIT (-2)          /* submitted, no reply yet */
#define ST_NO_REPLY BATCHD_STATUS_COUNT       /* ledger: NO_REPLY */
#define ST_KILLED (BATCHD_STATUS_COUNT + 1)   /* ledger: KILLED */
#define NSTATUS (BATCHD_STATUS_COUNT + 2)

struct load_conf {
    const char *sock;         /* daemon socket */
    const char *dir;          /* ledger directory */
    int clients;              /* processes */
    int first;                /* number of the first client */
    long items;               /* per client */
    int keys;                 /* keys per client (shared names) */
    const char *prefix;       /* key prefix */
    int depth;                /* requests in flight */
    size_t size;              /* payload bytes */
    int send_every;           /* every Nth item a SEND; 0 none */
    uint32_t deadline_ms;     /* per request; 0 none */
    int priorities;           /* item s gets opts.priority s % N; 0 none */
    double seconds;           /* stop submitting after; 0 = no limit */
    double wait_s;            /* then wait this long for replies */
    int kill;                 /* submit all, write the ledger, _exit */
    int echo_check;           /* OK payload must be the one sent */
};

/* Per-client counters, in shared memory for the parent's summary. */
struct load_counts {
    long status[NSTATUS];
    long errors;
};

/* One client's state (a child process has exactly one). */
struct load_client {
    const struct load_conf *cf;
    int n;                    /* client number */
    int *status;              /* per item: ST_* or a status */
    uint64_t *ids;            /* per item: request id */
    long submitted, answered;
    long errors;
    char *buf;                /* payload scratch, cf->size + 64 bytes */
};

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint32_t fnv32(const void *p, size_t n)
{
    const uint8_t *s = p;
    uint32_t h = 2166136261u;

    while (n--) {
        h ^= *s++;
        h *= 16777619u;
    }
    return h;
}

/* Payload of item s of client n into buf; returns its length. */
static size_t payload(const struct load_conf *cf, int n, long s, char *buf)
{
    int len = snprintf(buf, cf->size + 64, "c%d-%ld", n, s);
    size_t i = (size_t)len;

    if (i < cf->size)
        buf[i++] = ' ';
    for (; i < cf->size; i++)
        buf[i] = (char)('a' + (i + (size_t)s) % 26);
    return i;
}

static void key_of(const struct load_conf *cf, long s, char *key, size_t n)
{
    snprintf(key, n, "%s%ld", cf->prefix, s % cf->keys);
}

static int is_send(const struct load_conf *cf, long s)
{
    return cf->send_every > 0 && s % cf->send_every == cf->send_every - 1;
}

/* ---- one client ------------------------------------------------------------ */

/* The client of this process: each child runs exactly one, and the
 * callback's arg carries the item number. */
static struct load_client *self;

static void reply_cb(struct batchd_client *c, const struct batchd_reply *r, void *arg)
{
    long s = (long)(uintptr_t)arg;

    (void)c;
    self->answered++;
    if (r == NULL) {
        self->status[s] = ST_NO_REPLY;
        return;
    }
    self->status[s] = r->status;
    if (r->id != self->ids[s]) {
        fprintf(stderr, "chaosload: client %d: item %ld: reply id %" PRIu64
                ", want %" PRIu64 "\n", self->n, s, r->id, self->ids[s]);
        self->errors++;
    }
    if (r->status == BATCHD_OK && self->cf->echo_check) {
        size_t len = payload(self->cf, self->n, s, self->buf);

        if (r->len != len || memcmp(r->data, self->buf, len) != 0) {
            fprintf(stderr, "chaosload: client %d: c%d-%ld: OK payload of %zu "
                    "bytes is not the one sent (%zu bytes)\n", self->n, self->n,
                    s, r->len, len);
            self->errors++;
        }
    }
}

static int submit(struct load_client *lc, struct batchd_client *c, long s)
{
    const struct load_conf *cf = lc->cf;
    struct batchd_opts opts = {
        .deadline_ms = cf->deadline_ms,
        .priority = cf->priorities ? (int)(s % cf->priorities) : 0,
    };
    char key[128];
    size_t len = payload(cf, lc->n, s, lc->buf);
    int rc;

    key_of(cf, s, key, sizeof(key));
    if (is_send(cf, s))
        rc = batchd_submit_send(c, key, lc->buf, len, &opts, reply_cb,
                                (void *)(uintptr_t)s, &lc->ids[s]);
    else
        rc = batchd_submit_load(c, key, lc->buf, len, &opts, reply_cb,
                                (void *)(uintptr_t)s, &lc->ids[s]);
    if (rc != BATCHD_CLIENT_OK)
        return -1;
    lc->status[s] = ST_WAIT;
    lc->submitted++;
    return 0;
}

static const char *status_name(int st)
{
    if (st == ST_NO_REPLY)
        return "NO_REPLY";
    if (st == ST_KILLED)
        return "KILLED";
    return batchd_status_name(st);
}

/* Write the ledger: one line per submitted item, one write per 64 KiB. */
static int write_ledger(struct load_client *lc, struct load_counts *cnt)
{
    const struct load_conf *cf = lc->cf;
    char path[4096], key[128];
    FILE *f;

    snprintf(path, sizeof(path), "%s/client-%d.ledger", cf->dir, lc->n);
    f = fopen(path, "w");
    if (f == NULL) {
        fprintf(stderr, "chaosload: client %d: %s: %s\n", lc->n, path,
                strerror(errno));
        return -1;
    }
    for (long s = 0; s < cf->items; s++) {
        int st = lc->status[s];
        size_t len;

        if (st == ST_NONE)
            continue;
        if (st == ST_WAIT)
            st = ST_NO_REPLY;
        len = payload(cf, lc->n, s, lc->buf);
        key_of(cf, s, key, sizeof(key));
        fprintf(f, "c%d-%ld %s %08x %s\n", lc->n, s, key, fnv32(lc->buf, len),
                status_name(st));
        cnt->status[st]++;
    }
    if (fclose(f) != 0) {
        fprintf(stderr, "chaosload: client %d: %s: %s\n", lc->n, path,
                strerror(errno));
        return -1;
    }
    return 0;
}

/* Write every queued byte (the kill scenario: nothing may stay behind). */
static int flush_all(struct batchd_client *c)
{
    double end = now_s() + 30;

    while (batchd_want_write(c)) {
        struct pollfd p = { .fd = batchd_fd(c), .events = POLLOUT };

        if (batchd_flush(c) != BATCHD_CLIENT_OK || now_s() > end)
            return -1;
        if (batchd_want_write(c))
            poll(&p, 1, 100);
    }
    return 0;
}

/* After the last reply nothing may come: a readable socket means an
 * extra reply (or the daemon closed, which is fine now). */
static void check_no_extra(struct load_client *lc, struct batchd_client *c)
{
    struct pollfd p = { .fd = batchd_fd(c), .events = POLLIN };

    if (p.fd < 0 || poll(&p, 1, 50) <= 0)
        return;
    if (batchd_process(c, 0) < 0 && batchd_err(c) == BATCHD_ERR_PROTOCOL) {
        fprintf(stderr, "chaosload: client %d: after the last reply: %s\n",
                lc->n, batchd_errstr(c));
        lc->errors++;
    }
}

static int client_loop(struct load_client *lc, struct batchd_client *c)
{
    const struct load_conf *cf = lc->cf;
    double start = now_s(), stop_at = cf->seconds > 0 ? start + cf->seconds : 0;
    double wait_end = 0;
    long next = 0;

    for (;;) {
        int stopping = stop_at > 0 && now_s() >= stop_at;

        while (!stopping && next < cf->items &&
               lc->submitted - lc->answered < cf->depth) {
            if (submit(lc, c, next) != 0)
                return -1;
            next++;
        }
        if (lc->submitted == lc->answered && (next == cf->items || stopping))
            return 0;
        if ((next == cf->items || stopping) && wait_end == 0)
            wait_end = now_s() + cf->wait_s;
        if (wait_end > 0 && now_s() > wait_end) {
            fprintf(stderr, "chaosload: client %d: %ld replies missing after "
                    "waiting %.1f s\n", lc->n, lc->submitted - lc->answered,
                    cf->wait_s);
            return 0; /* batchd_free answers the rest NO_REPLY */
        }
        if (batchd_process(c, 100) < 0) {
            fprintf(stderr, "chaosload: client %d: connection lost after %ld of "
                    "%ld replies: %s\n", lc->n, lc->answered, lc->submitted,
                    batchd_errstr(c));
            if (batchd_err(c) == BATCHD_ERR_PROTOCOL)
                lc->errors++;
            return 0;
        }
    }
}

static int client_run(const struct load_conf *cf, int n, struct load_counts *cnt)
{
    struct load_client lc = { .cf = cf, .n = n };
    struct batchd_client *c;
    int rc = 0;

    lc.status = malloc((size_t)cf->items * sizeof(int));
    lc.ids = calloc((size_t)cf->items, sizeof(uint64_t));
    lc.buf = malloc(cf->size + 64);
    if (lc.status == NULL || lc.ids == NULL || lc.buf == NULL) {
        fprintf(stderr, "chaosload: client %d: out of memory\n", n);
        return 1;
    }
    for (long s = 0; s < cf->items; s++)
        lc.status[s] = ST_NONE;
    self = &lc;
    c = batchd_connect_unix(cf->sock, 10000);
    if (c == NULL || batchd_err(c) != BATCHD_ERR_NONE) {
        fprintf(stderr, "chaosload: client %d: connect %s: %s\n", n, cf->sock,
                batchd_errstr(c));
        batchd_free(c);
        return 1;
    }
    if (cf->kill) {
        for (long s = 0; s < cf->items; s++)
            if (submit(&lc, c, s) != 0)
                break;
        rc = flush_all(c);
        for (long s = 0; s < cf->items; s++)
            if (lc.status[s] == ST_WAIT)
                lc.status[s] = ST_KILLED;
        if (write_ledger(&lc, cnt) != 0 || rc != 0) {
            fprintf(stderr, "chaosload: client %d: could not submit everything\n", n);
            _exit(1);
        }
        _exit(0); /* no reply read, nothing closed cleanly: a killed client */
    }
    if (client_loop(&lc, c) != 0) {
        fprintf(stderr, "chaosload: client %d: submit: %s\n", n, batchd_errstr(c));
        lc.errors++;
    } else if (lc.submitted == lc.answered) {
        check_no_extra(&lc, c);
    }
    batchd_free(c);   /* the replies still missing run as NO_REPLY */
    if (write_ledger(&lc, cnt) != 0)
        lc.errors++;
    cnt->errors = lc.errors;
    free(lc.status);
    free(lc.ids);
    free(lc.buf);
    return lc.errors ? 1 : 0;
}

/* ---- the parent ------------------------------------------------------------ */

static void usage(void)
{
    fprintf(stderr,
        "usage: chaosload -s SOCK -o DIR [options]\n"
        "  -c, --clients N        client processes (1)\n"
        "      --first-client N   number of the first client (0)\n"
        "  -n, --items N          items per client (1000)\n"
        "  -k, --keys N           keys (1), named PREFIX0.. PREFIX<N-1>\n"
        "      --key-prefix P     key prefix (k)\n"
        "  -d, --depth N          requests in flight per client (64)\n"
        "  -z, --size N           payload bytes (32)\n"
        "      --send-every N     every Nth item is a SEND (0: all LOAD)\n"
        "      --deadline-ms MS   deadline of each request (0: none)\n"
        "      --priorities N     item s gets opts.priority s %% N (0: none)\n"
        "  -t, --time S           stop submitting after S seconds\n"
        "  -w, --wait S           then wait S seconds for replies (60)\n"
        "      --kill-after-submit  submit all, write the ledger, exit unread\n"
        "      --no-echo-check    do not compare OK payloads with the sent ones\n");
    exit(2);
}

static long num(const char *s, long min, long max)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (end == s || *end != '\0' || errno != 0 || v < min || v > max)
        usage();
    return v;
}

static void parse_args(int argc, char **argv, struct load_conf *cf)
{
    enum { O_FIRST = 256, O_PREFIX, O_SEND, O_DEADLINE, O_KILL, O_NOECHO,
           O_PRIO };
    static const struct option lo[] = {
        { "socket", required_argument, NULL, 's' },
        { "dir", required_argument, NULL, 'o' },
        { "clients", required_argument, NULL, 'c' },
        { "first-client", required_argument, NULL, O_FIRST },
        { "items", required_argument, NULL, 'n' },
        { "keys", required_argument, NULL, 'k' },
        { "key-prefix", required_argument, NULL, O_PREFIX },
        { "depth", required_argument, NULL, 'd' },
        { "size", required_argument, NULL, 'z' },
        { "send-every", required_argument, NULL, O_SEND },
        { "deadline-ms", required_argument, NULL, O_DEADLINE },
        { "priorities", required_argument, NULL, O_PRIO },
        { "time", required_argument, NULL, 't' },
        { "wait", required_argument, NULL, 'w' },
        { "kill-after-submit", no_argument, NULL, O_KILL },
        { "no-echo-check", no_argument, NULL, O_NOECHO },
        { NULL, 0, NULL, 0 },
    };
    int ch;

    while ((ch = getopt_long(argc, argv, "s:o:c:n:k:d:z:t:w:", lo, NULL)) != -1) {
        switch (ch) {
        case 's': cf->sock = optarg; break;
        case 'o': cf->dir = optarg; break;
        case 'c': cf->clients = (int)num(optarg, 1, 4096); break;
        case O_FIRST: cf->first = (int)num(optarg, 0, 1000000); break;
        case 'n': cf->items = num(optarg, 0, 100000000); break;
        case 'k': cf->keys = (int)num(optarg, 1, 1000000); break;
        case O_PREFIX: cf->prefix = optarg; break;
        case 'd': cf->depth = (int)num(optarg, 1, 1000000); break;
        case 'z': cf->size = (size_t)num(optarg, 0, 16 << 20); break;
        case O_SEND: cf->send_every = (int)num(optarg, 0, 1000000); break;
        case O_DEADLINE: cf->deadline_ms = (uint32_t)num(optarg, 0, 86400000); break;
        case O_PRIO: cf->priorities = (int)num(optarg, 0, 256); break;
        case 't': cf->seconds = atof(optarg); break;
        case 'w': cf->wait_s = atof(optarg); break;
        case O_KILL: cf->kill = 1; break;
        case O_NOECHO: cf->echo_check = 0; break;
        default: usage();
        }
    }
    if (cf->sock == NULL || cf->dir == NULL || optind != argc)
        usage();
}

int main(int argc, char **argv)
{
    struct load_conf cf = { .clients = 1, .items = 1000, .keys = 1, .prefix = "k",
                            .depth = 64, .size = 32, .wait_s = 60, .echo_check = 1 };
    struct load_counts *cnt, sum = { .errors = 0 };
    size_t shm;
    pid_t parent = getpid();
    int bad = 0;

    parse_args(argc, argv, &cf);
    signal(SIGPIPE, SIG_IGN);
    shm = (size_t)cf.clients * sizeof(*cnt);
    cnt = mmap(NULL, shm, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (cnt == MAP_FAILED) {
        perror("chaosload: mmap");
        return 1;
    }
    fflush(NULL);
    for (int i = 0; i < cf.clients; i++) {
        pid_t pid = fork();

        if (pid < 0) {
            perror("chaosload: fork");
            return 1;
        }
        if (pid == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (getppid() != parent)
                _exit(1);
            _exit(client_run(&cf, cf.first + i, &cnt[i]));
        }
    }
    for (int i = 0; i < cf.clients; i++) {
        int st;

        if (wait(&st) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
            bad++;
    }
    for (int i = 0; i < cf.clients; i++) {
        for (int s = 0; s < NSTATUS; s++)
            sum.status[s] += cnt[i].status[s];
        sum.errors += cnt[i].errors;
    }
    printf("chaosload: clients=%d items=%ld", cf.clients, cf.items);
    for (int s = 0; s < NSTATUS; s++)
        if (sum.status[s] > 0)
            printf(" %s=%ld", status_name(s), sum.status[s]);
    printf(" errors=%ld failed_clients=%d\n", sum.errors, bad);
    munmap(cnt, shm);
    return bad ? 1 : 0;
}
