/*
 * check_hash.c - the key table's hash (issue 10, item 1): SipHash
 * against its published test vectors, and the properties that stop
 * hash flooding: the table's bucket of a key depends on a secret drawn
 * at start-up, and keys that all collide under the old unkeyed FNV-1a
 * spread over the buckets; and the real daemon draws a new seed at every
 * start (its stats list the same keys in another order).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "batchd.h"
#include "helpers.h"
#include "server.h"
#include "siphash.h"

/* SipHash-2-4, key 00 01 .. 0f, message 00 01 .. (i-1): vectors_sip64
 * of the reference implementation (github.com/veorq/SipHash, vectors.h),
 * each read as a little-endian 64-bit value. */
static const uint64_t sip24_vectors[64] = {
    0x726fdb47dd0e0e31ull, 0x74f839c593dc67fdull, 0x0d6c8009d9a94f5aull,
    0x85676696d7fb7e2dull, 0xcf2794e0277187b7ull, 0x18765564cd99a68dull,
    0xcbc9466e58fee3ceull, 0xab0200f58b01d137ull, 0x93f5f5799a932462ull,
    0x9e0082df0ba9e4b0ull, 0x7a5dbbc594ddb9f3ull, 0xf4b32f46226bada7ull,
    0x751e8fbc860ee5fbull, 0x14ea5627c0843d90ull, 0xf723ca908e7af2eeull,
    0xa129ca6149be45e5ull, 0x3f2acc7f57c29bdbull, 0x699ae9f52cbe4794ull,
    0x4bc1b3f0968dd39cull, 0xbb6dc91da77961bdull, 0xbed65cf21aa2ee98ull,
    0xd0f2cbb02e3b67c7ull, 0x93536795e3a33e88ull, 0xa80c038ccd5ccec8ull,
    0xb8ad50c6f649af94ull, 0xbce192de8a85b8eaull, 0x17d835b85bbb15f3ull,
    0x2f2e6163076bcfadull, 0xde4daaaca71dc9a5ull, 0xa6a2506687956571ull,
    0xad87a3535c49ef28ull, 0x32d892fad841c342ull, 0x7127512f72f27cceull,
    0xa7f32346f95978e3ull, 0x12e0b01abb051238ull, 0x15e034d40fa197aeull,
    0x314dffbe0815a3b4ull, 0x027990f029623981ull, 0xcadcd4e59ef40c4dull,
    0x9abfd8766a33735cull, 0x0e3ea96b5304a7d0ull, 0xad0c42d6fc585992ull,
    0x187306c89bc215a9ull, 0xd4a60abcf3792b95ull, 0xf935451de4f21df2ull,
    0xa9538f0419755787ull, 0xdb9acddff56ca510ull, 0xd06c98cd5c0975ebull,
    0xe612a3cb9ecba951ull, 0xc766e62cfcadaf96ull, 0xee64435a9752fe72ull,
    0xa192d576b245165aull, 0x0a8787bf8ecb74b2ull, 0x81b3e73d20b49b6full,
    0x7fa8220ba3b2eceaull, 0x245731c13ca42499ull, 0xb78dbfaf3a8d83bdull,
    0xea1ad565322a1a0bull, 0x60e61c23a3795013ull, 0x6606d7e446282b93ull,
    0x6ca4ecb15c5f91e1ull, 0x9f626da15c9625f3ull, 0xe51b38608ef25f57ull,
    0x958a324ceb064572ull,
};

/* SipHash-1-3 with the all-zero key, message 00 01 .. (i-1), i = 1..17:
 * CPython's str/bytes hash is SipHash-1-3 and uses an all-zero key under
 * PYTHONHASHSEED=0, so these are
 *   PYTHONHASHSEED=0 python3 -c 'print(hash(bytes(range(i))) & (2**64-1))'
 * (an independent implementation; 17 lengths cover every tail size and
 * more than two whole words). */
static const uint64_t sip13_vectors[17] = {
    0x68a914128e01e473ull, 0x010bac45c41e3669ull, 0x4d4c9a4a8ef6e0adull,
    0x7cc43f98813e4dbdull, 0x5abe2169dff36275ull, 0xe3c25f87624f1cdbull,
    0x2f098ab0c751325aull, 0xead411e67ebe2eeaull, 0x75927f9d95124362ull,
    0xaf9f77a65ab51a1dull, 0xfe64ce8b6617fcffull, 0xa6baf4fb0f9fe1c2ull,
    0xa0cf3211850f8e0dull, 0x7f86049379fbfe67ull, 0xf30eb725bb91c9eaull,
    0x8972188433a5c5b7ull, 0x4883c49a2c009c1dull,
};

