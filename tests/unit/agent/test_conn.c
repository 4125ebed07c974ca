/*
 * test_conn.c -- agent/conn.c: the agent's bounded outgoing stream to a
 * daemon socket, read back here by a listening Unix socket standing in
 * for profd and decoded with the real proto decoder.
 */

#include <sys/socket.h>
#include <sys/un.h>

#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fixture.h"

#define SEC	1000000000ull

static char		 dir[64];
static int		 lfd = -1;	/* the "daemon"'s listening socket */
static int		 sfd = -1;	/* its end of the agent's connection */
static char		*rx;		/* bytes received, not yet decoded */
static size_t		 rx_len, rx_cap;
static char		*argv0[] = { "app.py", "--flag" };
static uint32_t		 thread1, stack1;

/* Starts listening at the agent's socket path. */
static void
daemon_listen(void)
{
	struct sockaddr_un	sun;

	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof sun.sun_path, "%s",
	    agent_ident.sock_path);
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
	cr_assert_neq(lfd, -1);
	cr_assert_eq(bind(lfd, (struct sockaddr *)&sun, sizeof sun), 0,
	    "bind %s: %s", sun.sun_path, strerror(errno));
	cr_assert_eq(listen(lfd, 8), 0);
}

/* Identity, tables, an interned stack and thread; no buffer yet. */
static void
setup(void)
{
	static const uintptr_t	codes[] = { 0x200, 0x100 };
	struct reader_thread	t;
	int			full = 0;

	snprintf(dir, sizeof dir, "/tmp/profd-conn-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	memset(&agent_ident, 0, sizeof agent_ident);
	snprintf(agent_ident.sock_path, sizeof agent_ident.sock_path,
	    "%s/agent.sock", dir);
	snprintf(agent_ident.service, sizeof agent_ident.service, "svc");
	snprintf(agent_ident.host, sizeof agent_ident.host, "host1");
	snprintf(agent_ident.python, sizeof agent_ident.python, "3.11.7");
	agent_ident.argv = argv0;
	agent_ident.argc = 2;
	agent_ident.start_ns = 1;
	memset(&agent_stats, 0, sizeof agent_stats);

	fx_reader_reset();
	fx_wire_reset(1);
	fx_code_add(0x100, "main", "app.py", 1);
	fx_code_add(0x200, "work", "app.py", 20);
	cr_assert_eq(intern_init(), 0);
	fx_thread(&t, 77, codes, NULL, 2);
	stack1 = intern_stack(&fx_reader, &t, &full);
	thread1 = intern_thread(77, 0, &full);
	cr_assert(stack1 != 0 && thread1 != 0);
}

/* Closes both ends and removes the socket. */
static void
teardown(void)
{
	char	path[128];

	conn_free();
	intern_free();
	if (sfd != -1)
		close(sfd);
	if (lfd != -1)
		close(lfd);
	snprintf(path, sizeof path, "%s/agent.sock", dir);
	unlink(path);
	rmdir(dir);
	free(rx);
}

TestSuite(conn, .init = setup, .fini = teardown);

/* Commits a batch of n samples of stack on thread; conn_commit's result. */
static int
commit(uint32_t stack, uint32_t thread, uint32_t n)
{
	struct intern_sample	s[AGENT_PENDING_MAX];
	uint64_t		now = agent_now_ns();
	uint32_t		i;

	cr_assert_leq(n, AGENT_PENDING_MAX);
	for (i = 0; i < n; i++) {
		s[i].stack = stack;
		s[i].thread = thread;
		s[i].t_ns = now + i * 1000;
		s[i].weight_us = 10;
		s[i].flags = 0;
	}
	return (conn_commit(s, n, 0, PROTO_MODE_WALL, now));
}

/* Interns a new one-frame stack (a new function each time). */
static uint32_t
new_stack(void)
{
	static uintptr_t	next = FX_GEN_BASE;
	struct reader_thread	t;
	uintptr_t		code = next++;
	int			full = 0;
	uint32_t		s;

	fx_thread(&t, 77, &code, NULL, 1);
	s = intern_stack(&fx_reader, &t, &full);
	cr_assert_neq(s, 0);
	return (s);
}

static void	daemon_hello_config(void);

/* Takes a pending connection, if any; a new one starts a new stream. */
static int
daemon_accept(void)
{
	int	fd;

	if ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) == -1)
		return (0);
	if (sfd != -1)
		close(sfd);
	sfd = fd;
	rx_len = 0;
	/* As profd does on the hello: the config, naming the version. */
	daemon_hello_config();
	return (1);
}

