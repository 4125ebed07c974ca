/* test_server_control.c -- control requests and their replies. */

#include <string.h>

#include <criterion/criterion.h>

#include "log.h"
#include "proto.h"
#include "registry.h"
#include "server-agent.h"
#include "server-control.h"
#include "server.h"
#include "store.h"

static msgpack_sbuffer	 argbuf;
static msgpack_packer	 argpk;
static msgpack_unpacked	 argup, replyup;
static struct proto_sink reply;

static void
setup(void)
{
	struct server_limits	lim;

	log_verbose = -1;
	server_limits_default(&lim);
	cr_assert_eq(server_init(NULL, &lim, "/tmp/profd-test"), 0);
	msgpack_sbuffer_init(&argbuf);
	msgpack_packer_init(&argpk, &argbuf, msgpack_sbuffer_write);
	msgpack_unpacked_init(&argup);
	msgpack_unpacked_init(&replyup);
	proto_sink_init(&reply, PROTO_MAX_REPLY + PROTO_HEADER_SIZE);
}

static void
teardown(void)
{
	proto_sink_free(&reply);
	msgpack_unpacked_destroy(&replyup);
	msgpack_unpacked_destroy(&argup);
	msgpack_sbuffer_destroy(&argbuf);
	server_free();
}

TestSuite(server_control, .init = setup, .fini = teardown);

/* Runs a command with the args packed so far in argbuf (or none);
 * returns the reply body; *ok says whether it succeeded. */
static const msgpack_object *
run(const char *cmd, int *ok)
{
	const msgpack_object_map	*map = NULL;
	const char			*payload, *err;
	struct proto_msg		 msg;
	size_t				 plen, flen, off = 0;
	int				 rc;

	if (argbuf.size > 0) {
		cr_assert_eq(msgpack_unpack_next(&argup, argbuf.data,
		    argbuf.size, &off), MSGPACK_UNPACK_SUCCESS);
		map = &argup.data.via.map;
	}
	reply.len = 0;
	rc = server_control_request(cmd, strlen(cmd), map, &reply);
	cr_assert_eq(proto_frame_peek(reply.data, reply.len,
	    PROTO_MAX_REPLY, &payload, &plen, &flen), 1);
	cr_assert_eq(flen, reply.len, "exactly one frame");
	cr_assert_eq(proto_decode(payload, plen, &replyup, &msg, &err), 0,
	    "%s", err);
	cr_assert_eq(msg.type, PROTO_REPLY);
	*ok = msg.reply.ok;
	cr_assert_eq(rc == 0, *ok != 0);
	return (msg.reply.body);
}

/* Runs a command that must fail; checks the error mentions `what`. */
static void
run_error(const char *cmd, const char *what)
{
	const msgpack_object	*body;
	char			 text[512];
	int			 ok;

	body = run(cmd, &ok);
	cr_assert_eq(ok, 0);
	cr_assert_eq(body->type, MSGPACK_OBJECT_STR);
	snprintf(text, sizeof text, "%.*s", (int)body->via.str.size,
	    body->via.str.ptr);
	cr_assert(strstr(text, what) != NULL, "error '%s' lacks '%s'", text,
	    what);
}

/* A connected agent with one sampled stack "work" <- "main". */
static struct agent_conn *
agent(uint32_t pid, uint32_t nsamples)
{
	struct proto_sink	 in;
	struct proto_hello	 h;
	struct proto_sample	 s = { 1, 1, 1, 7, 0 };
	struct agent_conn	*c = server_agent_create(NULL);
	const char		*argv[] = { "app" };
	uint32_t		 frames[] = { 1, 2 }, i;
	size_t			 used;

	memset(&h, 0, sizeof h);
	h.version = PROTO_VERSION;
	h.pid = pid;
	h.host = h.service = h.python = h.reader = "";
	proto_sink_init(&in, 1u << 20);
	proto_send_hello(&in, &h, argv, 1);
	proto_send_string(&in, 1, "work", 4);
	proto_send_string(&in, 2, "main", 4);
	proto_send_string(&in, 3, "app.py", 6);
	proto_send_func(&in, 1, 1, 3, 5);
	proto_send_func(&in, 2, 2, 3, 1);
	proto_send_frame(&in, 1, 1, 6);
	proto_send_frame(&in, 2, 2, 2);
	proto_send_stack(&in, 1, 0, frames, 2);
	proto_send_thread(&in, 1, 99, 1);
	for (i = 0; i < nsamples; i++)
		proto_send_samples(&in, 0, &s, 1);
	cr_assert_eq(server_agent_input(c, in.data, in.len, &used), 0, "%s",
	    c->error);
	proto_sink_free(&in);
	evbuffer_drain(c->out, evbuffer_get_length(c->out));
	return (c);
}

