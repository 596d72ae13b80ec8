/*
 * template.h - the redis sink's command template: parsed once at init,
 * expanded into an argv per item.
 *
 * Syntax (one line, the value of `command`):
 *   - arguments are separated by unquoted spaces or tabs;
 *   - "..." quotes a stretch of an argument, so it may hold spaces or be
 *     empty (""); inside quotes \" and \\ stand for " and \;
 *   - {payload}, {key} and {id} are replaced by the item's payload, the
 *     batch's key and the item's id (decimal); they may sit inside an
 *     argument with other text (user:{payload}) and inside quotes;
 *   - {{ and }} stand for a literal { and }; any other { or } is an error.
 *
 * Expansion never formats a command string: each argument is a byte
 * range, so payloads may hold any byte (NUL, spaces, CR LF). An argument
 * that is exactly one {payload} or {key} points into the item or key
 * itself (no copy).
 *
 * No dependency on hiredis: the fuzz target links this file alone.
 */
#ifndef RS_TEMPLATE_H
#define RS_TEMPLATE_H

#include <stddef.h>
#include <stdint.h>

/* What one piece of an argument is. */
enum rs_part_kind {
    RS_PART_LIT = 0,          /* bytes of the template (after unescaping) */
    RS_PART_PAYLOAD = 1,      /* the item's payload */
    RS_PART_KEY = 2,          /* the batch's key */
    RS_PART_ID = 3,           /* the item's id in decimal */
};

struct rs_part {
    int kind;                 /* enum rs_part_kind */
    size_t off;               /* RS_PART_LIT: offset in rs_template.lit */
    size_t len;               /* RS_PART_LIT: length */
};

struct rs_arg {
    size_t first;             /* index of its first part in rs_template.parts */
    size_t nparts;            /* 0 for an empty argument ("") */
};

/* A parsed template. Owns args, parts and lit. */
struct rs_template {
    struct rs_arg *args;      /* nargs arguments, in order; owned */
    size_t nargs;
    struct rs_part *parts;    /* every argument's parts, back to back; owned */
    size_t nparts;
    char *lit;                /* unescaped literal bytes; owned */
    size_t lit_len;
};

/* The values one item puts into the placeholders (all borrowed). */
struct rs_vals {
    const void *payload;
    size_t payload_len;
    const char *key;
    size_t key_len;
    char id[24];              /* the id in decimal, filled by rs_vals_set_id */
    size_t id_len;
};

/* Most arguments a template may have. */
#define RS_TEMPLATE_MAX_ARGS 64

/*
 * Parse src (NUL-terminated) into t. Returns 0, or -1 with one line in
 * err naming what is wrong (t is then empty and needs no destroy).
 */
int rs_template_parse(struct rs_template *t, const char *src, char *err,
                      size_t errlen);

/* Free what t owns; t is then empty. An empty (zeroed) t is fine. */
void rs_template_destroy(struct rs_template *t);

void rs_vals_set_id(struct rs_vals *v, uint64_t id);

/* Scratch bytes rs_template_expand needs for v (the arguments that are
 * not a bare {payload} or {key}). */
size_t rs_template_scratch(const struct rs_template *t, const struct rs_vals *v);

/*
 * Fill argv/argvlen (t->nargs entries each) for v. Arguments that need
 * building are written into scratch (rs_template_scratch bytes); the
 * others point into v. Everything stays valid while v and scratch do.
 */
void rs_template_expand(const struct rs_template *t, const struct rs_vals *v,
                        char *scratch, const char **argv, size_t *argvlen);

#endif
