/*
 * enc.c - frame encoder on msgpack-c's packer (see enc.h).
 */
#include "enc.h"
#include "frame.h"

static int buf_write_cb(void *data, const char *p, size_t n)
{
    return bd_buf_append(data, p, n);
}

void bd_enc_begin(struct bd_enc *e, struct bd_buf *out)
{
    e->out = out;
    e->rc = bd_frame_begin(out, &e->mark);
    msgpack_packer_init(&e->pk, out, buf_write_cb);
}

int bd_enc_end(struct bd_enc *e)
{
    if (e->rc != 0) {
        if (e->out->len >= e->mark)
            e->out->len = e->mark;
        return -1;
    }
    bd_frame_end(e->out, e->mark);
    return 0;
}

void bd_enc_str(struct bd_enc *e, const char *s, size_t n)
{
    BD_ENC(e, msgpack_pack_str(&e->pk, n));
    BD_ENC(e, msgpack_pack_str_body(&e->pk, s, n));
}

void bd_enc_bin(struct bd_enc *e, const void *p, size_t n)
{
    BD_ENC(e, msgpack_pack_bin(&e->pk, n));
    BD_ENC(e, msgpack_pack_bin_body(&e->pk, p, n));
}
