/*
 * control.h - CONTROL requests (batchctl): ping, stats, health, pause,
 * resume, drain, reload. Replies carry a text body.
 */
#ifndef BD_CONTROL_H
#define BD_CONTROL_H

struct bd_conn;
struct bd_msg;

/* Answer one CONTROL request. Returns the status it was answered with. */
int bd_control_handle(struct bd_conn *c, const struct bd_msg *m);

#endif
