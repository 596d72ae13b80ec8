/*
 * kafka_direct.c - the baseline for bench/kafka.sh: client processes
 * that produce to the mock cluster themselves, without batchd
 * (DESIGN section 9: "against the same clients talking to the backend
 * directly").
 *
 *   kafka_direct -b BOOTSTRAP [-P PROCS] [-D DEPTH] [-n ITEMS] [-m long|fresh]
 *                [-l LINGER_MS]
 *
 * -m long:  each process keeps one producer (idempotent, acks all, like
 *           the sink) and DEPTH messages in flight; latency is from
 *           produce() to the message's delivery report.
 * -m fresh: each item is a process's whole life as a one-shot event
 *           sender sees it: a new producer, one message, flush, destroy
 *           (DEPTH is 1); latency is that whole sequence.
 *
 * ITEMS per process; 64-byte payloads to topic "bench", no key. Prints
 * one line like bench/loadgen's: items_s, p50_us, p99_us.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

struct args {
    const char *boot;         /* bootstrap servers */
    int procs, depth, items;
    int fresh;                /* -m fresh */
    const char *linger;       /* linger.ms */
};

/* One process's view of its in-flight messages. */
struct client {
    double *lat_us;           /* its slice of the shared latency array */
    int done;                 /* delivery reports seen */
    int failed;               /* reports with an error */
};

static double now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

/* The message's opaque is its start time slot. */
static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    struct client *c = opaque;
    double *t0 = m->_private;

    (void)rk;
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR)
        c->failed++;
    *t0 = now_us() - *t0;    /* start time -> latency, in place */
    c->done++;
}

static rd_kafka_t *producer(const struct args *a, struct client *c)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    const char *kv[][2] = {
        { "bootstrap.servers", a->boot }, { "enable.idempotence", "true" },
        { "linger.ms", a->linger }, { "log_level", "3" },
    };
    char err[256];

    for (size_t i = 0; i < sizeof(kv) / sizeof(kv[0]); i++)
        if (rd_kafka_conf_set(conf, kv[i][0], kv[i][1], err, sizeof(err)) !=
            RD_KAFKA_CONF_OK) {
            fprintf(stderr, "kafka_direct: %s\n", err);
            exit(2);
        }
    rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    rd_kafka_conf_set_opaque(conf, c);
    return rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
}

static int produce(rd_kafka_t *rk, double *slot)
{
    static char payload[64];

    memset(payload, 'p', sizeof(payload));
    *slot = now_us();
    return rd_kafka_producev(rk, RD_KAFKA_V_TOPIC("bench"),
                             RD_KAFKA_V_VALUE(payload, sizeof(payload)),
                             RD_KAFKA_V_OPAQUE(slot), RD_KAFKA_V_END) ==
                   RD_KAFKA_RESP_ERR_NO_ERROR ? 0 : -1;
}

/* -m long: one producer, depth messages in flight. */
static int run_long(const struct args *a, struct client *c)
{
    rd_kafka_t *rk = producer(a, c);
    int sent = 0;

    if (rk == NULL)
        return 1;
    while (c->done < a->items) {
        while (sent < a->items && sent - c->done < a->depth)
            if (produce(rk, &c->lat_us[sent++]) != 0)
                return 1;
        rd_kafka_poll(rk, 100);
    }
    rd_kafka_destroy(rk);
    return c->failed != 0;
}

/* -m fresh: a producer per item, as a one-shot process would. */
static int run_fresh(const struct args *a, struct client *c)
{
    for (int i = 0; i < a->items; i++) {
        double t0 = now_us();
        rd_kafka_t *rk = producer(a, c);

        if (rk == NULL || produce(rk, &c->lat_us[i]) != 0)
            return 1;
        rd_kafka_flush(rk, 10000);
        rd_kafka_destroy(rk);
        c->lat_us[i] = now_us() - t0;
    }
    return c->done != a->items || c->failed != 0;
}

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;

    return a < b ? -1 : a > b;
}

int main(int argc, char **argv)
{
    struct args a = { NULL, 1, 1, 1000, 0, "1" };
    size_t total, bytes;
    double *lat, t0, el;
    int opt, bad = 0;

    while ((opt = getopt(argc, argv, "b:P:D:n:m:l:")) != -1) {
        switch (opt) {
        case 'b': a.boot = optarg; break;
        case 'P': a.procs = atoi(optarg); break;
        case 'D': a.depth = atoi(optarg); break;
        case 'n': a.items = atoi(optarg); break;
        case 'm': a.fresh = strcmp(optarg, "fresh") == 0; break;
        case 'l': a.linger = optarg; break;
        default: a.boot = NULL; break;
        }
    }
    if (a.boot == NULL || a.procs < 1 || a.depth < 1 || a.items < 1) {
        fprintf(stderr, "usage: kafka_direct -b BOOTSTRAP [-P N] [-D N] [-n N] "
                        "[-m long|fresh] [-l LINGER_MS]\n");
        return 2;
    }
    total = (size_t)a.procs * (size_t)a.items;
    bytes = total * sizeof(double);
    lat = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (lat == MAP_FAILED)
        return 1;
    t0 = now_us();
    for (int p = 0; p < a.procs; p++) {
        if (fork() == 0) {
            struct client c = { lat + (size_t)p * (size_t)a.items, 0, 0 };

            _exit(a.fresh ? run_fresh(&a, &c) : run_long(&a, &c));
        }
    }
    for (int p = 0; p < a.procs; p++) {
        int st;

        if (wait(&st) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
            bad++;
    }
    el = (now_us() - t0) / 1e6;
    qsort(lat, total, sizeof(double), cmp_double);
    printf("kafka_direct mode=%s P=%d D=%d n=%d failed_procs=%d items_s=%.0f "
           "p50_us=%.1f p99_us=%.1f\n", a.fresh ? "fresh" : "long", a.procs,
           a.depth, a.items, bad, total / el, lat[total / 2],
           lat[(size_t)(total * 0.99)]);
    munmap(lat, bytes);
    return bad != 0;
}
