/*
 * pg_options.c - the postgres sink's options: the table the daemon checks
 * keys against, and the parser that checks every value (see pg.h).
 *
 * Errors name the option and the value, as "postgres sink: <option>
 * '<value>' ...": the daemon prints them at start and --check-config.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg.h"

#define PG_MAX_POOL 1024
#define PG_MAX_MS 3600000UL

const struct batchd_sink_option pg_options[] = {
    { .name = "conninfo", .def = "",
      .help = "libpq connection string (keywords or postgresql:// URI); empty: libpq defaults and PG* variables" },
    { .name = "pool_size", .def = "4", .help = "connections at most (1..1024)" },
    { .name = "pool_wait_ms", .def = "5000",
      .help = "how long a batch waits for a free connection (0..3600000)" },
    { .name = "connect_timeout", .def = "10",
      .help = "seconds to wait for a connection (1..3600; default: the conninfo's, else 10)" },
    { .name = "statement_timeout_ms", .def = "0",
      .help = "statement_timeout set on every connection (0: the server's)" },
    { .name = "mode", .def = "copy", .help = "copy (COPY FROM STDIN) or query (sql with $1 = payloads)" },
    { .name = "table", .def = NULL, .help = "copy: the table to COPY into (required)" },
    { .name = "columns", .def = "", .help = "copy: column list, e.g. 'id, name' (empty: all)" },
    { .name = "format", .def = "text", .help = "copy: text or csv, the format of every payload" },
    { .name = "sql", .def = NULL, .help = "query: the statement, $1 = the payloads as text[] (required)" },
    { .name = "match", .def = "ordinality",
      .help = "query: ordinality (1st column = 1-based item index) or key (column 'key' = payload)" },
    { .name = "key", .def = NULL, .help = "query, match = key: the column compared with payloads" },
    { .name = "result", .def = "text",
      .help = "query: text (the first column that is not the match column) or json (the row as an object)" },
    { .name = "missing", .def = "empty", .help = "query: an item without a row gets OK empty, or FAIL \"not found\" (fail)" },
    { .name = NULL },
};

/* A decimal number in lo..hi. Returns 0, or -1. */
static int parse_num(const char *v, unsigned long lo, unsigned long hi,
                     unsigned *out)
{
    unsigned long n;
    char *end;

    if (*v < '0' || *v > '9')
        return -1;
    errno = 0;
    n = strtoul(v, &end, 10);
    if (errno != 0 || *end != '\0' || n < lo || n > hi)
        return -1;
    *out = (unsigned)n;
    return 0;
}

/* v as one of names[] (NULL-terminated): its index, or -1. */
static int parse_word(const char *v, const char *const *names)
{
    for (int i = 0; names[i] != NULL; i++)
        if (strcmp(v, names[i]) == 0)
            return i;
    return -1;
}

static int set_str(char **slot, const char *v)
{
    free(*slot);
    *slot = strdup(v);
    return *slot == NULL ? -1 : 0;
}

/* Apply one key = value. Returns 0, or -1 with err. */
static int parse_one(struct pg_conf *c, const char *k, const char *v,
                     char *err, size_t errlen)
{
    static const char *const modes[] = { "copy", "query", NULL };
    static const char *const formats[] = { "text", "csv", NULL };
    static const char *const matches[] = { "ordinality", "key", NULL };
    static const char *const results[] = { "text", "json", NULL };
    static const char *const missings[] = { "empty", "fail", NULL };
    struct { const char *name; const char *const *words; int *slot; } enums[] = {
        { "mode", modes, &c->mode }, { "format", formats, &c->format },
        { "match", matches, &c->match }, { "result", results, &c->result },
        { "missing", missings, &c->missing },
    };
    struct { const char *name; unsigned long lo, hi; unsigned *slot; } nums[] = {
        { "pool_size", 1, PG_MAX_POOL, &c->pool_size },
        { "pool_wait_ms", 0, PG_MAX_MS, &c->pool_wait_ms },
        { "connect_timeout", 1, 3600, &c->connect_timeout },
        { "statement_timeout_ms", 0, PG_MAX_MS, &c->statement_timeout_ms },
    };
    struct { const char *name; char **slot; } strs[] = {
        { "conninfo", &c->conninfo }, { "table", &c->table },
        { "columns", &c->columns }, { "sql", &c->sql }, { "key", &c->key },
    };
    size_t i;

    for (i = 0; i < sizeof(enums) / sizeof(enums[0]); i++) {
        if (strcmp(k, enums[i].name) != 0)
            continue;
        *enums[i].slot = parse_word(v, enums[i].words);
        if (*enums[i].slot < 0) {
            snprintf(err, errlen, "postgres sink: %s '%s' is not %s or %s", k, v,
                     enums[i].words[0], enums[i].words[1]);
            return -1;
        }
        return 0;
    }
    for (i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
        if (strcmp(k, nums[i].name) != 0)
            continue;
        if (parse_num(v, nums[i].lo, nums[i].hi, nums[i].slot) != 0) {
            snprintf(err, errlen, "postgres sink: %s '%s' is not a number in %lu..%lu",
                     k, v, nums[i].lo, nums[i].hi);
            return -1;
        }
        return 0;
    }
    for (i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
        if (strcmp(k, strs[i].name) != 0)
            continue;
        if (set_str(strs[i].slot, v) != 0) {
            snprintf(err, errlen, "postgres sink: out of memory");
            return -1;
        }
        return 0;
    }
    snprintf(err, errlen, "postgres sink: unknown option '%s'", k);
    return -1;
}