/* The config last sent to an agent. */
static int
agent_profiling(struct agent_conn *c, uint32_t *rate)
{
	msgpack_unpacked	 up;
	struct proto_msg	 msg;
	const char		*payload, *err;
	size_t			 plen, flen, len = evbuffer_get_length(c->out);
	char			*data = (char *)evbuffer_pullup(c->out, -1);
	int			 profiling;

	cr_assert_eq(proto_frame_peek(data, len, 1024, &payload, &plen,
	    &flen), 1);
	msgpack_unpacked_init(&up);
	cr_assert_eq(proto_decode(payload, plen, &up, &msg, &err), 0);
	profiling = msg.config.profiling;
	*rate = msg.config.rate_hz;
	msgpack_unpacked_destroy(&up);
	evbuffer_drain(c->out, len);
	return (profiling);
}

Test(server_control, status_reports_the_switch_and_agents)
{
	const msgpack_object	*body, *agents, *daemon;
	uint64_t		 v;
	int			 ok, b;

	agent(10, 2);
	body = run("status", &ok);
	cr_assert_eq(ok, 1);
	cr_assert_eq(body->type, MSGPACK_OBJECT_MAP);
	cr_assert_eq(proto_map_bool(&body->via.map, "profiling", &b), 0);
	cr_assert_eq(b, 0);
	daemon = proto_map_get(&body->via.map, "daemon");
	cr_assert_not_null(daemon);
	cr_assert_eq(proto_map_uint(&daemon->via.map, "samples_received", &v),
	    0);
	cr_assert_eq(v, 2);
	agents = proto_map_get(&body->via.map, "agents");
	cr_assert_eq(agents->type, MSGPACK_OBJECT_ARRAY);
	cr_assert_eq(agents->via.array.size, 1);
	cr_assert_eq(proto_map_uint(&agents->via.array.ptr[0].via.map, "pid",
	    &v), 0);
	cr_assert_eq(v, 10);
	cr_assert_eq(proto_map_uint(&agents->via.array.ptr[0].via.map,
	    "samples", &v), 0);
	cr_assert_eq(v, 2);
	cr_assert_eq(proto_map_bool(&agents->via.array.ptr[0].via.map,
	    "connected", &b), 0);
	cr_assert_eq(b, 1);
}

Test(server_control, unknown_command_is_an_error)
{
	run_error("frobnicate", "unknown command 'frobnicate'");
}

Test(server_control, rejects_an_unknown_argument)
{
	msgpack_pack_map(&argpk, 1);
	proto_pack_cstr(&argpk, "speed");
	msgpack_pack_uint32(&argpk, 1);
	run_error("start", "unknown argument 'speed'");
}

Test(server_control, start_rejects_a_rate_out_of_range)
{
	msgpack_pack_map(&argpk, 1);
	proto_pack_cstr(&argpk, "rate_hz");
	msgpack_pack_uint32(&argpk, PROTO_RATE_MAX + 1);
	run_error("start", "out of range");
	cr_assert_eq(server_profile.profiling, 0);
}

Test(server_control, start_rejects_a_rate_of_the_wrong_type)
{
	msgpack_pack_map(&argpk, 1);
	proto_pack_cstr(&argpk, "rate_hz");
	proto_pack_cstr(&argpk, "fast");
	run_error("start", "unsigned integer");
}

Test(server_control, start_rejects_an_unknown_mode)
{
	msgpack_pack_map(&argpk, 1);
	proto_pack_cstr(&argpk, "mode");
	proto_pack_cstr(&argpk, "sideways");
	run_error("start", "unknown mode 'sideways'");
}

Test(server_control, start_with_an_unknown_pid_is_an_error)
{
	agent(10, 0);
	msgpack_pack_map(&argpk, 1);
	proto_pack_cstr(&argpk, "pids");
	msgpack_pack_array(&argpk, 1);
	msgpack_pack_uint32(&argpk, 11);
	run_error("start", "no agent with pid 11 attached");
}

