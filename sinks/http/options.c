/*
 * options.c - the http sink's [sink.NAME] keys (see http.h and
 * sinks/README.md). Every refusal names the option, so that
 * `batchd --check-config` and a failed start say what to fix.
 *
 * Credentials never sit in the config text: auth_file names a file
 * whose first line is user:password (basic) or the token (bearer).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "http.h"

#define HTTP_SECRET_MAX 4096  /* longest auth_file line we read */

const struct batchd_sink_option http_options[] = {
    { .name = "url", .def = NULL, .help = "where each batch is sent (required)" },
    { .name = "method", .def = "POST", .help = "POST, PUT or PATCH" },
    { .name = "header.*", .def = NULL, .help = "header.NAME = value: a request header" },
    { .name = "connect_timeout_ms", .def = "5000", .help = "connect timeout" },
    { .name = "timeout_ms", .def = "20000", .help = "whole request timeout (keep it under sink_timeout_ms)" },
    { .name = "keepalive", .def = "yes", .help = "reuse connections between batches" },
    { .name = "tls_verify", .def = "yes", .help = "verify the server's certificate and name" },
    { .name = "ca_file", .def = NULL, .help = "CA bundle (PEM) to verify with" },
    { .name = "tls_cert", .def = NULL, .help = "client certificate (PEM)" },
    { .name = "tls_key", .def = NULL, .help = "client key (PEM)" },
    { .name = "auth", .def = "none", .help = "none, basic or bearer" },
    { .name = "auth_file", .def = NULL, .help = "file: user:password (basic) or token (bearer)" },
    { .name = "unix_socket", .def = NULL, .help = "connect to this Unix socket instead of TCP" },
    { .name = "format", .def = "ndjson", .help = "ndjson, json or msgpack" },
    { .name = "reply", .def = "status", .help = "status or items" },
    { .name = "reply_body", .def = "no", .help = "status: OK items get the response body" },
    { .name = "max_response_bytes", .def = "16777216", .help = "longest response kept" },
    { .name = NULL },
};

/* Index of v in names (NULL-terminated), or -1. */
static int pick(const char *v, const char *const *names)
{
    for (int i = 0; names[i] != NULL; i++)
        if (strcmp(v, names[i]) == 0)
            return i;
    return -1;
}

static int yes_no(const char *k, const char *v, int *out, char *err,
                  size_t errlen)
{
    static const char *const names[] = {"no", "yes", NULL};
    int i = pick(v, names);

    if (i < 0) {
        snprintf(err, errlen, "http sink: option '%s': '%s' is not yes or no",
                 k, v);
        return -1;
    }
    *out = i;
    return 0;
}

static int number(const char *k, const char *v, long long min, long long max,
                  long long *out, char *err, size_t errlen)
{
    char *end;
    long long n;

    errno = 0;
    n = strtoll(v, &end, 10);
    if (errno != 0 || end == v || *end != '\0' || n < min || n > max) {
        snprintf(err, errlen, "http sink: option '%s': '%s' is not a number "
                 "in %lld..%lld", k, v, min, max);
        return -1;
    }
    *out = n;
    return 0;
}

static int enum_opt(const char *k, const char *v, const char *const *names,
                    int *out, char *err, size_t errlen)
{
    int i = pick(v, names);

    if (i < 0) {
        snprintf(err, errlen, "http sink: option '%s': unknown value '%s'", k, v);
        return -1;
    }
    *out = i;
    return 0;
}

static int str_opt(char **dst, const char *v, char *err, size_t errlen)
{
    free(*dst);
    *dst = strdup(v);
    if (*dst == NULL) {
        snprintf(err, errlen, "http sink: out of memory");
        return -1;
    }
    return 0;
}

