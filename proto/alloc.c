/*
 * alloc.c - allocation wrappers with a failure-injection hook for tests.
 */
#include <stdlib.h>
#include <string.h>

#include "alloc.h"

static unsigned long fail_countdown; /* 0 = off; else fail when it reaches 1 */

static int should_fail(void)
{
    if (fail_countdown == 0)
        return 0;
    if (--fail_countdown == 0)
        return 1;
    return 0;
}

void bd_alloc_fail_after(unsigned long n)
{
    fail_countdown = n;
}

void *bd_malloc(size_t n)
{
    return should_fail() ? NULL : malloc(n);
}

void *bd_calloc(size_t n, size_t size)
{
    return should_fail() ? NULL : calloc(n, size);
}

void *bd_realloc(void *p, size_t n)
{
    return should_fail() ? NULL : realloc(p, n);
}

char *bd_strndup(const char *s, size_t n)
{
    char *d = bd_malloc(n + 1);

    if (d == NULL)
        return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *bd_strdup(const char *s)
{
    return bd_strndup(s, strlen(s));
}

void bd_free(void *p)
{
    free(p);
}
