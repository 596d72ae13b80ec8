/*
 * request.h - frames from a connection to checked requests: framing
 * limits, the bounded walk, decoding, HELLO, LOAD/SEND(_MANY) into
 * batch.c, CONTROL into control.c, and BAD_REQUEST replies.
 */
#ifndef BD_REQUEST_H
#define BD_REQUEST_H

#include <stddef.h>
#include <stdint.h>

struct bd_conn;

/* Handle every complete frame in data[0..len). Returns the bytes used;
 * the rest is an incomplete frame to be fed again with more bytes. On
 * broken framing the conn is marked to close and everything is used. */
size_t bd_request_process(struct bd_conn *c, const uint8_t *data, size_t len);

#endif
