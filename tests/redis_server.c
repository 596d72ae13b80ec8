/*
 * redis_server.c - start, stop and restart a real redis-server for a
 * suite (see redis_server.h).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include <check.h>

#include "helpers.h"
#include "redis_server.h"

struct bd_test_redis {
    char dir[64];             /* mkdtemp directory, removed on free */
    char sock[96];            /* <dir>/redis.sock */
    char log[96];             /* <dir>/redis.log: the server's output */
    char *password;           /* --requirepass, NULL for none; owned */
    pid_t pid;                /* the running server, 0 when stopped */
    char port[8];             /* TCP port on 127.0.0.1, "0" for none */
};

static int in_path(const char *name)
{
    char cmd[128];

    snprintf(cmd, sizeof(cmd), "command -v %s >/dev/null 2>&1", name);
    return system(cmd) == 0;
}

int bd_test_redis_installed(void)
{
    return in_path("redis-server") && in_path("redis-cli");
}

struct bd_test_redis *bd_test_redis_new(const char *password)
{
    struct bd_test_redis *r = calloc(1, sizeof(*r));

    ck_assert_ptr_nonnull(r);
    snprintf(r->dir, sizeof(r->dir), "/tmp/bdt-redis.XXXXXX");
    ck_assert_msg(mkdtemp(r->dir) != NULL, "mkdtemp: %s", strerror(errno));
    snprintf(r->sock, sizeof(r->sock), "%s/redis.sock", r->dir);
    snprintf(r->log, sizeof(r->log), "%s/redis.log", r->dir);
    snprintf(r->port, sizeof(r->port), "0");
    if (password != NULL)
        ck_assert_ptr_nonnull(r->password = strdup(password));
    bd_test_track_dir(r->dir, 1);
    return r;
}

/* Does the server answer on its socket? Any reply line will do (with
 * requirepass, PING is answered -NOAUTH, which still means "up"). */
static int answers(const struct bd_test_redis *r)
{
    int fd = bd_test_unix_connect(r->sock);
    char line[64];
    ssize_t n = -1;

    if (fd < 0)
        return 0;
    if (bd_test_raw_write(fd, "PING\r\n", 6) == 0)
        n = read(fd, line, sizeof(line));
    close(fd);
    return n > 0 && (line[0] == '+' || line[0] == '-') &&
           (n < 8 || memcmp(line, "-LOADING", 8) != 0);
}

void bd_test_redis_start(struct bd_test_redis *r)
{
    const char *argv[24] = {
        "redis-server", "--port", r->port, "--bind", "127.0.0.1", "--unixsocket", r->sock,
        "--unixsocketperm", "700", "--save", "", "--appendonly", "no",
        "--dir", r->dir, "--dbfilename", "dump.rdb", "--daemonize", "no",
    };
    int n = 19;
    double end;

    if (r->password != NULL) {
        argv[n++] = "--requirepass";
        argv[n++] = r->password;
    }
    argv[n] = NULL;
    ck_assert_int_eq(r->pid, 0);
    r->pid = bd_test_spawn(argv, r->log);
    end = bd_test_now_ms() + bd_test_scaled(10000);
    while (!answers(r)) {
        if (bd_test_wait_pid(r->pid, 0) != -1 || bd_test_now_ms() > end) {
            char *log = bd_test_read_file(r->log, NULL);

            ck_abort_msg("redis-server did not come up:\n%s", log ? log : "");
        }
        usleep(10000);
    }
}

int bd_test_redis_listen_tcp(struct bd_test_redis *r)
{
    struct sockaddr_in a = { .sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port;

    /* A port the kernel just handed out is free; another process could
     * take it before redis-server binds, which the start then reports. */
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    port = ntohs(a.sin_port);
    close(fd);
    snprintf(r->port, sizeof(r->port), "%d", port);
    return port;
}

struct bd_test_redis *bd_test_redis_up(const char *password)
{
    struct bd_test_redis *r = bd_test_redis_new(password);

    bd_test_redis_start(r);
    return r;
}

void bd_test_redis_stop(struct bd_test_redis *r, int save)
{
    const char *argv[12] = { "redis-cli", "-s", r->sock };
    int n = 3, code;

    if (r->pid == 0)
        return;
    if (r->password != NULL) {
        argv[n++] = "--no-auth-warning";
        argv[n++] = "-a";
        argv[n++] = r->password;
    }
    argv[n++] = "shutdown";
    argv[n++] = save ? "save" : "nosave";
    argv[n] = NULL;
    /* redis-cli may report the lost connection: only the exit counts. */
    bd_test_run(argv, 10000, NULL, NULL);
    code = bd_test_wait_pid(r->pid, 10000);
    if (code == -1) {
        kill(r->pid, SIGKILL);
        bd_test_wait_pid(r->pid, 5000);
    }
    r->pid = 0;
    ck_assert_msg(code == 0, "redis-server exited %d after SHUTDOWN", code);
}

void bd_test_redis_free(struct bd_test_redis *r)
{
    if (r == NULL)
        return;
    if (r->pid != 0) {
        kill(r->pid, SIGKILL);
        bd_test_wait_pid(r->pid, 5000);
    }
    bd_test_track_dir(r->dir, 0);
    if (getenv("BATCHD_TEST_KEEP") == NULL)
        bd_test_remove_tree(r->dir);
    free(r->password);
    free(r);
}

const char *bd_test_redis_socket(const struct bd_test_redis *r)
{
    return r->sock;
}

const char *bd_test_redis_dir(const struct bd_test_redis *r)
{
    return r->dir;
}
