/*
 * log.c - stderr logging (see log.h). Each line is formatted into one
 * buffer and written with a single write(2), so lines from sink worker
 * threads do not interleave.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

static int log_level = BATCHD_LOG_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void bd_log_set_level(int level)
{
    log_level = level;
}

int bd_log_enabled(int level)
{
    return level <= log_level;
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
    n = snprintf(line, sizeof(line), "batchd[%d]: %s: ", (int)getpid(),
                 level_names[level]);
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
