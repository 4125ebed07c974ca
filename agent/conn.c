/*
 * conn.c -- the agent's connection to profd: a non-blocking Unix stream
 * socket, a bounded outgoing buffer (a fixed proto_sink), the batches kept
 * until the daemon acknowledges them, and the CONFIG, RESYNC and ACK
 * messages coming back.
 *
 * Nothing lost (see proto.h, "Acknowledged batches"): a committed batch is
 * numbered and kept, in interner indices (not wire ids), until an ACK says
 * the daemon has it durably; it is encoded into the stream when the buffer
 * has room.  A lost connection starts a new epoch (a fresh HELLO, every
 * definition sent again as needed) and encodes every kept batch again, in
 * order, before anything newer; the daemon skips the numbers it already
 * has.  A batch is dropped (counted) only when it does not fit what is
 * kept, or when an interner reset voided its indices before it could be
 * encoded on the connection that needs it.
 *
 * Early batches: an agent that found profd's published settings
 * (sampling.h) samples before any CONFIG came, and keeps those batches
 * like any other; nothing is encoded before a CONFIG names the version
 * anyway.  The first CONFIG of the process then decides: one that asks for
 * profiling in the same mode keeps them (the daemon files a connection's
 * samples under the mode it asked); any other voids them, and the samples
 * not yet committed, counted as discarded.
 *
 * Everything here belongs to the sampler thread, except conn_init/conn_free
 * and conn_early (module.c, sampler not running), conn_configured (atomic)
 * and conn_fork_child (fork child).
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

/* A batch kept until acknowledged: its samples are
 * conn_keep[first .. first + n). */
struct conn_batch {
	uint64_t	seq;		/* the agent's batch number, from 1 */
	uint64_t	base_ns;	/* CLOCK_REALTIME of its first sample */
	uint32_t	first;
	uint32_t	n;
	uint32_t	gen;		/* interner generation of its indices */
	int		sent;		/* encoded on some connection before */
	uint64_t	end;		/* its end in this stream (conn_written) */
	int		dead;		/* voided: counted as dropped */
	int		early;		/* taken before any CONFIG, on the
					   published settings */
	uint32_t	invalid;	/* stacks left out since the previous
					   batch */
	uint32_t	mode;		/* its samples were taken in */
};

/* Sampler thread only (see above). */
static struct ownfd		 conn_sock = OWNFD_NONE;
static struct proto_sink	 conn_out;
static char			*conn_buf;
static struct intern_sample	*conn_keep;	/* ring of kept samples */
static uint32_t			 conn_keep_cap;
static struct conn_batch	 conn_batches[AGENT_KEEP_BATCHES];
static uint32_t			 conn_batch_head, conn_batch_count;
static uint32_t			 conn_batch_out; /* of those, from the head,
						    in this connection's
						    stream */
static uint64_t			 conn_seq;	/* the last batch number */
static uint64_t			 conn_written;	/* bytes of this stream sent */
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
static int			 conn_early_on;	/* batches are early ones */
/* A CONFIG came, to this process or to its parent before the fork; set
 * by the sampler, read by module.c before the sampler starts: atomic. */
static int			 conn_config_seen;

static void	conn_pump(void);

