/*
 * batchd_status.h - item and request status codes shared by the daemon,
 * the client library and batchctl. Installed next to batchd.h.
 *
 * The numbers are wire values (proto/PROTOCOL.md): append, never renumber.
 */
#ifndef BATCHD_STATUS_H
#define BATCHD_STATUS_H

enum batchd_status {
    BATCHD_OK = 0,                /* the sink took the item; payload is its answer */
    BATCHD_ACCEPTED = 1,          /* SEND: the daemon owns the item now */
    BATCHD_FAIL = 2,              /* the sink failed the item; payload is its message */
    BATCHD_RETRY_EXHAUSTED = 3,   /* retried max_attempts times or until a deadline */
    BATCHD_OVERLOADED = 4,        /* a bound was hit; the message names it */
    BATCHD_DEADLINE_EXCEEDED = 5, /* the item's deadline passed before it was done */
    BATCHD_SINK_TIMEOUT = 6,      /* one sink call ran past sink_timeout_ms */
    BATCHD_SINK_UNAVAILABLE = 7,  /* the sink is down or unhealthy */
    BATCHD_CANCELLED = 8,         /* cancelled before it reached the sink */
    BATCHD_SHUTTING_DOWN = 9,     /* the daemon is stopping and did not take it */
    BATCHD_BAD_REQUEST = 10,      /* malformed request; the message names the field */
    BATCHD_FRAME_TOO_LARGE = 11,  /* frame length 0 or over max_frame: connection closed */
    BATCHD_UNSUPPORTED = 12,      /* unknown message type, version or command */
    BATCHD_NO_ROUTE = 13,         /* no route matches the key */
    BATCHD_PERMISSION_DENIED = 14,/* peer credentials not allowed */
    BATCHD_TOO_MANY_CONNECTIONS = 15, /* max_conns reached: connection closed */
};

#define BATCHD_STATUS_COUNT 16

#endif
