/*
 * check_batch.c - the close rules of DESIGN section 3, with no loop and
 * no socket: bd_batch_ready (when may a batch leave) and bd_batch_fits
 * (how big may it be).
 */
#include <check.h>
#include <stdlib.h>

#include "batch.h"
#include "config.h"

static struct bd_route_conf route(int policy)
{
    struct bd_route_conf r = {
        .name = "t",
        .policy = policy,
        .max_items = 5,
        .max_bytes = 1000,
        .max_delay_us = 1000, /* 1 ms */
        .min_items = 3,
        .key_concurrency = 1,
        .key_max_items = 100,
        .key_max_bytes = 100000,
    };
    return r;
}

#define MS 1000000ull
#define T0 (10 * MS)

/* Take items of the given sizes from a queue the way dispatch does. */
static size_t take(const struct bd_route_conf *r, const size_t *lens, size_t n)
{
    size_t count = 0;
    uint64_t bytes = 0;

    while (count < n && bd_batch_fits(r, count, bytes, lens[count]))
        bytes += lens[count++];
    return count;
}

START_TEST(test_empty_queue_never_ready)
{
    for (int p = BD_POLICY_IMMEDIATE; p <= BD_POLICY_BALANCED; p++) {
        struct bd_route_conf r = route(p);

        ck_assert_int_eq(bd_batch_ready(&r, 0, 0, T0, 0, T0 + 100 * MS, 0, 0), 0);
        ck_assert_int_eq(bd_batch_ready(&r, 0, 0, T0, 0, T0, 0, 1), 0);
    }
}
END_TEST

START_TEST(test_immediate_dispatches_one_item)
{
    struct bd_route_conf r = route(BD_POLICY_IMMEDIATE);

    ck_assert_int_eq(bd_batch_ready(&r, 1, 10, T0, 0, T0, 0, 0), 1);
}
END_TEST

START_TEST(test_duration_waits_for_delay_or_size)
{
    struct bd_route_conf r = route(BD_POLICY_DURATION);

    ck_assert_int_eq(bd_batch_ready(&r, 4, 40, T0, 0, T0 + MS - 1000, 0, 0), 0);
    ck_assert_int_eq(bd_batch_ready(&r, 4, 40, T0, 0, T0 + MS, 0, 0), 1);
    ck_assert_int_eq(bd_batch_ready(&r, 5, 50, T0, 0, T0, 0, 0), 1);
    ck_assert_int_eq(bd_batch_ready(&r, 2, 1000, T0, 0, T0, 0, 0), 1);
}
END_TEST

START_TEST(test_size_waits_for_full_batch_only)
{
    struct bd_route_conf r = route(BD_POLICY_SIZE);

    ck_assert_int_eq(bd_batch_ready(&r, 4, 40, T0, 0, T0 + 1000 * MS, 0, 0), 0);
    ck_assert_int_eq(bd_batch_ready(&r, 5, 50, T0, 0, T0, 0, 0), 1);
    ck_assert_int_eq(bd_batch_ready(&r, 1, 999, T0, 0, T0, 0, 0), 0);
    ck_assert_int_eq(bd_batch_ready(&r, 1, 1000, T0, 0, T0, 0, 0), 1);
}
END_TEST

/* issue 10: with a queue bound below the batch limits, a size batch is
 * full when the queue is at its bound (it can grow no more). */
START_TEST(test_size_full_at_queue_bound)
{
    struct bd_route_conf r = route(BD_POLICY_SIZE);

    r.key_max_items = 3;      /* below max_items (5) */
    ck_assert_int_eq(bd_batch_ready(&r, 2, 20, T0, 0, T0, 0, 0), 0);
    ck_assert_int_eq(bd_batch_ready(&r, 3, 30, T0, 0, T0, 0, 0), 1);
    r.key_max_items = 100;
    r.key_max_bytes = 500;    /* below max_bytes (1000) */
    ck_assert_int_eq(bd_batch_ready(&r, 2, 499, T0, 0, T0, 0, 0), 0);
    ck_assert_int_eq(bd_batch_ready(&r, 2, 500, T0, 0, T0, 0, 0), 1);
}
END_TEST

