/*
 * file.c - the "file" sink: append every item of a batch to one file.
 *
 * Blocking (runs on the sink worker threads). Each batch becomes one
 * buffer, written in full with O_APPEND and fsync'ed (unless fsync = no)
 * before any item is answered OK (empty reply): an OK means "on disk".
 *
 * Options:
 *   path    file to append to (required); created if missing
 *   format  line   : payload then '\n' (default; payloads should hold no '\n')
 *           length : 4-byte big-endian length, then the payload
 *   fsync   yes (default) / no; only regular files are synced
 *   mode    octal mode used when the file is created (default 0640)
 *
 * A failed write or fsync answers the whole batch RETRY. Before that the
 * file is cut back to its size before the batch (ftruncate), so that the
 * retry does not leave the first attempt's partial records behind. The
 * cut is not always possible (ftruncate fails, or the process dies in
 * between): then a retried batch may appear twice, in part or whole.
 * Readers should treat records as at-least-once. Because of the cut, the
 * file must be written by this sink only (another writer's records
 * appended meanwhile could be cut too); one [sink.NAME] per file.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "batchd_sink.h"

enum file_format {
    FILE_FORMAT_LINE = 0,     /* payload '\n' */
    FILE_FORMAT_LENGTH = 1,   /* be32 length, payload */
};

struct file_state {
    const struct batchd_host *host; /* lent by the daemon until shutdown */
    char *path;               /* for error messages; owned */
    int fd;                   /* O_APPEND; owned */
    int format;               /* enum file_format */
    int do_fsync;             /* fsync after every batch */
    pthread_mutex_t lock;     /* one batch at a time: records stay
                               * contiguous and the pre-batch size is exact */
};

static const struct batchd_sink_option file_options[] = {
    { .name = "path", .def = NULL, .help = "file to append to (required)" },
    { .name = "format", .def = "line",
      .help = "line (payload + newline) or length (4-byte big-endian length + payload)" },
    { .name = "fsync", .def = "yes", .help = "fsync after every batch: yes or no" },
    { .name = "mode", .def = "0640", .help = "octal file mode when the file is created" },
    { .name = NULL },
};

/* Parse an octal permission like "0640". Returns 0, or -1. */
static int parse_mode(const char *s, mode_t *out)
{
    unsigned long v;
    char *end;

    if (*s == '\0')
        return -1;
    errno = 0;
    v = strtoul(s, &end, 8);
    if (errno != 0 || *end != '\0' || v > 07777 || *s == '-' || *s == '+')
        return -1;
    *out = (mode_t)v;
    return 0;
}

/* Copy the kv values into st and the mode. Returns 0, or -1 with err set. */
static int file_parse_options(struct file_state *st, const struct batchd_kv *kv,
                              size_t nkv, mode_t *mode, char *err, size_t errlen)
{
    size_t i;

    for (i = 0; i < nkv; i++) {
        const char *k = kv[i].key, *v = kv[i].value;

        if (strcmp(k, "path") == 0) {
            if (*v == '\0') {
                snprintf(err, errlen, "file sink: 'path' is empty");
                return -1;
            }
            free(st->path);
            st->path = strdup(v);
            if (st->path == NULL) {
                snprintf(err, errlen, "file sink: out of memory");
                return -1;
            }
        } else if (strcmp(k, "format") == 0) {
            if (strcmp(v, "line") == 0) {
                st->format = FILE_FORMAT_LINE;
            } else if (strcmp(v, "length") == 0) {
                st->format = FILE_FORMAT_LENGTH;
            } else {
                snprintf(err, errlen,
                         "file sink: format '%s' is not 'line' or 'length'", v);
                return -1;
            }
        } else if (strcmp(k, "fsync") == 0) {
            if (strcmp(v, "yes") == 0) {
                st->do_fsync = 1;
            } else if (strcmp(v, "no") == 0) {
                st->do_fsync = 0;
            } else {
                snprintf(err, errlen, "file sink: fsync '%s' is not 'yes' or 'no'", v);
                return -1;
            }
        } else if (strcmp(k, "mode") == 0) {
            if (parse_mode(v, mode) < 0) {
                snprintf(err, errlen,
                         "file sink: mode '%s' is not an octal mode such as 0640", v);
                return -1;
            }
        } else {
            snprintf(err, errlen, "file sink: unknown option '%s'", k);
            return -1;
        }
    }
    if (st->path == NULL) {
        snprintf(err, errlen, "file sink: option 'path' is required");
        return -1;
    }
    return 0;
}

static void *file_init(const struct batchd_host *host,
                       const struct batchd_kv *kv, size_t nkv,
                       char *err, size_t errlen)
{
    struct file_state *st;
    mode_t mode = 0640;

    st = calloc(1, sizeof(*st));
    if (st == NULL) {
        snprintf(err, errlen, "file sink: out of memory");
        return NULL;
    }
    st->host = host;
    st->fd = -1;
    st->format = FILE_FORMAT_LINE;
    st->do_fsync = 1;
    if (file_parse_options(st, kv, nkv, &mode, err, errlen) < 0)
        goto out_free_state;

    /* The mode is applied through the process umask, like open(2) always. */
    st->fd = open(st->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, mode);
    if (st->fd < 0) {
        snprintf(err, errlen, "file sink: open %s: %s", st->path, strerror(errno));
        goto out_free_state;
    }
    if (pthread_mutex_init(&st->lock, NULL) != 0) {
        snprintf(err, errlen, "file sink: pthread_mutex_init failed");
        goto out_close_fd;
    }
    return st;

out_close_fd:
    close(st->fd);
out_free_state:
    free(st->path);
    free(st);
    return NULL;
}

