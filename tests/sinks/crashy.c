/*
 * crashy.c - test sink for isolation = process: echoes payloads like
 * echo, and misbehaves on cue. Never load it in-process: it takes the
 * daemon down with it, which is the point of the isolation tests.
 *
 * Options:
 *   crash    what to do on a bad call: segv (write to a PROT_NONE page:
 *            a real SIGSEGV that UBSan does not turn into an exit), abort,
 *            exit (exit(3)), hang (never return), leak (keep leak_kb of
 *            touched memory, then answer normally), garbage (write a
 *            frame header with a hostile length on the runner's socket,
 *            fd 3, then answer normally: a runner that breaks the wire),
 *            or none (default)
 *   after    calls answered normally before the first bad one (default 0)
 *   every    yes: every call from then on is bad; no (default): only one
 *   leak_kb  KiB kept per leaking call (default 1024)
 *   once     path of a marker file: misbehave only while it does not
 *            exist, creating it first, so that only one call of all the
 *            runners misbehaves (default: none)
 *
 * Calls are counted per process, so a restarted runner counts from 0.
 * Blocking (runs on the runner's thread); the test sink for the daemon's
 * proxy, not for the ABI.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "batchd_sink.h"

enum crashy_mode {
    CRASHY_NONE,
    CRASHY_SEGV,
    CRASHY_ABORT,
    CRASHY_EXIT,
    CRASHY_HANG,
    CRASHY_LEAK,
    CRASHY_GARBAGE,
};

struct crashy_state {
    const struct batchd_host *host; /* lent by the daemon until shutdown */
    int mode;                 /* enum crashy_mode */
    unsigned long after;      /* good calls before the first bad one */
    int every;                /* every call after that is bad */
    unsigned long leak_kb;    /* per leaking call */
    unsigned long calls;      /* process() calls so far */
    char *once;               /* marker file path, owned; NULL = none */
    void *leaked;             /* leak: a chain of kept blocks, so that the
                               * compiler cannot drop the allocation */
};

static const char *const crashy_modes[] = {
    "none", "segv", "abort", "exit", "hang", "leak", "garbage", NULL
};

static const struct batchd_sink_option crashy_options[] = {
    { .name = "crash", .def = "none", .help = "segv, abort, exit, hang, leak, garbage or none" },
    { .name = "after", .def = "0", .help = "good calls before the first bad one" },
    { .name = "every", .def = "no", .help = "yes: every call after that is bad" },
    { .name = "leak_kb", .def = "1024", .help = "KiB kept per leaking call" },
    { .name = "once", .def = NULL, .help = "marker file: only one bad call across runners" },
    { .name = NULL },
};

static int parse_ulong(const char *v, unsigned long *out)
{
    char *end;

    if (*v < '0' || *v > '9')
        return -1;
    *out = strtoul(v, &end, 10);
    return *end == '\0' ? 0 : -1;
}

static int crashy_parse(struct crashy_state *st, const struct batchd_kv *kv,
                        size_t nkv, char *err, size_t errlen)
{
    for (size_t i = 0; i < nkv; i++) {
        const char *k = kv[i].key, *v = kv[i].value;
        int ok = 0;

        if (strcmp(k, "crash") == 0) {
            for (int m = 0; crashy_modes[m] != NULL; m++)
                if (strcmp(v, crashy_modes[m]) == 0) {
                    st->mode = m;
                    ok = 1;
                }
        } else if (strcmp(k, "after") == 0) {
            ok = parse_ulong(v, &st->after) == 0;
        } else if (strcmp(k, "every") == 0) {
            ok = strcmp(v, "yes") == 0 || strcmp(v, "no") == 0;
            st->every = strcmp(v, "yes") == 0;
        } else if (strcmp(k, "leak_kb") == 0) {
            ok = parse_ulong(v, &st->leak_kb) == 0;
        } else if (strcmp(k, "once") == 0 && v[0] != '\0') {
            free(st->once);
            st->once = strdup(v);
            ok = st->once != NULL;
        }
        if (!ok) {
            snprintf(err, errlen, "crashy sink: bad %s '%s'", k, v);
            return -1;
        }
    }
    return 0;
}

static void *crashy_init(const struct batchd_host *host,
                         const struct batchd_kv *kv, size_t nkv, char *err,
                         size_t errlen)
{
    struct crashy_state *st = calloc(1, sizeof(*st));

    if (st == NULL) {
        snprintf(err, errlen, "crashy sink: out of memory");
        return NULL;
    }
    st->host = host;
    st->leak_kb = 1024;
    if (crashy_parse(st, kv, nkv, err, errlen) != 0) {
        free(st->once);
        free(st);
        return NULL;
    }
    return st;
}

static void misbehave(struct crashy_state *st)
{
    static const unsigned char hostile[4] = {0xff, 0xff, 0xff, 0xff};
    volatile int *nowhere;
    char *p;

    st->host->log(st->host, BATCHD_LOG_INFO, "crashy: call %lu: %s",
                  st->calls, crashy_modes[st->mode]);
    switch (st->mode) {
    case CRASHY_SEGV:
        nowhere = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (nowhere != MAP_FAILED)
            *nowhere = 1;
        raise(SIGSEGV); /* not reached */
        break;
    case CRASHY_ABORT:
        abort();
    case CRASHY_EXIT:
        exit(3);
    case CRASHY_HANG:
        for (;;)
            pause();
    case CRASHY_LEAK:
        p = malloc(st->leak_kb * 1024 + sizeof(void *));
        if (p != NULL) {
            memset(p, 0x5a, st->leak_kb * 1024 + sizeof(void *)); /* resident */
            memcpy(p, &st->leaked, sizeof(void *)); /* and never freed */
            st->leaked = p;
        }
        break;
    case CRASHY_GARBAGE:
        if (write(3, hostile, sizeof(hostile)) < 0) {
            /* the runner is gone anyway */
        }
        break;
    default:
        break;
    }
}

/* With once: the first caller creates the marker and misbehaves; every
 * later call (in any runner) finds it and behaves. */
static int first_time(const struct crashy_state *st)
{
    int fd;

    if (st->once == NULL)
        return 1;
    fd = open(st->once, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0)
        return 0;
    close(fd);
    return 1;
}

static int crashy_process(void *state, void *res, struct batchd_batch *b)
{
    struct crashy_state *st = state;

    (void)res;
    st->calls++;
    if (st->mode != CRASHY_NONE &&
        (st->calls == st->after + 1 || (st->every && st->calls > st->after)) &&
        first_time(st))
        misbehave(st);
    for (size_t i = 0; i < b->nitems; i++) {
        const struct batchd_item *it = &b->items[i];

        st->host->result(b, i, BATCHD_RESULT_OK, it->len > 0 ? it->data : "",
                         it->len);
    }
    return BATCHD_SINK_DONE;
}

static void crashy_shutdown(void *state)
{
    struct crashy_state *st = state;

    free(st->once);
    free(st);
}

static const struct batchd_sink crashy_sink = {
    .abi_version = BATCHD_SINK_ABI_VERSION,
    .flags = 0,
    .name = "crashy",
    .options = crashy_options,
    .init = crashy_init,
    .process = crashy_process,
    .shutdown = crashy_shutdown,
};

BATCHD_SINK_EXPORT const struct batchd_sink *batchd_sink_entry(void)
{
    return &crashy_sink;
}
