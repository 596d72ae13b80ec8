/*
 * check_bench.c - a smoke test so that the benchmark scripts cannot rot.
 *
 * Runs `bench/run --quick --no-redis --no-build` (the binaries come from
 * the environment tests/run.sh sets: BATCHD_BIN, BATCHCTL_BIN,
 * BATCHD_SINK_DIR, BATCHD_BENCH_DIR) into a temporary output directory,
 * then checks the shape of what it wrote: a table row for every server,
 * and every run with items/s above zero and no failed request. It never
 * looks at how fast anything was: timings belong to bench/, not to tests.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#include "helpers.h"

#define RUN_TIMEOUT_MS 90000   /* the quick run takes a few seconds */

static char out_dir[] = "/tmp/batchd-check-bench-XXXXXX";

/* The value of "key=" in a raw loadgen line, copied into buf. */
static const char *raw_field(const char *line, const char *key, char *buf,
                             size_t n)
{
    size_t kl = strlen(key);
    const char *p = line;

    while ((p = strstr(p, key)) != NULL) {
        if ((p == line || p[-1] == ' ') && p[kl] == '=') {
            size_t len = strcspn(p + kl + 1, " \n");

            snprintf(buf, n, "%.*s", (int)len, p + kl + 1);
            return buf;
        }
        p += kl;
    }
    return NULL;
}

/* The last part of a long text, for assertion messages (Check caps
 * their length). */
static const char *tail(const char *s)
{
    size_t n = s ? strlen(s) : 0;

    return s == NULL ? "(none)" : n > 1500 ? s + n - 1500 : s;
}

static char *out_file(const char *name)
{
    char path[256];

    snprintf(path, sizeof(path), "%s/%s", out_dir, name);
    return bd_test_read_file(path, NULL);
}

START_TEST(test_quick_run)
{
    char script[1024];
    const char *argv[] = {"bash", script, "--quick", "--no-redis", "--no-build",
                          "--out-dir", out_dir, NULL};
    static const char *const servers[] = {"floor", "batchd-null", "batchd-echo"};
    char *out = NULL, *err = NULL, *md, *raw, *line, *save = NULL;
    int rc, lines = 0;

    ck_assert_ptr_nonnull(mkdtemp(out_dir));
    snprintf(script, sizeof(script), "%s/bench/run", bd_test_src_dir());
    rc = bd_test_run(argv, RUN_TIMEOUT_MS, &out, &err);
    ck_assert_msg(rc == 0, "bench/run --quick exited %d\nstdout:\n%s\nstderr:\n%s",
                  rc, tail(out), tail(err));

    md = out_file("quick.md");
    ck_assert_msg(md != NULL, "bench/run wrote no quick.md");
    ck_assert_msg(strstr(out, "| server |") != NULL, "no table on stdout:\n%s",
                  tail(out));
    for (size_t i = 0; i < sizeof(servers) / sizeof(servers[0]); i++) {
        char row[64];

        snprintf(row, sizeof(row), "| %s |", servers[i]);
        ck_assert_msg(strstr(md, row) != NULL, "no table row for %s:\n%s",
                      servers[i], tail(md));
    }
    ck_assert_msg(strstr(md, "FAILED") == NULL, "a run failed:\n%s", tail(md));
    ck_assert_msg(strstr(md, "## Batching pays") != NULL,
                  "no batching section:\n%s", tail(md));
    ck_assert_msg(strstr(md, "## libbatchd pipeline depth") != NULL,
                  "no pipeline depth section:\n%s", tail(md));

    raw = out_file("quick.raw");
    ck_assert_msg(raw != NULL, "bench/run wrote no quick.raw");
    for (line = strtok_r(raw, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char v[64];

        lines++;
        ck_assert_msg(raw_field(line, "error", v, sizeof(v)) == NULL,
                      "a run reported an error: %s", line);
        ck_assert_msg(raw_field(line, "failed", v, sizeof(v)) && strcmp(v, "0") == 0,
                      "a run had failed requests: %s", line);
        ck_assert_msg(raw_field(line, "items_s", v, sizeof(v)) && atof(v) > 0,
                      "a run reported no items/s: %s", line);
    }
    /* 2 cells x 3 servers, the two batching runs, the three depths. */
    ck_assert_msg(lines >= 11, "only %d result lines:\n%s", lines, tail(out));

    free(raw);
    free(md);
    free(out);
    free(err);
    if (getenv("BATCHD_TEST_KEEP") == NULL) {
        const char *rm[] = {"rm", "-rf", out_dir, NULL};

        bd_test_run(rm, 10000, NULL, NULL);
    }
}
END_TEST

static Suite *bench_suite(void)
{
    Suite *s = suite_create("bench");
    TCase *core = tcase_create("core");

    tcase_set_timeout(core, RUN_TIMEOUT_MS / 1000 + 10);
    bd_test_add(core, test_quick_run);
    suite_add_tcase(s, core);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(bench_suite());
    int failed;

    srunner_run_all(sr, CK_ENV);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
