/*
 * server.h - the daemon's one event loop and everything it owns:
 * listening socket, connections, keys, sinks, workers, counters, and
 * the shutdown sequence. Only the loop thread touches struct bd_server.
 */
#ifndef BD_SERVER_H
#define BD_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "batchd_status.h"
#include "batch.h"
#include "config.h"
#include "siphash.h"

struct event_base;
struct event;
struct bd_conn;
struct bd_key;
struct bd_sink;
struct bd_workers;
struct bd_access;

/* Descriptors kept free for sinks, workers and the runner's socketpairs:
 * connections stop being accepted before the process runs out. */
#define BD_FD_RESERVE 32

enum bd_state {
    BD_STATE_RUNNING = 0,
    BD_STATE_PAUSED = 1,      /* accept and queue, do not dispatch */
    BD_STATE_STOPPING = 2,    /* SIGTERM: flush everything, then exit */
};

struct bd_counters {
    uint64_t items_in;        /* items accepted */
    uint64_t replies;         /* reply frames queued */
    uint64_t batches;         /* sink calls */
    uint64_t items_out;       /* items handed to sinks */
    uint64_t cancelled;       /* LOAD items dropped because their client left */
    uint64_t send_failed;     /* SEND items the sink did not take (logged) */
    uint64_t retries;         /* items put back for another attempt */
    uint64_t timeouts;        /* sink calls abandoned at sink_timeout_ms */
    uint64_t splits;          /* items capped to half a batch after failures */
    uint64_t conns_total;     /* connections accepted */
    uint64_t conns_dropped;   /* closed for a hard cap or a broken frame */
    uint64_t status[BATCHD_STATUS_COUNT]; /* item replies by status */
    uint64_t rejects[BD_REJECT_COUNT]; /* items refused at admission, by
                               * reason (enum bd_reject) */
    uint64_t batch_hist[17];  /* batch sizes: bucket i holds < 2^i items */
    uint64_t lat_hist[32];    /* item latency: bucket i holds < 2^i us */
};

struct bd_server {
    struct event_base *base;
    struct bd_config *cfg;    /* owned */
    struct bd_sink *sinks;    /* cfg->nsinks, owned */
    struct bd_workers *workers;
    int state;                /* enum bd_state */
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
    /* keys */
    struct bd_key **keytab;   /* hash table of live keys */
    struct bd_sipkey hash_key; /* keytab's secret hash key, drawn at start-up */
    size_t keytab_size;       /* power of two */
    size_t nkeys;
    struct bd_key *key_last;  /* the last key admitted to (cleared when freed):
                               * clients mostly repeat keys, so this skips
                               * the hash */
    struct bd_key *dirty;     /* keys to re-check at the end of this pass */
    struct bd_key *waiting;   /* keys with a ready batch and no global slot */
    struct bd_key *waiting_tail; /* its last key (appends are O(1)) */
    struct bd_key *idle_head; /* idle keys, oldest first */
    struct bd_key *idle_tail;
    size_t nidle;
    uint64_t nqueued;         /* items queued, all keys */
    uint64_t qbytes;          /* payload bytes queued, all keys */
    uint64_t nretry;          /* items waiting for a retry, all keys */
    uint64_t rbytes;          /* their payload bytes */
    uint64_t rng;             /* retry jitter state, never 0 */
    uint32_t inflight;        /* sink calls running */
    uint32_t abandoned;       /* timed-out calls still inside their sink */
    uint64_t inflight_items;  /* items inside running calls */
    uint64_t next_item_id;
    struct bd_batch *running; /* batches inside sink calls */
    msgpack_zone zone;        /* decode scratch, cleared per frame */
    uint8_t rbuf[64 * 1024];  /* shared read buffer: conns keep only partial frames */
    uint64_t start_ns;
    uint64_t now_ns;          /* clock read once per callback (bd_server_tick):
                               * items of one pass share it */
    struct bd_counters ctr;
};

/* Monotonic clock in nanoseconds. */
uint64_t bd_now_ns(void);

/* Refresh srv->now_ns; every loop callback starts with it, so the hot
 * path reads the clock once per pass instead of several times per item. */
static inline uint64_t bd_server_tick(struct bd_server *srv)
{
    srv->now_ns = bd_now_ns();
    return srv->now_ns;
}

/*
 * Set up the loop, the sinks' workers and the listening socket (or the
 * one systemd passed). Takes cfg and sinks. Returns a new server (free
 * with bd_server_free) or NULL with err.
 */
struct bd_server *bd_server_new(struct bd_config *cfg, struct bd_sink *sinks,
                                char *err, size_t errlen);

/* Run until shutdown completes. Returns the exit code. */
int bd_server_run(struct bd_server *srv);

void bd_server_free(struct bd_server *srv);

/* Ask for the end-of-pass work (dispatch dirty keys, write replies,
 * close finished connections). Cheap to call many times per pass. */
void bd_server_want_flush(struct bd_server *srv);

/* A connection closed: resume a listener paused for lack of fds. */
void bd_server_conn_closed(struct bd_server *srv);

/* Begin the shutdown sequence (SIGTERM). */
void bd_server_stop(struct bd_server *srv);

/* Shutdown progress: exit the loop when nothing is queued or running
 * and every reply is written. */
void bd_server_check_done(struct bd_server *srv);

#endif
