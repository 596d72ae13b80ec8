/*
 * oracle.c - the delivery oracle (see oracle.h).
 *
 * One hash table keyed by tag holds, per request, what its client was
 * told and how often the sink recorded it. Both ledgers are read whole,
 * then every entry is judged once; the first violations are kept as
 * text for the test's failure message.
 */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batchd.h"
#include "oracle.h"

struct oracle_ent {
    char *tag;                /* owned; NULL = empty slot */
    char *key;                /* the client's key; owned */
    int status;               /* first status in the client ledgers */
    int lines;                /* client ledger lines for this tag */
    int delivered;            /* sink ledger lines for this tag */
    int wrong_key;            /* a sink line named another key */
};

struct bd_oracle {
    struct oracle_ent *tab;   /* open addressing, size a power of two */
    size_t size;
    size_t used;
    long requests;            /* client lines */
    long sink_lines;
    long unknown;             /* sink lines with a tag nobody sent */
    long by_status[BD_ORACLE_NSTATUS];
    long killed_delivered;
    long send_accepted;
    long send_delivered;
    long long send_failed;    /* from the options; -1 unknown */
    long violations;
    size_t rlen;              /* bytes used in report */
    char report[BD_ORACLE_REPORT];
};

#define REPORT_LINES 20       /* violations spelled out; the rest counted */

/* ---- bookkeeping ------------------------------------------------------- */

