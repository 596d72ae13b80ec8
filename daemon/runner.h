/*
 * runner.h - the sink runner (the child side of isolation = process)
 * and the wire that it and the daemon's proxy (isolate.c) speak over
 * their socketpair.
 *
 * Every message is one batchd frame (proto/frame.h: 4-byte big-endian
 * length, one msgpack object), at most BD_RUNNER_MAX_FRAME bytes, and
 * is walked with bd_frame_check before msgpack-c sees it: each side
 * treats the other as untrusted. Strictly one request, one answer:
 *
 *   daemon -> runner  INIT    [{key: value, ...}, log_level]
 *   runner -> daemon          [ok (bool), error (str or nil)]
 *   daemon -> runner  BATCH   [seq, key, [[item_id, attempt, deadline_ms,
 *                                          payload (bin), trace (str or nil)],
 *                                          ...], span_id (str)]
 *   runner -> daemon  RESULT  [seq, rc, error (str or nil),
 *                              [[code, data (bin or nil)], ...],
 *                              retry_after_ms]
 *
 * rc is process()'s verdict (or complete()'s, for a PENDING batch), or
 * BD_SINK_ACQUIRE_FAILED when acquire() refused (sink.h);
 * code is 0 for an item the plugin left without a result, else an enum
 * batchd_result_code. retry_after_ms is the plugin's host->retry_after
 * (ABI 2; 0 when it gave none); a RESULT of 4 elements (no hint) is
 * accepted too. EOF from the daemon: the runner calls the plugin's
 * shutdown and exits 0. The error of a refused INIT is the whole line
 * the daemon prints ("sink NAME (PATH): init failed: why").
 */
#ifndef BD_RUNNER_H
#define BD_RUNNER_H

#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "batchd_sink.h"
#include "buf.h"

#define BD_RUNNER_FD 3                 /* the runner's end of the socketpair */
#define BD_RUNNER_MAX_FRAME (512u << 20) /* max_bytes (256M) + item overhead */

/* One end of the socketpair, with its buffers. Embedded object:
 * bd_runner_io_init / bd_runner_io_destroy. */
struct bd_runner_io {
    int fd;                   /* the socket, -1 when none */
    int wakefd;               /* readable = stop waiting (returns -2); -1 none */
    uint64_t deadline_ns;     /* CLOCK_MONOTONIC bound on waits; 0 = none */
    struct bd_buf in;         /* bytes read and not yet consumed */
    struct bd_buf out;        /* frames not yet written */
    size_t frame_len;         /* the frame recv handed out, dropped next time */
};

void bd_runner_io_init(struct bd_runner_io *io, int fd, int wakefd);

/* Frees the buffers; does not close fd. */
void bd_runner_io_destroy(struct bd_runner_io *io);

/* Drop any buffered bytes (a new runner, same io). */
void bd_runner_io_reset(struct bd_runner_io *io, int fd);

/*
 * Write everything in io->out. Returns 0; -1 with a static or strerror
 * reason in *why (peer gone, deadline passed); -2 when wakefd became
 * readable (call again to go on where it stopped).
 */
int bd_runner_io_flush(struct bd_runner_io *io, const char **why);

/*
 * Read one whole frame and check it (length, then bd_frame_check).
 * Returns 1 with *body and *len valid until the next call; 0 on EOF between
 * frames; -1 with *why (EOF inside a frame, bad frame, I/O error,
 * deadline); -2 when wakefd became readable (call again).
 */
int bd_runner_io_recv(struct bd_runner_io *io, const uint8_t **body,
                      size_t *len, const char **why);

/* Encoders append one frame to out; 0, or -1 when memory is short. */
int bd_runner_encode_init(struct bd_buf *out, const struct batchd_kv *kv,
                          size_t nkv, int log_level);
/* age_ms: time since the batch was made; deadlines are sent as what is
 * left of them now. host (the daemon's) gives each item's trace and the
 * batch's span id. */
int bd_runner_encode_batch(struct bd_buf *out, uint64_t seq,
                           const struct batchd_batch *b, int64_t age_ms,
                           const struct batchd_host *host);

/* The runner's answer to INIT: *ok, and its error line in msg ("" when
 * none). Returns 0, or -1 when the frame is not such an answer. */
int bd_runner_decode_init_reply(const uint8_t *body, size_t len,
                                msgpack_zone *zone, int *ok, char *msg,
                                size_t msglen);

/* A decoded RESULT; it points into the frame body and the zone. */
struct bd_runner_result {
    uint64_t seq;             /* the BATCH it answers */
    int rc;                   /* enum batchd_process_rc (or a plugin's bad value) */
    const char *error;        /* batch_error text, NULL when nil */
    size_t error_len;
    const msgpack_object *items; /* nitems [code, data] pairs, checked */
    size_t nitems;
    uint64_t retry_after_ms;  /* host->retry_after in the runner, 0 = none */
};

/* Returns 0, or -1 with a reason naming the field in err. */
int bd_runner_decode_result(const uint8_t *body, size_t len,
                            msgpack_zone *zone, struct bd_runner_result *r,
                            char *err, size_t errlen);

/* Item i of a decoded result: its code (0 = none) and data (may be NULL). */
void bd_runner_result_item(const struct bd_runner_result *r, size_t i,
                           int *code, const void **data, size_t *len);

/* bd_runner_main (the child's main) is declared in isolate.h. */

#endif
