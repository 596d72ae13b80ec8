/*
 * call.h - one sink call, from dispatch to the replies: start it on the
 * loop or on a worker, bound it with sink_timeout_ms, read the sink's
 * verdicts, and send each item to its reply, its retry or its poison
 * split (DESIGN section 4).
 *
 * Loop thread only. A call that timed out is "abandoned": its items are
 * answered or re-queued as copies at once, and the originals stay with
 * the sink (which still borrows them) until its late completion, which
 * is then dropped without a second reply.
 */
#ifndef BD_CALL_H
#define BD_CALL_H

#include <stddef.h>
#include <stdint.h>

struct bd_core;
struct bd_batch;
struct bd_waiter;
struct bd_item;

/* Start the call for b (takes b): account it, run it, arm its timeout. */
void bd_call_start(struct bd_core *core, struct bd_batch *b);

/* The sink finished b (from worker.c's completion event, or at once for
 * a non-blocking sink). Takes b. */
void bd_call_complete(struct bd_core *core, struct bd_batch *b);

/* Shutdown grace expired: answer the items of every running call with
 * status; the calls stay with their (hung) sinks. */
void bd_call_abandon_all(struct bd_core *core, int status, const char *msg);

/* A waiter is gone: a running call whose items all belonged to gone
 * clients gets the sink's optional cancel hook. */
void bd_call_cancel_for(struct bd_core *core, const struct bd_waiter *w);

/*
 * Answer one item of key k and free it; its final status is counted on
 * k's route. SEND items (no waiter) are not answered again: a failure is
 * logged and counted.
 */
void bd_item_answer(struct bd_core *core, const struct bd_key *k,
                    struct bd_item *it, int status, const void *body,
                    size_t len, int is_str);

/* Deliver one reply about item it to one recipient: a LOAD's waiter w
 * (type, req_id), or a SEND (w NULL: a failure is logged and counted).
 * Counts the reply; frees nothing. */
void bd_reply_to(struct bd_core *core, const char *key,
                 const struct bd_item *it, struct bd_waiter *w, int type,
                 uint64_t req_id, int status, const void *body, size_t len,
                 int is_str);

#endif
