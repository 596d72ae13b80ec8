/*
 * io.c - whole-buffer blocking I/O (see io.h).
 */
#include <errno.h>
#include <unistd.h>

#include "io.h"

int bd_write_all(int fd, const void *p, size_t n)
{
    const char *s = p;

    while (n > 0) {
        ssize_t w = write(fd, s, n);

        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

int bd_read_all(int fd, void *p, size_t n)
{
    char *s = p;

    while (n > 0) {
        ssize_t r = read(fd, s, n);

        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        s += r;
        n -= (size_t)r;
    }
    return 0;
}
