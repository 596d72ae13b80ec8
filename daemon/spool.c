/*
 * spool.c - segments, group commit, recovery (see spool.h).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "hist.h"
#include "log.h"
#include "spool.h"

#define DEAD_NAME "deadletters.spool"

static uint64_t mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void seg_name(char *buf, size_t n, uint64_t seq, const char *suffix)
{
    snprintf(buf, n, "seg-%016" PRIx64 ".spool%s", seq, suffix);
}

/* ---- open / close ---------------------------------------------------------- */

struct bd_spool *bd_spool_open(const char *dir, uint64_t seg_size,
                               uint64_t max_bytes, char *err, size_t errlen)
{
    struct bd_spool *sp = bd_calloc(1, sizeof(*sp));

    if (sp == NULL || (sp->dir = bd_strdup(dir)) == NULL) {
        snprintf(err, errlen, "spool: out of memory");
        bd_free(sp);
        return NULL;
    }
    sp->dirfd = sp->lockfd = sp->dead_fd = -1;
    sp->seg_size = seg_size;
    sp->max_bytes = max_bytes;
    sp->next_seq = 1;
    sp->next_id = 1;
    bd_buf_init(&sp->dead_pend);
    if (mkdir(dir, 0750) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "spool_dir %s: mkdir: %s", dir, strerror(errno));
        goto fail;
    }
    sp->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (sp->dirfd < 0) {
        snprintf(err, errlen, "spool_dir %s: %s", dir, strerror(errno));
        goto fail;
    }
    sp->lockfd = openat(sp->dirfd, "lock", O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (sp->lockfd < 0 || flock(sp->lockfd, LOCK_EX | LOCK_NB) != 0) {
        snprintf(err, errlen, "spool_dir %s: cannot lock (another batchd "
                 "uses it?): %s", dir, strerror(errno));
        goto fail;
    }
    return sp;
fail:
    bd_spool_close(sp);
    return NULL;
}

static void seg_free(struct bd_spool_seg *s)
{
    if (s->fd >= 0)
        close(s->fd);
    bd_buf_destroy(&s->pend);
    bd_free(s);
}

void bd_spool_close(struct bd_spool *sp)
{
    if (sp == NULL)
        return;
    while (sp->oldest != NULL) {
        struct bd_spool_seg *s = sp->oldest;

        sp->oldest = s->next;
        seg_free(s);
    }
    if (sp->dead_fd >= 0)
        close(sp->dead_fd);
    if (sp->lockfd >= 0)
        close(sp->lockfd);
    if (sp->dirfd >= 0)
        close(sp->dirfd);
    bd_buf_destroy(&sp->dead_pend);
    bd_free(sp->sync);
    bd_free(sp->old);
    bd_free(sp->dir);
    bd_free(sp);
}

/* Append s to the list (newest) and make it the active segment. The
 * active one may be NULL while older segments are listed (adopted at
 * recovery, or the active one was removed), so walk to the end then. */
static void seg_link(struct bd_spool *sp, struct bd_spool_seg *s)
{
    struct bd_spool_seg *t = sp->active;

    if (t == NULL)
        for (t = sp->oldest; t != NULL && t->next != NULL; t = t->next)
            ;
    if (t != NULL)
        t->next = s;
    else
        sp->oldest = s;
    sp->active = s;
}

/* ---- recovery ------------------------------------------------------------- */

/* One old segment file, mapped while recovery reads it. */
struct old_seg {
    uint64_t seq;
    uint8_t *map;             /* NULL for an empty file */
    size_t len;
    uint64_t damaged;         /* damaged regions in it */
    struct bd_spool_seg *seg; /* adopted as it is (undamaged), else NULL */
};

/* An ITEM record and the segment it came from. */
struct old_item {
    struct bd_rec r;          /* borrows the map */
    size_t segi;              /* index in recov.segs */
};

/* What recovery collects from every old segment. */
struct recov {
    struct old_seg *segs;     /* sorted by seq */
    size_t nsegs;
    size_t cur;               /* the segment being scanned */
    struct old_item *items;
    size_t nitems, citems;
    uint64_t *done;           /* ids of DONE records */
    size_t ndone, cdone;
    uint64_t max_id;
    int oom;                  /* memory ran out: everything is kept */
};

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

/* By id, then by segment: the oldest copy of an id comes first. */
static int cmp_item(const void *a, const void *b)
{
    const struct old_item *x = a, *y = b;
    int c = cmp_u64(&x->r.id, &y->r.id);

    return c ? c : x->segi < y->segi ? -1 : x->segi > y->segi;
}

