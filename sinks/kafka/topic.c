/*
 * topic.c - the kafka sink's topic: fixed, or a template in which
 * "{key}" stands for the batch's key ("events.{key}").
 *
 * Kafka accepts topic names of 1..249 characters from [a-zA-Z0-9._-];
 * a batchd key may hold anything else (spaces, UTF-8), so a key that
 * would make an invalid name fails its batch with a message that says
 * so, instead of a broker error much later.
 */
#include <stdio.h>
#include <string.h>

#include "kafka.h"

#define KEY_TOKEN "{key}"

int kafka_topic_name_ok(const char *name, size_t len)
{
    if (len == 0 || len > KAFKA_TOPIC_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

/* Expand tmpl with key into out; -1 when it does not fit. */
static int expand(const char *tmpl, const char *key, size_t key_len,
                  char *out, size_t outlen, size_t *len)
{
    size_t tlen = strlen(KEY_TOKEN), n = 0;

    for (const char *p = tmpl; *p != '\0';) {
        const char *piece = p;
        size_t plen = 1;

        if (strncmp(p, KEY_TOKEN, tlen) == 0) {
            piece = key;
            plen = key_len;
            p += tlen;
        } else {
            p++;
        }
        if (n + plen >= outlen)
            return -1;
        memcpy(out + n, piece, plen);
        n += plen;
    }
    out[n] = '\0';
    *len = n;
    return 0;
}

int kafka_topic_template_check(struct kafka_opts *opts, char *err,
                               size_t errlen)
{
    char name[KAFKA_TOPIC_MAX + 2];
    size_t len;

    opts->topic_has_key = strstr(opts->topic, KEY_TOKEN) != NULL;
    if (expand(opts->topic, "k", 1, name, sizeof(name), &len) != 0 ||
        !kafka_topic_name_ok(name, len)) {
        snprintf(err, errlen,
                 "kafka: topic = %s: not a valid Kafka topic name or template "
                 "(1..%d of a-z A-Z 0-9 . _ -, and {key} for the key)",
                 opts->topic, KAFKA_TOPIC_MAX);
        return -1;
    }
    return 0;
}

int kafka_topic_for_key(const char *tmpl, const char *key, size_t key_len,
                        char *out, size_t outlen, char *err, size_t errlen)
{
    size_t len;

    if (expand(tmpl, key, key_len, out, outlen, &len) != 0 ||
        !kafka_topic_name_ok(out, len)) {
        snprintf(err, errlen,
                 "kafka: key '%.*s' does not make a valid topic name from "
                 "'%s' (1..%d of a-z A-Z 0-9 . _ -)",
                 (int)(key_len > 64 ? 64 : key_len), key, tmpl,
                 KAFKA_TOPIC_MAX);
        return -1;
    }
    return 0;
}