/* Reads what the agent sent and decodes the whole frames; 1 on EOF. */
static int
daemon_read(void)
{
	ssize_t	n;
	size_t	used;
	int	eof = 0;

	if (sfd == -1)
		return (0);
	for (;;) {
		if (rx_cap - rx_len < 65536) {
			rx_cap = rx_cap ? rx_cap * 2 : 1u << 20;
			cr_assert_not_null(rx = realloc(rx, rx_cap));
		}
		n = recv(sfd, rx + rx_len, rx_cap - rx_len, 0);
		if (n > 0) {
			rx_len += (size_t)n;
			continue;
		}
		if (n == 0)
			eof = 1;
		break;
	}
	used = fx_wire_feed(rx, rx_len);
	memmove(rx, rx + used, rx_len - used);
	rx_len -= used;
	cr_assert_null(fx_wire.error, "wire: %s", fx_wire.error);
	return (eof);
}

/* One round of agent I/O at time now, then the daemon takes it all. */
static void
pump_at(uint64_t now)
{
	int	i;

	for (i = 0; i < 1000; i++) {
		conn_io(now);
		/* A new connection gets its CONFIG: one more round to read it
		 * and send what waited for it. */
		if (daemon_accept()) {
			daemon_read();
			continue;
		}
		daemon_read();
		if (!conn_want_write() || conn_fd() == -1)
			break;
	}
}

static void
pump(void)
{
	pump_at(agent_now_ns());
}

/* Sends the agent one frame's bytes as the daemon. */
static void
daemon_send(const char *buf, size_t len)
{
	cr_assert_eq(send(sfd, buf, len, MSG_NOSIGNAL), (ssize_t)len);
}

/* Sends the agent a CONFIG. */
static void
daemon_config(int profiling, uint32_t rate, uint32_t mode, uint32_t reader)
{
	struct proto_sink	sk;

	proto_sink_init(&sk, 1u << 16);
	cr_assert_eq(proto_send_config_v3(&sk, profiling, rate, mode, reader, 0,
	    PROTO_VERSION, PROTO_OVERHEAD_UNSET), 0);
	daemon_send(sk.data, sk.len);
	proto_sink_free(&sk);
}

/* What profd's CONFIG on a hello asks (profiling off unless a test says
 * otherwise). */
static int		 hello_profiling;
static uint32_t		 hello_mode = PROTO_MODE_WALL;

/* The CONFIG profd sends on a hello. */
static void
daemon_hello_config(void)
{
	daemon_config(hello_profiling, PROTO_RATE_DEFAULT, hello_mode,
	    PROTO_READER_DEFAULT);
}

Test(conn, hello_comes_first)
{
	daemon_listen();
	cr_assert_eq(conn_init(1u << 20), 0);
	cr_assert_eq(commit(stack1, thread1, 3), 0);
	pump();
	cr_assert_neq(conn_fd(), -1);
	cr_assert_eq(agent_connected, 1);
	cr_assert_eq(agent_stats.connects, 1);
	cr_assert_eq(fx_wire.nhellos, 1);
	cr_assert_eq(fx_wire.hello_pid, (uint64_t)getpid());
	cr_assert_eq(fx_wire.nsamples, 3);
	cr_assert_str_eq(fx_wire_frame_name(fx_wire.stacks[1].frames[0]),
	    "work");
	cr_assert_str_eq(fx_wire_thread_name(1), "Thread-77");
	cr_assert_gt(agent_stats.bytes_sent, 0);
	cr_assert_gt(agent_stats.sample_bytes, 0);
	cr_assert_eq(agent_stats.dropped, 0);
	cr_assert_eq(conn_want_write(), 0);
}

Test(conn, huge_argv_is_cut_so_the_hello_still_comes_first)
{
	static char	 big[PROTO_MAX_STRING];
	static char	*argv[PROTO_MAX_ARGV];
	int		 i;

	memset(big, 'x', sizeof big - 1);
	for (i = 0; i < PROTO_MAX_ARGV; i++)
		argv[i] = big;			/* a whole hello: ~256 KiB */
	agent_ident.argv = argv;
	agent_ident.argc = PROTO_MAX_ARGV;
	daemon_listen();
	cr_assert_eq(conn_init(AGENT_BUFFER_MIN), 0);	/* 64 KiB */
	cr_assert_eq(commit(stack1, thread1, 3), 0);
	pump();
	cr_assert_eq(fx_wire.nhellos, 1);
	cr_assert_eq(fx_wire.nsamples, 3);
	cr_assert_eq(agent_stats.dropped, 0);
}

/* Sends the agent an ACK of batches up to seq. */
static void
daemon_ack(uint64_t seq)
{
	struct proto_sink	sk;

	proto_sink_init(&sk, 1u << 16);
	cr_assert_eq(proto_send_ack(&sk, seq), 0);
	daemon_send(sk.data, sk.len);
	proto_sink_free(&sk);
}

