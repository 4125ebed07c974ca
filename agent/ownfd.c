/*
 * ownfd.c -- descriptors the agent owns, and the check that they still are.
 *
 * The host may close descriptors it does not know about (daemonizing code
 * runs os.closerange(3, N)) and the kernel then hands the same numbers to
 * the host's next open(), socket(), pipe() or eventfd().  A number alone
 * therefore proves nothing: each descriptor's identity is recorded when it
 * is made, and checked before any call that could read, write or close
 * through it.  A descriptor that is no longer ours is forgotten, never
 * closed (the number is the host's now), and counted (fds_lost); its owner
 * then makes a new one.
 *
 * An identity must be one the host cannot come by.  A socket or a pipe has
 * an inode of its own, so (device, inode, file type) names it: one fstat().
 * Other files share their inode with every other open of the same thing:
 * /proc/self/mem opened again by the host is the same inode, and every
 * eventfd, timerfd, signalfd and epoll descriptor of the system is the one
 * anonymous inode.  Such a file is tagged instead: its file offset is set
 * to a random value past any address (the agent reads it with pread(),
 * which ignores the offset), and the check reads the offset back after the
 * fstat() matched.  A file whose offset does not hold (an anonymous inode
 * has none) is refused, so the agent never holds a descriptor it could
 * take for the host's or the host's for its own.
 *
 * A check narrows the window to the microseconds between the check and the
 * call; it cannot close it, since the host may close on another thread at
 * any time.  Callers check once per burst of calls, not per call.  The
 * /proc files the agent reads once (its stat, a thread's stat, cmdline)
 * are opened, read and closed in one function and never recorded: that is
 * the same window.
 *
 * Each struct ownfd belongs to its owner's thread (see each user).
 */

#include <sys/random.h>
#include <sys/stat.h>

#include <unistd.h>

#include "agent.h"

/* Tags have this bit set: with a 64-bit off_t no user-space address does;
 * with any width, the offset stays positive. */
#define OWNFD_TAG_BIT	((uint64_t)1 << (sizeof(off_t) * 8 - 3))

/* A tag no other open file has: random below OWNFD_TAG_BIT, with it set. */
static uint64_t
ownfd_tag(const struct ownfd *o, int fd)
{
	uint64_t	x;

	if (getrandom(&x, sizeof x, GRND_NONBLOCK) != (ssize_t)sizeof x) {
		x = agent_now_ns() ^ (uint64_t)(uintptr_t)o ^
		    ((uint64_t)getpid() << 32) ^ (uint64_t)fd;
		x = (x ^ (x >> 31)) * 0x9e3779b97f4a7c15ull;
		x ^= x >> 29;
	}
	return ((x & (OWNFD_TAG_BIT - 1)) | OWNFD_TAG_BIT);
}

/* Records fd as ours; -1 (fd left alone) if it cannot be inspected or
 * given an identity only it has. */
int
ownfd_set(struct ownfd *o, int fd)
{
	struct stat	st;
	uint32_t	type;
	uint64_t	tag = 0;

	if (fstat(fd, &st) != 0)
		return (-1);
	type = (uint32_t)(st.st_mode & S_IFMT);
	if (type == 0)
		return (-1);	/* an anonymous inode */
	if (type != S_IFSOCK && type != S_IFIFO) {
		tag = ownfd_tag(o, fd);
		if (lseek(fd, (off_t)tag, SEEK_SET) != (off_t)tag ||
		    lseek(fd, 0, SEEK_CUR) != (off_t)tag)
			return (-1);
	}
	o->fd = fd;
	o->dev = (uint64_t)st.st_dev;
	o->ino = (uint64_t)st.st_ino;
	o->mode = type;
	o->tag = tag;
	return (0);
}

/* Whether o->fd is still the descriptor recorded.  No side effects: the
 * offset is read only from a file that fstat() showed is the same inode. */
static int
ownfd_ours(const struct ownfd *o)
{
	struct stat	st;

	if (o->fd == -1 || fstat(o->fd, &st) != 0 ||
	    (uint64_t)st.st_dev != o->dev || (uint64_t)st.st_ino != o->ino ||
	    (uint32_t)(st.st_mode & S_IFMT) != o->mode)
		return (0);
	return (o->tag == 0 || lseek(o->fd, 0, SEEK_CUR) == (off_t)o->tag);
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
