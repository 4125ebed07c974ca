/*
 * conn.c -- the agent's connection to profd: a non-blocking Unix stream
 * socket, a bounded outgoing buffer (a fixed proto_sink) and the CONFIG
 * and RESYNC messages coming back.
 *
 * The buffer always holds the stream for the current (or next) connection,
 * starting with its HELLO, so while the daemon is away samples keep being
 * buffered up to the bound, then dropped (counted).  A lost connection
 * drops what is buffered (counted) and starts a new epoch: a fresh HELLO,
 * and every definition sent again as needed.
 *
 * Everything here belongs to the sampler thread, except conn_init/conn_free
 * (module.c, sampler not running) and conn_fork_child (fork child).
 */

#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"

/* A committed batch: its end in the stream, and its samples, so samples
 * still buffered are known (and counted as dropped if the link is lost). */
struct conn_mark {
	uint64_t	end;
	uint32_t	n;
};
#define CONN_MARKS	1024

/* Sampler thread only (see above). */
static struct ownfd		 conn_sock = OWNFD_NONE;
static struct proto_sink	 conn_out;
static char			*conn_buf;
static uint64_t			 conn_base;	/* stream offset of out[0] */
static struct conn_mark		 conn_marks[CONN_MARKS];
static uint32_t			 conn_mark_head, conn_mark_count;
static uint64_t			 conn_buffered;	/* samples in conn_out */
static char			 conn_in[AGENT_INBUF];
static size_t			 conn_in_len;
static uint64_t			 conn_next_try;
static uint64_t			 conn_backoff = AGENT_BACKOFF_MIN_NS;
static int			 conn_renewing;	/* wire ids ran out */
static int			 conn_rejected;	/* REJECT read: stay away */
static int			 conn_reject_said; /* its line printed */
static uint32_t			 conn_version;	/* in use, from CONFIG */
static struct proto_sample	 conn_wire[AGENT_PENDING_MAX];
static int			 conn_quiet;	/* see conn_poll_quiet */

/* Allocates the outgoing buffer. */
int
conn_init(size_t bytes)
{
	if (conn_buf != NULL)
		return (0);
	if ((conn_buf = malloc(bytes)) == NULL)
		return (-1);
	proto_sink_init_fixed(&conn_out, conn_buf, bytes);
	conn_restart();
	return (0);
}

/* Frees the buffer and closes the socket. */
void
conn_free(void)
{
	ownfd_close(&conn_sock);
	AGENT_STORE(agent_connected, 0);
	free(conn_buf);
	conn_buf = NULL;
	memset(&conn_out, 0, sizeof conn_out);
}

/* The socket, or -1. */
int
conn_fd(void)
{
	return (conn_sock.fd);
}

/* Whether bytes wait to be sent. */
int
conn_want_write(void)
{
	return (conn_out.len > 0);
}

/* Forgets buffered output, counting its samples as dropped. */
static void
conn_clear(void)
{
	if (conn_buffered > 0)
		AGENT_STAT_ADD(dropped, conn_buffered);
	conn_buffered = 0;
	conn_mark_head = conn_mark_count = 0;
	conn_base += conn_out.len;
	conn_out.len = 0;
	conn_out.full = 0;
}

/* Starts a new epoch: empty buffer, then this process's hello. */
void
conn_restart(void)
{
	struct proto_hello	 h;
	uint32_t		 argc;

	if (conn_buf == NULL)
		return;
	conn_clear();
	intern_new_epoch();
	memset(&h, 0, sizeof h);
	h.version = PROTO_VERSION;
	h.pid = (uint64_t)getpid();
	h.ppid = (uint64_t)getppid();
	h.start_ns = agent_ident.start_ns;
	h.host = agent_ident.host;
	h.host_len = (uint32_t)strlen(agent_ident.host);
	h.service = agent_ident.service;
	h.service_len = (uint32_t)strlen(agent_ident.service);
	h.python = agent_ident.python;
	h.python_len = (uint32_t)strlen(agent_ident.python);
	h.reader = proto_reader_name(AGENT_LOAD(agent_reader_active));
	if (h.reader == NULL)
		h.reader = "default";
	h.reader_len = (uint32_t)strlen(h.reader);
	/*
	 * The hello must open every stream.  A huge argv may not fit a small
	 * buffer: send fewer arguments until it does (with none it is a few
	 * hundred bytes, far below AGENT_BUFFER_MIN).
	 */
	for (argc = agent_ident.argc;; argc /= 2) {
		if (proto_send_hello(&conn_out, &h,
		    (const char *const *)agent_ident.argv, argc) == 0)
			break;
		if (argc == 0) {
			agent_log("hello does not fit the buffer");
			break;
		}
		agent_log("hello: argv cut to %u entries to fit", argc / 2);
	}
}

