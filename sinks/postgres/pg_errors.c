/*
 * pg_errors.c - SQLSTATE classes and the line of a COPY error (see
 * pg_errors.h). Pure functions: no libpq, no allocation.
 */
#include <string.h>

#include "pg_errors.h"

int pg_err_classify(const char *s)
{
    if (s == NULL || strlen(s) != 5)
        return PG_ERR_RETRY;    /* no SQLSTATE: the connection broke */
    if (strncmp(s, "08", 2) == 0 || strncmp(s, "40", 2) == 0 ||
        strncmp(s, "53", 2) == 0 || strncmp(s, "58", 2) == 0 ||
        strcmp(s, "55P03") == 0 || strcmp(s, "57014") == 0 ||
        strncmp(s, "57P0", 4) == 0)
        return PG_ERR_RETRY;
    if (strncmp(s, "22", 2) == 0 || strncmp(s, "23", 2) == 0)
        return PG_ERR_DATA;
    return PG_ERR_FATAL;
}

/* Digits at p (up to end) as a line number ending at ',', ':' or end;
 * 0 when there are none, they overflow, start with 0 (the server never
 * writes that), or something else follows. */
static unsigned long line_at(const char *p, const char *end)
{
    unsigned long n = 0;
    const char *start = p;

    if (p < end && *p == '0')
        return 0;
    while (p < end && *p >= '0' && *p <= '9') {
        if (n > (~0UL - 9) / 10)
            return 0;
        n = n * 10 + (unsigned long)(*p - '0');
        p++;
    }
    if (p == start || (p < end && *p != ',' && *p != ':'))
        return 0;
    return n;
}

unsigned long pg_copy_error_line(const char *ctx, size_t len)
{
    static const char head[] = "COPY ";
    static const char mark[] = ", line ";
    const char *end, *p;

    if (ctx == NULL)
        return 0;
    end = memchr(ctx, '\n', len);
    if (end == NULL)
        end = ctx + len;
    if ((size_t)(end - ctx) < sizeof(head) - 1 ||
        memcmp(ctx, head, sizeof(head) - 1) != 0)
        return 0;
    /* The first ", line N" with a well-formed number wins: the table
     * name comes before it, the column name and value (which could hold
     * anything, ", line 9" too) after it. */
    for (p = ctx + sizeof(head) - 1; p + sizeof(mark) - 1 <= end; p++) {
        if (memcmp(p, mark, sizeof(mark) - 1) == 0) {
            unsigned long n = line_at(p + sizeof(mark) - 1, end);

            if (n > 0)
                return n;
        }
    }
    return 0;
}

void pg_one_line(char *s)
{
    char *w = s;
    int space = 1;            /* drop leading blanks */

    for (const char *r = s; *r != '\0'; r++) {
        if (*r == '\n' || *r == '\r' || *r == '\t' || *r == ' ') {
            if (!space)
                *w++ = ' ';
            space = 1;
        } else {
            *w++ = *r;
            space = 0;
        }
    }
    if (w > s && w[-1] == ' ')
        w--;
    *w = '\0';
}

size_t pg_csv_breaks(const char *data, size_t len, int first)
{
    char counted = first ? '\r' : '\n';
    size_t n = 0;
    int quoted = 0;

    for (size_t i = 0; i < len; i++) {
        if (data[i] == '"')
            quoted = !quoted;   /* "" inside quotes toggles twice */
        else if (quoted && data[i] == counted)
            n++;
    }
    return n;
}
