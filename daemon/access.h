/*
 * access.h - who may connect and who may run admin commands, decided on
 * the peer credentials the kernel reports for a Unix socket
 * (SO_PEERCRED), so a client cannot lie about them.
 */
#ifndef BD_ACCESS_H
#define BD_ACCESS_H

#include <stddef.h>
#include <sys/types.h>

struct bd_config;
struct bd_access;

/* Resolve the allow/admin lists of cfg (names looked up now). Returns a
 * new table (free with bd_access_free) or NULL with err. */
struct bd_access *bd_access_new(const struct bd_config *cfg, char *err,
                                size_t errlen);
void bd_access_free(struct bd_access *a);

/* May this peer connect? With no allow_uids/allow_gids, everyone who
 * can open the socket (its mode and group decide) may. */
int bd_access_allowed(const struct bd_access *a, uid_t uid, gid_t gid);

/* May this peer pause, resume, drain or reload? root and the daemon's
 * own user always may; admin_uids/admin_gids add more. */
int bd_access_admin(const struct bd_access *a, uid_t uid, gid_t gid);

#endif