Test(server_control, start_turns_every_agent_on_and_later_ones_too)
{
	struct agent_conn	*a = agent(10, 0), *b = agent(11, 0);
	const msgpack_object	*body;
	uint64_t		 n;
	uint32_t		 rate;
	int			 ok;

	msgpack_pack_map(&argpk, 1);
	proto_pack_cstr(&argpk, "rate_hz");
	msgpack_pack_uint32(&argpk, 500);
	body = run("start", &ok);
	cr_assert_eq(ok, 1);
	cr_assert_eq(proto_map_uint(&body->via.map, "agents", &n), 0);
	cr_assert_eq(n, 2);
	cr_assert_eq(agent_profiling(a, &rate), 1);
	cr_assert_eq(rate, 500);
	cr_assert_eq(agent_profiling(b, &rate), 1);
	cr_assert_eq(server_profile.profiling, 1);
	cr_assert_eq(server_profile.rate_hz, 500);
	cr_assert_eq(a->proc->profiling, 1);
}

Test(server_control, start_with_pids_touches_only_those)
{
	struct agent_conn	*a = agent(10, 0), *b = agent(11, 0);
	uint32_t		 rate;
	int			 ok;

	msgpack_pack_map(&argpk, 1);
	proto_pack_cstr(&argpk, "pids");
	msgpack_pack_array(&argpk, 1);
	msgpack_pack_uint32(&argpk, 11);
	run("start", &ok);
	cr_assert_eq(ok, 1);
	cr_assert_eq(evbuffer_get_length(a->out), 0);
	cr_assert_eq(agent_profiling(b, &rate), 1);
	cr_assert_eq(server_profile.profiling, 0);
	cr_assert_eq(a->proc->profiling, 0);
	cr_assert_eq(b->proc->profiling, 1);
}

Test(server_control, stop_turns_profiling_off)
{
	struct agent_conn	*a = agent(10, 0);
	uint32_t		 rate;
	int			 ok;

	run("start", &ok);
	cr_assert_eq(agent_profiling(a, &rate), 1);
	run("stop", &ok);
	cr_assert_eq(ok, 1);
	cr_assert_eq(agent_profiling(a, &rate), 0);
	cr_assert_eq(server_profile.profiling, 0);
}

Test(server_control, show_merges_processes)
{
	const msgpack_object	*body, *funcs, *procs, *stacks, *frames;
	uint64_t		 v;
	int			 ok;

	agent(10, 2);
	agent(11, 3);
	msgpack_pack_map(&argpk, 2);
	proto_pack_cstr(&argpk, "top");
	msgpack_pack_uint32(&argpk, 1);
	proto_pack_cstr(&argpk, "stacks");
	msgpack_pack_true(&argpk);
	body = run("show", &ok);
	cr_assert_eq(ok, 1);
	cr_assert_eq(proto_map_uint(&body->via.map, "samples", &v), 0);
	cr_assert_eq(v, 5);
	procs = proto_map_get(&body->via.map, "processes");
	cr_assert_eq(procs->via.array.size, 2);
	funcs = proto_map_get(&body->via.map, "functions");
	cr_assert_eq(funcs->via.array.size, 1, "cut to top");
	cr_assert_eq(proto_map_uint(&funcs->via.array.ptr[0].via.map, "self",
	    &v), 0);
	cr_assert_eq(v, 5);
	stacks = proto_map_get(&body->via.map, "stacks");
	cr_assert_eq(stacks->via.array.size, 1);
	frames = proto_map_get(&stacks->via.array.ptr[0].via.map, "frames");
	cr_assert_eq(frames->via.array.size, 2);
	/* Root first. */
	cr_assert_eq(frames->via.array.ptr[0].via.array.ptr[0].via.str.size,
	    4);
	cr_assert(memcmp(frames->via.array.ptr[0].via.array.ptr[0].via.str.ptr,
	    "main", 4) == 0);
}

Test(server_control, show_filters_by_pid)
{
	const msgpack_object	*body;
	uint64_t		 v;
	int			 ok;

	agent(10, 2);
	agent(11, 3);
	msgpack_pack_map(&argpk, 1);
	proto_pack_cstr(&argpk, "pids");
	msgpack_pack_array(&argpk, 1);
	msgpack_pack_uint32(&argpk, 10);
	body = run("show", &ok);
	cr_assert_eq(proto_map_uint(&body->via.map, "samples", &v), 0);
	cr_assert_eq(v, 2);
}

Test(server_control, reset_forgets_samples)
{
	const msgpack_object	*body;
	uint64_t		 v;
	int			 ok;

	agent(10, 2);
	run("reset", &ok);
	cr_assert_eq(ok, 1);
	body = run("show", &ok);
	cr_assert_eq(proto_map_uint(&body->via.map, "samples", &v), 0);
	cr_assert_eq(v, 0);
}
