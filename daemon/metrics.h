/*
 * metrics.h - the Prometheus endpoint: libevent's HTTP server (evhttp)
 * on the loop, on a loopback TCP port or a Unix socket ([daemon]
 * metrics_listen), answering GET /metrics with prom.c's text. Off when
 * metrics_listen is unset.
 */
#ifndef BD_METRICS_H
#define BD_METRICS_H

#include <stddef.h>

struct bd_server;
struct bd_metrics;

/* Listen on addr ("HOST:PORT" or "unix:/path", as config.c checked it).
 * Returns the endpoint (free with bd_metrics_free) or NULL with err. */
struct bd_metrics *bd_metrics_start(struct bd_server *srv, const char *addr,
                                    char *err, size_t errlen);

/* Close the listener and every scrape connection; removes the Unix
 * socket file it made. NULL is fine. */
void bd_metrics_free(struct bd_metrics *m);

#endif
