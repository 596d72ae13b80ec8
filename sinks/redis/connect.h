/*
 * connect.h - open one ready-to-use hiredis connection (connect, AUTH,
 * SELECT, timeouts) and tell whether an idle one is still alive.
 */
#ifndef RS_CONNECT_H
#define RS_CONNECT_H

#include <stddef.h>

#include <hiredis.h>

#include "options.h"

/* A new blocking connection, authenticated and on o->db, with
 * command_timeout_ms on its socket; free with redisFree. NULL with one
 * line in err ("connect unix:/x: Connection refused", "AUTH: WRONGPASS
 * ...") when the server cannot be used now. */
redisContext *rs_connect(const struct rs_options *o, char *err, size_t errlen);

/* 1 when an idle connection is dead or out of step: the server closed it
 * (restart, timeout) or sent bytes nobody asked for. Never blocks. */
int rs_conn_stale(const redisContext *c);

/* 1 for a Redis error reply that means "try again later" (LOADING,
 * BUSY, TRYAGAIN, MASTERDOWN, CLUSTERDOWN, READONLY, NOREPLICAS,
 * MISCONF, OOM), not a fault of the item. */
int rs_error_is_transient(const char *msg, size_t len);

#endif
