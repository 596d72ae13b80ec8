/*
 * make_corpus.c - write the seed corpus of the fuzz targets.
 *
 *   build-fuzz/make_corpus fuzz/corpus      (make fuzz-corpus)
 *
 * Frames come from the real encoders in proto/msg.c where they can, and
 * are packed by hand (msgpack-c's packer, or raw bytes) for the hostile
 * cases of DESIGN section 2 that no encoder would write. Writes
 * DIR/frame/ and DIR/msg/ (one frame per file, the same set) and
 * DIR/conn/ (fuzz_conn's layout: flags, chunk sizes, client stream).
 * Output is deterministic, so re-running it changes no file.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <msgpack.h>

#include "buf.h"
#include "frame.h"
#include "msg.h"

static const char *outdir;
static unsigned nfiles;

static void oom(void)
{
    fprintf(stderr, "make_corpus: out of memory\n");
    exit(1);
}

static void mkdir_p(const char *path)
{
    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "make_corpus: mkdir %s: %s\n", path, strerror(errno));
        exit(1);
    }
}

static void emit(const char *sub, const char *name, const void *p, size_t n)
{
    char path[512];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s/%s", outdir, sub, name);
    f = fopen(path, "wb");
    if (f == NULL || fwrite(p, 1, n, f) != n || fclose(f) != 0) {
        fprintf(stderr, "make_corpus: %s: %s\n", path, strerror(errno));
        exit(1);
    }
    nfiles++;
}

/* ---- building bodies by hand ------------------------------------------- */

/* A msgpack body under construction (msgpack-c's packer into a bd_buf). */
struct body {
    struct bd_buf b;
    msgpack_packer pk;
};

static int body_write_cb(void *data, const char *p, size_t n)
{
    return bd_buf_append(data, p, n);
}

static void body_init(struct body *x)
{
    bd_buf_init(&x->b);
    msgpack_packer_init(&x->pk, &x->b, body_write_cb);
}

static void raw(struct body *x, const void *p, size_t n)
{
    if (bd_buf_append(&x->b, p, n) != 0)
        oom();
}

static void str(struct body *x, const char *s, size_t n)
{
    msgpack_pack_str(&x->pk, n);
    msgpack_pack_str_body(&x->pk, s, n);
}

static void cstr(struct body *x, const char *s)
{
    str(x, s, strlen(s));
}

static void bin(struct body *x, const void *p, size_t n)
{
    msgpack_pack_bin(&x->pk, n);
    msgpack_pack_bin_body(&x->pk, p, n);
}

/* [type, req_id, key, payload] with the key's bytes as given. */
static void item_head(struct body *x, unsigned n, int type, uint64_t id,
                      const char *key, size_t keylen)
{
    msgpack_pack_array(&x->pk, n);
    msgpack_pack_uint64(&x->pk, (uint64_t)type);
    msgpack_pack_uint64(&x->pk, id);
    str(x, key, keylen);
}

/* Prefix a body with its length: the wire frame. */
static void frame_of(struct bd_buf *out, const void *body, size_t n)
{
    uint8_t hdr[4] = {(uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8),
                      (uint8_t)n};

    if (bd_buf_append(out, hdr, 4) != 0 || bd_buf_append(out, body, n) != 0)
        oom();
}

/* ---- the single-frame set (frame/ and msg/) ----------------------------- */

static void one(const char *name, const struct bd_buf *frame)
{
    emit("frame", name, bd_buf_head(frame), frame->len);
    emit("msg", name, bd_buf_head(frame), frame->len);
}

static void one_body(const char *name, struct body *x)
{
    struct bd_buf f;

    bd_buf_init(&f);
    frame_of(&f, bd_buf_head(&x->b), x->b.len);
    one(name, &f);
    bd_buf_destroy(&f);
    bd_buf_destroy(&x->b);
}

static void one_raw(const char *name, const void *p, size_t n)
{
    emit("frame", name, p, n);
    emit("msg", name, p, n);
}

