/*
 * check_sinks.c - unit tests of the shipped sinks (sinks/) and the test
 * sinks (tests/sinks/), loaded with dlopen like the daemon does, but
 * driven by a small host table defined here: no daemon, no socket.
 *
 * The .so files come from $BATCHD_SINK_DIR (default build/sinks) and
 * $BATCHD_TEST_SINK_DIR (default build/tests/sinks). Test cases:
 *   core       each sink's normal answers and its ABI table
 *   limits     big and concurrent batches, write errors, many pending
 *   malformed  bad options and init errors, with their exact text
 */
#include <check.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "batchd_sink.h"
#include "sink.h"

/* ---- the test host ------------------------------------------------------- */

/* One batch under test; the batch's host_priv points here. */
struct tbatch {
    struct batchd_batch b;    /* what the sink sees */
    struct batchd_item *items;
    int *codes;               /* verdict per item, 0 = none yet */
    int *calls;               /* result() calls per item (must end at 1) */
    char **data;              /* copied reply per item */
    size_t *lens;
    char *error;              /* last batch_error, copied */
    int completed;            /* complete() calls */
    int complete_rc;          /* rc given to complete() */
};

static pthread_mutex_t host_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t host_cond = PTHREAD_COND_INITIALIZER;
static char host_last_log[1024];  /* last log line at WARN or above */
static char host_all_logs[8192];  /* every log line, appended */
static int host_completions;      /* complete() calls, all batches */

static void host_log(const struct batchd_host *host, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void host_log(const struct batchd_host *host, int level, const char *fmt, ...)
{
    char line[1024];
    size_t used;
    va_list ap;

    (void)host;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&host_lock);
    if (level <= BATCHD_LOG_WARN)
        snprintf(host_last_log, sizeof(host_last_log), "%s", line);
    used = strlen(host_all_logs);
    snprintf(host_all_logs + used, sizeof(host_all_logs) - used, "%d %s\n", level, line);
    pthread_mutex_unlock(&host_lock);
}

static int host_result(struct batchd_batch *b, size_t i, int code,
                       const void *data, size_t len)
{
    struct tbatch *t = b->host_priv;

    if (i >= b->nitems)
        return -1;
    t->calls[i]++;
    t->codes[i] = code;
    free(t->data[i]);
    t->data[i] = malloc(len + 1);
    if (t->data[i] == NULL)
        return -1;
    if (len > 0)
        memcpy(t->data[i], data, len);
    t->data[i][len] = '\0';
    t->lens[i] = len;
    return 0;
}

static void host_batch_error(struct batchd_batch *b, const char *msg)
{
    struct tbatch *t = b->host_priv;

    free(t->error);
    t->error = strdup(msg);
}

static void host_complete(struct batchd_batch *b, int rc)
{
    struct tbatch *t = b->host_priv;

    pthread_mutex_lock(&host_lock);
    t->completed++;
    t->complete_rc = rc;
    host_completions++;
    pthread_cond_broadcast(&host_cond);
    pthread_mutex_unlock(&host_lock);
}

static const struct batchd_host test_host = {
    .abi_version = BATCHD_SINK_ABI_VERSION,
    .log = host_log,
    .result = host_result,
    .batch_error = host_batch_error,
    .complete = host_complete,
};

/* Wait until host_completions reaches n, at most ms. Returns the count. */
static int wait_completions(int n, int ms)
{
    struct timespec until;
    int got;

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&host_lock);
    while (host_completions < n)
        if (pthread_cond_timedwait(&host_cond, &host_lock, &until) == ETIMEDOUT)
            break;
    got = host_completions;
    pthread_mutex_unlock(&host_lock);
    return got;
}

/* ---- batches ------------------------------------------------------------- */

static uint64_t next_id = 1;

/* A new batch of n items on key; payload i is pl[i] (lens[i] bytes, or
 * strlen when lens is NULL). Free with tb_free. */
static struct tbatch *tb_new_len(const char *key, const char *const *pl,
                                 const size_t *lens, size_t n)
{
    struct tbatch *t = calloc(1, sizeof(*t));
    size_t i;

    ck_assert_ptr_nonnull(t);
    t->items = calloc(n, sizeof(*t->items));
    t->codes = calloc(n, sizeof(int));
    t->calls = calloc(n, sizeof(int));
    t->data = calloc(n, sizeof(char *));
    t->lens = calloc(n, sizeof(size_t));
    ck_assert(t->items && t->codes && t->calls && t->data && t->lens);
    for (i = 0; i < n; i++) {
        t->items[i].len = lens != NULL ? lens[i] : strlen(pl[i]);
        t->items[i].data = t->items[i].len > 0 ? pl[i] : NULL;
        t->items[i].id = __atomic_fetch_add(&next_id, 1, __ATOMIC_RELAXED);
        t->items[i].attempt = 1;
        t->items[i].deadline_ms = -1;
    }
    t->b.key = key;
    t->b.key_len = strlen(key);
    t->b.nitems = n;
    t->b.items = t->items;
    t->b.host_priv = t;
    return t;
}

static struct tbatch *tb_new(const char *key, const char *const *pl, size_t n)
{
    return tb_new_len(key, pl, NULL, n);
}

static void tb_free(struct tbatch *t)
{
    size_t i;

    for (i = 0; i < t->b.nitems; i++)
        free(t->data[i]);
    free(t->items);
    free(t->codes);
    free(t->calls);
    free(t->data);
    free(t->lens);
    free(t->error);
    free(t);
}

/* Every item answered exactly once with code and, unless NULL, reply. */
static void tb_expect(const struct tbatch *t, size_t i, int code, const char *reply)
{
    ck_assert_int_eq(t->calls[i], 1);
    ck_assert_int_eq(t->codes[i], code);
    if (reply != NULL) {
        ck_assert_uint_eq(t->lens[i], strlen(reply));
        ck_assert_str_eq(t->data[i], reply);
    }
}

/* ---- loading ------------------------------------------------------------- */

struct loaded {
    void *dl;                 /* dlopen handle */
    const struct batchd_sink *sink;
    void *state;              /* from init, NULL when init failed */
    char err[512];            /* init's error text */
};

static const char *dir_of(int test_sink)
{
    const char *d = getenv(test_sink ? "BATCHD_TEST_SINK_DIR" : "BATCHD_SINK_DIR");

    if (d == NULL || *d == '\0')
        d = test_sink ? "build/tests/sinks" : "build/sinks";
    return d;
}

