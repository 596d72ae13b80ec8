/*
 * httpd.h - a small scripted HTTP server for the http sink's suite and
 * benchmark (tests/check_http.c, bench/httpbench.c), built on libevent's
 * evhttp. It runs in a forked child process (a real server on a real
 * socket, no threads in the caller), answers request i with script step
 * i (then the default step), and appends every request it received to a
 * record file that the caller reads afterwards.
 *
 * No Check asserts here: the benchmark links it too. Functions return
 * NULL / -1 on failure with a line on stderr.
 */
#ifndef BD_TEST_HTTPD_H
#define BD_TEST_HTTPD_H

#include <stddef.h>
#include <sys/types.h>

/* How to answer one request. */
struct bd_httpd_step {
    int status;               /* HTTP status; 0 = a per-item reply (below) */
    int delay_ms;             /* answer this much later (other requests go on) */
    const char *retry_after;  /* Retry-After value, NULL = no header */
    const char *body;         /* response body, NULL = empty */
    int drop;                 /* close the connection, no answer at all */
};

/*
 * The per-item reply (status 0) answers 200 with a JSON array, one
 * element per item of the request body (NDJSON lines, or the elements
 * of a JSON array), by the item's text:
 *   contains "bad"    {"status": 400, "error": "bad item"}
 *   contains "later"  {"status": 429}
 *   else              {"status": 201, "body": "ok:<the item's text>"}
 */

struct bd_httpd_conf {
    const char *unix_path;    /* listen here; NULL = 127.0.0.1, a free port */
    const struct bd_httpd_step *script; /* answers for requests 1..nscript */
    size_t nscript;
    struct bd_httpd_step dflt; /* every later request (status 0 -> 200 if
                                * dflt_items is 0) */
    int dflt_items;           /* the default answer is the per-item reply */
    const char *record;       /* append each request here; NULL = none */
};

struct bd_httpd;

/* Fork the server and wait until it listens (10 s). NULL on failure. */
struct bd_httpd *bd_httpd_start(const struct bd_httpd_conf *c);

/* "http://127.0.0.1:PORT" or, for a Unix socket, "http://localhost". */
const char *bd_httpd_base_url(const struct bd_httpd *h);

/* SIGTERM the server, wait for it, free h. Returns its exit code (0 =
 * clean), or -1. */
int bd_httpd_stop(struct bd_httpd *h);

/* ---- the record --------------------------------------------------------- */

/* One request as the server received it. */
struct bd_httpd_req {
    unsigned seq;             /* 1, 2, ... in arrival order */
    unsigned conn;            /* connection number, 1, 2, ... */
    double t_ms;              /* arrival, CLOCK_MONOTONIC ms (bd_test_now_ms) */
    int answer;               /* status answered, 0 = dropped */
    char method[16];
    char uri[256];
    char *headers;            /* "Name: value\n" lines; owned */
    char *body;               /* NUL-terminated copy; owned */
    size_t len;               /* body bytes */
};

/* Read the record at path: the number of requests (array in *out, free
 * with bd_httpd_reqs_free), 0 for a missing file, -1 when it does not
 * parse. */
long bd_httpd_read(const char *path, struct bd_httpd_req **out);
void bd_httpd_reqs_free(struct bd_httpd_req *r, long n);

/* The value of header name (case-insensitive) of r in buf, or NULL. */
const char *bd_httpd_header(const struct bd_httpd_req *r, const char *name,
                            char *buf, size_t n);

#endif
