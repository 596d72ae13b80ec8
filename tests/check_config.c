/*
 * check_config.c - unit tests for daemon/config.c: the option table,
 * the inih loader and the effective-config dump.
 *
 * "core" loads the sample conf/batchd.conf (from $BATCHD_SRC_DIR, else
 * the current directory), checks defaults, order and value syntax, and
 * fails every allocation in turn. "limits" takes each bounded option to
 * min, max, min-1 and max+1. "malformed" has one test per error path and
 * asserts the exact error text, line numbers included (hiredis
 * test_reply_reader style).
 */
#include <check.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "config.h"

#ifndef BD_SINKDIR
#define BD_SINKDIR "/usr/local/lib/batchd/sinks"
#endif

/* A valid sink and route to append to a config under test. */
#define TAIL "[sink.s]\nplugin = p\n[route.r]\nmatch = *\nsink = s\n"

/* ---- helpers ------------------------------------------------------------ */

static const char *sample_path(void)
{
    static char path[4096];
    const char *src = getenv("BATCHD_SRC_DIR");

    if (src == NULL || *src == '\0')
        return "conf/batchd.conf";
    snprintf(path, sizeof(path), "%s/conf/batchd.conf", src);
    return path;
}

/* Read a whole file into a new string (free with free). */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    char *s;
    long n;

    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    rewind(f);
    s = malloc((size_t)n + 1);
    ck_assert_ptr_nonnull(s);
    ck_assert_uint_eq(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = '\0';
    fclose(f);
    return s;
}

static struct bd_config *load_ok(const char *text)
{
    char *errs = (char *)"unset";
    struct bd_config *cfg = bd_config_load_string(text, "t.conf", &errs);

    ck_assert_msg(cfg != NULL, "config refused:\n%s", errs ? errs : "(no errs)");
    ck_assert_ptr_null(errs);
    return cfg;
}

static void expect_errors(const char *text, const char *want)
{
    char *errs = NULL;
    struct bd_config *cfg = bd_config_load_string(text, "t.conf", &errs);

    ck_assert_ptr_null(cfg);
    ck_assert_ptr_nonnull(errs);
    ck_assert_str_eq(errs, want);
    bd_free(errs);
}

/* The effective config as text (free with free). */
static char *print_config(const struct bd_config *cfg)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(bd_config_print(cfg, f), 0);
    fclose(f);
    return buf;
}

/* sink_dir: BD_SINKDIR, or what the sample's comment shows */
static void check_daemon_defaults(const struct bd_config *c,
                                  const char *sink_dir)
{
    ck_assert_str_eq(c->socket, "/run/batchd/batchd.sock");
    ck_assert_uint_eq(c->socket_mode, 0660);
    ck_assert_str_eq(c->sink_dir, sink_dir);
    ck_assert_uint_eq(c->max_frame, 1u << 20);
    ck_assert_uint_eq(c->max_conns, 1024);
    ck_assert_uint_eq(c->max_queued_items, 1000000);
    ck_assert_uint_eq(c->max_queued_bytes, 256u << 20);
    ck_assert_uint_eq(c->max_concurrency, 8);
    ck_assert_uint_eq(c->shutdown_grace_ms, 10000);
    ck_assert_uint_eq(c->conn_out_soft, 4u << 20);
    ck_assert_uint_eq(c->conn_out_hard, 64u << 20);
    ck_assert_int_eq(c->log_level, BATCHD_LOG_INFO);
}

static void check_route_defaults(const struct bd_route_conf *r, int policy)
{
    ck_assert_int_eq(r->policy, policy);
    ck_assert_uint_eq(r->max_items, 100);
    ck_assert_uint_eq(r->max_bytes, 1u << 20);
    ck_assert_uint_eq(r->max_delay_us, 1000);
    ck_assert_uint_eq(r->min_items, 1);
    ck_assert_uint_eq(r->key_concurrency, 1);
    ck_assert_uint_eq(r->key_max_items, 100000);
    ck_assert_uint_eq(r->key_max_bytes, 64u << 20);
}

/* ---- core --------------------------------------------------------------- */

START_TEST(test_sample_loads)
{
    char *errs = (char *)"unset";
    struct bd_config *c = bd_config_load(sample_path(), &errs);

    ck_assert_msg(c != NULL, "%s", errs ? errs : "(no errs)");
    ck_assert_ptr_null(errs);
    ck_assert_str_eq(c->path, sample_path());
    check_daemon_defaults(c, BD_SINKDIR);
    ck_assert_ptr_null(c->socket_group);
    ck_assert_uint_eq(c->nsinks, 1);
    ck_assert_str_eq(c->sinks[0].name, "echo");
    ck_assert_str_eq(c->sinks[0].plugin, "echo");
    ck_assert_uint_eq(c->sinks[0].nkv, 0);
    ck_assert_uint_eq(c->nroutes, 1);
    ck_assert_str_eq(c->routes[0].name, "default");
    ck_assert_str_eq(c->routes[0].match, "*");
    ck_assert_str_eq(c->routes[0].sink, "echo");
    ck_assert_uint_eq(c->routes[0].sink_idx, 0);
    check_route_defaults(&c->routes[0], BD_POLICY_IMMEDIATE);
    bd_config_free(c);
}
END_TEST

/*
 * Uncomment every "#key = value" and "#[section]" line of the sample:
 * the examples must load, and each commented default must be the real
 * one (so the documentation cannot drift from the table).
 */