static int cmp_seg(const void *a, const void *b)
{
    return cmp_u64(&((const struct old_seg *)a)->seq,
                   &((const struct old_seg *)b)->seq);
}

/* Grow *arr (elements of size sz) to hold one more. */
static int grow(void **arr, size_t *cap, size_t n, size_t sz)
{
    void *p;
    size_t nc;

    if (n < *cap)
        return 0;
    nc = *cap ? *cap * 2 : 64;
    p = bd_realloc(*arr, nc * sz);
    if (p == NULL)
        return -1;
    *arr = p;
    *cap = nc;
    return 0;
}

static int collect(const struct bd_rec *r, size_t off, void *arg)
{
    struct recov *rv = arg;

    (void)off;
    if (r->id > rv->max_id)
        rv->max_id = r->id;
    if (r->type == BD_REC_ITEM) {
        if (grow((void **)&rv->items, &rv->citems, rv->nitems, sizeof(*rv->items)))
            return rv->oom = 1;
        rv->items[rv->nitems++] = (struct old_item){*r, rv->cur};
    } else if (r->type == BD_REC_DONE) {
        if (grow((void **)&rv->done, &rv->cdone, rv->ndone, sizeof(*rv->done)))
            return rv->oom = 1;
        rv->done[rv->ndone++] = r->id;
    }
    return 0;
}