static const char trace[] =
    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

static void full_opts(struct bd_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->has_deadline = 1;
    o->deadline_ms = 500;
    o->has_priority = 1;
    o->priority = 3;
    o->dedup_id = "dedup-1";
    o->dedup_len = 7;
    o->trace = trace;
    o->trace_len = sizeof(trace) - 1;
}

static void valid_frames(void)
{
    static const char *const kv[] = {"format", "text"};
    const void *pl[3] = {"one", "two", "three"};
    size_t ll[3] = {3, 3, 5};
    uint8_t blob[64];
    struct bd_opts o;
    struct bd_buf f;

#define ONE(name, call) do { bd_buf_init(&f); if ((call) != 0) oom(); \
                             one(name, &f); bd_buf_destroy(&f); } while (0)
    for (size_t i = 0; i < sizeof(blob); i++)
        blob[i] = (uint8_t)(i * 7);
    full_opts(&o);
    ONE("hello", bd_msg_encode_hello(&f, 1, BD_PROTO_VERSION, "batchctl"));
    ONE("load", bd_msg_encode_item(&f, BD_MSG_LOAD, 2, "alpha", 5, "payload", 7,
                                   NULL));
    ONE("load-opts", bd_msg_encode_item(&f, BD_MSG_LOAD, 3, "users", 5, "p", 1,
                                        &o));
    ONE("send", bd_msg_encode_item(&f, BD_MSG_SEND, 4, "orders", 6, blob,
                                   sizeof(blob), NULL));
    ONE("load-many", bd_msg_encode_many(&f, BD_MSG_LOAD_MANY, 10, "bal1", 4,
                                        pl, ll, 3, NULL));
    ONE("send-many-opts", bd_msg_encode_many(&f, BD_MSG_SEND_MANY, 20, "dur1", 4,
                                             pl, ll, 2, &o));
    ONE("control-ping", bd_msg_encode_control(&f, 5, "ping", NULL, 0));
    ONE("control-stats-text", bd_msg_encode_control(&f, 6, "stats", kv, 1));
    ONE("control-health", bd_msg_encode_control(&f, 7, "health", NULL, 0));
    ONE("control-unknown", bd_msg_encode_control(&f, 8, "reload", NULL, 0));
    ONE("reply-ok-bin", bd_msg_encode_reply(&f, BD_MSG_LOAD, 2, BATCHD_OK, blob,
                                            16, 0));
    ONE("reply-accepted-nil", bd_msg_encode_reply(&f, BD_MSG_SEND, 4,
                                                  BATCHD_ACCEPTED, NULL, 0, 0));
    ONE("reply-bad-request", bd_msg_encode_reply(&f, BD_MSG_LOAD, 9,
                                                 BATCHD_BAD_REQUEST,
                                                 "key: must be a str", 18, 1));
    ONE("reply-error-frame", bd_msg_encode_reply(&f, BD_MSG_ERROR, 0,
                                                 BATCHD_FRAME_TOO_LARGE,
                                                 "frame length 0", 14, 1));
#undef ONE
}

/* Nested fixarrays of one element: depth containers around a nil. */
static void nested(const char *name, size_t depth)
{
    struct body x;

    body_init(&x);
    for (size_t i = 0; i < depth; i++)
        raw(&x, "\x91", 1);
    raw(&x, "\xc0", 1);
    one_body(name, &x);
}

static void bad_key(const char *name, const char *key, size_t len)
{
    struct body x;

    body_init(&x);
    item_head(&x, 4, BD_MSG_LOAD, 30, key, len);
    bin(&x, "p", 1);
    one_body(name, &x);
}

/* LOAD "k" with an opts map of one pair, written by fill. */
static void bad_opt(const char *name, const char *opt, size_t optlen,
                    void (*fill)(struct body *))
{
    struct body x;

    body_init(&x);
    item_head(&x, 5, BD_MSG_LOAD, 40, "k", 1);
    bin(&x, "p", 1);
    msgpack_pack_map(&x.pk, 1);
    str(&x, opt, optlen);
    fill(&x);
    one_body(name, &x);
}

