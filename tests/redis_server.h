/*
 * redis_server.h - a throwaway redis-server for the suites (Debian's
 * redis-server package): its own temporary directory, a Unix socket
 * <dir>/redis.sock, no TCP port unless asked (bd_test_redis_listen_tcp),
 * no persistence unless asked (SHUTDOWN SAVE writes <dir>/dump.rdb,
 * which the next start loads).
 *
 * Test-process only (asserts through Check). No hiredis here: every
 * suite links the test helpers, and only check_redis links hiredis.
 */
#ifndef BD_TEST_REDIS_SERVER_H
#define BD_TEST_REDIS_SERVER_H

struct bd_test_redis;

/* 1 when redis-server and redis-cli are in PATH. */
int bd_test_redis_installed(void);

/* Make the directory; start nothing yet. password (may be NULL) becomes
 * --requirepass and is used by _stop. */
struct bd_test_redis *bd_test_redis_new(const char *password);

/* Also listen on TCP 127.0.0.1 at a free port (call before _start).
 * Returns the port. */
int bd_test_redis_listen_tcp(struct bd_test_redis *r);

/* Start the server and wait (10 s) until it answers on its socket. */
void bd_test_redis_start(struct bd_test_redis *r);

/* new + start. */
struct bd_test_redis *bd_test_redis_up(const char *password);

/* redis-cli SHUTDOWN SAVE (save 1: keep the data for the next start) or
 * NOSAVE, and wait for the exit. */
void bd_test_redis_stop(struct bd_test_redis *r, int save);

/* Stop the server if it runs (NOSAVE), remove the directory, free. */
void bd_test_redis_free(struct bd_test_redis *r);

const char *bd_test_redis_socket(const struct bd_test_redis *r);
const char *bd_test_redis_dir(const struct bd_test_redis *r);

#endif
