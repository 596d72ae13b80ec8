/*
 * server.h - the daemon's one event loop and everything it owns:
 * listening socket, connections, keys, sinks, workers, counters, and
 * the shutdown sequence (top layer; struct bd_server is in state.h).
 */
#ifndef BD_SERVER_H
#define BD_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "state.h"

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

#endif