Test(conn, samples_buffered_while_the_daemon_is_away_are_sent_later)
{
	int	i;

	cr_assert_eq(conn_init(1u << 20), 0);
	conn_io(agent_now_ns());		/* nobody listens */
	cr_assert_eq(conn_fd(), -1);
	for (i = 0; i < 10; i++)
		cr_assert_eq(commit(i % 2 ? stack1 : new_stack(), thread1, 50),
		    0);
	daemon_listen();
	pump_at(agent_now_ns() + 10 * SEC);	/* past the backoff */
	cr_assert_neq(conn_fd(), -1);
	cr_assert_eq(fx_wire.nhellos, 1);
	cr_assert_eq(fx_wire.nsamples, 500);
	cr_assert_eq(fx_wire.nstacks, 6);
	cr_assert_eq(agent_stats.dropped, 0);
}

Test(conn, batch_that_does_not_fit_what_is_kept_is_counted_as_dropped)
{
	uint32_t	ok = 0, s = 0;
	int		i;

	/* 4 KiB keeps 4096 / 24 = 170 samples until acknowledged. */
	cr_assert_eq(conn_init(4096), 0);
	for (i = 0; i < 1000; i++) {
		s = new_stack();
		if (commit(s, thread1, 10) != 0)
			break;
		ok++;
	}
	cr_assert_lt(i, 1000, "4 KiB kept everything");
	cr_assert_eq(ok, 4096 / sizeof(struct intern_sample) / 10);
	cr_assert_eq(agent_stats.dropped, 10);
	/* What is kept is sent whole, with all the definitions it needs,
	 * as the buffer drains. */
	daemon_listen();
	pump_at(agent_now_ns() + 10 * SEC);
	cr_assert_eq(fx_wire.nhellos, 1);
	cr_assert_eq(fx_wire.nsamples, ok * 10);
	cr_assert_eq(fx_wire.nstacks, ok, "the dropped batch's stack leaked");
	/* Still unacknowledged: no room yet. */
	cr_assert_eq(commit(s, thread1, 10), -1);
	cr_assert_eq(agent_stats.dropped, 20);
	/* Acknowledged: room again; sending it now defines its stack. */
	daemon_ack(ok);
	pump();
	cr_assert_eq(commit(s, thread1, 10), 0);
	pump();
	cr_assert_eq(fx_wire.nsamples, ok * 10 + 10);
	cr_assert_eq(fx_wire.nstacks, ok + 1);
	cr_assert_eq(agent_stats.dropped, 20);
}

Test(conn, unacknowledged_batches_are_sent_again_after_a_reconnect)
{
	uint64_t	now;

	daemon_listen();
	cr_assert_eq(conn_init(1u << 20), 0);
	cr_assert_eq(commit(stack1, thread1, 3), 0);
	pump();
	cr_assert_eq(fx_wire.nstacks, 1);

	now = agent_now_ns();
	conn_drop(now, "test");
	cr_assert_eq(conn_fd(), -1);
	cr_assert_eq(agent_connected, 0);
	cr_assert_eq(agent_stats.dropped, 0, "kept samples counted dropped");
	cr_assert_eq(commit(stack1, thread1, 4), 0);
	pump_at(now);				/* backing off */
	cr_assert_eq(conn_fd(), -1);
	pump_at(now + 10 * SEC);
	cr_assert_neq(conn_fd(), -1);
	/* The checker forgets ids at each HELLO: the stack and thread must
	 * have been defined again, from id 1, for the batch sent again. */
	cr_assert_eq(fx_wire.nhellos, 2);
	cr_assert_eq(fx_wire.nstacks, 1);
	cr_assert_eq(fx_wire.nthreads, 1);
	cr_assert_eq(fx_wire.nsamples, 3 + 3 + 4);
	cr_assert_eq(agent_stats.replayed, 3);
	cr_assert_eq(agent_stats.connects, 2);
}

Test(conn, acknowledged_batches_are_not_sent_again)
{
	uint64_t	now;

	daemon_listen();
	cr_assert_eq(conn_init(1u << 20), 0);
	cr_assert_eq(commit(stack1, thread1, 3), 0);
	cr_assert_eq(commit(stack1, thread1, 5), 0);
	pump();
	daemon_ack(1);
	pump();
	now = agent_now_ns();
	conn_drop(now, "test");
	pump_at(now + 10 * SEC);
	cr_assert_eq(fx_wire.nhellos, 2);
	cr_assert_eq(fx_wire.nsamples, 3 + 5 + 5);
	cr_assert_eq(agent_stats.replayed, 5);
	cr_assert_eq(agent_stats.dropped, 0);
}

Test(conn, kept_samples_wrap_around_their_ring)
{
	uint64_t	seq = 0, acked = 0;
	uint32_t	sent = 0;
	int		i;

	daemon_listen();
	cr_assert_eq(conn_init(4096), 0);	/* 170 samples kept */
	pump();
	for (i = 0; i < 500; i++) {
		cr_assert_eq(commit(stack1, thread1, 1 + i % 20), 0,
		    "batch %d", i);
		sent += 1 + i % 20;
		seq++;
		pump();
		/* Acknowledge all but the newest two. */
		if (seq > 2 && seq - 2 > acked) {
			acked = seq - 2;
			daemon_ack(acked);
			pump();
		}
	}
	cr_assert_eq(agent_stats.dropped, 0);
	cr_assert_eq(fx_wire.nsamples, sent);
}