static void fill_zero(struct body *x) { msgpack_pack_uint64(&x->pk, 0); }
static void fill_256(struct body *x) { msgpack_pack_uint64(&x->pk, 256); }
static void fill_empty(struct body *x) { bin(x, "", 0); }
static void fill_long(struct body *x)
{
    char s[129];

    memset(s, 'a', sizeof(s));
    str(x, s, sizeof(s));
}

static void hostile_frames(void)
{
    static const uint8_t len0[] = {0, 0, 0, 0};
    static const uint8_t len_huge[] = {0xff, 0xff, 0xff, 0xff, 0x91, 0xc0};
    static const uint8_t len_4097[] = {0, 0, 0x10, 0x01, 0x94, 0x01, 0x02};
    static const uint8_t arr32[] = {0, 0, 0, 5, 0xdd, 0xff, 0xff, 0xff, 0xff};
    static const uint8_t map32[] = {0, 0, 0, 5, 0xdf, 0xff, 0xff, 0xff, 0xff};
    static const uint8_t str32[] = {0, 0, 0, 6, 0xdb, 0xff, 0xff, 0xff, 0xff, 'a'};
    static const uint8_t ext32[] = {0, 0, 0, 9, 0xc9, 0xff, 0xff, 0xff, 0xff,
                                    1, 2, 3, 4};
    static const uint8_t c1[] = {0, 0, 0, 6, 0x94, 0x01, 0x02, 0xa1, 'k', 0xc1};
    static const uint8_t trunc_hdr[] = {0, 0, 0, 2, 0x94, 0xdc};
    char longkey[BD_KEY_MAX + 1];
    struct body x;
    struct bd_buf f;

    one_raw("len-0", len0, sizeof(len0));
    one_raw("len-huge", len_huge, sizeof(len_huge));
    one_raw("len-4097", len_4097, sizeof(len_4097));
    one_raw("array32-max-in-5-bytes", arr32, sizeof(arr32));
    one_raw("map32-max-in-5-bytes", map32, sizeof(map32));
    one_raw("str32-max", str32, sizeof(str32));
    one_raw("ext32-max", ext32, sizeof(ext32));
    one_raw("reserved-c1", c1, sizeof(c1));
    one_raw("truncated-header", trunc_hdr, sizeof(trunc_hdr));
    nested("nest-8", 8);
    nested("nest-9", 9);
    nested("nest-1000", 1000);

    /* A LOAD whose frame says 20 bytes and holds 10. */
    bd_buf_init(&f);
    if (bd_msg_encode_item(&f, BD_MSG_LOAD, 2, "alpha", 5, "payload-long", 12,
                           NULL) != 0)
        oom();
    one_raw("truncated-body", bd_buf_head(&f), 4 + 10);
    /* The same body with one trailing byte inside the frame. */
    body_init(&x);
    raw(&x, bd_buf_head(&f) + 4, f.len - 4);
    raw(&x, "\xc0", 1);
    one_body("trailing-byte", &x);
    bd_buf_destroy(&f);

    memset(longkey, 'k', sizeof(longkey));
    bad_key("key-empty", "", 0);
    bad_key("key-257", longkey, sizeof(longkey));
    bad_key("key-nul", "a\0b", 3);
    bad_key("key-utf8-bad", "\xc3\x28", 2);
    bad_key("key-utf8-overlong", "\xc0\xaf", 2);
    bad_key("key-utf8-surrogate", "\xed\xa0\x80", 3);
    bad_key("key-utf8-too-big", "\xf4\x90\x80\x80", 4);
    bad_key("key-utf8-truncated", "ab\xe2\x82", 4);
    body_init(&x);                      /* key as bin */
    msgpack_pack_array(&x.pk, 4);
    msgpack_pack_uint64(&x.pk, BD_MSG_LOAD);
    msgpack_pack_uint64(&x.pk, 31);
    bin(&x, "key", 3);
    bin(&x, "p", 1);
    one_body("key-bin", &x);

    bad_opt("opt-unknown", "color", 5, fill_zero);
    bad_opt("opt-deadline-0", "deadline_ms", 11, fill_zero);
    bad_opt("opt-priority-256", "priority", 8, fill_256);
    bad_opt("opt-dedup-empty", "dedup_id", 8, fill_empty);
    bad_opt("opt-trace-129", "trace", 5, fill_long);
    bad_opt("opt-name-nul", "deadline_ms\0x", 13, fill_256);

    body_init(&x);                      /* opts not a map */
    item_head(&x, 5, BD_MSG_SEND, 41, "k", 1);
    bin(&x, "p", 1);
    msgpack_pack_array(&x.pk, 0);
    one_body("opts-array", &x);

    body_init(&x);                      /* *_MANY with no items */
    item_head(&x, 4, BD_MSG_LOAD_MANY, 50, "k", 1);
    msgpack_pack_array(&x.pk, 0);
    one_body("many-empty", &x);
    body_init(&x);                      /* an item that is not raw */
    item_head(&x, 4, BD_MSG_SEND_MANY, 51, "k", 1);
    msgpack_pack_array(&x.pk, 2);
    bin(&x, "a", 1);
    msgpack_pack_int(&x.pk, -1);
    one_body("many-int-item", &x);
    body_init(&x);                      /* req_id + items overflows */
    item_head(&x, 4, BD_MSG_LOAD_MANY, UINT64_MAX, "k", 1);
    msgpack_pack_array(&x.pk, 2);
    bin(&x, "a", 1);
    bin(&x, "b", 1);
    one_body("many-req-id-overflow", &x);

    body_init(&x);                      /* HELLO of version 2 */
    msgpack_pack_array(&x.pk, 4);
    msgpack_pack_uint64(&x.pk, BD_MSG_HELLO);
    msgpack_pack_uint64(&x.pk, 1);
    msgpack_pack_uint64(&x.pk, 2);
    cstr(&x, "future");
    one_body("hello-version-2", &x);
    body_init(&x);                      /* unknown type 7 */
    msgpack_pack_array(&x.pk, 2);
    msgpack_pack_uint64(&x.pk, 7);
    msgpack_pack_uint64(&x.pk, 1);
    one_body("type-unknown", &x);
    body_init(&x);                      /* type 300 */
    msgpack_pack_array(&x.pk, 4);
    msgpack_pack_uint64(&x.pk, 300);
    msgpack_pack_uint64(&x.pk, 1);
    cstr(&x, "k");
    bin(&x, "p", 1);
    one_body("type-300", &x);
    body_init(&x);                      /* negative req_id */
    msgpack_pack_array(&x.pk, 4);
    msgpack_pack_uint64(&x.pk, BD_MSG_LOAD);
    msgpack_pack_int64(&x.pk, -5);
    cstr(&x, "k");
    bin(&x, "p", 1);
    one_body("req-id-negative", &x);
    body_init(&x);                      /* a map, not an array */
    msgpack_pack_map(&x.pk, 1);
    cstr(&x, "type");
    msgpack_pack_uint64(&x.pk, 1);
    one_body("not-an-array", &x);
    body_init(&x);                      /* reply with status 200 */
    msgpack_pack_array(&x.pk, 4);
    msgpack_pack_uint64(&x.pk, BD_MSG_LOAD);
    msgpack_pack_uint64(&x.pk, 1);
    msgpack_pack_uint64(&x.pk, 200);
    msgpack_pack_nil(&x.pk);
    one_body("reply-status-200", &x);
    body_init(&x);                      /* fixext and float scalars */
    msgpack_pack_array(&x.pk, 5);
    msgpack_pack_ext(&x.pk, 4, 1);
    msgpack_pack_ext_body(&x.pk, "abcd", 4);
    msgpack_pack_double(&x.pk, 1.5);
    msgpack_pack_float(&x.pk, 2.5f);
    msgpack_pack_true(&x.pk);
    msgpack_pack_ext(&x.pk, 300, 7);
    {
        char e[300];

        memset(e, 'e', sizeof(e));
        msgpack_pack_ext_body(&x.pk, e, sizeof(e));
    }
    one_body("scalars-ext", &x);
}

