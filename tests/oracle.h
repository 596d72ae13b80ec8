/*
 * oracle.h - the delivery oracle of the chaos suite: joins what the
 * clients were told (tests/tools/chaosload ledgers) with what the sink
 * took (the chaos sink's ledger) and lists every broken promise.
 *
 * Client ledgers: <dir>/client-<n>.ledger, one line per request,
 *     <tag> <key> <checksum> <status>
 * where status is a status name ("OK", "ACCEPTED", ...), NO_REPLY (the
 * connection died first) or KILLED (the client was killed on purpose
 * before reading any reply). Sink ledger: one line "<tag> <key>" per
 * item the sink answered OK (sinks/chaos.c).
 *
 * A violation is: a tag with more or fewer than one client line, or
 * NO_REPLY; OK not in the sink ledger exactly once; any other status
 * in the sink ledger (unless made lenient: then at most once); ACCEPTED
 * or KILLED there more than once; a sink line with a tag no client sent,
 * or under another key; and ACCEPTED SENDs missing from the sink ledger
 * that the daemon's send_failed counter does not account for.
 *
 * Pure C, no Check: the suite asserts on the result, and the CLI
 * (tests/tools/chaosoracle.c) prints it.
 */
#ifndef BD_TEST_ORACLE_H
#define BD_TEST_ORACLE_H

#include <stdio.h>

#include "batchd_status.h"

/* Pseudo statuses of client ledgers, after the real ones. */
#define BD_ORACLE_NO_REPLY BATCHD_STATUS_COUNT        /* "NO_REPLY" */
#define BD_ORACLE_KILLED (BATCHD_STATUS_COUNT + 1)    /* "KILLED" */
#define BD_ORACLE_NSTATUS (BATCHD_STATUS_COUNT + 2)

#define BD_ORACLE_REPORT 4096   /* bytes of violation text kept */

struct bd_oracle_opts {
    const char *client_dir;   /* holds client-*.ledger */
    const char *sink_ledger;  /* the chaos sink's ledger (missing = empty) */
    long long send_failed;    /* the daemon's send_failed stat; -1: skip */
    unsigned lenient;         /* bit (1u << status): such items may be in
                               * the sink ledger, at most once */
};

struct bd_oracle;

/*
 * Read both sides and check every rule. Returns a new oracle (free with
 * bd_oracle_free), or NULL when a file cannot be read or parsed (the
 * reason is printed to stderr).
 */
struct bd_oracle *bd_oracle_run(const struct bd_oracle_opts *opts);
void bd_oracle_free(struct bd_oracle *o);

long bd_oracle_violations(const struct bd_oracle *o);
long bd_oracle_requests(const struct bd_oracle *o);     /* client lines */
long bd_oracle_sink_lines(const struct bd_oracle *o);   /* sink ledger lines */
long bd_oracle_killed_delivered(const struct bd_oracle *o); /* KILLED, in ledger */
long bd_oracle_send_accepted(const struct bd_oracle *o);
long bd_oracle_send_delivered(const struct bd_oracle *o);

/* Requests with status (BD_ORACLE_* included) whose tag starts with
 * prefix (NULL or "" = all); status -1 counts every status. */
long bd_oracle_count(const struct bd_oracle *o, const char *prefix, int status);

/* Requests whose tag starts with prefix (NULL or "" = all) that are in
 * the sink ledger at least once. */
long bd_oracle_delivered(const struct bd_oracle *o, const char *prefix);

/* Status of tag (-1 when no client sent it) and, in *delivered (may be
 * NULL), its lines in the sink ledger. */
int bd_oracle_lookup(const struct bd_oracle *o, const char *tag, int *delivered);

/* The first violations, one per line ("" when clean). */
const char *bd_oracle_report(const struct bd_oracle *o);

/* Status name for a ledger (real names, NO_REPLY, KILLED); "?" if none. */
const char *bd_oracle_status_name(int status);

/* Counts per status, totals, violations and the report, for a person. */
void bd_oracle_print(const struct bd_oracle *o, FILE *f);

#endif