/* The segment files of the directory, sorted. */
static int list_segs(struct bd_spool *sp, struct recov *rv, char *err,
                     size_t errlen)
{
    int fd = dup(sp->dirfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    struct dirent *e;
    size_t cap = 0;

    if (d == NULL) {
        if (fd >= 0)
            close(fd);
        snprintf(err, errlen, "spool_dir %s: %s", sp->dir, strerror(errno));
        return -1;
    }
    rewinddir(d);
    while ((e = readdir(d)) != NULL) {
        uint64_t seq;
        int end = 0;

        if (sscanf(e->d_name, "seg-%16" SCNx64 ".spool%n", &seq, &end) != 1 ||
            end == 0 || e->d_name[end] != '\0')
            continue;
        if (grow((void **)&rv->segs, &cap, rv->nsegs, sizeof(*rv->segs)) != 0) {
            closedir(d);
            snprintf(err, errlen, "spool: out of memory");
            return -1;
        }
        memset(&rv->segs[rv->nsegs], 0, sizeof(*rv->segs));
        rv->segs[rv->nsegs++].seq = seq;
    }
    closedir(d);
    if (rv->nsegs > 1)
        qsort(rv->segs, rv->nsegs, sizeof(*rv->segs), cmp_seg);
    return 0;
}

/* Map and scan one old segment. An unreadable file counts as damaged. */
static void read_seg(struct bd_spool *sp, struct recov *rv, struct old_seg *s)
{
    char name[64];
    struct stat st;
    struct bd_rec_scan sc;
    int fd;

    seg_name(name, sizeof(name), s->seq, "");
    fd = openat(sp->dirfd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0) {
        bd_log_error("spool: %s: %s; moved aside", name, strerror(errno));
        s->damaged = 1;
        sp->st.damaged++;
        if (fd >= 0)
            close(fd);
        return;
    }
    s->len = (size_t)st.st_size;
    if (s->len > 0) {
        s->map = mmap(NULL, s->len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (s->map == MAP_FAILED) {
            bd_log_error("spool: %s: mmap: %s; moved aside", name, strerror(errno));
            s->map = NULL;
            s->damaged = 1;
            sp->st.damaged++;
        }
    }
    close(fd);
    if (s->map == NULL)
        return;
    rv->cur = (size_t)(s - rv->segs);
    bd_rec_scan(s->map, s->len, collect, rv, &sc);
    if (sc.damaged) {
        s->damaged = sc.damaged;
        sp->st.damaged += sc.damaged;
        sp->st.damaged_bytes += sc.damaged_bytes;
        bd_log_error("spool: %s: %" PRIu64 " damaged region(s), %" PRIu64
                     " bytes from offset %zu: at least %" PRIu64
                     " record(s) lost, %" PRIu64 " recovered; moving it aside "
                     "to %s.damaged", name, sc.damaged, sc.damaged_bytes,
                     sc.first_bad, sc.damaged, sc.records, name);
    }
}

static int is_done(const struct recov *rv, uint64_t id)
{
    return rv->ndone > 0 &&
           bsearch(&id, rv->done, rv->ndone, sizeof(*rv->done), cmp_u64) != NULL;
}

static void note_gaps(struct bd_spool *sp, const struct recov *rv)
{
    for (size_t i = 1; i < rv->nsegs; i++) {
        uint64_t gap = rv->segs[i].seq - rv->segs[i - 1].seq - 1;

        if (gap == 0)
            continue;
        sp->st.missing_segments += gap;
        bd_log_error("spool: %" PRIu64 " segment(s) missing between %016"
                     PRIx64 " and %016" PRIx64 ": their items are lost",
                     gap, rv->segs[i - 1].seq, rv->segs[i].seq);
    }
}

/*
 * An undamaged old segment stays as it is (nothing to write, so a full
 * disk cannot stop a restart): it joins the segment list, oldest first,
 * and is removed like any other once its items are final. A damaged one
 * is not adopted: its valid records are appended again, and the file is
 * moved aside by bd_spool_recover_finish.
 */
static int adopt(struct bd_spool *sp, struct old_seg *o)
{
    struct bd_spool_seg *s = bd_calloc(1, sizeof(*s));

    if (s == NULL)
        return -1;
    s->seq = o->seq;
    s->fd = -1;
    s->synced = s->bytes = o->len;
    bd_buf_init(&s->pend);
    seg_link(sp, s);         /* active for now; recovery clears it */
    sp->disk_bytes += o->len;
    o->seg = s;
    return 0;
}

int bd_spool_recover(struct bd_spool *sp,
                     void (*fn)(const struct bd_rec *r,
                                struct bd_spool_seg *seg, void *arg),
                     void *arg, char *err, size_t errlen)
{
    struct recov rv = {0};
    uint64_t live = 0;

    if (list_segs(sp, &rv, err, errlen) != 0)
        return -1;
    for (size_t i = 0; i < rv.nsegs && !rv.oom; i++) {
        read_seg(sp, &rv, &rv.segs[i]);
        if (!rv.segs[i].damaged && adopt(sp, &rv.segs[i]) != 0)
            rv.oom = 1;
    }
    if (rv.oom) {
        /* Nothing is removed: the next start tries again. */
        snprintf(err, errlen, "spool: out of memory reading %zu segments",
                 rv.nsegs);
        goto out;
    }
    /* Appends go to a new segment, never to an adopted one. */
    sp->active = NULL;
    note_gaps(sp, &rv);
    if (rv.nitems > 1)
        qsort(rv.items, rv.nitems, sizeof(*rv.items), cmp_item);
    if (rv.ndone > 1)
        qsort(rv.done, rv.ndone, sizeof(*rv.done), cmp_u64);
    if (rv.nsegs)
        sp->next_seq = rv.segs[rv.nsegs - 1].seq + 1;
    sp->next_id = rv.max_id + 1;
    for (size_t i = 0; i < rv.nitems; i++) {
        const struct old_item *it = &rv.items[i];
        struct bd_spool_seg *seg = rv.segs[it->segi].seg;

        if ((i > 0 && it->r.id == rv.items[i - 1].r.id) || is_done(&rv, it->r.id))
            continue;
        if (seg != NULL)
            seg->live++;
        fn(&it->r, seg, arg);
        live++;
    }
    sp->st.recovered += live;
    if (rv.nsegs)
        bd_log_info("spool %s: %zu segment(s), %zu item record(s), %zu done, "
                    "%" PRIu64 " queued again, %" PRIu64 " damaged region(s)",
                    sp->dir, rv.nsegs, rv.nitems, rv.ndone, live, sp->st.damaged);
out:
    for (size_t i = 0; i < rv.nsegs; i++)
        if (rv.segs[i].map != NULL)
            munmap(rv.segs[i].map, rv.segs[i].len);
    bd_free(rv.items);
    bd_free(rv.done);
    if (rv.oom) {
        bd_free(rv.segs);
        return -1;
    }
    sp->old = rv.segs;
    sp->nold = rv.nsegs;
    return 0;
}

static void drop_finished(struct bd_spool *sp);

void bd_spool_recover_finish(struct bd_spool *sp, int move_aside)
{
    char name[64], aside[80];
    int moved = 0;

    for (size_t i = 0; i < sp->nold && move_aside; i++) {
        const struct old_seg *s = &sp->old[i];

        if (!s->damaged)
            continue;
        seg_name(name, sizeof(name), s->seq, "");
        seg_name(aside, sizeof(aside), s->seq, ".damaged");
        if (renameat(sp->dirfd, name, sp->dirfd, aside) != 0)
            bd_log_error("spool: rename %s: %s", name, strerror(errno));
        moved = 1;
    }
    if (moved)
        fsync(sp->dirfd);
    bd_free(sp->old);
    sp->old = NULL;
    sp->nold = 0;
    drop_finished(sp); /* adopted segments with nothing left in them */
}

/* ---- appending -------------------------------------------------------------- */

/* A new, empty active segment with room reserved for at least need
 * bytes. NULL when the file cannot be made or the space reserved. */
static struct bd_spool_seg *seg_new(struct bd_spool *sp, uint64_t need)
{
    struct bd_spool_seg *s = bd_calloc(1, sizeof(*s));
    uint64_t reserve = need > sp->seg_size ? need : sp->seg_size;
    char name[64];
    int rc;

    if (s == NULL)
        return NULL;
    s->seq = sp->next_seq;
    seg_name(name, sizeof(name), s->seq, "");
    s->fd = openat(sp->dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_APPEND |
                   O_CLOEXEC, 0640);
    if (s->fd < 0) {
        bd_log_error("spool: create %s: %s", name, strerror(errno));
        bd_free(s);
        return NULL;
    }
    /* The whole segment's blocks now, so that ENOSPC shows here, at
     * admission, and never as a half-written record at commit. */
    rc = fallocate(s->fd, FALLOC_FL_KEEP_SIZE, 0, (off_t)reserve);
    if (rc != 0 && errno != EOPNOTSUPP && errno != ENOSYS) {
        bd_log_warn("spool: %s: cannot reserve %" PRIu64 " bytes: %s",
                    name, reserve, strerror(errno));
        close(s->fd);
        unlinkat(sp->dirfd, name, 0);
        bd_free(s);
        return NULL;
    }
    bd_buf_init(&s->pend);
    sp->next_seq++;
    seg_link(sp, s);
    return s;
}

/* Encode r at the end of s's pending bytes. */
static int seg_put(struct bd_spool *sp, struct bd_spool_seg *s,
                   const struct bd_rec *r, size_t size)
{
    if (bd_buf_reserve(&s->pend, size) != 0)
        return -1;
    bd_rec_encode(r, bd_buf_tail(&s->pend));
    s->pend.len += size;
    s->bytes += size;
    sp->disk_bytes += size;
    sp->dirty = 1;
    return 0;
}

int bd_spool_append(struct bd_spool *sp, uint64_t id, const char *key,
                    size_t key_len, const void *payload, size_t len,
                    struct bd_spool_seg **seg, uint64_t *out_id)
{
    struct bd_rec r = {
        .type = BD_REC_ITEM, .id = id ? id : sp->next_id, .key = key,
        .key_len = key_len, .payload = payload, .len = len,
    };
    size_t size = bd_rec_size(&r);
    struct bd_spool_seg *s = sp->active;

    if (size == 0)
        return BD_SPOOL_TOO_LARGE;
    if (sp->disk_bytes + size > sp->max_bytes) {
        sp->st.full++;
        return BD_SPOOL_FULL;
    }
    if (s == NULL || (s->bytes > 0 && s->bytes + size > sp->seg_size)) {
        s = seg_new(sp, size);
        if (s == NULL) {
            sp->st.full++;
            return BD_SPOOL_NOSPACE;
        }
    }
    if (seg_put(sp, s, &r, size) != 0) {
        sp->st.full++;
        return BD_SPOOL_NOSPACE;
    }
    if (id == 0)
        sp->next_id++;
    else if (id >= sp->next_id)
        sp->next_id = id + 1;
    s->live++;
    sp->st.spooled++;
    sp->st.spooled_bytes += size;
    *seg = s;
    *out_id = r.id;
    return BD_SPOOL_OK;
}

void bd_spool_done(struct bd_spool *sp, struct bd_spool_seg *seg, uint64_t id)
{
    struct bd_rec r = {.type = BD_REC_DONE, .id = id};
    struct bd_spool_seg *s = sp->active;

    seg->live--;
    /* Never refused: past the cap or the segment size a DONE still goes
     * in (tiny), or the spool could never drain. Without any segment
     * (no space for one) it is skipped: the item may come back once
     * after a crash, never lost. */
    if (s == NULL && (s = seg_new(sp, BD_REC_HDR)) == NULL)
        return;
    if (seg_put(sp, s, &r, BD_REC_HDR) == 0)
        sp->st.done++;
}

void bd_spool_dead(struct bd_spool *sp, const struct bd_rec *r)
{
    size_t size = bd_rec_size(r);

    if (size == 0 || bd_buf_reserve(&sp->dead_pend, size) != 0) {
        bd_log_error("spool: dead letter %" PRIu64 " not written (%s)", r->id,
                     size ? "out of memory" : "too large");
        return;
    }
    bd_rec_encode(r, bd_buf_tail(&sp->dead_pend));
    sp->dead_pend.len += size;
    sp->dirty = 1;
    sp->st.dead_lettered++;
}

/* ---- commit --------------------------------------------------------------- */

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);

        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            if (w == 0)
                errno = ENOSPC;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Put a file back to its synced length: the one in-place change, of
 * bytes this commit itself appended (a torn or unsynced append). */
static void cut_back(int fd, uint64_t synced, const char *what)
{
    if (ftruncate(fd, (off_t)synced) != 0)
        bd_log_error("spool: %s: ftruncate: %s", what, strerror(errno));
}

/* Note fd for the sync phase. */
static int sync_add(struct bd_spool *sp, struct bd_spool_seg *seg, int fd,
                    uint64_t before)
{
    if (sp->nsync == sp->csync) {
        size_t nc = sp->csync ? sp->csync * 2 : 8;
        struct bd_spool_sync *p = bd_realloc(sp->sync, nc * sizeof(*p));

        if (p == NULL)
            return -1;
        sp->sync = p;
        sp->csync = nc;
    }
    sp->sync[sp->nsync++] = (struct bd_spool_sync){seg, fd, before};
    return 0;
}

/* Write buf to fd (synced length before); on failure cut back. */
static int write_file(struct bd_spool *sp, struct bd_spool_seg *seg, int fd,
                      struct bd_buf *buf, uint64_t before, const char *what)
{
    int rc = 0;

    if (write_all(fd, bd_buf_head(buf), buf->len) != 0 ||
        sync_add(sp, seg, fd, before) != 0) {
        bd_log_error("spool: %s: write of %zu bytes: %s; cut back to %" PRIu64
                     " bytes", what, buf->len, strerror(errno), before);
        cut_back(fd, before, what);
        rc = -1;
    }
    buf->len = 0;
    buf->off = 0;
    return rc;
}

static int write_dead(struct bd_spool *sp)
{
    struct stat st;

    if (sp->dead_pend.len == 0)
        return 0;
    if (sp->dead_fd < 0)
        sp->dead_fd = openat(sp->dirfd, DEAD_NAME, O_WRONLY | O_CREAT |
                             O_APPEND | O_CLOEXEC, 0640);
    if (sp->dead_fd < 0 || fstat(sp->dead_fd, &st) != 0) {
        bd_log_error("spool: %s: %s", DEAD_NAME, strerror(errno));
        sp->dead_pend.len = 0;
        return -1;
    }
    return write_file(sp, NULL, sp->dead_fd, &sp->dead_pend,
                      (uint64_t)st.st_size, DEAD_NAME);
}

/* Unlink the oldest segments while every item in them is final. */
static void drop_finished(struct bd_spool *sp)
{
    int gone = 0;

    while (sp->oldest != NULL && sp->oldest->live == 0 &&
           sp->oldest->pend.len == 0) {
        struct bd_spool_seg *s = sp->oldest;
        char name[64];

        seg_name(name, sizeof(name), s->seq, "");
        if (unlinkat(sp->dirfd, name, 0) != 0)
            bd_log_error("spool: unlink %s: %s", name, strerror(errno));
        sp->oldest = s->next;
        if (sp->active == s)
            sp->active = NULL;
        sp->disk_bytes -= s->bytes;
        seg_free(s);
        gone = 1;
    }
    if (gone)
        fsync(sp->dirfd);
}

int bd_spool_commit_write(struct bd_spool *sp)
{
    int rc = 0;

    if (!sp->dirty)
        return 0;
    sp->commit_t0 = mono_ns();
    sp->nsync = 0;
    /* Dead letters first: an item's DONE must never be on disk while
     * its dead letter is not (both are synced before any is answered). */
    if (write_dead(sp) != 0)
        rc = -1;
    for (struct bd_spool_seg *s = sp->oldest; s; s = s->next) {
        char name[64];

        if (s->pend.len == 0)
            continue;
        seg_name(name, sizeof(name), s->seq, "");
        if (write_file(sp, s, s->fd, &s->pend, s->synced, name) != 0) {
            sp->disk_bytes -= s->bytes - s->synced;
            s->bytes = s->synced;
            rc = -1;
        }
    }
    sp->dirty = 0;
    if (rc != 0) {
        /* Nothing of this commit may count: cut back what was written. */
        bd_spool_commit_finish(sp, -1);
        return -1;
    }
    return 1;
}

int bd_spool_commit_sync(struct bd_spool *sp)
{
    int rc = 0;

    for (size_t i = 0; i < sp->nsync; i++) {
        if (fdatasync(sp->sync[i].fd) != 0) {
            sp->sync_errno = errno;
            rc = -1;
        }
    }
    return rc;
}

void bd_spool_commit_finish(struct bd_spool *sp, int rc)
{
    uint64_t dt = mono_ns() - sp->commit_t0;

    for (size_t i = 0; i < sp->nsync; i++) {
        struct bd_spool_sync *e = &sp->sync[i];
        struct bd_spool_seg *s = e->seg;
        char name[64];

        if (rc == 0) {
            if (s != NULL)
                s->synced = s->bytes - s->pend.len;
            continue;
        }
        if (s == NULL) {
            cut_back(e->fd, e->before, DEAD_NAME);
            continue;
        }
        seg_name(name, sizeof(name), s->seq, "");
        bd_log_error("spool: %s: fdatasync: %s; cut back to %" PRIu64 " bytes",
                     name, strerror(sp->sync_errno), e->before);
        cut_back(e->fd, e->before, name);
        sp->disk_bytes -= s->bytes - s->pend.len - e->before;
        s->bytes = e->before + s->pend.len;
        s->synced = e->before;
    }
    sp->nsync = 0;
    /* Segments no longer appended to need no descriptor. */
    for (struct bd_spool_seg *s = sp->oldest; s; s = s->next) {
        if (s != sp->active && s->fd >= 0 && s->pend.len == 0) {
            close(s->fd);
            s->fd = -1;
        }
    }
    sp->st.syncs++;
    sp->st.sync_ns += dt;
    if (dt > sp->st.sync_max_ns)
        sp->st.sync_max_ns = dt;
    sp->st.sync_hist[bd_hist_pow2_bucket(dt / 1000, 32)]++;
    if (rc != 0)
        sp->st.write_errors++;
    drop_finished(sp);
}

int bd_spool_commit(struct bd_spool *sp)
{
    int rc = bd_spool_commit_write(sp);

    if (rc <= 0)
        return rc;
    rc = bd_spool_commit_sync(sp);
    bd_spool_commit_finish(sp, rc);
    return rc;
}

/* ---- dead letters ------------------------------------------------------------ */

struct dead_read {
    void (*fn)(const struct bd_rec *r, void *arg);
    void *arg;
    long n;
};

static int dead_one(const struct bd_rec *r, size_t off, void *arg)
{
    struct dead_read *dr = arg;

    (void)off;
    if (r->type == BD_REC_DEAD) {
        dr->n++;
        dr->fn(r, dr->arg);
    }
    return 0;
}

long bd_spool_dead_read(struct bd_spool *sp,
                        void (*fn)(const struct bd_rec *r, void *arg),
                        void *arg)
{
    struct dead_read dr = {fn, arg, 0};
    struct bd_rec_scan sc;
    struct stat st;
    uint8_t *map;
    int fd = openat(sp->dirfd, DEAD_NAME, O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return 0;
    if (fstat(fd, &st) != 0 || st.st_size == 0) {
        close(fd);
        return 0;
    }
    map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED)
        return 0;
    bd_rec_scan(map, (size_t)st.st_size, dead_one, &dr, &sc);
    munmap(map, (size_t)st.st_size);
    return dr.n;
}

void bd_spool_dead_clear(struct bd_spool *sp)
{
    if (sp->dead_fd >= 0) {
        close(sp->dead_fd);
        sp->dead_fd = -1;
    }
    if (unlinkat(sp->dirfd, DEAD_NAME, 0) != 0 && errno != ENOENT)
        bd_log_error("spool: unlink %s: %s", DEAD_NAME, strerror(errno));
    fsync(sp->dirfd);
}
