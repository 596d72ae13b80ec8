/*
 * check_stats.c - the stats command (PROTOCOL.md section 11) against a
 * real daemon, read with jansson so the JSON must parse:
 *   - per-key detail (names, counters) only for admins; other clients
 *     get the totals (issue 10, item 2), checked from a client process
 *     that runs as uid/gid NOBODY;
 *   - per-key rejects by reason and items in flight; live keys apart
 *     from idle ones kept in the cache (item 10);
 *   - an unknown format is refused BAD_REQUEST naming the field (item 11).
 */
#include <check.h>
#include <errno.h>
#include <grp.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "batchd.h"
#include "helpers.h"

#define NOBODY 65534              /* the non-admin uid/gid of these tests */

/* A sink call that never ends while the test looks (the daemon abandons
 * it at shutdown_grace_ms), so items stay in flight deterministically. */
#define STUCK_SINK \
    "[sink.stuck]\nplugin = @TSINKS@/record.so\nledger = @DIR@/ledger\n" \
    "delay_ms = 3600000\n\n"

/* "[daemon]" lines, then a route "held.*" whose first batch of 3 sticks
 * in its sink, and a route "fast.*" answered at once. */
#define CONF(daemon_lines) \
    "[daemon]\nsocket_mode = 0666\nshutdown_grace_ms = 200\n" daemon_lines "\n" \
    STUCK_SINK "[sink.e]\nplugin = echo\n\n" \
    "[route.held]\nmatch = held.*\nsink = stuck\npolicy = size\nmax_items = 3\n" \
    "max_bytes = 100\nkey_max_items = 5\n\n" \
    "[route.fast]\nmatch = fast.*\nsink = e\npolicy = immediate\n"

/* A daemon whose socket uid NOBODY can reach: 0666 in a 0755 directory. */
static struct bd_test_daemon *open_daemon(const char *conf)
{
    struct bd_test_daemon *d = bd_test_daemon_new(conf);

    ck_assert_int_eq(chmod(bd_test_daemon_dir(d), 0755), 0);
    bd_test_daemon_spawn(d, NULL);
    bd_test_daemon_wait_ready(d);
    return d;
}

/* stats with format fmt (NULL: no args) on c: status and a new body. */
static int stats_raw(struct batchd_client *c, const char *fmt, char **body)
{
    const char *kv[] = {"format", fmt};
    struct batchd_reply *r = NULL;
    int status;

    if (batchd_control(c, "stats", fmt ? kv : NULL, fmt ? 1 : 0, 10000, &r) !=
        BATCHD_CLIENT_OK)
        return -1;
    status = r->status;
    *body = strndup(r->data ? r->data : "", r->len);
    batchd_reply_free(r);
    return status;
}

static json_t *stats_json(struct bd_test_daemon *d)
{
    char *s = bd_test_stats_json(d);
    json_error_t e;
    json_t *j = json_loads(s, 0, &e);

    ck_assert_msg(j != NULL, "stats JSON does not parse (%s at %d): %s", e.text,
                  e.position, s);
    free(s);
    return j;
}

static long long jint(json_t *o, const char *path)
{
    json_t *v = json_object_get(o, path);

    ck_assert_msg(json_is_integer(v), "no integer \"%s\"", path);
    return json_integer_value(v);
}

/* One SEND to key; asserts its status. */
static void send_one(struct batchd_client *c, const char *key, const void *p,
                     size_t n, int status)
{
    struct batchd_reply *r = NULL;

    ck_assert_int_eq(batchd_send(c, key, p, n, NULL, 10000, &r), BATCHD_CLIENT_OK);
    ck_assert_msg(r->status == status, "SEND %s (%zu bytes): %s, want %s", key, n,
                  batchd_status_name(r->status), batchd_status_name(status));
    batchd_reply_free(r);
}

/* Send 3 items to held.k (they leave as one batch and stick in the sink),
 * wait until stats show them in flight, then 5 more (queued: the key's
 * one call slot is taken; now at key_max_items), one too many
 * (OVERLOADED) and one over max_bytes (BAD_REQUEST); then one LOAD to
 * fast.k, answered at once (its key goes idle). */
static void load_keys(struct bd_test_daemon *d, struct batchd_client *c)
{
    char big[101];
    json_t *j = NULL;

    for (int i = 0; i < 3; i++)
        send_one(c, "held.k", "x", 1, BATCHD_ACCEPTED);
    for (double end = bd_test_now_ms() + 10000; bd_test_now_ms() < end;) {
        json_decref(j);
        j = stats_json(d);
        if (jint(j, "inflight_items") == 3)
            break;
        usleep(20000);
    }
    ck_assert_msg(jint(j, "inflight_items") == 3, "3 in flight: %lld",
                  jint(j, "inflight_items"));
    json_decref(j);
    for (int i = 0; i < 5; i++)
        send_one(c, "held.k", "x", 1, BATCHD_ACCEPTED);
    send_one(c, "held.k", "x", 1, BATCHD_OVERLOADED);
    memset(big, 'b', sizeof(big));
    send_one(c, "held.k", big, sizeof(big), BATCHD_BAD_REQUEST);
    bd_test_assert_load(d, "fast.k", "f", BATCHD_OK);
}