/* An option given that the mode does not use is a mistake worth naming. */
static int check_mode(struct pg_conf *c, char *err, size_t errlen)
{
    const char *stray = NULL;

    if (c->mode == PG_MODE_COPY) {
        if (c->table == NULL || c->table[0] == '\0') {
            snprintf(err, errlen, "postgres sink: mode copy needs option 'table'");
            return -1;
        }
        stray = c->sql ? "sql" : c->key ? "key" : NULL;
    } else {
        if (c->sql == NULL || strstr(c->sql, "$1") == NULL) {
            snprintf(err, errlen, "postgres sink: mode query needs option 'sql' using $1");
            return -1;
        }
        if (c->match == PG_MATCH_KEY && (c->key == NULL || c->key[0] == '\0')) {
            snprintf(err, errlen, "postgres sink: match key needs option 'key' (a column name)");
            return -1;
        }
        stray = c->table ? "table" : c->columns ? "columns" : NULL;
    }
    if (stray != NULL) {
        snprintf(err, errlen, "postgres sink: option '%s' does not apply to mode %s",
                 stray, c->mode == PG_MODE_COPY ? "copy" : "query");
        return -1;
    }
    return 0;
}

/* COPY table (columns) FROM STDIN (FORMAT x), built once. */
static int build_copy_sql(struct pg_conf *c)
{
    const char *cols = c->columns != NULL && c->columns[0] != '\0' ? c->columns : NULL;
    size_t n = strlen(c->table) + (cols ? strlen(cols) : 0) + 64;

    c->copy_sql = malloc(n);
    if (c->copy_sql == NULL)
        return -1;
    snprintf(c->copy_sql, n, "COPY %s%s%s%s FROM STDIN (FORMAT %s)", c->table,
             cols ? " (" : "", cols ? cols : "", cols ? ")" : "",
             c->format == PG_FORMAT_CSV ? "csv" : "text");
    return 0;
}

/* Syntax of the conninfo, checked by libpq itself. */
static int check_conninfo(struct pg_conf *c, int *has_timeout, char *err,
                          size_t errlen)
{
    PQconninfoOption *opts;
    char *why = NULL;

    opts = PQconninfoParse(c->conninfo, &why);
    if (opts == NULL) {
        size_t n = why ? strlen(why) : 0;

        while (n > 0 && why[n - 1] == '\n')
            why[--n] = '\0';
        snprintf(err, errlen, "postgres sink: conninfo: %s", why ? why : "out of memory");
        PQfreemem(why);
        return -1;
    }
    *has_timeout = 0;
    for (PQconninfoOption *o = opts; o->keyword != NULL; o++)
        if (strcmp(o->keyword, "connect_timeout") == 0 && o->val != NULL)
            *has_timeout = 1;
    PQconninfoFree(opts);
    return 0;
}

int pg_conf_parse(struct pg_conf *c, const struct batchd_kv *kv, size_t nkv,
                  char *err, size_t errlen)
{
    int has_timeout = 0;

    memset(c, 0, sizeof(*c));
    c->pool_size = 4;
    c->pool_wait_ms = 5000;
    for (size_t i = 0; i < nkv; i++)
        if (parse_one(c, kv[i].key, kv[i].value, err, errlen) != 0)
            return -1;
    if (c->conninfo == NULL && set_str(&c->conninfo, "") != 0)
        goto out_oom;
    if (check_mode(c, err, errlen) != 0 ||
        check_conninfo(c, &has_timeout, err, errlen) != 0)
        return -1;
    /* libpq waits forever by default, which would pin a worker thread:
     * 10 s unless the option or the conninfo says otherwise. */
    if (c->connect_timeout == 0 && !has_timeout)
        c->connect_timeout = 10;
    if (c->mode == PG_MODE_COPY && build_copy_sql(c) != 0)
        goto out_oom;
    return 0;

out_oom:
    snprintf(err, errlen, "postgres sink: out of memory");
    return -1;
}

void pg_conf_free(struct pg_conf *c)
{
    free(c->conninfo);
    free(c->table);
    free(c->columns);
    free(c->copy_sql);
    free(c->sql);
    free(c->key);
    memset(c, 0, sizeof(*c));
}
