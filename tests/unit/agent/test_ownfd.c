/*
 * test_ownfd.c -- agent/ownfd.c: a descriptor the host closed and reused
 * is forgotten, never used or closed by the agent.
 */

#include <criterion/criterion.h>

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