/* Closes the socket, if any, and starts a new epoch (hello first). */
static void
conn_close(void)
{
	if (conn_sock.fd != -1) {
		ownfd_close(&conn_sock);
		AGENT_STORE(agent_connected, 0);
	}
	conn_in_len = 0;
	conn_renewing = 0;
	conn_version = 0;
	conn_restart();
}

/* Schedules the next connection attempt and doubles the backoff; after a
 * REJECT, waits AGENT_REJECT_BACKOFF_NS instead (a new daemon may come). */
static void
conn_back_off(uint64_t now)
{
	if (conn_rejected) {
		conn_rejected = 0;
		conn_next_try = now + AGENT_REJECT_BACKOFF_NS;
		return;
	}
	conn_next_try = now + conn_backoff;
	conn_backoff *= 2;
	if (conn_backoff > AGENT_BACKOFF_MAX_NS)
		conn_backoff = AGENT_BACKOFF_MAX_NS;
}

/* Closes the connection and starts over with a new epoch. */
void
conn_drop(uint64_t now, const char *why)
{
	if (conn_sock.fd != -1)
		agent_log("connection to %s lost: %s", agent_ident.sock_path,
		    why);
	conn_close();
	conn_back_off(now);
}

/* Hangs up cleanly once everything buffered is sent, and reconnects at
 * once: a new connection numbers its ids from 1 again. */
static void
conn_renew(uint64_t now)
{
	agent_log("renewing the connection: ids of this one ran out");
	conn_close();
	conn_next_try = now;
}

/* Tries to connect once. */
static void
conn_connect(uint64_t now)
{
	struct sockaddr_un	 sun;
	int			 fd, err;

	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof sun.sun_path, "%s",
	    agent_ident.sock_path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		goto fail;
	if (connect(fd, (struct sockaddr *)&sun, sizeof sun) != 0 &&
	    errno != EINPROGRESS)
		goto fail;
	if (ownfd_set(&conn_sock, fd) != 0)
		goto fail;
	conn_in_len = 0;
	AGENT_STORE(agent_connected, 1);
	AGENT_STAT_ADD(connects, 1);
	agent_log("connected to %s", agent_ident.sock_path);
	agent_announce(0);
	return;
fail:
	err = errno;
	if (fd != -1)
		close(fd);
	agent_announce(err);
	conn_back_off(now);
}

/* Marks n bytes as sent: batches wholly out no longer count as buffered. */
static void
conn_sent(size_t n)
{
	struct conn_mark	*m;

	proto_sink_consume(&conn_out, n);
	conn_base += n;
	AGENT_STAT_ADD(bytes_sent, n);
	while (conn_mark_count > 0) {
		m = &conn_marks[conn_mark_head];
		if (m->end > conn_base)
			break;
		conn_buffered -= m->n;
		conn_mark_head = (conn_mark_head + 1) % CONN_MARKS;
		conn_mark_count--;
	}
}

/* Applies a CONFIG from the daemon. */
static void
conn_config(const struct proto_msg *msg)
{
	uint32_t	rate, version;

	rate = msg->config.rate_hz;
	if (rate < PROTO_RATE_MIN)
		rate = PROTO_RATE_MIN;
	if (rate > PROTO_RATE_MAX)
		rate = PROTO_RATE_MAX;
	if (msg->config.mode <= PROTO_MODE_LAST)
		AGENT_STORE(agent_config.mode, msg->config.mode);
	if (msg->config.reader <= PROTO_READER_LAST)
		AGENT_STORE(agent_config.reader, msg->config.reader);
	AGENT_STORE(agent_config.rate_hz, rate);
	AGENT_STORE(agent_config.jitter_pct, msg->config.jitter_pct);
	AGENT_STORE(agent_config.profiling, msg->config.profiling ? 1 : 0);
	conn_backoff = AGENT_BACKOFF_MIN_NS;
	/* A daemon of version 2 or older does not say: it is then the
	 * version of our hello's "version". */
	version = msg->config.version ? msg->config.version :
	    PROTO_VERSION_COMPAT;
	if (version != conn_version)
		agent_log("protocol version %u in use", version);
	conn_version = version;
}

/*
 * REJECT: the daemon speaks no version we do.  One line for the operator
 * (once per process: the daemon will say the same each time), a counter,
 * and no new attempt for AGENT_REJECT_BACKOFF_NS.
 */