START_TEST(test_balanced_min_items_unless_idle)
{
    struct bd_route_conf r = route(BD_POLICY_BALANCED);

    /* idle sink: go now */
    ck_assert_int_eq(bd_batch_ready(&r, 1, 10, T0, 0, T0, 0, 0), 1);
    /* busy sink: wait for min_items (3) */
    ck_assert_int_eq(bd_batch_ready(&r, 2, 20, T0, 0, T0, 1, 0), 0);
    ck_assert_int_eq(bd_batch_ready(&r, 3, 30, T0, 0, T0, 1, 0), 1);
    /* busy, but the delay passed */
    ck_assert_int_eq(bd_batch_ready(&r, 1, 10, T0, 0, T0 + MS, 1, 0), 1);
}
END_TEST

/* Issue 10.8: with key_concurrency 2, one running call leaves a slot
 * free: dispatch below min_items; with both slots busy, wait. */
START_TEST(test_balanced_free_slot_is_enough)
{
    struct bd_route_conf r = route(BD_POLICY_BALANCED);

    r.key_concurrency = 2;
    ck_assert_int_eq(bd_batch_ready(&r, 1, 10, T0, 0, T0, 0, 0), 1);
    ck_assert_int_eq(bd_batch_ready(&r, 1, 10, T0, 0, T0, 1, 0), 1);
    ck_assert_int_eq(bd_batch_ready(&r, 2, 20, T0, 0, T0, 2, 0), 0);
    ck_assert_int_eq(bd_batch_ready(&r, 3, 30, T0, 0, T0, 2, 0), 1);
}
END_TEST

START_TEST(test_flushing_overrides_every_policy)
{
    for (int p = BD_POLICY_IMMEDIATE; p <= BD_POLICY_BALANCED; p++) {
        struct bd_route_conf r = route(p);

        ck_assert_int_eq(bd_batch_ready(&r, 1, 1, T0, 0, T0, 1, 1), 1);
    }
}
END_TEST

START_TEST(test_max_items_cuts_batch)
{
    struct bd_route_conf r = route(BD_POLICY_DURATION);
    size_t lens[8] = {1, 1, 1, 1, 1, 1, 1, 1};

    ck_assert_uint_eq(take(&r, lens, 8), 5);
    ck_assert_uint_eq(take(&r, lens, 3), 3);
}
END_TEST

START_TEST(test_byte_ceiling_is_hard)
{
    struct bd_route_conf r = route(BD_POLICY_DURATION);
    size_t exact[3] = {400, 600, 1};
    size_t over[3] = {600, 600, 1};
    size_t zero[6] = {0, 0, 0, 0, 0, 0};

    /* 400 + 600 = 1000 fits exactly; the next byte starts a new batch */
    ck_assert_uint_eq(take(&r, exact, 3), 2);
    /* the item that would overflow starts the next batch */
    ck_assert_uint_eq(take(&r, over, 3), 1);
    /* empty payloads still stop at max_items */
    ck_assert_uint_eq(take(&r, zero, 6), 5);
}
END_TEST

START_TEST(test_first_item_always_fits)
{
    struct bd_route_conf r = route(BD_POLICY_DURATION);

    ck_assert_int_eq(bd_batch_fits(&r, 0, 0, 1000), 1);
    ck_assert_int_eq(bd_batch_fits(&r, 1, 1000, 0), 1);
    ck_assert_int_eq(bd_batch_fits(&r, 1, 1000, 1), 0);
}
END_TEST

