/*
 * durable.h - durable SEND routes (core layer; README "Durability"):
 * the glue between the batching core and the spool (spool.h).
 *
 * A SEND to a route with `durable = yes` gets an ITEM record at
 * admission; its ACCEPTED is held back until the record is synced (group
 * commit: one commit per loop pass, or per spool_sync_window_us). When
 * the item reaches a final state it gets a DONE record; a final state
 * other than OK also writes a dead letter. SHUTTING_DOWN is not final
 * for a durable item: it stays in the spool for the next start. LOADs
 * are never spooled (their caller waits for the answer).
 *
 * The commit's writes run on the loop thread at the end of a pass (or
 * window); its fdatasync runs on a sync thread of this file, one at a
 * time, while the loop goes on admitting what the next commit will take.
 * See README "Durability" for the measured cost. Loop thread only (but
 * for the sync thread, which touches only bd_spool_commit_sync).
 */
#ifndef BD_DURABLE_H
#define BD_DURABLE_H

#include <stddef.h>
#include <stdint.h>

#include "spool.h"

struct bd_core;
struct bd_key;
struct bd_item;
struct bd_admit;
struct bd_waiter;

/*
 * Open the spool when a route is durable (core->durable stays NULL when
 * none is), queue again every item a previous run left unfinished, and
 * commit, before the listener accepts anyone. Returns 0, or -1 with err
 * set (no spool_dir for a durable route, the directory cannot be used).
 * Damage in the files is never an error (spool.h).
 */
int bd_durable_start(struct bd_core *core, char *err, size_t errlen);

/* Commit what is pending and close the spool (exit). */
void bd_durable_stop(struct bd_core *core);

/* Admission of a SEND on a durable route (batch.c): append its record;
 * its ACCEPTED goes to a->ack after the sync (a->deferred set). Returns
 * 1, or 0 with a set (OVERLOADED naming the spool). */
int bd_durable_admit(struct bd_core *core, struct bd_key *k, struct bd_item *it,
                     struct bd_admit *a);

/* A spooled item was answered with status (call.c): DONE, and a dead
 * letter unless OK; nothing for SHUTTING_DOWN. */
void bd_durable_final(struct bd_core *core, const char *key,
                      const struct bd_item *it, int status, const void *body,
                      size_t len);

/* End of a loop pass (server.c): commit and answer the held ACCEPTEDs,
 * unless a sync window is set (then its timer does). */
void bd_durable_end_pass(struct bd_core *core);

/* Is anything not yet committed or answered (records, held ACCEPTEDs,
 * a sync running)? The shutdown waits for it, so that every ACCEPTED
 * is written before the daemon leaves. */
int bd_durable_busy(const struct bd_core *core);

/* Commit and answer everything now, waiting for the sync (the end of
 * shutdown_grace: the replies must be in the buffers it writes). */
void bd_durable_commit_now(struct bd_core *core);

/* The spool's counters, or NULL without a spool. */
const struct bd_spool_stats *bd_durable_stats(const struct bd_core *core,
                                              uint64_t *disk_bytes);

/* Dead letters: fn per letter (control: deadletters list); returns how
 * many, or -1 without a spool. */
long bd_durable_dead_list(struct bd_core *core,
                          void (*fn)(const struct bd_rec *r, void *arg),
                          void *arg);

/* Queue every dead letter again as a durable SEND, commit, and remove
 * the file. Returns how many, or -1 without a spool. */
long bd_durable_dead_resend(struct bd_core *core);

#endif