START_TEST(test_sample_examples_load)
{
    char *text = slurp(sample_path());
    char *out = malloc(strlen(text) + 1), *o = out;
    struct bd_config *c;

    ck_assert_ptr_nonnull(out);
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        size_t word = line[0] == '#' ? strspn(line + 1,
                "abcdefghijklmnopqrstuvwxyz_") : 0;

        if (line[0] == '#' && (line[1] == '[' ||
                               (word > 0 && strncmp(line + 1 + word, " = ", 3) == 0)))
            line++;
        o += sprintf(o, "%s\n", line);
    }
    c = load_ok(out);
    check_daemon_defaults(c, "/usr/local/lib/batchd/sinks");
    ck_assert_str_eq(c->socket_group, "batchd");
    ck_assert_uint_eq(c->nsinks, 3);
    ck_assert_str_eq(c->sinks[1].name, "file");
    ck_assert_str_eq(c->sinks[1].plugin, "file");
    ck_assert_uint_eq(c->sinks[1].nkv, 3);
    ck_assert_str_eq(c->sinks[1].kv[0].key, "path");
    ck_assert_str_eq(c->sinks[1].kv[0].value, "/var/lib/batchd/items.log");
    ck_assert_str_eq(c->sinks[1].kv[1].key, "format");
    ck_assert_str_eq(c->sinks[1].kv[1].value, "line");
    ck_assert_str_eq(c->sinks[1].kv[2].key, "fsync");
    ck_assert_str_eq(c->sinks[1].kv[2].value, "yes");
    ck_assert_str_eq(c->sinks[2].name, "null");
    ck_assert_uint_eq(c->nroutes, 2);
    ck_assert_str_eq(c->routes[0].name, "metrics");
    ck_assert_str_eq(c->routes[0].match, "metrics.*");
    ck_assert_uint_eq(c->routes[0].sink_idx, 2);
    ck_assert_str_eq(c->routes[1].name, "default");
    ck_assert_uint_eq(c->routes[1].sink_idx, 0);
    check_route_defaults(&c->routes[1], BD_POLICY_IMMEDIATE);
    bd_config_free(c);
    free(out);
    free(text);
}
END_TEST

START_TEST(test_defaults_without_daemon_section)
{
    struct bd_config *c = load_ok(TAIL);

    check_daemon_defaults(c, BD_SINKDIR);
    ck_assert_ptr_null(c->socket_group);
    ck_assert_str_eq(c->path, "t.conf");
    ck_assert_int_eq(c->sinks[0].line, 1);
    ck_assert_int_eq(c->routes[0].line, 3);
    check_route_defaults(&c->routes[0], BD_POLICY_DURATION);
    bd_config_free(c);
}
END_TEST

START_TEST(test_order_kept)
{
    struct bd_config *c = load_ok(
        "[sink.a]\n"
        "plugin = /opt/a.so\n"
        "zeta = 1\n"
        "alpha = two words\n"
        "mid = \n"
        "isolation = inproc\n"
        "last = x;y\n"
        "[sink.b]\n"
        "plugin = b\n"
        "[route.first]\n"
        "match = users\n"
        "sink = b\n"
        "[route.second]\n"
        "match = orders.*\n"
        "sink = a\n"
        "[route.third]\n"
        "match = *\n"
        "sink = b\n");

    ck_assert_uint_eq(c->nsinks, 2);
    ck_assert_str_eq(c->sinks[0].plugin, "/opt/a.so");
    ck_assert_uint_eq(c->sinks[0].nkv, 4);  /* plugin, isolation not in kv */
    ck_assert_str_eq(c->sinks[0].kv[0].key, "zeta");
    ck_assert_str_eq(c->sinks[0].kv[0].value, "1");
    ck_assert_str_eq(c->sinks[0].kv[1].key, "alpha");
    ck_assert_str_eq(c->sinks[0].kv[1].value, "two words");
    ck_assert_str_eq(c->sinks[0].kv[2].key, "mid");
    ck_assert_str_eq(c->sinks[0].kv[2].value, "");
    ck_assert_str_eq(c->sinks[0].kv[3].key, "last");
    ck_assert_str_eq(c->sinks[0].kv[3].value, "x;y");
    ck_assert_uint_eq(c->nroutes, 3);
    ck_assert_str_eq(c->routes[0].name, "first");
    ck_assert_str_eq(c->routes[0].match, "users");
    ck_assert_uint_eq(c->routes[0].sink_idx, 1);
    ck_assert_str_eq(c->routes[1].name, "second");
    ck_assert_uint_eq(c->routes[1].sink_idx, 0);
    ck_assert_str_eq(c->routes[2].name, "third");
    ck_assert_uint_eq(c->routes[2].sink_idx, 1);
    ck_assert_int_eq(c->routes[2].line, 16);
    bd_config_free(c);
}
END_TEST

/* Comments, "key: value", indentation, CRLF, a BOM, header spacing. */
START_TEST(test_syntax_variants)
{
    struct bd_config *c = load_ok(
        "\xEF\xBB\xBF; comment\r\n"
        "  [ daemon ]   ; trailing comment\r\n"
        "socket: /tmp/b.sock ; inline comment\r\n"
        "\tlog_level = debug\r\n"
        "# another comment\r\n"
        "\r\n"
        "[sink.s] # hash after header\n"
        "plugin = p\n"
        "[route.r]\n"
        "match = metrics.*\n"
        "    sink = s\n");

    ck_assert_str_eq(c->socket, "/tmp/b.sock");
    ck_assert_int_eq(c->log_level, BATCHD_LOG_DEBUG);
    ck_assert_str_eq(c->routes[0].match, "metrics.*");
    ck_assert_str_eq(c->routes[0].sink, "s");
    ck_assert_int_eq(c->sinks[0].line, 7);
    bd_config_free(c);
}
END_TEST

