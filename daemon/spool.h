/*
 * spool.h - the durable SEND spool on disk (spool layer, between sink
 * and core: see daemon/LAYERS.md; README "Durability").
 *
 * Files in spool_dir:
 *   seg-<seq, 16 hex>.spool   append-only segments of records
 *                             (spool_rec.h): ITEM records, and DONE
 *                             records that mark items final
 *   deadletters.spool         append-only DEAD records
 *   *.damaged                 segments recovery found damaged, moved aside
 *   lock                      flock()ed: one daemon per spool
 *
 * No file is ever rewritten in place: records are appended; a segment
 * is unlinked only when every item in it is final and every older
 * segment is gone (so a DONE record is never lost while the item it
 * marks may still be on disk); the one exception is an ftruncate of the
 * bytes a failed commit itself just appended (ENOSPC, EIO), which puts
 * the file back to its last synced length.
 *
 * Group commit: bd_spool_append only encodes into memory; bd_spool_commit
 * writes every pending record and runs one fdatasync per file touched.
 * Space for a whole segment is reserved when it is opened
 * (fallocate KEEP_SIZE), so a full disk shows at admission, not at
 * commit. Loop thread only.
 */
#ifndef BD_SPOOL_H
#define BD_SPOOL_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "spool_rec.h"

struct old_seg;

/* One segment file. */
struct bd_spool_seg {
    struct bd_spool_seg *next; /* the next newer segment */
    uint64_t seq;             /* its number (file name) */
    int fd;                   /* open for append while written to, else -1 */
    uint64_t synced;          /* file length known on disk */
    uint64_t bytes;           /* file length once pending is written */
    uint64_t live;            /* ITEM records in it not final yet */
    struct bd_buf pend;       /* records encoded, not yet written */
};

/* The spool's counters (stats: "spool"). */
struct bd_spool_stats {
    uint64_t spooled;         /* ITEM records appended */
    uint64_t spooled_bytes;   /* their bytes */
    uint64_t done;            /* DONE records appended */
    uint64_t syncs;           /* commits that ran fdatasync */
    uint64_t sync_ns;         /* total time in commits' write+fdatasync */
    uint64_t sync_max_ns;     /* the longest commit */
    uint64_t sync_hist[32];   /* commit latency: bucket i holds < 2^i us */
    uint64_t recovered;       /* items queued again at start-up */
    uint64_t damaged;         /* damaged regions found at start-up */
    uint64_t damaged_bytes;   /* their bytes (moved aside) */
    uint64_t missing_segments; /* gaps in the segment numbers at start-up */
    uint64_t dead_lettered;   /* DEAD records written */
    uint64_t full;            /* appends refused: spool_max_bytes or no space */
    uint64_t write_errors;    /* commits that failed (rolled back) */
};

/* A file written by the commit in progress, to be synced. */
struct bd_spool_sync {
    struct bd_spool_seg *seg; /* its segment; NULL = the dead-letter file */
    int fd;                   /* borrowed */
    uint64_t before;          /* its synced length before this commit */
};

struct bd_spool {
    char *dir;                /* owned */
    int dirfd;                /* the directory (fsync after unlink/rename) */
    int lockfd;               /* flock()ed lock file */
    uint64_t seg_size;        /* a segment is closed past this many bytes */
    uint64_t max_bytes;       /* cap on all segments' bytes */
    uint64_t disk_bytes;      /* all segments' bytes, pending included */
    uint64_t next_seq;        /* the next segment's number */
    uint64_t next_id;         /* the next item's spool id (never 0) */
    struct bd_spool_seg *oldest; /* owned list, oldest first */
    struct bd_spool_seg *active; /* the newest, appended to; may be NULL */
    int dead_fd;              /* deadletters.spool, O_APPEND; -1 until used */
    struct bd_buf dead_pend;  /* DEAD records not yet written */
    int dirty;                /* something is pending */
    struct bd_spool_sync *sync; /* owned: files of the commit in progress */
    size_t nsync, csync;
    int sync_errno;           /* errno of a failed fdatasync */
    uint64_t commit_t0;       /* when the commit in progress began */
    struct old_seg *old;      /* owned: the segments recovery read, until
                               * bd_spool_recover_finish (spool.c) */
    size_t nold;
    struct bd_spool_stats st;
};