Test(conn, abandoning_counts_what_was_never_written_as_dropped)
{
	cr_assert_eq(conn_init(1u << 20), 0);
	daemon_listen();
	cr_assert_eq(commit(stack1, thread1, 3), 0);
	pump_at(agent_now_ns() + 10 * SEC);	/* written, not acked */
	cr_assert_eq(fx_wire.nsamples, 3);
	conn_drop(agent_now_ns(), "test");
	cr_assert_eq(commit(stack1, thread1, 5), 0);	/* never written */
	conn_abandon();
	cr_assert_eq(agent_stats.dropped, 3 + 5,
	    "the written batch is in this connection's stream again, unsent");
	conn_abandon();
	cr_assert_eq(agent_stats.dropped, 8, "counted twice");
	/* Nothing abandoned is sent on a later connection (detach, attach). */
	conn_drop(agent_now_ns(), "detached");
	pump_at(agent_now_ns() + 20 * SEC);
	cr_assert_eq(fx_wire.nsamples, 3);
	cr_assert_eq(agent_stats.dropped, 8);
}

Test(conn, abandoning_keeps_what_the_socket_took)
{
	daemon_listen();
	cr_assert_eq(conn_init(1u << 20), 0);
	cr_assert_eq(commit(stack1, thread1, 3), 0);
	pump();
	cr_assert_eq(fx_wire.nsamples, 3);
	cr_assert_eq(commit(stack1, thread1, 4), 0);
	conn_abandon();			/* still in the buffer */
	cr_assert_eq(agent_stats.dropped, 4);
}

Test(conn, batches_kept_while_disconnected_survive_a_restart)
{
	cr_assert_eq(conn_init(1u << 20), 0);
	cr_assert_eq(commit(stack1, thread1, 5), 0);
	cr_assert_eq(commit(new_stack(), thread1, 7), 0);
	conn_drop(agent_now_ns(), "test");
	cr_assert_eq(agent_stats.dropped, 0);
	cr_assert_eq(commit(stack1, thread1, 2), 0);
	daemon_listen();
	pump_at(agent_now_ns() + 10 * SEC);
	cr_assert_eq(fx_wire.nhellos, 1);
	cr_assert_eq(fx_wire.nsamples, 14);
	cr_assert_eq(fx_wire.nstacks, 2);
}

Test(conn, every_unacknowledged_sample_reaches_the_next_connection)
{
	uint32_t	committed = 0, first;
	int		i;

	daemon_listen();
	cr_assert_eq(conn_init(16u << 20), 0);
	conn_io(agent_now_ns());
	cr_assert(daemon_accept());
	/* The daemon stops reading: the socket fills mid-stream. */
	for (i = 0; i < 400; i++) {
		cr_assert_eq(commit(i % 3 ? stack1 : new_stack(), thread1,
		    AGENT_FLUSH_SAMPLES), 0);
		committed += AGENT_FLUSH_SAMPLES;
		conn_io(agent_now_ns());
	}
	cr_assert(conn_want_write(), "the socket took everything");
	conn_drop(agent_now_ns(), "test");
	cr_assert_eq(daemon_read(), 1, "the agent did not hang up");
	cr_assert_gt(fx_wire.nsamples, 0);
	cr_assert_lt(fx_wire.nsamples, committed);
	first = fx_wire.nsamples;
	pump_at(agent_now_ns() + 10 * SEC);
	cr_assert_eq(agent_stats.dropped, 0);
	cr_assert_eq(fx_wire.nsamples - first, committed,
	    "%u sent again of %u committed", fx_wire.nsamples - first,
	    committed);
}

Test(conn, config_from_the_daemon_sets_agent_config)
{
	daemon_listen();
	cr_assert_eq(conn_init(1u << 20), 0);
	pump();
	daemon_config(1, 250, PROTO_MODE_CPU, PROTO_READER_GIL);
	pump();
	cr_assert_eq(agent_config.profiling, 1);
	cr_assert_eq(agent_config.rate_hz, 250);
	cr_assert_eq(agent_config.mode, PROTO_MODE_CPU);
	cr_assert_eq(agent_config.reader, PROTO_READER_GIL);

	daemon_config(1, PROTO_RATE_MIN, PROTO_MODE_WALL, PROTO_READER_DEFAULT);
	pump();
	cr_assert_eq(agent_config.rate_hz, PROTO_RATE_MIN);
	cr_assert_eq(agent_config.mode, PROTO_MODE_WALL);
	cr_assert_neq(conn_fd(), -1);
}