static void *open_so(const char *name, int test_sink)
{
    char path[4096];
    void *dl;

    snprintf(path, sizeof(path), "%s/%s.so", dir_of(test_sink), name);
    dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    ck_assert_msg(dl != NULL, "dlopen %s: %s", path, dlerror());
    return dl;
}

static const struct batchd_sink *entry_of(void *dl)
{
    const struct batchd_sink *(*entry)(void);

    *(void **)&entry = dlsym(dl, BATCHD_SINK_ENTRY);
    ck_assert_msg(entry != NULL, "no %s: %s", BATCHD_SINK_ENTRY, dlerror());
    return entry();
}

/* Open, check the table, init with kv. State is NULL when init failed;
 * the error text is then in l->err. Unload with sink_unload. */
static void sink_load(struct loaded *l, const char *name, int test_sink,
                      const struct batchd_kv *kv, size_t nkv)
{
    memset(l, 0, sizeof(*l));
    l->dl = open_so(name, test_sink);
    l->sink = entry_of(l->dl);
    ck_assert_uint_eq(l->sink->abi_version, BATCHD_SINK_ABI_VERSION);
    ck_assert_ptr_nonnull(l->sink->init);
    ck_assert_ptr_nonnull(l->sink->process);
    ck_assert_ptr_nonnull(l->sink->shutdown);
    l->state = l->sink->init(&test_host, kv, nkv, l->err, sizeof(l->err));
}

static void sink_unload(struct loaded *l)
{
    if (l->state != NULL)
        l->sink->shutdown(l->state);
    l->state = NULL;
    dlclose(l->dl);
}

/* Run one batch as a worker would: acquire, process, release. */
static int sink_run(struct loaded *l, struct tbatch *t)
{
    void *res = NULL;
    char err[256] = "";
    int rc;

    if (l->sink->acquire != NULL) {
        res = l->sink->acquire(l->state, t->b.key, t->b.key_len, err, sizeof(err));
        ck_assert_msg(res != NULL, "acquire: %s", err);
    }
    rc = l->sink->process(l->state, res, &t->b);
    if (res != NULL && l->sink->release != NULL)
        l->sink->release(l->state, res);
    return rc;
}

/* ---- files --------------------------------------------------------------- */

