/*
 * check_pending.c - libbatchd's in-flight table (client/pending.c) on
 * its own: every id found once whatever the order of removal, and the
 * cost of a reply independent of how many requests are in flight.
 *
 * The cost is asserted through the table's probe counter (slots visited),
 * never a clock: the old placement (home = id & mask) walked the whole
 * run of sequential ids on each removal, about depth/2 slots per reply,
 * where the table must stay at a few.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>

#include "pending.h"

#define DEPTH 8192                /* requests in flight */
#define ROUNDS 100000             /* replies in a sliding-window run */
#define MAX_PROBES_PER_OP 4.0     /* average slots visited per put + take */

/* A recognisable arg per id: the test checks each entry comes back with
 * its own. */
static void *arg_of(uint64_t id)
{
    return (void *)(uintptr_t)(id * 7 + 1);
}

static void put(struct bd_pending_table *t, uint64_t id)
{
    ck_assert_int_eq(bd_pending_reserve(t, 1), 0);
    bd_pending_put(t, id, NULL, arg_of(id));
}

static void take_ok(struct bd_pending_table *t, uint64_t id)
{
    struct bd_pending p;

    ck_assert_msg(bd_pending_take(t, id, &p) == 1, "id %llu not found",
                  (unsigned long long)id);
    ck_assert_uint_eq(p.id, id);
    ck_assert_ptr_eq(p.arg, arg_of(id));
}

/* Average probes per operation since 'before', over ops operations. */
static double per_op(const struct bd_pending_table *t, uint64_t before,
                     uint64_t ops)
{
    return (double)(t->probes - before) / (double)ops;
}

/* A pipeline DEPTH deep answered oldest first: the pattern that went
 * quadratic (each reply scanned every later id in flight). */
START_TEST(test_deep_pipeline_in_order_is_o1)
{
    struct bd_pending_table t;
    uint64_t next = 1, oldest = 1, before;

    bd_pending_init(&t);
    while (next <= DEPTH)
        put(&t, next++);
    before = t.probes;
    for (int i = 0; i < ROUNDS; i++) {
        take_ok(&t, oldest++);
        put(&t, next++);
    }
    ck_assert_uint_eq(t.n, DEPTH);
    ck_assert_msg(per_op(&t, before, 2 * ROUNDS) <= MAX_PROBES_PER_OP,
                  "%.1f probes per operation at depth %d",
                  per_op(&t, before, 2 * ROUNDS), DEPTH);
    while (oldest < next)
        take_ok(&t, oldest++);
    ck_assert_uint_eq(t.n, 0);
    bd_pending_destroy(&t);
}
END_TEST

/* Replies newest first, and in a shuffled order: every id once, with
 * its own arg, at a bounded cost; an id never put, or taken already,
 * is not found. */
START_TEST(test_out_of_order_removal)
{
    struct bd_pending_table t;
    uint64_t *ids = malloc(DEPTH * sizeof(*ids));
    struct bd_pending p;
    unsigned seed = 7;
    uint64_t before;

    ck_assert_ptr_nonnull(ids);
    bd_pending_init(&t);
    for (uint64_t id = 1; id <= DEPTH; id++)
        put(&t, id);
    before = t.probes;
    for (uint64_t id = DEPTH; id > DEPTH / 2; id--)
        take_ok(&t, id);
    ck_assert_int_eq(bd_pending_take(&t, DEPTH, &p), 0);
    ck_assert_int_eq(bd_pending_take(&t, DEPTH + 1, &p), 0);
    ck_assert_int_eq(bd_pending_take(&t, 0, &p), 0);
    for (int i = 0; i < DEPTH / 2; i++)
        ids[i] = (uint64_t)i + 1;
    for (int i = DEPTH / 2 - 1; i > 0; i--) {
        int j = rand_r(&seed) % (i + 1);
        uint64_t x = ids[i];

        ids[i] = ids[j];
        ids[j] = x;
    }
    for (int i = 0; i < DEPTH / 2; i++)
        take_ok(&t, ids[i]);
    ck_assert_uint_eq(t.n, 0);
    ck_assert_msg(per_op(&t, before, DEPTH) <= MAX_PROBES_PER_OP,
                  "%.1f probes per take", per_op(&t, before, DEPTH));
    free(ids);
    bd_pending_destroy(&t);
}
END_TEST

/* One old request stays while the window moves a million ids past it,
 * wrapping the table many times: it is still found, and the others stay
 * cheap. */
START_TEST(test_straggler_stays_found)
{
    struct bd_pending_table t;
    uint64_t next = 2, oldest = 2, before;

    bd_pending_init(&t);
    put(&t, 1);
    while (next < 2 + DEPTH)
        put(&t, next++);
    before = t.probes;
    for (int i = 0; i < 10 * ROUNDS; i++) {
        take_ok(&t, oldest++);
        put(&t, next++);
    }
    ck_assert_msg(per_op(&t, before, 20 * ROUNDS) <= MAX_PROBES_PER_OP,
                  "%.1f probes per operation", per_op(&t, before, 20 * ROUNDS));
    take_ok(&t, 1);
    bd_pending_destroy(&t);
}
END_TEST

/* Growth keeps every entry; pop drains each exactly once and the table
 * can be used again afterwards. */
START_TEST(test_grow_and_drain)
{
    struct bd_pending_table t;
    uint8_t *seen = calloc(3 * DEPTH + 1, 1);
    struct bd_pending p;
    size_t popped = 0;

    ck_assert_ptr_nonnull(seen);
    bd_pending_init(&t);
    for (uint64_t id = 1; id <= 3 * DEPTH; id++)
        put(&t, id);
    for (uint64_t id = 2; id <= 3 * DEPTH; id += 2)
        take_ok(&t, id);
    while (bd_pending_pop(&t, &p)) {
        ck_assert_uint_eq(p.id % 2, 1);
        ck_assert_ptr_eq(p.arg, arg_of(p.id));
        seen[p.id]++;
        popped++;
    }
    ck_assert_uint_eq(popped, 3 * DEPTH / 2);
    for (uint64_t id = 1; id <= 3 * DEPTH; id += 2)
        ck_assert_int_eq(seen[id], 1);
    ck_assert_int_eq(bd_pending_pop(&t, &p), 0);
    bd_pending_shrink(&t);
    put(&t, 5);
    take_ok(&t, 5);
    free(seen);
    bd_pending_destroy(&t);
}
END_TEST

static Suite *pending_suite(void)
{
    Suite *s = suite_create("pending");
    TCase *core = tcase_create("core");

    tcase_add_test(core, test_deep_pipeline_in_order_is_o1);
    tcase_add_test(core, test_out_of_order_removal);
    tcase_add_test(core, test_straggler_stays_found);
    tcase_add_test(core, test_grow_and_drain);
    suite_add_tcase(s, core);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(pending_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
