/*
 * access.c -- peer credentials and the allow lists (see access.h).
 */

#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "access.h"

/* Event loop thread only. */
struct access_config	access_config;

/* A number, or -1. */
static long long
access_number(const char *s)
{
	char		*end;
	long long	 v;

	if (*s < '0' || *s > '9')
		return (-1);
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < 0 || v > UINT_MAX - 1)
		return (-1);
	return (v);
}

/* Adds a user by name or number. */
int
access_add_user(uid_t *list, size_t *n, const char *name, char *err,
    size_t errlen)
{
	struct passwd	*pw;
	long long	 v;

	if (*n >= ACCESS_MAX_IDS) {
		snprintf(err, errlen, "more than %d users in one allow list",
		    ACCESS_MAX_IDS);
		return (-1);
	}
	if ((v = access_number(name)) == -1) {
		if ((pw = getpwnam(name)) == NULL) {
			snprintf(err, errlen, "no such user '%s'", name);
			return (-1);
		}
		v = pw->pw_uid;
	}
	list[(*n)++] = (uid_t)v;
	return (0);
}

/* Adds a group by name or number. */
int
access_add_group(gid_t *list, size_t *n, const char *name, char *err,
    size_t errlen)
{
	struct group	*gr;
	long long	 v;

	if (*n >= ACCESS_MAX_IDS) {
		snprintf(err, errlen, "more than %d groups in one allow list",
		    ACCESS_MAX_IDS);
		return (-1);
	}
	if ((v = access_number(name)) == -1) {
		if ((gr = getgrnam(name)) == NULL) {
			snprintf(err, errlen, "no such group '%s'", name);
			return (-1);
		}
		v = gr->gr_gid;
	}
	list[(*n)++] = (gid_t)v;
	return (0);
}

/* Reads the peer's supplementary groups (Linux 4.13+); 0 or -1. */
static int
access_peer_groups(int fd, struct access_peer *p)
{
	socklen_t	 len = 32 * sizeof (gid_t);
	gid_t		*g = NULL, *ng;

	for (;;) {
		if ((ng = realloc(g, len)) == NULL) {
			free(g);
			return (-1);
		}
		g = ng;
		if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, g, &len) == 0)
			break;
		if (errno != ERANGE || len > 65536 * sizeof (gid_t)) {
			free(g);
			return (-1);
		}
	}
	p->groups = g;
	p->ngroups = len / sizeof (gid_t);
	return (0);
}

/* Reads the kernel's credentials of a connected Unix socket's peer. */
int
access_peer_get(int fd, struct access_peer *p)
{
	struct ucred	cred;
	socklen_t	len = sizeof cred;

	memset(p, 0, sizeof *p);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0)
		return (-1);
	p->pid = cred.pid;
	p->uid = cred.uid;
	p->gid = cred.gid;
	/* Without SO_PEERGROUPS only the primary group counts. */
	(void)access_peer_groups(fd, p);
	return (0);
}

void
access_peer_free(struct access_peer *p)
{
	free(p->groups);
	p->groups = NULL;
	p->ngroups = 0;
}

/* Whether a peer is in a group (primary or supplementary). */
static int
access_in_group(const struct access_peer *p, gid_t gid)
{
	size_t	i;

	if (p->gid == gid)
		return (1);
	for (i = 0; i < p->ngroups; i++)
		if (p->groups[i] == gid)
			return (1);
	return (0);
}

/* What a control peer may do. */
enum access_level
access_level(const struct access_peer *p)
{
	const struct access_config	*c = &access_config;
	size_t				 i;

	if (p->uid == 0 || p->uid == geteuid())
		return (ACCESS_CONTROL);
	for (i = 0; i < c->nusers; i++)
		if (c->users[i] == p->uid)
			return (ACCESS_CONTROL);
	for (i = 0; i < c->ngroups; i++)
		if (access_in_group(p, c->groups[i]))
			return (ACCESS_CONTROL);
	for (i = 0; i < c->nread_users; i++)
		if (c->read_users[i] == p->uid)
			return (ACCESS_READ);
	for (i = 0; i < c->nread_groups; i++)
		if (access_in_group(p, c->read_groups[i]))
			return (ACCESS_READ);
	return (ACCESS_NONE);
}

const char *
access_level_name(enum access_level l)
{
	switch (l) {
	case ACCESS_CONTROL:
		return ("control");
	case ACCESS_READ:
		return ("read");
	default:
		return ("no");
	}
}

/* "uid 1000 (alice)". */
const char *
access_peer_name(const struct access_peer *p, char *buf, size_t len)
{
	struct passwd	*pw = getpwuid(p->uid);

	if (pw != NULL)
		snprintf(buf, len, "uid %u (%s)", (unsigned)p->uid,
		    pw->pw_name);
	else
		snprintf(buf, len, "uid %u", (unsigned)p->uid);
	return (buf);
}