START_TEST(test_siphash24_reference_vectors)
{
    uint8_t kb[16], msg[64];
    struct bd_sipkey key;

    for (int i = 0; i < 16; i++)
        kb[i] = (uint8_t)i;
    for (int i = 0; i < 64; i++)
        msg[i] = (uint8_t)i;
    bd_sipkey_from_bytes(&key, kb);
    for (size_t n = 0; n < 64; n++)
        ck_assert_msg(bd_siphash24(&key, msg, n) == sip24_vectors[n],
                      "SipHash-2-4 of %zu bytes: %016llx, want %016llx", n,
                      (unsigned long long)bd_siphash24(&key, msg, n),
                      (unsigned long long)sip24_vectors[n]);
}
END_TEST

START_TEST(test_siphash13_matches_cpython)
{
    struct bd_sipkey key = {0, 0};
    uint8_t msg[17];

    for (int i = 0; i < 17; i++)
        msg[i] = (uint8_t)i;
    for (size_t n = 1; n <= 17; n++)
        ck_assert_msg(bd_siphash13(&key, msg, n) == sip13_vectors[n - 1],
                      "SipHash-1-3 of %zu bytes: %016llx, want %016llx", n,
                      (unsigned long long)bd_siphash13(&key, msg, n),
                      (unsigned long long)sip13_vectors[n - 1]);
}
END_TEST

START_TEST(test_random_keys_differ)
{
    struct bd_sipkey a, b;

    ck_assert_int_eq(bd_sipkey_random(&a), 0);
    ck_assert_int_eq(bd_sipkey_random(&b), 0);
    ck_assert_msg(a.k0 != b.k0 || a.k1 != b.k1, "two start-ups, one key");
}
END_TEST

/* ---- the key table's bucket --------------------------------------------- */

#define BUCKET_BITS 10
#define NBUCKETS (1u << BUCKET_BITS)
#define NCOLLIDING 512

/* The table's hash before the fix: 32-bit FNV-1a, unkeyed. */
static uint32_t fnv1a(const char *s, size_t n)
{
    uint32_t h = 2166136261u;

    while (n--) {
        h ^= (uint8_t)*s++;
        h *= 16777619u;
    }
    return h;
}

/* NCOLLIDING keys "user.N" whose FNV-1a low BUCKET_BITS bits are all 0:
 * under the old hash every one of them went to bucket 0 of a table of
 * NBUCKETS (and of every smaller one). Brute force: 1 key in 1024. */
static char (*fnv_colliding_keys(void))[16]
{
    char (*keys)[16] = calloc(NCOLLIDING, sizeof(*keys));
    size_t got = 0;

    ck_assert_ptr_nonnull(keys);
    for (unsigned long i = 0; got < NCOLLIDING; i++) {
        int n = snprintf(keys[got], sizeof(keys[got]), "user.%lu", i);

        if ((fnv1a(keys[got], (size_t)n) & (NBUCKETS - 1)) == 0)
            got++;
    }
    return keys;
}

/* A server as far as the key table's hash is concerned. */
static struct bd_server *server_with_key(void)
{
    struct bd_server *srv = calloc(1, sizeof(*srv));

    ck_assert_ptr_nonnull(srv);
    ck_assert_int_eq(bd_sipkey_random(&srv->core.hash_key), 0);
    return srv;
}

static unsigned bucket(const struct bd_server *srv, const char *key)
{
    return bd_batch_key_hash(&srv->core, key, strlen(key)) & (NBUCKETS - 1);
}

START_TEST(test_fnv_colliding_keys_spread)
{
    char (*keys)[16] = fnv_colliding_keys();
    struct bd_server *srv = server_with_key();
    unsigned count[NBUCKETS] = {0}, max = 0, used = 0;

    for (size_t i = 0; i < NCOLLIDING; i++) {
        unsigned b = bucket(srv, keys[i]);

        used += count[b] == 0;
        if (++count[b] > max)
            max = count[b];
    }
    /* 512 keys in 1024 buckets: about 400 buckets used and a longest
     * chain of 4 or 5 for a good hash; the old one put all 512 in one.
     * The bounds leave room for any key the test may draw. */
    ck_assert_msg(max <= 12 && used >= 300,
                  "FNV-colliding keys: longest chain %u, %u buckets used", max,
                  used);
    free(keys);
    free(srv);
}
END_TEST

