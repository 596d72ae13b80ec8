/*
 * flood.c - hash flooding: do keys chosen to collide in the key table
 * cost more than random keys, and does a flood stall other clients?
 * (issue 10, item 1; bench/flood.sh runs it, bench/README.md.)
 *
 * One connection SENDs one item to each of N distinct keys, all frames
 * pipelined; the admit time is from the first write to the N-th
 * ACCEPTED reply. Meanwhile a child process on its own connection
 * sends CONTROL ping after ping (1 ms apart) and keeps the slowest
 * round trip. Run it against a `size` route whose batches never fill,
 * so every key stays in the table for the whole flood.
 *
 * -m fnv: keys whose 32-bit FNV-1a hashes (the key table's unkeyed hash
 *         before the fix) agree in their low B bits (-b, default 20), so
 *         under that hash all of them share one bucket at any table size
 *         up to 2^B. Made by meeting in the middle: the low B bits of
 *         FNV-1a depend only on the low B bits of its state and each
 *         step is invertible, so for each suffix the state it needs is
 *         computed backwards and looked up among 2^22 hashed prefixes.
 *         Milliseconds for any N, as the attacker could.
 * -m random: keys of the same length, random characters.
 *
 *   flood -s SOCKET [-n KEYS] [-m fnv|random] [-b BITS] [-t TIMEOUT_MS]
 *
 * Output: one line of key=value fields. Exit 1 when a key was refused,
 * the daemon went away or the timeout passed.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "batchd.h"
#include "buf.h"
#include "frame.h"
#include "io.h"
#include "msg.h"

#define PREFIX "flood."
#define PREFIX_LEN 6
#define A_LEN 4                   /* prefix part: 64^4 choices */
#define B_LEN 3                   /* suffix part: 64^3 choices */
#define KEY_LEN (PREFIX_LEN + A_LEN + B_LEN)
#define NPREFIX (1u << 22)        /* prefixes hashed for the middle */
#define FNV_PRIME 16777619u
#define FNV_BASIS 2166136261u

static const char alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";

struct flood_args {
    const char *socket;
    unsigned long nkeys;
    int fnv;                      /* 1: colliding keys, 0: random */
    unsigned bits;                /* fnv: low bits that agree */
    int timeout_ms;
};

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint32_t fnv_step(uint32_t h, uint8_t c)
{
    return (h ^ c) * FNV_PRIME;
}

static uint32_t fnv(const char *s, size_t n)
{
    uint32_t h = FNV_BASIS;

    while (n--)
        h = fnv_step(h, (uint8_t)*s++);
    return h;
}

/* The i-th string of len characters over the alphabet. */
static void spell(char *out, uint32_t i, int len)
{
    for (int j = 0; j < len; j++, i >>= 6)
        out[j] = alphabet[i & 63];
}

/*
 * N keys (KEY_LEN bytes each, back to back in keys) whose FNV-1a low
 * `bits` bits are all 0. Returns 0, or -1 when memory is short or the
 * suffixes run out.
 */
static int fnv_keys(char *keys, unsigned long n, unsigned bits)
{
    uint32_t mask = bits >= 32 ? ~0u : (1u << bits) - 1, inv = FNV_PRIME;
    uint32_t base = fnv(PREFIX, PREFIX_LEN), *head, *next;
    unsigned long got = 0;
    char a[A_LEN], b[B_LEN];

    for (int i = 0; i < 5; i++)
        inv *= 2 - FNV_PRIME * inv; /* Newton: FNV_PRIME^-1 mod 2^32 */
    head = malloc(((size_t)mask + 1) * sizeof(*head));
    next = malloc(NPREFIX * sizeof(*next));
    if (head == NULL || next == NULL) {
        free(head);
        free(next);
        return -1;
    }
    memset(head, 0xff, ((size_t)mask + 1) * sizeof(*head));
    for (uint32_t i = 0; i < NPREFIX; i++) {
        uint32_t h = base;

        spell(a, i, A_LEN);
        for (int j = 0; j < A_LEN; j++)
            h = fnv_step(h, (uint8_t)a[j]);
        next[i] = head[h & mask];
        head[h & mask] = i;
    }
    for (uint32_t s = 0; s < (1u << (6 * B_LEN)) && got < n; s++) {
        uint32_t h = 0; /* the target: low bits all 0 */

        spell(b, s, B_LEN);
        for (int j = B_LEN - 1; j >= 0; j--)
            h = (h * inv) ^ (uint8_t)b[j];
        for (uint32_t i = head[h & mask]; i != ~0u && got < n; i = next[i]) {
            char *k = keys + got++ * KEY_LEN;

            memcpy(k, PREFIX, PREFIX_LEN);
            spell(k + PREFIX_LEN, i, A_LEN);
            memcpy(k + PREFIX_LEN + A_LEN, b, B_LEN);
        }
    }
    free(head);
    free(next);
    for (unsigned long i = 0; i < got; i++) /* check the algebra */
        if ((fnv(keys + i * KEY_LEN, KEY_LEN) & mask) != 0)
            return -1;
    return got == n ? 0 : -1;
}

