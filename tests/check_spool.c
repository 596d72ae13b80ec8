/*
 * check_spool.c - durable SEND routes (issue 16): the spool's records
 * and CRC, a crash oracle with SIGKILL at seeded random moments (during
 * sink calls, during an fdatasync), damaged spool files at start-up,
 * the size cap, and dead letters.
 *
 * Real parts only: the daemon binary, the chaos sink with its delivery
 * ledger (sinks/chaos.c: one "<tag> <key>" line per item it took), raw
 * client sockets. The seed is printed (BD_SPOOL_SEED replays a run).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <check.h>

#include "batchd.h"
#include "batchd_status.h"
#include "helpers.h"
#include "msg.h"
#include "spool_rec.h"

#define ROUNDS 6              /* crash rounds of the oracle */
#define PER_ROUND 3000        /* SENDs a round sends at most */
#define CHUNK 100             /* SENDs written before their replies are read */
#define MAX_ITEMS 50          /* the route's max_items */
#define CONCURRENCY 2         /* max_concurrency */

/* ---- records and CRC (unit) ------------------------------------------------ */

START_TEST(test_crc32c_vectors)
{
    uint8_t buf[32];

    /* RFC 3720 B.4 and the usual check value. */
    ck_assert_uint_eq(bd_crc32c(0, "123456789", 9), 0xE3069283u);
    memset(buf, 0, sizeof(buf));
    ck_assert_uint_eq(bd_crc32c(0, buf, 32), 0x8A9136AAu);
    memset(buf, 0xff, sizeof(buf));
    ck_assert_uint_eq(bd_crc32c(0, buf, 32), 0x62A8AB43u);
    for (int i = 0; i < 32; i++)
        buf[i] = (uint8_t)i;
    ck_assert_uint_eq(bd_crc32c(0, buf, 32), 0x46DD794Eu);
    /* Running form: two halves give the whole. */
    ck_assert_uint_eq(bd_crc32c(bd_crc32c(0, buf, 10), buf + 10, 22), 0x46DD794Eu);
    ck_assert_uint_eq(bd_crc32c_sw(0, "123456789", 9), 0xE3069283u);
    /* The instruction and the table agree on every length and offset. */
    {
        uint8_t big[300];

        for (size_t i = 0; i < sizeof(big); i++)
            big[i] = (uint8_t)(i * 131 + 7);
        for (size_t off = 0; off < 9; off++)
            for (size_t n = 0; n + off <= sizeof(big); n += 7)
                ck_assert_uint_eq(bd_crc32c(0, big + off, n),
                                  bd_crc32c_sw(0, big + off, n));
    }
    printf("spool: CRC-32C by %s\n", bd_crc32c_hw() ? "SSE4.2" : "table");
}
END_TEST

static size_t enc(const struct bd_rec *r, uint8_t *out)
{
    size_t n = bd_rec_size(r);

    ck_assert_uint_gt(n, 0);
    ck_assert_uint_eq(bd_rec_encode(r, out), n);
    return n;
}

START_TEST(test_record_roundtrip)
{
    uint8_t buf[512];
    struct bd_rec in[3] = {
        {.type = BD_REC_ITEM, .id = 7, .key = "k1", .key_len = 2,
         .payload = (const uint8_t *)"hello", .len = 5},
        {.type = BD_REC_DONE, .id = 7},
        {.type = BD_REC_DEAD, .id = 9, .key = "key", .key_len = 3,
         .payload = (const uint8_t *)"", .len = 0, .attempts = 3,
         .time_s = 1700000000, .err = "boom", .err_len = 4},
    }, out;
    size_t off = 0, used, sizes[3];

    for (int i = 0; i < 3; i++)
        off += sizes[i] = enc(&in[i], buf + off);
    off = 0;
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(bd_rec_decode(buf + off, sizes[i], &out, &used), BD_REC_OK);
        ck_assert_uint_eq(used, sizes[i]);
        ck_assert_int_eq(out.type, in[i].type);
        ck_assert_uint_eq(out.id, in[i].id);
        ck_assert_uint_eq(out.key_len, in[i].key_len);
        ck_assert(in[i].key_len == 0 || memcmp(out.key, in[i].key, in[i].key_len) == 0);
        ck_assert_uint_eq(out.len, in[i].len);
        ck_assert(in[i].len == 0 || memcmp(out.payload, in[i].payload, out.len) == 0);
        ck_assert_uint_eq(out.attempts, in[i].attempts);
        ck_assert_uint_eq(out.time_s, in[i].time_s);
        ck_assert_uint_eq(out.err_len, in[i].err_len);
        /* Every cut is SHORT, never a crash or a wrong record. */
        for (size_t cut = 0; cut < sizes[i]; cut++)
            ck_assert_int_eq(bd_rec_decode(buf + off, cut, &out, &used), BD_REC_SHORT);
        off += sizes[i];
    }
    /* Every single flipped bit of the first record is caught. */
    for (size_t bit = 0; bit < sizes[0] * 8; bit++) {
        buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        ck_assert_int_ne(bd_rec_decode(buf, sizes[0], &out, &used), BD_REC_OK);
        buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    }
}
END_TEST

