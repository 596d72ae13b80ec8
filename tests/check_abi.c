/*
 * check_abi.c - the sink ABI only grows (DESIGN section 5): a plugin
 * built against the frozen version-1 header (tests/sinks/v1_echo.c with
 * tests/sinks/abi_v1/batchd_sink.h) loads in today's daemon and works
 * unchanged, in process and in a sink runner (isolation = process):
 * OK payloads, a FAIL, and a RETRY that succeeds on its second attempt.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "batchd.h"
#include "batchd_sink.h"
#include "helpers.h"

/* Start a daemon with v1_echo under isolation (inproc or process). */
static struct bd_test_daemon *start_v1(const char *isolation)
{
    char conf[512];

    snprintf(conf, sizeof(conf),
             "[sink.v1]\nplugin = @TSINKS@/v1_echo.so\nisolation = %s\n"
             "[route.all]\nmatch = *\nsink = v1\nmax_delay_us = 20000\n"
             "retry_base_ms = 10\nretry_cap_ms = 50\nmax_attempts = 3\n",
             isolation);
    return bd_test_daemon_start(conf);
}

static void v1_works(const char *isolation)
{
    static const char *const in[] = {"a", "fail", "retry-once", "", "bb"};
    struct bd_test_reply out[5];
    struct bd_test_daemon *d = start_v1(isolation);
    char *log;

    bd_test_load_all(d, "k", in, 5, NULL, 10000, out);
    ck_assert_int_eq(out[0].status, BATCHD_OK);
    ck_assert_str_eq(out[0].body, "v1:a");
    ck_assert_int_eq(out[1].status, BATCHD_FAIL);
    ck_assert_str_eq(out[1].body, "v1 says no");
    ck_assert_int_eq(out[2].status, BATCHD_OK);
    ck_assert_str_eq(out[2].body, "v1:retry-once");
    ck_assert_int_eq(out[3].status, BATCHD_OK);
    ck_assert_str_eq(out[3].body, "v1:");
    ck_assert_int_eq(out[4].status, BATCHD_OK);
    ck_assert_str_eq(out[4].body, "v1:bb");
    bd_test_replies_free(out, 5);
    log = bd_test_daemon_log(d);
    ck_assert_msg(strstr(log, "v1_echo") != NULL, "log: %s", log);
    free(log);
    bd_test_daemon_stop(d);
}

START_TEST(test_v1_plugin_in_process)
{
    /* The header this file sees is the current one: the plugin's is not. */
    ck_assert_int_ge(BATCHD_SINK_ABI_VERSION, 2);
    v1_works("inproc");
}
END_TEST

START_TEST(test_v1_plugin_in_runner)
{
    v1_works("process");
}
END_TEST

/* --check-config dlopens and checks a v1 plugin the same way. */
START_TEST(test_v1_plugin_check_config)
{
    struct bd_test_daemon *d = bd_test_daemon_new(
        "[sink.v1]\nplugin = @TSINKS@/v1_echo.so\n"
        "[route.all]\nmatch = *\nsink = v1\n");
    const char *argv[] = {bd_test_batchd_bin(), "--check-config", "-c",
                          bd_test_daemon_conf(d), "--sink-dir",
                          bd_test_sink_dir(), NULL};
    char *out = NULL, *err = NULL;
    int rc = bd_test_run(argv, bd_test_scaled(10000), &out, &err);

    ck_assert_msg(rc == 0, "--check-config: %d: %s%s", rc, out, err);
    free(out);
    free(err);
    bd_test_daemon_free(d);
}
END_TEST

static Suite *abi_suite(void)
{
    Suite *s = suite_create("abi");
    TCase *tc = tcase_create("v1");

    tcase_set_timeout(tc, 60);
    bd_test_add(tc, test_v1_plugin_in_process);
    bd_test_add(tc, test_v1_plugin_in_runner);
    bd_test_add(tc, test_v1_plugin_check_config);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(abi_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
