/*
 * main.c - batchd: arguments, config, sinks, signals, then the loop.
 * No protocol or batching logic lives here.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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
            "      --dump-options    print the option table (section, name, type,\n"
            "                        default, range, help; tab-separated) and exit\n"
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
        {"dump-options", no_argument, NULL, 'D'},
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
        case 'D': exit(bd_config_dump_options(stdout) == 0 ? 0 : 1);
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
static int replace_str(char **field, const char *value)
{
    char *s;

    if (value == NULL)
        return 0;
    s = bd_strdup(value);
    if (s == NULL)
        return -1;
    bd_free(*field);
    *field = s;
    return 0;
}

static int apply_overrides(struct bd_config *cfg, const struct opts *o)
{
    /* --sink-dir goes into the config too, so --check-config prints
     * the directory actually searched. */
    if (replace_str(&cfg->socket, o->socket) != 0 ||
        replace_str(&cfg->sink_dir, o->sink_dir) != 0)
        return -1;
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

/*
 * Run from a build tree (build/batchd beside build/sinks/) without
 * --sink-dir, the sinks are looked for where an install would put them:
 * say where the freshly built ones are. Prints nothing otherwise.
 */
static void hint_build_sinks(const struct bd_config *cfg, const struct opts *o)
{
    char exe[4096], dir[4200];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    char *slash;
    struct stat st;

    if (o->sink_dir != NULL || n <= 0)
        return;
    exe[n] = '\0';
    slash = strrchr(exe, '/');
    if (slash == NULL)
        return;
    *slash = '\0';
    snprintf(dir, sizeof(dir), "%s/sinks", exe);
    if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode) &&
        strcmp(dir, cfg->sink_dir) != 0)
        fprintf(stderr, "batchd: sinks are looked up in %s (sink_dir); this "
                "batchd runs from a build tree: add --sink-dir %s\n",
                cfg->sink_dir, dir);
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
        hint_build_sinks(cfg, o);
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
        hint_build_sinks(cfg, &o);
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