START_TEST(test_scan_skips_damage)
{
    uint8_t buf[4096];
    size_t off = 0, at[10];
    struct bd_rec_scan sc;

    for (int i = 0; i < 10; i++) {
        char p[32];
        struct bd_rec r = {.type = BD_REC_ITEM, .id = (uint64_t)i + 1,
                           .key = "k", .key_len = 1, .payload = (uint8_t *)p,
                           .len = (size_t)snprintf(p, sizeof(p), "payload-%d", i)};

        at[i] = off;
        off += enc(&r, buf + off);
    }
    bd_rec_scan(buf, off, NULL, NULL, &sc);
    ck_assert_uint_eq(sc.records, 10);
    ck_assert_uint_eq(sc.damaged, 0);
    buf[at[4] + 30] ^= 0x10;          /* a bit in record 5's payload */
    bd_rec_scan(buf, off, NULL, NULL, &sc);
    ck_assert_uint_eq(sc.records, 9);
    ck_assert_uint_eq(sc.damaged, 1);
    ck_assert_uint_eq(sc.first_bad, at[4]);
    buf[at[4] + 30] ^= 0x10;
    bd_rec_scan(buf, at[7] + 5, NULL, NULL, &sc); /* torn tail */
    ck_assert_uint_eq(sc.records, 7);
    ck_assert_uint_eq(sc.damaged, 1);
    memset(buf + at[2] + 4, 0xff, 4); /* a length that runs past the end */
    bd_rec_scan(buf, off, NULL, NULL, &sc);
    ck_assert_uint_eq(sc.records, 9);
    ck_assert_uint_eq(sc.damaged, 1);
}
END_TEST

/* ---- a daemon with a durable route -------------------------------------------- */

static unsigned long long seed_of(void)
{
    const char *e = getenv("BD_SPOOL_SEED");
    unsigned long long s = e ? strtoull(e, NULL, 0) :
                           (unsigned long long)time(NULL) ^ (unsigned long long)getpid();

    printf("spool: seed %llu (BD_SPOOL_SEED replays)\n", s);
    return s;
}

static uint64_t rng_next(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

/* The config of every test: @EXTRA_D@-style pieces go in by printf. */
static struct bd_test_daemon *spool_daemon(const char *daemon_extra,
                                           const char *sink_extra,
                                           const char *route_extra)
{
    char conf[2048];

    snprintf(conf, sizeof(conf),
             "[daemon]\nspool_dir = @DIR@/spool\nmax_concurrency = %d\n%s\n"
             "[sink.c]\nplugin = chaos\nledger = @DIR@/sink.ledger\n%s\n"
             "[route.d]\nmatch = d*\nsink = c\ndurable = yes\nmax_items = %d\n"
             "max_delay_us = 2000\nmax_attempts = 2\nretry_base_ms = 10\n"
             "retry_cap_ms = 20\n%s\n",
             CONCURRENCY, daemon_extra, sink_extra, MAX_ITEMS, route_extra);
    return bd_test_daemon_start(conf);
}

static long long stat_of(struct bd_test_daemon *d, const char *name)
{
    char *js = bd_test_stats_json(d);
    long long v = -1;

    bd_test_json_int(js, name, &v);
    free(js);
    return v;
}

static void control(struct bd_test_daemon *d, const char *cmd)
{
    struct batchd_client *c = bd_test_connect(d);
    struct batchd_reply *r = NULL;

    ck_assert_int_eq(batchd_control(c, cmd, NULL, 0, bd_test_scaled(10000), &r),
                     BATCHD_CLIENT_OK);
    ck_assert_int_eq(r->status, BATCHD_OK);
    batchd_reply_free(r);
    batchd_free(c);
}

/* Wait until nothing is queued, waiting or running. */
static void wait_idle(struct bd_test_daemon *d, int timeout_ms)
{
    double end = bd_test_now_ms() + bd_test_scaled(timeout_ms);

    while (stat_of(d, "queued_items") + stat_of(d, "inflight_items") +
           stat_of(d, "retry_waiting") != 0) {
        ck_assert_msg(bd_test_now_ms() < end, "the daemon did not go idle");
        usleep(20000);
    }
}

static void restart(struct bd_test_daemon *d)
{
    bd_test_daemon_spawn(d, NULL);
    bd_test_daemon_wait_ready(d);
}

/* A raw client connection that has said HELLO. */
static int client(struct bd_test_daemon *d)
{
    int fd = bd_test_raw_connect(d);

    bd_test_raw_hello(fd);
    return fd;
}

/* SEND payload "r<round>-<i>" (padded with '.' to size) as req_id i. */
static void send_one(int fd, int round, int i, size_t size)
{
    char p[1024];
    int n = snprintf(p, sizeof(p), "r%d-%d ", round, i);

    if ((size_t)n < size) {
        memset(p + n, '.', size - (size_t)n);
        n = (int)size;
    }
    ck_assert_int_eq(bd_test_raw_write_item(fd, BD_MSG_SEND, (uint64_t)i,
                                            "d0", p, (size_t)n), 0);
}

/* Read replies until n came or the connection died; mark ACCEPTED ones.
 * Returns the replies read. */
static int read_replies(int fd, int n, unsigned char *accepted, int timeout_ms)
{
    struct bd_test_frame f;
    int got = 0;

    while (got < n) {
        int rc = bd_test_raw_read(fd, timeout_ms, &f);

        if (rc != 1)
            break;
        if (f.status == BATCHD_ACCEPTED && f.req_id < PER_ROUND)
            accepted[f.req_id] = 1;
        bd_test_frame_free(&f);
        got++;
    }
    return got;
}

/* The syscall number one thread of pid is in right now, or -1. */
static long thread_syscall(pid_t pid, const char *tid)
{
    char path[320], buf[64];
    int fd, n;

    snprintf(path, sizeof(path), "/proc/%d/task/%s/syscall", (int)pid, tid);
    fd = open(path, O_RDONLY);
    if (fd < 0)
        return -1;
    n = (int)read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0 || buf[0] < '0' || buf[0] > '9')
        return -1;
    buf[n] = '\0';
    return atol(buf);
}

