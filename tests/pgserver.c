/*
 * pgserver.c - a throwaway PostgreSQL server (see pgserver.h).
 */
#include <errno.h>
#include <ftw.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pgserver.h"

struct bd_pg {
    char dir[128];            /* temporary directory: data/, socket, log */
    char data[160];           /* <dir>/data */
    char log[160];            /* <dir>/server.log */
    char bin[256];            /* directory of initdb and pg_ctl */
    char conninfo[256];       /* how clients reach it */
    char nowhere[256];        /* a conninfo that reaches nothing */
    uid_t uid;                /* the server's user (nobody when root) */
    gid_t gid;
    int as_other;             /* run commands through setpriv */
    int running;              /* started and not stopped */
};

/*
 * Run bin/prog with args (NULL-terminated), as the server's user, output
 * to the server log. Returns its exit code, or -1.
 */
static int run(struct bd_pg *s, const char *prog, const char *const *args)
{
    const char *argv[32];
    char path[320], ru[32], rg[32];
    int n = 0, status;
    pid_t pid;

    snprintf(path, sizeof(path), "%s/%s", s->bin, prog);
    if (s->as_other) {
        snprintf(ru, sizeof(ru), "--reuid=%u", (unsigned)s->uid);
        snprintf(rg, sizeof(rg), "--regid=%u", (unsigned)s->gid);
        argv[n++] = "setpriv";
        argv[n++] = ru;
        argv[n++] = rg;
        argv[n++] = "--clear-groups";
        argv[n++] = "--";
    }
    argv[n++] = path;
    for (int i = 0; args[i] != NULL && n < 31; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        FILE *f = fopen(s->log, "a");

        /* The server outlives us: no pipes of ours, stdin from nowhere. */
        if (f != NULL) {
            dup2(fileno(f), 1);
            dup2(fileno(f), 2);
        }
        if (freopen("/dev/null", "r", stdin) == NULL)
            _exit(126);
        execvp(argv[0], (char *const *)argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Print the server log to stderr, to explain a failure. */
static void show_log(const struct bd_pg *s, const char *what)
{
    char line[512];
    FILE *f = fopen(s->log, "r");

    fprintf(stderr, "pgserver: %s failed; %s:\n", what, s->log);
    while (f != NULL && fgets(line, sizeof(line), f) != NULL)
        fprintf(stderr, "  %s", line);
    if (f != NULL)
        fclose(f);
}

/* Settings appended to postgresql.conf (kept across restarts). */
static int configure(struct bd_pg *s)
{
    char path[200];
    FILE *f;

    snprintf(path, sizeof(path), "%s/postgresql.conf", s->data);
    f = fopen(path, "a");
    if (f == NULL)
        return -1;
    fprintf(f, "\n# throwaway test server (tests/pgserver.c)\n"
            "listen_addresses = ''\nunix_socket_directories = '%s'\n"
            "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
            "max_connections = 100\nshared_buffers = 128MB\n", s->dir);
    return fclose(f);
}

/* Who runs the server: nobody when we are root. */
static int pick_user(struct bd_pg *s)
{
    struct passwd *pw;

    s->uid = getuid();
    s->gid = getgid();
    if (geteuid() != 0)
        return 0;
    pw = getpwnam("nobody");
    if (pw == NULL) {
        fprintf(stderr, "pgserver: running as root and there is no user 'nobody'\n");
        return -1;
    }
    s->uid = pw->pw_uid;
    s->gid = pw->pw_gid;
    s->as_other = 1;
    return chown(s->dir, s->uid, s->gid);
}

/* The log, made now so that both we and the server's user can append. */
static int make_log(struct bd_pg *s)
{
    FILE *f = fopen(s->log, "a");

    if (f == NULL)
        return -1;
    fclose(f);
    return chown(s->log, s->uid, s->gid);
}

struct bd_pg *bd_pg_new(void)
{
    const char *bin = getenv("BATCHD_PG_BIN");
    const char *tmp = getenv("TMPDIR");
    struct bd_pg *s = calloc(1, sizeof(*s));
    char initdb[320];

    if (s == NULL)
        return NULL;
    snprintf(s->bin, sizeof(s->bin), "%s",
             bin != NULL && *bin != '\0' ? bin : "/usr/lib/postgresql/15/bin");
    snprintf(initdb, sizeof(initdb), "%s/initdb", s->bin);
    if (access(initdb, X_OK) != 0) {
        fprintf(stderr, "pgserver: no %s (install postgresql)\n", initdb);
        free(s);
        return NULL;
    }
    /* Short: the socket path <dir>/.s.PGSQL.5432 must fit sun_path. */
    snprintf(s->dir, sizeof(s->dir), "%s/pg.XXXXXX",
             tmp != NULL && *tmp != '\0' && strlen(tmp) < 60 ? tmp : "/tmp");
    if (mkdtemp(s->dir) == NULL || chmod(s->dir, 0755) != 0) {
        fprintf(stderr, "pgserver: mkdtemp %s: %s\n", s->dir, strerror(errno));
        free(s);
        return NULL;
    }
    snprintf(s->data, sizeof(s->data), "%s/data", s->dir);
    snprintf(s->log, sizeof(s->log), "%s/server.log", s->dir);
    snprintf(s->conninfo, sizeof(s->conninfo),
             "host=%s port=5432 dbname=postgres user=postgres", s->dir);
    snprintf(s->nowhere, sizeof(s->nowhere),
             "host=%s/nowhere port=5432 dbname=postgres user=postgres", s->dir);
    if (pick_user(s) != 0 || make_log(s) != 0) {
        fprintf(stderr, "pgserver: cannot hand %s to uid %u: %s\n", s->dir,
                (unsigned)s->uid, strerror(errno));
        goto out_free;
    }
    {
        const char *args[] = { "-D", s->data, "-U", "postgres", "-A", "trust",
                               "-E", "UTF8", "--locale=C", "--no-sync", NULL };

        if (run(s, "initdb", args) != 0 || configure(s) != 0) {
            show_log(s, "initdb");
            goto out_free;
        }
    }
    if (bd_pg_start(s) != 0)
        goto out_free;
    return s;

out_free:
    bd_pg_free(s);
    return NULL;
}

static int ctl(struct bd_pg *s, const char *verb)
{
    const char *args[] = { verb, "-D", s->data, "-l", s->log, "-w", "-t", "60",
                           "-m", "fast", NULL };

    /* "-m" means nothing to start: leave it off there. */
    if (strcmp(verb, "start") == 0)
        args[8] = NULL;
    if (run(s, "pg_ctl", args) != 0) {
        show_log(s, verb);
        return -1;
    }
    s->running = strcmp(verb, "stop") != 0;
    return 0;
}

int bd_pg_stop(struct bd_pg *s)
{
    return ctl(s, "stop");
}

int bd_pg_start(struct bd_pg *s)
{
    return ctl(s, "start");
}

int bd_pg_restart(struct bd_pg *s)
{
    return ctl(s, "restart");
}

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void bd_pg_free(struct bd_pg *s)
{
    if (s == NULL)
        return;
    if (s->running)
        (void)bd_pg_stop(s);
    if (getenv("BATCHD_TEST_KEEP") == NULL)
        nftw(s->dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    free(s);
}

const char *bd_pg_conninfo(const struct bd_pg *s)
{
    return s->conninfo;
}

const char *bd_pg_conninfo_nowhere(const struct bd_pg *s)
{
    return s->nowhere;
}