/* ---- item 10: what the counters say ---------------------------------------------- */

START_TEST(test_stats_per_key_reasons_inflight_live_idle)
{
    struct bd_test_daemon *d = open_daemon(CONF(""));
    struct batchd_client *c = bd_test_connect(d);
    json_t *j, *keys, *k, *why, *fast;
    long long idle;

    load_keys(d, c);
    j = stats_json(d);
    ck_assert_int_eq(jint(j, "keys_live"), 1);            /* held.k */
    idle = jint(j, "keys_idle");                          /* fast.k, unless swept */
    ck_assert_msg(idle == 0 || idle == 1, "keys_idle %lld", idle);
    ck_assert_int_eq(jint(j, "nkeys"), 1 + idle);
    why = json_object_get(j, "rejects_by_reason");
    ck_assert_int_eq(jint(why, "key_max_items"), 1);
    ck_assert_int_eq(jint(why, "max_bytes"), 1);
    ck_assert_int_eq(jint(why, "max_queued_items"), 0);
    ck_assert(json_is_true(json_object_get(j, "key_detail")));
    keys = json_object_get(j, "keys");
    k = json_object_get(keys, "held.k");
    ck_assert_msg(k != NULL, "held.k not listed");
    ck_assert(json_is_false(json_object_get(k, "idle")));
    ck_assert_int_eq(jint(k, "inflight"), 1);
    ck_assert_int_eq(jint(k, "inflight_items"), 3);
    ck_assert_int_eq(jint(k, "queued_items"), 5);
    ck_assert_int_eq(jint(k, "rejects"), 2);
    why = json_object_get(k, "rejects_by_reason");
    ck_assert_int_eq(json_object_size(why), 8); /* enum bd_reject: "spool" too */
    ck_assert_int_eq(jint(why, "key_max_items"), 1);
    ck_assert_int_eq(jint(why, "max_bytes"), 1);
    ck_assert_int_eq(jint(why, "key_max_bytes"), 0);
    /* Queued items per lane: no priority was used, all in lane 0. */
    ck_assert_int_eq(json_object_size(json_object_get(k, "lanes")), 1);
    ck_assert_int_eq(jint(json_object_get(k, "lanes"), "0"), 5);
    fast = json_object_get(keys, "fast.k");
    ck_assert_msg((fast != NULL) == (idle == 1), "fast.k listed: %d, keys_idle %lld",
                  fast != NULL, idle);
    if (fast != NULL)
        ck_assert(json_is_true(json_object_get(fast, "idle")));
    ck_assert_int_eq(jint(j, "keys_listed"), 1 + idle);
    json_decref(j);
    batchd_free(c);
    bd_test_daemon_stop(d);
}
END_TEST

/* The text rendering says the same. */
START_TEST(test_stats_text_matches)
{
    struct bd_test_daemon *d = open_daemon(CONF(""));
    struct batchd_client *c = bd_test_connect(d);
    char *s = NULL;

    load_keys(d, c);
    ck_assert_int_eq(stats_raw(c, "text", &s), BATCHD_OK);
    ck_assert_msg(strstr(s, "\nkeys_live 1\n") != NULL, "%s", s);
    ck_assert_msg(strstr(s, "\nrejects_by_reason key_max_items=1 max_bytes=1\n") != NULL,
                  "%s", s);
    ck_assert_msg(strstr(s, "\nkey held.k route=held idle=0 queued=5 bytes=5 "
                         "retry_waiting=0 inflight=1 inflight_items=3 batches=1 "
                         "items=3 max_batch=3 coalesced=0 rejects=2 key_max_items=1 "
                         "max_bytes=1 lanes=0:5\n") != NULL, "%s", s);
    free(s);
    batchd_free(c);
    bd_test_daemon_stop(d);
}
END_TEST

/* ---- item 11: the format argument ------------------------------------------------- */

