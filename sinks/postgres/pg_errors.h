/*
 * pg_errors.h - pure helpers of the postgres sink that read PostgreSQL's
 * error fields: the SQLSTATE class and the row of a COPY error. No libpq
 * here, so the fuzz target (fuzz/fuzz_pgerr.c) links this file alone.
 */
#ifndef BD_PG_ERRORS_H
#define BD_PG_ERRORS_H

#include <stddef.h>

/* What a failed statement means for the batch. */
enum pg_err_class {
    PG_ERR_RETRY = 0,         /* transient: try the batch again later */
    PG_ERR_DATA = 1,          /* an item's data or a constraint: FAIL it */
    PG_ERR_FATAL = 2,         /* anything else (bad SQL, rights): FAIL batch */
};

/*
 * Class of a SQLSTATE (5 characters; NULL or malformed when the server
 * sent none, i.e. the connection broke: PG_ERR_RETRY).
 * RETRY: 08 connection, 40 rollback (40001 serialization, 40P01
 * deadlock), 53 resources, 55P03 lock not available, 57014 statement
 * timeout, 57P01..57P05 shutdown / cannot connect now, 58 system errors.
 * DATA: 22 data exceptions, 23 integrity constraints. FATAL: the rest.
 */
int pg_err_classify(const char *sqlstate);

/*
 * Row number of a COPY FROM error, from the error's CONTEXT field as the
 * server writes it ("COPY t, line 3, column b: \"x\"", "COPY t, line 3:
 * \"...\"", "COPY t, line 3"). Only the first context line is read (the
 * innermost frame); the number must follow ", line ", be written as the
 * server does (no leading 0) and end at ',', ':' or the end of that line.
 * Returns the 1-based line (>= 1), or 0 when ctx (len bytes, need not be
 * NUL-terminated; may be NULL) holds none.
 */
unsigned long pg_copy_error_line(const char *ctx, size_t len);

/*
 * Physical lines that PostgreSQL 15 counts inside one CSV record of COPY
 * FROM (data, len bytes, the record without its terminating '\n'; quote
 * and escape '"'): the line breaks inside quotes. The server's counter is
 * "fragile" (its own word, copyfromparse.c): until it has seen the first
 * end of line it counts '\r' inside quotes, afterwards '\n'. first says
 * whether this record is the first of the COPY. A record k then starts at
 * line 1 + sum over earlier records (1 + breaks), and its errors name a
 * line from that start to the start of the next record, exclusive.
 */
size_t pg_csv_breaks(const char *data, size_t len, int first);

/* Make s one line for a log or a reply: runs of '\n', '\r', '\t' and
 * spaces become one space; no space at either end. In place. */
void pg_one_line(char *s);

#endif