/* ---- fuzz_conn streams -------------------------------------------------- */

#define C_HELLO 0x01u          /* the harness sends HELLO first */
#define C_SMALLBUF 0x02u       /* small socket buffers */
#define C_CHUNKS(n) ((unsigned)(n) << 2)
#define C_WAIT 0x20u           /* 3 ms pass before the half-close */

/* A stream being built: the harness flags, chunk sizes, then frames. */
struct stream {
    struct bd_buf b;
};

static void st_begin(struct stream *s, unsigned flags, const uint8_t *chunks,
                     size_t nchunks)
{
    uint8_t f = (uint8_t)(flags | C_CHUNKS(nchunks));

    bd_buf_init(&s->b);
    if (bd_buf_append(&s->b, &f, 1) != 0 ||
        (nchunks && bd_buf_append(&s->b, chunks, nchunks) != 0))
        oom();
}

static void st_end(struct stream *s, const char *name)
{
    emit("conn", name, bd_buf_head(&s->b), s->b.len);
    bd_buf_destroy(&s->b);
}

static void st_check(int rc)
{
    if (rc != 0)
        oom();
}

static void st_load(struct stream *s, int type, uint64_t id, const char *key,
                    const char *payload)
{
    st_check(bd_msg_encode_item(&s->b, type, id, key, strlen(key), payload,
                                strlen(payload), NULL));
}