Test(conn, config_out_of_range_drops_the_connection_and_changes_nothing)
{
	daemon_listen();
	cr_assert_eq(conn_init(1u << 20), 0);
	pump();
	daemon_config(1, PROTO_RATE_MAX + 1, PROTO_MODE_CPU, PROTO_READER_GIL);
	pump();
	cr_assert_eq(conn_fd(), -1);
	cr_assert_eq(agent_config.profiling, 0);
	cr_assert_eq(agent_config.rate_hz, PROTO_RATE_DEFAULT);
	cr_assert_eq(agent_config.mode, PROTO_MODE_WALL);
}

Test(conn, config_split_across_reads_is_applied_once_whole)
{
	struct proto_sink	sk;

	daemon_listen();
	cr_assert_eq(conn_init(1u << 20), 0);
	pump();
	proto_sink_init(&sk, 1u << 16);
	cr_assert_eq(proto_send_config(&sk, 1, 333, PROTO_MODE_GIL,
	    PROTO_READER_DIRECT, 0), 0);
	daemon_send(sk.data, 3);
	pump();
	cr_assert_eq(agent_config.rate_hz, PROTO_RATE_DEFAULT);
	daemon_send(sk.data + 3, sk.len - 3);
	pump();
	proto_sink_free(&sk);
	cr_assert_eq(agent_config.rate_hz, 333);
	cr_assert_eq(agent_config.mode, PROTO_MODE_GIL);
}

Test(conn, malformed_input_drops_the_connection)
{
	static const char	bad[] = { 0, 0, 0, 2, (char)0xc1, 0 };

	daemon_listen();
	cr_assert_eq(conn_init(1u << 20), 0);
	pump();
	cr_assert_neq(conn_fd(), -1);
	daemon_send(bad, sizeof bad);
	pump();
	cr_assert_eq(conn_fd(), -1);
	cr_assert_eq(agent_connected, 0);
}

/* Sends the agent a RESYNC. */
static void
daemon_resync(uint32_t token)
{
	struct proto_sink	sk;

	proto_sink_init(&sk, 1u << 16);
	cr_assert_eq(proto_send_resync(&sk, token), 0);
	daemon_send(sk.data, sk.len);
	proto_sink_free(&sk);
}

Test(conn, message_of_a_type_the_agent_does_not_act_on_is_ignored)
{
	/* [250, 1, "x"]: a type from a newer daemon; then a STRING, which
	 * only agents send. */
	static const char	future[] = { 0, 0, 0, 6, (char)0x93,
				    (char)0xcc, (char)0xfa, 0x01, (char)0xa1,
				    'x' };
	struct proto_sink	sk;

	daemon_listen();
	cr_assert_eq(conn_init(1u << 20), 0);
	pump();
	daemon_send(future, sizeof future);
	proto_sink_init(&sk, 1u << 16);
	cr_assert_eq(proto_send_string(&sk, 1, "x", 1), 0);
	daemon_send(sk.data, sk.len);
	proto_sink_free(&sk);
	daemon_config(1, 250, PROTO_MODE_CPU, PROTO_READER_GIL);
	pump();
	cr_assert_neq(conn_fd(), -1);
	cr_assert_eq(agent_config.rate_hz, 250, "input after them was lost");
	cr_assert_eq(agent_stats.connects, 1);
}

Test(conn, resync_acks_after_the_old_ids_and_defines_again_from_one)
{
	uint32_t	stack2, n;

	daemon_listen();
	cr_assert_eq(conn_init(1u << 20), 0);
	stack2 = new_stack();
	cr_assert_eq(commit(stack1, thread1, 3), 0);
	cr_assert_eq(commit(stack2, thread1, 2), 0);
	pump();
	cr_assert_eq(fx_wire.nstacks, 2);
	cr_assert_eq(fx_wire.nframes, 3);

	/* Committed before the RESYNC is read: old ids, before the ack. */
	cr_assert_eq(commit(stack2, thread1, 4), 0);
	daemon_resync(42);
	pump();
	cr_assert_eq(fx_wire.nacks, 1);
	cr_assert_eq(fx_wire.ack_token, 42);
	cr_assert_eq(fx_wire.samples_at_ack, 9);
	cr_assert_eq(agent_stats.resyncs, 1);
	cr_assert_neq(conn_fd(), -1);
	cr_assert_eq(fx_wire.nstacks, 0, "definitions came after the ack");

	/* The checker forgot every id at the ack: what is used now must be
	 * defined again, numbered from 1, and resolve to the same names. */
	cr_assert_eq(commit(stack2, thread1, 5), 0);
	pump();
	cr_assert_null(fx_wire.error, "wire: %s", fx_wire.error);
	cr_assert_eq(fx_wire.nsamples, 14);
	cr_assert_eq(fx_wire.nstacks, 1);
	cr_assert_eq(fx_wire.nframes, 1);
	cr_assert_eq(fx_wire.nthreads, 1);
	for (n = 9; n < 14; n++) {
		cr_assert_eq(fx_wire.samples[n].stack, 1);
		cr_assert_eq(fx_wire.samples[n].thread, 1);
	}
	cr_assert_str_eq(fx_wire_frame_name(fx_wire.stacks[1].frames[0]),
	    fx_code_find(FX_GEN_BASE)->qualname);
	cr_assert_str_eq(fx_wire_thread_name(1), "Thread-77");
	cr_assert_eq(commit(stack1, thread1, 1), 0);
	pump();
	cr_assert_eq(fx_wire.nstacks, 2);
	cr_assert_str_eq(fx_wire_frame_name(fx_wire.stacks[2].frames[0]),
	    "work");
	cr_assert_eq(fx_wire.nhellos, 1, "a resync is not a new connection");
	cr_assert_eq(agent_stats.connects, 1);
	cr_assert_eq(agent_stats.dropped, 0);
}

