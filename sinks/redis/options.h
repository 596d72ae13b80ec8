/*
 * options.h - the redis sink's [sink.NAME] options, parsed and checked
 * at init (every option is documented in sinks/README.md).
 */
#ifndef RS_OPTIONS_H
#define RS_OPTIONS_H

#include <stddef.h>

#include "batchd_sink.h"
#include "template.h"

/* What a nil reply becomes. */
enum rs_missing {
    RS_MISSING_EMPTY = 0,     /* OK with an empty payload */
    RS_MISSING_FAIL = 1,      /* FAIL "not found" */
};

struct rs_options {
    char *socket;             /* Unix socket path, or NULL for TCP; owned */
    char *host;               /* TCP host (default 127.0.0.1); owned */
    int port;                 /* TCP port (default 6379) */
    char *username;           /* AUTH user (Redis 6 ACL), NULL: none; owned */
    char *password;           /* AUTH password, NULL: no AUTH; owned */
    int db;                   /* SELECT db when not 0 */
    struct rs_template command; /* the parsed `command`; owned */
    char *command_text;       /* `command` as written, for logs; owned */
    int transaction;          /* 1: MULTI ... EXEC around each batch */
    size_t pool_size;         /* connections at most */
    int missing;              /* enum rs_missing */
    int connect_timeout_ms;   /* bound on connect + AUTH + SELECT */
    int command_timeout_ms;   /* bound on each socket read/write, 0 = none */
    int pool_wait_ms;         /* how long acquire waits for a free connection */
    char where[300];          /* "unix:/path" or "host:port", for logs */
};

/* The option table the daemon checks config keys against. */
extern const struct batchd_sink_option rs_option_table[];

/*
 * Fill o from the section's key/values (borrowed). Returns 0, or -1 with
 * one line in err naming the option (o then owns nothing).
 */
int rs_options_parse(struct rs_options *o, const struct batchd_kv *kv,
                     size_t nkv, char *err, size_t errlen);

/* Free what o owns. */
void rs_options_destroy(struct rs_options *o);

#endif
