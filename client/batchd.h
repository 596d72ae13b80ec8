/*
 * batchd.h - libbatchd, the thin C client for the batchd daemon.
 *
 * One struct batchd_client is one connection to the daemon. Calls return
 * BATCHD_CLIENT_OK / BATCHD_CLIENT_ERR (or NULL); after an error the
 * reason is in batchd_err()/batchd_errstr() and the client is dead: free
 * it and connect again (like hiredis). One exception: BATCHD_ERR_ARG (a
 * bad key, size or option) is found before anything is queued, so the
 * client stays usable and the next call clears the error slot. An
 * item's outcome (OK, FAIL, OVERLOADED, ...) is never a client error: it
 * is the status of a reply.
 *
 * Thread-safety: a client is not thread-safe. Use one client per thread,
 * or guard every call on a shared client with one mutex. Different
 * clients are independent.
 *
 * Blocking API: batchd_load / batchd_send send one request and wait for
 * its reply. Async API: batchd_submit_* queue requests (many may be in
 * flight), batchd_fd() is a descriptor to poll for POLLIN (and POLLOUT
 * while batchd_want_write()), batchd_process() writes, reads, and runs
 * each callback exactly once per request: with the daemon's reply, or
 * with a NULL reply when the connection fails or the client is freed
 * (batchd_err then says why; BATCHD_ERR_NONE means batchd_free).
 *
 * Inside a callback you may submit, flush and call batchd_free (the free
 * is deferred until batchd_process or the blocking call returns, which
 * then returns an error; do not touch the client after that). Do not
 * call batchd_process or a blocking call from a callback: they fail with
 * BATCHD_ERR_ARG.
 */
#ifndef BATCHD_H
#define BATCHD_H

#include <stddef.h>
#include <stdint.h>

#include "batchd_status.h"

#define BATCHD_VERSION "0.1.0"
#define BATCHD_DEFAULT_SOCKET "/run/batchd/batchd.sock"

#if defined(__GNUC__)
#define BATCHD_API __attribute__((visibility("default")))
#else
#define BATCHD_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Call results. */
#define BATCHD_CLIENT_OK 0
#define BATCHD_CLIENT_ERR -1

/* Error classes kept in the client (batchd_err). */
enum batchd_err {
    BATCHD_ERR_NONE = 0,
    BATCHD_ERR_IO = 1,        /* read/write/connect failed: see errstr (errno) */
    BATCHD_ERR_EOF = 2,       /* the daemon closed the connection */
    BATCHD_ERR_PROTOCOL = 3,  /* the daemon sent something we cannot read */
    BATCHD_ERR_OOM = 4,
    BATCHD_ERR_TIMEOUT = 5,   /* a blocking call ran out of time */
    BATCHD_ERR_ARG = 6,       /* a bad argument (key, size) */
    BATCHD_ERR_REFUSED = 7,   /* the daemon refused the connection (errstr says why) */
};

struct batchd_client;

/* A reply. Blocking calls give the caller a reply to free with
 * batchd_reply_free, whose data is a copy followed by a NUL byte (handy
 * for text bodies); async callbacks borrow it until they return. */
struct batchd_reply {
    uint64_t id;              /* request id (item id for *_MANY items) */
    int status;               /* enum batchd_status */
    const void *data;         /* OK: payload; errors: message; may be NULL */
    size_t len;               /* bytes at data */
};

/* Per-request options; zero-initialise and set what you need. */
struct batchd_opts {
    uint32_t deadline_ms;     /* 0 = none */
    int priority;             /* 0 (lowest, the default) .. 255: higher
                               * lanes of a key fill batches first; an item
                               * waiting longer than the route's
                               * priority_aging_ms counts as top priority */
    const void *dedup_id;     /* NULL = none; else items of the key with
                               * this id queued at the same time share one
                               * sink item and its result (PROTOCOL.md) */
    size_t dedup_len;
    const char *trace;        /* W3C traceparent ("00-<32 hex>-<16 hex>-
                               * <2 hex>"), NULL = none; reaches the sink
                               * with the item (malformed: BAD_REQUEST) */
};

typedef void (*batchd_reply_cb)(struct batchd_client *c,
                                const struct batchd_reply *r, void *arg);

/*
 * Connect to the daemon's Unix socket and say HELLO. path NULL means
 * $BATCHD_SOCKET, else BATCHD_DEFAULT_SOCKET. timeout_ms bounds the
 * connect and the HELLO exchange (0 = wait forever).
 * Always returns a client (NULL only when memory is short): check
 * batchd_err(c) and free it with batchd_free even on failure.
 */
