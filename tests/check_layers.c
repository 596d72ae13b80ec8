/*
 * check_layers.c - the daemon's layer map (daemon/LAYERS.md, DESIGN
 * section 10) holds: every file of daemon/ and proto/ has a layer, and
 * none includes a header of a higher layer.
 *
 * One test per source file (a loop test over the files found at start),
 * so a bad include names its file in the summary; plus tests that the
 * checker itself refuses an upward include and an unmapped file, so the
 * suite can fail.
 */
#include <check.h>
#include <dirent.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

static const char *const layer_names[] = {
    "proto", "basics", "sink", "spool", "core", "io", "server",
};
#define NLAYERS (sizeof(layer_names) / sizeof(layer_names[0]))

#define MAX_RULES 128
#define MAX_FILES 256

struct rule {
    char pattern[128];        /* path from the top, may be a glob */
    int layer;                /* index in layer_names */
};

static struct rule rules[MAX_RULES];
static size_t nrules;
static char files[MAX_FILES][128]; /* daemon/ and proto/ sources found */
static size_t nfiles;

static int layer_index(const char *name)
{
    for (size_t i = 0; i < NLAYERS; i++)
        if (strcmp(layer_names[i], name) == 0)
            return (int)i;
    return -1;
}

/* The layer of path (from the top), or -1 when the map has none. Exact
 * entries win over globs. */
