/*
 * io.h - whole-buffer read and write on a blocking descriptor, retrying
 * EINTR and short transfers. For the tools (batchctl bench, bench/);
 * the daemon and the client library do their own non-blocking I/O.
 */
#ifndef BD_IO_H
#define BD_IO_H

#include <stddef.h>

/* Write all n bytes. Returns 0, or -1 (errno set, or EOF-like 0 write). */
int bd_write_all(int fd, const void *p, size_t n);

/* Read exactly n bytes. Returns 0, or -1 on error or EOF first. */
int bd_read_all(int fd, void *p, size_t n);

#endif
