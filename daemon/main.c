/*
 * main.c - batchd: arguments, config, sinks, signals, then the loop.
 * No protocol or batching logic lives here.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "config.h"
#include "gen.h"
#include "isolate.h"
#include "log.h"
#include "server.h"
#include "sink.h"

struct opts {
    const char *config;       /* -c */
    const char *socket;       /* --socket overrides [daemon] socket */
    const char *sink_dir;     /* --sink-dir overrides [daemon] sink_dir */
    const char *log_level;    /* --log-level overrides [daemon] log_level */
    int check_only;           /* --check-config */
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: batchd -c FILE [options]\n"
            "  -c, --config FILE     configuration file (INI)\n"
            "  -s, --socket PATH     listen here instead of [daemon] socket\n"
            "      --sink-dir DIR    find bare plugin names here\n"
            "      --log-level L     error, warn, info or debug\n"
            "      --check-config    validate FILE and the sinks it names, print\n"
            "                        the effective configuration, and exit\n"
            "  -V, --version         print the version\n"
            "  -h, --help            this text\n");
}

static int parse_args(int argc, char **argv, struct opts *o)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"socket", required_argument, NULL, 's'},
        {"sink-dir", required_argument, NULL, 'd'},
        {"log-level", required_argument, NULL, 'l'},
        {"check-config", no_argument, NULL, 'k'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int ch;

    while ((ch = getopt_long(argc, argv, "c:s:Vh", longopts, NULL)) != -1) {
        switch (ch) {
        case 'c': o->config = optarg; break;
        case 's': o->socket = optarg; break;
        case 'd': o->sink_dir = optarg; break;
        case 'l': o->log_level = optarg; break;
        case 'k': o->check_only = 1; break;
        case 'V': printf("batchd %s\n", BD_VERSION); exit(0);
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); return -1;
        }
    }
    if (o->config == NULL || optind != argc) {
        usage(stderr);
        return -1;
    }
    return 0;
}

static int parse_level(const char *s)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};

    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

/* Command-line overrides win over the file. */
static int apply_overrides(struct bd_config *cfg, const struct opts *o)
{
    if (o->socket != NULL) {
        char *s = bd_strdup(o->socket);

        if (s == NULL)
            return -1;
        bd_free(cfg->socket);
        cfg->socket = s;
    }
    if (o->log_level != NULL) {
        int lvl = parse_level(o->log_level);

        if (lvl < 0) {
            fprintf(stderr, "batchd: --log-level %s: expected error, warn, "
                    "info or debug\n", o->log_level);
            return -1;
        }
        cfg->log_level = lvl;
    }
    return 0;
}

/* The file with the command line's overrides: at start-up and for
 * every reload (server.h: load_cfg), so both read it the same way. */
static struct bd_config *load_config(void *arg, char **errs)
{
    const struct opts *o = arg;
    struct bd_config *cfg = bd_config_load(o->config, errs);

    if (cfg != NULL && apply_overrides(cfg, o) != 0) {
        bd_config_free(cfg);
        *errs = bd_strdup("batchd: the command line's overrides failed\n");
        return NULL;
    }
    return cfg;
}

static int check_config(struct bd_config *cfg, const struct opts *o)
{
    char err[512];

    if (bd_sink_check_all(cfg, o->sink_dir, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s: %s\n", cfg->path, err);
        return 1;
    }
    bd_config_print(cfg, stdout);
    fprintf(stderr, "%s: configuration is valid\n", cfg->path);
    return 0;
}

int main(int argc, char **argv)
{
    struct opts o = {0};
    struct bd_config *cfg;
    struct bd_gen *gen;
    struct bd_server *srv;
    char *errs = NULL;
    char err[512];
    int rc;

    /* A sink runner child (isolate.c) is this binary too. */
    if (argc > 1 && strcmp(argv[1], "--sink-runner") == 0)
        return bd_runner_main(argc, argv);
    if (parse_args(argc, argv, &o) != 0)
        return 2;
    cfg = load_config(&o, &errs);
    if (cfg == NULL) {
        fprintf(stderr, "%s", errs ? errs : "batchd: out of memory reading the config\n");
        bd_free(errs);
        return 1;
    }
    if (o.check_only) {
        rc = check_config(cfg, &o);
        bd_config_free(cfg);
        return rc;
    }
    bd_log_set_level(cfg->log_level);
    signal(SIGPIPE, SIG_IGN);
    gen = bd_gen_new(cfg, NULL, o.sink_dir, err, sizeof(err)); /* takes cfg */
    if (gen == NULL) {
        bd_log_error("%s", err);
        bd_config_free(cfg);
        return 1;
    }
    srv = bd_server_new(gen, err, sizeof(err)); /* takes gen */
    if (srv == NULL) {
        bd_log_error("%s", err);
        return 1;
    }
    srv->load_cfg = load_config;
    srv->load_arg = &o;
    srv->sink_dir = o.sink_dir;
    rc = bd_server_run(srv);
    bd_server_free(srv);
    return rc;
}
