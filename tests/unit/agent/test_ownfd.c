/*
 * test_ownfd.c -- agent/ownfd.c: a descriptor the host closed and reused
 * is forgotten, never used or closed by the agent, even one of the same
 * inode; one that would have no identity of its own is refused.
 */

#include <criterion/criterion.h>

#include <sys/eventfd.h>

#include <fcntl.h>
#include <unistd.h>

#include "fixture.h"

Test(ownfd, keeps_its_own_descriptor)
{
	struct ownfd	o = OWNFD_NONE;
	int		p[2];

	cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
	cr_assert_eq(ownfd_set(&o, p[1]), 0);
	cr_assert_eq(ownfd_get(&o), p[1]);
	ownfd_close(&o);
	cr_assert_eq(o.fd, -1);
	cr_assert_eq(fcntl(p[1], F_GETFD), -1, "our own end not closed");
	close(p[0]);
}

Test(ownfd, forgets_a_number_the_host_reused)
{
	struct ownfd	o = OWNFD_NONE;
	uint64_t	lost = AGENT_LOAD(agent_stats.fds_lost);
	int		p[2], host;

	cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
	cr_assert_eq(ownfd_set(&o, p[1]), 0);
	/* The host closes our number and opens its own file on it. */
	host = open("/dev/null", O_WRONLY);
	cr_assert_geq(host, 0);
	cr_assert_eq(dup2(host, p[1]), p[1]);
	close(host);
	cr_assert_eq(ownfd_get(&o), -1);
	cr_assert_eq(o.fd, -1);
	cr_assert_eq(AGENT_LOAD(agent_stats.fds_lost), lost + 1);
	ownfd_close(&o);
	cr_assert_neq(fcntl(p[1], F_GETFD), -1, "the host's file was closed");
	close(p[1]);
	close(p[0]);
}

Test(ownfd, close_leaves_a_foreign_descriptor_open)
{
	struct ownfd	o = OWNFD_NONE;
	int		p[2], q[2];

	cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
	cr_assert_eq(ownfd_set(&o, p[0]), 0);
	cr_assert_eq(pipe2(q, O_CLOEXEC), 0);
	cr_assert_eq(dup2(q[0], p[0]), p[0]);	/* another pipe, same type */
	ownfd_close(&o);
	cr_assert_neq(fcntl(p[0], F_GETFD), -1, "the host's pipe was closed");
	close(p[0]);
	close(p[1]);
	close(q[0]);
	close(q[1]);
}

Test(ownfd, refuses_an_eventfd)
{
	struct ownfd	o = OWNFD_NONE;
	int		fd;

	/* Every eventfd is the same anonymous inode: no identity of its own. */
	fd = eventfd(0, EFD_CLOEXEC);
	cr_assert_geq(fd, 0);
	cr_assert_eq(ownfd_set(&o, fd), -1);
	cr_assert_eq(o.fd, -1);
	close(fd);
}

Test(ownfd, tells_its_proc_mem_from_the_hosts)
{
	struct ownfd	o = OWNFD_NONE;
	uint64_t	lost = AGENT_LOAD(agent_stats.fds_lost);
	off_t		pos = 0x10000;
	int		fd, host;

	fd = open("/proc/self/mem", O_RDONLY | O_CLOEXEC);
	cr_assert_geq(fd, 0);
	cr_assert_eq(ownfd_set(&o, fd), 0);
	cr_assert_eq(ownfd_get(&o), fd);
	/* The host opens /proc/self/mem too (the same inode) on our number. */
	host = open("/proc/self/mem", O_RDONLY | O_CLOEXEC);
	cr_assert_geq(host, 0);
	cr_assert_eq(lseek(host, pos, SEEK_SET), pos);
	cr_assert_eq(dup2(host, fd), fd);
	close(host);
	cr_assert_eq(ownfd_get(&o), -1);
	cr_assert_eq(AGENT_LOAD(agent_stats.fds_lost), lost + 1);
	ownfd_close(&o);
	cr_assert_neq(fcntl(fd, F_GETFD), -1, "the host's file was closed");
	cr_assert_eq(lseek(fd, 0, SEEK_CUR), pos, "the host's offset moved");
	close(fd);
}

Test(ownfd, closes_its_own_proc_mem)
{
	struct ownfd	o = OWNFD_NONE;
	int		fd;

	fd = open("/proc/self/mem", O_RDONLY | O_CLOEXEC);
	cr_assert_geq(fd, 0);
	cr_assert_eq(ownfd_set(&o, fd), 0);
	ownfd_close(&o);
	cr_assert_eq(fcntl(fd, F_GETFD), -1, "our own file not closed");
}
