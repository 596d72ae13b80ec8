/*
 * log.c - stderr logging (see log.h). Each line is formatted into one
 * buffer and written with a single write(2), so lines from sink worker
 * threads do not interleave.
 *
 * Under systemd (JOURNAL_STREAM names our stderr) each line starts with
 * its syslog priority, "<3>" .. "<7>", which journald strips and stores,
 * so `journalctl -p warning` filters; journald stamps the time itself.
 * Anywhere else (a terminal, a file) each line starts with a timestamp.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static int log_level = BATCHD_LOG_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};
/* syslog(3) priorities: LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG. */
static const int level_prio[] = {3, 4, 6, 7};

static pthread_once_t sink_once = PTHREAD_ONCE_INIT;
static int to_journal;        /* 1: stderr is journald's stream (set once) */

void bd_log_set_level(int level)
{
    log_level = level;
}

int bd_log_enabled(int level)
{
    return level <= log_level;
}

/* JOURNAL_STREAM is "DEV:INODE" of the stream systemd connected; it is
 * inherited by children whose stderr may point elsewhere, so it counts
 * only when it names the stderr we actually have (sd-daemon(3)). */
static void detect_journal(void)
{
    const char *env = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;

    if (env == NULL || sscanf(env, "%llu:%llu", &dev, &ino) != 2 ||
        fstat(STDERR_FILENO, &st) != 0)
        return;
    to_journal = (unsigned long long)st.st_dev == dev &&
                 (unsigned long long)st.st_ino == ino;
}

/* "2026-12-04T18:20:01.123+0000 " into line; returns its length. */
static int timestamp(char *line, size_t len)
{
    struct timespec ts;
    struct tm tm;
    char zone[8];
    size_t n;

    clock_gettime(CLOCK_REALTIME, &ts);
    localtime_r(&ts.tv_sec, &tm);
    n = strftime(line, len, "%Y-%m-%dT%H:%M:%S", &tm);
    strftime(zone, sizeof(zone), "%z", &tm);
    return (int)n + snprintf(line + n, len - n, ".%03ld%s ",
                             ts.tv_nsec / 1000000, zone);
}

void bd_log(int level, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    int n;

    if (!bd_log_enabled(level))
        return;
    if (level < BATCHD_LOG_ERROR || level > BATCHD_LOG_DEBUG)
        level = BATCHD_LOG_ERROR;
    pthread_once(&sink_once, detect_journal);
    n = to_journal ? snprintf(line, sizeof(line), "<%d>", level_prio[level])
                   : timestamp(line, 64);
    n += snprintf(line + n, sizeof(line) - (size_t)n, "batchd[%d]: %s: ",
                  (int)getpid(), level_names[level]);
    va_start(ap, fmt);
    n += vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof(line) - 2)
        n = (int)sizeof(line) - 2;
    line[n++] = '\n';
    if (write(STDERR_FILENO, line, (size_t)n) < 0) {
        /* Nowhere left to report a failing stderr. */
    }
}