/* Open (creating dir) and lock the spool. NULL with err set. */
struct bd_spool *bd_spool_open(const char *dir, uint64_t seg_size,
                               uint64_t max_bytes, char *err, size_t errlen);

/* Close and free (pending records are dropped: commit first). NULL ok. */
void bd_spool_close(struct bd_spool *sp);

/*
 * Recovery, before anything is appended: every ITEM record without a
 * DONE record, in id order (duplicated ids once), is handed to fn. An
 * undamaged segment is adopted as it is: fn gets it as seg (its live
 * count already holds the item) and the item keeps its record there. A
 * damaged one gives seg NULL: fn appends the record again
 * (bd_spool_append with its id), the caller commits, and
 * bd_spool_recover_finish(sp, 1) moves the damaged files aside (0 when
 * the commit failed: they stay for the next start). Never fails for
 * damage: it is counted (sp->st) and logged. Returns -1 only when the
 * directory cannot be read or memory runs out (err set).
 */
int bd_spool_recover(struct bd_spool *sp,
                     void (*fn)(const struct bd_rec *r,
                                struct bd_spool_seg *seg, void *arg),
                     void *arg, char *err, size_t errlen);
void bd_spool_recover_finish(struct bd_spool *sp, int move_aside);

enum bd_spool_rc {
    BD_SPOOL_OK = 0,
    BD_SPOOL_FULL = 1,        /* spool_max_bytes would be passed */
    BD_SPOOL_NOSPACE = 2,     /* no room for a new segment (ENOSPC, EIO...) */
    BD_SPOOL_TOO_LARGE = 3,   /* the record is larger than a record can be */
};

/*
 * Append an ITEM record (id 0: a new id). On BD_SPOOL_OK *seg is its
 * segment and *id its spool id; nothing is on disk until commit.
 */
int bd_spool_append(struct bd_spool *sp, uint64_t id, const char *key,
                    size_t key_len, const void *payload, size_t len,
                    struct bd_spool_seg **seg, uint64_t *out_id);

/* The item id in seg is final: a DONE record (never refused). */
void bd_spool_done(struct bd_spool *sp, struct bd_spool_seg *seg, uint64_t id);

/* A dead letter (written with the next commit, before the DONE records). */
void bd_spool_dead(struct bd_spool *sp, const struct bd_rec *r);

/*
 * Write everything pending and fdatasync each file touched; then unlink
 * the segments that are all final. Returns 0, or -1 when a write or a
 * sync failed: the files were cut back to their synced length and the
 * records of this commit are lost (the caller answers their items).
 */
int bd_spool_commit(struct bd_spool *sp);

/*
 * bd_spool_commit in three steps, so that the fdatasync can run on
 * another thread while the loop goes on (durable.c):
 * _write (loop thread): write everything pending; returns 0 when there
 *   was nothing, 1 when files wait for their sync, -1 when a write failed
 *   (the files are cut back, the commit is over: its records are lost).
 * _sync (any one thread, while the loop neither commits nor closes the
 *   spool): fdatasync each file written; 0 or -1.
 * _finish (loop thread) with _sync's result: on -1 the files are cut
 *   back; then finished segments are removed. Records appended between
 *   _write and _finish wait for the next commit.
 */
int bd_spool_commit_write(struct bd_spool *sp);
int bd_spool_commit_sync(struct bd_spool *sp);
void bd_spool_commit_finish(struct bd_spool *sp, int rc);

/* Read the dead-letter file: fn per DEAD record. Returns records seen. */
long bd_spool_dead_read(struct bd_spool *sp,
                        void (*fn)(const struct bd_rec *r, void *arg),
                        void *arg);

/* The dead letters were re-sent (and committed): remove the file. */
void bd_spool_dead_clear(struct bd_spool *sp);

#endif
