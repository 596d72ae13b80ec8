/*
 * loadgen.c - the one load generator of the benchmark (DESIGN section 7).
 *
 * The same generator drives every server of bench/run, so the servers
 * differ only in what they do per request:
 *
 *   --proto batchd   HELLO, then LOAD frames (proto/ encoders); a reply
 *                    counts when its status is OK
 *   --proto echo     the same LOAD frames, no HELLO; each frame echoed
 *                    back counts as the reply (the epoll floor)
 *   --proto redis    RESP "SET key payload"; "+OK" counts (--redis-get:
 *                    "GET key"; a bulk string counts, nil does not)
 *
 * The parent forks P client processes. Each opens its own AF_UNIX
 * connection, says it is ready, waits for the common start, then keeps D
 * requests in flight until it has had N replies: it waits (--wait: in
 * poll() like libbatchd, blocked in read(), or spinning on non-blocking
 * reads), one read() takes every reply that is there, and one write()
 * sends the requests that refill the window. Requests are encoded once
 * (one frame per in-flight slot, with proto/'s encoder) and copied, so
 * the generator's cost per request is a memcpy plus decoding the reply
 * with msgpack-c. Replies are matched to requests by req_id (batchd/echo:
 * the id names the slot) or by order (redis answers in order).
 *
 * Measurements:
 * - latency per request, from the write of its batch to the read that
 *   brought its reply, into a log-linear histogram (32 sub-buckets per
 *   power of two, so about 3 % resolution); the first W replies of each
 *   client are warm-up and are not recorded;
 * - a reply timeline per client (100 us buckets) so that items/s is
 *   counted over the window in which every client is past its warm-up
 *   and none has finished yet (no ramp-up, no straggler tail);
 * - the server's CPU time: the parent samples the first field of
 *   /proc/PID/task/ * /schedstat (ns on CPU, summed over threads) every
 *   few ms; CPU per item is the CPU spent inside the window divided by
 *   the replies inside it;
 * - the server's peak RSS (VmHWM) at the end, and the generator's own
 *   CPU per reply (getrusage of the children), to show whether the
 *   generator was the bottleneck.
 *
 * Output: one line of key=value fields on stdout (bench/run parses it).
 * Exit 0 when every request got a good reply, 1 otherwise, 2 on usage.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <msgpack.h>

#include "buf.h"
#include "frame.h"
#include "hist.h"
#include "io.h"
#include "msg.h"


#define TL_BUCKET_NS 100000ull    /* reply timeline resolution: 100 us */
#define SLOT_BITS 20              /* req_id = REQ_ID_BASE + slot */
#define REQ_ID_BASE (1ull << 24)  /* same encoded size for every slot */
#define MAX_DEPTH (1u << SLOT_BITS)
#define MAX_CLIENTS 4096
#define IBUF_SIZE (256 * 1024)

enum lg_proto { PROTO_BATCHD, PROTO_ECHO, PROTO_REDIS };

enum { WAIT_POLL = 0, WAIT_READ = 1, WAIT_SPIN = 2 };

struct lg_args {
    int proto;                /* enum lg_proto */
    const char *socket;
    unsigned clients;         /* P */
    unsigned depth;           /* D */
    uint64_t requests;        /* N per client, warm-up included */
    uint64_t warmup;          /* W per client */
    size_t size;              /* payload bytes */
    const char *key;
    pid_t pid;                /* server, 0 = unknown */
    const char *label;
    int timeout_ms;           /* connect, and the longest wait for a reply */
    unsigned max_s;           /* longest run the timeline can hold */
    unsigned sample_ms;       /* schedstat sampling period */
    int wait_mode;            /* WAIT_POLL, WAIT_READ or WAIT_SPIN */
    int redis_get;            /* redis: GET key instead of SET key payload */
    int send;                 /* batchd: SEND frames, ACCEPTED counts */
};

/* What one child leaves in shared memory. */
struct lg_result {
    int ok;                   /* ran to the end */
    char err[160];            /* first error, "" if none */
    uint64_t t_warm;          /* ns after start when warm-up ended */
    uint64_t t_end;           /* ns after start of the last reply */
    uint64_t replies;         /* replies of any status */
    uint64_t failed;          /* bad status, or never answered */
    uint64_t hist[BD_HIST_BUCKETS]; /* latency after warm-up, ns */
};

/* The shared mapping: header, P results, P timelines. */
struct lg_shared {
    uint64_t t_go;            /* CLOCK_MONOTONIC ns of the common start */
    size_t tl_len;            /* buckets per timeline */
    struct lg_result res[];
};

