/*
 * fuzz-control.c -- libFuzzer target for profd's control requests: the
 * input is one request frame, decoded as server-control.c decodes it, then
 * run by server_control_request (argument parsing of every command, the
 * show query and its encoders) over a real store holding one agent's
 * session.  Every input must give exactly one reply frame, never a crash.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "access.h"
#include "log.h"
#include "proto.h"
#include "server-agent.h"
#include "server-control.h"
#include "server.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* One agent's session: hello, definitions, samples. */
static void
fuzz_session(struct agent_conn *c)
{
	struct proto_sink	 sk;
	struct proto_hello	 h;
	struct proto_sample	 s[2] = {
		{ 1, 1, 0, 1000, PROTO_SAMPLE_ONCPU },
		{ 2, 1, 1000, 1000, 0 },
	};
	const char		*av[] = { "python3", "app.py" };
	uint32_t		 f1[] = { 2, 1 }, f2[] = { 1 };
	size_t			 used;

	memset(&h, 0, sizeof h);
	h.version = PROTO_VERSION;
	h.pid = 4242;
	h.ppid = 1;
	h.host = "host";
	h.service = "svc";
	h.python = "3.12.1";
	h.reader = "direct";
	proto_sink_init(&sk, 1u << 16);
	proto_send_hello(&sk, &h, av, 2);
	proto_send_string(&sk, 1, "main", 4);
	proto_send_string(&sk, 2, "app.py", 6);
	proto_send_string(&sk, 3, "work", 4);
	proto_send_string(&sk, 4, "MainThread", 10);
	proto_send_func(&sk, 1, 1, 2, 1);
	proto_send_func(&sk, 2, 3, 2, 10);
	proto_send_frame(&sk, 1, 1, 5);
	proto_send_frame(&sk, 2, 2, 12);
	proto_send_stack(&sk, 1, 0, f1, 2);
	proto_send_stack(&sk, 2, 0, f2, 1);
	proto_send_thread(&sk, 1, 100, 4);
	proto_send_samples(&sk, server_now_ns(), s, 2);
	(void)server_agent_input(c, sk.data, sk.len, &used);
	proto_sink_free(&sk);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct server_limits	 lim;
	struct agent_conn	*c;
	struct proto_sink	 reply;
	struct proto_msg	 msg;
	msgpack_unpacked	 up;
	const char		*payload, *err = NULL;
	size_t			 payload_len, frame_len;
	char			 errbuf[256];

	log_verbose = -1;
	server_limits_default(&lim);
	lim.max_memory = 4u << 20;
	if (server_init(NULL, &lim, "/tmp/profd-fuzz", errbuf,
	    sizeof errbuf) != 0) {
		server_free();
		return (0);
	}
	if ((c = server_agent_create(NULL)) != NULL)
		fuzz_session(c);
	/* As server_control_read_cb: a frame, then a REQUEST message. */
	if (proto_frame_peek((const char *)data, size, PROTO_MAX_MSG,
	    &payload, &payload_len, &frame_len) == 1) {
		msgpack_unpacked_init(&up);
		if (proto_decode(payload, payload_len, &up, &msg, &err) == 0 &&
		    msg.type == PROTO_REQUEST) {
			proto_sink_init(&reply, 1u << 20);
			/* As a controller: every command is reachable. */
			(void)server_control_request(msg.request.command,
			    msg.request.command_len, msg.request.args,
			    ACCESS_CONTROL, &reply);
			/* Exactly one whole reply frame. */
			if (reply.len == 0 || proto_frame_peek(reply.data,
			    reply.len, PROTO_MAX_REPLY, &payload, &payload_len,
			    &frame_len) != 1 || frame_len != reply.len)
				__builtin_trap();
			proto_sink_free(&reply);
		}
		msgpack_unpacked_destroy(&up);
	}
	server_free();
	return (0);
}