Test(conn, each_resync_gets_its_own_ack_even_with_nothing_defined_between)
{
	daemon_listen();
	cr_assert_eq(conn_init(1u << 20), 0);
	pump();
	daemon_resync(1);
	daemon_resync(2);
	pump();
	cr_assert_eq(fx_wire.nacks, 2);
	cr_assert_eq(fx_wire.ack_token, 2);
	cr_assert_eq(commit(stack1, thread1, 1), 0);
	daemon_resync(3);
	pump();
	cr_assert_eq(fx_wire.nacks, 3);
	cr_assert_eq(fx_wire.samples_at_ack, 1);
	cr_assert_eq(commit(stack1, thread1, 1), 0);
	pump();
	cr_assert_eq(fx_wire.nstacks, 1);
	cr_assert_eq(fx_wire.nsamples, 2);
	cr_assert_eq(agent_stats.resyncs, 3);
}

Test(conn, resync_ack_that_does_not_fit_drops_the_connection)
{
	uint32_t	acks = 0;
	int		i;

	daemon_listen();
	cr_assert_eq(conn_init(AGENT_BUFFER_MIN), 0);
	cr_assert_eq(commit(stack1, thread1, 1), 0);
	pump();
	/* The daemon stops reading (but acknowledges everything, so what
	 * is kept never fills): fill the socket, then the buffer, to less
	 * room than a one-sample batch takes (it stays kept, unencoded). */
	for (i = 0; i < 100000; i++) {
		uint64_t before = agent_stats.sample_bytes;

		cr_assert_eq(commit(stack1, thread1, i < 10000 ? 64 : 1), 0);
		if (i >= 10000 && agent_stats.sample_bytes == before)
			break;
		daemon_ack(UINT64_MAX);
		conn_io(agent_now_ns());
		cr_assert_neq(conn_fd(), -1);
	}
	cr_assert_lt(i, 100000, "the buffer never filled");
	/* Each ack that fits takes 7 of the few bytes left: soon one
	 * cannot fit. */
	for (i = 0; i < 8 && conn_fd() != -1; i++) {
		daemon_resync(UINT32_MAX);
		conn_io(agent_now_ns());
		if (conn_fd() != -1)
			acks++;
	}
	cr_assert_eq(conn_fd(), -1, "the agent kept a link it cannot ack");
	cr_assert_eq(agent_stats.resyncs, acks);
	cr_assert_eq(daemon_read(), 1, "the agent did not hang up");
	cr_assert_eq(fx_wire.nacks, acks);
	/* A new connection renumbers everything anyway. */
	pump_at(agent_now_ns() + 10 * SEC);
	cr_assert_neq(conn_fd(), -1);
	cr_assert_eq(fx_wire.nhellos, 2);
	cr_assert_eq(commit(stack1, thread1, 1), 0);
	pump();
	cr_assert_eq(fx_wire.nstacks, 1);
}

Test(conn, malformed_resync_drops_the_connection)
{
	/* [201, "1"] */
	static const char	bad[] = { 0, 0, 0, 5, (char)0x92, (char)0xcc,
				    (char)0xc9, (char)0xa1, '1' };

	daemon_listen();
	cr_assert_eq(conn_init(1u << 20), 0);
	pump();
	daemon_send(bad, sizeof bad);
	pump();
	cr_assert_eq(conn_fd(), -1);
	cr_assert_eq(agent_stats.resyncs, 0);
}

Test(conn, oversized_input_drops_the_connection)
{
	static const char	big[] = { 0, 0, 0x10, 0 };	/* 4 KiB */

	daemon_listen();
	cr_assert_eq(conn_init(1u << 20), 0);
	pump();
	daemon_send(big, sizeof big);
	pump();
	cr_assert_eq(conn_fd(), -1);
}