/* One client's working state. */
struct lg_client {
    const struct lg_args *a;
    struct lg_result *res;
    uint32_t *tl;             /* reply counts per TL_BUCKET_NS */
    size_t tl_len;
    uint64_t t_go;
    int fd;
    struct bd_buf out;
    uint8_t *in;              /* IBUF_SIZE */
    size_t in_len;
    msgpack_zone zone;
    char *payload;
    uint8_t *frames;          /* D LOAD frames, one per slot, frame_len each */
    size_t frame_len;
    char *redis_req;          /* one pre-built SET (or GET) command */
    size_t redis_len;
    uint64_t *t0;             /* per slot (batchd/echo) or ring (redis) */
    uint32_t *free_slots;     /* stack of idle slots */
    uint32_t nfree;
    uint64_t issued;
    uint64_t done;            /* replies seen */
};

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Percentile of a histogram (proto/hist.h), in ns. */
static double hist_pct(const uint64_t *h, double q)
{
    uint64_t total = 0;

    for (size_t i = 0; i < BD_HIST_BUCKETS; i++)
        total += h[i];
    return (double)bd_hist_quantile(h, total, q);
}

static void fail(struct lg_client *c, const char *fmt, const char *what)
{
    if (c->res->err[0] == '\0')
        snprintf(c->res->err, sizeof(c->res->err), fmt, what);
}

/* ---- the client side ---------------------------------------------------- */

static int connect_unix(const struct lg_args *a, char *err, size_t errlen)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    uint64_t until = now_ns() + (uint64_t)a->timeout_ms * 1000000ull;
    struct timeval tv = {a->timeout_ms / 1000, (a->timeout_ms % 1000) * 1000};

    if (strlen(a->socket) >= sizeof(sa.sun_path)) {
        snprintf(err, errlen, "socket path too long");
        return -1;
    }
    strcpy(sa.sun_path, a->socket);
    for (;;) {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

        if (fd < 0) {
            snprintf(err, errlen, "socket: %s", strerror(errno));
            return -1;
        }
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
            /* A dead server must not hang the bench. */
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
            return fd;
        }
        close(fd);
        if ((errno != ENOENT && errno != ECONNREFUSED && errno != EAGAIN) ||
            now_ns() > until) {
            snprintf(err, errlen, "connect %s: %s", a->socket, strerror(errno));
            return -1;
        }
        usleep(5000);
    }
}

/* Read more input; returns bytes read, 0 on EOF, -1 on error/timeout. */
static ssize_t read_more(struct lg_client *c)
{
    ssize_t n;

    /* WAIT_POLL waits the way libbatchd does, in poll(POLLIN). A task
     * blocked in read() (WAIT_READ) on an AF_UNIX stream is also woken
     * each time the server reads from that socket (write space), a
     * wakeup poll filters out. WAIT_SPIN retries a non-blocking read:
     * no wakeup on the client's side at all (latency runs). */
    if (c->a->wait_mode == WAIT_POLL) {
        struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
        int rc;

        while ((rc = poll(&pfd, 1, c->a->timeout_ms)) < 0 && errno == EINTR)
            ;
        if (rc == 0)
            errno = ETIMEDOUT;
        if (rc <= 0)
            return -1;
    } else if (c->a->wait_mode == WAIT_SPIN) {
        uint64_t until = now_ns() + (uint64_t)c->a->timeout_ms * 1000000ull;

        for (;;) {
            n = recv(c->fd, c->in + c->in_len, IBUF_SIZE - c->in_len,
                     MSG_DONTWAIT);
            if (n >= 0 || (errno != EAGAIN && errno != EINTR))
                break;
            if (now_ns() > until) {
                errno = ETIMEDOUT;
                return -1;
            }
        }
        if (n > 0)
            c->in_len += (size_t)n;
        return n;
    }
    do {
        n = read(c->fd, c->in + c->in_len, IBUF_SIZE - c->in_len);
    } while (n < 0 && errno == EINTR);
    if (n > 0)
        c->in_len += (size_t)n;
    return n;
}

