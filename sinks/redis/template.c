/*
 * template.c - parse the redis sink's command template and expand it per
 * item (syntax in template.h). Pure code, no I/O: fuzzed by
 * fuzz/fuzz_redis_template.c.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "template.h"

/* The parser's cursor and what it has built so far. */
struct parser {
    const char *src;          /* the template, borrowed */
    size_t pos;               /* next byte of src */
    struct rs_template *t;    /* being filled */
    char *err;                /* caller's error buffer */
    size_t errlen;
};

static const struct {
    const char *name;         /* between the braces */
    int kind;                 /* enum rs_part_kind */
} placeholders[] = {
    { "payload", RS_PART_PAYLOAD },
    { "key", RS_PART_KEY },
    { "id", RS_PART_ID },
};

static int fail(struct parser *p, const char *what)
{
    snprintf(p->err, p->errlen, "command: %s at column %zu", what, p->pos + 1);
    return -1;
}

/* Append one literal byte to the current argument, extending its last
 * part when that is a literal too (so "user:" is one part, not five). */
static void add_lit(struct parser *p, char c)
{
    struct rs_template *t = p->t;
    struct rs_arg *a = &t->args[t->nargs - 1];
    struct rs_part *last = a->nparts ? &t->parts[t->nparts - 1] : NULL;

    if (last == NULL || last->kind != RS_PART_LIT) {
        last = &t->parts[t->nparts++];
        last->kind = RS_PART_LIT;
        last->off = t->lit_len;
        last->len = 0;
        a->nparts++;
    }
    t->lit[t->lit_len++] = c;
    last->len++;
}

/* At a '{' that is not "{{": take a placeholder. */
static int add_placeholder(struct parser *p)
{
    const char *open = p->src + p->pos, *close = strchr(open, '}');
    struct rs_template *t = p->t;
    size_t n;

    if (close == NULL)
        return fail(p, "'{' without '}' (write {{ for a literal {)");
    n = (size_t)(close - open - 1);
    for (size_t i = 0; i < sizeof(placeholders) / sizeof(placeholders[0]); i++) {
        if (strlen(placeholders[i].name) == n &&
            memcmp(placeholders[i].name, open + 1, n) == 0) {
            t->parts[t->nparts++] = (struct rs_part){ .kind = placeholders[i].kind };
            t->args[t->nargs - 1].nparts++;
            p->pos += n + 2;
            return 0;
        }
    }
    return fail(p, "unknown placeholder (use {payload}, {key} or {id}; "
                "{{ for a literal {)");
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* One byte (or escape) of an argument; *quoted tracks "...". Returns 1
 * at the end of the argument, 0 to go on, -1 on error. */
static int arg_step(struct parser *p, int *quoted)
{
    const char *s = p->src + p->pos;

    if (*s == '\0')
        return *quoted ? fail(p, "unterminated \"") : 1;
    if (!*quoted && is_space(*s))
        return 1;
    if (*s == '"') {
        *quoted = !*quoted;
        p->pos++;
    } else if (*quoted && *s == '\\' && (s[1] == '"' || s[1] == '\\')) {
        add_lit(p, s[1]);
        p->pos += 2;
    } else if ((*s == '{' || *s == '}') && s[1] == *s) {
        add_lit(p, *s);
        p->pos += 2;
    } else if (*s == '{') {
        return add_placeholder(p);
    } else if (*s == '}') {
        return fail(p, "lone '}' (write }} for a literal })");
    } else {
        add_lit(p, *s);
        p->pos++;
    }
    return 0;
}

static int parse_args(struct parser *p)
{
    struct rs_template *t = p->t;

    for (;;) {
        int quoted = 0, rc;

        while (is_space(p->src[p->pos]))
            p->pos++;
        if (p->src[p->pos] == '\0')
            break;
        if (t->nargs == RS_TEMPLATE_MAX_ARGS)
            return fail(p, "too many arguments (at most 64)");
        t->args[t->nargs++] = (struct rs_arg){ .first = t->nparts };
        while ((rc = arg_step(p, &quoted)) == 0)
            ;
        if (rc < 0)
            return -1;
    }
    if (t->nargs == 0) {
        snprintf(p->err, p->errlen, "command: empty");
        return -1;
    }
    return 0;
}

int rs_template_parse(struct rs_template *t, const char *src, char *err,
                      size_t errlen)
{
    size_t n = strlen(src);
    struct parser p = { .src = src, .t = t, .err = err, .errlen = errlen };

    memset(t, 0, sizeof(*t));
    /* Every part takes at least one byte of src, and so does every
     * literal byte: n + 1 of each is always enough. */
    t->args = calloc(RS_TEMPLATE_MAX_ARGS, sizeof(*t->args));
    t->parts = calloc(n + 1, sizeof(*t->parts));
    t->lit = malloc(n + 1);
    if (t->args == NULL || t->parts == NULL || t->lit == NULL) {
        snprintf(err, errlen, "command: out of memory");
        rs_template_destroy(t);
        return -1;
    }
    if (parse_args(&p) != 0) {
        rs_template_destroy(t);
        return -1;
    }
    return 0;
}

void rs_template_destroy(struct rs_template *t)
{
    free(t->args);
    free(t->parts);
    free(t->lit);
    memset(t, 0, sizeof(*t));
}

void rs_vals_set_id(struct rs_vals *v, uint64_t id)
{
    v->id_len = (size_t)snprintf(v->id, sizeof(v->id), "%" PRIu64, id);
}

/* The bytes a part stands for. */
static const char *part_bytes(const struct rs_template *t, const struct rs_part *pt,
                              const struct rs_vals *v, size_t *len)
{
    switch (pt->kind) {
    case RS_PART_PAYLOAD:
        *len = v->payload_len;
        return v->payload_len ? v->payload : "";
    case RS_PART_KEY:
        *len = v->key_len;
        return v->key;
    case RS_PART_ID:
        *len = v->id_len;
        return v->id;
    default:
        *len = pt->len;
        return t->lit + pt->off;
    }
}

/* Is the argument one bare {payload} or {key} (used in place)? */
static int is_direct(const struct rs_template *t, const struct rs_arg *a)
{
    int kind = a->nparts == 1 ? t->parts[a->first].kind : RS_PART_LIT;

    return kind == RS_PART_PAYLOAD || kind == RS_PART_KEY;
}

size_t rs_template_scratch(const struct rs_template *t, const struct rs_vals *v)
{
    size_t total = 0, len;

    for (size_t i = 0; i < t->nargs; i++) {
        const struct rs_arg *a = &t->args[i];

        if (is_direct(t, a))
            continue;
        for (size_t j = 0; j < a->nparts; j++) {
            part_bytes(t, &t->parts[a->first + j], v, &len);
            total += len;
        }
    }
    return total;
}

void rs_template_expand(const struct rs_template *t, const struct rs_vals *v,
                        char *scratch, const char **argv, size_t *argvlen)
{
    size_t used = 0, len;

    for (size_t i = 0; i < t->nargs; i++) {
        const struct rs_arg *a = &t->args[i];

        if (is_direct(t, a)) {
            argv[i] = part_bytes(t, &t->parts[a->first], v, &argvlen[i]);
            continue;
        }
        argv[i] = scratch + used;
        argvlen[i] = 0;
        for (size_t j = 0; j < a->nparts; j++) {
            const char *b = part_bytes(t, &t->parts[a->first + j], v, &len);

            memcpy(scratch + used, b, len);
            used += len;
            argvlen[i] += len;
        }
    }
}
