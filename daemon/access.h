/*
 * access.h -- who may use profd: the kernel's credentials of every peer
 * (SO_PEERCRED, SO_PEERGROUPS) against the allow lists of the config.
 *
 * Control socket: root and profd's own user may do everything; users and
 * groups in allow-user/allow-group may too; allow-read-user and
 * allow-read-group may use the read-only commands (status, show, ps) and
 * never see argv.  Everyone else is refused with a reply that says what to
 * configure.  Agent socket: any local process that can open it may send
 * samples, but they are filed under the pid, uid and start time the kernel
 * reports for the connection, whatever its hello claims.
 */
#ifndef ACCESS_H
#define ACCESS_H

#include <sys/types.h>

#include <stddef.h>
#include <stdint.h>

/* What a control peer may do, in increasing order. */
enum access_level {
	ACCESS_NONE = 0,	/* nothing: every request is refused */
	ACCESS_READ = 1,	/* status, show, ps (argv hidden) */
	ACCESS_CONTROL = 2,	/* everything */
};

/* A peer as the kernel knows it. */
struct access_peer {
	pid_t		 pid;		/* 0: not visible from here */
	uid_t		 uid;
	gid_t		 gid;
	gid_t		*groups;	/* supplementary groups */
	size_t		 ngroups;
};

#define ACCESS_MAX_IDS	64		/* names in one allow list */

/* The allow lists, resolved to ids. */
struct access_config {
	uid_t		users[ACCESS_MAX_IDS];		size_t nusers;
	gid_t		groups[ACCESS_MAX_IDS];		size_t ngroups;
	uid_t		read_users[ACCESS_MAX_IDS];	size_t nread_users;
	gid_t		read_groups[ACCESS_MAX_IDS];	size_t nread_groups;
};

/* The config in effect: event loop thread only. */
extern struct access_config access_config;

/* Adds a user or group (name or number) to a list; -1 with err set. */
int	access_add_user(uid_t *list, size_t *n, const char *name, char *err,
	    size_t errlen);
int	access_add_group(gid_t *list, size_t *n, const char *name, char *err,
	    size_t errlen);

/* Reads the peer of a connected Unix socket; 0, or -1 with errno. */
int	access_peer_get(int fd, struct access_peer *);
void	access_peer_free(struct access_peer *);

/* What a control peer may do under access_config. */
enum access_level access_level(const struct access_peer *);
const char *access_level_name(enum access_level);

/* "uid 1000 (alice)" into buf. */
const char *access_peer_name(const struct access_peer *, char *, size_t);

/* The start time (CLOCK_REALTIME ns) and parent of a process, from /proc;
 * 0, or -1. */
int	access_proc_stat(pid_t, uint64_t *start_ns, uint32_t *ppid);

/* A pidfd of the process that connected a Unix socket (SO_PEERPIDFD; on a
 * kernel without it, pidfd_open of pid, which may be late by a pid's
 * reuse): -1 when neither works.  Close-on-exec. */
int	access_peer_pidfd(int fd, pid_t pid);
/* Whether the process of a pidfd still runs: 1, 0 (exited), -1 unknown. */
int	access_pidfd_alive(int pidfd);
/* A process's real and effective uids, from /proc/PID/status; 0, or -1. */
int	access_proc_uids(pid_t, uid_t *ruid, uid_t *euid);

#endif