START_TEST(test_size_suffixes)
{
    struct bd_config *c = load_ok(
        "[daemon]\n"
        "max_frame = 64\n"
        "max_queued_bytes = 3G\n"
        "conn_out_soft = 16k\n"
        "conn_out_hard = 2m\n"
        "socket_mode = 600\n"
        "[sink.s]\nplugin = p\n"
        "[route.r]\nmatch = *\nsink = s\n"
        "max_bytes = 1K\n"
        "key_max_bytes = 0001g\n");

    ck_assert_uint_eq(c->max_frame, 64);
    ck_assert_uint_eq(c->max_queued_bytes, 3ULL << 30);
    ck_assert_uint_eq(c->conn_out_soft, 16 << 10);
    ck_assert_uint_eq(c->conn_out_hard, 2 << 20);
    ck_assert_uint_eq(c->socket_mode, 0600);
    ck_assert_uint_eq(c->routes[0].max_bytes, 1024);
    ck_assert_uint_eq(c->routes[0].key_max_bytes, 1ULL << 30);
    bd_config_free(c);
}
END_TEST

START_TEST(test_enums)
{
    static const char *const levels[] = { "error", "warn", "info", "debug" };
    static const int level_v[] = { BATCHD_LOG_ERROR, BATCHD_LOG_WARN,
                                   BATCHD_LOG_INFO, BATCHD_LOG_DEBUG };
    static const char *const policies[] = { "immediate", "size", "duration",
                                            "balanced" };
    char text[256];

    for (int i = 0; i < 4; i++) {
        struct bd_config *c;

        snprintf(text, sizeof(text), "[daemon]\nlog_level = %s\n" TAIL
                 "policy = %s\n", levels[i], policies[i]);
        c = load_ok(text);
        ck_assert_int_eq(c->log_level, level_v[i]);
        ck_assert_int_eq(c->routes[0].policy, i);
        ck_assert_str_eq(bd_policy_name(i), policies[i]);
        ck_assert_int_eq(bd_policy_parse(policies[i]), i);
        bd_config_free(c);
    }
    ck_assert_str_eq(bd_policy_name(4), "unknown");
    ck_assert_str_eq(bd_policy_name(-1), "unknown");
    ck_assert_int_eq(bd_policy_parse("Size"), -1);
    ck_assert_int_eq(bd_policy_parse(""), -1);
}
END_TEST

/* The dump holds every option and loads back to the same dump. */
START_TEST(test_print_round_trip)
{
    struct bd_config *c = load_ok(
        "[daemon]\nsocket_group = wheel\nsocket_mode = 0\nmax_frame = 100000\n"
        "[sink.a]\nplugin = a\nk2 = v2\nk1 = v1\n"
        "[sink.b]\nplugin = b\n"
        "[route.x]\nmatch = x.*\nsink = b\npolicy = balanced\nmin_items = 7\n"
        "[route.y]\nmatch = *\nsink = a\nmax_bytes = 3M\n");
    char *one = print_config(c), *two;
    struct bd_config *c2;

    ck_assert_ptr_nonnull(strstr(one, "\n[daemon]\nsocket = /run/batchd/batchd.sock\n"
                                      "socket_mode = 0000\nsocket_group = wheel\n"));
    ck_assert_ptr_nonnull(strstr(one, "\nmax_frame = 100000\n"));
    ck_assert_ptr_nonnull(strstr(one, "\nlog_level = info\n"));
    ck_assert_ptr_nonnull(strstr(one, "\n[sink.a]\nplugin = a\nisolation = inproc\n"
                                      "restart_base_ms = 100\nrestart_cap_ms = 10000\n"
                                      "unhealthy_after = 5\n"
                                      "k2 = v2\nk1 = v1\n"));
    ck_assert_ptr_nonnull(strstr(one, "\n[route.x]\nmatch = x.*\nsink = b\n"
                                      "policy = balanced\nmax_items = 100\n"
                                      "max_bytes = 1M\nmax_delay_us = 1000\n"
                                      "min_items = 7\nkey_concurrency = 1\n"
                                      "key_max_items = 100000\nkey_max_bytes = 64M\n"));
    ck_assert_ptr_nonnull(strstr(one, "\nmax_bytes = 3M\n"));
    c2 = bd_config_load_string(one, "t.conf", NULL);
    ck_assert_ptr_nonnull(c2);
    two = print_config(c2);
    ck_assert_str_eq(one, two);
    free(one);
    free(two);
    bd_config_free(c);
    bd_config_free(c2);
}
END_TEST

START_TEST(test_free_null)
{
    bd_config_free(NULL);
}
END_TEST

START_TEST(test_missing_file)
{
    char *errs = NULL;

    ck_assert_ptr_null(bd_config_load("/nonexistent/batchd.conf", &errs));
    ck_assert_str_eq(errs, "/nonexistent/batchd.conf: cannot open: "
                           "No such file or directory\n");
    bd_free(errs);
}
END_TEST

/*
 * Fail the 1st, 2nd, ... allocation until the load gets through: every
 * failure must give NULL and either "path: out of memory" or no errs at
 * all (when errs itself could not be allocated). ASan/valgrind catch
 * what leaks.
 */
static unsigned alloc_fail_loop(const char *text, const char *name,
                                const char *final_errs, unsigned *no_errs)
{
    char oom[256];
    unsigned n;

    *no_errs = 0;
    snprintf(oom, sizeof(oom), "%s: out of memory\n", name);
    for (n = 1; n < 100000; n++) {
        char *errs = NULL;
        struct bd_config *c;

        bd_alloc_fail_after(n);
        c = text ? bd_config_load_string(text, name, &errs)
                 : bd_config_load(name, &errs);
        bd_alloc_fail_after(0);
        if (final_errs == NULL && c != NULL) {
            bd_config_free(c);
            break;
        }
        ck_assert_ptr_null(c);
        if (final_errs != NULL && errs != NULL && strcmp(errs, final_errs) == 0) {
            bd_free(errs);
            break;
        }
        ck_assert_msg(errs == NULL || strcmp(errs, oom) == 0,
                      "n=%u: unexpected errs:\n%s", n, errs);
        *no_errs += errs == NULL;
        bd_free(errs);
    }
    ck_assert_uint_lt(n, 100000);
    return n;
}

