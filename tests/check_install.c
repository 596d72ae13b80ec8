/*
 * check_install.c - `make install` as a packager runs it: a plain
 * `make` (default PREFIX), then `make install DESTDIR=... PREFIX=/usr`
 * on that same build, twice, into a temporary root. Checks the tree:
 * /usr paths in the daemon's default sink_dir, the units and batchd.pc
 * (never the build's /usr/local), no test-only sinks, the sample config
 * beside an edited one that a reinstall keeps, sysusers.d/tmpfiles.d
 * matching the units, the man pages and the bash completion; and
 * `systemd-analyze verify` on the installed units when it is there.
 *
 * The build goes to its own directory (not the suites' $BUILD) with
 * -O0: it compiles the daemon, the library and every sink once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <check.h>

#include "helpers.h"

#define MAKE_MS 900000

static char tmp[256];        /* the test's directory: build/ and root/ */

static char *path_in(const char *rel)
{
    char *p;

    ck_assert_int_gt(asprintf(&p, "%s/%s", tmp, rel), 0);
    return p;
}

/* make -C <src> BUILD=<tmp>/build OPT=-O0 [args]; asserts exit 0. The
 * outer make's MAKEFLAGS (command-line variables such as SAN=1, its
 * jobserver) must not leak in. */
static void run_make(const char *a1, const char *a2, const char *a3)
{
    char build[300];
    const char *argv[] = {"env", "-u", "MAKEFLAGS", "-u", "MFLAGS", "-u",
                          "MAKELEVEL", "make", "-s", "-j2", "-C",
                          bd_test_src_dir(), build, "OPT=-O0", a1, a2, a3, NULL};
    char *out, *err;
    int rc;

    snprintf(build, sizeof(build), "BUILD=%s/build", tmp);
    rc = bd_test_run(argv, MAKE_MS, &out, &err);
    ck_assert_msg(rc == 0, "make %s %s %s: exit %d\n%s\n%s", a1 ? a1 : "",
                  a2 ? a2 : "", a3 ? a3 : "", rc, out, err);
    free(out);
    free(err);
}

static void install_tree(void)
{
    char destdir[300];

    snprintf(destdir, sizeof(destdir), "DESTDIR=%s/root", tmp);
    run_make("install", destdir, "PREFIX=/usr");
}

static char *read_in(const char *rel)
{
    char *p = path_in(rel);
    char *s = bd_test_read_file(p, NULL);

    ck_assert_msg(s != NULL, "%s missing", p);
    free(p);
    return s;
}

static int exists_in(const char *rel)
{
    char *p = path_in(rel);
    struct stat st;
    int ok = stat(p, &st) == 0;

    free(p);
    return ok;
}

/* The installed daemon's built-in sink_dir, from its option table. */
static void assert_default_sink_dir(void)
{
    char *bin = path_in("root/usr/bin/batchd");
    const char *argv[] = {bin, "--dump-options", NULL};
    char *out, *err;

    ck_assert_int_eq(bd_test_run(argv, 20000, &out, &err), 0);
    ck_assert_msg(strstr(out, "daemon\tsink_dir\tstring\t/usr/lib/batchd/sinks\t"),
                  "default sink_dir is not /usr's: %s", out);
    free(out);
    free(err);
    free(bin);
}

static void assert_units(void)
{
    char *svc = read_in("root/usr/lib/systemd/system/batchd.service");
    char *sock = read_in("root/usr/lib/systemd/system/batchd.socket");
    char *pc = read_in("root/usr/lib/pkgconfig/batchd.pc");
    char *users = read_in("root/usr/lib/sysusers.d/batchd.conf");
    char *tmpf = read_in("root/usr/lib/tmpfiles.d/batchd.conf");

    ck_assert_msg(strstr(svc, "\nExecStart=/usr/bin/batchd -c /etc/batchd/batchd.conf\n"),
                  "unit: %s", svc);
    ck_assert_msg(strstr(svc, "/usr/local") == NULL, "unit names /usr/local");
    ck_assert_msg(strstr(pc, "prefix=/usr\n") && strstr(pc, "libdir=/usr/lib\n") &&
                  strstr(pc, "/usr/local") == NULL, "batchd.pc: %s", pc);
    /* The user and group the units name exist through sysusers.d; the
     * directories they use through tmpfiles.d. */
    ck_assert_msg(strstr(svc, "\nUser=batchd\n") && strstr(svc, "\nGroup=batchd\n") &&
                  strstr(sock, "\nSocketGroup=batchd\n") &&
                  strstr(sock, "\nSocketUser=batchd\n"), "unit users: %s", sock);
    ck_assert_msg(strstr(users, "\nu batchd "), "sysusers: %s", users);
    ck_assert_msg(strstr(tmpf, "\nd /run/batchd 0750 batchd batchd") &&
                  strstr(tmpf, "\nd /var/lib/batchd "), "tmpfiles: %s", tmpf);
    free(svc);
    free(sock);
    free(pc);
    free(users);
    free(tmpf);
}

