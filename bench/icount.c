/*
 * icount.c - the daemon's hot path in one process, for callgrind.
 *
 * Links the daemon's modules (everything but main.c) and drives one
 * connection through the real code: config from a string, the sinks
 * loaded from the sink directory, bd_server_new (which binds a socket in
 * a temporary directory, unused here), then one end of a socketpair
 * handed to bd_conn_new. From the other end it writes a HELLO and then
 * N LOAD frames in chunks of C frames, runs event_base_loop(EVLOOP_NONBLOCK)
 * and reads the replies until all C of the chunk are back, chunk after
 * chunk: a client keeping C requests in flight, with no kernel
 * scheduling in the way, so the instruction count is exact and
 * repeatable.
 *
 * The driver's own cost per item is kept near zero: one chunk of C
 * frames is encoded once (req_ids 2^20 + i, same encoded size each) and
 * written again and again, and replies are only counted by their length
 * prefix. Correctness comes from the daemon's own counters at the end:
 * every LOAD must have been answered OK.
 *
 * bench/icount.sh runs this under callgrind for two values of N and
 * divides the difference in instructions by the difference in N, which
 * cancels start-up, sink loading and teardown.
 *
 * -o picks request options, to price the features when used:
 *   plain  none (the hot path; default)
 *   empty  an empty opts map: the full decoder (any options take it)
 *          and the admission path for options, no feature: what the
 *          modes below compare against
 *   deadline  opts.deadline_ms = 60000
 *   prio   opts.priority = i % 4: the key's priority lanes in use
 *   dedup  a dedup_id per item, all different: coalescing records, no join
 *   join   a dedup_id shared by each pair of items: half of them join
 *   trace  a W3C traceparent per item
 *
 *   usage: icount [-n ITEMS] [-c CHUNK] [-z SIZE] [-s SINK] [-d SINK_DIR]
 *                 [-o MODE]
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "alloc.h"
#include "buf.h"
#include "config.h"
#include "conn.h"
#include "frame.h"
#include "gen.h"
#include "log.h"
#include "msg.h"
#include "server.h"
#include "sink.h"

#define REQ_ID_BASE (1u << 20)

struct icount_args {
    unsigned long items;      /* N LOAD frames */
    unsigned chunk;           /* C frames per write */
    size_t size;              /* payload bytes */
    const char *sink;         /* plugin name */
    const char *sink_dir;
    const char *mode;         /* -o: plain, empty, deadline, prio, dedup, join, trace */
};

/* The options of frame i of a chunk under mode (NULL: none); ids and
 * traces point into static buffers that live as long as the encoding. */
static const struct bd_opts *mode_opts(const char *mode, unsigned i,
                                       struct bd_opts *o, char *id, size_t n)
{
    memset(o, 0, sizeof(*o));
    if (strcmp(mode, "empty") == 0) {
        /* all unset: encoded as an empty map */
    } else if (strcmp(mode, "deadline") == 0) {
        o->has_deadline = 1;
        o->deadline_ms = 60000;
    } else if (strcmp(mode, "prio") == 0) {
        o->has_priority = 1;
        o->priority = i % 4;
    } else if (strcmp(mode, "dedup") == 0 || strcmp(mode, "join") == 0) {
        o->dedup_len = (size_t)snprintf(id, n, "id-%05u",
                                        mode[0] == 'j' ? i / 2 : i);
        o->dedup_id = id;
    } else if (strcmp(mode, "trace") == 0) {
        o->trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        o->trace_len = 55;
    } else {
        return NULL;
    }
    return o;
}

static int set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);

    return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* Write all n bytes to a non-blocking socket, running the loop while the
 * socket is full so that the daemon drains it. */
static int feed(struct bd_server *srv, int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);

        if (w > 0) {
            p += w;
            n -= (size_t)w;
        } else if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
            event_base_loop(srv->base, EVLOOP_NONBLOCK);
        } else {
            return -1;
        }
    }
    return 0;
}

/* Read what is there and count whole reply frames; keeps a partial one. */
static long drain(int fd, struct bd_buf *in)
{
    long frames = 0;
    size_t pos = 0, body;

    for (;;) {
        ssize_t r;

        if (bd_buf_reserve(in, 64 * 1024) != 0)
            return -1;
        r = read(fd, bd_buf_tail(in), bd_buf_room(in));
        if (r == 0)
            return -1; /* the daemon closed the connection */
        if (r < 0)
            break;
        in->len += (size_t)r;
    }
    while (bd_frame_peek(bd_buf_head(in) + pos, in->len - pos,
                         BD_FRAME_DEFAULT_MAX, &body) == BD_FRAME_OK &&
           in->len - pos - BD_FRAME_HDR >= body) {
        pos += BD_FRAME_HDR + body;
        frames++;
    }
    bd_buf_consume(in, pos);
    return frames;
}

static struct bd_server *start_server(const struct icount_args *a,
                                      const char *dir)
{
    char text[1024], err[512];
    char *errs = NULL;
    struct bd_config *cfg;
    struct bd_gen *gen;
    struct bd_server *srv;

    snprintf(text, sizeof(text),
             "[daemon]\nsocket = %s/icount.sock\nmax_concurrency = 1\n"
             "log_level = warn\n"
             "[sink.s]\nplugin = %s\n"
             "[route.all]\nmatch = *\nsink = s\npolicy = immediate\n"
             "max_items = 256\n", dir, a->sink);
    cfg = bd_config_load_string(text, "icount", &errs);
    if (cfg == NULL) {
        fprintf(stderr, "icount: config: %s", errs ? errs : "out of memory\n");
        bd_free(errs);
        return NULL;
    }
    bd_log_set_level(cfg->log_level);
    gen = bd_gen_new(cfg, NULL, a->sink_dir, err, sizeof(err)); /* takes cfg */
    if (gen == NULL) {
        fprintf(stderr, "icount: %s\n", err);
        bd_config_free(cfg);
        return NULL;
    }
    srv = bd_server_new(gen, err, sizeof(err)); /* takes gen */
    if (srv == NULL)
        fprintf(stderr, "icount: %s\n", err);
    return srv;
}