START_TEST(test_alloc_failures_sample)
{
    unsigned no_errs;
    unsigned n = alloc_fail_loop(NULL, sample_path(), NULL, &no_errs);

    ck_assert_uint_gt(n, 10);
    ck_assert_uint_eq(no_errs, 0);
}
END_TEST

START_TEST(test_alloc_failures_errors)
{
    unsigned no_errs;
    unsigned n = alloc_fail_loop(
        "[daemon]\nfoo = 1\nmax_frame = 1\n[sink.s]\nplugin = p\nk = v\nk = w\n"
        "[route.r]\nmatch = *\nsink = nope\n",
        "t.conf",
        "t.conf:2: [daemon] foo: unknown key\n"
        "t.conf:3: [daemon] max_frame: \"1\": out of range (64..64M)\n"
        "t.conf:7: [sink.s] k: duplicate key (first set on line 6)\n"
        "t.conf:8: [route.r] sink: unknown sink \"nope\" (no [sink.nope] section)\n",
        &no_errs);

    ck_assert_uint_gt(n, 5);
    ck_assert_uint_eq(no_errs, 1);      /* the joined errs string itself */
}
END_TEST

/* ---- limits ------------------------------------------------------------- */

struct limit {
    const char *sect;       /* "daemon" or "route" */
    const char *key;
    const char *lo, *hi;    /* accepted, as written */
    uint64_t lo_v, hi_v;    /* what is stored */
    const char *below, *above; /* refused */
    const char *bounds;     /* as the error shows them */
    const char *extra;      /* lines that keep the cross-checks quiet */
    size_t off, width;
};

#define D(f) .sect = "daemon", .key = #f, .off = offsetof(struct bd_config, f), \
             .width = sizeof(((struct bd_config *)0)->f)
#define R(f) .sect = "route", .key = #f, .off = offsetof(struct bd_route_conf, f), \
             .width = sizeof(((struct bd_route_conf *)0)->f)

static const struct limit limits[] = {
    { D(socket_mode), .lo = "0", .hi = "0777", .lo_v = 0, .hi_v = 0777,
      .below = "-1", .above = "01000", .bounds = "0000..0777" },
    { D(max_frame), .lo = "64", .hi = "64M", .lo_v = 64, .hi_v = 64 << 20,
      .below = "63", .above = "67108865", .bounds = "64..64M" },
    { D(max_conns), .lo = "1", .hi = "1000000", .lo_v = 1, .hi_v = 1000000,
      .below = "0", .above = "1000001", .bounds = "1..1000000" },
    { D(max_queued_items), .lo = "1", .hi = "1099511627776", .lo_v = 1,
      .hi_v = 1ULL << 40, .below = "0", .above = "1099511627777",
      .bounds = "1..1099511627776" },
    { D(max_queued_bytes), .lo = "1K", .hi = "1024G", .lo_v = 1024,
      .hi_v = 1ULL << 40, .below = "1023", .above = "1099511627777",
      .bounds = "1K..1024G" },
    { D(max_concurrency), .lo = "1", .hi = "1024", .lo_v = 1, .hi_v = 1024,
      .below = "0", .above = "1025", .bounds = "1..1024" },
    { D(shutdown_grace_ms), .lo = "0", .hi = "3600000", .lo_v = 0,
      .hi_v = 3600000, .below = "-1", .above = "3600001",
      .bounds = "0..3600000" },
    { D(conn_out_soft), .lo = "1K", .hi = "1G", .lo_v = 1024, .hi_v = 1 << 30,
      .below = "1023", .above = "1073741825", .bounds = "1K..1G",
      .extra = "conn_out_hard = 4G\n" },
    { D(conn_out_hard), .lo = "4K", .hi = "4G", .lo_v = 4096,
      .hi_v = 4ULL << 30, .below = "4095", .above = "4294967297",
      .bounds = "4K..4G", .extra = "conn_out_soft = 1K\n" },
    { R(max_items), .lo = "1", .hi = "1000000", .lo_v = 1, .hi_v = 1000000,
      .below = "0", .above = "1000001", .bounds = "1..1000000",
      .extra = "key_max_items = 1000000\n" },
    { R(max_bytes), .lo = "1", .hi = "256M", .lo_v = 1, .hi_v = 256 << 20,
      .below = "0", .above = "268435457", .bounds = "1..256M",
      .extra = "key_max_bytes = 256M\n" },
    { R(max_delay_us), .lo = "0", .hi = "60000000", .lo_v = 0,
      .hi_v = 60000000, .below = "-1", .above = "60000001",
      .bounds = "0..60000000" },
    { R(min_items), .lo = "1", .hi = "1000000", .lo_v = 1, .hi_v = 1000000,
      .below = "0", .above = "1000001", .bounds = "1..1000000",
      .extra = "max_items = 1000000\nkey_max_items = 1000000\n" },
    { R(key_concurrency), .lo = "1", .hi = "1024", .lo_v = 1, .hi_v = 1024,
      .below = "0", .above = "1025", .bounds = "1..1024" },
    { R(key_max_items), .lo = "1", .hi = "1099511627776", .lo_v = 1,
      .hi_v = 1ULL << 40, .below = "0", .above = "1099511627777",
      .bounds = "1..1099511627776", .extra = "max_items = 1\n" },
    { R(key_max_bytes), .lo = "1", .hi = "1024G", .lo_v = 1,
      .hi_v = 1ULL << 40, .below = "0", .above = "1099511627777",
      .bounds = "1..1024G", .extra = "max_bytes = 1\n" },
};