Test(conn, daemon_hanging_up_makes_the_agent_back_off_and_reconnect)
{
	uint64_t	now;

	daemon_listen();
	cr_assert_eq(conn_init(1u << 20), 0);
	pump();
	cr_assert_neq(conn_fd(), -1);
	close(sfd);
	sfd = -1;
	now = agent_now_ns();
	conn_io(now);
	cr_assert_eq(conn_fd(), -1);
	conn_io(now + AGENT_BACKOFF_MIN_NS / 2);
	cr_assert_eq(conn_fd(), -1, "reconnected before the backoff");
	pump_at(now + AGENT_BACKOFF_MIN_NS);
	cr_assert_neq(conn_fd(), -1);
	cr_assert_eq(fx_wire.nhellos, 2, "the new stream has its HELLO");
	cr_assert_eq(agent_stats.connects, 2);
}

Test(conn, stats_are_sent_only_while_connected)
{
	cr_assert_eq(conn_init(1u << 20), 0);
	conn_stats();
	cr_assert_eq(conn_want_write(), 1, "only the hello");
	daemon_listen();
	pump_at(agent_now_ns() + 10 * SEC);
	cr_assert_eq(fx_wire.nstats, 0);
	conn_stats();
	pump();
	cr_assert_eq(fx_wire.nstats, 1);
}

Test(conn, fork_child_does_not_count_the_parents_samples_as_dropped)
{
	daemon_listen();
	cr_assert_eq(conn_init(1u << 20), 0);
	cr_assert_eq(commit(stack1, thread1, 5), 0);
	conn_fork_child();
	intern_fork_child();
	conn_restart();
	cr_assert_eq(conn_fd(), -1);
	cr_assert_eq(agent_stats.dropped, 0);
	cr_assert_eq(commit(stack1, thread1, 2), 0);
	pump();
	cr_assert_eq(fx_wire.nhellos, 1);
	cr_assert_eq(fx_wire.nsamples, 2);
}

Test(conn, nothing_is_buffered_before_init)
{
	cr_assert_eq(commit(stack1, thread1, 3), 0);
	cr_assert_eq(conn_want_write(), 0);
	conn_io(agent_now_ns());
	cr_assert_eq(conn_fd(), -1);
}

Test(conn, config_of_a_newer_version_is_applied_and_its_extra_fields_skipped)
{
	struct proto_sink	sk;
	size_t			start;

	daemon_listen();
	cr_assert_eq(conn_init(1u << 20), 0);
	pump();
	/* A CONFIG of a version to come: the version 3 fields, the budget,
	 * then one more. */
	proto_sink_init(&sk, 1u << 16);
	start = proto_begin(&sk, PROTO_CONFIG, 8);
	msgpack_pack_true(&sk.pk);
	msgpack_pack_uint32(&sk.pk, 321);
	msgpack_pack_uint32(&sk.pk, PROTO_MODE_CPU);
	msgpack_pack_uint32(&sk.pk, PROTO_READER_GIL);
	msgpack_pack_uint32(&sk.pk, 0);
	msgpack_pack_uint32(&sk.pk, 4);
	msgpack_pack_uint32(&sk.pk, 150);
	proto_pack_cstr(&sk.pk, "a field of a version to come");
	cr_assert_eq(proto_end(&sk, start), 0);
	/* And a message type of a newer version. */
	start = proto_begin(&sk, (enum proto_type)299, 1);
	msgpack_pack_uint32(&sk.pk, 1);
	cr_assert_eq(proto_end(&sk, start), 0);
	daemon_send(sk.data, sk.len);
	proto_sink_free(&sk);
	pump();
	cr_assert_neq(conn_fd(), -1, "the connection was dropped");
	cr_assert_eq(agent_config.profiling, 1);
	cr_assert_eq(agent_config.rate_hz, 321);
	cr_assert_eq(agent_config.mode, PROTO_MODE_CPU);
	cr_assert_eq(agent_config.max_overhead_bp, 150);
}

Test(conn, a_config_without_a_budget_leaves_the_process_default)
{
	setenv(AGENT_BUDGET_ENV, "0.5", 1);
	budget_env();
	unsetenv(AGENT_BUDGET_ENV);
	cr_assert_eq(agent_config.max_overhead_bp, 50);
	daemon_listen();
	cr_assert_eq(conn_init(1u << 20), 0);
	pump();
	daemon_config(1, 10000, PROTO_MODE_CPU, PROTO_READER_GIL);
	pump();
	cr_assert_eq(agent_config.rate_hz, 10000);
	cr_assert_eq(agent_config.max_overhead_bp, 50);
}

Test(conn, a_reject_keeps_the_agent_away_for_minutes_not_seconds)
{
	struct proto_sink	sk;
	uint64_t		now;

	daemon_listen();
	cr_assert_eq(conn_init(1u << 20), 0);
	pump();
	cr_assert_neq(conn_fd(), -1);
	proto_sink_init(&sk, 1u << 16);
	cr_assert_eq(proto_send_reject(&sk, 5, 6, "profd speaks 5 to 6"), 0);
	daemon_send(sk.data, sk.len);
	proto_sink_free(&sk);
	close(sfd);
	sfd = -1;
	now = agent_now_ns();
	conn_io(now);
	cr_assert_eq(conn_fd(), -1);
	cr_assert_eq(agent_stats.rejects, 1);
	conn_io(now + 2 * AGENT_BACKOFF_MAX_NS);
	cr_assert_eq(conn_fd(), -1, "reconnected within the reject backoff");
	pump_at(now + AGENT_REJECT_BACKOFF_NS);
	cr_assert_neq(conn_fd(), -1, "never came back");
	cr_assert_eq(agent_stats.connects, 2);
}

