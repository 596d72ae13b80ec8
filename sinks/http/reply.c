/*
 * reply.c - what a response means for the items (see http.h). Pure
 * functions of their input: no I/O, no curl, fuzzed by fuzz/fuzz_http_reply.c.
 *
 * The items reply, modelled on Elasticsearch's _bulk answer:
 *
 *   [ {"status": 201, "body": "id-1"},
 *     {"status": 400, "error": "field x missing"},
 *     {"status": "retry"} ]
 *
 * or {"items": [...]} around the array, and each element may also be
 * {"<action>": {"status": ...}} ({"index": {...}} in _bulk). "status" is
 * an integer (2xx OK; 408, 429, 5xx RETRY; anything else FAIL) or one of
 * "ok", "retry", "error".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "http.h"

#define HTTP_JSON_MAX_DEPTH 64 /* deeper replies are refused, not recursed */

int http_status_verdict(long status)
{
    if (status >= 200 && status <= 299)
        return BATCHD_RESULT_OK;
    if (status == 408 || status == 429 || (status >= 500 && status <= 599))
        return BATCHD_RESULT_RETRY;
    return BATCHD_RESULT_FAIL;
}

/* The verdict of a "status" member; 0 when it is neither form. */
static int status_of(const json_t *s)
{
    if (json_is_integer(s)) {
        json_int_t n = json_integer_value(s);

        return (n < 100 || n > 999) ? 0 : http_status_verdict((long)n);
    }
    if (!json_is_string(s))
        return 0;
    if (strcmp(json_string_value(s), "ok") == 0)
        return BATCHD_RESULT_OK;
    if (strcmp(json_string_value(s), "retry") == 0)
        return BATCHD_RESULT_RETRY;
    if (strcmp(json_string_value(s), "error") == 0)
        return BATCHD_RESULT_FAIL;
    return 0;
}

/* The object holding "status": el itself, or its single member's value. */
static const json_t *status_holder(const json_t *el)
{
    const char *k;
    json_t *v;

    if (!json_is_object(el))
        return NULL;
    if (json_object_get(el, "status") != NULL)
        return el;
    if (json_object_size(el) != 1)
        return NULL;
    json_object_foreach((json_t *)el, k, v)
        if (json_is_object(v) && json_object_get(v, "status") != NULL)
            return v;
    return NULL;
}

/* v = code with j as data: a string as it is, any other value as
 * compact JSON, NULL as nothing. */
static int set_json(struct http_verdict *v, int code, const json_t *j)
{
    char *s;
    int rc;

    if (j == NULL)
        return http_verdict_set(v, code, NULL, 0);
    if (json_is_string(j))
        return http_verdict_set(v, code, json_string_value(j),
                                json_string_length(j));
    s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    if (s == NULL)
        return http_verdict_set(v, BATCHD_RESULT_FAIL, NULL, 0);
    rc = http_verdict_set(v, code, s, strlen(s));
    free(s);
    return rc;
}

/* One element: its verdict and data into v. 0, or -1 with err. */
static int one(const json_t *el, size_t i, struct http_verdict *v, char *err,
               size_t errlen)
{
    const json_t *h = status_holder(el), *s, *msg;
    char buf[48];
    int code;

    if (h == NULL) {
        snprintf(err, errlen, "item %zu: not an object with a \"status\"", i);
        return -1;
    }
    s = json_object_get(h, "status");
    code = status_of(s);
    if (code == 0) {
        snprintf(err, errlen, "item %zu: \"status\" must be 100..999 or "
                 "\"ok\", \"retry\", \"error\"", i);
        return -1;
    }
    if (code == BATCHD_RESULT_OK)
        return set_json(v, code, json_object_get(h, "body"));
    if (code == BATCHD_RESULT_RETRY)
        return http_verdict_set(v, code, NULL, 0);
    msg = json_object_get(h, "error");
    if (msg == NULL)
        msg = json_object_get(h, "body");
    if (msg != NULL)
        return set_json(v, code, msg);
    if (json_is_integer(s))
        snprintf(buf, sizeof(buf), "status %lld", (long long)json_integer_value(s));
    else
        snprintf(buf, sizeof(buf), "status error");
    return http_verdict_set(v, code, buf, strlen(buf));
}

/* Is j (a decoded reply) nested deeper than max? Iterative bound on
 * top of jansson's own, so that a huge nesting costs no recursion here. */
static int too_deep(const json_t *j, int depth)
{
    size_t i;
    const char *k;
    json_t *v;

    if (depth > HTTP_JSON_MAX_DEPTH)
        return 1;
    if (json_is_array(j)) {
        json_array_foreach(j, i, v)
            if (too_deep(v, depth + 1))
                return 1;
    } else if (json_is_object(j)) {
        json_object_foreach((json_t *)j, k, v)
            if (too_deep(v, depth + 1))
                return 1;
    }
    return 0;
}

int http_reply_items(const char *body, size_t len, size_t n,
                     struct http_verdict *v, char *err, size_t errlen)
{
    json_error_t je;
    json_t *root, *arr;
    size_t i;

    root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (root == NULL) {
        snprintf(err, errlen, "not JSON: %s at byte %d", je.text, je.position);
        return -1;
    }
    arr = json_is_object(root) ? json_object_get(root, "items") : root;
    if (!json_is_array(arr)) {
        snprintf(err, errlen, "not an array (nor an object with \"items\")");
        goto out_bad;
    }
    if (json_array_size(arr) != n) {
        snprintf(err, errlen, "%zu replies for %zu items",
                 json_array_size(arr), n);
        goto out_bad;
    }
    if (too_deep(arr, 0)) {
        snprintf(err, errlen, "nested deeper than %d", HTTP_JSON_MAX_DEPTH);
        goto out_bad;
    }
    for (i = 0; i < n; i++)
        if (one(json_array_get(arr, i), i, &v[i], err, errlen) != 0)
            goto out_bad;
    json_decref(root);
    return 0;

out_bad:
    http_verdicts_clear(v, n);
    json_decref(root);
    return -1;
}
