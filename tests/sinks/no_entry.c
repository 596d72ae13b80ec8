/*
 * no_entry.c - test sink: a shared object that exports a function, but
 * not batchd_sink_entry. The daemon must report the missing symbol.
 */
#include "batchd_sink.h"

BATCHD_SINK_EXPORT int batchd_sink_entry_misspelled(void);

BATCHD_SINK_EXPORT int batchd_sink_entry_misspelled(void)
{
    return BATCHD_SINK_ABI_VERSION;
}
