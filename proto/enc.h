/*
 * enc.h - build one msgpack frame into a bd_buf with msgpack-c's packer.
 * Shared by the message encoders (msg.c) and the sink runner's wire
 * (daemon/runner.c).
 *
 * After the first failing call every later BD_ENC step is skipped, and
 * bd_enc_end removes the whole partial frame, so a caller checks once.
 */
#ifndef BD_ENC_H
#define BD_ENC_H

#include <stddef.h>

#include <msgpack.h>

#include "buf.h"

struct bd_enc {
    msgpack_packer pk;        /* writes into out */
    struct bd_buf *out;       /* the frame goes at its end */
    size_t mark;              /* where the frame's length prefix is */
    int rc;                   /* 0, or -1 after a failed step */
};

/* Run one packer call unless an earlier one failed. */
#define BD_ENC(e, call) do { if ((e)->rc == 0) (e)->rc = (call); } while (0)

/* Start a frame at the end of out (reserves the length prefix). */
void bd_enc_begin(struct bd_enc *e, struct bd_buf *out);

/* Finish the frame: 0, or -1 with the partial frame removed. */
int bd_enc_end(struct bd_enc *e);

/* A msgpack str / bin of n bytes. */
void bd_enc_str(struct bd_enc *e, const char *s, size_t n);
void bd_enc_bin(struct bd_enc *e, const void *p, size_t n);

#endif
