/*
 * deadletters.h - the CONTROL command "deadletters" (io layer): list
 * the dead letters of durable routes, or re-send them (admins).
 */
#ifndef BD_DEADLETTERS_H
#define BD_DEADLETTERS_H

struct bd_conn;
struct bd_msg;

/* args {"action": "list" (default) | "resend"}. Answers m and returns
 * its status. */
int bd_deadletters_control(struct bd_conn *c, const struct bd_msg *m);

#endif