static void random_keys(char *keys, unsigned long n)
{
    uint64_t x = now_ns() | 1;

    for (unsigned long i = 0; i < n; i++) {
        char *k = keys + i * KEY_LEN;

        memcpy(k, PREFIX, PREFIX_LEN);
        for (int j = PREFIX_LEN; j < KEY_LEN; j++) {
            x ^= x << 13; /* xorshift64 */
            x ^= x >> 7;
            x ^= x << 17;
            k[j] = alphabet[x & 63];
        }
    }
}

static int connect_unix(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0 || strlen(path) >= sizeof(sa.sun_path))
        return -1;
    strcpy(sa.sun_path, path);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* ---- the pinger (a child) --------------------------------------------- */

/* Ping until stop_fd is readable; write "max_ns count" to res_fd. */
static int pinger(const struct flood_args *a, int ready_fd, int stop_fd,
                  int res_fd)
{
    struct batchd_client *c = batchd_connect_unix(a->socket, a->timeout_ms);
    struct pollfd p = {.fd = stop_fd, .events = POLLIN};
    uint64_t max = 0, count = 0;
    char line[64];

    if (batchd_err(c) != 0) {
        fprintf(stderr, "flood: pinger: %s\n", batchd_errstr(c));
        return 1;
    }
    if (write(ready_fd, "r", 1) != 1)
        return 1;
    while (poll(&p, 1, 1) == 0) {
        struct batchd_reply *r = NULL;
        uint64_t t0 = now_ns(), dt;

        if (batchd_control(c, "ping", NULL, 0, a->timeout_ms, &r) != 0) {
            fprintf(stderr, "flood: ping: %s\n", batchd_errstr(c));
            return 1;
        }
        dt = now_ns() - t0;
        batchd_reply_free(r);
        if (dt > max)
            max = dt;
        count++;
    }
    batchd_free(c);
    snprintf(line, sizeof(line), "%llu %llu\n", (unsigned long long)max,
             (unsigned long long)count);
    return bd_write_all(res_fd, line, strlen(line)) == 0 ? 0 : 1;
}

/* ---- the flood -------------------------------------------------------- */

/* Read one whole reply frame into buf (blocking). Returns its status
 * or -1. */
static int read_reply(int fd, uint8_t *buf, size_t size)
{
    size_t body;
    msgpack_zone zone;
    struct bd_reply_msg r;
    char err[128];
    int status;

    if (bd_read_all(fd, buf, BD_FRAME_HDR) != 0 ||
        bd_frame_peek(buf, BD_FRAME_HDR, size - BD_FRAME_HDR, &body) !=
            BD_FRAME_OK ||
        bd_read_all(fd, buf + BD_FRAME_HDR, body) != 0)
        return -1;
    msgpack_zone_init(&zone, 1024);
    status = bd_msg_decode_reply(buf + BD_FRAME_HDR, body, &zone, &r, err,
                                 sizeof(err)) == 0 ? r.status : -1;
    msgpack_zone_destroy(&zone);
    return status;
}

/* Count reply frames in in[0..*len) whose status is ACCEPTED; keep a
 * partial frame. Returns replies seen, or -1 on a refusal. */
static long take_replies(uint8_t *in, size_t *len, msgpack_zone *zone)
{
    size_t pos = 0, body;
    struct bd_reply_msg r;
    char err[128];
    long n = 0;

    while (bd_frame_peek(in + pos, *len - pos, BD_FRAME_DEFAULT_MAX, &body) ==
               BD_FRAME_OK && *len - pos >= BD_FRAME_HDR + body) {
        msgpack_zone_clear(zone);
        if (bd_msg_decode_reply(in + pos + BD_FRAME_HDR, body, zone, &r, err,
                                sizeof(err)) != 0 ||
            r.status != BATCHD_ACCEPTED) {
            fprintf(stderr, "flood: a key was refused: %.*s\n",
                    r.body ? (int)r.body_len : (int)strlen(err),
                    r.body ? (const char *)r.body : err);
            return -1;
        }
        pos += BD_FRAME_HDR + body;
        n++;
    }
    memmove(in, in + pos, *len - pos);
    *len -= pos;
    return n;
}

/* Send every frame of out, reading replies as they come, until n
 * replies are in. Returns 0 or -1. */
