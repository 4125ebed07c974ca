/* client.c -- one request/reply exchange with profd over control.sock. */

#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "proto.h"
#include "rundir.h"

#define CLIENT_READ_CHUNK	65536	/* bytes asked of each read() */

/* Milliseconds on the monotonic clock. */
static long long
client_now_ms(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

/* Resolves the runtime dir and its control socket; prints why not. */
int
client_init(struct client *c, const char *rundir)
{
	char	err[512];

	memset(c, 0, sizeof *c);
	c->timeout_ms = CLIENT_TIMEOUT_MS;
	proto_sink_init(&c->sink, PROTO_MAX_MSG);
	msgpack_unpacked_init(&c->up);
	if (rundir_resolve_client(rundir, RUNDIR_CONTROL_SOCK, c->dir,
	    sizeof c->dir) != 0) {
		fprintf(stderr, "profctl: runtime dir path is too long\n");
		return (-1);
	}
	if (rundir_socket(c->dir, RUNDIR_CONTROL_SOCK, c->path,
	    sizeof c->path) != 0) {
		fprintf(stderr, "profctl: %s/%s is too long for a socket path; "
		    "use a shorter runtime dir with -r DIR\n", c->dir,
		    RUNDIR_CONTROL_SOCK);
		return (-1);
	}
	/* A directory others can write to may hold anyone's socket. */
	if (rundir_check(c->dir, 0, err, sizeof err) != 0 && errno == EPERM) {
		fprintf(stderr, "profctl: refusing to talk to %s: %s\n",
		    c->path, err);
		return (-1);
	}
	return (0);
}

/* Frees what client_init and client_call allocated. */
void
client_free(struct client *c)
{
	proto_sink_free(&c->sink);
	msgpack_unpacked_destroy(&c->up);
	free(c->buf);
	c->buf = NULL;
}

/* Starts the request; the caller packs `nargs` key/value pairs next. */
msgpack_packer *
client_begin(struct client *c, const char *command, size_t nargs)
{
	c->start = proto_begin_request(&c->sink, command, nargs);
	return (&c->sink.pk);
}

/* Prints why profd could not be reached, and what to do. */
static void
client_connect_error(const struct client *c, int error)
{
	if (error == ENOENT || error == ECONNREFUSED || error == ENOTDIR) {
		fprintf(stderr, "profctl: no profd at %s (connect: %s); start "
		    "one with 'profd -r %s' or 'systemctl start profd.socket', "
		    "or point profctl at it with -r DIR or %s\n", c->path,
		    strerror(error), c->dir, RUNDIR_ENV);
	} else if (error == EACCES || error == EPERM) {
		fprintf(stderr, "profctl: cannot connect to profd at %s "
		    "(connect: %s); run profctl as a user allowed to use "
		    "that socket, or start your own profd with 'profd -r DIR' "
		    "and use -r DIR\n", c->path, strerror(error));
	} else {
		fprintf(stderr, "profctl: cannot connect to profd at %s "
		    "(connect: %s)\n", c->path, strerror(error));
	}
}

/* Waits for `events` on fd until the deadline; 0, or -1 on timeout. */
static int
client_wait(const struct client *c, int fd, short events, long long deadline)
{
	struct pollfd	pfd;
	long long	left;
	int		n;

	for (;;) {
		left = deadline - client_now_ms();
		if (left <= 0)
			break;
		pfd.fd = fd;
		pfd.events = events;
		pfd.revents = 0;
		n = poll(&pfd, 1, left > 1000000 ? 1000000 : (int)left);
		if (n > 0)
			return (0);
		if (n < 0 && errno != EINTR) {
			fprintf(stderr, "profctl: poll: %s\n", strerror(errno));
			return (-1);
		}
	}
	fprintf(stderr, "profctl: no reply from profd at %s within %d s; is "
	    "it stuck? (check its log)\n", c->path, c->timeout_ms / 1000);
	return (-1);
}

/* Connects to control.sock; the fd, or -1 (printed). */
static int
client_connect(const struct client *c)
{
	struct sockaddr_un	sun;
	size_t			len = strlen(c->path);
	int			fd, error;

	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	if (len >= sizeof sun.sun_path) {	/* rundir_socket checked */
		fprintf(stderr, "profctl: %s: path too long\n", c->path);
		return (-1);
	}
	memcpy(sun.sun_path, c->path, len);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		fprintf(stderr, "profctl: socket: %s\n", strerror(errno));
		return (-1);
	}
	if (connect(fd, (struct sockaddr *)&sun, sizeof sun) != 0) {
		error = errno;
		client_connect_error(c, error);
		close(fd);
		return (-1);
	}
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == -1) {
		fprintf(stderr, "profctl: fcntl: %s\n", strerror(errno));
		close(fd);
		return (-1);
	}
	return (fd);
}