/* batchd HELLO before the start, so that the run measures only LOADs. */
static int hello(struct lg_client *c)
{
    struct bd_reply_msg r;
    size_t body, pos = 0;
    char err[128];

    if (bd_msg_encode_hello(&c->out, 0, BD_PROTO_VERSION, "loadgen") != 0 ||
        bd_write_all(c->fd, bd_buf_head(&c->out), c->out.len) != 0) {
        fail(c, "HELLO: write: %s", strerror(errno));
        return -1;
    }
    bd_buf_consume(&c->out, c->out.len);
    for (;;) {
        if (bd_frame_peek(c->in, c->in_len, BD_FRAME_DEFAULT_MAX, &body) ==
                BD_FRAME_OK && c->in_len >= BD_FRAME_HDR + body)
            break;
        if (read_more(c) <= 0) {
            fail(c, "HELLO: no reply (%s)", strerror(errno));
            return -1;
        }
    }
    msgpack_zone_clear(&c->zone);
    if (bd_msg_decode_reply(c->in + BD_FRAME_HDR, body, &c->zone, &r, err,
                            sizeof(err)) != 0 || r.status != BATCHD_OK) {
        fail(c, "HELLO: refused: %s", r.body ? (const char *)r.body : err);
        return -1;
    }
    pos = BD_FRAME_HDR + body;
    memmove(c->in, c->in + pos, c->in_len - pos);
    c->in_len -= pos;
    return 0;
}

/* Queue requests until D are in flight or all N are issued. Requests are
 * copies of frames encoded once per slot (batchd/echo) or of the one SET
 * command (redis), so the generator spends nothing on encoding. */
static int refill(struct lg_client *c, uint64_t now)
{
    const struct lg_args *a = c->a;

    while (c->issued < a->requests && c->issued - c->done < a->depth) {
        if (a->proto == PROTO_REDIS) {
            c->t0[c->issued % a->depth] = now;
            if (bd_buf_append(&c->out, c->redis_req, c->redis_len) != 0)
                return -1;
        } else {
            uint32_t slot = c->free_slots[--c->nfree];

            c->t0[slot] = now;
            if (bd_buf_append(&c->out, c->frames + (size_t)slot * c->frame_len,
                              c->frame_len) != 0)
                return -1;
        }
        c->issued++;
    }
    return 0;
}

static void count_reply(struct lg_client *c, uint64_t lat, int good,
                        uint64_t now)
{
    c->done++;
    if (!good)
        c->res->failed++;
    if (c->done > c->a->warmup)
        c->res->hist[bd_hist_index(lat)]++;
    else if (c->done == c->a->warmup)
        c->res->t_warm = now - c->t_go;
}

/* One msgpack frame: a batchd reply, or our own LOAD echoed back. Both
 * carry req_id at index 1; a batchd reply has the status at index 2. */
