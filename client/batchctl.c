/*
 * batchctl.c - the batchd command line: one request per run (ping, load,
 * send, stats and the other CONTROL commands), and bench (ctl_bench.c).
 *
 * Everything goes through libbatchd's blocking calls, so batchctl is
 * also the simplest example of the library in use.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "batchd.h"
#include "buf.h"
#include "ctl_bench.h"
#include "ctl_top.h"

#define CTL_DEFAULT_TIMEOUT_MS 10000

/* What every command needs from the global options. */
struct ctl {
    const char *socket;       /* NULL: $BATCHD_SOCKET, then the default */
    int timeout_ms;           /* connect and each wait; 0 = forever */
};

struct ctl_cmd {
    const char *name;
    int (*run)(const struct ctl *ctl, int argc, char **argv);
};

static void usage(FILE *f)
{
    fprintf(f,
        "usage: batchctl [-s SOCKET] [-t TIMEOUT_MS] COMMAND [ARGS]\n"
        "\n"
        "  -s, --socket SOCKET   daemon socket (default $BATCHD_SOCKET, else\n"
        "                        " BATCHD_DEFAULT_SOCKET ")\n"
        "  -t, --timeout MS      connect and reply timeout (default %d, 0 = none)\n"
        "  -V, --version         print the version\n"
        "  -h, --help            this text\n"
        "\n"
        "commands:\n"
        "  ping                  check that the daemon answers\n"
        "  load KEY [DATA]       LOAD one item and write the result to stdout\n"
        "                        (with a newline added on a terminal)\n"
        "  send KEY [DATA]       SEND one item (fire and forget)\n"
        "        DATA is read from stdin when omitted or \"-\"; options:\n"
        "        --deadline-ms N   give up after N ms\n"
        "        --priority N      priority lane 0..255 (higher goes first)\n"
        "  stats [--json]        counters, histograms and (admins) per-key lines;\n"
        "                        control bytes in keys are shown as \\xNN\n"
        "  health [--json]       daemon state and each sink's (ok, unhealthy)\n"
        "  pause | resume        stop / restart dispatching batches to sinks\n"
        "  drain                 stop gracefully: flush every batch, answer\n"
        "                        everything, exit (as SIGTERM; admin only)\n"
        "  reload                re-read the daemon's config file (as SIGHUP;\n"
        "                        admin only); errors leave the old one running\n"
        CTL_TOP_USAGE
        "  deadletters list      durable routes' dead letters, as JSON\n"
        "  deadletters resend    queue them again and remove them (admin only)\n"
        CTL_BENCH_USAGE
        "\n"
        "exit status: 0 OK/ACCEPTED, 1 another status (printed as\n"
        "\"STATUS: message\" on stderr), 2 usage error, 3 connection error\n",
        CTL_DEFAULT_TIMEOUT_MS);
}

static int usage_error(const char *cmd, const char *why)
{
    fprintf(stderr, "batchctl %s: %s\n", cmd, why);
    return CTL_EXIT_USAGE;
}

/* After a usage error: one line saying where the help is, not the help
 * itself, so the error stays on the screen. */
static void usage_hint(void)
{
    fprintf(stderr, "Try 'batchctl --help' for more information.\n");
}

/* Text from the daemon for a person's terminal: control bytes and DEL
 * (a key inside a message, say) as \xNN, so they cannot drive it. */
static void put_escaped(FILE *f, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];

        if ((ch < 0x20 && ch != '\n' && ch != '\t') || ch == 0x7f)
            fprintf(f, "\\x%02x", ch);
        else
            putc(ch, f);
    }
}

/* Returns a connected client, or NULL after printing why. */
static struct batchd_client *ctl_connect(const struct ctl *ctl)
{
    struct batchd_client *c = batchd_connect_unix(ctl->socket,
                                                  ctl->timeout_ms);

    if (c == NULL) {
        fprintf(stderr, "batchctl: out of memory\n");
        return NULL;
    }
    if (batchd_err(c) != BATCHD_ERR_NONE) {
        fprintf(stderr, "batchctl: %s\n", batchd_errstr(c));
        batchd_free(c);
        return NULL;
    }
    return c;
}

/* Print a reply the way every command does: OK/ACCEPTED bodies to
 * stdout (raw: the bytes as they are, ending the line only on a
 * terminal; else as a line of text), any other status to stderr.
 * Takes r. Returns the exit code. */