static void
conn_reject(const struct proto_msg *msg)
{
	AGENT_STAT_ADD(rejects, 1);
	conn_rejected = 1;
	if (conn_reject_said)
		return;
	conn_reject_said = 1;
	agent_warn("profd at %s refused this agent: %.*s (profd speaks "
	    "protocol versions %u to %u, this agent %d to %d); next try in "
	    "%llu s", agent_ident.sock_path, (int)msg->reject.reason_len,
	    msg->reject.reason, msg->reject.min, msg->reject.max,
	    PROTO_VERSION_MIN, PROTO_VERSION,
	    (unsigned long long)(AGENT_REJECT_BACKOFF_NS / 1000000000ull));
}

/*
 * RESYNC: the daemon forgets this connection's wire ids at our ack.  What
 * refers to the old ids is all in conn_out already, ahead of the ack:
 * batches are committed whole (no interner transaction is open while
 * conn_io runs, both on the sampler thread) and the sampler's pending
 * samples hold intern indices, which get wire ids only when committed,
 * after the ack.  Past the ack, ids start again from 1, as on a new
 * connection.  -1 if the ack does not fit: the caller must hang up, so
 * that the daemon never maps a new id to an old definition.
 */
static int
conn_resync(uint32_t token)
{
	if (proto_send_resync_ack(&conn_out, token) != 0)
		return (-1);
	intern_new_epoch();
	conn_renewing = 0;
	AGENT_STAT_ADD(resyncs, 1);
	agent_log("wire ids renumbered at the daemon's request");
	return (0);
}

/* Applies one message from the daemon; -1 with *why if the link must go.
 * Messages of other types are skipped with a log line. */
static int
conn_handle(const char *payload, size_t len, const char **why)
{
	msgpack_unpacked	 up;
	struct proto_msg	 msg;
	const char		*err = NULL;
	uint64_t		 type;
	int			 rc = -1;

	msgpack_unpacked_init(&up);
	if (proto_decode(payload, len, &up, &msg, &err) != 0) {
		/* A newer daemon's message of a type unknown here. */
		if (proto_skippable(&up, 1, &type)) {
			agent_log("ignoring message %llu from the daemon",
			    (unsigned long long)type);
			rc = 0;
			goto out;
		}
		agent_log("bad message from the daemon: %s", err ? err : "?");
		*why = "malformed input";
		goto out;
	}
	switch (msg.type) {
	case PROTO_CONFIG:
		conn_config(&msg);
		break;
	case PROTO_RESYNC:
		if (conn_resync(msg.resync.token) != 0) {
			*why = "no room for a resync ack";
			goto out;
		}
		break;
	case PROTO_REJECT:
		conn_reject(&msg);
		*why = "refused: no protocol version in common";
		goto out;
	default:
		agent_log("ignoring message %d from the daemon", msg.type);
		break;
	}
	rc = 0;
out:
	msgpack_unpacked_destroy(&up);
	return (rc);
}

/* Reads and applies what the daemon sent; -1 if the link must go. */
static int
conn_read(uint64_t now)
{
	const char	*payload, *why = NULL;
	size_t		 plen, flen;
	ssize_t		 n;
	int		 rc;

	for (;;) {
		n = recv(conn_sock.fd, conn_in + conn_in_len,
		    sizeof conn_in - conn_in_len, MSG_DONTWAIT);
		if (n == 0) {
			conn_drop(now, "closed by the daemon");
			return (-1);
		}
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK ||
			    errno == EINTR)
				return (0);
			conn_drop(now, strerror(errno));
			return (-1);
		}
		conn_in_len += (size_t)n;
		while ((rc = proto_frame_peek(conn_in, conn_in_len,
		    sizeof conn_in - PROTO_HEADER_SIZE, &payload, &plen,
		    &flen)) == 1) {
			if (conn_handle(payload, plen, &why) != 0) {
				conn_drop(now, why);
				return (-1);
			}
			memmove(conn_in, conn_in + flen, conn_in_len - flen);
			conn_in_len -= flen;
		}
		if (rc < 0) {
			conn_drop(now, "oversized message");
			return (-1);
		}
	}
}

/*
 * Tells conn_io that the sampler's last poll() found the socket with
 * nothing to read and no error: with nothing to send either, the next
 * conn_io makes no system call at all (not even the identity check).
 * Used once; without a fresh poll, conn_io does everything.
 */
void
conn_poll_quiet(int quiet)
{
	conn_quiet = quiet;
}

/* Connects when due, sends what the socket takes, reads CONFIG and
 * RESYNC. */