START_TEST(test_limits_extremes)
{
    struct bd_route_conf r = route(BD_POLICY_DURATION);

    r.max_items = 1;
    ck_assert_int_eq(bd_batch_fits(&r, 1, 0, 0), 0);
    ck_assert_int_eq(bd_batch_ready(&r, 1, 0, T0, 0, T0, 0, 0), 1);
    r.max_items = 1000000;
    r.max_delay_us = 60000000; /* 60 s: no overflow in ns arithmetic */
    ck_assert_int_eq(bd_batch_ready(&r, 1, 0, T0, 0, T0 + 59999 * MS, 0, 0), 0);
    ck_assert_int_eq(bd_batch_ready(&r, 1, 0, T0, 0, T0 + 60000 * MS, 0, 0), 1);
    r.max_delay_us = 0; /* zero delay: duration acts at once */
    ck_assert_int_eq(bd_batch_ready(&r, 1, 0, T0, 0, T0, 0, 0), 1);
}
END_TEST

START_TEST(test_deadline_makes_batch_leave_early)
{
    struct bd_route_conf r = route(BD_POLICY_SIZE);

    r.max_delay_us = 1000000;
    /* far deadline: a size batch keeps waiting */
    ck_assert_int_eq(bd_batch_ready(&r, 1, 10, T0, T0 + 500 * MS, T0, 0, 0), 0);
    /* within the margin of the deadline: leave now */
    ck_assert_int_eq(bd_batch_ready(&r, 1, 10, T0, T0 + 500 * MS,
                                    T0 + 500 * MS - BD_DEADLINE_MARGIN_NS, 0, 0), 1);
    ck_assert_int_eq(bd_batch_ready(&r, 1, 10, T0, T0 + 2 * MS, T0 + 2 * MS, 0, 0), 1);
}
END_TEST

START_TEST(test_backoff_doubles_caps_and_jitters)
{
    struct bd_route_conf r = route(BD_POLICY_DURATION);

    r.retry_base_ms = 100;
    r.retry_cap_ms = 1000;
    /* rnd 0 gives half the nominal wait, rnd near 1 the whole of it */
    ck_assert_uint_eq(bd_batch_backoff_ns(&r, 1, 0.0), 50 * MS);
    ck_assert_uint_eq(bd_batch_backoff_ns(&r, 1, 0.999999) / MS, 99);
    ck_assert_uint_eq(bd_batch_backoff_ns(&r, 2, 0.0), 100 * MS);
    ck_assert_uint_eq(bd_batch_backoff_ns(&r, 3, 0.0), 200 * MS);
    ck_assert_uint_eq(bd_batch_backoff_ns(&r, 4, 0.0), 400 * MS);
    ck_assert_uint_eq(bd_batch_backoff_ns(&r, 5, 0.0), 500 * MS); /* capped at 1000 */
    ck_assert_uint_eq(bd_batch_backoff_ns(&r, 100, 0.0), 500 * MS);
    for (int i = 0; i < 1000; i++) {
        uint64_t w = bd_batch_backoff_ns(&r, 2, (double)i / 1000.0);

        ck_assert(w >= 100 * MS && w <= 200 * MS);
    }
}
END_TEST

static Suite *batch_suite(void)
{
    Suite *s = suite_create("batch");
    TCase *core = tcase_create("core");
    TCase *limits = tcase_create("limits");

    tcase_add_test(core, test_empty_queue_never_ready);
    tcase_add_test(core, test_immediate_dispatches_one_item);
    tcase_add_test(core, test_duration_waits_for_delay_or_size);
    tcase_add_test(core, test_size_waits_for_full_batch_only);
    tcase_add_test(core, test_balanced_min_items_unless_idle);
    tcase_add_test(core, test_size_full_at_queue_bound);
    tcase_add_test(core, test_balanced_free_slot_is_enough);
    tcase_add_test(core, test_flushing_overrides_every_policy);
    tcase_add_test(core, test_max_items_cuts_batch);
    tcase_add_test(limits, test_byte_ceiling_is_hard);
    tcase_add_test(limits, test_first_item_always_fits);
    tcase_add_test(limits, test_limits_extremes);
    tcase_add_test(core, test_deadline_makes_batch_leave_early);
    tcase_add_test(limits, test_backoff_doubles_caps_and_jitters);
    suite_add_tcase(s, core);
    suite_add_tcase(s, limits);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(batch_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
