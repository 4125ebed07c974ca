/* rundir.c -- the runtime directory rule shared by all three programs. */

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rundir.h"

/* Resolves the runtime directory (see rundir.h for the order). */
int
rundir_resolve(const char *flag, char *buf, size_t len)
{
	const char	*env;
	int		 n;

	if (flag != NULL && *flag != '\0')
		n = snprintf(buf, len, "%s", flag);
	else if ((env = getenv(RUNDIR_ENV)) != NULL && *env != '\0')
		n = snprintf(buf, len, "%s", env);
	else if (geteuid() == 0)
		n = snprintf(buf, len, "%s", RUNDIR_SYSTEM);
	else if ((env = getenv("XDG_RUNTIME_DIR")) != NULL && *env != '\0')
		n = snprintf(buf, len, "%s/profd", env);
	else
		n = snprintf(buf, len, "/tmp/profd-%u", (unsigned)geteuid());
	if (n < 0 || (size_t)n >= len) {
		errno = ENAMETOOLONG;
		return (-1);
	}
	return (rundir_absolute(buf, len));
}

/* Whether dir holds the socket `name`. */
static int
rundir_has_socket(const char *dir, const char *name)
{
	char		path[4096];
	struct stat	sb;

	if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path)
		return (0);
	return (stat(path, &sb) == 0 && S_ISSOCK(sb.st_mode));
}

/* Resolves the directory a client (profctl, the agent) looks in. */
int
rundir_resolve_client(const char *flag, const char *sock, char *buf,
    size_t len)
{
	const char	*env;

	if ((flag != NULL && *flag != '\0') || geteuid() == 0 ||
	    ((env = getenv(RUNDIR_ENV)) != NULL && *env != '\0'))
		return (rundir_resolve(flag, buf, len));
	if (rundir_resolve(NULL, buf, len) != 0)
		return (-1);
	/* A private profd of this user first, then the system's. */
	if (!rundir_has_socket(buf, sock) &&
	    rundir_has_socket(RUNDIR_SYSTEM, sock))
		snprintf(buf, len, "%s", RUNDIR_SYSTEM);
	return (0);
}

/* Makes a relative directory absolute against the current one, so that a
 * child that changes directory still finds the same sockets. */
int
rundir_absolute(char *buf, size_t len)
{
	char	cwd[4096];
	size_t	clen, blen;

	if (buf[0] == '/')
		return (0);
	if (getcwd(cwd, sizeof cwd) == NULL)
		return (-1);
	clen = strlen(cwd);
	blen = strlen(buf);
	if (strcmp(buf, ".") == 0)
		blen = 0;
	else if (blen >= 2 && buf[0] == '.' && buf[1] == '/') {
		memmove(buf, buf + 2, blen - 1);
		blen -= 2;
	}
	if (clen + 1 + blen + 1 > len) {
		errno = ENAMETOOLONG;
		return (-1);
	}
	memmove(buf + clen + (blen ? 1 : 0), buf, blen + 1);
	memcpy(buf, cwd, clen);
	if (blen)
		buf[clen] = '/';
	return (0);
}

/* Checks nobody else can replace the sockets in a runtime directory. */
int
rundir_check(const char *dir, int own, char *err, size_t errlen)
{
	struct stat	sb;

	if (stat(dir, &sb) != 0) {
		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		return (-1);
	}
	if (own && sb.st_uid != 0 && sb.st_uid != geteuid()) {
		snprintf(err, errlen, "%s is owned by uid %u, not by root or "
		    "this user: its owner could replace the sockets in it",
		    dir, (unsigned)sb.st_uid);
		errno = EPERM;
		return (-1);
	}
	if (sb.st_mode & (S_IWGRP | S_IWOTH)) {
		snprintf(err, errlen, "%s is writable by %s (mode %04o): "
		    "anyone there could replace the sockets in it; run "
		    "`chmod go-w %s` or choose another directory", dir,
		    (sb.st_mode & S_IWOTH) ? "everyone" : "its group",
		    (unsigned)(sb.st_mode & 07777), dir);
		errno = EPERM;
		return (-1);
	}
	return (0);
}

/* Joins dir and a socket name, checking it fits in sun_path. */
int
rundir_socket(const char *dir, const char *name, char *buf, size_t len)
{
	struct sockaddr_un	 sun;
	int			 n;

	n = snprintf(buf, len, "%s/%s", dir, name);
	if (n < 0 || (size_t)n >= len || (size_t)n >= sizeof sun.sun_path) {
		errno = ENAMETOOLONG;
		return (-1);
	}
	return (0);
}