static int pump(int fd, struct bd_buf *out, unsigned long n, int timeout_ms)
{
    static uint8_t in[1 << 16];
    size_t in_len = 0, sent = 0;
    unsigned long got = 0;
    msgpack_zone zone;
    int rc = -1;

    msgpack_zone_init(&zone, 1024);

    while (got < n) {
        struct pollfd p = {.fd = fd, .events = POLLIN |
                           (sent < out->len ? POLLOUT : 0)};
        ssize_t r;
        long k;

        if (poll(&p, 1, timeout_ms) <= 0) {
            fprintf(stderr, "flood: no progress for %d ms (%lu of %lu replies)\n",
                    timeout_ms, got, n);
            goto out;
        }
        if ((p.revents & POLLOUT) != 0) {
            r = send(fd, bd_buf_head(out) + sent, out->len - sent,
                     MSG_DONTWAIT | MSG_NOSIGNAL);
            if (r > 0)
                sent += (size_t)r;
        }
        if ((p.revents & (POLLIN | POLLHUP | POLLERR)) == 0)
            continue;
        r = recv(fd, in + in_len, sizeof(in) - in_len, MSG_DONTWAIT);
        if (r <= 0 && !(r < 0 && errno == EAGAIN)) {
            fprintf(stderr, "flood: daemon closed the connection\n");
            goto out;
        }
        if (r > 0)
            in_len += (size_t)r;
        if ((k = take_replies(in, &in_len, &zone)) < 0)
            goto out;
        got += (unsigned long)k;
    }
    rc = 0;
out:
    msgpack_zone_destroy(&zone);
    return rc;
}

static int flood(const struct flood_args *a, const char *keys, double *secs)
{
    struct bd_buf out;
    uint8_t buf[4096];
    uint64_t t0;
    int fd = connect_unix(a->socket), rc = -1;

    bd_buf_init(&out);
    if (fd < 0) {
        fprintf(stderr, "flood: connect %s: %s\n", a->socket, strerror(errno));
        return -1;
    }
    if (bd_msg_encode_hello(&out, 0, BD_PROTO_VERSION, "flood") != 0 ||
        bd_write_all(fd, bd_buf_head(&out), out.len) != 0 ||
        read_reply(fd, buf, sizeof(buf)) != BATCHD_OK) {
        fprintf(stderr, "flood: HELLO failed\n");
        goto out;
    }
    bd_buf_consume(&out, out.len);
    for (unsigned long i = 0; i < a->nkeys; i++)
        if (bd_msg_encode_item(&out, BD_MSG_SEND, i + 1, keys + i * KEY_LEN,
                               KEY_LEN, "x", 1, NULL) != 0)
            goto out;
    t0 = now_ns();
    rc = pump(fd, &out, a->nkeys, a->timeout_ms);
    *secs = (double)(now_ns() - t0) / 1e9;
out:
    bd_buf_destroy(&out);
    close(fd);
    return rc;
}

static int parse_args(int argc, char **argv, struct flood_args *a)
{
    int o;

    *a = (struct flood_args){NULL, 40000, 1, 20, 60000};
    while ((o = getopt(argc, argv, "s:n:m:b:t:")) != -1) {
        switch (o) {
        case 's': a->socket = optarg; break;
        case 'n': a->nkeys = strtoul(optarg, NULL, 10); break;
        case 'm': a->fnv = strcmp(optarg, "fnv") == 0; break;
        case 'b': a->bits = (unsigned)atoi(optarg); break;
        case 't': a->timeout_ms = atoi(optarg); break;
        default: return -1;
        }
    }
    if (a->socket == NULL || a->nkeys == 0 || a->bits < 8 || a->bits > 24)
        return -1;
    return 0;
}

int main(int argc, char **argv)
{
    struct flood_args a;
    int ready[2], stop[2], res[2], status = 1;
    unsigned long long ping_max = 0, pings = 0;
    double secs = 0, gen;
    char *keys, line[64] = "";
    uint64_t t0;
    pid_t pid;

    if (parse_args(argc, argv, &a) != 0) {
        fprintf(stderr, "usage: flood -s SOCKET [-n KEYS] [-m fnv|random] "
                "[-b BITS 8..24] [-t TIMEOUT_MS]\n");
        return 2;
    }
    keys = malloc(a.nkeys * KEY_LEN);
    t0 = now_ns();
    if (keys == NULL || (a.fnv ? fnv_keys(keys, a.nkeys, a.bits) :
                         (random_keys(keys, a.nkeys), 0)) != 0) {
        fprintf(stderr, "flood: cannot make %lu keys\n", a.nkeys);
        return 1;
    }
    gen = (double)(now_ns() - t0) / 1e9;
    if (pipe(ready) != 0 || pipe(stop) != 0 || pipe(res) != 0)
        return 1;
    pid = fork();
    if (pid == 0)
        _exit(pinger(&a, ready[1], stop[0], res[1]));
    if (pid < 0 || read(ready[0], line, 1) != 1) {
        fprintf(stderr, "flood: the pinger did not start\n");
        return 1;
    }
    status = flood(&a, keys, &secs) == 0 ? 0 : 1;
    if (write(stop[1], "s", 1) != 1)
        status = 1;
    memset(line, 0, sizeof(line));
    if (read(res[0], line, sizeof(line) - 1) <= 0 ||
        sscanf(line, "%llu %llu", &ping_max, &pings) != 2)
        status = 1;
    waitpid(pid, NULL, 0);
    printf("flood: mode=%s keys=%lu gen_s=%.3f admit_s=%.3f ping_max_ms=%.2f "
           "pings=%llu%s\n", a.fnv ? "fnv" : "random", a.nkeys, gen, secs,
           (double)ping_max / 1e6, pings, status ? " FAILED" : "");
    free(keys);
    return status;
}