static int report(struct batchd_reply *r, int raw)
{
    int rc = CTL_EXIT_OK;
    int line = !raw || isatty(STDOUT_FILENO);

    if (r->status == BATCHD_OK || r->status == BATCHD_ACCEPTED) {
        if (r->data != NULL && r->len > 0) {
            if (raw)
                fwrite(r->data, 1, r->len, stdout);
            else
                put_escaped(stdout, r->data, r->len);
            if (line && ((const char *)r->data)[r->len - 1] != '\n')
                putchar('\n');
        }
    } else {
        fprintf(stderr, "%s: ", batchd_status_name(r->status));
        put_escaped(stderr, r->data ? (const char *)r->data : "", r->len);
        putc('\n', stderr);
        rc = CTL_EXIT_STATUS;
    }
    batchd_reply_free(r);
    if (fflush(stdout) != 0) {
        perror("batchctl: stdout");
        rc = CTL_EXIT_IO;
    }
    return rc;
}

/* One CONTROL round trip; kv as in batchd_control. */
static int control(const struct ctl *ctl, const char *cmd,
                   const char *const *kv, size_t nkv)
{
    struct batchd_client *c = ctl_connect(ctl);
    struct batchd_reply *r;
    int rc;

    if (c == NULL)
        return CTL_EXIT_IO;
    if (batchd_control(c, cmd, kv, nkv, ctl->timeout_ms, &r) != 0) {
        fprintf(stderr, "batchctl: %s\n", batchd_errstr(c));
        rc = CTL_EXIT_IO;
    } else {
        rc = report(r, 0);
    }
    batchd_free(c);
    return rc;
}

/* ping, pause, resume, drain, reload: a CONTROL named after the
 * command, without arguments. */
static int cmd_plain(const struct ctl *ctl, int argc, char **argv)
{
    if (argc > 1)
        return usage_error(argv[0], "takes no arguments");
    return control(ctl, argv[0], NULL, 0);
}

/* stats and health: text for people by default, JSON with --json. */
static int cmd_report(const struct ctl *ctl, int argc, char **argv)
{
    static const char *const text[] = { "format", "text" };
    static const char *const json[] = { "format", "json" };

    if (argc == 2 && strcmp(argv[1], "--json") == 0)
        return control(ctl, argv[0], json, 1);
    if (argc > 1)
        return usage_error(argv[0], "the only option is --json");
    return control(ctl, argv[0], text, 1);
}

/* The item to send: argv's DATA, or all of stdin. On success *data
 * points either into argv or into b (which the caller destroys). */
static int item_data(const char *arg, struct bd_buf *b, const void **data,
                     size_t *len)
{
    ssize_t n;

    if (arg != NULL && strcmp(arg, "-") != 0) {
        *data = arg;
        *len = strlen(arg);
        return 0;
    }
    for (;;) {
        if (bd_buf_reserve(b, 65536) != 0) {
            fprintf(stderr, "batchctl: out of memory reading stdin\n");
            return -1;
        }
        n = read(STDIN_FILENO, bd_buf_tail(b), bd_buf_room(b));
        if (n == 0)
            break;
        if (n < 0) {
            perror("batchctl: stdin");
            return -1;
        }
        b->len += (size_t)n;
    }
    *data = bd_buf_head(b);
    *len = b->len;
    return 0;
}

/* The options of load and send. Returns 0, or -1 after printing why. */
static int item_opts(int argc, char **argv, struct batchd_opts *o)
{
    static const struct option longopts[] = {
        { "deadline-ms", required_argument, NULL, 'D' },
        { "priority", required_argument, NULL, 'P' },
        { NULL, 0, NULL, 0 },
    };
    uint64_t v;
    int ch;

    optind = 0; /* GNU: rescan from argv[1] */
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        if (ch == 'D' && ctl_parse_num(optarg, 1, UINT32_MAX, &v) == 0) {
            o->deadline_ms = (uint32_t)v;
        } else if (ch == 'P' && ctl_parse_num(optarg, 0, 255, &v) == 0) {
            o->priority = (int)v;
        } else {
            if (ch == 'D' || ch == 'P')
                fprintf(stderr, "batchctl %s: bad number '%s'\n", argv[0],
                        optarg);
            return -1;
        }
    }
    return 0;
}