/* Writes the whole request. */
static int
client_write(struct client *c, int fd, long long deadline)
{
	size_t	off = 0;
	ssize_t	n;

	while (off < c->sink.len) {
		n = send(fd, c->sink.data + off, c->sink.len - off,
		    MSG_NOSIGNAL);
		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (client_wait(c, fd, POLLOUT, deadline) != 0)
				return (-1);
			continue;
		}
		fprintf(stderr, "profctl: sending to profd at %s: %s\n",
		    c->path, strerror(errno));
		return (-1);
	}
	return (0);
}

/* Reads until one whole frame is in c->buf; sets its payload. */
static int
client_read(struct client *c, int fd, long long deadline,
    const char **payload, size_t *payload_len)
{
	size_t	frame_len, want;
	ssize_t	n;
	char   *p;
	int	r;

	for (;;) {
		r = proto_frame_peek(c->buf, c->len, PROTO_MAX_REPLY, payload,
		    payload_len, &frame_len);
		if (r == 1)
			return (0);
		if (r == -1) {
			fprintf(stderr, "profctl: reply from profd is larger "
			    "than %u MiB; narrow it (e.g. show --top N)\n",
			    PROTO_MAX_REPLY >> 20);
			return (-1);
		}
		if (c->cap - c->len < CLIENT_READ_CHUNK) {
			want = c->cap == 0 ? CLIENT_READ_CHUNK : c->cap * 2;
			if ((p = realloc(c->buf, want)) == NULL) {
				fprintf(stderr, "profctl: out of memory\n");
				return (-1);
			}
			c->buf = p;
			c->cap = want;
		}
		n = read(fd, c->buf + c->len, c->cap - c->len);
		if (n > 0) {
			c->len += (size_t)n;
			continue;
		}
		if (n == 0) {
			fprintf(stderr, "profctl: profd at %s closed the "
			    "connection without a reply (check its log)\n",
			    c->path);
			return (-1);
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			if (client_wait(c, fd, POLLIN, deadline) != 0)
				return (-1);
			continue;
		}
		fprintf(stderr, "profctl: reading from profd at %s: %s\n",
		    c->path, strerror(errno));
		return (-1);
	}
}

/*
 * Sends the request begun by client_begin and waits for the reply.  Returns
 * 0 with *body set to the reply, a map (valid until client_free), or -1 after
 * printing why: unreachable, timed out, malformed, or profd's error text.
 */
int
client_call(struct client *c, const msgpack_object **body)
{
	struct proto_msg	 msg;
	const char		*payload, *err;
	size_t			 payload_len;
	long long		 deadline;
	int			 fd = -1;

	if (proto_end(&c->sink, c->start) != 0) {
		fprintf(stderr, "profctl: request is larger than %u bytes\n",
		    PROTO_MAX_MSG);
		goto fail;
	}
	deadline = client_now_ms() + c->timeout_ms;
	if ((fd = client_connect(c)) == -1)
		goto fail;
	if (client_write(c, fd, deadline) != 0)
		goto fail;
	if (client_read(c, fd, deadline, &payload, &payload_len) != 0)
		goto fail;
	close(fd);
	fd = -1;

	if (proto_decode(payload, payload_len, &c->up, &msg, &err) != 0) {
		fprintf(stderr, "profctl: bad reply from profd: %s\n", err);
		goto fail;
	}
	if (msg.type != PROTO_REPLY) {
		fprintf(stderr, "profctl: bad reply from profd: message type "
		    "%d, not a reply\n", (int)msg.type);
		goto fail;
	}
	if (!msg.reply.ok) {
		if (msg.reply.body->type == MSGPACK_OBJECT_STR)
			fprintf(stderr, "profctl: %.*s\n",
			    (int)msg.reply.body->via.str.size,
			    msg.reply.body->via.str.ptr);
		else
			fprintf(stderr, "profctl: profd refused the request\n");
		goto fail;
	}
	if (msg.reply.body->type != MSGPACK_OBJECT_MAP) {
		fprintf(stderr, "profctl: bad reply from profd: body is not a "
		    "map\n");
		goto fail;
	}
	*body = msg.reply.body;
	return (0);

fail:
	if (fd != -1)
		close(fd);
	return (-1);
}