/* A header line "NAME: value" from header.NAME = value. */
static int add_header(struct http_conf *c, const char *k, const char *v,
                      char *err, size_t errlen)
{
    const char *name = k + strlen("header.");
    struct curl_slist *l;
    char *line;

    if (name[strcspn(name, ": \t\r\n")] != '\0' || strpbrk(v, "\r\n")) {
        snprintf(err, errlen, "http sink: option '%s': a header name or "
                 "value with ':', a space or a line break", k);
        return -1;
    }
    if (asprintf(&line, "%s: %s", name, v) < 0) {
        snprintf(err, errlen, "http sink: out of memory");
        return -1;
    }
    l = curl_slist_append(c->headers, line);
    free(line);
    if (l == NULL) {
        snprintf(err, errlen, "http sink: out of memory");
        return -1;
    }
    c->headers = l;
    return 0;
}

/* The first line of auth_file, refusing empty files and (with a log
 * line from the caller's host) nothing else: permissions are the
 * operator's call. */
static int read_secret(struct http_conf *c, const char *path, char *err,
                       size_t errlen)
{
    char buf[HTTP_SECRET_MAX + 2];
    FILE *f = fopen(path, "re");
    size_t n;

    if (f == NULL) {
        snprintf(err, errlen, "http sink: option 'auth_file': %s: %s", path,
                 strerror(errno));
        return -1;
    }
    if (fgets(buf, sizeof(buf), f) == NULL)
        buf[0] = '\0';
    fclose(f);
    n = strcspn(buf, "\r\n");
    if (n == 0 || n > HTTP_SECRET_MAX) {
        snprintf(err, errlen, "http sink: option 'auth_file': %s: first line "
                 "empty or longer than %d bytes", path, HTTP_SECRET_MAX);
        explicit_bzero(buf, sizeof(buf));
        return -1;
    }
    buf[n] = '\0';
    c->secret = strdup(buf);
    explicit_bzero(buf, sizeof(buf));
    if (c->secret == NULL) {
        snprintf(err, errlen, "http sink: out of memory");
        return -1;
    }
    return 0;
}

static const char *const formats[] = {"ndjson", "json", "msgpack", NULL};
static const char *const replies[] = {"status", "items", NULL};
static const char *const auths[] = {"none", "basic", "bearer", NULL};
static const char *const methods[] = {"POST", "PUT", "PATCH", NULL};

/* One key. *auth_file is remembered for after the loop (auth may follow). */
static int one(struct http_conf *c, const char *k, const char *v,
               const char **auth_file, char *err, size_t errlen)
{
    long long n;
    int m;

    if (strncmp(k, "header.", 7) == 0)
        return add_header(c, k, v, err, errlen);
    if (strcmp(k, "url") == 0)
        return str_opt(&c->url, v, err, errlen);
    if (strcmp(k, "method") == 0) {
        if (enum_opt(k, v, methods, &m, err, errlen) != 0)
            return -1;
        return str_opt(&c->method, v, err, errlen);
    }
    if (strcmp(k, "connect_timeout_ms") == 0 || strcmp(k, "timeout_ms") == 0) {
        if (number(k, v, 1, 86400000, &n, err, errlen) != 0)
            return -1;
        *(k[0] == 'c' ? &c->connect_timeout_ms : &c->timeout_ms) = (long)n;
        return 0;
    }
    if (strcmp(k, "max_response_bytes") == 0) {
        if (number(k, v, 1, 1ll << 30, &n, err, errlen) != 0)
            return -1;
        c->max_response = (size_t)n;
        return 0;
    }
    if (strcmp(k, "keepalive") == 0)
        return yes_no(k, v, &c->keepalive, err, errlen);
    if (strcmp(k, "tls_verify") == 0)
        return yes_no(k, v, &c->tls_verify, err, errlen);
    if (strcmp(k, "reply_body") == 0)
        return yes_no(k, v, &c->reply_body, err, errlen);
    if (strcmp(k, "ca_file") == 0)
        return str_opt(&c->ca_file, v, err, errlen);
    if (strcmp(k, "tls_cert") == 0)
        return str_opt(&c->tls_cert, v, err, errlen);
    if (strcmp(k, "tls_key") == 0)
        return str_opt(&c->tls_key, v, err, errlen);
    if (strcmp(k, "unix_socket") == 0)
        return str_opt(&c->unix_socket, v, err, errlen);
    if (strcmp(k, "format") == 0)
        return enum_opt(k, v, formats, &c->format, err, errlen);
    if (strcmp(k, "reply") == 0)
        return enum_opt(k, v, replies, &c->reply, err, errlen);
    if (strcmp(k, "auth") == 0)
        return enum_opt(k, v, auths, &c->auth, err, errlen);
    if (strcmp(k, "auth_file") == 0) {
        *auth_file = v;
        return 0;
    }
    snprintf(err, errlen, "http sink: unknown option '%s'", k);
    return -1;
}

