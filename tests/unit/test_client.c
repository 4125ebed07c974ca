/* test_client.c -- profctl's request/reply exchange over a real socket. */

#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <criterion/redirect.h>

#include "client.h"
#include "proto.h"

/* What the test server does with the one request it reads. */
enum reply {
	REPLY_OK,		/* {"agents": 3} */
	REPLY_ERROR,		/* "no agent with pid 5 attached" */
	REPLY_CLOSE,		/* close without replying */
	REPLY_SILENT,		/* never reply */
	REPLY_HUGE,		/* a header announcing too many bytes */
	REPLY_NOT_MAP,		/* ok, but the body is a number */
	REPLY_WRONG_TYPE,	/* a request instead of a reply */
	REPLY_SLOW_BYTES,	/* the ok reply, one byte at a time */
};

static char	dir[64];
static pid_t	server = -1;

static void
setup(void)
{
	cr_redirect_stderr();
	strcpy(dir, "/tmp/test_client.XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
}

static void
teardown(void)
{
	char	path[128];

	if (server > 0) {
		kill(server, SIGKILL);
		waitpid(server, NULL, 0);
	}
	snprintf(path, sizeof path, "%s/control.sock", dir);
	unlink(path);
	rmdir(dir);
}

/* Reads everything the code under test wrote to stderr. */
static char *
stderr_text(void)
{
	static char	 buf[4096];
	FILE		*f;
	size_t		 n;

	fflush(stderr);
	f = cr_get_redirected_stderr();
	n = fread(buf, 1, sizeof buf - 1, f);
	buf[n] = '\0';
	return (buf);
}

/* Writes all of buf. */
static void
write_all(int fd, const char *buf, size_t len)
{
	ssize_t	n;

	while (len > 0) {
		if ((n = write(fd, buf, len)) <= 0)
			_exit(3);
		buf += n;
		len -= (size_t)n;
	}
}

/* Child: answers one "start" request with `how`, then exits 0 if the
 * request was the one the test sent. */
static void
serve(int l, enum reply how)
{
	struct proto_sink	 sk;
	struct proto_msg	 msg;
	msgpack_unpacked	 up;
	const char		*payload, *err;
	char			 buf[4096];
	size_t			 len = 0, plen, flen, i;
	uint64_t		 rate;
	uint32_t		 hdr;
	ssize_t			 n;
	size_t			 st;
	int			 fd;

	if ((fd = accept(l, NULL, NULL)) == -1)
		_exit(2);
	while (proto_frame_peek(buf, len, PROTO_MAX_MSG, &payload, &plen,
	    &flen) == 0) {
		if ((n = read(fd, buf + len, sizeof buf - len)) <= 0)
			_exit(2);
		len += (size_t)n;
	}
	msgpack_unpacked_init(&up);
	if (proto_decode(payload, plen, &up, &msg, &err) != 0 ||
	    msg.type != PROTO_REQUEST || msg.request.command_len != 5 ||
	    memcmp(msg.request.command, "start", 5) != 0 ||
	    proto_map_uint(msg.request.args, "rate_hz", &rate) != 0 ||
	    rate != 250)
		_exit(4);

	proto_sink_init(&sk, PROTO_MAX_REPLY);
	switch (how) {
	case REPLY_OK:
	case REPLY_SLOW_BYTES:
		st = proto_begin_reply(&sk, 1);
		msgpack_pack_map(&sk.pk, 1);
		proto_pack_cstr(&sk.pk, "agents");
		msgpack_pack_uint32(&sk.pk, 3);
		proto_end(&sk, st);
		break;
	case REPLY_ERROR:
		proto_send_error(&sk, "no agent with pid %d attached", 5);
		break;
	case REPLY_CLOSE:
		_exit(0);
	case REPLY_SILENT:
		pause();
		_exit(0);
	case REPLY_HUGE:
		hdr = htonl(PROTO_MAX_REPLY + 1);
		write_all(fd, (char *)&hdr, sizeof hdr);
		pause();
		_exit(0);
	case REPLY_NOT_MAP:
		st = proto_begin_reply(&sk, 1);
		msgpack_pack_uint32(&sk.pk, 3);
		proto_end(&sk, st);
		break;
	case REPLY_WRONG_TYPE:
		st = proto_begin_request(&sk, "status", 0);
		proto_end(&sk, st);
		break;
	}
	if (how == REPLY_SLOW_BYTES) {
		for (i = 0; i < sk.len; i++) {
			write_all(fd, sk.data + i, 1);
			usleep(2000);
		}
	} else
		write_all(fd, sk.data, sk.len);
	_exit(0);
}

/* Listens on dir/control.sock and forks a server answering with `how`. */
static void
start_server(enum reply how)
{
	struct sockaddr_un	sun;
	int			l;

	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof sun.sun_path, "%s/control.sock", dir);
	cr_assert_neq(l = socket(AF_UNIX, SOCK_STREAM, 0), -1);
	cr_assert_eq(bind(l, (struct sockaddr *)&sun, sizeof sun), 0);
	cr_assert_eq(listen(l, 4), 0);
	if ((server = fork()) == 0)
		serve(l, how);
	cr_assert_gt(server, 0);
	close(l);
}

