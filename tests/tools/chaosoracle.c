/*
 * chaosoracle.c - the delivery oracle (tests/oracle.c) from the shell,
 * for replaying a chaos run by hand (BATCHD_TEST_KEEP=1 keeps the
 * daemon's directory with its ledgers).
 *
 *   chaosoracle CLIENT_DIR SINK_LEDGER [SEND_FAILED]
 *
 * SEND_FAILED is the daemon's send_failed stat (batchctl stats --json);
 * without it the SEND accounting is skipped. Prints the counts per
 * status and the first violations; exit 0 when clean, 1 on violations,
 * 2 when the ledgers cannot be read.
 */
#include <stdio.h>
#include <stdlib.h>

#include "oracle.h"

int main(int argc, char **argv)
{
    struct bd_oracle_opts opts = { .send_failed = -1 };
    struct bd_oracle *o;
    long v;

    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: chaosoracle CLIENT_DIR SINK_LEDGER [SEND_FAILED]\n");
        return 2;
    }
    opts.client_dir = argv[1];
    opts.sink_ledger = argv[2];
    if (argc == 4)
        opts.send_failed = atoll(argv[3]);
    o = bd_oracle_run(&opts);
    if (o == NULL)
        return 2;
    bd_oracle_print(o, stdout);
    v = bd_oracle_violations(o);
    bd_oracle_free(o);
    return v ? 1 : 0;
}
