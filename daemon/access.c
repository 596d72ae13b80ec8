/*
 * access.c - allowlists of uids and gids (see access.h).
 */
#include <ctype.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "access.h"
#include "alloc.h"
#include "config.h"

#define BD_ACCESS_MAX_IDS 64  /* ids in one list */

struct id_list {
    unsigned n;               /* entries in ids; 0 = list not set */
    unsigned ids[BD_ACCESS_MAX_IDS];
};

struct bd_access {
    struct id_list allow_uids;
    struct id_list allow_gids;
    struct id_list admin_uids;
    struct id_list admin_gids;
};

static int lookup(const char *name, int is_group, unsigned *id)
{
    char *end;
    unsigned long v = strtoul(name, &end, 10);

    if (*name && *end == '\0') {
        *id = (unsigned)v;
        return 0;
    }
    if (is_group) {
        struct group *g = getgrnam(name);

        if (g == NULL)
            return -1;
        *id = g->gr_gid;
    } else {
        struct passwd *p = getpwnam(name);

        if (p == NULL)
            return -1;
        *id = p->pw_uid;
    }
    return 0;
}

/* Parse "a, 12,b" into l. */
static int parse_list(const char *opt, const char *s, int is_group,
                      struct id_list *l, char *err, size_t errlen)
{
    char tok[64];

    l->n = 0;
    while (s != NULL && *s) {
        size_t n = strcspn(s, ",");
        const char *b = s, *e = s + n;

        while (b < e && isspace((unsigned char)*b))
            b++;
        while (e > b && isspace((unsigned char)e[-1]))
            e--;
        s += n + (s[n] == ',');
        if (b == e)
            continue;
        if ((size_t)(e - b) >= sizeof(tok) || l->n == BD_ACCESS_MAX_IDS) {
            snprintf(err, errlen, "%s: entry too long or more than %d entries",
                     opt, BD_ACCESS_MAX_IDS);
            return -1;
        }
        memcpy(tok, b, (size_t)(e - b));
        tok[e - b] = '\0';
        if (lookup(tok, is_group, &l->ids[l->n]) != 0) {
            snprintf(err, errlen, "%s: no such %s '%s'", opt,
                     is_group ? "group" : "user", tok);
            return -1;
        }
        l->n++;
    }
    return 0;
}

struct bd_access *bd_access_new(const struct bd_config *cfg, char *err,
                                size_t errlen)
{
    struct bd_access *a = bd_calloc(1, sizeof(*a));

    if (a == NULL) {
        snprintf(err, errlen, "access: out of memory");
        return NULL;
    }
    if (parse_list("allow_uids", cfg->allow_uids, 0, &a->allow_uids, err,
                   errlen) != 0 ||
        parse_list("allow_gids", cfg->allow_gids, 1, &a->allow_gids, err,
                   errlen) != 0 ||
        parse_list("admin_uids", cfg->admin_uids, 0, &a->admin_uids, err,
                   errlen) != 0 ||
        parse_list("admin_gids", cfg->admin_gids, 1, &a->admin_gids, err,
                   errlen) != 0) {
        bd_free(a);
        return NULL;
    }
    return a;
}

void bd_access_free(struct bd_access *a)
{
    bd_free(a);
}

static int in_list(const struct id_list *l, unsigned id)
{
    for (unsigned i = 0; i < l->n; i++)
        if (l->ids[i] == id)
            return 1;
    return 0;
}

int bd_access_allowed(const struct bd_access *a, uid_t uid, gid_t gid)
{
    if (a->allow_uids.n == 0 && a->allow_gids.n == 0)
        return 1;
    return in_list(&a->allow_uids, uid) || in_list(&a->allow_gids, gid);
}

int bd_access_admin(const struct bd_access *a, uid_t uid, gid_t gid)
{
    return uid == 0 || uid == geteuid() || in_list(&a->admin_uids, uid) ||
           in_list(&a->admin_gids, gid);
}
