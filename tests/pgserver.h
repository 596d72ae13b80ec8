/*
 * pgserver.h - a throwaway PostgreSQL 15 server for the suites that test
 * the postgres sink against the real thing (tests/check_pg.c, bench/).
 *
 * initdb + pg_ctl in a new temporary directory: Unix socket only (in that
 * directory, listen_addresses = ''), fsync off, trust authentication.
 * PostgreSQL refuses to run as root, so when the caller is root (CI) the
 * server runs as 'nobody' (setpriv) and owns the directory; otherwise it
 * runs as the caller. No libpq here (every suite links this file): the
 * callers that query the server link libpq themselves.
 *
 * Binaries come from $BATCHD_PG_BIN, default /usr/lib/postgresql/15/bin.
 * Functions return 0 / -1 (with the reason on stderr) and never assert,
 * so that a suite's main() can use them around srunner_run_all.
 */
#ifndef BD_TEST_PGSERVER_H
#define BD_TEST_PGSERVER_H

struct bd_pg;

/* initdb and start a server. Returns it (stop and remove it with
 * bd_pg_free), or NULL when PostgreSQL is not installed or fails. */
struct bd_pg *bd_pg_new(void);

/* pg_ctl stop -m fast / start / restart -m fast, each waiting (-w). */
int bd_pg_stop(struct bd_pg *s);
int bd_pg_start(struct bd_pg *s);
int bd_pg_restart(struct bd_pg *s);

/* Stop the server if it runs, remove its directory, free s. NULL ok. */
void bd_pg_free(struct bd_pg *s);

/* "host=<dir> port=<port> dbname=postgres user=postgres" (valid until
 * bd_pg_free). */
const char *bd_pg_conninfo(const struct bd_pg *s);

/* The same, for a server that is not there: a socket directory that
 * holds no socket (for "server down at start" tests). */
const char *bd_pg_conninfo_nowhere(const struct bd_pg *s);

#endif