/* systemd-analyze verify needs ExecStart= to exist: check copies that
 * point into the temporary root. */
static void verify_units(void)
{
    char script[2048], *out, *err;
    const char *argv[] = {"sh", "-c", script, NULL};
    int rc;

    if (access("/usr/bin/systemd-analyze", X_OK) != 0) {
        fprintf(stderr, "check_install: no systemd-analyze, units not verified\n");
        return;
    }
    snprintf(script, sizeof(script),
             "set -e; mkdir -p %1$s/verify; for u in batchd.service batchd.socket; do "
             "sed 's|/usr/bin/batchd|%1$s/root/usr/bin/batchd|' "
             "%1$s/root/usr/lib/systemd/system/$u > %1$s/verify/$u; done; "
             "cd %1$s/verify && systemd-analyze verify ./batchd.socket ./batchd.service",
             tmp);
    rc = bd_test_run(argv, 60000, &out, &err);
    ck_assert_msg(rc == 0, "systemd-analyze verify: %d\n%s%s", rc, out, err);
    free(out);
    free(err);
}

START_TEST(test_install_tree)
{
    static const char *const docs[] = {
        "root/usr/share/man/man8/batchd.8", "root/usr/share/man/man1/batchctl.1",
        "root/usr/share/man/man5/batchd.conf.5", "root/usr/share/man/man3/libbatchd.3",
        "root/usr/share/bash-completion/completions/batchctl", NULL,
    };
    char *conf, *sample, *src, *edited;
    FILE *f;

    snprintf(tmp, sizeof(tmp), "/tmp/batchd-install-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmp));
    bd_test_track_dir(tmp, 1);
    run_make("all", NULL, NULL);             /* a plain make: /usr/local */
    install_tree();

    assert_default_sink_dir();
    assert_units();
    ck_assert(exists_in("root/usr/lib/batchd/sinks/echo.so"));
    ck_assert_msg(!exists_in("root/usr/lib/batchd/sinks/chaos.so") &&
                  !exists_in("root/usr/lib/batchd/sinks/cost.so"),
                  "a test-only sink was installed");
    for (int i = 0; docs[i] != NULL; i++)
        ck_assert_msg(exists_in(docs[i]), "%s not installed", docs[i]);
    verify_units();

    /* An operator edits the config; a reinstall keeps the edit and
     * refreshes only the sample. */
    edited = path_in("root/etc/batchd/batchd.conf");
    f = fopen(edited, "w");
    ck_assert_ptr_nonnull(f);
    fputs("# edited by the operator\n[daemon]\n", f);
    fclose(f);
    install_tree();
    conf = read_in("root/etc/batchd/batchd.conf");
    ck_assert_str_eq(conf, "# edited by the operator\n[daemon]\n");
    free(conf);
    sample = read_in("root/etc/batchd/batchd.conf.sample");
    ck_assert_int_gt(asprintf(&src, "%s/conf/batchd.conf", bd_test_src_dir()), 0);
    conf = bd_test_read_file(src, NULL);
    ck_assert_ptr_nonnull(conf);
    ck_assert_str_eq(sample, conf);
    free(conf);
    free(sample);
    free(src);
    free(edited);
    bd_test_remove_tree(tmp);
    bd_test_track_dir(tmp, 0);
}
END_TEST

static Suite *install_suite(void)
{
    Suite *s = suite_create("install");
    TCase *tc = tcase_create("tree");

    tcase_set_timeout(tc, 1200);
    bd_test_add(tc, test_install_tree);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(install_suite());
    int failed;

    srunner_run_all(sr, CK_ENV);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