static int layer_of(const char *path)
{
    for (size_t i = 0; i < nrules; i++)
        if (strcmp(rules[i].pattern, path) == 0)
            return rules[i].layer;
    for (size_t i = 0; i < nrules; i++)
        if (fnmatch(rules[i].pattern, path, FNM_PATHNAME) == 0)
            return rules[i].layer;
    return -1;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    char *buf;
    long n;

    if (f == NULL)
        return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    rewind(f);
    buf = malloc((size_t)n + 1);
    if (buf != NULL && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    if (buf != NULL)
        buf[n] = '\0';
    fclose(f);
    return buf;
}

/* Read the ```layers block of daemon/LAYERS.md. Returns an error text
 * or NULL. */
static const char *load_map(void)
{
    static char err[256];
    char path[512], *text, *p, *line;
    int in_block = 0;

    snprintf(path, sizeof(path), "%s/daemon/LAYERS.md", bd_test_src_dir());
    text = slurp(path);
    if (text == NULL) {
        snprintf(err, sizeof(err), "cannot read %.200s", path);
        return err;
    }
    nrules = 0;
    for (p = text; (line = strsep(&p, "\n")) != NULL;) {
        char pat[128], name[32];

        if (strncmp(line, "```", 3) == 0) {
            if (in_block)
                break;
            in_block = strcmp(line, "```layers") == 0;
            continue;
        }
        if (!in_block || sscanf(line, "%127s %31s", pat, name) != 2)
            continue;
        if (layer_index(name) < 0 || nrules == MAX_RULES) {
            snprintf(err, sizeof(err), "LAYERS.md: bad line '%.200s'", line);
            free(text);
            return err;
        }
        snprintf(rules[nrules].pattern, sizeof(rules[nrules].pattern), "%s",
                 pat);
        rules[nrules++].layer = layer_index(name);
    }
    free(text);
    if (nrules == 0)
        return "LAYERS.md: no ```layers block";
    return NULL;
}

static void list_dir(const char *dir)
{
    char path[512];
    DIR *d;
    struct dirent *e;

    snprintf(path, sizeof(path), "%s/%s", bd_test_src_dir(), dir);
    d = opendir(path);
    if (d == NULL)
        return;
    while ((e = readdir(d)) != NULL && nfiles < MAX_FILES) {
        size_t n = strlen(e->d_name);

        if (n < 3 || e->d_name[0] == '.' ||
            (strcmp(e->d_name + n - 2, ".c") != 0 &&
             strcmp(e->d_name + n - 2, ".h") != 0))
            continue;
        snprintf(files[nfiles++], sizeof(files[0]), "%.20s/%.100s", dir,
                 e->d_name);
    }
    closedir(d);
}

/*
 * Where the compiler finds "name" from a file in dir: the file's own
 * directory first, then -Iproto -Iclient -Idaemon (the Makefile's order).
 * Sets out to the path from the top; 0 when found.
 */
static int resolve(const char *dir, const char *name, char *out, size_t n)
{
    const char *dirs[] = {dir, "proto", "client", "daemon"};
    char path[512];

    for (size_t i = 0; i < 4; i++) {
        FILE *f;

        snprintf(path, sizeof(path), "%s/%s/%s", bd_test_src_dir(), dirs[i],
                 name);
        if ((f = fopen(path, "r")) != NULL) {
            fclose(f);
            snprintf(out, n, "%s/%s", dirs[i], name);
            return 0;
        }
    }
    return -1;
}

/*
 * Check the includes of one file, given as its path from the top and
 * its text. Returns 0, or -1 with the reason in err.
 */
static int check_text(const char *path, const char *text, char *err,
                      size_t errlen)
{
    int mine = layer_of(path);
    char dir[128];
    const char *slash = strrchr(path, '/'), *p = text;

    if (mine < 0) {
        snprintf(err, errlen, "%s: not in daemon/LAYERS.md", path);
        return -1;
    }
    snprintf(dir, sizeof(dir), "%.*s", (int)(slash ? slash - path : 1),
             slash ? path : ".");
    while ((p = strstr(p, "#include \"")) != NULL) {
        char name[128], target[256];
        const char *q = p + 10, *end = strchr(q, '"');
        int theirs;

        p = q;
        if (end == NULL || end - q >= (long)sizeof(name))
            continue;
        snprintf(name, sizeof(name), "%.*s", (int)(end - q), q);
        if (resolve(dir, name, target, sizeof(target)) != 0) {
            snprintf(err, errlen, "%s: includes \"%s\", found nowhere",
                     path, name);
            return -1;
        }
        theirs = layer_of(target);
        if (theirs < 0) {
            snprintf(err, errlen, "%s: includes %s, which has no layer",
                     path, target);
            return -1;
        }
        if (theirs > mine) {
            snprintf(err, errlen, "%s (layer %s) includes %s (layer %s): "
                     "an include may not go up", path, layer_names[mine],
                     target, layer_names[theirs]);
            return -1;
        }
    }
    return 0;
}

START_TEST(test_file_includes_go_down)
{
    const char *path = files[_i];
    char full[512], err[512];
    char *text;

    ck_assert_msg(load_map() == NULL, "%s", load_map());
    snprintf(full, sizeof(full), "%.300s/%.127s", bd_test_src_dir(), path);
    text = slurp(full);
    ck_assert_msg(text != NULL, "cannot read %s", full);
    if (check_text(path, text, err, sizeof(err)) != 0) {
        free(text);
        ck_abort_msg("%s", err);
    }
    free(text);
}
END_TEST

/* The check can fail: the core including the connection layer. */
START_TEST(test_upward_include_refused)
{
    char err[512];

    ck_assert_msg(load_map() == NULL, "%s", load_map());
    ck_assert_int_eq(check_text("daemon/batch.c", "#include \"conn.h\"\n",
                                err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, "may not go up"));
    ck_assert_int_eq(check_text("daemon/worker.c", "#include \"call.h\"\n",
                                err, sizeof(err)), -1);
    /* Same layer and lower layers are fine. */
    ck_assert_int_eq(check_text("daemon/call.c", "#include \"batch.h\"\n"
                                "#include \"sink.h\"\n#include \"msg.h\"\n",
                                err, sizeof(err)), 0);
}
END_TEST

START_TEST(test_unmapped_file_refused)
{
    char err[512];

    ck_assert_msg(load_map() == NULL, "%s", load_map());
    ck_assert_int_eq(check_text("daemon/newfile.c", "", err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, "not in daemon/LAYERS.md"));
}
END_TEST

/* Every map entry without a glob names a file that exists: a renamed
 * file must not leave a stale line behind. */
START_TEST(test_map_names_existing_files)
{
    ck_assert_msg(load_map() == NULL, "%s", load_map());
    for (size_t i = 0; i < nrules; i++) {
        char full[512];
        FILE *f;

        if (strchr(rules[i].pattern, '*') != NULL)
            continue;
        snprintf(full, sizeof(full), "%.300s/%.127s", bd_test_src_dir(),
                 rules[i].pattern);
        f = fopen(full, "r");
        ck_assert_msg(f != NULL, "LAYERS.md names %s, which does not exist",
                      rules[i].pattern);
        fclose(f);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("layers");
    TCase *tc = tcase_create("includes");
    SRunner *sr;
    int failed;

    list_dir("proto");
    list_dir("daemon");
    tcase_add_test(tc, test_upward_include_refused);
    tcase_add_test(tc, test_unmapped_file_refused);
    tcase_add_test(tc, test_map_names_existing_files);
    /* At least one iteration, so an empty listing fails (no sources). */
    tcase_add_loop_test(tc, test_file_includes_go_down, 0,
                        nfiles ? (int)nfiles : 1);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
