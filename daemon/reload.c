/*
 * reload.c - re-reading the configuration on SIGHUP or `batchctl
 * reload` (server layer; declared in state.h for control.c).
 *
 * Everything is read, checked and loaded first: the file, the access
 * lists, every new or changed sink (gen.c). Any error leaves the running
 * configuration as it was and is returned word for word. Then, in one
 * step on the loop thread: the new generation becomes current, every
 * key moves to the route its name matches now (batch.c), the old
 * generation is released (its removed sinks shut down after their last
 * call). Options that only a restart can change keep their running
 * values and are named in the report.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <systemd/sd-daemon.h>

#include "access.h"
#include "alloc.h"
#include "batch.h"
#include "gen.h"
#include "log.h"
#include "series.h"
#include "server.h"
#include "sink.h"

/* Append to the report (truncated silently: it is a message). */
static void note(char *out, size_t outlen, const char *fmt, ...)
{
    size_t n = strlen(out);
    va_list ap;

    if (n + 1 >= outlen)
        return;
    va_start(ap, fmt);
    vsnprintf(out + n, outlen - n, fmt, ap);
    va_end(ap);
}

static int str_differs(const char *a, const char *b)
{
    return (a == NULL) != (b == NULL) || (a && strcmp(a, b) != 0);
}

/* A string option only a restart applies: cfg keeps a copy of the
 * running value (the running config itself is never touched, so a
 * failed reload leaves it as it was). Returns 0, or -1 without memory. */
static int keep_str(const char *now, char **file, const char *name,
                    char *out, size_t outlen)
{
    char *copy = NULL;

    if (!str_differs(now, *file))
        return 0;
    if (now != NULL && (copy = bd_strdup(now)) == NULL)
        return -1;
    note(out, outlen, "%s: changed to %s; needs a restart (still %s)\n", name,
         *file ? *file : "(unset)", now ? now : "(unset)");
    bd_free(*file);
    *file = copy;
    return 0;
}

static void keep_u32(uint32_t now, uint32_t *file, const char *name,
                     const char *fmt, char *out, size_t outlen)
{
    char a[32], b[32];

    if (now == *file)
        return;
    snprintf(a, sizeof(a), fmt, *file);
    snprintf(b, sizeof(b), fmt, now);
    note(out, outlen, "%s: changed to %s; needs a restart (still %s)\n", name,
         a, b);
    *file = now;
}

/* The [daemon] options the running daemon cannot change: the socket
 * (bound or passed by systemd), the worker threads, the metrics
 * listener. cfg gets their running values. Returns 0 or -1 (memory). */
static int keep_restart_only(const struct bd_config *now,
                             struct bd_config *cfg, char *out, size_t outlen)
{
    keep_u32(now->socket_mode, &cfg->socket_mode, "socket_mode", "%04o", out,
             outlen);
    keep_u32(now->max_concurrency, &cfg->max_concurrency, "max_concurrency",
             "%u", out, outlen);
    return keep_str(now->socket, &cfg->socket, "socket", out, outlen) |
           keep_str(now->socket_group, &cfg->socket_group, "socket_group",
                    out, outlen) |
           keep_str(now->metrics_listen, &cfg->metrics_listen,
                    "metrics_listen", out, outlen);
}

/* One log line per report line. */
static void log_report(int level, const char *what, const char *report)
{
    for (const char *p = report; *p;) {
        size_t n = strcspn(p, "\n");

        bd_log(level, "%s: %.*s", what, (int)n, p);
        p += n + (p[n] == '\n');
    }
}

static void notify_ready(void)
{
    sd_notify(0, "READY=1");
}

/* The swap itself: cannot fail. */
static void commit(struct bd_server *srv, struct bd_gen *gen,
                   struct bd_access *access)
{
    struct bd_gen *old = srv->core.gen;

    srv->core.gen = gen;
    srv->core.cfg = gen->cfg;
    srv->core.sinks = gen->sinks;
    srv->cfg = gen->cfg;
    bd_access_free(srv->access);
    srv->access = access;
    bd_log_set_level(gen->cfg->log_level);
    bd_batch_reroute(&srv->core);
    bd_gen_release(&srv->core, old);
    bd_server_want_flush(srv);
}

int bd_server_reload(struct bd_server *srv, char *out, size_t outlen)
{
    struct bd_config *cfg;
    struct bd_access *access;
    struct bd_gen *gen;
    struct timespec ts;
    char *errs = NULL, err[512] = "";

    out[0] = '\0';
    if (srv->core.state == BD_STATE_STOPPING) {
        note(out, outlen, "the daemon is stopping; nothing reloaded\n");
        log_report(BATCHD_LOG_WARN, "reload refused", out);
        return -1;
    }
    clock_gettime(CLOCK_MONOTONIC, &ts);
    sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu",
               (unsigned long long)ts.tv_sec * 1000000ull +
               (unsigned long long)ts.tv_nsec / 1000);
    bd_log_info("reload: reading %s", srv->cfg->path);
    cfg = srv->load_cfg(srv->load_arg, &errs);
    if (cfg == NULL) {
        note(out, outlen, "%s", errs ? errs : "out of memory reading the config\n");
        bd_free(errs);
        goto fail;
    }
    if (keep_restart_only(srv->cfg, cfg, out, outlen) != 0)
        snprintf(err, sizeof(err), "out of memory");
    access = err[0] ? NULL : bd_access_new(cfg, err, sizeof(err));
    if (access == NULL) {
        bd_config_free(cfg);
        out[0] = '\0';
        note(out, outlen, "%s\n", err);
        goto fail;
    }
    gen = bd_gen_new(cfg, srv->core.gen, srv->sink_dir, err, sizeof(err));
    if (gen == NULL || bd_series_bind(&srv->core, gen) != 0) {
        if (gen == NULL) { /* err says why */
            bd_config_free(cfg);
        } else {
            snprintf(err, sizeof(err), "out of memory for the counters");
            bd_gen_release(NULL, gen); /* frees cfg; new sinks never served */
        }
        bd_access_free(access);
        out[0] = '\0';
        note(out, outlen, "%s\n", err);
        goto fail;
    }
    commit(srv, gen, access);
    note(out, outlen, "reloaded %s: %zu routes, %zu sinks (%u kept running, "
         "%zu started)\n", gen->cfg->path, gen->cfg->nroutes,
         gen->cfg->nsinks, gen->nkept, gen->cfg->nsinks - gen->nkept);
    log_report(BATCHD_LOG_INFO, "reload", out);
    notify_ready();
    return 0;

fail:
    log_report(BATCHD_LOG_ERROR,
               "reload failed, the running configuration stays", out);
    notify_ready();
    return -1;
}
