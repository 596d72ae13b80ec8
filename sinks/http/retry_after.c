/*
 * retry_after.c - a Retry-After header value as a wait (see http.h).
 * Pure (curl_getdate reads only its argument), fuzzed by
 * fuzz/fuzz_http_retry_after.c.
 *
 * RFC 9110 section 10.2.3: Retry-After = HTTP-date / delay-seconds.
 * Surrounding blanks are allowed; anything else around a number makes
 * it a date for curl_getdate to accept or refuse.
 */
#include <ctype.h>
#include <string.h>

#include "http.h"

#define HTTP_DATE_MAX 64  /* longer than any HTTP-date */

int http_retry_after_ms(const char *value, size_t len, time_t now,
                        uint64_t *ms)
{
    char buf[HTTP_DATE_MAX + 1];
    uint64_t secs = 0;
    size_t i = 0, j;
    time_t t;

    while (i < len && (value[i] == ' ' || value[i] == '\t'))
        i++;
    while (len > i && (value[len - 1] == ' ' || value[len - 1] == '\t'))
        len--;
    if (i == len)
        return -1;
    for (j = i; j < len && isdigit((unsigned char)value[j]); j++)
        if (secs < HTTP_RETRY_AFTER_MAX_MS / 1000)
            secs = secs * 10 + (uint64_t)(value[j] - '0');
    if (j == len) {
        *ms = secs * 1000;
        if (*ms > HTTP_RETRY_AFTER_MAX_MS)
            *ms = HTTP_RETRY_AFTER_MAX_MS;
        return 0;
    }
    if (len - i > HTTP_DATE_MAX || memchr(value + i, '\0', len - i) != NULL)
        return -1;
    memcpy(buf, value + i, len - i);
    buf[len - i] = '\0';
    t = curl_getdate(buf, NULL);
    if (t == (time_t)-1)
        return -1;
    if (t <= now) {
        *ms = 0;
        return 0;
    }
    *ms = (uint64_t)(t - now) >= HTTP_RETRY_AFTER_MAX_MS / 1000 ?
          HTTP_RETRY_AFTER_MAX_MS : (uint64_t)(t - now) * 1000;
    return 0;
}