void
conn_io(uint64_t now)
{
	ssize_t	n;
	int	quiet = conn_quiet;

	conn_quiet = 0;
	if (conn_buf == NULL)
		return;
	if (quiet && conn_sock.fd != -1 && conn_out.len == 0)
		return;
	/* The host may have closed our socket and reused the number: never
	 * send, receive or close through it then; reconnect at once. */
	if (conn_sock.fd != -1 && ownfd_get(&conn_sock) == -1) {
		agent_log("connection to %s lost: descriptor taken",
		    agent_ident.sock_path);
		conn_close();
		conn_next_try = now;
	}
	if (conn_sock.fd == -1) {
		if (now < conn_next_try)
			return;
		conn_connect(now);
		if (conn_sock.fd == -1)
			return;
	}
	while (conn_out.len > 0) {
		n = send(conn_sock.fd, conn_out.data, conn_out.len,
		    MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n > 0) {
			conn_sent((size_t)n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK ||
		    errno == ENOTCONN))
			break;
		conn_drop(now, n < 0 ? strerror(errno) : "send failed");
		return;
	}
	if (conn_read(now) == 0 && conn_renewing && conn_out.len == 0)
		conn_renew(now);
}

/* Commits one batch with the definitions it needs, all or nothing. */
int
conn_commit(const struct intern_sample *s, uint32_t n)
{
	struct conn_mark	*m;
	size_t			 start, before;
	uint64_t		 base_ns, prev_us, t_us;
	uint32_t		 i;

	if (n == 0 || conn_buf == NULL)
		return (0);
	if (intern_wire_exhausted()) {
		/* Connected: let the buffer drain first (batches meanwhile are
		 * dropped), then renew.  Not connected: start over now. */
		if (conn_sock.fd == -1)
			conn_restart();
		else if (conn_out.len == 0)
			conn_renew(agent_now_ns());
		else {
			conn_renewing = 1;
			AGENT_STAT_ADD(dropped, n);
			return (-1);
		}
	}
	base_ns = agent_realtime_ns() - (agent_now_ns() - s[0].t_ns);
	start = conn_out.len;
	intern_txn_begin();
	prev_us = 0;
	for (i = 0; i < n; i++) {
		if (intern_emit(&conn_out, &s[i], &conn_wire[i]) != 0)
			goto fail;
		/* dt_us: microseconds since the previous sample of the batch
		 * (the first: since base_ns), from rounded cumulative times. */
		t_us = s[i].t_ns > s[0].t_ns ? (s[i].t_ns - s[0].t_ns) / 1000 :
		    0;
		if (t_us < prev_us)
			t_us = prev_us;
		conn_wire[i].dt_us = (uint32_t)(t_us - prev_us);
		prev_us = t_us;
	}
	before = conn_out.len;
	if (proto_send_samples(&conn_out, base_ns, conn_wire, n) != 0)
		goto fail;
	intern_txn_commit();
	AGENT_STAT_ADD(sample_bytes, conn_out.len - before);
	conn_buffered += n;
	if (conn_mark_count == CONN_MARKS) {
		m = &conn_marks[(conn_mark_head + conn_mark_count - 1) %
		    CONN_MARKS];
		m->end = conn_base + conn_out.len;
		m->n += n;
	} else {
		m = &conn_marks[(conn_mark_head + conn_mark_count) %
		    CONN_MARKS];
		m->end = conn_base + conn_out.len;
		m->n = n;
		conn_mark_count++;
	}
	return (0);
fail:
	conn_out.len = start;
	conn_out.full = 0;
	intern_txn_abort();
	AGENT_STAT_ADD(dropped, n);
	return (-1);
}

/* Appends this agent's counters, when connected. */
void
conn_stats(void)
{
#define CONN_STAT_ONE(name, desc) + 1
	uint64_t	v[0 PROTO_AGENT_STATS(CONN_STAT_ONE)];
#undef CONN_STAT_ONE
	size_t		i = 0;

	if (conn_sock.fd == -1 || conn_buf == NULL)
		return;
	AGENT_STORE(agent_stats.reader, AGENT_LOAD(agent_reader_active));
#define CONN_STAT_VALUE(name, desc) v[i++] = AGENT_LOAD(agent_stats.name);
	PROTO_AGENT_STATS(CONN_STAT_VALUE)
#undef CONN_STAT_VALUE
	(void)proto_send_stats(&conn_out, v);
}

/* In a fork child: the parent's socket is not ours to use. */
void
conn_fork_child(void)
{
	ownfd_close(&conn_sock);
	AGENT_STORE(agent_connected, 0);
	conn_in_len = 0;
	conn_renewing = 0;
	conn_next_try = 0;
	conn_backoff = AGENT_BACKOFF_MIN_NS;
	/* The parent's buffered samples are the parent's: not dropped by us. */
	conn_buffered = 0;
	conn_mark_head = conn_mark_count = 0;
	conn_out.len = 0;
	conn_out.full = 0;
}
