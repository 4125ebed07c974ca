/*
 * rundir.h -- where profd's sockets and its published sampling settings
 * live.  profd, profctl and the agent all use this one rule, so with no
 * flags they find each other.
 */
#ifndef RUNDIR_H
#define RUNDIR_H

#include <stddef.h>

#define RUNDIR_ENV		"PROFD_RUNTIME_DIR"
#define RUNDIR_SYSTEM		"/run/profd"
#define RUNDIR_AGENT_SOCK	"agent.sock"
#define RUNDIR_CONTROL_SOCK	"control.sock"
/* The sampling settings profd publishes for agents (sampling.h). */
#define RUNDIR_SAMPLING		"sampling"

/*
 * Resolves the runtime directory: `flag` if not NULL, else $PROFD_RUNTIME_DIR,
 * else /run/profd for root, else $XDG_RUNTIME_DIR/profd, else /tmp/profd-UID.
 * A relative result is made absolute against the current directory.
 * Returns 0, or -1 if it does not fit in len.
 */
int	rundir_resolve(const char *flag, char *buf, size_t len);
/*
 * The same for a client (profctl, the agent) looking for socket `sock`:
 * a user other than root with no flag and no $PROFD_RUNTIME_DIR uses its
 * own directory (rule 4 or 5) if a profd listens there, else /run/profd
 * if the system's profd does, else its own.
 */
int	rundir_resolve_client(const char *flag, const char *sock, char *buf,
	    size_t len);
/* Makes a relative path in buf absolute; 0, or -1. */
int	rundir_absolute(char *buf, size_t len);

/*
 * Checks that nobody but its owner can replace the sockets in a runtime
 * directory: not writable by group or others and, with `own`, owned by
 * root or the calling user.  0, or -1 with err set (a full sentence).
 */
int	rundir_check(const char *dir, int own, char *err, size_t errlen);

/* Joins dir and a socket name; -1 if it does not fit a sun_path. */
int	rundir_socket(const char *dir, const char *name, char *buf, size_t len);

#endif