START_TEST(test_stats_unknown_format_refused)
{
    struct bd_test_daemon *d = bd_test_daemon_start(CONF(""));
    struct batchd_client *c = bd_test_connect(d);
    static const char *const bad[] = {"xml", "JSON", "", "text "};
    char *s = NULL;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_msg(stats_raw(c, bad[i], &s) == BATCHD_BAD_REQUEST,
                      "format \"%s\": %s", bad[i], s);
        ck_assert_msg(strstr(s, "format") != NULL, "message '%s' does not name format", s);
        free(s);
    }
    ck_assert_int_eq(stats_raw(c, "json", &s), BATCHD_OK);
    ck_assert(s[0] == '{');
    free(s);
    ck_assert_int_eq(stats_raw(c, NULL, &s), BATCHD_OK);
    ck_assert(s[0] == '{');
    free(s);
    ck_assert_int_eq(stats_raw(c, "text", &s), BATCHD_OK);
    ck_assert(strncmp(s, "version ", 8) == 0);
    free(s);
    batchd_free(c);
    bd_test_daemon_stop(d);
}
END_TEST

/* ---- item 2: per-key detail for admins only --------------------------------------- */

struct nobody_case {
    const char *socket;
    int detail;               /* is NOBODY an admin here? */
};

/* In a child as uid/gid NOBODY: stats in JSON and text. 0 when what it
 * shows matches c->detail. */
static int nobody_stats(int idx, void *arg)
{
    const struct nobody_case *nc = arg;
    struct batchd_client *c;
    char *js = NULL, *tx = NULL;
    int rc = 0;

    if (setgroups(0, NULL) != 0 || setresgid(NOBODY, NOBODY, NOBODY) != 0 ||
        setresuid(NOBODY, NOBODY, NOBODY) != 0)
        return bd_test_child_fail(idx, "cannot become uid %d: %s", NOBODY,
                                  strerror(errno));
    c = batchd_connect_unix(nc->socket, 10000);
    if (batchd_err(c) != 0)
        return bd_test_child_fail(idx, "connect: %s", batchd_errstr(c));
    if (stats_raw(c, "json", &js) != BATCHD_OK || stats_raw(c, "text", &tx) != BATCHD_OK)
        rc = bd_test_child_fail(idx, "stats refused: %s", batchd_errstr(c));
    else if ((strstr(js, "held.k") != NULL) != nc->detail ||
             (strstr(tx, "held.k") != NULL) != nc->detail)
        rc = bd_test_child_fail(idx, "key names %s:\n%s\n%s",
                                nc->detail ? "missing" : "shown", js, tx);
    else if (strstr(js, nc->detail ? "\"key_detail\":true" : "\"key_detail\":false")
             == NULL || strstr(js, "\"keys_live\":1,") == NULL ||
             strstr(js, "\"key_max_items\":1,") == NULL)
        rc = bd_test_child_fail(idx, "totals or key_detail wrong: %s", js);
    else if (!nc->detail && strstr(tx, "per-key detail is for admins") == NULL)
        rc = bd_test_child_fail(idx, "text does not say why: %s", tx);
    free(js);
    free(tx);
    batchd_free(c);
    return rc;
}

static void nobody_sees(const char *daemon_lines, int detail)
{
    char conf[2048];
    struct bd_test_daemon *d;
    struct batchd_client *c;
    struct nobody_case nc;
    json_t *j;

    snprintf(conf, sizeof(conf), CONF("%s"), daemon_lines);
    d = open_daemon(conf);
    c = bd_test_connect(d);
    load_keys(d, c);
    /* root (the test) is an admin: it sees the keys */
    j = stats_json(d);
    ck_assert(json_is_true(json_object_get(j, "key_detail")));
    ck_assert_ptr_nonnull(json_object_get(json_object_get(j, "keys"), "held.k"));
    json_decref(j);
    nc.socket = bd_test_daemon_socket(d);
    nc.detail = detail;
    ck_assert_msg(bd_test_procs_wait(bd_test_procs_start(1, nobody_stats, &nc), 20000,
                                     NULL) == 0,
                  "uid %d with \"%s\": see above", NOBODY, daemon_lines);
    batchd_free(c);
    bd_test_daemon_stop(d);
}

START_TEST(test_stats_key_detail_for_admins_only)
{
    if (geteuid() != 0) {
        fprintf(stderr, "stats admin: skipped: needs root to run a client as uid %d\n",
                NOBODY);
        return;
    }
    nobody_sees("", 0);
    nobody_sees("admin_uids = 65534", 1);
    nobody_sees("admin_gids = 65534", 1);
}
END_TEST

static Suite *stats_suite(void)
{
    Suite *s = suite_create("stats");
    TCase *core = tcase_create("core");

    tcase_set_timeout(core, 120);
    bd_test_add(core, test_stats_per_key_reasons_inflight_live_idle);
    bd_test_add(core, test_stats_text_matches);
    bd_test_add(core, test_stats_unknown_format_refused);
    bd_test_add(core, test_stats_key_detail_for_admins_only);
    suite_add_tcase(s, core);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(stats_suite());
    int failed;

    srunner_run_all(sr, CK_ENV);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
