/*
 * fuzz_http_reply.c - libFuzzer target for the http sink's response
 * parsers (sinks/http/reply.c): any bytes a server may send as the
 * per-item reply. The first input byte picks how many items were sent
 * (0..255), the rest is the body. Checked besides "no crash, no leak":
 *
 *   - success fills every verdict with a code 1..3 and a length that
 *     matches its data (NULL only when empty);
 *   - failure leaves every verdict cleared and says why;
 *   - http_status_verdict maps every status to a code 1..3.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../sinks/http/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct http_verdict v[256];
    char err[256] = "";
    size_t n;
    int rc;

    if (size < 1)
        return 0;
    n = data[0];
    memset(v, 0, sizeof(v));
    rc = http_reply_items((const char *)data + 1, size - 1, n, v, err,
                          sizeof(err));
    for (size_t i = 0; i < n; i++) {
        if (rc == 0 && (v[i].code < BATCHD_RESULT_OK ||
                        v[i].code > BATCHD_RESULT_FAIL))
            abort();
        if (rc != 0 && (v[i].code != 0 || v[i].data != NULL))
            abort();
        if ((v[i].data == NULL) != (v[i].len == 0))
            abort();
    }
    if (rc != 0 && err[0] == '\0')
        abort();
    http_verdicts_clear(v, n);
    for (long s = -1; s < 1100; s += 37)
        if (http_status_verdict(s) < BATCHD_RESULT_OK ||
            http_status_verdict(s) > BATCHD_RESULT_FAIL)
            abort();
    return 0;
}