/* HELLO, then N LOADs in chunks; returns 0 when all N came back. */
static int drive(const struct icount_args *a, struct bd_server *srv, int fd)
{
    struct bd_buf hello, chunk, in;
    char *payload = malloc(a->size + 1);
    size_t frame_len;
    unsigned long sent = 0, got = 0;
    long hello_back = 0;
    int rc = -1;

    bd_buf_init(&hello);
    bd_buf_init(&chunk);
    bd_buf_init(&in);
    if (payload == NULL)
        goto out;
    for (size_t i = 0; i < a->size; i++)
        payload[i] = (char)('a' + i % 26);
    if (bd_msg_encode_hello(&hello, 1, BD_PROTO_VERSION, "icount") != 0)
        goto out;
    for (unsigned i = 0; i < a->chunk; i++) {
        struct bd_opts o;
        char id[16];

        /* "%05u": every frame of a chunk has the same length. */
        if (bd_msg_encode_item(&chunk, BD_MSG_LOAD, REQ_ID_BASE + i, "bench", 5,
                               payload, a->size,
                               mode_opts(a->mode, i, &o, id, sizeof(id))) != 0)
            goto out;
    }
    frame_len = chunk.len / a->chunk;
    if (feed(srv, fd, bd_buf_head(&hello), hello.len) != 0)
        goto out;
    while (hello_back == 0) {
        event_base_loop(srv->base, EVLOOP_NONBLOCK);
        if ((hello_back = drain(fd, &in)) < 0)
            goto out;
    }
    while (got < a->items) {
        unsigned long n = a->items - sent < a->chunk ? a->items - sent : a->chunk;
        unsigned long want = sent + n;

        if (feed(srv, fd, bd_buf_head(&chunk), n * frame_len) != 0)
            goto out;
        sent += n;
        for (unsigned idle = 0; got < want; idle++) {
            long r;

            event_base_loop(srv->base, EVLOOP_NONBLOCK);
            if ((r = drain(fd, &in)) < 0 || idle > 100000)
                goto out; /* closed, or the daemon stopped answering */
            if (r > 0)
                idle = 0;
            got += (unsigned long)r;
        }
    }
    rc = 0;
out:
    if (rc != 0)
        fprintf(stderr, "icount: driver failed at %lu of %lu (%s)\n", got,
                a->items, strerror(errno));
    bd_buf_destroy(&hello);
    bd_buf_destroy(&chunk);
    bd_buf_destroy(&in);
    free(payload);
    return rc;
}

static int parse_args(int argc, char **argv, struct icount_args *a)
{
    int ch;

    while ((ch = getopt(argc, argv, "n:c:z:s:d:o:h")) != -1) {
        switch (ch) {
        case 'n': a->items = strtoul(optarg, NULL, 10); break;
        case 'c': a->chunk = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'z': a->size = strtoul(optarg, NULL, 10); break;
        case 's': a->sink = optarg; break;
        case 'd': a->sink_dir = optarg; break;
        case 'o': a->mode = optarg; break;
        default: return -1;
        }
    }
    return optind == argc && a->items > 0 && a->chunk > 0 &&
           a->chunk <= 4096 && a->size <= 65536 ? 0 : -1;
}

int main(int argc, char **argv)
{
    struct icount_args a = {.items = 20000, .chunk = 64, .size = 64,
                            .sink = "null", .sink_dir = "build/sinks",
                            .mode = "plain"};
    char dir[] = "/tmp/batchd-icount-XXXXXX";
    struct bd_server *srv;
    int sv[2], rc = 1;

    if (parse_args(argc, argv, &a) != 0) {
        fprintf(stderr, "usage: icount [-n ITEMS] [-c CHUNK] [-z SIZE] "
                "[-s SINK] [-d SINK_DIR]\n");
        return 2;
    }
    if (mkdtemp(dir) == NULL) {
        perror("icount: mkdtemp");
        return 1;
    }
    srv = start_server(&a, dir);
    if (srv == NULL)
        goto out_rmdir;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0 ||
        set_nonblock(sv[0]) != 0 || set_nonblock(sv[1]) != 0) {
        perror("icount: socketpair");
        goto out_free;
    }
    if (bd_conn_new(srv, sv[0]) == NULL) { /* takes sv[0] */
        fprintf(stderr, "icount: bd_conn_new failed\n");
        close(sv[1]);
        goto out_free;
    }
    if (drive(&a, srv, sv[1]) == 0) {
        uint64_t ok = srv->core.ctr.status[BATCHD_OK];

        if (srv->core.ctr.items_in != a.items || ok != a.items) {
            fprintf(stderr, "icount: %lu LOADs sent, daemon took %llu and "
                    "answered %llu OK\n", a.items,
                    (unsigned long long)srv->core.ctr.items_in,
                    (unsigned long long)ok);
        } else {
            printf("icount: %lu items, chunk %u, %zu-byte payloads, sink %s: "
                   "%llu batches, all OK\n", a.items, a.chunk, a.size, a.sink,
                   (unsigned long long)srv->core.ctr.batches);
            rc = 0;
        }
    }
    close(sv[1]);
out_free:
    bd_server_free(srv);
out_rmdir:
    rmdir(dir);
    return rc;
}
