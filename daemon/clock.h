/*
 * clock.h - the loop clock (basics layer).
 *
 * Every loop callback reads the monotonic clock once and everything it
 * does shares that reading (items of one pass get one enqueue time).
 * The batching core reads time only through struct bd_clock, so its unit
 * tests (check_core.c) can drive it with a fake clock.
 */
#ifndef BD_CLOCK_H
#define BD_CLOCK_H

#include <stdint.h>

/* Monotonic clock in nanoseconds. */
uint64_t bd_now_ns(void);

struct bd_clock {
    uint64_t now_ns;          /* the reading of this loop pass */
    uint64_t (*read)(void);   /* bd_now_ns, or a test's fake clock */
};

/* Read the clock into c->now_ns and return it. */
static inline uint64_t bd_clock_tick(struct bd_clock *c)
{
    c->now_ns = c->read();
    return c->now_ns;
}

#endif
