/*
 * conn.h - one client connection: input and output buffers, the read
 * and write handlers, replies, and the deferred close.
 *
 * A conn is never freed inside its own handler: handlers set flags and
 * put it on the server's pending list, and bd_conn_flush (called once
 * per loop pass by server.c) writes, closes and frees. A closed conn
 * lives on while LOAD items still point at it (refs), so a late
 * completion finds a closed conn and drops its reply instead of
 * touching freed memory.
 */
#ifndef BD_CONN_H
#define BD_CONN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"
#include "waiter.h"

struct bd_server;
struct event;

struct bd_conn {
    struct bd_conn *next;     /* server's list of open conns */
    struct bd_conn *prev;
    struct bd_conn *pnext;    /* server's pending list */
    struct bd_server *srv;
    int fd;                   /* -1 once closed */
    unsigned flags;           /* BD_CONN_* */
    struct bd_waiter waiter;  /* what the core holds for its LOAD items:
                               * waiter.refs is 1 while open, +1 per
                               * LOAD item; waiter.gone mirrors
                               * bd_conn_is_closed */
    uint64_t id;              /* for log lines */
    uint32_t bad_in_row;      /* consecutive bad requests */
    uid_t uid;                /* peer credentials (SO_PEERCRED) */
    gid_t gid;
    pid_t pid;
    uint64_t frame_start_ns;  /* first byte of an incomplete frame (restarted
                               * when reading resumes), 0 = none */
    uint64_t last_io_ns;      /* last byte read or written (idle_timeout_ms) */
    uint64_t stall_since_ns;  /* output waiting and not moving since, 0 = none */
    uint64_t dropped;         /* replies dropped by a close */
    struct event *rev;        /* readable */
    struct event *wev;        /* writable, armed only while output waits */
    struct bd_buf in;         /* partial frame carried to the next read */
    struct bd_buf out;        /* encoded replies not yet written */
};

#define BD_CONN_HELLO 0x01u        /* HELLO done: full max_frame applies */
#define BD_CONN_PENDING 0x02u      /* on the server's pending list */
#define BD_CONN_CLOSE_ASAP 0x04u   /* close at the next flush, no writes */
#define BD_CONN_CLOSE_AFTER 0x08u  /* close once the output is written */
#define BD_CONN_EOF 0x10u          /* peer half-closed: close when all answered */
#define BD_CONN_CLOSED 0x20u       /* fd closed; waiting for refs to drop */
#define BD_CONN_READ_PAUSED 0x40u  /* output over conn_out_soft */
#define BD_CONN_WRITING 0x80u      /* wev armed */

/* Take an accepted, non-blocking fd. Returns a new conn (freed when
 * closed and unreferenced) or NULL (fd closed). */
struct bd_conn *bd_conn_new(struct bd_server *srv, int fd);

/* Drop one reference (the open one at close, or an item's through the
 * waiter); the last frees. */
static inline void bd_conn_unref(struct bd_conn *c)
{
    bd_waiter_release(&c->waiter);
}

static inline int bd_conn_is_closed(const struct bd_conn *c)
{
    return (c->flags & (BD_CONN_CLOSED | BD_CONN_CLOSE_ASAP)) != 0;
}

/* Queue one reply frame; dropped when the conn is closed. body may be
 * NULL (nil). Closes the conn when its output passes conn_out_hard. */
void bd_conn_reply(struct bd_conn *c, int type, uint64_t req_id, int status,
                   const void *body, size_t len, int body_is_str);

/* Queue a connection-level error frame [15, 0, status, msg] and close
 * the conn once it is written; nothing more is read from it. */
void bd_conn_fatal(struct bd_conn *c, int status, const char *msg);

/* Put the conn on the pending list for this pass's flush. */
void bd_conn_mark(struct bd_conn *c);

/* Flush (server.c, once per pass): write, handle close flags, pause or
 * resume reading. May free c. */
void bd_conn_flush(struct bd_conn *c);

/* Shutdown's last step (server.c): stop the client's writes
 * (shutdown(SHUT_RD)), then read and answer every complete request
 * already in the socket; the conn then closes like a half-closed one,
 * once every reply is written. Bounded by what the socket holds. */
void bd_conn_drain_input(struct bd_conn *c);

/* Close now (shutdown). May free c. */
void bd_conn_close(struct bd_conn *c);

/* The periodic sweep (server.c): close c if a frame took longer than
 * frame_timeout_ms of time we were reading it, if it was idle past
 * idle_timeout_ms, or if its output has not moved for
 * write_stall_timeout_ms. */
void bd_conn_check_timeouts(struct bd_conn *c, uint64_t now);

#endif