/* Sends start --rate 250 and returns client_call's result. */
static int
call(struct client *c, const msgpack_object **body, int timeout_ms)
{
	msgpack_packer	*pk;

	cr_assert_eq(client_init(c, dir), 0);
	if (timeout_ms != 0)
		c->timeout_ms = timeout_ms;
	pk = client_begin(c, "start", 1);
	proto_pack_cstr(pk, "rate_hz");
	msgpack_pack_uint32(pk, 250);
	return (client_call(c, body));
}

TestSuite(client, .init = setup, .fini = teardown);

Test(client, returns_the_reply_body)
{
	struct client		 c;
	const msgpack_object	*body;
	uint64_t		 n;
	int			 status;

	start_server(REPLY_OK);
	cr_assert_eq(call(&c, &body, 0), 0);
	cr_assert_eq(body->type, MSGPACK_OBJECT_MAP);
	cr_assert_eq(proto_map_uint(&body->via.map, "agents", &n), 0);
	cr_assert_eq(n, 3);
	client_free(&c);
	waitpid(server, &status, 0);
	server = -1;
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "server saw a different request");
}

Test(client, reads_a_reply_that_arrives_in_pieces)
{
	struct client		 c;
	const msgpack_object	*body;

	start_server(REPLY_SLOW_BYTES);
	cr_assert_eq(call(&c, &body, 0), 0);
	cr_assert_eq(body->type, MSGPACK_OBJECT_MAP);
	client_free(&c);
}

Test(client, prints_the_daemons_error_text)
{
	struct client		 c;
	const msgpack_object	*body;

	start_server(REPLY_ERROR);
	cr_assert_eq(call(&c, &body, 0), -1);
	client_free(&c);
	cr_assert_str_eq(stderr_text(),
	    "profctl: no agent with pid 5 attached\n");
}

Test(client, says_where_it_looked_when_no_daemon_runs)
{
	struct client		 c;
	const msgpack_object	*body;
	char			*err;
	char			 want[256];

	cr_assert_eq(call(&c, &body, 0), -1);
	client_free(&c);
	err = stderr_text();
	snprintf(want, sizeof want, "profctl: no profd at %s/control.sock "
	    "(connect: No such file or directory)", dir);
	cr_assert_not_null(strstr(err, want), "%s", err);
	cr_assert_not_null(strstr(err, "profd -r"), "%s", err);
	cr_assert_not_null(strstr(err, "PROFD_RUNTIME_DIR"), "%s", err);
}

Test(client, gives_up_after_the_timeout)
{
	struct client		 c;
	const msgpack_object	*body;
	struct timespec		 a, b;
	double			 dt;

	start_server(REPLY_SILENT);
	clock_gettime(CLOCK_MONOTONIC, &a);
	cr_assert_eq(call(&c, &body, 300), -1);
	clock_gettime(CLOCK_MONOTONIC, &b);
	client_free(&c);
	dt = (double)(b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9;
	cr_assert(dt >= 0.25 && dt < 3.0, "took %.2f s", dt);
	cr_assert_not_null(strstr(stderr_text(), "no reply from profd"));
}

Test(client, fails_when_the_daemon_closes_without_reply)
{
	struct client		 c;
	const msgpack_object	*body;

	start_server(REPLY_CLOSE);
	cr_assert_eq(call(&c, &body, 0), -1);
	client_free(&c);
	cr_assert_not_null(strstr(stderr_text(), "closed the connection"));
}

Test(client, refuses_a_reply_over_the_limit_before_reading_it)
{
	struct client		 c;
	const msgpack_object	*body;

	start_server(REPLY_HUGE);
	cr_assert_eq(call(&c, &body, 2000), -1);
	client_free(&c);
	cr_assert_not_null(strstr(stderr_text(), "larger than"));
}

Test(client, rejects_replies_that_are_not_reply_maps)
{
	struct client		 c;
	const msgpack_object	*body;

	start_server(REPLY_NOT_MAP);
	cr_assert_eq(call(&c, &body, 0), -1);
	client_free(&c);
	cr_assert_not_null(strstr(stderr_text(), "not a map"));
}

Test(client, rejects_a_message_that_is_not_a_reply)
{
	struct client		 c;
	const msgpack_object	*body;

	start_server(REPLY_WRONG_TYPE);
	cr_assert_eq(call(&c, &body, 0), -1);
	client_free(&c);
	cr_assert_not_null(strstr(stderr_text(), "not a reply"));
}

Test(client, refuses_a_runtime_dir_too_long_for_a_socket)
{
	struct client	c;
	char		long_dir[200];

	memset(long_dir, 'x', sizeof long_dir - 1);
	long_dir[0] = '/';
	long_dir[sizeof long_dir - 1] = '\0';
	cr_assert_eq(client_init(&c, long_dir), -1);
	client_free(&c);
	cr_assert_not_null(strstr(stderr_text(), "too long"));
}
