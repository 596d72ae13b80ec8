/*
 * msg.h - encode and decode batchd messages (proto/PROTOCOL.md).
 *
 * Requests and replies are msgpack arrays whose first element is the
 * message type. Decoding runs on a frame body that already passed
 * bd_frame_check; the decoded struct points into that body and into the
 * caller's msgpack zone, so both must outlive it.
 */
#ifndef BD_MSG_H
#define BD_MSG_H

#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "batchd_status.h"
#include "buf.h"

#define BD_PROTO_VERSION 1
#define BD_KEY_MAX 256        /* longest key in bytes */
#define BD_DEDUP_MAX 256      /* longest dedup_id in bytes */
#define BD_TRACE_MAX 128      /* longest trace string */
#define BD_NAME_MAX 128       /* longest client name / control command */
#define BD_MANY_MAX 65536     /* most payloads in one *_MANY request */

enum bd_msg_type {
    BD_MSG_HELLO = 0,
    BD_MSG_LOAD = 1,
    BD_MSG_SEND = 2,
    BD_MSG_LOAD_MANY = 3,
    BD_MSG_SEND_MANY = 4,
    BD_MSG_CONTROL = 9,
    BD_MSG_ERROR = 15,        /* server to client only, req_id 0 */
};

/* Per-request options; a field is meaningful only when its has_ bit is set. */
struct bd_opts {
    unsigned has_deadline : 1;
    unsigned has_priority : 1;
    uint64_t deadline_ms;     /* relative, from the daemon's receipt */
    uint32_t priority;        /* 0 = normal lane; higher fills first */
    const char *dedup_id;     /* NULL when absent; not NUL-terminated */
    size_t dedup_len;
    const char *trace;        /* W3C traceparent; NULL when absent */
    size_t trace_len;
};

/* A decoded request. */
struct bd_msg {
    int type;                 /* enum bd_msg_type */
    uint64_t req_id;          /* valid when has_id */
    int has_id;
    uint32_t version;         /* HELLO */
    const char *name;         /* HELLO client name / CONTROL command */
    size_t name_len;
    const char *key;          /* LOAD/SEND and *_MANY */
    size_t key_len;
    const uint8_t *payload;   /* LOAD/SEND */
    size_t payload_len;
    const msgpack_object *items; /* *_MANY: array of bin/str, checked */
    uint32_t nitems;
    uint32_t fanout;          /* item ids the request covers: nitems for a
                               * *_MANY whose payload array could be counted
                               * (set even when decoding fails), else 1 */
    struct bd_opts opts;
    const msgpack_object *args;  /* CONTROL: map, or NULL */
};

/* Replies may carry status codes newer than this build; they are
 * passed on (bd_status_name says "UNKNOWN"), never a protocol error. */
#define BD_STATUS_WIRE_MAX 255

/* A decoded reply (client side). */
struct bd_reply_msg {
    int type;
    uint64_t req_id;
    int status;               /* enum batchd_status */
    const uint8_t *body;      /* bin or str body; NULL for nil */
    size_t body_len;
};

/*
 * Decode a request from a checked frame body. Returns BATCHD_OK, or
 * BATCHD_BAD_REQUEST / BATCHD_UNSUPPORTED with a one-line reason naming
 * the field in err. m->has_id tells whether m->req_id could be read, so
 * the error can be matched to its request.
 */
int bd_msg_decode(const uint8_t *body, size_t len, msgpack_zone *zone,
                  struct bd_msg *m, char *err, size_t errlen);

/* A plain LOAD/SEND as the fast decoder reads it: no opts, so it needs
 * none of bd_msg's other fields. Pointers point into the frame body. */
struct bd_msg_item {
    int type;                 /* BD_MSG_LOAD or BD_MSG_SEND */
    uint64_t req_id;
    const char *key;          /* checked by bd_msg_check_key */
    size_t key_len;
    const uint8_t *payload;
    size_t payload_len;
};

/*
 * The hot path: a bounded, allocation-free decoder for the common plain
 * LOAD/SEND (no options, a valid key). Needs no bd_frame_check first:
 * every length is checked as it is read. Returns 1 with f filled, or 0
 * when the body is anything else, and then the caller runs
 * bd_frame_check + bd_msg_decode, which give the proper answer and
 * error text.
 */
int bd_msg_decode_fast(const uint8_t *body, size_t len, struct bd_msg_item *f);

/* The bd_msg that bd_msg_decode would give for the same plain item. */
void bd_msg_from_item(struct bd_msg *m, const struct bd_msg_item *f);

/* Decode a reply from a checked frame body. Returns 0, or -1 with err. */
int bd_msg_decode_reply(const uint8_t *body, size_t len, msgpack_zone *zone,
                        struct bd_reply_msg *r, char *err, size_t errlen);

/* Validate a key: 1..BD_KEY_MAX bytes, valid UTF-8, no NUL.
 * Returns NULL when fine, else a static reason. */
const char *bd_msg_check_key(const char *key, size_t len);

/* The status name ("OK", "OVERLOADED", ...), or "UNKNOWN". */
const char *bd_status_name(int status);

/* Encoders append one whole frame to out. Return 0 or -1 (no memory,
 * out unchanged in length). */
int bd_msg_encode_hello(struct bd_buf *out, uint64_t req_id,
                        uint32_t version, const char *name);
int bd_msg_encode_item(struct bd_buf *out, int type, uint64_t req_id,
                       const char *key, size_t key_len,
                       const void *payload, size_t len,
                       const struct bd_opts *opts);
int bd_msg_encode_many(struct bd_buf *out, int type, uint64_t req_id,
                       const char *key, size_t key_len,
                       const void *const *payloads, const size_t *lens,
                       size_t n, const struct bd_opts *opts);
int bd_msg_encode_control(struct bd_buf *out, uint64_t req_id,
                          const char *cmd, const char *const *kv, size_t nkv);
/* body_is_str: 1 encodes the body as str (messages, JSON), 0 as bin;
 * body NULL encodes nil. */
int bd_msg_encode_reply(struct bd_buf *out, int type, uint64_t req_id,
                        int status, const void *body, size_t body_len,
                        int body_is_str);

/* Is s[0..n) a W3C traceparent ("00-" 32 hex "-" 16 hex "-" 2 hex, lower
 * case, trace and parent ids not all zero; version ff refused; a later
 * version may append "-" fields)? */
int bd_trace_valid(const char *s, size_t n);

#endif