/*
 * Build the records of the whole batch into one new buffer (free with
 * free). Returns NULL when memory is short or a payload does not fit the
 * length format's 32-bit length (*too_big set).
 */
static char *file_build(const struct file_state *st, const struct batchd_batch *b,
                        size_t *outlen, int *too_big)
{
    size_t i, total = 0, per = st->format == FILE_FORMAT_LINE ? 1 : 4;
    char *buf, *p;

    *too_big = 0;
    for (i = 0; i < b->nitems; i++) {
        if (st->format == FILE_FORMAT_LENGTH && b->items[i].len > UINT32_MAX) {
            *too_big = 1;
            return NULL;
        }
        if (b->items[i].len > SIZE_MAX - per - total)
            return NULL;
        total += b->items[i].len + per;
    }
    buf = malloc(total > 0 ? total : 1);
    if (buf == NULL)
        return NULL;
    p = buf;
    for (i = 0; i < b->nitems; i++) {
        size_t len = b->items[i].len;

        if (st->format == FILE_FORMAT_LENGTH) {
            *p++ = (char)((len >> 24) & 0xff);
            *p++ = (char)((len >> 16) & 0xff);
            *p++ = (char)((len >> 8) & 0xff);
            *p++ = (char)(len & 0xff);
        }
        if (len > 0)
            memcpy(p, b->items[i].data, len);
        p += len;
        if (st->format == FILE_FORMAT_LINE)
            *p++ = '\n';
    }
    *outlen = total;
    return buf;
}

/* write(2) all of buf, across short writes and EINTR. 0, or -1 with errno. */
static int write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (n == 0) {           /* not expected for a file; avoid spinning */
            errno = EIO;
            return -1;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/*
 * Append buf and sync it, under st->lock. On failure the file is cut back
 * to its size before this call and the error is set on b.
 * Returns 0, or -1.
 */
static int file_append(struct file_state *st, struct batchd_batch *b,
                       const char *buf, size_t len)
{
    char msg[512];
    const char *what = "write";
    struct stat sb;
    int saved;

    pthread_mutex_lock(&st->lock);
    if (fstat(st->fd, &sb) < 0) {
        what = "fstat";
        goto out_error;
    }
    if (write_all(st->fd, buf, len) < 0)
        goto out_truncate;
    /* Only regular files: fsync on a FIFO or /dev/null fails with EINVAL. */
    if (st->do_fsync && S_ISREG(sb.st_mode) && fsync(st->fd) < 0) {
        /* After a failed fsync the page cache state is unknown: cut the
         * batch and let the retry write it again. */
        what = "fsync";
        goto out_truncate;
    }
    pthread_mutex_unlock(&st->lock);
    return 0;

out_truncate:
    saved = errno;
    if (S_ISREG(sb.st_mode) && ftruncate(st->fd, sb.st_size) < 0)
        st->host->log(st->host, BATCHD_LOG_ERROR,
                      "truncate %s back to %lld bytes: %s (a retry may duplicate records)",
                      st->path, (long long)sb.st_size, strerror(errno));
    errno = saved;
out_error:
    snprintf(msg, sizeof(msg), "%s %s: %s", what, st->path, strerror(errno));
    pthread_mutex_unlock(&st->lock);
    st->host->batch_error(b, msg);
    return -1;
}

static int file_process(void *state, void *res, struct batchd_batch *b)
{
    struct file_state *st = state;
    size_t i, len = 0;
    int too_big;
    char *buf;

    (void)res;
    buf = file_build(st, b, &len, &too_big);
    if (buf == NULL) {
        if (too_big) {
            st->host->batch_error(b, "payload over 4 GiB cannot be written in length format");
            return BATCHD_SINK_FAIL;
        }
        st->host->batch_error(b, "file sink: out of memory");
        return BATCHD_SINK_RETRY;
    }
    if (file_append(st, b, buf, len) < 0) {
        free(buf);
        return BATCHD_SINK_RETRY;
    }
    free(buf);
    /* Only now, with the batch written (and synced), is anything OK. */
    for (i = 0; i < b->nitems; i++)
        st->host->result(b, i, BATCHD_RESULT_OK, "", 0);
    return BATCHD_SINK_DONE;
}

static void file_shutdown(void *state)
{
    struct file_state *st = state;

    close(st->fd);
    pthread_mutex_destroy(&st->lock);
    free(st->path);
    free(st);
}

static const struct batchd_sink file_sink = {
    .abi_version = BATCHD_SINK_ABI_VERSION,
    .flags = 0,
    .name = "file",
    .options = file_options,
    .init = file_init,
    .process = file_process,
    .shutdown = file_shutdown,
};

BATCHD_SINK_EXPORT const struct batchd_sink *batchd_sink_entry(void)
{
    return &file_sink;
}