/* Some thread of pid (the spool's sync thread) is inside fdatasync(2). */
static int in_fdatasync(pid_t pid)
{
#if defined(__x86_64__)
    const long nr = 75;       /* __NR_fdatasync */
#elif defined(__aarch64__)
    const long nr = 83;
#else
    const long nr = -2;
#endif
    char dir[64];
    struct dirent *e;
    DIR *d;
    int hit = 0;

    snprintf(dir, sizeof(dir), "/proc/%d/task", (int)pid);
    d = opendir(dir);
    if (d == NULL)
        return 0;
    while (!hit && (e = readdir(d)) != NULL)
        hit = e->d_name[0] != '.' && thread_syscall(pid, e->d_name) == nr;
    closedir(d);
    return hit;
}

/* ---- the crash oracle ------------------------------------------------------------ */

enum kill_when {
    KILL_STREAMING = 0,       /* at a random reply count while SENDs stream */
    KILL_IN_SINK = 1,         /* while a sink call is running (slow sink) */
    KILL_IN_SYNC = 2,         /* while the loop is inside fdatasync */
};

/* One round: send, kill at the chosen moment, read what was answered.
 * Returns the items in flight at the kill (an upper bound: calls
 * running, each up to MAX_ITEMS). */
static int crash_round(struct bd_test_daemon *d, int round, enum kill_when when,
                       uint64_t *rng, unsigned char *accepted)
{
    int fd = client(d), sent = 0, read = 0, kill_at;
    pid_t pid = bd_test_daemon_pid(d);
    int killed = 0, sync_seen = 0;

    kill_at = CHUNK + (int)(rng_next(rng) % (PER_ROUND - 2 * CHUNK));
    while (sent < PER_ROUND && !killed) {
        for (int i = 0; i < CHUNK; i++)
            send_one(fd, round, sent++, 64);
        if (when == KILL_IN_SYNC && read >= kill_at) {
            /* Poll the loop thread until it sits in fdatasync. */
            double end = bd_test_now_ms() + 5000;

            while (!(sync_seen = in_fdatasync(pid)) && bd_test_now_ms() < end)
                ;
            kill(pid, SIGKILL);
            killed = 1;
            break;
        }
        read += read_replies(fd, CHUNK, accepted, bd_test_scaled(10000));
        if (when == KILL_STREAMING && read >= kill_at) {
            kill(pid, SIGKILL);
            killed = 1;
        } else if (when == KILL_IN_SINK && read >= kill_at &&
                   stat_of(d, "inflight_batches") > 0) {
            kill(pid, SIGKILL);
            killed = 1;
        }
    }
    if (!killed)
        kill(pid, SIGKILL);
    /* Replies the daemon wrote before it died still count. */
    read += read_replies(fd, PER_ROUND, accepted, bd_test_scaled(5000));
    bd_test_raw_close(fd);
    ck_assert_int_eq(bd_test_daemon_wait_exit(d, 15000), 128 + SIGKILL);
    printf("spool crash round %d (%s): %d sent, %d answered, kill after %d%s\n",
           round, when == KILL_IN_SYNC ? "in fdatasync" :
           when == KILL_IN_SINK ? "in a sink call" : "streaming",
           sent, read, kill_at,
           when == KILL_IN_SYNC ? (sync_seen ? " (seen in fdatasync)" :
                                   " (fdatasync not caught in 5 s)") : "");
    return CONCURRENCY * MAX_ITEMS;
}

