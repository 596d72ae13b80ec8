/*
 * state.h - struct bd_server, the state the I/O layer (conn.c,
 * request.c, control.c, stats.c) and the server share: the loop, the
 * listener, the connections and the batching core they feed; plus the
 * few services server.c gives the I/O layer. Only the loop thread
 * touches it. Creating, running and freeing the server is server.h's.
 */
#ifndef BD_STATE_H
#define BD_STATE_H

#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "config.h"
#include "core.h"

struct event_base;
struct event;
struct bd_conn;
struct bd_key;
struct bd_sink;
struct bd_workers;
struct bd_access;
struct bd_metrics;

/* Descriptors kept free for sinks, workers and the runner's socketpairs:
 * connections stop being accepted before the process runs out. */
#define BD_FD_RESERVE 32

struct bd_server {
    struct event_base *base;
    struct bd_config *cfg;    /* the current generation's (core.gen), not
                               * owned: a reload replaces it */
    struct bd_config *(*load_cfg)(void *arg, char **errs); /* re-read the
                               * file with the command line's overrides
                               * (main.c), for reload; errs as bd_config_load */
    void *load_arg;           /* load_cfg's argument */
    const char *sink_dir;     /* --sink-dir (borrowed), or NULL: cfg's */
    struct bd_workers *workers;
    int listen_fd;            /* -1 once closed */
    int socket_owned;         /* we created the socket file (unlink at exit) */
    struct event *listen_ev;
    struct event *listen_retry_ev; /* accept paused on EMFILE */
    struct event *flush_ev;   /* end-of-pass work, activated on demand */
    int flush_pending;        /* flush_ev is active */
    struct event *sig_ev[3];  /* SIGTERM, SIGINT, SIGHUP */
    struct event *grace_ev;   /* shutdown_grace timer */
    struct event *watchdog_ev;
    struct event *sweep_ev;   /* periodic connection timeout check */
    struct bd_access *access; /* allow/admin lists */
    struct bd_metrics *metrics; /* the Prometheus endpoint, NULL = off */
    uint32_t fd_budget;       /* connections we can hold and keep BD_FD_RESERVE */
    int listen_paused;        /* accept stopped after EMFILE */
    int input_drained;        /* stopping: the last requests in every
                               * socket were read and answered */
    int exit_code;
    /* connections */
    struct bd_conn *conns;    /* all open connections */
    struct bd_conn *pending;  /* conns with output or a close to handle */
    uint32_t nconns;
    uint64_t next_conn_id;
    struct bd_core core;      /* the batching core: keys, queues, calls,
                               * counters, the loop clock */
    msgpack_zone zone;        /* decode scratch, cleared per frame */
    uint8_t rbuf[64 * 1024];  /* shared read buffer: conns keep only partial frames */
    uint64_t start_ns;
};

/* Refresh the loop clock (srv->core.clock.now_ns); every loop callback
 * starts with it, so the hot path reads the clock once per pass instead
 * of several times per item. */
static inline uint64_t bd_server_tick(struct bd_server *srv)
{
    return bd_core_tick(&srv->core);
}

/* Ask for the end-of-pass work (dispatch dirty keys, write replies,
 * close finished connections). Cheap to call many times per pass. */
void bd_server_want_flush(struct bd_server *srv);

/* A connection closed: resume a listener paused for lack of fds. */
void bd_server_conn_closed(struct bd_server *srv);

/*
 * Re-read the configuration (SIGHUP, batchctl reload; reload.c). out
 * gets what happened, one line each: on success "reloaded ..." and every
 * option that needs a restart to change; on failure the errors (the
 * running configuration stays). Returns 0 or -1. Logged too.
 */
int bd_server_reload(struct bd_server *srv, char *out, size_t outlen);

/* Begin the shutdown sequence (SIGTERM). */
void bd_server_stop(struct bd_server *srv);

/* Shutdown progress: exit the loop when nothing is queued or running
 * and every reply is written. */
void bd_server_check_done(struct bd_server *srv);

#endif