static char tmpdir[256];

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void tmp_setup(void)
{
    const char *base = getenv("TMPDIR");

    snprintf(tmpdir, sizeof(tmpdir), "%s/check_sinks.XXXXXX",
             base != NULL && *base != '\0' ? base : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
    pthread_mutex_lock(&host_lock);
    host_last_log[0] = '\0';
    host_all_logs[0] = '\0';
    host_completions = 0;
    pthread_mutex_unlock(&host_lock);
}

static void tmp_teardown(void)
{
    chmod(tmpdir, 0700);
    nftw(tmpdir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static char *tmp_path(const char *name)
{
    static char buf[4][512];
    static int n;
    char *p = buf[n++ % 4];

    snprintf(p, 512, "%s/%s", tmpdir, name);
    return p;
}

/* Whole file into a new NUL-terminated buffer; *len its size. */
static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long sz;

    ck_assert_msg(f != NULL, "open %s: %s", path, strerror(errno));
    fseek(f, 0, SEEK_END);
    sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc((size_t)sz + 1);
    ck_assert_ptr_nonnull(buf);
    ck_assert_uint_eq(fread(buf, 1, (size_t)sz, f), (size_t)sz);
    buf[sz] = '\0';
    fclose(f);
    if (len != NULL)
        *len = (size_t)sz;
    return buf;
}

static off_t file_size(const char *path)
{
    struct stat sb;

    ck_assert_int_eq(stat(path, &sb), 0);
    return sb.st_size;
}

/* ================================ core ==================================== */

START_TEST(test_echo_returns_payloads)
{
    static const char *const pl[] = { "hello", "", "world!" };
    struct loaded l;
    struct tbatch *t;

    sink_load(&l, "echo", 0, NULL, 0);
    ck_assert_msg(l.state != NULL, "init: %s", l.err);
    ck_assert_str_eq(l.sink->name, "echo");
    ck_assert_uint_eq(l.sink->flags & BATCHD_SINK_NONBLOCKING, BATCHD_SINK_NONBLOCKING);
    t = tb_new("k", pl, 3);
    ck_assert_int_eq(sink_run(&l, t), BATCHD_SINK_DONE);
    tb_expect(t, 0, BATCHD_RESULT_OK, "hello");
    tb_expect(t, 1, BATCHD_RESULT_OK, "");
    tb_expect(t, 2, BATCHD_RESULT_OK, "world!");
    tb_free(t);
    sink_unload(&l);
}
END_TEST

START_TEST(test_null_returns_empty_ok)
{
    static const char *const pl[] = { "a", "bb", "" };
    struct loaded l;
    struct tbatch *t;
    size_t i;

    sink_load(&l, "null", 0, NULL, 0);
    ck_assert_msg(l.state != NULL, "init: %s", l.err);
    ck_assert_str_eq(l.sink->name, "null");
    ck_assert_uint_eq(l.sink->flags & BATCHD_SINK_NONBLOCKING, BATCHD_SINK_NONBLOCKING);
    t = tb_new("k", pl, 3);
    ck_assert_int_eq(sink_run(&l, t), BATCHD_SINK_DONE);
    for (i = 0; i < 3; i++)
        tb_expect(t, i, BATCHD_RESULT_OK, "");
    tb_free(t);
    sink_unload(&l);
}
END_TEST

START_TEST(test_file_line_format)
{
    static const char *const pl1[] = { "one", "two" };
    static const char *const pl2[] = { "", "three" };
    const char *path = tmp_path("out.log");
    struct batchd_kv kv[] = { { "path", path } };
    struct loaded l;
    struct tbatch *t1, *t2;
    char *got;

    sink_load(&l, "file", 0, kv, 1);
    ck_assert_msg(l.state != NULL, "init: %s", l.err);
    ck_assert_uint_eq(l.sink->flags & BATCHD_SINK_NONBLOCKING, 0);
    t1 = tb_new("k", pl1, 2);
    t2 = tb_new("k", pl2, 2);
    ck_assert_int_eq(sink_run(&l, t1), BATCHD_SINK_DONE);
    ck_assert_int_eq(sink_run(&l, t2), BATCHD_SINK_DONE);
    tb_expect(t1, 0, BATCHD_RESULT_OK, "");
    tb_expect(t1, 1, BATCHD_RESULT_OK, "");
    tb_expect(t2, 0, BATCHD_RESULT_OK, "");
    tb_expect(t2, 1, BATCHD_RESULT_OK, "");
    got = slurp(path, NULL);
    ck_assert_str_eq(got, "one\ntwo\n\nthree\n");
    free(got);
    tb_free(t1);
    tb_free(t2);
    sink_unload(&l);
}
END_TEST

START_TEST(test_file_length_format)
{
    static const char *const pl[] = { "ab", "", "x\0y" };
    static const size_t lens[] = { 2, 0, 3 };
    static const char want[] = "\0\0\0\2ab" "\0\0\0\0" "\0\0\0\3x\0y";
    const char *path = tmp_path("out.bin");
    struct batchd_kv kv[] = { { "path", path }, { "format", "length" },
                              { "fsync", "no" } };
    struct loaded l;
    struct tbatch *t;
    size_t len;
    char *got;

    sink_load(&l, "file", 0, kv, 3);
    ck_assert_msg(l.state != NULL, "init: %s", l.err);
    t = tb_new_len("k", pl, lens, 3);
    ck_assert_int_eq(sink_run(&l, t), BATCHD_SINK_DONE);
    got = slurp(path, &len);
    ck_assert_uint_eq(len, sizeof(want) - 1);
    ck_assert_mem_eq(got, want, len);
    free(got);
    tb_free(t);
    sink_unload(&l);
}
END_TEST

START_TEST(test_file_mode_on_create)
{
    const char *path = tmp_path("mode.log");
    struct batchd_kv kv[] = { { "path", path }, { "mode", "0604" } };
    struct loaded l;
    struct stat sb;
    mode_t old = umask(0);

    sink_load(&l, "file", 0, kv, 2);
    umask(old);
    ck_assert_msg(l.state != NULL, "init: %s", l.err);
    ck_assert_int_eq(stat(path, &sb), 0);
    ck_assert_uint_eq(sb.st_mode & 07777, 0604);
    sink_unload(&l);
}
END_TEST

START_TEST(test_example_uppercases)
{
    static const char *const pl[] = { "abc", "", "MiXed 1\xc3\xa9z" };
    struct batchd_kv kv[] = { { "prefix", ">>" } };
    struct loaded l;
    struct tbatch *t;

    sink_load(&l, "example", 0, kv, 1);
    ck_assert_msg(l.state != NULL, "init: %s", l.err);
    ck_assert_str_eq(l.sink->name, "upper");
    ck_assert_ptr_nonnull(l.sink->acquire);
    ck_assert_ptr_nonnull(l.sink->release);
    t = tb_new("k", pl, 3);
    ck_assert_int_eq(sink_run(&l, t), BATCHD_SINK_DONE);
    tb_expect(t, 0, BATCHD_RESULT_OK, ">>ABC");
    tb_expect(t, 1, BATCHD_RESULT_FAIL, "empty payload: nothing to upper-case");
    tb_expect(t, 2, BATCHD_RESULT_OK, ">>MIXED 1\xc3\xa9Z");
    tb_free(t);
    sink_unload(&l);
    ck_assert_msg(strstr(host_all_logs, "stopping after 1 batches") != NULL,
                  "logs: %s", host_all_logs);
}
END_TEST

START_TEST(test_example_default_prefix)
{
    static const char *const pl[] = { "q" };
    struct loaded l;
    struct tbatch *t;

    sink_load(&l, "example", 0, NULL, 0);
    ck_assert_msg(l.state != NULL, "init: %s", l.err);
    t = tb_new("k", pl, 1);
    ck_assert_int_eq(sink_run(&l, t), BATCHD_SINK_DONE);
    tb_expect(t, 0, BATCHD_RESULT_OK, "Q");
    tb_free(t);
    sink_unload(&l);
}
END_TEST

START_TEST(test_record_ledger_line)
{
    static const char *const pl[] = { "keep", "bad", "later", "" };
    const char *ledger = tmp_path("ledger");
    struct batchd_kv kv[] = { { "ledger", ledger }, { "fail_payload", "bad" },
                              { "retry_payload", "later" } };
    struct loaded l;
    struct tbatch *t;
    char want[256], *got;

    sink_load(&l, "record", 1, kv, 3);
    ck_assert_msg(l.state != NULL, "init: %s", l.err);
    ck_assert_uint_eq(l.sink->flags & BATCHD_SINK_NONBLOCKING, 0);
    t = tb_new("users", pl, 4);
    ck_assert_int_eq(sink_run(&l, t), BATCHD_SINK_DONE);
    tb_expect(t, 0, BATCHD_RESULT_OK, "keep");
    tb_expect(t, 1, BATCHD_RESULT_FAIL, "rejected by record sink");
    tb_expect(t, 2, BATCHD_RESULT_RETRY, NULL);
    tb_expect(t, 3, BATCHD_RESULT_OK, "");
    snprintf(want, sizeof(want), "users 4 12 %llu,%llu,%llu,%llu\n",
             (unsigned long long)t->items[0].id, (unsigned long long)t->items[1].id,
             (unsigned long long)t->items[2].id, (unsigned long long)t->items[3].id);
    got = slurp(ledger, NULL);
    ck_assert_str_eq(got, want);
    free(got);
    tb_free(t);
    sink_unload(&l);
}
END_TEST

START_TEST(test_record_escapes_key)
{
    static const char *const pl[] = { "x" };
    const char *ledger = tmp_path("ledger");
    struct batchd_kv kv[] = { { "ledger", ledger } };
    struct loaded l;
    struct tbatch *t;
    char want[128], *got;

    sink_load(&l, "record", 1, kv, 1);
    ck_assert_msg(l.state != NULL, "init: %s", l.err);
    t = tb_new("a b%c", pl, 1);
    ck_assert_int_eq(sink_run(&l, t), BATCHD_SINK_DONE);
    snprintf(want, sizeof(want), "a%%20b%%25c 1 1 %llu\n",
             (unsigned long long)t->items[0].id);
    got = slurp(ledger, NULL);
    ck_assert_str_eq(got, want);
    free(got);
    tb_free(t);
    sink_unload(&l);
}
END_TEST

START_TEST(test_async_completes)
{
    static const char *const pl[] = { "p1", "p2" };
    struct batchd_kv kv[] = { { "delay_ms", "5" } };
    struct loaded l;
    struct tbatch *t[3];
    int i;

    sink_load(&l, "async", 1, kv, 1);
    ck_assert_msg(l.state != NULL, "init: %s", l.err);
    ck_assert_uint_eq(l.sink->flags & BATCHD_SINK_NONBLOCKING, BATCHD_SINK_NONBLOCKING);
    for (i = 0; i < 3; i++) {
        t[i] = tb_new("k", pl, 2);
        ck_assert_int_eq(sink_run(&l, t[i]), BATCHD_SINK_PENDING);
    }
    ck_assert_int_eq(wait_completions(3, 10000), 3);
    for (i = 0; i < 3; i++) {
        ck_assert_int_eq(t[i]->completed, 1);
        ck_assert_int_eq(t[i]->complete_rc, BATCHD_SINK_DONE);
        tb_expect(t[i], 0, BATCHD_RESULT_OK, "p1");
        tb_expect(t[i], 1, BATCHD_RESULT_OK, "p2");
    }
    sink_unload(&l);
    for (i = 0; i < 3; i++)
        tb_free(t[i]);
}
END_TEST

START_TEST(test_bad_abi_reports_999)
{
    void *dl = open_so("bad_abi", 1);
    const struct batchd_sink *s = entry_of(dl);

    ck_assert_uint_eq(s->abi_version, 999);
    ck_assert_uint_ne(s->abi_version, BATCHD_SINK_ABI_VERSION);
    dlclose(dl);
}
END_TEST

START_TEST(test_missing_process_is_null)
{
    void *dl = open_so("missing_process", 1);
    const struct batchd_sink *s = entry_of(dl);

    ck_assert_uint_eq(s->abi_version, BATCHD_SINK_ABI_VERSION);
    ck_assert_ptr_null(s->process);
    ck_assert_ptr_nonnull(s->init);
    dlclose(dl);
}
END_TEST

START_TEST(test_fail_init_message)
{
    struct loaded l;

    sink_load(&l, "fail_init", 1, NULL, 0);
    ck_assert_ptr_null(l.state);
    ck_assert_str_eq(l.err, "refusing to start (test sink)");
    sink_unload(&l);
}
END_TEST

START_TEST(test_no_entry_symbol)
{
    void *dl = open_so("no_entry", 1);

    ck_assert_ptr_null(dlsym(dl, BATCHD_SINK_ENTRY));
    ck_assert_ptr_nonnull(dlsym(dl, "batchd_sink_entry_misspelled"));
    dlclose(dl);
}
END_TEST

/* Every loadable table: required members, a NULL-terminated option table
 * whose required options have no default, and only the entry exported. */
START_TEST(test_tables_well_formed)
{
    static const struct { const char *name; int test; uint32_t flags; } all[] = {
        { "null", 0, BATCHD_SINK_NONBLOCKING }, { "echo", 0, BATCHD_SINK_NONBLOCKING },
        { "file", 0, 0 }, { "example", 0, 0 },
        { "record", 1, 0 }, { "async", 1, BATCHD_SINK_NONBLOCKING },
        { "kafka", 0, BATCHD_SINK_NONBLOCKING },
    };
    size_t i, j;

    for (i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        void *dl = open_so(all[i].name, all[i].test);
        const struct batchd_sink *s = entry_of(dl);

        ck_assert_uint_eq(s->abi_version, BATCHD_SINK_ABI_VERSION);
        ck_assert_ptr_nonnull(s->name);
        ck_assert_uint_eq(s->flags, all[i].flags);
        ck_assert_ptr_nonnull(s->options);
        for (j = 0; s->options[j].name != NULL; j++)
            ck_assert_ptr_nonnull(s->options[j].help);
        ck_assert_uint_lt(j, 16);
        ck_assert_ptr_nonnull(s->init);
        ck_assert_ptr_nonnull(s->process);
        ck_assert_ptr_nonnull(s->shutdown);
        /* Hidden visibility: internal callbacks are not exported. */
        ck_assert_ptr_null(dlsym(dl, "null_process"));
        ck_assert_ptr_null(dlsym(dl, "file_process"));
        dlclose(dl);
    }
}
END_TEST

/* =============================== limits =================================== */

/* A batch of more items than IOV_MAX (1024), sizes 0..99 bytes. */
START_TEST(test_file_large_batch)
{
    enum { N = 3000 };
    const char *path = tmp_path("big.bin");
    struct batchd_kv kv[] = { { "path", path }, { "format", "length" } };
    static char store[N][100];
    static const char *pl[N];
    static size_t lens[N];
    struct loaded l;
    struct tbatch *t;
    size_t i, len, off = 0;
    char *got;

    for (i = 0; i < N; i++) {
        lens[i] = i % 100;
        memset(store[i], 'a' + (int)(i % 26), lens[i]);
        pl[i] = store[i];
    }
    sink_load(&l, "file", 0, kv, 2);
    ck_assert_msg(l.state != NULL, "init: %s", l.err);
    t = tb_new_len("k", pl, lens, N);
    ck_assert_int_eq(sink_run(&l, t), BATCHD_SINK_DONE);
    for (i = 0; i < N; i++)
        tb_expect(t, i, BATCHD_RESULT_OK, "");
    got = slurp(path, &len);
    for (i = 0; i < N; i++) {
        const unsigned char *p = (const unsigned char *)got + off;
        size_t n = ((size_t)p[0] << 24) | ((size_t)p[1] << 16) | ((size_t)p[2] << 8) | p[3];

        ck_assert_uint_eq(n, lens[i]);
        ck_assert_mem_eq(p + 4, store[i], n);
        off += 4 + n;
    }
    ck_assert_uint_eq(off, len);
    free(got);
    tb_free(t);
    sink_unload(&l);
}
END_TEST

struct file_worker {
    struct loaded *l;
    int thread;               /* 0..T-1 */
    int failures;             /* batches not DONE */
};

enum { FW_THREADS = 4, FW_BATCHES = 40, FW_ITEMS = 25 };

static void *file_worker_run(void *arg)
{
    struct file_worker *w = arg;
    char store[FW_ITEMS][32];
    const char *pl[FW_ITEMS];
    int b, i;

    for (b = 0; b < FW_BATCHES; b++) {
        struct tbatch *t;

        for (i = 0; i < FW_ITEMS; i++) {
            snprintf(store[i], sizeof(store[i]), "t%d b%d i%d", w->thread, b, i);
            pl[i] = store[i];
        }
        t = tb_new("k", pl, FW_ITEMS);
        if (w->l->sink->process(w->l->state, NULL, &t->b) != BATCHD_SINK_DONE)
            w->failures++;
        tb_free(t);
    }
    return NULL;
}

/* Concurrent batches never interleave their records. */
START_TEST(test_file_concurrent_batches_contiguous)
{
    const char *path = tmp_path("conc.log");
    struct batchd_kv kv[] = { { "path", path }, { "fsync", "no" } };
    struct file_worker w[FW_THREADS];
    pthread_t th[FW_THREADS];
    int next_batch[FW_THREADS] = { 0 };
    struct loaded l;
    char *got, *line, *save = NULL;
    int i, lines = 0, cur_t = -1, cur_b = -1;

    sink_load(&l, "file", 0, kv, 2);
    ck_assert_msg(l.state != NULL, "init: %s", l.err);
    for (i = 0; i < FW_THREADS; i++) {
        w[i] = (struct file_worker){ .l = &l, .thread = i };
        ck_assert_int_eq(pthread_create(&th[i], NULL, file_worker_run, &w[i]), 0);
    }
    for (i = 0; i < FW_THREADS; i++) {
        pthread_join(th[i], NULL);
        ck_assert_int_eq(w[i].failures, 0);
    }
    got = slurp(path, NULL);
    /* Lines come in runs of FW_ITEMS from one (thread, batch), in order. */
    for (line = strtok_r(got, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save), lines++) {
        int t, b, it;

        ck_assert_int_eq(sscanf(line, "t%d b%d i%d", &t, &b, &it), 3);
        if (lines % FW_ITEMS == 0) {
            ck_assert_int_eq(it, 0);
            ck_assert_int_eq(b, next_batch[t]);
            next_batch[t]++;
            cur_t = t;
            cur_b = b;
        } else {
            ck_assert_int_eq(t, cur_t);
            ck_assert_int_eq(b, cur_b);
            ck_assert_int_eq(it, lines % FW_ITEMS);
        }
    }
    ck_assert_int_eq(lines, FW_THREADS * FW_BATCHES * FW_ITEMS);
    free(got);
    sink_unload(&l);
}
END_TEST

/* A write cut short (RLIMIT_FSIZE) retries the batch and leaves the file
 * at its size before the batch. */
START_TEST(test_file_short_write_truncates)
{
    static const char *const first[] = { "0123456789" };
    static const char *const second[] = { "abcdefghij", "klmnopqrst", "uvwxyz" };
    const char *path = tmp_path("short.log");
    struct batchd_kv kv[] = { { "path", path } };
    struct rlimit old, lim;
    void (*old_sig)(int);
    struct loaded l;
    struct tbatch *t1, *t2;
    char want[600], *got;
    int rc;

    sink_load(&l, "file", 0, kv, 1);
    ck_assert_msg(l.state != NULL, "init: %s", l.err);
    t1 = tb_new("k", first, 1);
    ck_assert_int_eq(sink_run(&l, t1), BATCHD_SINK_DONE);
    ck_assert_int_eq(file_size(path), 11);

    ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = 20;        /* room for 9 of the second batch's 33 bytes */
    old_sig = signal(SIGXFSZ, SIG_IGN);
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    t2 = tb_new("k", second, 3);
    rc = sink_run(&l, t2);
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, old_sig);

    ck_assert_int_eq(rc, BATCHD_SINK_RETRY);
    ck_assert_int_eq(t2->calls[0] + t2->calls[1] + t2->calls[2], 0);
    snprintf(want, sizeof(want), "write %s: %s", path, strerror(EFBIG));
    ck_assert_ptr_nonnull(t2->error);
    ck_assert_str_eq(t2->error, want);
    ck_assert_int_eq(file_size(path), 11);

    /* The retry succeeds and the file holds each record once. */
    tb_free(t2);
    t2 = tb_new("k", second, 3);
    ck_assert_int_eq(sink_run(&l, t2), BATCHD_SINK_DONE);
    got = slurp(path, NULL);
    ck_assert_str_eq(got, "0123456789\nabcdefghij\nklmnopqrst\nuvwxyz\n");
    free(got);
    tb_free(t1);
    tb_free(t2);
    sink_unload(&l);
}
END_TEST

START_TEST(test_file_write_error_retries)
{
    static const char *const pl[] = { "x" };
    struct batchd_kv kv[] = { { "path", "/dev/full" } };
    struct loaded l;
    struct tbatch *t;
    char want[256];

    if (access("/dev/full", W_OK) != 0)
        return;               /* no /dev/full here: nothing to test */
    sink_load(&l, "file", 0, kv, 1);
    ck_assert_msg(l.state != NULL, "init: %s", l.err);
    t = tb_new("k", pl, 1);
    ck_assert_int_eq(sink_run(&l, t), BATCHD_SINK_RETRY);
    ck_assert_int_eq(t->calls[0], 0);
    snprintf(want, sizeof(want), "write /dev/full: %s", strerror(ENOSPC));
    ck_assert_str_eq(t->error, want);
    tb_free(t);
    sink_unload(&l);
}
END_TEST

START_TEST(test_echo_binary_and_big)
{
    enum { BIG = 1 << 20 };
    char *big = malloc(BIG);
    const char *pl[] = { "a\0b\0", big, "" };
    size_t lens[] = { 4, BIG, 0 };
    struct loaded l;
    struct tbatch *t;

    ck_assert_ptr_nonnull(big);
    memset(big, 0x5a, BIG);
    sink_load(&l, "echo", 0, NULL, 0);
    ck_assert_msg(l.state != NULL, "init: %s", l.err);
    t = tb_new_len("k", pl, lens, 3);
    ck_assert_int_eq(sink_run(&l, t), BATCHD_SINK_DONE);
    ck_assert_uint_eq(t->lens[0], 4);
    ck_assert_mem_eq(t->data[0], "a\0b\0", 4);
    ck_assert_uint_eq(t->lens[1], BIG);
    ck_assert_mem_eq(t->data[1], big, BIG);
    tb_expect(t, 2, BATCHD_RESULT_OK, "");
    tb_free(t);
    free(big);
    sink_unload(&l);
}
END_TEST

START_TEST(test_null_many_items)
{
    enum { N = 100000 };
    static const char *pl[N];
    struct loaded l;
    struct tbatch *t;
    size_t i;

    for (i = 0; i < N; i++)
        pl[i] = "x";
    sink_load(&l, "null", 0, NULL, 0);
    ck_assert_msg(l.state != NULL, "init: %s", l.err);
    t = tb_new("k", pl, N);
    ck_assert_int_eq(sink_run(&l, t), BATCHD_SINK_DONE);
    for (i = 0; i < N; i++)
        ck_assert(t->calls[i] == 1 && t->codes[i] == BATCHD_RESULT_OK && t->lens[i] == 0);
    tb_free(t);
    sink_unload(&l);
}
END_TEST

START_TEST(test_async_many_pending)
{
    enum { N = 500 };
    static const char *const pl[] = { "m" };
    struct batchd_kv kv[] = { { "delay_ms", "20" } };
    static struct tbatch *t[N];
    struct loaded l;
    int i;

    sink_load(&l, "async", 1, kv, 1);
    ck_assert_msg(l.state != NULL, "init: %s", l.err);
    for (i = 0; i < N; i++) {
        t[i] = tb_new("k", pl, 1);
        ck_assert_int_eq(l.sink->process(l.state, NULL, &t[i]->b), BATCHD_SINK_PENDING);
    }
    ck_assert_int_eq(wait_completions(N, 30000), N);
    sink_unload(&l);
    for (i = 0; i < N; i++) {
        ck_assert_int_eq(t[i]->completed, 1);
        tb_expect(t[i], 0, BATCHD_RESULT_OK, "m");
        tb_free(t[i]);
    }
}
END_TEST

/* shutdown with batches still pending completes each once, at once. */
START_TEST(test_async_shutdown_completes_pending)
{
    enum { N = 20 };
    static const char *const pl[] = { "z" };
    struct batchd_kv kv[] = { { "delay_ms", "600000" } };
    struct tbatch *t[N];
    struct loaded l;
    struct timespec a, b;
    int i;

    sink_load(&l, "async", 1, kv, 1);
    ck_assert_msg(l.state != NULL, "init: %s", l.err);
    for (i = 0; i < N; i++) {
        t[i] = tb_new("k", pl, 1);
        ck_assert_int_eq(l.sink->process(l.state, NULL, &t[i]->b), BATCHD_SINK_PENDING);
    }
    ck_assert_int_eq(host_completions, 0);
    clock_gettime(CLOCK_MONOTONIC, &a);
    sink_unload(&l);
    clock_gettime(CLOCK_MONOTONIC, &b);
    ck_assert_int_lt(b.tv_sec - a.tv_sec, 30);   /* did not wait the delay */
    ck_assert_int_eq(host_completions, N);
    for (i = 0; i < N; i++) {
        ck_assert_int_eq(t[i]->completed, 1);
        tb_expect(t[i], 0, BATCHD_RESULT_OK, "z");
        tb_free(t[i]);
    }
}
END_TEST

START_TEST(test_record_delay)
{
    static const char *const pl[] = { "d" };
    const char *ledger = tmp_path("ledger");
    struct batchd_kv kv[] = { { "ledger", ledger }, { "delay_ms", "50" } };
    struct timespec a, b;
    struct loaded l;
    struct tbatch *t;
    double ms;

    sink_load(&l, "record", 1, kv, 2);
    ck_assert_msg(l.state != NULL, "init: %s", l.err);
    t = tb_new("k", pl, 1);
    clock_gettime(CLOCK_MONOTONIC, &a);
    ck_assert_int_eq(sink_run(&l, t), BATCHD_SINK_DONE);
    clock_gettime(CLOCK_MONOTONIC, &b);
    ms = (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6;
    ck_assert_msg(ms >= 49.0, "slept only %.1f ms", ms);   /* a lower bound only */
    tb_expect(t, 0, BATCHD_RESULT_OK, "d");
    tb_free(t);
    sink_unload(&l);
}
END_TEST

struct record_worker {
    struct loaded *l;
    char key[16];
};

static void *record_worker_run(void *arg)
{
    static const char *const pl[] = { "aa", "bbb", "c" };
    struct record_worker *w = arg;
    int i;

    for (i = 0; i < 100; i++) {
        struct tbatch *t = tb_new(w->key, pl, 1 + (size_t)(i % 3));

        w->l->sink->process(w->l->state, NULL, &t->b);
        tb_free(t);
    }
    return NULL;
}

/* Lines from concurrent batches stay whole and parse. */
START_TEST(test_record_concurrent_lines)
{
    const char *ledger = tmp_path("ledger");
    struct batchd_kv kv[] = { { "ledger", ledger } };
    struct record_worker w[4];
    pthread_t th[4];
    struct loaded l;
    char *got, *line, *save = NULL;
    int i, lines = 0;

    sink_load(&l, "record", 1, kv, 1);
    ck_assert_msg(l.state != NULL, "init: %s", l.err);
    for (i = 0; i < 4; i++) {
        w[i].l = &l;
        snprintf(w[i].key, sizeof(w[i].key), "key%d", i);
        ck_assert_int_eq(pthread_create(&th[i], NULL, record_worker_run, &w[i]), 0);
    }
    for (i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    got = slurp(ledger, NULL);
    for (line = strtok_r(got, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save), lines++) {
        static const unsigned want_bytes[] = { 2, 5, 6 };
        char key[32], ids[256];
        unsigned n, bytes;

        ck_assert_int_eq(sscanf(line, "%31s %u %u %255s", key, &n, &bytes, ids), 4);
        ck_assert_uint_ge(n, 1);
        ck_assert_uint_le(n, 3);
        ck_assert_uint_eq(bytes, want_bytes[n - 1]);
        ck_assert_int_eq(strncmp(key, "key", 3), 0);
    }
    ck_assert_int_eq(lines, 400);
    free(got);
    sink_unload(&l);
}
END_TEST

/* Resources: acquire/release pair up over many batches. */
START_TEST(test_example_resources_balanced)
{
    static const char *const pl[] = { "r" };
    struct loaded l;
    int i;

    sink_load(&l, "example", 0, NULL, 0);
    ck_assert_msg(l.state != NULL, "init: %s", l.err);
    for (i = 0; i < 50; i++) {
        struct tbatch *t = tb_new("k", pl, 1);

        ck_assert_int_eq(sink_run(&l, t), BATCHD_SINK_DONE);
        tb_free(t);
    }
    sink_unload(&l);
    ck_assert_msg(strstr(host_all_logs, "stopping after 50 batches") != NULL,
                  "logs: %s", host_all_logs);
    ck_assert_msg(strstr(host_all_logs, "still acquired") == NULL,
                  "logs: %s", host_all_logs);
}
END_TEST

/* ============================== malformed ================================= */

/* init must fail with exactly want. */
static void expect_init_error(const char *name, int test_sink,
                              const struct batchd_kv *kv, size_t nkv, const char *want)
{
    struct loaded l;

    sink_load(&l, name, test_sink, kv, nkv);
    ck_assert_msg(l.state == NULL, "%s: init accepted a bad config", name);
    ck_assert_str_eq(l.err, want);
    sink_unload(&l);
}

START_TEST(test_file_missing_path)
{
    struct batchd_kv kv[] = { { "format", "line" } };

    expect_init_error("file", 0, kv, 1, "file sink: option 'path' is required");
    expect_init_error("file", 0, NULL, 0, "file sink: option 'path' is required");
}
END_TEST

START_TEST(test_file_missing_dir)
{
    const char *path = tmp_path("no/such/dir/out.log");
    struct batchd_kv kv[] = { { "path", path } };
    char want[700];

    snprintf(want, sizeof(want), "file sink: open %s: %s", path, strerror(ENOENT));
    expect_init_error("file", 0, kv, 1, want);
}
END_TEST

START_TEST(test_file_unwritable_dir)
{
    const char *dir = tmp_path("ro");
    const char *path = tmp_path("ro/out.log");
    struct batchd_kv kv[] = { { "path", path } };
    char want[700];
    struct loaded l;

    ck_assert_int_eq(mkdir(dir, 0500), 0);
    if (geteuid() == 0) {
        /* root ignores the mode bits; sysfs refuses new files even to root. */
        path = "/sys/batchd-check-sinks.log";
        kv[0].value = path;
    }
    sink_load(&l, "file", 0, kv, 1);
    ck_assert_ptr_null(l.state);
    snprintf(want, sizeof(want), "file sink: open %s: ", path);
    ck_assert_msg(strncmp(l.err, want, strlen(want)) == 0, "err: %s", l.err);
    ck_assert_msg(strstr(l.err, strerror(EACCES)) != NULL ||
                  strstr(l.err, strerror(EROFS)) != NULL ||
                  strstr(l.err, strerror(ENOENT)) != NULL, "err: %s", l.err);
    sink_unload(&l);
}
END_TEST

START_TEST(test_file_bad_values)
{
    const char *p = tmp_path("x.log");
    struct batchd_kv fmt[] = { { "path", p }, { "format", "csv" } };
    struct batchd_kv fs[] = { { "path", p }, { "fsync", "maybe" } };
    struct batchd_kv mode1[] = { { "path", p }, { "mode", "0999" } };
    struct batchd_kv mode2[] = { { "path", p }, { "mode", "" } };
    struct batchd_kv mode3[] = { { "path", p }, { "mode", "-1" } };
    struct batchd_kv mode4[] = { { "path", p }, { "mode", "177777" } };
    struct batchd_kv unk[] = { { "path", p }, { "colour", "red" } };
    struct batchd_kv empty[] = { { "path", "" } };

    expect_init_error("file", 0, fmt, 2, "file sink: format 'csv' is not 'line' or 'length'");
    expect_init_error("file", 0, fs, 2, "file sink: fsync 'maybe' is not 'yes' or 'no'");
    expect_init_error("file", 0, mode1, 2,
                      "file sink: mode '0999' is not an octal mode such as 0640");
    expect_init_error("file", 0, mode2, 2,
                      "file sink: mode '' is not an octal mode such as 0640");
    expect_init_error("file", 0, mode3, 2,
                      "file sink: mode '-1' is not an octal mode such as 0640");
    expect_init_error("file", 0, mode4, 2,
                      "file sink: mode '177777' is not an octal mode such as 0640");
    expect_init_error("file", 0, unk, 2, "file sink: unknown option 'colour'");
    expect_init_error("file", 0, empty, 1, "file sink: 'path' is empty");
    ck_assert_int_ne(access(p, F_OK), 0);    /* nothing was created */
}
END_TEST

START_TEST(test_record_bad_options)
{
    const char *ledger = tmp_path("ledger");
    struct batchd_kv d1[] = { { "ledger", ledger }, { "delay_ms", "-1" } };
    struct batchd_kv d2[] = { { "ledger", ledger }, { "delay_ms", "5ms" } };
    struct batchd_kv d3[] = { { "ledger", ledger }, { "delay_ms", "99999999999999999999" } };
    struct batchd_kv unk[] = { { "ledger", ledger }, { "speed", "1" } };
    struct batchd_kv f1[] = { { "ledger", ledger }, { "fail_first", "x" } };
    struct batchd_kv f2[] = { { "ledger", ledger }, { "fail_verdict", "maybe" } };
    struct batchd_kv nodir[] = { { "ledger", tmp_path("none/ledger") } };
    char want[700];

    expect_init_error("record", 1, NULL, 0, "record sink: option 'ledger' is required");
    expect_init_error("record", 1, d1, 2,
                      "record sink: delay_ms '-1' is not a number of ms (0..3600000)");
    expect_init_error("record", 1, d2, 2,
                      "record sink: delay_ms '5ms' is not a number of ms (0..3600000)");
    expect_init_error("record", 1, d3, 2,
                      "record sink: delay_ms '99999999999999999999' is not a number of ms (0..3600000)");
    expect_init_error("record", 1, unk, 2, "record sink: unknown option 'speed'");
    expect_init_error("record", 1, f1, 2,
                      "record sink: fail_first 'x' is not a count (0..1000000)");
    expect_init_error("record", 1, f2, 2,
                      "record sink: fail_verdict 'maybe' is not retry, fail or a code");
    snprintf(want, sizeof(want), "record sink: open %s: %s", nodir[0].value, strerror(ENOENT));
    expect_init_error("record", 1, nodir, 1, want);
}
END_TEST

START_TEST(test_async_bad_options)
{
    struct batchd_kv d1[] = { { "delay_ms", "soon" } };
    struct batchd_kv unk[] = { { "threads", "2" } };

    expect_init_error("async", 1, d1, 1,
                      "async sink: delay_ms 'soon' is not a number of ms (0..3600000)");
    expect_init_error("async", 1, unk, 1, "async sink: unknown option 'threads'");
}
END_TEST

START_TEST(test_unknown_options_refused)
{
    struct batchd_kv kv[] = { { "prefix", "x" } };
    struct batchd_kv kv2[] = { { "suffix", "x" } };

    expect_init_error("null", 0, kv, 1, "null sink: unknown option 'prefix' (it has none)");
    expect_init_error("echo", 0, kv, 1, "echo sink: unknown option 'prefix' (it has none)");
    expect_init_error("example", 0, kv2, 1, "upper sink: unknown option 'suffix'");
}
END_TEST

/* Options the sinks take are exactly the ones their table lists. */
START_TEST(test_option_tables_match)
{
    static const struct { const char *sink; int test; const char *opts; } all[] = {
        { "null", 0, "" }, { "echo", 0, "" },
        { "file", 0, "path,format,fsync,mode," }, { "example", 0, "prefix," },
        { "record", 1, "ledger,delay_ms,fail_payload,retry_payload,fail_first,fail_verdict,"
          "acquire_fail_first,trace_ledger," },
        { "async", 1, "delay_ms," },
        { "kafka", 0, "brokers,topic,message_key,partitioner,acks,compression,"
                      "flush_timeout_ms,rdkafka.*," },
    };
    size_t i, j;

    for (i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        void *dl = open_so(all[i].sink, all[i].test);
        const struct batchd_sink *s = entry_of(dl);
        char names[256] = "";

        for (j = 0; s->options[j].name != NULL; j++) {
            strcat(names, s->options[j].name);
            strcat(names, ",");
        }
        ck_assert_str_eq(names, all[i].opts);
        dlclose(dl);
    }
}
END_TEST

/* An option name ending in ".*" takes every key with that prefix and
 * something after it; other names take only themselves. */
START_TEST(test_option_prefix_wildcard)
{
    static const struct batchd_sink_option opts[] = {
        { .name = "brokers", .help = "h" },
        { .name = "rdkafka.*", .help = "h" },
        { .name = "x*", .help = "h" },      /* no dot: a plain name */
        { .name = NULL },
    };

    ck_assert_ptr_eq(bd_sink_option_find(opts, "brokers"), &opts[0]);
    ck_assert_ptr_eq(bd_sink_option_find(opts, "rdkafka.linger.ms"), &opts[1]);
    ck_assert_ptr_eq(bd_sink_option_find(opts, "rdkafka.x"), &opts[1]);
    ck_assert_ptr_null(bd_sink_option_find(opts, "rdkafka."));
    ck_assert_ptr_null(bd_sink_option_find(opts, "rdkafka"));
    ck_assert_ptr_null(bd_sink_option_find(opts, "rdkafkaXlinger"));
    ck_assert_ptr_null(bd_sink_option_find(opts, "brokers.x"));
    ck_assert_ptr_null(bd_sink_option_find(opts, "xy"));
    ck_assert_ptr_eq(bd_sink_option_find(opts, "x*"), &opts[2]);
    ck_assert_ptr_null(bd_sink_option_find(NULL, "brokers"));
}
END_TEST

/* ---- suite --------------------------------------------------------------- */

static Suite *sinks_suite(void)
{
    Suite *s = suite_create("sinks");
    TCase *core = tcase_create("core");
    TCase *limits = tcase_create("limits");
    TCase *malformed = tcase_create("malformed");

    tcase_add_checked_fixture(core, tmp_setup, tmp_teardown);
    tcase_add_test(core, test_echo_returns_payloads);
    tcase_add_test(core, test_null_returns_empty_ok);
    tcase_add_test(core, test_file_line_format);
    tcase_add_test(core, test_file_length_format);
    tcase_add_test(core, test_file_mode_on_create);
    tcase_add_test(core, test_example_uppercases);
    tcase_add_test(core, test_example_default_prefix);
    tcase_add_test(core, test_record_ledger_line);
    tcase_add_test(core, test_record_escapes_key);
    tcase_add_test(core, test_async_completes);
    tcase_add_test(core, test_bad_abi_reports_999);
    tcase_add_test(core, test_missing_process_is_null);
    tcase_add_test(core, test_fail_init_message);
    tcase_add_test(core, test_no_entry_symbol);
    tcase_add_test(core, test_tables_well_formed);
    suite_add_tcase(s, core);

    tcase_add_checked_fixture(limits, tmp_setup, tmp_teardown);
    tcase_set_timeout(limits, 120);
    tcase_add_test(limits, test_file_large_batch);
    tcase_add_test(limits, test_file_concurrent_batches_contiguous);
    tcase_add_test(limits, test_file_short_write_truncates);
    tcase_add_test(limits, test_file_write_error_retries);
    tcase_add_test(limits, test_echo_binary_and_big);
    tcase_add_test(limits, test_null_many_items);
    tcase_add_test(limits, test_async_many_pending);
    tcase_add_test(limits, test_async_shutdown_completes_pending);
    tcase_add_test(limits, test_record_delay);
    tcase_add_test(limits, test_record_concurrent_lines);
    tcase_add_test(limits, test_example_resources_balanced);
    suite_add_tcase(s, limits);

    tcase_add_checked_fixture(malformed, tmp_setup, tmp_teardown);
    tcase_add_test(malformed, test_file_missing_path);
    tcase_add_test(malformed, test_file_missing_dir);
    tcase_add_test(malformed, test_file_unwritable_dir);
    tcase_add_test(malformed, test_file_bad_values);
    tcase_add_test(malformed, test_record_bad_options);
    tcase_add_test(malformed, test_async_bad_options);
    tcase_add_test(malformed, test_unknown_options_refused);
    tcase_add_test(malformed, test_option_tables_match);
    tcase_add_test(malformed, test_option_prefix_wildcard);
    suite_add_tcase(s, malformed);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(sinks_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