static void st_ctl(struct stream *s, uint64_t id, const char *cmd)
{
    st_check(bd_msg_encode_control(&s->b, id, cmd, NULL, 0));
}

static void st_raw(struct stream *s, const void *p, size_t n)
{
    st_check(bd_buf_append(&s->b, p, n));
}

static void st_body(struct stream *s, struct body *x)
{
    frame_of(&s->b, bd_buf_head(&x->b), x->b.len);
    bd_buf_destroy(&x->b);
}

static void conn_streams(void)
{
    static const uint8_t chunks3[] = {1, 3, 5};
    static const uint8_t chunk1[] = {1};
    static const uint8_t chunks_big[] = {200, 7};
    static const char *const kv[] = {"format", "text"};
    const void *pl[8] = {"a", "bb", "ccc", "dddd", "e", "f", "g", "h"};
    size_t ll[8] = {1, 2, 3, 4, 1, 1, 1, 1};
    char big[40];
    struct stream s;
    struct body x;
    struct bd_opts o;

    /* Every route and message type after the harness's HELLO. */
    st_begin(&s, C_HELLO, NULL, 0);
    st_load(&s, BD_MSG_LOAD, 1, "alpha", "one");
    st_load(&s, BD_MSG_SEND, 2, "beta", "two");
    st_check(bd_msg_encode_many(&s.b, BD_MSG_LOAD_MANY, 10, "bal1", 4, pl, ll, 5,
                                NULL));
    st_check(bd_msg_encode_many(&s.b, BD_MSG_SEND_MANY, 20, "dur1", 4, pl, ll, 3,
                                NULL));
    st_load(&s, BD_MSG_LOAD, 30, "size1", "s1");
    st_load(&s, BD_MSG_LOAD, 31, "size1", "s2");
    st_load(&s, BD_MSG_LOAD, 32, "q1", "q1");
    st_load(&s, BD_MSG_LOAD, 33, "q1", "q2");
    st_load(&s, BD_MSG_LOAD, 34, "q1", "q3");
    st_load(&s, BD_MSG_LOAD, 35, "zzz", "no route");
    st_ctl(&s, 40, "ping");
    st_ctl(&s, 41, "stats");
    st_check(bd_msg_encode_control(&s.b, 42, "stats", kv, 1));
    st_ctl(&s, 43, "health");
    st_end(&s, "all-routes");

    /* The same kinds of request in odd chunk sizes. */
    st_begin(&s, C_HELLO, chunks3, sizeof(chunks3));
    st_load(&s, BD_MSG_LOAD, 1, "alpha", "one");
    st_check(bd_msg_encode_many(&s.b, BD_MSG_SEND_MANY, 2, "bal2", 4, pl, ll, 8,
                                NULL));
    st_ctl(&s, 3, "ping");
    st_end(&s, "chunked");

    st_begin(&s, C_HELLO, chunk1, sizeof(chunk1));
    full_opts(&o);
    st_check(bd_msg_encode_item(&s.b, BD_MSG_LOAD, 1, "dur2", 4, "x", 1, &o));
    st_end(&s, "byte-by-byte-opts");

    /* No HELLO: requests are refused until the client's own HELLO. */
    st_begin(&s, 0, NULL, 0);
    st_load(&s, BD_MSG_LOAD, 1, "alpha", "early");
    st_check(bd_msg_encode_hello(&s.b, 2, BD_PROTO_VERSION, "client"));
    st_check(bd_msg_encode_hello(&s.b, 3, BD_PROTO_VERSION, "again"));
    st_load(&s, BD_MSG_SEND, 4, "alpha", "late");
    st_end(&s, "own-hello-twice");

    /* Before HELLO the limit is 4 KiB; after it, max_frame (64K here). */
    st_begin(&s, 0, NULL, 0);
    st_raw(&s, "\x00\x00\x10\x01\x94\x01", 6);
    st_end(&s, "prehello-4097");
    st_begin(&s, C_HELLO, NULL, 0);
    st_raw(&s, "\x00\x01\x00\x01\x94\x01", 6);
    st_end(&s, "over-max-frame");
    st_begin(&s, C_HELLO, NULL, 0);
    st_load(&s, BD_MSG_LOAD, 1, "alpha", "before");
    st_raw(&s, "\x00\x00\x00\x00", 4);
    st_load(&s, BD_MSG_LOAD, 2, "alpha", "after");
    st_end(&s, "len-0-midstream");
    st_begin(&s, C_HELLO, NULL, 0);
    st_raw(&s, "\xff\xff\xff\xff", 4);
    st_end(&s, "len-huge");
    /* Broken framing closes a connection whose LOAD is still queued on
     * a duration key: the close cancels it (found by fuzz_conn: a
     * use-after-free in bd_batch_cancel_conn's list walk). */
    st_begin(&s, C_HELLO, NULL, 0);
    st_load(&s, BD_MSG_LOAD, 2, "dur1", "queued");
    st_raw(&s, "\x00\x00\x00\x00", 4);
    st_end(&s, "close-with-queued-load");

    /* Framed but bad: answered, the connection stays. */
    st_begin(&s, C_HELLO, NULL, 0);
    st_raw(&s, "\x00\x00\x00\x05\xdd\xff\xff\xff\xff", 9);
    body_init(&x);
    for (int i = 0; i < 9; i++)
        raw(&x, "\x91", 1);
    raw(&x, "\xc0", 1);
    st_body(&s, &x);
    st_raw(&s, "\x00\x00\x00\x06\x94\x01\x02\xa1k\xc1", 10);
    st_load(&s, BD_MSG_LOAD, 3, "alpha", "still here");
    st_end(&s, "walk-refusals");

    /* Seventeen bad requests in a row close the connection. */
    st_begin(&s, C_HELLO, NULL, 0);
    for (int i = 0; i < 17; i++) {
        body_init(&x);
        item_head(&x, 4, BD_MSG_LOAD, (uint64_t)i, "", 0);
        bin(&x, "p", 1);
        st_body(&s, &x);
    }
    st_load(&s, BD_MSG_LOAD, 99, "alpha", "too late");
    st_end(&s, "bad-in-row");

    st_begin(&s, C_HELLO, NULL, 0);
    st_ctl(&s, 1, "pause");
    st_load(&s, BD_MSG_LOAD, 2, "alpha", "held");
    st_load(&s, BD_MSG_LOAD, 3, "size2", "held");
    st_ctl(&s, 4, "resume");
    st_load(&s, BD_MSG_LOAD, 5, "alpha", "free");
    st_end(&s, "pause-resume");

    /* Paused with a SEND on a duration key whose delay runs out: the
     * key cannot dispatch (found by fuzz_conn: its expired delay timer
     * was re-armed at once, a busy loop until resume). */
    st_begin(&s, C_HELLO | C_WAIT, NULL, 0);
    st_ctl(&s, 1, "pause");
    st_load(&s, BD_MSG_SEND, 2, "dur1", "x");
    st_end(&s, "pause-expired-delay");

    st_begin(&s, C_HELLO | C_WAIT, NULL, 0);
    st_load(&s, BD_MSG_LOAD, 1, "bal1", "a");
    st_load(&s, BD_MSG_LOAD, 2, "dur1", "b");
    st_load(&s, BD_MSG_SEND, 3, "dur2", "c");
    st_end(&s, "timers-fire");

    st_begin(&s, C_HELLO, NULL, 0);
    st_load(&s, BD_MSG_LOAD, 1, "dur3", "queued");
    st_ctl(&s, 2, "drain");
    st_load(&s, BD_MSG_LOAD, 3, "alpha", "refused");
    st_end(&s, "drain");

    /* Over the global queue bound (64 items) in one pass. */
    st_begin(&s, C_HELLO | C_SMALLBUF, NULL, 0);
    {
        const void *many[70];
        size_t lens[70];

        for (int i = 0; i < 70; i++) {
            many[i] = "item";
            lens[i] = 4;
        }
        st_check(bd_msg_encode_many(&s.b, BD_MSG_SEND_MANY, 1, "size3", 5,
                                    many, lens, 70, NULL));
    }
    st_end(&s, "overload");

    /* Replies pile up past conn_out_soft with small socket buffers. */
    st_begin(&s, C_HELLO | C_SMALLBUF, chunks_big, sizeof(chunks_big));
    for (int i = 0; i < 12; i++)
        st_ctl(&s, (uint64_t)i, "stats");
    st_end(&s, "backpressure");

    /* The client hangs up in the middle of a frame. */
    st_begin(&s, C_HELLO, NULL, 0);
    st_load(&s, BD_MSG_LOAD, 1, "alpha", "whole");
    memset(big, 'z', sizeof(big));
    big[sizeof(big) - 1] = '\0';
    st_load(&s, BD_MSG_LOAD, 2, "alpha", big);
    s.b.len -= 20;
    st_end(&s, "eof-mid-frame");

    /* A request deadline shorter than the route's delay. */
    st_begin(&s, C_HELLO | C_WAIT, NULL, 0);
    memset(&o, 0, sizeof(o));
    o.has_deadline = 1;
    o.deadline_ms = 1;
    st_check(bd_msg_encode_item(&s.b, BD_MSG_LOAD, 1, "dur4", 4, "x", 1, &o));
    st_check(bd_msg_encode_item(&s.b, BD_MSG_SEND, 2, "dur4", 4, "y", 1, &o));
    st_end(&s, "deadline");
}

int main(int argc, char **argv)
{
    char path[512];

    if (argc != 2) {
        fprintf(stderr, "usage: make_corpus DIR\n");
        return 2;
    }
    outdir = argv[1];
    mkdir_p(outdir);
    snprintf(path, sizeof(path), "%s/frame", outdir);
    mkdir_p(path);
    snprintf(path, sizeof(path), "%s/msg", outdir);
    mkdir_p(path);
    snprintf(path, sizeof(path), "%s/conn", outdir);
    mkdir_p(path);
    valid_frames();
    hostile_frames();
    conn_streams();
    printf("make_corpus: wrote %u files under %s\n", nfiles, outdir);
    return 0;
}