/* The tested key is on line 2 ([daemon]) or line 4 ([route.r]). */
static void limit_text(const struct limit *l, const char *value, char *buf,
                       size_t len)
{
    if (strcmp(l->sect, "daemon") == 0)
        snprintf(buf, len, "[daemon]\n%s = %s\n%s" TAIL, l->key, value,
                 l->extra ? l->extra : "");
    else
        snprintf(buf, len, "[sink.s]\nplugin = p\n[route.r]\n%s = %s\n%s"
                 "match = *\nsink = s\n", l->key, value,
                 l->extra ? l->extra : "");
}

static uint64_t limit_get(const struct limit *l, const struct bd_config *c)
{
    const char *base = strcmp(l->sect, "daemon") == 0 ? (const char *)c
                     : (const char *)&c->routes[0];

    if (l->width == 4)
        return *(const uint32_t *)(base + l->off);
    return *(const uint64_t *)(base + l->off);
}

START_TEST(test_limit)
{
    const struct limit *l = &limits[_i];
    int line = strcmp(l->sect, "daemon") == 0 ? 2 : 4;
    char text[512], want[512];
    struct bd_config *c;

    limit_text(l, l->lo, text, sizeof(text));
    c = load_ok(text);
    ck_assert_uint_eq(limit_get(l, c), l->lo_v);
    bd_config_free(c);

    limit_text(l, l->hi, text, sizeof(text));
    c = load_ok(text);
    ck_assert_uint_eq(limit_get(l, c), l->hi_v);
    bd_config_free(c);

    /* A negative value is out of range like any other (issue 10). */
    limit_text(l, l->below, text, sizeof(text));
    snprintf(want, sizeof(want), "t.conf:%d: [%s%s] %s: \"%s\": "
             "out of range (%s)\n", line, l->sect, line == 4 ? ".r" : "",
             l->key, l->below, l->bounds);
    expect_errors(text, want);

    limit_text(l, l->above, text, sizeof(text));
    snprintf(want, sizeof(want), "t.conf:%d: [%s%s] %s: \"%s\": "
             "out of range (%s)\n", line, l->sect, line == 4 ? ".r" : "",
             l->key, l->above, l->bounds);
    expect_errors(text, want);
}
END_TEST

/* sun_path holds 107 bytes and the NUL. */
START_TEST(test_socket_path_length)
{
    char path[120], text[256];
    struct bd_config *c;

    memset(path, 'a', sizeof(path));
    path[0] = '/';
    path[107] = '\0';
    snprintf(text, sizeof(text), "[daemon]\nsocket = %s\n" TAIL, path);
    c = load_ok(text);
    ck_assert_uint_eq(strlen(c->socket), 107);
    bd_config_free(c);

    path[107] = 'a';
    path[108] = '\0';
    snprintf(text, sizeof(text), "[daemon]\nsocket = %s\n" TAIL, path);
    {
        char want[300];

        snprintf(want, sizeof(want), "t.conf:2: [daemon] socket: \"%s\": too long "
                 "for a Unix socket path (max 107 bytes)\n", path);
        expect_errors(text, want);
    }
}
END_TEST

/* NAME is 1..64 characters. */
START_TEST(test_name_length)
{
    char name[70], text[400];
    struct bd_config *c;

    memset(name, 'n', sizeof(name));
    name[64] = '\0';
    snprintf(text, sizeof(text), "[sink.%s]\nplugin = p\n[route.%s]\n"
             "match = *\nsink = %s\n", name, name, name);
    c = load_ok(text);
    ck_assert_str_eq(c->sinks[0].name, name);
    ck_assert_str_eq(c->routes[0].name, name);
    bd_config_free(c);

    name[64] = 'n';
    name[65] = '\0';
    snprintf(text, sizeof(text), "[sink.%s]\nplugin = p\n" TAIL, name);
    {
        char want[300];

        snprintf(want, sizeof(want), "t.conf:1: [sink.%s]: bad sink name "
                 "(1 to 64 of A-Z a-z 0-9 _ . -)\n", name);
        expect_errors(text, want);
    }
    expect_errors("[sink.]\n" TAIL,
                  "t.conf:1: [sink.]: bad sink name (1 to 64 of A-Z a-z 0-9 _ . -)\n");
}
END_TEST

/* inih's buffer holds 199 characters of a line. */
START_TEST(test_line_length)
{
    char val[256], text[512];
    struct bd_config *c;
    int len;

    memset(val, 'v', sizeof(val));
    val[199 - 6] = '\0';                     /* "opt = " + val = 199 */
    len = snprintf(text, sizeof(text), "[sink.s]\nopt = %s\nplugin = p\n"
                   "[route.r]\nmatch = *\nsink = s\n", val);
    ck_assert_int_lt(len, (int)sizeof(text));
    c = load_ok(text);
    ck_assert_uint_eq(strlen(c->sinks[0].kv[0].value), 193);
    bd_config_free(c);

    val[199 - 6] = 'v';
    val[200 - 6] = '\0';
    snprintf(text, sizeof(text), "[sink.s]\nopt = %s\nplugin = p\n"
             "[route.r]\nmatch = *\nsink = s\n", val);
    expect_errors(text, "t.conf:2: line too long (more than 199 characters)\n");
}
END_TEST