Test(conn, batches_say_how_many_stacks_were_left_out)
{
	struct intern_sample	s[3];
	uint64_t		now = agent_now_ns();
	uint32_t		i;

	daemon_listen();
	cr_assert_eq(conn_init(1u << 20), 0);
	pump();
	for (i = 0; i < 3; i++)
		s[i] = (struct intern_sample){ stack1, thread1, now + i, 10,
		    0 };
	cr_assert_eq(conn_commit(s, 3, 4, PROTO_MODE_WALL, now), 0);
	/* Only stacks left out: a batch without samples still says so. */
	cr_assert_eq(conn_commit(NULL, 0, 2, PROTO_MODE_WALL, now), 0);
	/* Nothing at all: no batch. */
	cr_assert_eq(conn_commit(NULL, 0, 0, PROTO_MODE_WALL, now), 0);
	pump();
	cr_assert_eq(fx_wire.nbatches, 2);
	cr_assert_eq(fx_wire.nsamples, 3);
	cr_assert_eq(fx_wire.ninvalid, 6);
}

Test(conn, batches_say_the_mode_they_were_taken_in)
{
	struct intern_sample	s[2];
	uint64_t		now = agent_now_ns();

	daemon_listen();
	cr_assert_eq(conn_init(1u << 20), 0);
	pump();
	s[0] = (struct intern_sample){ stack1, thread1, now, 10, 0 };
	s[1] = (struct intern_sample){ stack1, thread1, now + 1, 10, 0 };
	cr_assert_eq(conn_commit(s, 2, 0, PROTO_MODE_CPU, now), 0);
	cr_assert_eq(conn_commit(s, 1, 0, PROTO_MODE_WALL, now), 0);
	cr_assert_eq(conn_commit(s, 1, 0, PROTO_MODE_GIL, now), 0);
	pump();
	cr_assert_eq(fx_wire.nbatches, 3);
	cr_assert_eq(fx_wire.modes[PROTO_MODE_CPU], 1);
	cr_assert_eq(fx_wire.modes[PROTO_MODE_WALL], 1);
	cr_assert_eq(fx_wire.modes[PROTO_MODE_GIL], 1);
	cr_assert_eq(fx_wire.modes[PROTO_MODE_LAST + 1], 0);
}

Test(conn, early_batches_go_out_once_a_config_asks_for_the_same)
{
	conn_early();
	cr_assert_eq(conn_init(1u << 20), 0);
	cr_assert_eq(conn_configured(), 0);
	conn_io(agent_now_ns());		/* nobody listens yet */
	cr_assert_eq(commit(stack1, thread1, 20), 0);
	daemon_listen();
	hello_profiling = 1;
	pump_at(agent_now_ns() + 10 * SEC);
	cr_assert_eq(conn_configured(), 1);
	cr_assert_eq(fx_wire.nsamples, 20);
	cr_assert_eq(agent_stats.discarded, 0);
}

/* What a CONFIG that refuses the published settings asks. */
struct early_case {
	int		profiling;
	uint32_t	mode;
};

ParameterizedTestParameters(conn, early_batches_are_discarded_by_a_config_that_differs)
{
	static struct early_case cases[] = {
		{ 0, PROTO_MODE_WALL },		/* profiling off */
		{ 1, PROTO_MODE_CPU },		/* another mode */
	};

	return (cr_make_param_array(struct early_case, cases,
	    sizeof cases / sizeof cases[0]));
}

ParameterizedTest(struct early_case *c, conn,
    early_batches_are_discarded_by_a_config_that_differs)
{
	conn_early();
	cr_assert_eq(conn_init(1u << 20), 0);
	conn_io(agent_now_ns());
	cr_assert_eq(commit(stack1, thread1, 20), 0);
	cr_assert_eq(commit(stack1, thread1, 10), 0);
	daemon_listen();
	hello_profiling = c->profiling;
	hello_mode = c->mode;
	pump_at(agent_now_ns() + 10 * SEC);
	cr_assert_eq(conn_configured(), 1);
	cr_assert_eq(fx_wire.nsamples, 0, "early samples sent");
	cr_assert_eq(agent_stats.discarded, 30);
	cr_assert_eq(agent_stats.dropped, 0);
	/* What is taken after the CONFIG is not early. */
	cr_assert_eq(commit(stack1, thread1, 5), 0);
	pump();
	cr_assert_eq(fx_wire.nsamples, 5);
	cr_assert_eq(agent_stats.discarded, 30);
}