BATCHD_API struct batchd_client *batchd_connect_unix(const char *path,
                                                     int timeout_ms);

/* Close the connection, run every pending callback with a NULL reply,
 * and free the client. NULL is fine. From inside a callback the free is
 * deferred (see above). */
BATCHD_API void batchd_free(struct batchd_client *c);

/* The error slot: an enum batchd_err and one line for a person ("" when
 * there is no error). A NULL client reads as BATCHD_ERR_OOM, "out of
 * memory", so a failed connect can be reported the same way. */
BATCHD_API int batchd_err(const struct batchd_client *c);
BATCHD_API const char *batchd_errstr(const struct batchd_client *c);

/* The name of a status code ("OK", "OVERLOADED", ...). */
BATCHD_API const char *batchd_status_name(int status);

/* Blocking: LOAD one item and wait for its result. On BATCHD_CLIENT_OK,
 * *out is a new reply (free with batchd_reply_free). opts may be NULL.
 * timeout_ms 0 = wait forever. Other requests' callbacks may run meanwhile.
 * A timeout (BATCHD_ERR_TIMEOUT) leaves the client dead, like any error:
 * the late reply would have nobody to go to. */
BATCHD_API int batchd_load(struct batchd_client *c, const char *key,
                           const void *data, size_t len,
                           const struct batchd_opts *opts, int timeout_ms,
                           struct batchd_reply **out);

/* Blocking: SEND one item (fire and forget) and wait for ACCEPTED or the
 * error that refused it. Same rules as batchd_load. */
BATCHD_API int batchd_send(struct batchd_client *c, const char *key,
                           const void *data, size_t len,
                           const struct batchd_opts *opts, int timeout_ms,
                           struct batchd_reply **out);

/* Blocking: a CONTROL command ("ping", "stats", "health", "pause",
 * "resume", "drain", "reload"); kv holds nkv key/value string pairs
 * (kv[2i] = key, kv[2i+1] = value). The reply body is text (JSON for
 * stats/health). */
BATCHD_API int batchd_control(struct batchd_client *c, const char *cmd,
                              const char *const *kv, size_t nkv,
                              int timeout_ms, struct batchd_reply **out);

BATCHD_API void batchd_reply_free(struct batchd_reply *r);

/* Async: queue a LOAD/SEND; cb runs once, from batchd_process (or
 * batchd_free, or a blocking call); cb may be NULL when nobody wants the
 * reply. *id_out (may be NULL) gets the request id. Nothing is written
 * until batchd_process or batchd_flush. The data is copied into the
 * output buffer before this returns. */
BATCHD_API int batchd_submit_load(struct batchd_client *c, const char *key,
                                  const void *data, size_t len,
                                  const struct batchd_opts *opts,
                                  batchd_reply_cb cb, void *arg,
                                  uint64_t *id_out);
BATCHD_API int batchd_submit_send(struct batchd_client *c, const char *key,
                                  const void *data, size_t len,
                                  const struct batchd_opts *opts,
                                  batchd_reply_cb cb, void *arg,
                                  uint64_t *id_out);

/* Async: many payloads for one key in one frame (LOAD_MANY/SEND_MANY).
 * Item i gets id first_id + i, and cb runs once per item. n is 1..65536
 * and data[i] may be NULL only when lens[i] is 0. */
BATCHD_API int batchd_submit_many(struct batchd_client *c, int fire_and_forget,
                                  const char *key, const void *const *data,
                                  const size_t *lens, size_t n,
                                  const struct batchd_opts *opts,
                                  batchd_reply_cb cb, void *arg,
                                  uint64_t *first_id);

/* The socket to poll (-1 once the client is dead). POLLIN always;
 * POLLOUT while batchd_want_write. c must not be NULL here and below. */
BATCHD_API int batchd_fd(const struct batchd_client *c);
BATCHD_API int batchd_want_write(const struct batchd_client *c);

/* Write what is queued without waiting. Runs no callback: if the
 * daemon has gone, the next batchd_process reports it. */
BATCHD_API int batchd_flush(struct batchd_client *c);

/* Write queued requests, wait up to timeout_ms (0 = do not wait, -1 =
 * until at least one reply; at once when nothing is pending) for
 * replies, and run their callbacks. Returns the number of callbacks run
 * (0 when the time ran out: not an error), or -1 (client dead; the
 * pending callbacks have run with NULL). */
BATCHD_API int batchd_process(struct batchd_client *c, int timeout_ms);

/* Requests submitted and not yet answered. */
BATCHD_API size_t batchd_pending(const struct batchd_client *c);

#ifdef __cplusplus
}
#endif

#endif