static int take_frame(struct lg_client *c, const uint8_t *body, size_t len,
                      uint64_t now)
{
    char err[128];
    uint64_t id;
    int good = 1;
    uint32_t slot;

    /* No bd_frame_check walk: the servers under test are ours, and the
     * generator must stay cheap next to them. msgpack-c still never
     * reads past len. */
    msgpack_zone_clear(&c->zone);
    if (c->a->proto == PROTO_BATCHD) {
        struct bd_reply_msg r;

        if (bd_msg_decode_reply(body, len, &c->zone, &r, err, sizeof(err)) != 0) {
            fail(c, "bad reply: %s", err);
            return -1;
        }
        id = r.req_id;
        good = r.status == (c->a->send ? BATCHD_ACCEPTED : BATCHD_OK);
        if (!good)
            fail(c, "reply status %s", bd_status_name(r.status));
    } else {
        msgpack_object o;
        size_t off = 0;

        if (msgpack_unpack((const char *)body, len, &off, &c->zone, &o) !=
                MSGPACK_UNPACK_SUCCESS || o.type != MSGPACK_OBJECT_ARRAY ||
            o.via.array.size < 2 ||
            o.via.array.ptr[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
            fail(c, "bad echoed frame%s", "");
            return -1;
        }
        id = o.via.array.ptr[1].via.u64;
    }
    slot = (uint32_t)(id - REQ_ID_BASE);
    if (id < REQ_ID_BASE || slot >= c->a->depth || c->t0[slot] == 0) {
        fail(c, "reply for unknown req_id%s", "");
        return -1;
    }
    c->free_slots[c->nfree++] = slot;
    count_reply(c, now - c->t0[slot], good, now);
    c->t0[slot] = 0; /* idle: a second reply for it is an error */
    return 0;
}

/* The RESP reply at p: its length in *used (0 while incomplete), and
 * whether it counts as good (+OK for SET, a non-nil bulk string for GET). */
static void resp_reply(const uint8_t *p, size_t avail, size_t *used, int *good)
{
    const uint8_t *nl = memchr(p, '\n', avail);
    size_t line = nl ? (size_t)(nl - p) + 1 : 0;
    long blen;

    *used = 0;
    *good = 0;
    if (nl == NULL)
        return;
    if (p[0] != '$') {
        *good = line >= 3 && p[0] == '+' && p[1] == 'O' && p[2] == 'K';
        *used = line;
        return;
    }
    blen = strtol((const char *)p + 1, NULL, 10);
    if (blen < 0) {           /* nil */
        *used = line;
        return;
    }
    if (avail >= line + (size_t)blen + 2) {
        *used = line + (size_t)blen + 2;
        *good = 1;
    }
}

/* RESP: one reply, answered in order. */
static int take_resp(struct lg_client *c, const uint8_t *reply, size_t len,
                     int good, uint64_t now)
{
    if (!good) {
        char msg[64];

        snprintf(msg, sizeof(msg), "%.*s", (int)(len < 60 ? len : 60),
                 (const char *)reply);
        fail(c, "redis replied %s", msg);
    }
    count_reply(c, now - c->t0[c->done % c->a->depth], good, now);
    return 0;
}

/* Consume every complete reply in the input; returns how many, or -1. */
static int64_t parse_replies(struct lg_client *c, uint64_t now)
{
    size_t pos = 0;
    int64_t n = 0;

    for (;;) {
        const uint8_t *p = c->in + pos;
        size_t avail = c->in_len - pos, body;

        if (c->a->proto == PROTO_REDIS) {
            size_t used;
            int good;

            resp_reply(p, avail, &used, &good);
            if (used == 0)
                break;
            if (take_resp(c, p, used, good, now) != 0)
                return -1;
            pos += used;
        } else {
            int rc = bd_frame_peek(p, avail, BD_FRAME_DEFAULT_MAX, &body);

            if (rc == BD_FRAME_NEED || (rc == BD_FRAME_OK &&
                                        avail - BD_FRAME_HDR < body))
                break;
            if (rc != BD_FRAME_OK) {
                fail(c, "bad frame length%s", "");
                return -1;
            }
            if (take_frame(c, p + BD_FRAME_HDR, body, now) != 0)
                return -1;
            pos += BD_FRAME_HDR + body;
        }
        n++;
    }
    if (pos > 0) {
        memmove(c->in, c->in + pos, c->in_len - pos);
        c->in_len -= pos;
    }
    if (c->in_len == IBUF_SIZE) {
        fail(c, "reply larger than the input buffer%s", "");
        return -1;
    }
    return n;
}

static int client_run(struct lg_client *c)
{
    const struct lg_args *a = c->a;
    uint64_t now = now_ns();

    while (c->done < a->requests) {
        int64_t got;
        uint64_t b;

        if (refill(c, now) != 0) {
            fail(c, "out of memory%s", "");
            return -1;
        }
        if (c->out.len > 0) {
            if (bd_write_all(c->fd, bd_buf_head(&c->out), c->out.len) != 0) {
                fail(c, "write: %s", strerror(errno));
                return -1;
            }
            bd_buf_consume(&c->out, c->out.len);
        }
        ssize_t r = read_more(c);

        if (r <= 0) {
            fail(c, r == 0 ? "server closed the connection%s" :
                 "read: %s", r == 0 ? "" : strerror(errno));
            return -1;
        }
        now = now_ns();
        got = parse_replies(c, now);
        if (got < 0)
            return -1;
        b = (now - c->t_go) / TL_BUCKET_NS;
        if (b < c->tl_len)
            c->tl[b] += (uint32_t)got;
        c->res->t_end = now - c->t_go;
    }
    return 0;
}

static int client_setup(struct lg_client *c)
{
    const struct lg_args *a = c->a;

    bd_buf_init(&c->out);
    msgpack_zone_init(&c->zone, 4096);
    c->in = malloc(IBUF_SIZE);
    c->payload = malloc(a->size + 1);
    c->t0 = calloc(a->depth, sizeof(*c->t0));
    c->free_slots = calloc(a->depth, sizeof(*c->free_slots));
    c->redis_req = malloc(a->size + strlen(a->key) + 128);
    if (!c->in || !c->payload || !c->t0 || !c->free_slots || !c->redis_req) {
        fail(c, "out of memory%s", "");
        return -1;
    }
    for (size_t i = 0; i < a->size; i++)
        c->payload[i] = (char)('a' + i % 26);
    for (uint32_t i = 0; i < a->depth; i++) {
        c->free_slots[c->nfree++] = a->depth - 1 - i;
        if (bd_msg_encode_item(&c->out, a->send ? BD_MSG_SEND : BD_MSG_LOAD,
                               REQ_ID_BASE + i, a->key,
                               strlen(a->key), c->payload, a->size, NULL) != 0) {
            fail(c, "out of memory%s", "");
            return -1;
        }
    }
    /* Every frame has the same size: req_ids share one encoding width. */
    c->frame_len = c->out.len / a->depth;
    c->frames = malloc(c->out.len);
    if (c->frames == NULL) {
        fail(c, "out of memory%s", "");
        return -1;
    }
    memcpy(c->frames, bd_buf_head(&c->out), c->out.len);
    bd_buf_consume(&c->out, c->out.len);
    if (a->redis_get) {
        c->redis_len = (size_t)sprintf(c->redis_req, "*2\r\n$3\r\nGET\r\n$%zu\r\n%s\r\n",
                                       strlen(a->key), a->key);
        return 0;
    }
    c->redis_len = (size_t)sprintf(c->redis_req,
                                   "*3\r\n$3\r\nSET\r\n$%zu\r\n%s\r\n$%zu\r\n",
                                   strlen(a->key), a->key, a->size);
    memcpy(c->redis_req + c->redis_len, c->payload, a->size);
    c->redis_len += a->size;
    memcpy(c->redis_req + c->redis_len, "\r\n", 2);
    c->redis_len += 2;
    return 0;
}

/* A child: connect, report ready, wait for the start, run, exit. */
static void child_main(const struct lg_args *a, struct lg_shared *sh,
                       unsigned idx, int ready_fd, int go_fd)
{
    struct lg_client c = {.a = a, .res = &sh->res[idx]};
    char err[160] = "";
    char b = 'n', x;
    int ok = -1;

    c.tl = (uint32_t *)((char *)sh + sizeof(*sh) +
                        (size_t)a->clients * sizeof(struct lg_result)) +
           (size_t)idx * sh->tl_len;
    c.tl_len = sh->tl_len;
    if (client_setup(&c) == 0) {
        c.fd = connect_unix(a, err, sizeof(err));
        if (c.fd < 0)
            fail(&c, "%s", err);
        else if (a->proto != PROTO_BATCHD || hello(&c) == 0)
            b = 'y';
    }
    if (write(ready_fd, &b, 1) != 1 || b != 'y')
        _exit(1);
    /* The parent closes the go pipe to start every client at once. */
    while (read(go_fd, &x, 1) < 0 && errno == EINTR)
        ;
    c.t_go = sh->t_go;
    if (sh->t_go != 0)
        ok = client_run(&c);
    c.res->failed += a->requests - c.done; /* never answered */
    c.res->replies = c.done;
    c.res->ok = ok == 0;
    _exit(ok == 0 ? 0 : 1);
}

/* ---- the parent: server CPU, window, report ----------------------------- */

/* Sum of ns on CPU over all threads of pid; -1 when it cannot be read. */
static int64_t server_cpu_ns(pid_t pid)
{
    char path[64];
    DIR *d;
    struct dirent *de;
    int64_t sum = 0;

    snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
    d = opendir(path);
    if (d == NULL)
        return -1;
    while ((de = readdir(d)) != NULL) {
        char p[320];
        unsigned long long v;
        FILE *f;

        if (de->d_name[0] == '.')
            continue;
        snprintf(p, sizeof(p), "/proc/%d/task/%s/schedstat", (int)pid, de->d_name);
        f = fopen(p, "r");
        if (f == NULL)
            continue; /* the thread ended */
        if (fscanf(f, "%llu", &v) == 1)
            sum += (int64_t)v;
        fclose(f);
    }
    closedir(d);
    return sum;
}

/* VmHWM of pid in KiB, or -1. */
static long server_hwm_kb(pid_t pid)
{
    char path[64], line[256];
    long kb = -1;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    f = fopen(path, "r");
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "VmHWM: %ld kB", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

struct lg_sample {
    uint64_t t;               /* ns after the start */
    int64_t cpu;              /* server CPU ns, -1 unknown */
};

/* Start the children, sample the server until they are done. */
static int run_clients(const struct lg_args *a, struct lg_shared *sh,
                       struct lg_sample *smp, size_t maxs, size_t *nsmp)
{
    int ready[2], go[2], bad = 0;
    unsigned started = 0, left;
    char b;

    if (pipe(ready) != 0 || pipe(go) != 0) {
        perror("loadgen: pipe");
        return -1;
    }
    for (; started < a->clients; started++) {
        pid_t p = fork();

        if (p < 0) {
            perror("loadgen: fork");
            break;
        }
        if (p == 0) {
            close(ready[0]);
            close(go[1]);
            child_main(a, sh, started, ready[1], go[0]);
        }
    }
    close(ready[1]);
    close(go[0]);
    for (unsigned i = 0; i < started; i++)
        if (read(ready[0], &b, 1) != 1 || b != 'y')
            bad = 1;
    close(ready[0]);
    if (!bad && started == a->clients) {
        smp[0].cpu = a->pid ? server_cpu_ns(a->pid) : -1;
        sh->t_go = now_ns();
        smp[0].t = 0;
        *nsmp = 1;
    }
    close(go[1]); /* start (or, with t_go 0, tell them to give up) */
    left = started;
    while (left > 0) {
        struct timespec ts = {0, (long)a->sample_ms * 1000000L};
        int st;

        nanosleep(&ts, NULL);
        if (*nsmp > 0) {
            size_t i = *nsmp < maxs ? (*nsmp)++ : maxs - 1;

            smp[i].cpu = a->pid ? server_cpu_ns(a->pid) : -1;
            smp[i].t = now_ns() - sh->t_go;
        }
        while (left > 0 && waitpid(-1, &st, WNOHANG) > 0)
            left--;
    }
    return bad || started != a->clients ? -1 : 0;
}

struct lg_report {
    uint64_t replies, failed, win_items;
    double win_s, items_s, srv_ns_item, gen_ns_item;
    int full_window;
    uint64_t hist[BD_HIST_BUCKETS];
    const char *err;
};

/* Pick the measured window and count what happened inside it. */
static void analyse(const struct lg_args *a, const struct lg_shared *sh,
                    const struct lg_sample *smp, size_t nsmp,
                    struct lg_report *r)
{
    const uint32_t *tl = (const uint32_t *)((const char *)sh + sizeof(*sh) +
                         (size_t)a->clients * sizeof(struct lg_result));
    uint64_t ws = 0, we = UINT64_MAX, tmax = 0, b0, b1;
    size_t s0 = 0, s1 = 0;

    for (unsigned i = 0; i < a->clients; i++) {
        const struct lg_result *res = &sh->res[i];

        r->replies += res->replies;
        r->failed += res->failed;
        if ((res->err[0] || !res->ok) && r->err == NULL)
            r->err = res->err[0] ? res->err : "a client did not finish";
        if (res->t_warm > ws)
            ws = res->t_warm;
        if (res->t_end < we)
            we = res->t_end;
        if (res->t_end > tmax)
            tmax = res->t_end;
        for (size_t j = 0; j < BD_HIST_BUCKETS; j++)
            r->hist[j] += res->hist[j];
    }
    /* The window runs between two CPU samples: the first after every
     * client warmed up, the last before any client finished. */
    for (s0 = 0; s0 < nsmp && smp[s0].t < ws; s0++)
        ;
    for (s1 = nsmp; s1 > 0 && smp[s1 - 1].t > we; s1--)
        ;
    if (s1 == 0 || s0 >= s1 - 1) {
        /* Too short to have one: take the whole run. */
        r->full_window = 1;
        s0 = 0;
        s1 = nsmp;
    }
    s1--;
    b0 = (smp[s0].t + TL_BUCKET_NS - 1) / TL_BUCKET_NS;
    b1 = (r->full_window ? tmax / TL_BUCKET_NS + 1 : smp[s1].t / TL_BUCKET_NS);
    if (b1 > sh->tl_len)
        b1 = sh->tl_len;
    for (unsigned i = 0; i < a->clients; i++)
        for (uint64_t b = b0; b < b1; b++)
            r->win_items += tl[(size_t)i * sh->tl_len + b];
    r->win_s = b1 > b0 ? (double)(b1 - b0) * TL_BUCKET_NS / 1e9 : 0.0;
    r->items_s = r->win_s > 0 ? (double)r->win_items / r->win_s : 0.0;
    r->srv_ns_item = -1.0;
    if (smp[s0].cpu >= 0 && smp[s1].cpu >= 0 && s1 > s0) {
        /* Replies counted over exactly the sampled interval. */
        double span = (double)(smp[s1].t - smp[s0].t) / 1e9;
        double items = r->items_s * span;

        if (r->full_window)
            items = (double)r->replies;
        if (items > 0)
            r->srv_ns_item = (double)(smp[s1].cpu - smp[s0].cpu) / items;
    }
}

static const char *const proto_names[] = {"batchd", "echo", "redis"};

static void report(const struct lg_args *a, const struct lg_report *r)
{
    long hwm = a->pid ? server_hwm_kb(a->pid) : -1;

    printf("loadgen label=%s proto=%s P=%u D=%u n=%" PRIu64 " warmup=%" PRIu64
           " size=%zu replies=%" PRIu64 " failed=%" PRIu64
           " window_s=%.3f window_items=%" PRIu64 " full_window=%d"
           " items_s=%.0f p50_us=%.1f p99_us=%.1f p999_us=%.1f",
           a->label, proto_names[a->proto], a->clients, a->depth, a->requests,
           a->warmup, a->size, r->replies, r->failed, r->win_s, r->win_items,
           r->full_window, r->items_s, hist_pct(r->hist, 0.50) / 1e3,
           hist_pct(r->hist, 0.99) / 1e3, hist_pct(r->hist, 0.999) / 1e3);
    if (r->srv_ns_item >= 0)
        printf(" srv_ns_item=%.0f", r->srv_ns_item);
    else
        printf(" srv_ns_item=-");
    if (hwm >= 0)
        printf(" srv_hwm_kb=%ld", hwm);
    else
        printf(" srv_hwm_kb=-");
    printf(" gen_ns_item=%.0f", r->gen_ns_item);
    if (r->err)
        printf(" error=\"%s\"", r->err);
    printf("\n");
    fflush(stdout);
}

static void usage(FILE *f)
{
    fprintf(f,
        "usage: loadgen --proto batchd|echo|redis -s SOCKET [options]\n"
        "  -P, --clients N      client processes (default 1)\n"
        "  -D, --depth N        requests in flight per client (default 1)\n"
        "  -n, --requests N     requests per client, warm-up included (default 10000)\n"
        "  -w, --warmup N       first N replies per client not measured (default n/10)\n"
        "  -z, --size N         payload bytes (default 64)\n"
        "  -k, --key K          batchd key / redis key (default \"bench\")\n"
        "      --redis-get      redis: GET key (must exist) instead of SET key payload\n"
        "      --send           batchd: SEND instead of LOAD (ACCEPTED is a good reply)\n"
        "  -p, --pid PID        server pid: CPU per item and peak RSS from /proc\n"
        "  -l, --label L        name printed in the result line\n"
        "  -t, --timeout-ms N   connect and reply timeout (default 10000)\n"
        "      --max-seconds N  longest run measured (default 300)\n"
        "      --sample-ms N    server CPU sampling period (default 5)\n"
        "      --wait MODE      how a client waits for replies: poll (poll(POLLIN),\n"
        "                       like libbatchd; default), read (blocked in read())\n"
        "                       or spin (non-blocking reads in a loop)\n");
}

static int parse_u(const char *s, unsigned long long min, unsigned long long max,
                   unsigned long long *out)
{
    char *end;

    errno = 0;
    *out = strtoull(s, &end, 10);
    return errno || end == s || *end || *out < min || *out > max ? -1 : 0;
}

static int parse_args(int argc, char **argv, struct lg_args *a)
{
    static const struct option lo[] = {
        {"proto", required_argument, NULL, 'x'},
        {"socket", required_argument, NULL, 's'},
        {"clients", required_argument, NULL, 'P'},
        {"depth", required_argument, NULL, 'D'},
        {"requests", required_argument, NULL, 'n'},
        {"warmup", required_argument, NULL, 'w'},
        {"size", required_argument, NULL, 'z'},
        {"key", required_argument, NULL, 'k'},
        {"pid", required_argument, NULL, 'p'},
        {"label", required_argument, NULL, 'l'},
        {"timeout-ms", required_argument, NULL, 't'},
        {"max-seconds", required_argument, NULL, 'M'},
        {"sample-ms", required_argument, NULL, 'S'},
        {"wait", required_argument, NULL, 'W'},
        {"redis-get", no_argument, NULL, 'G'},
        {"send", no_argument, NULL, 'E'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    unsigned long long v;
    int ch, warm_set = 0, rc = 0;

    while ((ch = getopt_long(argc, argv, "s:P:D:n:w:z:k:p:l:t:h", lo, NULL)) != -1) {
        switch (ch) {
        case 'x':
            a->proto = !strcmp(optarg, "batchd") ? PROTO_BATCHD :
                       !strcmp(optarg, "echo") ? PROTO_ECHO :
                       !strcmp(optarg, "redis") ? PROTO_REDIS : -1;
            rc |= a->proto < 0;
            break;
        case 's': a->socket = optarg; break;
        case 'P': rc |= parse_u(optarg, 1, MAX_CLIENTS, &v); a->clients = (unsigned)v; break;
        case 'D': rc |= parse_u(optarg, 1, MAX_DEPTH, &v); a->depth = (unsigned)v; break;
        case 'n': rc |= parse_u(optarg, 1, 1ull << 40, &v); a->requests = v; break;
        case 'w': rc |= parse_u(optarg, 0, 1ull << 40, &v); a->warmup = v; warm_set = 1; break;
        case 'z': rc |= parse_u(optarg, 0, 1 << 20, &v); a->size = (size_t)v; break;
        case 'k': a->key = optarg; break;
        case 'p': rc |= parse_u(optarg, 1, 1u << 30, &v); a->pid = (pid_t)v; break;
        case 'l': a->label = optarg; break;
        case 't': rc |= parse_u(optarg, 1, 3600000, &v); a->timeout_ms = (int)v; break;
        case 'M': rc |= parse_u(optarg, 1, 86400, &v); a->max_s = (unsigned)v; break;
        case 'S': rc |= parse_u(optarg, 1, 1000, &v); a->sample_ms = (unsigned)v; break;
        case 'W':
            a->wait_mode = !strcmp(optarg, "poll") ? WAIT_POLL :
                           !strcmp(optarg, "read") ? WAIT_READ :
                           !strcmp(optarg, "spin") ? WAIT_SPIN : -1;
            rc |= a->wait_mode < 0;
            break;
        case 'G': a->redis_get = 1; break;
        case 'E': a->send = 1; break;
        case 'h': usage(stdout); exit(0);
        default: return -1;
        }
    }
    if (rc || a->socket == NULL || optind != argc || a->proto < 0 ||
        strlen(a->key) == 0 || strlen(a->key) > BD_KEY_MAX)
        return -1;
    if (!warm_set)
        a->warmup = a->requests / 10;
    if (a->warmup >= a->requests)
        return -1;
    if (a->label == NULL)
        a->label = proto_names[a->proto];
    return 0;
}

int main(int argc, char **argv)
{
    struct lg_args a = {.proto = -1, .clients = 1, .depth = 1, .requests = 10000,
                        .size = 64, .key = "bench", .timeout_ms = 10000,
                        .max_s = 300, .sample_ms = 5};
    struct lg_shared *sh;
    struct lg_sample *smp;
    struct lg_report *r;
    struct rusage ru;
    size_t tl_len, shsize, maxs, nsmp = 0;
    int rc;

    if (parse_args(argc, argv, &a) != 0) {
        usage(stderr);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    tl_len = (size_t)a.max_s * (1000000000ull / TL_BUCKET_NS);
    shsize = sizeof(*sh) + (size_t)a.clients * sizeof(struct lg_result) +
             (size_t)a.clients * tl_len * sizeof(uint32_t);
    /* Pages are touched only as the run goes, so the size is virtual. */
    sh = mmap(NULL, shsize, PROT_READ | PROT_WRITE,
              MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    maxs = (size_t)a.max_s * 1000 / a.sample_ms + 2;
    smp = calloc(maxs, sizeof(*smp));
    r = calloc(1, sizeof(*r));
    if (sh == MAP_FAILED || smp == NULL || r == NULL) {
        fprintf(stderr, "loadgen: out of memory\n");
        return 1;
    }
    sh->tl_len = tl_len;
    rc = run_clients(&a, sh, smp, maxs, &nsmp);
    if (nsmp == 0) {
        for (unsigned i = 0; i < a.clients; i++)
            if (sh->res[i].err[0]) {
                fprintf(stderr, "loadgen: client %u: %s\n", i, sh->res[i].err);
                break;
            }
        fprintf(stderr, "loadgen: clients did not start\n");
        return 1;
    }
    analyse(&a, sh, smp, nsmp, r);
    getrusage(RUSAGE_CHILDREN, &ru);
    r->gen_ns_item = r->replies ? ((double)ru.ru_utime.tv_sec * 1e9 +
                                   (double)ru.ru_utime.tv_usec * 1e3 +
                                   (double)ru.ru_stime.tv_sec * 1e9 +
                                   (double)ru.ru_stime.tv_usec * 1e3) /
                                  (double)r->replies : 0.0;
    report(&a, r);
    rc = rc == 0 && r->failed == 0 && r->err == NULL ? 0 : 1;
    free(r);
    free(smp);
    munmap(sh, shsize);
    return rc;
}