/* Boot time (CLOCK_REALTIME s), read once: it only moves if the clock is
 * set, and instances must keep their key across reconnects. */
static int
access_btime(uint64_t *btime)
{
	static uint64_t	 cached;
	char		 line[256];
	FILE		*f;
	unsigned long long v;

	if (cached != 0) {
		*btime = cached;
		return (0);
	}
	if ((f = fopen("/proc/stat", "re")) != NULL) {
		while (fgets(line, sizeof line, f) != NULL) {
			if (sscanf(line, "btime %llu", &v) == 1) {
				cached = v;
				break;
			}
		}
		fclose(f);
	}
	/* Without /proc/stat (systemd's ProcSubset=pid): the same from the
	 * clocks, to the second. */
	if (cached == 0) {
		struct timespec	rt, bt;

		int64_t		ns;

		if (clock_gettime(CLOCK_REALTIME, &rt) != 0 ||
		    clock_gettime(CLOCK_BOOTTIME, &bt) != 0)
			return (-1);
		/* Rounded, so that every start of profd finds the same. */
		ns = ((int64_t)rt.tv_sec - (int64_t)bt.tv_sec) * 1000000000 +
		    (rt.tv_nsec - bt.tv_nsec);
		if (ns <= 0)
			return (-1);
		cached = (uint64_t)((ns + 500000000) / 1000000000);
	}
	*btime = cached;
	return (0);
}

/* A process's start time and parent from /proc/PID/stat (fields 22 and 4,
 * after the parenthesised name, which may hold anything). */
int
access_proc_stat(pid_t pid, uint64_t *start_ns, uint32_t *ppid)
{
	char		 path[64], buf[1024], *p;
	FILE		*f;
	size_t		 n;
	unsigned long long ticks, pp;
	uint64_t	 btime;
	long		 hz;
	int		 field;

	if (pid <= 0 || access_btime(&btime) != 0)
		return (-1);
	snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
	if ((f = fopen(path, "re")) == NULL)
		return (-1);
	n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	if ((p = strrchr(buf, ')')) == NULL)
		return (-1);
	/* After ')': field 3 (state), 4 (ppid)...; start time is 22. */
	p++;
	if (sscanf(p, " %*c %llu", &pp) != 1)
		return (-1);
	for (field = 2; field < 21; field++) {
		p = strchr(p + 1, ' ');
		if (p == NULL)
			return (-1);
	}
	if (sscanf(p, " %llu", &ticks) != 1)
		return (-1);
	if ((hz = sysconf(_SC_CLK_TCK)) <= 0)
		return (-1);
	*ppid = (uint32_t)pp;
	*start_ns = btime * 1000000000ull +
	    ticks / (unsigned long long)hz * 1000000000ull +
	    ticks % (unsigned long long)hz * (1000000000ull / (uint64_t)hz);
	return (0);
}

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD	77	/* Linux 6.5 */
#endif

/* A pidfd of a Unix socket's peer process. */
int
access_peer_pidfd(int fd, pid_t pid)
{
	socklen_t	len;
	int		pidfd = -1;

	len = sizeof pidfd;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) == 0 &&
	    len == sizeof pidfd && pidfd >= 0) {
		(void)fcntl(pidfd, F_SETFD, FD_CLOEXEC);
		return (pidfd);
	}
#ifdef SYS_pidfd_open
	if (pid > 0)
		return ((int)syscall(SYS_pidfd_open, pid, 0));
#endif
	return (-1);
}

/* Whether the process of a pidfd still runs: a pidfd is readable once its
 * process exited. */
int
access_pidfd_alive(int pidfd)
{
	struct pollfd	pfd = { pidfd, POLLIN, 0 };
	int		n;

	if (pidfd < 0)
		return (-1);
	while ((n = poll(&pfd, 1, 0)) == -1 && errno == EINTR)
		;
	if (n < 0)
		return (-1);
	return (n == 0 ? 1 : 0);
}

/* A process's real and effective uids: the "Uid:" line of its status
 * (/proc/PID's owner is root for a process that is not dumpable). */
int
access_proc_uids(pid_t pid, uid_t *ruid, uid_t *euid)
{
	char		 path[64], line[256];
	unsigned long	 r, e;
	FILE		*f;
	int		 found = 0;

	if (pid <= 0)
		return (-1);
	snprintf(path, sizeof path, "/proc/%ld/status", (long)pid);
	if ((f = fopen(path, "re")) == NULL)
		return (-1);
	while (fgets(line, sizeof line, f) != NULL) {
		if (sscanf(line, "Uid: %lu %lu", &r, &e) == 2) {
			found = 1;
			break;
		}
	}
	fclose(f);
	if (!found)
		return (-1);
	*ruid = (uid_t)r;
	*euid = (uid_t)e;
	return (0);
}
