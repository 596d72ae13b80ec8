/*
 * batch.h - per-key queues, the close rules of DESIGN section 3,
 * admission bounds, dispatch to sinks and the replies of a finished batch.
 *
 * Everything here runs on the event loop thread only.
 */
#ifndef BD_BATCH_H
#define BD_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

struct bd_server;
struct bd_conn;
struct bd_batch;
struct event;

/* One accepted item. Payload bytes follow the struct. */
struct bd_item {
    struct bd_item *next;     /* next in its key's queue */
    struct bd_conn *conn;     /* LOAD: holds a conn reference; SEND: NULL */
    uint64_t req_id;          /* the client's id for this item */
    uint64_t id;              /* daemon-unique id, shown to sinks */
    uint64_t enq_ns;          /* when it was accepted (monotonic) */
    uint32_t attempt;         /* sink calls so far */
    uint8_t reply_type;       /* message type to reply with */
    size_t len;               /* payload bytes */
    uint8_t data[];
};

struct bd_key {
    struct bd_key *hnext;     /* hash chain */
    struct bd_key *dnext;     /* on the server's dirty or wait list */
    struct bd_server *srv;    /* owner, for the timer callback */
    unsigned flags;           /* BD_KEY_* */
    const struct bd_route_conf *route;
    struct bd_sink *sink;
    struct bd_item *head;     /* queued, oldest first */
    struct bd_item *tail;
    uint64_t nqueued;         /* items in the queue */
    uint64_t qbytes;          /* payload bytes in the queue */
    uint32_t inflight;        /* sink calls running for this key */
    struct event *timer;      /* max_delay_us timer, created on demand */
    uint64_t timer_at_ns;     /* when the armed timer fires, 0 = unarmed */
    uint64_t batches;         /* sink calls made (stats) */
    uint64_t items;           /* items sent to the sink (stats) */
    uint64_t rejects;         /* items refused at admission (stats) */
    uint32_t max_batch;       /* largest batch seen (stats) */
    uint32_t hash;
    size_t len;               /* key length */
    char name[];              /* NUL-terminated key */
};

#define BD_KEY_DIRTY 0x1u     /* on the dirty list: re-check at end of pass */
#define BD_KEY_WAITING 0x2u   /* on the wait list: needs a global slot */

/* Why an item was refused, for the reply and the log line. */
struct bd_admit {
    int status;               /* BATCHD_OK or the reply status */
    char msg[160];            /* reason when status != OK */
};

/*
 * Accept one item for key (already validated by the decoder). conn is
 * the origin for a LOAD (the item takes a reference), NULL for SEND.
 * On refusal sets a->status/msg and nothing is queued.
 */
void bd_batch_admit(struct bd_server *srv, const char *key, size_t keylen,
                    const void *data, size_t len, struct bd_conn *conn,
                    uint64_t req_id, int reply_type, struct bd_admit *a);

/* End of a loop pass: give every key touched in this pass its chance
 * to dispatch. */
void bd_batch_run_dirty(struct bd_server *srv);

/* A batch came back from its sink (loop thread): reply per item, free
 * the batch, and let the key (and keys waiting for a slot) dispatch. */
void bd_batch_complete(struct bd_server *srv, struct bd_batch *b);

/* Shutdown/drain: dispatch every queued item regardless of policy, as
 * slots allow. */
void bd_batch_flush_all(struct bd_server *srv);

/* Answer every queued item with status (shutdown grace expired) and
 * free the keys that become idle. */
void bd_batch_fail_all_queued(struct bd_server *srv, int status,
                              const char *msg);

/* Grace expired with sink calls still running: answer their items
 * with status; the batches stay with their (hung) sink calls. */
void bd_batch_abandon_running(struct bd_server *srv, int status,
                              const char *msg);

/* Free every key and item (exit). */
void bd_batch_destroy_all(struct bd_server *srv);

/* Visit each live key (stats). */
void bd_batch_foreach_key(struct bd_server *srv,
                          void (*fn)(const struct bd_key *k, void *arg),
                          void *arg);

/*
 * The pure close rule, exposed for unit tests: may a batch leave the
 * queue of a key now? nqueued/qbytes describe the queue, first_ns the
 * enqueue time of its oldest item, inflight the key's running calls.
 */
int bd_batch_ready(const struct bd_route_conf *r, uint64_t nqueued,
                   uint64_t qbytes, uint64_t first_ns, uint64_t now_ns,
                   uint32_t inflight, int flushing);

/* May an item of next_len bytes join a batch that already holds count
 * items and bytes? A batch stops at max_items, and max_bytes is a hard
 * ceiling: the item that would overflow starts the next batch (the
 * first item always fits; admission refuses items over max_bytes). */
int bd_batch_fits(const struct bd_route_conf *r, size_t count, uint64_t bytes,
                  size_t next_len);

#endif