START_TEST(test_bucket_layout_depends_on_the_seed)
{
    char (*keys)[16] = fnv_colliding_keys();
    struct bd_server *a = server_with_key(), *b = server_with_key();
    size_t moved = 0;

    for (size_t i = 0; i < NCOLLIDING; i++)
        moved += bucket(a, keys[i]) != bucket(b, keys[i]);
    /* Independent keys: a key stays in its bucket with chance 1/1024. */
    ck_assert_msg(moved >= NCOLLIDING - 16, "only %zu of %d keys changed "
                  "bucket under another seed", moved, NCOLLIDING);
    /* The same seed gives the same layout (a table must find its keys). */
    b->core.hash_key = a->core.hash_key;
    for (size_t i = 0; i < NCOLLIDING; i++)
        ck_assert_uint_eq(bucket(a, keys[i]), bucket(b, keys[i]));
    free(keys);
    free(a);
    free(b);
}
END_TEST

/* ---- the real daemon draws its seed at start-up ------------------------------------ */

#define ORDER_KEYS 64

/* Start a daemon, give ORDER_KEYS keys one queued item each (a size
 * route: they stay), and write the order in which stats lists them
 * (the key table's walk, bucket by bucket) to order[]. */
static void stats_key_order(int *order)
{
    struct bd_test_daemon *d = bd_test_daemon_start(
        "[sink.e]\nplugin = echo\n\n[route.all]\nmatch = *\nsink = e\n"
        "policy = size\nmax_items = 1000\n");
    struct batchd_client *c = bd_test_connect(d);
    const char *pos[ORDER_KEYS];
    char key[32], *json;

    for (int i = 0; i < ORDER_KEYS; i++) {
        struct batchd_reply *r = NULL;

        snprintf(key, sizeof(key), "order.%d", i);
        ck_assert_int_eq(batchd_send(c, key, "x", 1, NULL, 10000, &r),
                         BATCHD_CLIENT_OK);
        ck_assert_int_eq(r->status, BATCHD_ACCEPTED);
        batchd_reply_free(r);
    }
    json = bd_test_stats_json(d);
    for (int i = 0; i < ORDER_KEYS; i++) {
        snprintf(key, sizeof(key), "\"order.%d\"", i);
        pos[i] = strstr(json, key);
        ck_assert_msg(pos[i] != NULL, "%s not listed: %s", key, json);
    }
    for (int i = 0; i < ORDER_KEYS; i++) { /* rank of key i in the listing */
        order[i] = 0;
        for (int j = 0; j < ORDER_KEYS; j++)
            order[i] += pos[j] < pos[i];
    }
    free(json);
    batchd_free(c);
    bd_test_daemon_stop(d);
}

/* The same keys, two start-ups: with a hash keyed at start-up the table
 * (and so the stats listing) orders them differently; with an unkeyed
 * hash the order was the same every time. 64 keys in the same order by
 * chance: about 1 in 64!. */
START_TEST(test_daemon_seed_differs_between_starts)
{
    int a[ORDER_KEYS], b[ORDER_KEYS];

    stats_key_order(a);
    stats_key_order(b);
    ck_assert_msg(memcmp(a, b, sizeof(a)) != 0,
                  "two start-ups listed %d keys in the same order: the key "
                  "table's hash is not seeded at start-up", ORDER_KEYS);
}
END_TEST

static Suite *hash_suite(void)
{
    Suite *s = suite_create("hash");
    TCase *core = tcase_create("core");

    tcase_add_test(core, test_siphash24_reference_vectors);
    tcase_add_test(core, test_siphash13_matches_cpython);
    tcase_add_test(core, test_random_keys_differ);
    tcase_add_test(core, test_fnv_colliding_keys_spread);
    tcase_add_test(core, test_bucket_layout_depends_on_the_seed);
    tcase_add_test(core, test_daemon_seed_differs_between_starts);
    suite_add_tcase(s, core);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(hash_suite());
    int failed;

    srunner_run_all(sr, CK_ENV);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
