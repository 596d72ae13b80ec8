/*
 * fuzz_redis_template.c - libFuzzer target for the redis sink's command
 * template parser (sinks/redis/template.c), the only text the sink
 * parses itself.
 *
 * Input: the template text up to the first NUL byte, then the bytes the
 * placeholders stand for (the payload; the key is its first half).
 *
 * Checks, for every template the parser accepts:
 *   - 1..RS_TEMPLATE_MAX_ARGS arguments, parts and literals in bounds;
 *   - expansion writes exactly rs_template_scratch bytes, and each
 *     argument is its parts' bytes in order (recomputed here);
 *   - printing the parsed template back in canonical form (every
 *     argument quoted, escapes written out) and parsing that gives the
 *     same arguments: the parser and the documented syntax agree.
 * A refused template must leave an error message and an empty template.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../sinks/redis/template.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Canonical text of t: "arg" "arg" ..., placeholders as {name}. */
static char *render(const struct rs_template *t)
{
    static const char *const names[] = { NULL, "{payload}", "{key}", "{id}" };
    size_t cap = t->lit_len * 2 + t->nparts * 10 + t->nargs * 3 + 1, n = 0;
    char *s = malloc(cap);

    if (s == NULL)
        abort();
    for (size_t i = 0; i < t->nargs; i++) {
        const struct rs_arg *a = &t->args[i];

        s[n++] = '"';
        for (size_t j = 0; j < a->nparts; j++) {
            const struct rs_part *p = &t->parts[a->first + j];

            if (p->kind != RS_PART_LIT) {
                n += (size_t)sprintf(s + n, "%s", names[p->kind]);
                continue;
            }
            for (size_t k = 0; k < p->len; k++) {
                char c = t->lit[p->off + k];

                if (c == '"' || c == '\\')
                    s[n++] = '\\';
                else if (c == '{' || c == '}')
                    s[n++] = c;
                s[n++] = c;
            }
        }
        s[n++] = '"';
        s[n++] = ' ';
    }
    s[n] = '\0';
    return s;
}

static void check_shape(const struct rs_template *t)
{
    size_t parts = 0;

    if (t->nargs < 1 || t->nargs > RS_TEMPLATE_MAX_ARGS)
        abort();
    for (size_t i = 0; i < t->nargs; i++) {
        if (t->args[i].first != parts)
            abort();
        parts += t->args[i].nparts;
    }
    if (parts != t->nparts)
        abort();
    for (size_t i = 0; i < t->nparts; i++)
        if (t->parts[i].kind == RS_PART_LIT &&
            (t->parts[i].len == 0 || t->parts[i].off + t->parts[i].len > t->lit_len))
            abort();
}

/* Two parses of the same arguments must expand to the same bytes. */
static void check_same(const struct rs_template *a, const struct rs_template *b,
                       const struct rs_vals *v)
{
    const char *av[RS_TEMPLATE_MAX_ARGS], *bv[RS_TEMPLATE_MAX_ARGS];
    size_t al[RS_TEMPLATE_MAX_ARGS], bl[RS_TEMPLATE_MAX_ARGS];
    size_t an = rs_template_scratch(a, v), bn = rs_template_scratch(b, v);
    char *as = malloc(an + 1), *bs = malloc(bn + 1);

    if (as == NULL || bs == NULL || a->nargs != b->nargs)
        abort();
    rs_template_expand(a, v, as, av, al);
    rs_template_expand(b, v, bs, bv, bl);
    for (size_t i = 0; i < a->nargs; i++)
        if (al[i] != bl[i] || memcmp(av[i], bv[i], al[i]) != 0)
            abort();
    free(as);
    free(bs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t tlen = nul ? (size_t)(nul - data) : size;
    char *src = malloc(tlen + 1), err[256] = "", *canon;
    struct rs_template t, t2;
    struct rs_vals v = { 0 };

    if (src == NULL)
        abort();
    memcpy(src, data, tlen);
    src[tlen] = '\0';
    v.payload = nul ? nul + 1 : data + size;
    v.payload_len = nul ? size - tlen - 1 : 0;
    v.key = v.payload;
    v.key_len = v.payload_len / 2;
    rs_vals_set_id(&v, size * 2654435761u);
    if (rs_template_parse(&t, src, err, sizeof(err)) != 0) {
        if (err[0] == '\0' || t.args != NULL || t.nargs != 0)
            abort();
        free(src);
        return 0;
    }
    check_shape(&t);
    canon = render(&t);
    if (rs_template_parse(&t2, canon, err, sizeof(err)) != 0) {
        fprintf(stderr, "canonical form refused: %s\n%s\n", err, canon);
        abort();
    }
    check_same(&t, &t2, &v);
    rs_template_destroy(&t2);
    rs_template_destroy(&t);
    free(canon);
    free(src);
    return 0;
}
