/*
 * log.h - one line per event on stderr: "batchd[pid]: LEVEL: message",
 * after "<PRIO>" (its syslog priority) when stderr is journald's stream
 * (JOURNAL_STREAM), else after a local ISO 8601 timestamp.
 * Rejects always carry the key and the reason.
 */
#ifndef BD_LOG_H
#define BD_LOG_H

#include "batchd_sink.h"

/* Lines above this level are dropped (BATCHD_LOG_INFO by default). */
void bd_log_set_level(int level);
int bd_log_enabled(int level);

void bd_log(int level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define bd_log_error(...) bd_log(BATCHD_LOG_ERROR, __VA_ARGS__)
#define bd_log_warn(...) bd_log(BATCHD_LOG_WARN, __VA_ARGS__)
#define bd_log_info(...) bd_log(BATCHD_LOG_INFO, __VA_ARGS__)
#define bd_log_debug(...) \
    do { if (bd_log_enabled(BATCHD_LOG_DEBUG)) bd_log(BATCHD_LOG_DEBUG, __VA_ARGS__); } while (0)

#endif
