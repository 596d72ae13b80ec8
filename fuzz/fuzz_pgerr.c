/*
 * fuzz_pgerr.c - libFuzzer target for the postgres sink's pure error
 * readers (sinks/postgres/pg_errors.c): the COPY line parser, the CSV
 * line-break counter, the SQLSTATE classifier and the one-line squasher.
 *
 * The input is untrusted in the real sink too: it is the CONTEXT field
 * and message text a server (or anything on the socket) sent. Checks:
 * no read outside the input (ASan; the input is not NUL-terminated),
 * a line number found is really written as ", line N" inside the first
 * line after "COPY ", the classifier returns one of its three classes,
 * and pg_one_line leaves no newline, tab or doubled space.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../sinks/postgres/pg_errors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_line(const char *ctx, size_t size)
{
    unsigned long line = pg_copy_error_line(ctx, size);
    char want[32];
    const char *nl;
    size_t first;

    if (line == 0)
        return;
    nl = memchr(ctx, '\n', size);
    first = nl != NULL ? (size_t)(nl - ctx) : size;
    if (first < 5 || memcmp(ctx, "COPY ", 5) != 0)
        abort();
    snprintf(want, sizeof(want), ", line %lu", line);
    if (memmem(ctx, first, want, strlen(want)) == NULL)
        abort();
}

static void check_squash(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);

    if (s == NULL)
        return;
    memcpy(s, data, size);
    s[size] = '\0';
    pg_one_line(s);
    if (strpbrk(s, "\n\r\t") != NULL || strstr(s, "  ") != NULL ||
        (s[0] == ' ') || (s[0] != '\0' && s[strlen(s) - 1] == ' '))
        abort();
    free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char state[6] = "";
    int cls;

    check_line((const char *)data, size);
    /* Never more breaks than bytes, whatever the quotes. */
    if (pg_csv_breaks((const char *)data, size, size % 2) > size)
        abort();
    check_squash(data, size);
    if (size >= 5) {
        memcpy(state, data, 5);
        state[5] = '\0';
    }
    cls = pg_err_classify(size >= 5 ? state : NULL);
    if (cls != PG_ERR_RETRY && cls != PG_ERR_DATA && cls != PG_ERR_FATAL)
        abort();
    return 0;
}