/* Allocates the outgoing buffer. */
int
conn_init(size_t bytes)
{
	if (conn_buf != NULL)
		return (0);
	if ((conn_buf = malloc(bytes)) == NULL)
		return (-1);
	conn_keep_cap = (uint32_t)(bytes / sizeof *conn_keep);
	if ((conn_keep = calloc(conn_keep_cap, sizeof *conn_keep)) == NULL) {
		free(conn_buf);
		conn_buf = NULL;
		return (-1);
	}
	conn_batch_head = conn_batch_count = conn_batch_out = 0;
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
	free(conn_keep);
	conn_keep = NULL;
	conn_keep_cap = 0;
	conn_batch_head = conn_batch_count = conn_batch_out = 0;
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

/* Forgets buffered output; kept batches will be encoded again. */
static void
conn_clear(void)
{
	conn_out.len = 0;
	conn_out.full = 0;
	conn_batch_out = 0;
	conn_written = 0;
}

/* Starts a new epoch: empty buffer, then this process's hello, then the
 * kept batches. */
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
	conn_pump();
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

/* Marks n bytes as sent.  A daemon older than version 4 acknowledges
 * nothing: a batch is let go once it is written. */
static void
conn_sent(size_t n)
{
	struct conn_batch	*b;

	proto_sink_consume(&conn_out, n);
	conn_written += n;
	AGENT_STAT_ADD(bytes_sent, n);
	while (conn_version != 0 && conn_version < PROTO_VERSION_BATCH &&
	    conn_batch_count > 0 && conn_batch_out > 0) {
		b = &conn_batches[conn_batch_head];
		if (!b->dead && b->end > conn_written)
			break;
		conn_batch_head = (conn_batch_head + 1) % AGENT_KEEP_BATCHES;
		conn_batch_count--;
		conn_batch_out--;
	}
}

/* ACK: batches up to seq are durable in the daemon; forget them. */
static void
conn_ack(uint64_t seq)
{
	struct conn_batch	*b;

	while (conn_batch_count > 0) {
		b = &conn_batches[conn_batch_head];
		if (b->seq > seq)
			break;
		conn_batch_head = (conn_batch_head + 1) % AGENT_KEEP_BATCHES;
		conn_batch_count--;
		if (conn_batch_out > 0)
			conn_batch_out--;
	}
}

/* Samples from now until the first CONFIG are early ones. */
void
conn_early(void)
{
	conn_early_on = 1;
}

/* Whether a CONFIG came. */
int
conn_configured(void)
{
	return (AGENT_LOAD(conn_config_seen));
}

/* Whether the exit flush should wait for a CONFIG: connected, and batches
 * wait for the version it names. */
int
conn_want_config(void)
{
	return (conn_sock.fd != -1 && conn_version == 0 &&
	    conn_batch_out < conn_batch_count);
}

/*
 * Voids the early batches and the samples not yet committed: the first
 * CONFIG asked for something else than the settings they were taken on.
 * None of them was encoded: nothing is before a CONFIG.
 */
static void
conn_early_discard(void)
{
	struct conn_batch	*b;
	uint64_t		 n = 0;
	uint32_t		 i;

	for (i = 0; i < conn_batch_count; i++) {
		b = &conn_batches[(conn_batch_head + i) % AGENT_KEEP_BATCHES];
		if (!b->early || b->dead)
			continue;
		b->dead = 1;
		n += b->n;
	}
	AGENT_STAT_ADD(discarded, n);
	sampler_discard();
	agent_log("profd's CONFIG differs from its published settings: %llu "
	    "samples taken on those discarded", (unsigned long long)n);
}

/* Applies a CONFIG from the daemon. */
static void
conn_config(const struct proto_msg *msg)
{
	uint32_t	rate, version;

	if (conn_early_on) {
		conn_early_on = 0;
		if (!msg->config.profiling ||
		    msg->config.mode != AGENT_LOAD(agent_config.mode))
			conn_early_discard();
	}
	AGENT_STORE(conn_config_seen, 1);
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
	budget_set(msg->config.max_overhead_bp);
	AGENT_STORE(agent_config.profiling, msg->config.profiling ? 1 : 0);
	conn_backoff = AGENT_BACKOFF_MIN_NS;
	/* A daemon of version 2 or older does not say: it is then the
	 * version of our hello's "version". */
	version = msg->config.version ? msg->config.version :
	    PROTO_VERSION_COMPAT;
	if (version != conn_version)
		agent_log("protocol version %u in use", version);
	if (conn_version == 0 && version != 0) {
		conn_version = version;
		/* The kept batches can go out now. */
		if (!conn_renewing)
			conn_pump();
	}
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
	conn_pump();
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
	case PROTO_ACK:
		conn_ack(msg.ack.seq);
		break;
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
 * nothing to read and no error: the next conn_io does not read (a recv()
 * that finds nothing is a system call for nothing), and with nothing to
 * send either it makes no system call at all (not even the identity
 * check).  Used once; without a fresh poll, conn_io does everything.
 */
void
conn_poll_quiet(int quiet)
{
	conn_quiet = quiet;
}

/* Connects when due, sends what the socket takes (encoding kept batches
 * as room frees), reads CONFIG, RESYNC and ACK. */
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
			if (!conn_renewing)
				conn_pump();
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
	if ((quiet || conn_read(now) == 0) && conn_renewing &&
	    conn_out.len == 0)
		conn_renew(now);
}

/* Encodes one kept batch with the definitions it needs, all or nothing;
 * -1 if it does not fit the buffer now. */
static int
conn_encode(struct conn_batch *b)
{
	const struct intern_sample	*s = conn_keep + b->first;
	size_t				 start, before;
	uint64_t			 prev_us, t_us;
	uint32_t			 i;
	int				 rc;

	start = conn_out.len;
	intern_txn_begin();
	prev_us = 0;
	for (i = 0; i < b->n; i++) {
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
	if (conn_version >= PROTO_VERSION_MODE)
		rc = proto_send_batch_v6(&conn_out, b->seq, b->base_ns,
		    conn_wire, b->n, b->invalid, b->mode);
	else if (conn_version >= PROTO_VERSION_INVALID)
		rc = proto_send_batch_v5(&conn_out, b->seq, b->base_ns,
		    conn_wire, b->n, b->invalid);
	else if (conn_version >= PROTO_VERSION_BATCH)
		rc = proto_send_batch(&conn_out, b->seq, b->base_ns, conn_wire,
		    b->n);
	else
		rc = proto_send_samples(&conn_out, b->base_ns, conn_wire,
		    b->n);
	if (rc != 0)
		goto fail;
	intern_txn_commit();
	AGENT_STAT_ADD(sample_bytes, conn_out.len - before);
	if (b->sent)
		AGENT_STAT_ADD(replayed, b->n);
	b->sent = 1;
	b->end = conn_written + conn_out.len;
	return (0);
fail:
	conn_out.len = start;
	conn_out.full = 0;
	intern_txn_abort();
	return (-1);
}

/*
 * Encodes the kept batches this connection has not had yet, in order,
 * while they fit.  Wire ids near their limit: with a connection, let the
 * buffer drain, then renew it; without, start the epoch over.
 */
static void
conn_pump(void)
{
	struct conn_batch	*b;

	/* Nothing is encoded before CONFIG says which version is in use:
	 * BATCH needs version 4. */
	if (conn_buf == NULL || conn_version == 0)
		return;
	while (conn_batch_out < conn_batch_count) {
		b = &conn_batches[(conn_batch_head + conn_batch_out) %
		    AGENT_KEEP_BATCHES];
		if (!b->dead && b->gen != intern_generation()) {
			/* Its indices went with an interner reset. */
			b->dead = 1;
			AGENT_STAT_ADD(dropped, b->n);
		}
		if (b->dead) {
			conn_batch_out++;
			continue;
		}
		if (intern_wire_exhausted()) {
			if (conn_sock.fd == -1)
				conn_restart();	/* pumps again */
			else if (conn_out.len == 0)
				conn_renew(agent_now_ns());
			else
				conn_renewing = 1;
			return;
		}
		if (conn_encode(b) != 0)
			return;
		conn_batch_out++;
	}
}

/* Finds room for n kept samples: their first index, or -1.  The ring's
 * used part runs from the head batch's first sample to the end of the
 * newest batch, wrapping to 0 once. */
static int64_t
conn_keep_alloc(uint32_t n)
{
	const struct conn_batch	*head, *last;
	uint32_t		 tail;

	if (conn_batch_count == 0)
		return (n <= conn_keep_cap ? 0 : -1);
	head = &conn_batches[conn_batch_head];
	last = &conn_batches[(conn_batch_head + conn_batch_count - 1) %
	    AGENT_KEEP_BATCHES];
	tail = last->first + last->n;
	if (last->first >= head->first) {	/* not wrapped */
		if ((uint64_t)tail + n <= conn_keep_cap)
			return (tail);
		return (n <= head->first ? 0 : (int64_t)-1);
	}
	return ((uint64_t)tail + n <= head->first ? (int64_t)tail : -1);
}

/* Keeps one batch until acknowledged and encodes it when there is room. */
int
conn_commit(const struct intern_sample *s, uint32_t n, uint32_t invalid,
    uint32_t mode, uint64_t now)
{
	struct conn_batch	*b;
	int64_t			 at;

	if ((n == 0 && invalid == 0) || conn_buf == NULL)
		return (0);
	if (conn_batch_count == AGENT_KEEP_BATCHES ||
	    (at = conn_keep_alloc(n)) < 0) {
		AGENT_STAT_ADD(dropped, n);
		return (-1);
	}
	if (n > 0)
		memcpy(conn_keep + at, s, (size_t)n * sizeof *s);
	b = &conn_batches[(conn_batch_head + conn_batch_count) %
	    AGENT_KEEP_BATCHES];
	memset(b, 0, sizeof *b);
	b->seq = ++conn_seq;
	b->base_ns = agent_realtime_ns() - (agent_now_ns() -
	    (n > 0 ? s[0].t_ns : now));
	b->first = (uint32_t)at;
	b->n = n;
	b->gen = intern_generation();
	b->early = conn_early_on;
	b->invalid = invalid;
	b->mode = mode;
	conn_batch_count++;
	if (!conn_renewing)
		conn_pump();
	return (0);
}

/*
 * Counts as dropped, and forgets, every kept batch not wholly written to
 * the socket: at exit or detach nothing will send it.  What was written
 * but not yet acknowledged stays (profd skips it if it comes again after
 * a new attach).  The caller sends nothing more but counters, and only
 * when the buffer is empty; then it hangs up.
 */
void
conn_abandon(void)
{
	struct conn_batch	*b;
	uint32_t		 i;

	for (i = 0; i < conn_batch_count; i++) {
		b = &conn_batches[(conn_batch_head + i) % AGENT_KEEP_BATCHES];
		if (b->dead || (i < conn_batch_out && b->end <= conn_written))
			continue;
		b->dead = 1;
		AGENT_STAT_ADD(dropped, b->n);
	}
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
	/* The parent's kept batches are the parent's: not dropped by us,
	 * and this process numbers its own from 1. */
	conn_batch_head = conn_batch_count = conn_batch_out = 0;
	conn_seq = 0;
	conn_out.len = 0;
	conn_out.full = 0;
}