/* Count ledger lines per tag "r<round>-<i>". */
static void read_ledger(struct bd_test_daemon *d, int *count)
{
    size_t len;
    char *text = bd_test_read_file(bd_test_daemon_path(d, "sink.ledger"), &len);
    char *save = NULL;

    ck_assert_ptr_nonnull(text);
    for (char *line = strtok_r(text, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        int r, i;

        if (sscanf(line, "r%d-%d", &r, &i) == 2 && r >= 0 && r < ROUNDS &&
            i >= 0 && i < PER_ROUND)
            count[r * PER_ROUND + i]++;
    }
    free(text);
}

START_TEST(test_crash_oracle)
{
    uint64_t rng = seed_of() | 1;
    struct bd_test_daemon *d = spool_daemon("", "delay_ms = 30\n", "");
    unsigned char *acc = calloc(ROUNDS, PER_ROUND);
    int *count = calloc(ROUNDS * PER_ROUND, sizeof(int));
    long accepted = 0, missing = 0, dups = 0, bound = 0, recovered = 0;
    static const enum kill_when plan[ROUNDS] = {
        KILL_IN_SINK, KILL_IN_SYNC, KILL_STREAMING, KILL_IN_SYNC,
        KILL_IN_SINK, KILL_STREAMING,
    };

    ck_assert_ptr_nonnull(acc);
    ck_assert_ptr_nonnull(count);
    for (int r = 0; r < ROUNDS; r++) {
        bound += crash_round(d, r, plan[r], &rng, acc + r * PER_ROUND);
        restart(d);
        recovered += stat_of(d, "spool_recovered");
    }
    wait_idle(d, 60000);
    read_ledger(d, count);
    bd_test_daemon_stop(d);
    for (long i = 0; i < (long)ROUNDS * PER_ROUND; i++) {
        if (count[i] > 1)
            dups += count[i] - 1;
        if (!acc[i])
            continue;
        accepted++;
        if (count[i] == 0) {
            if (missing++ < 10)
                printf("spool: ACCEPTED r%ld-%ld never delivered\n",
                       i / PER_ROUND, i % PER_ROUND);
        }
    }
    printf("spool crash oracle: %d kills, %ld ACCEPTED, %ld missing, %ld "
           "duplicates (bound %ld), %ld recovered at restarts\n", ROUNDS,
           accepted, missing, dups, bound, recovered);
    ck_assert_int_gt(accepted, 0);
    ck_assert_int_gt(recovered, 0);
    ck_assert_int_eq(missing, 0);
    ck_assert_int_le(dups, bound);
    free(acc);
    free(count);
}
END_TEST

/* ---- damaged files at start-up ------------------------------------------------------ */

#define NDAMAGE 200           /* items left in the spool */
#define DPAYLOAD 40           /* their payload bytes */
#define DREC (BD_REC_HDR + 2 + 2 + DPAYLOAD) /* one ITEM record, key "d0" */

/* A killed daemon that left NDAMAGE undelivered items in its spool
 * (dispatch paused), segments of seg_bytes. */
static struct bd_test_daemon *leave_items(const char *seg_bytes)
{
    char dx[128];
    struct bd_test_daemon *d;
    unsigned char acc[PER_ROUND] = {0};
    int fd;

    snprintf(dx, sizeof(dx), "spool_segment_bytes = %s\n", seg_bytes);
    d = spool_daemon(dx, "", "");
    control(d, "pause");
    fd = client(d);
    for (int i = 0; i < NDAMAGE; i++)
        send_one(fd, 0, i, DPAYLOAD);
    ck_assert_int_eq(read_replies(fd, NDAMAGE, acc, bd_test_scaled(10000)), NDAMAGE);
    for (int i = 0; i < NDAMAGE; i++)
        ck_assert(acc[i]);
    bd_test_raw_close(fd);
    ck_assert_int_eq(bd_test_daemon_kill(d, SIGKILL), 128 + SIGKILL);
    return d;
}

/* The segment files of d's spool, sorted (names in out, up to max). */
static int segments(struct bd_test_daemon *d, char out[][600], int max)
{
    char dir[256];
    struct dirent **list;
    int n, k = 0;

    snprintf(dir, sizeof(dir), "%s", bd_test_daemon_path(d, "spool"));
    n = scandir(dir, &list, NULL, alphasort);
    ck_assert_int_ge(n, 0);
    for (int i = 0; i < n; i++) {
        size_t l = strlen(list[i]->d_name);

        if (k < max && l > 6 && strcmp(list[i]->d_name + l - 6, ".spool") == 0 &&
            strncmp(list[i]->d_name, "seg-", 4) == 0)
            snprintf(out[k++], 600, "%s/%s", dir, list[i]->d_name);
        free(list[i]);
    }
    free(list);
    return k;
}

static void assert_restart_counts(struct bd_test_daemon *d, long long recovered,
                                  long long damaged, long long missing)
{
    restart(d);   /* start-up succeeds: asserts */
    ck_assert_int_eq(stat_of(d, "spool_recovered"), recovered);
    ck_assert_int_eq(stat_of(d, "spool_damaged"), damaged);
    ck_assert_int_eq(stat_of(d, "spool_missing_segments"), missing);
    wait_idle(d, 30000);
}

START_TEST(test_damage_torn_tail)
{
    uint64_t rng = seed_of() | 1;
    struct bd_test_daemon *d = leave_items("16M");
    char seg[4][600];
    int k = (int)(rng_next(&rng) % NDAMAGE), cut = 1 + (int)(rng_next(&rng) % (DREC - 1));

    ck_assert_int_eq(segments(d, seg, 4), 1);
    /* Cut inside record k: the k before it survive. */
    ck_assert_int_eq(truncate(seg[0], (off_t)k * DREC + cut), 0);
    printf("spool torn tail: cut at record %d + %d bytes\n", k, cut);
    assert_restart_counts(d, k, 1, 0);
    ck_assert_int_eq(access(bd_test_daemon_path(d, "spool/seg-0000000000000001.spool.damaged"), F_OK), 0);
    bd_test_daemon_stop(d);
}
END_TEST

START_TEST(test_damage_flipped_bit)
{
    uint64_t rng = seed_of() | 1;
    struct bd_test_daemon *d = leave_items("16M");
    char seg[4][600];
    long off = (long)(NDAMAGE / 4 + rng_next(&rng) % (NDAMAGE / 2)) * DREC +
               (long)(rng_next(&rng) % DREC);
    int fd;
    uint8_t b;

    ck_assert_int_eq(segments(d, seg, 4), 1);
    fd = open(seg[0], O_RDWR);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(pread(fd, &b, 1, off), 1);
    b ^= (uint8_t)(1u << (rng_next(&rng) % 8));
    ck_assert_int_eq(pwrite(fd, &b, 1, off), 1);
    close(fd);
    printf("spool bit flip at offset %ld\n", off);
    assert_restart_counts(d, NDAMAGE - 1, 1, 0);
    bd_test_daemon_stop(d);
}
END_TEST

START_TEST(test_damage_deleted_segment)
{
    struct bd_test_daemon *d = leave_items("4K"); /* ~48 records a segment */
    char seg[16][600];
    int n = segments(d, seg, 16);
    long per = 4096 / DREC;

    ck_assert_int_ge(n, 3);
    ck_assert_int_eq(unlink(seg[1]), 0);
    assert_restart_counts(d, NDAMAGE - per, 0, 1);
    bd_test_daemon_stop(d);
}
END_TEST

/* The spool as it was before the items were delivered (an old copy, a
 * checkpoint behind the data): every item comes back, none is lost. */
START_TEST(test_damage_stale_checkpoint)
{
    struct bd_test_daemon *d = leave_items("16M");
    char seg[4][600];
    size_t len;
    char *old;
    FILE *f;

    ck_assert_int_eq(segments(d, seg, 4), 1);
    old = bd_test_read_file(seg[0], &len);
    ck_assert_ptr_nonnull(old);
    assert_restart_counts(d, NDAMAGE, 0, 0);    /* delivers all of them */
    /* ... and, their DONE records committed, removes every segment. */
    for (double end = bd_test_now_ms() + bd_test_scaled(10000);
         stat_of(d, "spool_disk_bytes") != 0; usleep(20000))
        ck_assert_msg(bd_test_now_ms() < end, "the spool was not emptied");
    ck_assert_int_eq(bd_test_daemon_kill(d, SIGKILL), 128 + SIGKILL);
    f = fopen(seg[0], "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(old, 1, len, f), len);
    fclose(f);
    free(old);
    assert_restart_counts(d, NDAMAGE, 0, 0);    /* again: at least once */
    bd_test_daemon_stop(d);
}
END_TEST

/* ---- the size cap --------------------------------------------------------------------- */

START_TEST(test_spool_full_refuses_then_resumes)
{
    struct bd_test_daemon *d = spool_daemon(
        "spool_max_bytes = 64K\nspool_segment_bytes = 4K\n", "", "");
    unsigned char acc[PER_ROUND] = {0};
    struct bd_test_frame f;
    int fd, accepted = 0, refused = 0;

    control(d, "pause");
    fd = client(d);
    for (int i = 0; i < 200; i++) {
        send_one(fd, 0, i, 900);
        ck_assert_int_eq(bd_test_raw_read(fd, bd_test_scaled(10000), &f), 1);
        if (f.status == BATCHD_ACCEPTED) {
            ck_assert_int_eq(refused, 0);   /* no ACCEPTED after the first refusal */
            accepted++;
        } else {
            ck_assert_int_eq(f.status, BATCHD_OVERLOADED);
            ck_assert_ptr_nonnull(strstr(f.body, "spool"));
            refused++;
        }
        bd_test_frame_free(&f);
    }
    printf("spool full: %d accepted, %d refused\n", accepted, refused);
    ck_assert_int_gt(accepted, 40);
    ck_assert_int_gt(refused, 0);
    ck_assert_int_gt(stat_of(d, "spool_full"), 0);
    /* Nothing half-written: a restart finds every record whole. */
    bd_test_raw_close(fd);
    ck_assert_int_eq(bd_test_daemon_kill(d, SIGKILL), 128 + SIGKILL);
    restart(d);
    ck_assert_int_eq(stat_of(d, "spool_recovered"), accepted);
    ck_assert_int_eq(stat_of(d, "spool_damaged"), 0);
    wait_idle(d, 30000);
    /* Delivered, the segments are gone: accepting resumes. */
    fd = client(d);
    for (int i = 0; i < 20; i++)
        send_one(fd, 1, i, 900);
    ck_assert_int_eq(read_replies(fd, 20, acc, bd_test_scaled(10000)), 20);
    for (int i = 0; i < 20; i++)
        ck_assert(acc[i]);
    bd_test_raw_close(fd);
    bd_test_daemon_stop(d);
}
END_TEST

/* A real full disk: the spool on a 256 KiB tmpfs (skipped with a notice
 * where mounting is not allowed). A new segment's space is reserved
 * when it is opened, so ENOSPC shows at admission: OVERLOADED naming the
 * spool, no partial record, and a restart on the full disk works. */
START_TEST(test_tmpfs_full_disk)
{
    struct bd_test_daemon *d = bd_test_daemon_new(
        "[daemon]\nspool_dir = @DIR@/fs/spool\nspool_segment_bytes = 64K\n"
        "[sink.c]\nplugin = chaos\nledger = @DIR@/sink.ledger\n"
        "[route.d]\nmatch = d*\nsink = c\ndurable = yes\n");
    char fs[300], cmd[400];
    struct bd_test_frame f;
    int fd, accepted = 0, refused = 0;

    snprintf(fs, sizeof(fs), "%s", bd_test_daemon_path(d, "fs"));
    ck_assert_int_eq(mkdir(fs, 0700), 0);
    snprintf(cmd, sizeof(cmd), "mount -t tmpfs -o size=256k tmpfs %s 2>/dev/null", fs);
    if (system(cmd) != 0) {
        printf("spool tmpfs full disk: SKIPPED: cannot mount a tmpfs here "
               "(needs root and mount rights); the size cap test covers "
               "the refusal path\n");
        bd_test_daemon_free(d);
        return;
    }
    bd_test_daemon_spawn(d, NULL);
    bd_test_daemon_wait_ready(d);
    control(d, "pause");
    fd = client(d);
    for (int i = 0; i < 400 && refused < 5; i++) {
        send_one(fd, 0, i, 900);
        ck_assert_int_eq(bd_test_raw_read(fd, bd_test_scaled(10000), &f), 1);
        if (f.status == BATCHD_ACCEPTED) {
            ck_assert_int_eq(refused, 0);
            accepted++;
        } else {
            ck_assert_int_eq(f.status, BATCHD_OVERLOADED);
            ck_assert_ptr_nonnull(strstr(f.body, "spool: no disk space"));
            refused++;
        }
        bd_test_frame_free(&f);
    }
    printf("spool tmpfs full disk: %d accepted, then OVERLOADED\n", accepted);
    ck_assert_int_gt(accepted, 60);
    ck_assert_int_eq(refused, 5);
    bd_test_raw_close(fd);
    ck_assert_int_eq(bd_test_daemon_kill(d, SIGKILL), 128 + SIGKILL);
    /* The disk is still full: the restart adopts the segments as they are. */
    restart(d);
    ck_assert_int_eq(stat_of(d, "spool_recovered"), accepted);
    ck_assert_int_eq(stat_of(d, "spool_damaged"), 0);
    wait_idle(d, 30000);
    bd_test_daemon_kill(d, SIGTERM);
    snprintf(cmd, sizeof(cmd), "umount %s", fs);
    ck_assert_int_eq(system(cmd), 0);
    bd_test_daemon_free(d);
}
END_TEST

/* With a sync window the ACCEPTEDs still come only after their sync
 * (they survive SIGKILL), and many share one commit. */
START_TEST(test_sync_window_group_commit)
{
    struct bd_test_daemon *d = spool_daemon("spool_sync_window_us = 5000\n", "", "");
    unsigned char acc[PER_ROUND] = {0};
    long long syncs;
    int fd;

    control(d, "pause");
    fd = client(d);
    for (int i = 0; i < 500; i++)
        send_one(fd, 0, i, 64);
    ck_assert_int_eq(read_replies(fd, 500, acc, bd_test_scaled(10000)), 500);
    for (int i = 0; i < 500; i++)
        ck_assert(acc[i]);
    syncs = stat_of(d, "spool_syncs");
    printf("spool window 5 ms: 500 SENDs, %lld commits\n", syncs);
    ck_assert_int_gt(syncs, 0);
    ck_assert_int_lt(syncs, 50);
    bd_test_raw_close(fd);
    ck_assert_int_eq(bd_test_daemon_kill(d, SIGKILL), 128 + SIGKILL);
    restart(d);
    ck_assert_int_eq(stat_of(d, "spool_recovered"), 500);
    wait_idle(d, 30000);
    bd_test_daemon_stop(d);
}
END_TEST

/* SIGTERM whose grace runs out: the items answered SHUTTING_DOWN (hung
 * in the sink, or still queued) are not final for a durable route; the
 * next start delivers them. */
START_TEST(test_shutdown_grace_keeps_items)
{
    struct bd_test_daemon *d = spool_daemon("shutdown_grace_ms = 200\n",
                                            "hang_rate = 1\nhang_ms = 5000\n", "");
    unsigned char acc[PER_ROUND] = {0};
    int fd = client(d), delivered[ROUNDS * PER_ROUND] = {0}, n = 0;
    size_t len;
    char *conf, *p;
    FILE *f;

    for (int i = 0; i < 300; i++)
        send_one(fd, 3, i, 30);
    ck_assert_int_eq(read_replies(fd, 300, acc, bd_test_scaled(10000)), 300);
    bd_test_raw_close(fd);
    bd_test_daemon_kill(d, SIGTERM);
    conf = bd_test_read_file(bd_test_daemon_conf(d), &len);
    ck_assert_ptr_nonnull(conf);
    p = strstr(conf, "hang_rate = 1");
    ck_assert_ptr_nonnull(p);
    p[strlen("hang_rate = ")] = '0';
    f = fopen(bd_test_daemon_conf(d), "w");
    ck_assert_ptr_nonnull(f);
    fputs(conf, f);
    fclose(f);
    free(conf);
    restart(d);
    ck_assert_int_eq(stat_of(d, "spool_recovered"), 300);
    wait_idle(d, 30000);
    ck_assert_int_eq(stat_of(d, "spool_dead_lettered"), 0);
    read_ledger(d, delivered);
    for (int i = 0; i < 300; i++)
        n += delivered[3 * PER_ROUND + i] >= 1;
    ck_assert_int_eq(n, 300);
    bd_test_daemon_stop(d);
}
END_TEST

/* SIGTERM while ACCEPTEDs wait for their sync: every SEND the socket
 * took still gets its one reply (ACCEPTED, or SHUTTING_DOWN after). */
START_TEST(test_sigterm_answers_every_send)
{
    struct bd_test_daemon *d = spool_daemon("", "", "");
    int fd = client(d), got, accepted = 0;
    unsigned char acc[PER_ROUND] = {0};

    for (int i = 0; i < 2000; i++)
        send_one(fd, 4, i, 64);
    ck_assert_int_eq(kill(bd_test_daemon_pid(d), SIGTERM), 0);
    got = read_replies(fd, 2000, acc, bd_test_scaled(10000));
    for (int i = 0; i < 2000; i++)
        accepted += acc[i];
    printf("spool SIGTERM: %d replies, %d ACCEPTED\n", got, accepted);
    ck_assert_int_eq(got, 2000);
    bd_test_raw_close(fd);
    ck_assert_int_eq(bd_test_daemon_wait_exit(d, 15000), 0);
    bd_test_daemon_free(d);
}
END_TEST

/* ---- dead letters ---------------------------------------------------------------------- */

/* batchctl deadletters ACTION against d: its stdout (free()). */
static char *batchctl_dead(struct bd_test_daemon *d, const char *action)
{
    const char *argv[] = {bd_test_batchctl_bin(), "-s", bd_test_daemon_socket(d),
                          "deadletters", action, NULL};
    char *out = NULL, *err = NULL;
    int rc = bd_test_run(argv, bd_test_scaled(10000), &out, &err);

    ck_assert_msg(rc == 0, "batchctl deadletters %s: exit %d: %s", action, rc,
                  err ? err : "");
    free(err);
    return out;
}

/* Replace "fail_item = 1" in d's config by "fail_item = 0". */
static void heal_sink(struct bd_test_daemon *d)
{
    size_t len;
    char *conf = bd_test_read_file(bd_test_daemon_conf(d), &len);
    char *p = conf ? strstr(conf, "fail_item = 1") : NULL;
    FILE *f;

    ck_assert_ptr_nonnull(p);
    p[strlen("fail_item = ")] = '0';
    f = fopen(bd_test_daemon_conf(d), "w");
    ck_assert_ptr_nonnull(f);
    fputs(conf, f);
    fclose(f);
    free(conf);
}

START_TEST(test_dead_letters_list_and_resend)
{
    struct bd_test_daemon *d = spool_daemon("", "fail_item = 1\n", "");
    unsigned char acc[PER_ROUND] = {0};
    int fd = client(d), delivered[ROUNDS * PER_ROUND] = {0}, n = 0;
    char *out;

    for (int i = 0; i < 20; i++)
        send_one(fd, 2, i, 30);
    ck_assert_int_eq(read_replies(fd, 20, acc, bd_test_scaled(10000)), 20);
    bd_test_raw_close(fd);
    wait_idle(d, 30000);
    ck_assert_int_eq(stat_of(d, "spool_dead_lettered"), 20);
    out = batchctl_dead(d, "list");
    ck_assert_ptr_nonnull(strstr(out, "\"count\":20"));
    ck_assert_ptr_nonnull(strstr(out, "\"key\":\"d0\",\"payload\":\"r2-7 "));
    ck_assert_ptr_nonnull(strstr(out, "\"attempts\":1"));
    free(out);
    /* Dead letters survive a crash; a healed sink takes the re-sent ones. */
    ck_assert_int_eq(bd_test_daemon_kill(d, SIGKILL), 128 + SIGKILL);
    heal_sink(d);
    restart(d);
    ck_assert_int_eq(stat_of(d, "spool_recovered"), 0);
    out = batchctl_dead(d, "resend");
    ck_assert_str_eq(out, "resent 20\n");
    free(out);
    wait_idle(d, 30000);
    out = batchctl_dead(d, "list");
    ck_assert_ptr_nonnull(strstr(out, "\"count\":0"));
    free(out);
    read_ledger(d, delivered);
    for (int i = 0; i < 20; i++)
        n += delivered[2 * PER_ROUND + i] == 1;
    ck_assert_int_eq(n, 20);
    bd_test_daemon_stop(d);
}
END_TEST

/* ---- the suite ----------------------------------------------------------------------- */

static Suite *spool_suite(void)
{
    Suite *s = suite_create("spool");
    TCase *unit = tcase_create("unit");
    TCase *crash = tcase_create("crash");
    TCase *damage = tcase_create("damage");

    bd_test_add(unit, test_crc32c_vectors);
    bd_test_add(unit, test_record_roundtrip);
    bd_test_add(unit, test_scan_skips_damage);
    suite_add_tcase(s, unit);
    tcase_set_timeout(crash, 300);
    bd_test_add(crash, test_crash_oracle);
    suite_add_tcase(s, crash);
    tcase_set_timeout(damage, 180);
    bd_test_add(damage, test_damage_torn_tail);
    bd_test_add(damage, test_damage_flipped_bit);
    bd_test_add(damage, test_damage_deleted_segment);
    bd_test_add(damage, test_damage_stale_checkpoint);
    bd_test_add(damage, test_spool_full_refuses_then_resumes);
    bd_test_add(damage, test_tmpfs_full_disk);
    bd_test_add(damage, test_sync_window_group_commit);
    bd_test_add(damage, test_shutdown_grace_keeps_items);
    bd_test_add(damage, test_sigterm_answers_every_send);
    bd_test_add(damage, test_dead_letters_list_and_resend);
    suite_add_tcase(s, damage);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(spool_suite());
    int failed;

    setvbuf(stdout, NULL, _IOLBF, 0);
    srunner_run_all(sr, CK_ENV);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
