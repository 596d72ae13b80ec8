/*
 * alloc.h - the allocator every batchd component goes through.
 *
 * Routing allocation through one place lets tests fail the Nth call
 * (bd_alloc_fail_after) and prove that error paths free what they hold.
 */
#ifndef BD_ALLOC_H
#define BD_ALLOC_H

#include <stddef.h>

void *bd_malloc(size_t n);
void *bd_calloc(size_t n, size_t size);
void *bd_realloc(void *p, size_t n);
char *bd_strndup(const char *s, size_t n);
char *bd_strdup(const char *s);
void bd_free(void *p);

/* Test hook: the n-th allocation from now on (1 = the next) fails;
 * 0 turns the hook off. Not thread-safe; for unit tests only. */
void bd_alloc_fail_after(unsigned long n);

#endif
