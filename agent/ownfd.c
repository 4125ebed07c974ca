/*
 * ownfd.c -- descriptors the agent owns, and the check that they still are.
 *
 * The host may close descriptors it does not know about (daemonizing code
 * runs os.closerange(3, N)) and the kernel then hands the same numbers to
 * the host's next open(), socket() or pipe().  A number alone therefore
 * proves nothing: each descriptor's identity (device, inode, file type) is
 * recorded when it is made, and checked with one fstat() before any call
 * that could read, write or close through it.  A descriptor that is no
 * longer ours is forgotten, never closed (the number is the host's now),
 * and counted (fds_lost); its owner then makes a new one.
 *
 * A check narrows the window to the microseconds between the fstat() and
 * the call; it cannot close it, since the host may close on another thread
 * at any time.  Callers check once per burst of calls, not per call.
 *
 * Each struct ownfd belongs to its owner's thread (see each user).
 */

#include <sys/stat.h>

#include <unistd.h>

#include "agent.h"

/* Records fd as ours; -1 (fd left alone) if it cannot be inspected. */
int
ownfd_set(struct ownfd *o, int fd)
{
	struct stat	st;

	if (fstat(fd, &st) != 0)
		return (-1);
	o->fd = fd;
	o->dev = (uint64_t)st.st_dev;
	o->ino = (uint64_t)st.st_ino;
	o->mode = (uint32_t)(st.st_mode & S_IFMT);
	return (0);
}

/* Whether o->fd is still the descriptor recorded (no side effects). */
static int
ownfd_ours(const struct ownfd *o)
{
	struct stat	st;

	return (o->fd != -1 && fstat(o->fd, &st) == 0 &&
	    (uint64_t)st.st_dev == o->dev && (uint64_t)st.st_ino == o->ino &&
	    (uint32_t)(st.st_mode & S_IFMT) == o->mode);
}

/* The number if it is still ours; else forgets it (unclosed) and -1. */
int
ownfd_get(struct ownfd *o)
{
	if (o->fd == -1)
		return (-1);
	if (ownfd_ours(o))
		return (o->fd);
	agent_log("descriptor %d is no longer the agent's: left to the host",
	    o->fd);
	__atomic_add_fetch(&agent_stats.fds_lost, 1, __ATOMIC_RELAXED);
	o->fd = -1;
	return (-1);
}

/* Closes the descriptor if it is still ours; forgets it either way.  No
 * logging: this runs in fork children too. */
void
ownfd_close(struct ownfd *o)
{
	if (ownfd_ours(o))
		close(o->fd);
	o->fd = -1;
}