/* load and send: one item, blocking. */
static int cmd_item(const struct ctl *ctl, int argc, char **argv)
{
    int is_load = strcmp(argv[0], "load") == 0;
    struct batchd_opts opts = { 0 };
    struct batchd_client *c;
    struct batchd_reply *r;
    struct bd_buf in;
    const void *data;
    size_t len;
    int rc, nargs;

    if (item_opts(argc, argv, &opts) != 0)
        return CTL_EXIT_USAGE;
    nargs = argc - optind;
    if (nargs < 1 || nargs > 2)
        return usage_error(argv[0], "expects KEY [DATA]");
    bd_buf_init(&in);
    if (item_data(nargs == 2 ? argv[optind + 1] : NULL, &in, &data, &len)) {
        rc = CTL_EXIT_IO;
        goto out_free_input;
    }
    c = ctl_connect(ctl);
    if (c == NULL) {
        rc = CTL_EXIT_IO;
        goto out_free_input;
    }
    rc = (is_load ? batchd_load : batchd_send)(c, argv[optind], data, len,
                                               &opts, ctl->timeout_ms, &r);
    if (rc != BATCHD_CLIENT_OK) {
        fprintf(stderr, "batchctl: %s\n", batchd_errstr(c));
        rc = batchd_err(c) == BATCHD_ERR_ARG ? CTL_EXIT_USAGE : CTL_EXIT_IO;
    } else {
        rc = report(r, 1);
    }
    batchd_free(c);
out_free_input:
    bd_buf_destroy(&in);
    return rc;
}

/* deadletters list|resend: CONTROL "deadletters" with that action. */
static int cmd_deadletters(const struct ctl *ctl, int argc, char **argv)
{
    const char *kv[2] = {"action", argc == 2 ? argv[1] : ""};

    if (argc != 2 || (strcmp(argv[1], "list") != 0 &&
                      strcmp(argv[1], "resend") != 0))
        return usage_error(argv[0], "expects list or resend");
    return control(ctl, "deadletters", kv, 1);
}

static int cmd_bench(const struct ctl *ctl, int argc, char **argv)
{
    return ctl_bench(ctl->socket, ctl->timeout_ms, argc, argv);
}

static int cmd_top(const struct ctl *ctl, int argc, char **argv)
{
    return ctl_top(ctl->socket, ctl->timeout_ms, argc, argv);
}

static const struct ctl_cmd commands[] = {
    { "ping", cmd_plain },
    { "load", cmd_item },
    { "send", cmd_item },
    { "stats", cmd_report },
    { "health", cmd_report },
    { "pause", cmd_plain },
    { "resume", cmd_plain },
    { "drain", cmd_plain },
    { "reload", cmd_plain },
    { "deadletters", cmd_deadletters },
    { "bench", cmd_bench },
    { "top", cmd_top },
};

static const struct ctl_cmd *find_command(const char *name)
{
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

/* The global options, up to the command name. Returns the index of the
 * command in argv, 0 for --help or --version (done), or -1 on a usage
 * error. */
static int parse_global(int argc, char **argv, struct ctl *ctl)
{
    static const struct option longopts[] = {
        { "socket", required_argument, NULL, 's' },
        { "timeout", required_argument, NULL, 't' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    uint64_t v;
    int ch;

    /* '+': stop at the command, whose options are its own. */
    while ((ch = getopt_long(argc, argv, "+s:t:hV", longopts, NULL)) != -1) {
        switch (ch) {
        case 's':
            ctl->socket = optarg;
            break;
        case 't':
            if (ctl_parse_num(optarg, 0, INT32_MAX, &v) != 0) {
                fprintf(stderr, "batchctl: bad timeout '%s'\n", optarg);
                return -1;
            }
            ctl->timeout_ms = (int)v;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("batchctl %s\n", BATCHD_VERSION);
            return 0;
        default:
            return -1;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "batchctl: no command\n");
        return -1;
    }
    return optind;
}

int main(int argc, char **argv)
{
    struct ctl ctl = { NULL, CTL_DEFAULT_TIMEOUT_MS };
    const struct ctl_cmd *cmd;
    int first, rc;

    first = parse_global(argc, argv, &ctl);
    if (first == 0)
        return fflush(stdout) == 0 ? CTL_EXIT_OK : CTL_EXIT_IO;
    if (first < 0) {
        usage_hint();
        return CTL_EXIT_USAGE;
    }
    cmd = find_command(argv[first]);
    if (cmd == NULL) {
        fprintf(stderr, "batchctl: unknown command '%s'\n", argv[first]);
        usage_hint();
        return CTL_EXIT_USAGE;
    }
    rc = cmd->run(&ctl, argc - first, argv + first);
    if (rc == CTL_EXIT_USAGE)
        usage_hint();
    return rc;
}