/* More than 100 errors: the first 100 lines, then a count. */
START_TEST(test_error_cap)
{
    char *text = malloc(64 * 1024), *p = text;
    char *errs = NULL;
    const char *last;

    ck_assert_ptr_nonnull(text);
    p += sprintf(p, "[daemon]\n");
    for (int i = 0; i < 130; i++)
        p += sprintf(p, "bad%d = 1\n", i);
    sprintf(p, TAIL);
    ck_assert_ptr_null(bd_config_load_string(text, "t.conf", &errs));
    ck_assert_ptr_nonnull(errs);
    ck_assert(strncmp(errs, "t.conf:2: [daemon] bad0: unknown key\n", 37) == 0);
    ck_assert_ptr_nonnull(strstr(errs, "t.conf:101: [daemon] bad99: unknown key\n"
                                       "t.conf: 30 more errors not shown\n"));
    last = strstr(errs, "t.conf: 30 more");
    ck_assert_str_eq(last, "t.conf: 30 more errors not shown\n");
    bd_free(errs);
    free(text);
}
END_TEST

/* ---- malformed ---------------------------------------------------------- */

START_TEST(test_unknown_section)
{
    /* keys of a refused section are skipped, not reported one by one */
    expect_errors("[bogus]\nfoo = 1\n[sink]\n" TAIL,
                  "t.conf:1: [bogus]: unknown section (expected [daemon], "
                  "[sink.NAME] or [route.NAME])\n"
                  "t.conf:3: [sink]: unknown section (expected [daemon], "
                  "[sink.NAME] or [route.NAME])\n");
}
END_TEST

START_TEST(test_unknown_key)
{
    expect_errors("[daemon]\nsockt = /x\n" TAIL "maxitems = 3\n",
                  "t.conf:2: [daemon] sockt: unknown key\n"
                  "t.conf:8: [route.r] maxitems: unknown key\n");
}
END_TEST

START_TEST(test_duplicate_key)
{
    expect_errors("[daemon]\nmax_conns = 1\nmax_conns = 2\n"
                  "[sink.s]\nplugin = p\npath = a\nplugin = q\npath = b\n"
                  "isolation = inproc\nisolation = inproc\n"
                  "[route.r]\nmatch = *\nsink = s\nmatch = x\n",
                  "t.conf:3: [daemon] max_conns: duplicate key (first set on line 2)\n"
                  "t.conf:7: [sink.s] plugin: duplicate key (first set on line 5)\n"
                  "t.conf:8: [sink.s] path: duplicate key (first set on line 6)\n"
                  "t.conf:10: [sink.s] isolation: duplicate key (first set on line 9)\n"
                  "t.conf:14: [route.r] match: duplicate key (first set on line 12)\n");
}
END_TEST

START_TEST(test_duplicate_section)
{
    expect_errors("[daemon]\n[sink.s]\nplugin = p\n[daemon]\nmax_conns = x\n"
                  "[route.r]\nmatch = *\nsink = s\n[sink.s]\nplugin = p\n"
                  "[route.r]\nmatch = *\nsink = s\n",
                  "t.conf:4: [daemon]: duplicate section (first on line 1)\n"
                  "t.conf:9: [sink.s]: duplicate section (first on line 2)\n"
                  "t.conf:11: [route.r]: duplicate section (first on line 6)\n");
}
END_TEST

START_TEST(test_missing_required)
{
    expect_errors("[sink.s]\npath = x\n[route.r]\n[route.q]\nmatch = a\n"
                  "[route.z]\nsink = s\n",
                  "t.conf:1: [sink.s] plugin: required key is missing\n"
                  "t.conf:3: [route.r] match: required key is missing\n"
                  "t.conf:3: [route.r] sink: required key is missing\n"
                  "t.conf:4: [route.q] sink: required key is missing\n"
                  "t.conf:6: [route.z] match: required key is missing\n");
}
END_TEST

START_TEST(test_unknown_sink)
{
    expect_errors("[sink.s]\nplugin = p\n\n[route.r]\nmatch = *\nsink = S\n",
                  "t.conf:4: [route.r] sink: unknown sink \"S\" "
                  "(no [sink.S] section)\n");
}
END_TEST

START_TEST(test_bad_enum)
{
    expect_errors("[daemon]\nlog_level = INFO\n" TAIL "policy = fast\n",
                  "t.conf:2: [daemon] log_level: \"INFO\": must be one of "
                  "error, warn, info, debug\n"
                  "t.conf:8: [route.r] policy: \"fast\": must be one of "
                  "immediate, size, duration, balanced\n");
}
END_TEST

START_TEST(test_bad_numbers)
{
    expect_errors("[daemon]\n"
                  "socket_mode = 0668\n"          /* 2 */
                  "max_conns = -5\n"              /* 3 */
                  "max_concurrency = +5\n"        /* 4 */
                  "max_queued_items = 99999999999999999999\n" /* 5 */
                  "max_frame = 1X\n"              /* 6 */
                  "max_queued_bytes = 1KB\n"      /* 7 */
                  "conn_out_soft = 1.5M\n"        /* 8 */
                  "shutdown_grace_ms = 12abc\n"   /* 9 */
                  "conn_out_hard = 17179869184G\n" /* 10 */
                  "[sink.s]\nplugin = p\n[route.r]\nmatch = *\nsink = s\n"
                  "max_items = 0x10\n"            /* 16 */
                  "max_bytes = M\n"               /* 17 */
                  "max_delay_us = 1 000\n"        /* 18 */
                  "min_items =\n",                /* 19 */
                  "t.conf:2: [daemon] socket_mode: \"0668\": not an octal number\n"
                  "t.conf:3: [daemon] max_conns: \"-5\": out of range (1..1000000)\n"
                  "t.conf:4: [daemon] max_concurrency: \"+5\": a sign is not allowed\n"
                  "t.conf:5: [daemon] max_queued_items: \"99999999999999999999\": "
                  "number too large\n"
                  "t.conf:6: [daemon] max_frame: \"1X\": bad size suffix (use K, M or G)\n"
                  "t.conf:7: [daemon] max_queued_bytes: \"1KB\": bad size suffix "
                  "(use K, M or G)\n"
                  "t.conf:8: [daemon] conn_out_soft: \"1.5M\": not a size (an "
                  "integer, optionally with K, M or G)\n"
                  "t.conf:9: [daemon] shutdown_grace_ms: \"12abc\": not an integer\n"
                  "t.conf:10: [daemon] conn_out_hard: \"17179869184G\": number too large\n"
                  "t.conf:16: [route.r] max_items: \"0x10\": not an integer\n"
                  "t.conf:17: [route.r] max_bytes: \"M\": not a size (an integer, "
                  "optionally with K, M or G)\n"
                  "t.conf:18: [route.r] max_delay_us: \"1 000\": not an integer\n"
                  "t.conf:19: [route.r] min_items: \"\": empty value\n");
}
END_TEST

