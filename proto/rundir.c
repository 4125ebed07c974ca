/* rundir.c -- the runtime directory rule shared by all three programs. */

#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
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