static void violation(struct bd_oracle *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void violation(struct bd_oracle *o, const char *fmt, ...)
{
    va_list ap;
    int n;

    o->violations++;
    if (o->violations > REPORT_LINES || o->rlen + 2 >= sizeof(o->report))
        return;
    va_start(ap, fmt);
    n = vsnprintf(o->report + o->rlen, sizeof(o->report) - o->rlen - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    o->rlen += (size_t)n < sizeof(o->report) - o->rlen - 1 ?
               (size_t)n : sizeof(o->report) - o->rlen - 2;
    o->report[o->rlen++] = '\n';
    o->report[o->rlen] = '\0';
}

const char *bd_oracle_status_name(int status)
{
    if (status == BD_ORACLE_NO_REPLY)
        return "NO_REPLY";
    if (status == BD_ORACLE_KILLED)
        return "KILLED";
    if (status >= 0 && status < BATCHD_STATUS_COUNT)
        return batchd_status_name(status);
    return "?";
}

static int status_code(const char *name)
{
    for (int i = 0; i < BD_ORACLE_NSTATUS; i++)
        if (strcmp(bd_oracle_status_name(i), name) == 0)
            return i;
    return -1;
}

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a 64 */

    while (*s) {
        h ^= (uint8_t)*s++;
        h *= 1099511628211ull;
    }
    return h;
}

static int tab_grow(struct bd_oracle *o)
{
    size_t nsize = o->size ? o->size * 2 : 1024;
    struct oracle_ent *nt = calloc(nsize, sizeof(*nt));

    if (nt == NULL)
        return -1;
    for (size_t i = 0; i < o->size; i++) {
        size_t j;

        if (o->tab[i].tag == NULL)
            continue;
        for (j = hash_str(o->tab[i].tag) & (nsize - 1); nt[j].tag != NULL;
             j = (j + 1) & (nsize - 1))
            ;
        nt[j] = o->tab[i];
    }
    free(o->tab);
    o->tab = nt;
    o->size = nsize;
    return 0;
}

/* The entry of tag, or a new empty one when create (NULL: not found, or
 * out of memory when create). */
static struct oracle_ent *tab_get(struct bd_oracle *o, const char *tag, int create)
{
    size_t j;

    if (create && (o->used + 1) * 2 > o->size && tab_grow(o) != 0)
        return NULL;
    if (o->size == 0)
        return NULL;
    for (j = hash_str(tag) & (o->size - 1); o->tab[j].tag != NULL;
         j = (j + 1) & (o->size - 1))
        if (strcmp(o->tab[j].tag, tag) == 0)
            return &o->tab[j];
    if (!create)
        return NULL;
    o->tab[j].tag = strdup(tag);
    if (o->tab[j].tag == NULL)
        return NULL;
    o->tab[j].status = -1;
    o->used++;
    return &o->tab[j];
}

/* ---- reading --------------------------------------------------------------- */

/* Split line into at most max space-separated fields. Returns the count. */
static int split(char *line, char **f, int max)
{
    int n = 0;
    char *save = NULL;

    for (char *t = strtok_r(line, " \n", &save); t != NULL && n < max;
         t = strtok_r(NULL, " \n", &save))
        f[n++] = t;
    return n;
}

static int read_client_file(struct bd_oracle *o, const char *path)
{
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0;
    long lineno = 0;
    int rc = 0;

    if (f == NULL) {
        fprintf(stderr, "oracle: open %s: %s\n", path, strerror(errno));
        return -1;
    }
    while (getline(&line, &cap, f) > 0) {
        char *fld[5];
        struct oracle_ent *e;
        int st;

        lineno++;
        if (split(line, fld, 5) != 4 || (st = status_code(fld[3])) < 0) {
            fprintf(stderr, "oracle: %s:%ld: not '<tag> <key> <sum> <status>'\n",
                    path, lineno);
            rc = -1;
            break;
        }
        e = tab_get(o, fld[0], 1);
        if (e == NULL || (e->key == NULL && (e->key = strdup(fld[1])) == NULL)) {
            fprintf(stderr, "oracle: out of memory\n");
            rc = -1;
            break;
        }
        if (e->lines++ == 0)
            e->status = st;
        o->requests++;
        o->by_status[st]++;
    }
    free(line);
    fclose(f);
    return rc;
}

static int is_client_ledger(const char *name)
{
    size_t n = strlen(name);

    return strncmp(name, "client-", 7) == 0 && n > 14 &&
           strcmp(name + n - 7, ".ledger") == 0;
}

static int read_clients(struct bd_oracle *o, const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int rc = 0;

    if (d == NULL) {
        fprintf(stderr, "oracle: opendir %s: %s\n", dir, strerror(errno));
        return -1;
    }
    while (rc == 0 && (de = readdir(d)) != NULL) {
        char path[4096];

        if (!is_client_ledger(de->d_name))
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        rc = read_client_file(o, path);
    }
    closedir(d);
    return rc;
}

static int read_sink(struct bd_oracle *o, const char *path)
{
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0;
    long lineno = 0;

    if (f == NULL && errno == ENOENT)
        return 0;   /* the sink took nothing */
    if (f == NULL) {
        fprintf(stderr, "oracle: open %s: %s\n", path, strerror(errno));
        return -1;
    }
    while (getline(&line, &cap, f) > 0) {
        char *fld[3];
        struct oracle_ent *e;

        lineno++;
        o->sink_lines++;
        if (split(line, fld, 3) != 2) {
            violation(o, "sink ledger line %ld is not '<tag> <key>'", lineno);
            continue;
        }
        e = tab_get(o, fld[0], 0);
        if (e == NULL) {
            o->unknown++;
            violation(o, "sink ledger line %ld: tag %s (key %s) was sent by no client",
                      lineno, fld[0], fld[1]);
            continue;
        }
        e->delivered++;
        if (strcmp(e->key, fld[1]) != 0)
            e->wrong_key = 1;
    }
    free(line);
    fclose(f);
    return 0;
}

/* ---- judging ------------------------------------------------------------------ */

static void judge(struct bd_oracle *o, const struct oracle_ent *e, unsigned lenient)
{
    const char *name = bd_oracle_status_name(e->status);

    if (e->lines != 1)
        violation(o, "%s: %d client ledger lines (first %s), want exactly one",
                  e->tag, e->lines, name);
    if (e->wrong_key)
        violation(o, "%s: delivered under another key than %s", e->tag, e->key);
    switch (e->status) {
    case BATCHD_OK:
        if (e->delivered != 1)
            violation(o, "%s: answered OK but %d times in the sink ledger",
                      e->tag, e->delivered);
        break;
    case BATCHD_ACCEPTED:
        o->send_accepted++;
        o->send_delivered += e->delivered > 0;
        if (e->delivered > 1)
            violation(o, "%s: SEND delivered %d times", e->tag, e->delivered);
        break;
    case BD_ORACLE_KILLED:
        o->killed_delivered += e->delivered > 0;
        if (e->delivered > 1)
            violation(o, "%s: item of a killed client delivered %d times",
                      e->tag, e->delivered);
        break;
    case BD_ORACLE_NO_REPLY:
        violation(o, "%s: no reply (connection lost or the client gave up); %d times in "
                  "the sink ledger", e->tag, e->delivered);
        break;
    default:
        if ((lenient & (1u << e->status)) ? e->delivered > 1 : e->delivered > 0)
            violation(o, "%s: answered %s but %d times in the sink ledger",
                      e->tag, name, e->delivered);
        break;
    }
}

struct bd_oracle *bd_oracle_run(const struct bd_oracle_opts *opts)
{
    struct bd_oracle *o = calloc(1, sizeof(*o));

    if (o == NULL)
        return NULL;
    o->send_failed = opts->send_failed;
    if (read_clients(o, opts->client_dir) != 0 ||
        read_sink(o, opts->sink_ledger) != 0) {
        bd_oracle_free(o);
        return NULL;
    }
    for (size_t i = 0; i < o->size; i++)
        if (o->tab[i].tag != NULL)
            judge(o, &o->tab[i], opts->lenient);
    if (opts->send_failed >= 0 &&
        o->send_accepted - o->send_delivered != opts->send_failed)
        violation(o, "%ld SENDs accepted, %ld in the sink ledger: %ld missing, "
                  "but the daemon counted send_failed %lld", o->send_accepted,
                  o->send_delivered, o->send_accepted - o->send_delivered,
                  opts->send_failed);
    return o;
}

void bd_oracle_free(struct bd_oracle *o)
{
    if (o == NULL)
        return;
    for (size_t i = 0; i < o->size; i++) {
        free(o->tab[i].tag);
        free(o->tab[i].key);
    }
    free(o->tab);
    free(o);
}

/* ---- reading the result ------------------------------------------------------ */

long bd_oracle_violations(const struct bd_oracle *o) { return o->violations; }
long bd_oracle_requests(const struct bd_oracle *o) { return o->requests; }
long bd_oracle_sink_lines(const struct bd_oracle *o) { return o->sink_lines; }
long bd_oracle_killed_delivered(const struct bd_oracle *o) { return o->killed_delivered; }
long bd_oracle_send_accepted(const struct bd_oracle *o) { return o->send_accepted; }
long bd_oracle_send_delivered(const struct bd_oracle *o) { return o->send_delivered; }
const char *bd_oracle_report(const struct bd_oracle *o) { return o->report; }

long bd_oracle_count(const struct bd_oracle *o, const char *prefix, int status)
{
    size_t plen = prefix ? strlen(prefix) : 0;
    long n = 0;

    if (plen == 0)
        return status < 0 ? o->requests :
               status < BD_ORACLE_NSTATUS ? o->by_status[status] : 0;
    for (size_t i = 0; i < o->size; i++) {
        const struct oracle_ent *e = &o->tab[i];

        if (e->tag != NULL && strncmp(e->tag, prefix, plen) == 0 &&
            (status < 0 || e->status == status))
            n++;
    }
    return n;
}

long bd_oracle_delivered(const struct bd_oracle *o, const char *prefix)
{
    size_t plen = prefix ? strlen(prefix) : 0;
    long n = 0;

    for (size_t i = 0; i < o->size; i++) {
        const struct oracle_ent *e = &o->tab[i];

        if (e->tag != NULL && e->delivered > 0 &&
            (plen == 0 || strncmp(e->tag, prefix, plen) == 0))
            n++;
    }
    return n;
}

int bd_oracle_lookup(const struct bd_oracle *o, const char *tag, int *delivered)
{
    const struct oracle_ent *e = tab_get((struct bd_oracle *)o, tag, 0);

    if (delivered != NULL)
        *delivered = e ? e->delivered : 0;
    return e ? e->status : -1;
}

void bd_oracle_print(const struct bd_oracle *o, FILE *f)
{
    fprintf(f, "oracle: %ld requests, %ld sink ledger lines;", o->requests,
            o->sink_lines);
    for (int i = 0; i < BD_ORACLE_NSTATUS; i++)
        if (o->by_status[i] > 0)
            fprintf(f, " %s=%ld", bd_oracle_status_name(i), o->by_status[i]);
    fprintf(f, "\noracle: SEND accepted %ld, delivered %ld, send_failed %lld; "
            "killed-client items delivered %ld; unknown tags %ld\n",
            o->send_accepted, o->send_delivered, o->send_failed,
            o->killed_delivered, o->unknown);
    if (o->violations == 0) {
        fprintf(f, "oracle: clean\n");
        return;
    }
    fprintf(f, "oracle: %ld VIOLATIONS, the first ones:\n%s", o->violations,
            o->report);
}