/* issue 10: a negative number gets the range, like any value out of
 * it; what follows the sign must still be a number. */
START_TEST(test_negative_numbers)
{
    expect_errors("[daemon]\nmax_conns = -1\nmax_frame = -1K\n"
                  "socket_mode = -0700\nshutdown_grace_ms = -5x\n"
                  "max_concurrency = --5\n" TAIL "key_max_items = -100\n",
                  "t.conf:2: [daemon] max_conns: \"-1\": out of range (1..1000000)\n"
                  "t.conf:3: [daemon] max_frame: \"-1K\": out of range (64..64M)\n"
                  "t.conf:4: [daemon] socket_mode: \"-0700\": out of range (0000..0777)\n"
                  "t.conf:5: [daemon] shutdown_grace_ms: \"-5x\": not an integer\n"
                  "t.conf:6: [daemon] max_concurrency: \"--5\": not an integer\n"
                  "t.conf:12: [route.r] key_max_items: \"-100\": out of range "
                  "(1..1099511627776)\n");
}
END_TEST

START_TEST(test_empty_strings)
{
    expect_errors("[daemon]\nsocket =\nsocket_group = \n[sink.s]\nplugin =\n"
                  "[route.r]\nmatch =\nsink = s\n",
                  "t.conf:2: [daemon] socket: \"\": empty value\n"
                  "t.conf:3: [daemon] socket_group: \"\": empty value\n"
                  "t.conf:5: [sink.s] plugin: \"\": empty value\n"
                  "t.conf:7: [route.r] match: \"\": empty value\n");
}
END_TEST

START_TEST(test_isolation)
{
    expect_errors("[sink.s]\nplugin = p\nisolation = process\n"
                  "restart_base_ms = 500\nrestart_cap_ms = 400\n"
                  "[sink.t]\nplugin = p\nisolation = thread\n"
                  "[route.r]\nmatch = *\nsink = s\nretry_base_ms = 9\n"
                  "retry_cap_ms = 8\non_sink_timeout = never\n",
                  "t.conf:5: [sink.s] restart_cap_ms: 400 is less than "
                  "restart_base_ms (500)\n"
                  "t.conf:8: [sink.t] isolation: \"thread\": must be one of "
                  "inproc, process\n"
                  "t.conf:13: [route.r] retry_cap_ms: 8 is less than "
                  "retry_base_ms (9)\n"
                  "t.conf:14: [route.r] on_sink_timeout: \"never\": must be one "
                  "of retry, fail\n");
}
END_TEST

START_TEST(test_soft_not_below_hard)
{
    /* reported on whichever of the two keys comes later */
    expect_errors("[daemon]\nconn_out_soft = 64M\n" TAIL,
                  "t.conf:2: [daemon] conn_out_soft: 64M is not less than "
                  "conn_out_hard (64M)\n");
    expect_errors("[daemon]\nconn_out_soft = 8M\nconn_out_hard = 4M\n" TAIL,
                  "t.conf:3: [daemon] conn_out_hard: 4M is not more than "
                  "conn_out_soft (8M)\n");
}
END_TEST

START_TEST(test_route_cross_checks)
{
    expect_errors(TAIL "min_items = 200\n",
                  "t.conf:6: [route.r] min_items: 200 is more than max_items (100)\n");
    expect_errors(TAIL "min_items = 20\nmax_items = 10\n",
                  "t.conf:7: [route.r] max_items: 10 is less than min_items (20)\n");
    /* a refused value is reported once, not again by the cross-check */
    expect_errors(TAIL "min_items = 200\nmax_items = x\n",
                  "t.conf:7: [route.r] max_items: \"x\": not an integer\n");
}
END_TEST

/* issue 10: queue bounds below the batch limits are a legitimate setup
 * (backpressure first), accepted as written. */
START_TEST(test_queue_bounds_below_batch_limits)
{
    struct bd_config *c = load_ok(TAIL "max_items = 100\nkey_max_items = 10\n"
                                  "max_bytes = 2K\nkey_max_bytes = 1000\n");

    ck_assert_uint_eq(c->routes[0].max_items, 100);
    ck_assert_uint_eq(c->routes[0].key_max_items, 10);
    ck_assert_uint_eq(c->routes[0].max_bytes, 2048);
    ck_assert_uint_eq(c->routes[0].key_max_bytes, 1000);
    bd_config_free(c);
}
END_TEST

START_TEST(test_key_outside_section)
{
    expect_errors("; leading comment\nsocket = /x\n" TAIL,
                  "t.conf:2: socket: key outside any section (put it under "
                  "[daemon], [sink.NAME] or [route.NAME])\n");
}
END_TEST

START_TEST(test_syntax_errors)
{
    expect_errors("[daemon]\nthis is not a key\n[sink.s\nplugin = p\n"
                  "[sink.s] junk\n= value\n" TAIL,
                  "t.conf:2: syntax error: expected \"key = value\", [section] "
                  "or a comment\n"
                  "t.conf:3: syntax error: section header without ']'\n"
                  "t.conf:5: syntax error: text after ']'\n"
                  "t.conf:6: syntax error: no key name before '='\n");
    /* the last line, without a newline */
    expect_errors(TAIL "oops",
                  "t.conf:6: syntax error: expected \"key = value\", [section] "
                  "or a comment\n");
}
END_TEST