/* Options that only make sense together. */
static int check_whole(struct http_conf *c, const char *auth_file, char *err,
                       size_t errlen)
{
    if (c->url == NULL || c->url[0] == '\0') {
        snprintf(err, errlen, "http sink: option 'url' is required");
        return -1;
    }
    if ((c->auth != HTTP_AUTH_NONE) != (auth_file != NULL)) {
        snprintf(err, errlen, "http sink: option '%s' needs option '%s'",
                 auth_file ? "auth_file" : "auth",
                 auth_file ? "auth (basic or bearer)" : "auth_file");
        return -1;
    }
    if (c->auth == HTTP_AUTH_NONE)
        return 0;
    if (read_secret(c, auth_file, err, errlen) != 0)
        return -1;
    if (c->auth == HTTP_AUTH_BASIC && strchr(c->secret, ':') == NULL) {
        snprintf(err, errlen, "http sink: option 'auth_file': %s: basic auth "
                 "wants user:password", auth_file);
        return -1;
    }
    return 0;
}

/* Content-Type and "Expect:" (no 100-continue round trip for big
 * bodies), unless a header.* option set them. */
static int default_headers(struct http_conf *c, char *err, size_t errlen)
{
    static const char *const names[] = {"Content-Type", "Expect"};
    char line[96];

    for (size_t i = 0; i < 2; i++) {
        struct curl_slist *l;
        size_t n = strlen(names[i]);

        for (l = c->headers; l != NULL; l = l->next)
            if (strncasecmp(l->data, names[i], n) == 0 && l->data[n] == ':')
                break;
        if (l != NULL)
            continue;
        snprintf(line, sizeof(line), "%s:%s%s", names[i], i == 0 ? " " : "",
                 i == 0 ? http_body_content_type(c->format) : "");
        l = curl_slist_append(c->headers, line);
        if (l == NULL) {
            snprintf(err, errlen, "http sink: out of memory");
            return -1;
        }
        c->headers = l;
    }
    return 0;
}

int http_conf_parse(struct http_conf *c, const struct batchd_kv *kv,
                    size_t nkv, char *err, size_t errlen)
{
    const char *auth_file = NULL;

    memset(c, 0, sizeof(*c));
    c->connect_timeout_ms = 5000;
    c->timeout_ms = 20000; /* under the route's default sink_timeout_ms */
    c->keepalive = 1;
    c->tls_verify = 1;
    c->max_response = 16u << 20;
    for (size_t i = 0; i < nkv; i++)
        if (one(c, kv[i].key, kv[i].value, &auth_file, err, errlen) != 0)
            goto out_free;
    if (c->method == NULL && str_opt(&c->method, "POST", err, errlen) != 0)
        goto out_free;
    if (check_whole(c, auth_file, err, errlen) != 0 ||
        default_headers(c, err, errlen) != 0)
        goto out_free;
    return 0;

out_free:
    http_conf_free(c);
    return -1;
}

void http_conf_free(struct http_conf *c)
{
    free(c->url);
    free(c->method);
    curl_slist_free_all(c->headers);
    free(c->ca_file);
    free(c->tls_cert);
    free(c->tls_key);
    if (c->secret != NULL) {
        explicit_bzero(c->secret, strlen(c->secret));
        free(c->secret);
    }
    free(c->unix_socket);
    memset(c, 0, sizeof(*c));
}
