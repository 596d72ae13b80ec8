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

struct bd_gen;

/*
 * Set up the loop, the sinks' workers and the listening socket (or the
 * one systemd passed). Takes gen (the first config generation and its
 * loaded sinks, gen.h). Returns a new server (free with bd_server_free)
 * or NULL with err. Set load_cfg/load_arg/sink_dir for reloads.
 */
struct bd_server *bd_server_new(struct bd_gen *gen, char *err, size_t errlen);

/* Run until shutdown completes. Returns the exit code. */
int bd_server_run(struct bd_server *srv);

void bd_server_free(struct bd_server *srv);

#endif
