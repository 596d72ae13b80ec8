/*
 * fuzz_http_retry_after.c - libFuzzer target for the http sink's
 * Retry-After parser (sinks/http/retry_after.c): any header value. The
 * first 4 bytes (when there are 4) set "now"; the rest is the value.
 * Checked besides "no crash": a parsed wait never passes the cap, and a
 * value of only digits always parses.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "../sinks/http/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    time_t now = 1700000000;
    uint64_t ms = 0;
    int digits = 1, rc;

    if (size >= 4) {
        now = (time_t)bd_get_be(data, 4);
        data += 4;
        size -= 4;
    }
    rc = http_retry_after_ms((const char *)data, size, now, &ms);
    if (rc == 0 && ms > HTTP_RETRY_AFTER_MAX_MS)
        abort();
    for (size_t i = 0; i < size; i++)
        digits &= isdigit(data[i]) != 0;
    if (size > 0 && digits && rc != 0)
        abort();
    return 0;
}