START_TEST(test_no_sections)
{
    expect_errors("",
                  "t.conf: no [sink.NAME] section (at least one is required)\n"
                  "t.conf: no [route.NAME] section (at least one is required)\n");
    expect_errors("[daemon]\n[route.r]\nmatch = *\nsink = s\n",
                  "t.conf:2: [route.r] sink: unknown sink \"s\" (no [sink.s] section)\n"
                  "t.conf: no [sink.NAME] section (at least one is required)\n");
}
END_TEST

/* Several problems of every kind in one file: all of them, in line order. */
START_TEST(test_many_errors)
{
    expect_errors("top = 1\n"                    /* 1 */
                  "[daemon]\n"                   /* 2 */
                  "max_conns = 0\n"              /* 3 */
                  "colour = blue\n"              /* 4 */
                  "conn_out_hard = 1M\n"         /* 5: soft 4M */
                  "[sink.a]\n"                   /* 6: no plugin */
                  "x = 1\n"                      /* 7 */
                  "x = 2\n"                      /* 8 */
                  "[route.r]\n"                  /* 9: unknown sink */
                  "match = *\n"                  /* 10 */
                  "sink = b\n"                   /* 11 */
                  "policy = sometimes\n"         /* 12 */
                  "garbage\n"                    /* 13 */
                  "[weird]\n",                   /* 14 */
                  "t.conf:1: top: key outside any section (put it under "
                  "[daemon], [sink.NAME] or [route.NAME])\n"
                  "t.conf:3: [daemon] max_conns: \"0\": out of range (1..1000000)\n"
                  "t.conf:4: [daemon] colour: unknown key\n"
                  "t.conf:5: [daemon] conn_out_hard: 1M is not more than "
                  "conn_out_soft (4M)\n"
                  "t.conf:6: [sink.a] plugin: required key is missing\n"
                  "t.conf:8: [sink.a] x: duplicate key (first set on line 7)\n"
                  "t.conf:9: [route.r] sink: unknown sink \"b\" (no [sink.b] section)\n"
                  "t.conf:12: [route.r] policy: \"sometimes\": must be one of "
                  "immediate, size, duration, balanced\n"
                  "t.conf:13: syntax error: expected \"key = value\", [section] "
                  "or a comment\n"
                  "t.conf:14: [weird]: unknown section (expected [daemon], "
                  "[sink.NAME] or [route.NAME])\n");
}
END_TEST

/* A NUL byte can only come from a file. */
START_TEST(test_nul_byte_in_file)
{
    char path[] = "/tmp/check_config_XXXXXX";
    static const char body[] = "[sink.s]\nplugin = p\nx = a\0b\n"
                               "[route.r]\nmatch = *\nsink = s\n";
    char *errs = NULL, want[128];
    int fd = mkstemp(path);

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, body, sizeof(body) - 1), (ssize_t)sizeof(body) - 1);
    close(fd);
    ck_assert_ptr_null(bd_config_load(path, &errs));
    snprintf(want, sizeof(want), "%s:3: NUL byte in line\n", path);
    ck_assert_str_eq(errs, want);
    bd_free(errs);
    unlink(path);
}
END_TEST

/* ---- suite -------------------------------------------------------------- */

static Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc;

    tc = tcase_create("core");
    tcase_add_test(tc, test_sample_loads);
    tcase_add_test(tc, test_sample_examples_load);
    tcase_add_test(tc, test_defaults_without_daemon_section);
    tcase_add_test(tc, test_order_kept);
    tcase_add_test(tc, test_syntax_variants);
    tcase_add_test(tc, test_size_suffixes);
    tcase_add_test(tc, test_enums);
    tcase_add_test(tc, test_print_round_trip);
    tcase_add_test(tc, test_free_null);
    tcase_add_test(tc, test_missing_file);
    tcase_add_test(tc, test_alloc_failures_sample);
    tcase_add_test(tc, test_alloc_failures_errors);
    suite_add_tcase(s, tc);

    tc = tcase_create("limits");
    tcase_add_loop_test(tc, test_limit, 0, (int)(sizeof(limits) / sizeof(limits[0])));
    tcase_add_test(tc, test_socket_path_length);
    tcase_add_test(tc, test_name_length);
    tcase_add_test(tc, test_line_length);
    tcase_add_test(tc, test_error_cap);
    suite_add_tcase(s, tc);

    tc = tcase_create("malformed");
    tcase_add_test(tc, test_unknown_section);
    tcase_add_test(tc, test_unknown_key);
    tcase_add_test(tc, test_duplicate_key);
    tcase_add_test(tc, test_duplicate_section);
    tcase_add_test(tc, test_missing_required);
    tcase_add_test(tc, test_unknown_sink);
    tcase_add_test(tc, test_bad_enum);
    tcase_add_test(tc, test_bad_numbers);
    tcase_add_test(tc, test_negative_numbers);
    tcase_add_test(tc, test_empty_strings);
    tcase_add_test(tc, test_isolation);
    tcase_add_test(tc, test_soft_not_below_hard);
    tcase_add_test(tc, test_route_cross_checks);
    tcase_add_test(tc, test_queue_bounds_below_batch_limits);
    tcase_add_test(tc, test_key_outside_section);
    tcase_add_test(tc, test_syntax_errors);
    tcase_add_test(tc, test_no_sections);
    tcase_add_test(tc, test_many_errors);
    tcase_add_test(tc, test_nul_byte_in_file);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(config_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
