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
	char			err[256];

	log_verbose = -1;
	server_limits_default(&lim);
	cr_assert_eq(server_init(NULL, &lim, "/tmp/profd-test", err,
	    sizeof err), 0, "%s", err);
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
	rc = server_control_request(cmd, strlen(cmd), map, ACCESS_CONTROL,
	    &reply);
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

/* A connected agent started at start_ns, with one sampled stack
 * "work" <- "main" on a thread named `thread`. */
static struct agent_conn *
agent_full(uint32_t pid, uint64_t start_ns, const char *thread,
    uint32_t nsamples)
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
	h.start_ns = start_ns;
	h.host = h.python = h.reader = "";
	h.service = pid < 20 ? "web" : "db";
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
	proto_send_string(&in, 4, thread, strlen(thread));
	proto_send_thread(&in, 1, 99, 4);
	for (i = 0; i < nsamples; i++)
		proto_send_samples(&in, server_now_ns(), &s, 1);
	cr_assert_eq(server_agent_input(c, in.data, in.len, &used), 0, "%s",
	    c->error);
	proto_sink_free(&in);
	evbuffer_drain(c->out, evbuffer_get_length(c->out));
	return (c);
}

static struct agent_conn *
agent(uint32_t pid, uint32_t nsamples)
{
	return (agent_full(pid, 42, "MainThread", nsamples));
}

/* The string at key of a map, copied. */
static const char *
str(const msgpack_object *map, const char *key)
{
	static char		 buf[8][256];
	static int		 n;
	const msgpack_object	*o = proto_map_get(&map->via.map, key);

	cr_assert_not_null(o, "no key %s", key);
	cr_assert_eq(o->type, MSGPACK_OBJECT_STR);
	n = (n + 1) % 8;
	snprintf(buf[n], sizeof buf[n], "%.*s", (int)o->via.str.size,
	    o->via.str.ptr);
	return (buf[n]);
}

/* The uint at key of a map. */
static uint64_t
num(const msgpack_object *map, const char *key)
{
	uint64_t	v;

	cr_assert_eq(proto_map_uint(&map->via.map, key, &v), 0, "key %s",
	    key);
	return (v);
}

/* The array at key of a map. */
static const msgpack_object_array *
arr(const msgpack_object *map, const char *key)
{
	const msgpack_object	*o = proto_map_get(&map->via.map, key);

	cr_assert_not_null(o, "no key %s", key);
	cr_assert_eq(o->type, MSGPACK_OBJECT_ARRAY);
	return (&o->via.array);
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

Test(server_control, start_rejects_a_budget_over_100_percent)
{
	msgpack_pack_map(&argpk, 1);
	proto_pack_cstr(&argpk, "max_overhead_bp");
	msgpack_pack_uint32(&argpk, PROTO_OVERHEAD_MAX + 1);
	run_error("start", "max overhead 100.01% is out of range");
	cr_assert_eq(server_profile.profiling, 0);
	cr_assert_eq(server_profile.max_overhead_bp, PROTO_OVERHEAD_UNSET);
}

/* The budget of the config last sent to an agent (_UNSET: none sent). */
static uint32_t
agent_budget(struct agent_conn *c)
{
	msgpack_unpacked	 up;
	struct proto_msg	 msg;
	const char		*payload, *err;
	size_t			 plen, flen, len = evbuffer_get_length(c->out);
	char			*data = (char *)evbuffer_pullup(c->out, -1);
	uint32_t		 bp;

	cr_assert_eq(proto_frame_peek(data, len, 1024, &payload, &plen,
	    &flen), 1);
	msgpack_unpacked_init(&up);
	cr_assert_eq(proto_decode(payload, plen, &up, &msg, &err), 0);
	cr_assert_eq(msg.type, PROTO_CONFIG);
	bp = msg.config.max_overhead_bp;
	msgpack_unpacked_destroy(&up);
	evbuffer_drain(c->out, len);
	return (bp);
}

Test(server_control, start_sends_a_budget_only_once_given_and_keeps_it)
{
	struct agent_conn	*a = agent(10, 0), *b;
	int			 ok;

	msgpack_pack_map(&argpk, 1);
	proto_pack_cstr(&argpk, "rate_hz");
	msgpack_pack_uint32(&argpk, 10000);
	run("start", &ok);
	cr_assert_eq(ok, 1);
	cr_assert_eq(agent_budget(a), PROTO_OVERHEAD_UNSET);
	msgpack_sbuffer_clear(&argbuf);
	msgpack_pack_map(&argpk, 1);
	proto_pack_cstr(&argpk, "max_overhead_bp");
	msgpack_pack_uint32(&argpk, 50);
	run("start", &ok);
	cr_assert_eq(ok, 1);
	cr_assert_eq(agent_budget(a), 50);
	cr_assert_eq(a->proc->max_overhead_bp, 50);
	cr_assert_eq(server_profile.max_overhead_bp, 50);
	cr_assert_eq(server_profile.rate_hz, 10000);
	/* A later start without it keeps it, and so does a newcomer. */
	msgpack_sbuffer_clear(&argbuf);
	msgpack_pack_map(&argpk, 0);
	run("start", &ok);
	cr_assert_eq(agent_budget(a), 50);
	b = agent_full(11, 43, "MainThread", 0);
	cr_assert_eq(b->proc->max_overhead_bp, 50);
	cr_assert_eq(server_profile.max_overhead_bp, 50);
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

Test(server_control, a_per_pid_setting_survives_the_agents_reconnect)
{
	struct agent_conn	*a = agent(10, 0), *b = agent(11, 0);
	uint32_t		 rate;
	int			 ok;

	msgpack_pack_map(&argpk, 2);
	proto_pack_cstr(&argpk, "pids");
	msgpack_pack_array(&argpk, 1);
	msgpack_pack_uint32(&argpk, 11);
	proto_pack_cstr(&argpk, "rate_hz");
	msgpack_pack_uint32(&argpk, 321);
	run("start", &ok);
	cr_assert_eq(ok, 1);
	cr_assert_eq(agent_profiling(b, &rate), 1);
	server_agent_free(b);
	server_agent_free(a);
	b = agent(11, 0);	/* agent() drains what the hello got: */
	cr_assert_eq(b->proc->profiling, 1);
	cr_assert_eq(b->proc->rate_hz, 321);
	a = agent(10, 0);
	cr_assert_eq(a->proc->profiling, 0);
	/* A global stop forgets it. */
	msgpack_sbuffer_clear(&argbuf);
	run("stop", &ok);
	server_agent_free(b);
	b = agent(11, 0);
	cr_assert_eq(b->proc->profiling, 0);
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
	const msgpack_object		*body;
	const msgpack_object_array	*funcs, *procs;
	int				 ok;

	agent(10, 2);
	agent(11, 3);
	msgpack_pack_map(&argpk, 1);
	proto_pack_cstr(&argpk, "top");
	msgpack_pack_uint32(&argpk, 1);
	body = run("show", &ok);
	cr_assert_eq(ok, 1);
	cr_assert_eq(num(body, "samples"), 5);
	cr_assert_str_eq(str(body, "view"), "function");
	procs = arr(body, "processes");
	cr_assert_eq(procs->size, 2);
	funcs = arr(body, "functions");
	cr_assert_eq(funcs->size, 1, "cut to top");
	cr_assert_str_eq(str(&funcs->ptr[0], "function"), "work");
	cr_assert_eq(num(&funcs->ptr[0], "self"), 5);
	cr_assert_eq(num(&funcs->ptr[0], "line"), 5);
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

Test(server_control, show_by_thread_names_the_threads)
{
	const msgpack_object		*body;
	const msgpack_object_array	*th;
	int				 ok;

	agent_full(10, 42, "MainThread", 2);
	agent_full(11, 42, "worker-7", 3);
	msgpack_pack_map(&argpk, 1);
	proto_pack_cstr(&argpk, "by");
	proto_pack_cstr(&argpk, "thread");
	body = run("show", &ok);
	cr_assert_eq(ok, 1);
	cr_assert_str_eq(str(body, "view"), "thread");
	th = arr(body, "threads");
	cr_assert_eq(th->size, 2);
	cr_assert_str_eq(str(&th->ptr[0], "thread"), "worker-7");
	cr_assert_eq(num(&th->ptr[0], "pid"), 11);
	cr_assert_eq(num(&th->ptr[0], "tid"), 99);
	cr_assert_eq(num(&th->ptr[0], "self"), 3);
	cr_assert_str_eq(str(&th->ptr[1], "thread"), "MainThread");
	cr_assert_str_eq(str(&th->ptr[1], "service"), "web");
	cr_assert_gt(num(body, "to_ns"), num(body, "from_ns"));
}

Test(server_control, show_filters_by_thread_glob)
{
	const msgpack_object	*body;
	int			 ok;

	agent_full(10, 42, "MainThread", 2);
	agent_full(11, 42, "worker-7", 3);
	msgpack_pack_map(&argpk, 1);
	proto_pack_cstr(&argpk, "threads");
	msgpack_pack_array(&argpk, 1);
	proto_pack_cstr(&argpk, "work*");
	body = run("show", &ok);
	cr_assert_eq(ok, 1);
	cr_assert_eq(num(body, "samples"), 3);
}

Test(server_control, show_with_an_unknown_pid_is_an_error)
{
	agent(10, 1);
	msgpack_pack_map(&argpk, 1);
	proto_pack_cstr(&argpk, "pids");
	msgpack_pack_array(&argpk, 1);
	msgpack_pack_uint32(&argpk, 12);
	run_error("show", "no process with pid 12");
}

Test(server_control, show_refuses_tree_with_top)
{
	msgpack_pack_map(&argpk, 2);
	proto_pack_cstr(&argpk, "tree");
	msgpack_pack_true(&argpk);
	proto_pack_cstr(&argpk, "top");
	msgpack_pack_uint32(&argpk, 3);
	run_error("show", "--top does not apply to --tree");
}

Test(server_control, show_refuses_bad_arguments)
{
	msgpack_pack_map(&argpk, 1);
	proto_pack_cstr(&argpk, "by");
	proto_pack_cstr(&argpk, "colour");
	run_error("show", "unknown by 'colour'");
	msgpack_sbuffer_clear(&argbuf);
	msgpack_pack_map(&argpk, 2);
	proto_pack_cstr(&argpk, "since_ns");
	msgpack_pack_uint64(&argpk, 20);
	proto_pack_cstr(&argpk, "until_ns");
	msgpack_pack_uint64(&argpk, 10);
	run_error("show", "the window is empty");
	msgpack_sbuffer_clear(&argbuf);
	msgpack_pack_map(&argpk, 1);
	proto_pack_cstr(&argpk, "diff");
	msgpack_pack_uint32(&argpk, 1);
	run_error("show", "'diff' must be a map");
	msgpack_sbuffer_clear(&argbuf);
	msgpack_pack_map(&argpk, 1);
	proto_pack_cstr(&argpk, "format");
	proto_pack_cstr(&argpk, "gif");
	run_error("show", "unknown format 'gif'");
}

Test(server_control, show_tree)
{
	const msgpack_object		*body;
	const msgpack_object_array	*tree;
	int				 ok;

	agent(10, 4);
	msgpack_pack_map(&argpk, 1);
	proto_pack_cstr(&argpk, "tree");
	msgpack_pack_true(&argpk);
	body = run("show", &ok);
	cr_assert_eq(ok, 1);
	tree = arr(body, "tree");
	cr_assert_eq(tree->size, 2);
	cr_assert_str_eq(str(&tree->ptr[0], "function"), "main");
	cr_assert_eq(num(&tree->ptr[0], "depth"), 0);
	cr_assert_eq(num(&tree->ptr[0], "total"), 4);
	cr_assert_str_eq(str(&tree->ptr[1], "function"), "work");
	cr_assert_eq(num(&tree->ptr[1], "depth"), 1);
	cr_assert_eq(num(&tree->ptr[1], "self"), 4);
}

Test(server_control, show_diff_against_another_process)
{
	const msgpack_object		*body;
	const msgpack_object_array	*f;
	int				 ok;

	agent(10, 2);
	agent(11, 6);
	msgpack_pack_map(&argpk, 2);
	proto_pack_cstr(&argpk, "pids");
	msgpack_pack_array(&argpk, 1);
	msgpack_pack_uint32(&argpk, 10);
	proto_pack_cstr(&argpk, "diff");
	msgpack_pack_map(&argpk, 1);
	proto_pack_cstr(&argpk, "pids");
	msgpack_pack_array(&argpk, 1);
	msgpack_pack_uint32(&argpk, 11);
	body = run("show", &ok);
	cr_assert_eq(ok, 1);
	cr_assert_str_eq(str(body, "view"), "diff");
	cr_assert_eq(num(body, "samples"), 2);
	cr_assert_eq(num(body, "base_samples"), 6);
	f = arr(body, "functions");
	cr_assert_eq(f->size, 2);
	cr_assert_str_eq(str(&f->ptr[0], "function"), "work");
	cr_assert_eq(num(&f->ptr[0], "self"), 2);
	cr_assert_eq(num(&f->ptr[0], "base_self"), 6);
}

Test(server_control, show_encoders_answer_or_say_they_are_missing)
{
	const msgpack_object	*body;
	int			 ok;

	agent(10, 2);
	msgpack_pack_map(&argpk, 1);
	proto_pack_cstr(&argpk, "format");
	proto_pack_cstr(&argpk, "folded");
	body = run("show", &ok);
	if (!ok) {
		cr_assert_eq(body->type, MSGPACK_OBJECT_STR);
		cr_assert(body->via.str.size > 0);
	} else
		cr_assert_str_eq(str(body, "format"), "folded");
}

Test(server_control, ps_lists_instances)
{
	const msgpack_object		*body;
	const msgpack_object_array	*p;
	int				 ok, b;

	agent(10, 2);
	agent(11, 0);
	body = run("ps", &ok);
	cr_assert_eq(ok, 1);
	p = arr(body, "processes");
	cr_assert_eq(p->size, 2);
	cr_assert_eq(num(&p->ptr[0], "pid"), 10);
	cr_assert_eq(num(&p->ptr[0], "samples"), 2);
	cr_assert_str_eq(str(&p->ptr[0], "service"), "web");
	cr_assert_eq(proto_map_bool(&p->ptr[0].via.map, "attached", &b), 0);
	cr_assert_eq(b, 1);
	cr_assert_eq(num(&p->ptr[1], "pid"), 11);
	msgpack_pack_map(&argpk, 1);
	proto_pack_cstr(&argpk, "pids");
	msgpack_pack_array(&argpk, 1);
	msgpack_pack_uint32(&argpk, 11);
	body = run("ps", &ok);
	cr_assert_eq(arr(body, "processes")->size, 1);
}

Test(server_control, ps_shows_a_reused_pid_twice)
{
	const msgpack_object		*body;
	const msgpack_object_array	*p;
	struct agent_conn		*a;
	int				 ok, b;

	a = agent_full(10, 1000, "MainThread", 1);
	server_agent_free(a);
	agent_full(10, 2000, "MainThread", 2);
	body = run("ps", &ok);
	cr_assert_eq(ok, 1);
	p = arr(body, "processes");
	cr_assert_eq(p->size, 2);
	cr_assert_eq(num(&p->ptr[0], "pid"), 10);
	cr_assert_eq(num(&p->ptr[0], "start_ns"), 1000);
	cr_assert_eq(proto_map_bool(&p->ptr[0].via.map, "attached", &b), 0);
	cr_assert_eq(b, 0);
	cr_assert_neq(num(&p->ptr[0], "end_ns"), 0);
	cr_assert_eq(num(&p->ptr[1], "pid"), 10);
	cr_assert_eq(num(&p->ptr[1], "start_ns"), 2000);
	cr_assert_eq(num(&p->ptr[1], "samples"), 2);
	cr_assert_neq(num(&p->ptr[0], "instance"),
	    num(&p->ptr[1], "instance"));
}

/* Sends a version 5 batch of n samples of the agent's stack that says
 * `invalid` stacks were left out. */
static void
agent_batch(struct agent_conn *c, uint32_t n, uint32_t invalid)
{
	static uint64_t		 seq;
	struct proto_sink	 in;
	struct proto_sample	 s[64];
	uint32_t		 i;
	size_t			 used;

	cr_assert_leq(n, 64);
	for (i = 0; i < n; i++)
		s[i] = (struct proto_sample){ 1, 1, 1, 7, 0 };
	proto_sink_init(&in, 1u << 20);
	cr_assert_eq(proto_send_batch_v5(&in, ++seq, server_now_ns(), s, n,
	    invalid), 0);
	cr_assert_eq(server_agent_input(c, in.data, in.len, &used), 0, "%s",
	    c->error);
	proto_sink_free(&in);
}

/* Whether a map has a key. */
static int
has(const msgpack_object *map, const char *key)
{
	return (proto_map_get(&map->via.map, key) != NULL);
}

/* Packs {"pids": [pid]} and, with view, {"tree": true} or {"format": view}
 * (view "tree" or a format). */
static void
show_args(uint32_t pid, const char *view)
{
	msgpack_pack_map(&argpk, view != NULL ? 2 : 1);
	proto_pack_cstr(&argpk, "pids");
	msgpack_pack_array(&argpk, 1);
	msgpack_pack_uint32(&argpk, pid);
	if (view == NULL)
		return;
	if (strcmp(view, "tree") == 0) {
		proto_pack_cstr(&argpk, "tree");
		msgpack_pack_true(&argpk);
	} else {
		proto_pack_cstr(&argpk, "format");
		proto_pack_cstr(&argpk, view);
	}
}

/* Starts the next request's arguments afresh. */
static void
args_clear(void)
{
	msgpack_sbuffer_clear(&argbuf);
}

Test(server_control, show_says_which_share_of_the_windows_stacks_was_unreadable)
{
	static const char *const views[] = { NULL, "tree", "folded" };
	const msgpack_object	*body, *pct;
	const char		*want = "warning: 7.0% of stacks in this "
				    "window were unreadable (torn) and left "
				    "out; see profctl status";
	size_t			 i;
	int			 ok;

	agent_batch(agent(10, 0), 62, 7);
	agent_batch(agent(10, 0), 31, 0);
	agent_batch(agent(11, 0), 63, 0);
	agent_batch(agent(11, 0), 36, 1);	/* 1 of 100: not over 1% */
	agent(12, 5);				/* says nothing */
	for (i = 0; i < sizeof views / sizeof views[0]; i++) {
		args_clear();
		show_args(10, views[i]);
		body = run("show", &ok);
		cr_assert_eq(ok, 1);
		cr_assert_eq(num(body, "samples"), 93);
		cr_assert_eq(num(body, "invalid"), 7);
		pct = proto_map_get(&body->via.map, "invalid_pct");
		cr_assert_not_null(pct);
		cr_assert_eq(pct->type, MSGPACK_OBJECT_FLOAT64);
		cr_assert_float_eq(pct->via.f64, 7.0, 1e-9);
		cr_assert_str_eq(str(body, "warning"), want);
	}
	args_clear();
	show_args(11, NULL);
	body = run("show", &ok);
	cr_assert_eq(num(body, "invalid"), 1);
	cr_assert(!has(body, "warning"), "a warning at 1%%");
	args_clear();
	show_args(12, NULL);
	body = run("show", &ok);
	cr_assert(!has(body, "invalid") && !has(body, "warning"),
	    "figures for an agent that said nothing");
	/* A diff warns of its baseline apart. */
	args_clear();
	msgpack_pack_map(&argpk, 2);
	proto_pack_cstr(&argpk, "pids");
	msgpack_pack_array(&argpk, 1);
	msgpack_pack_uint32(&argpk, 11);
	proto_pack_cstr(&argpk, "diff");
	msgpack_pack_map(&argpk, 1);
	proto_pack_cstr(&argpk, "pids");
	msgpack_pack_array(&argpk, 1);
	msgpack_pack_uint32(&argpk, 10);
	body = run("show", &ok);
	cr_assert_eq(ok, 1);
	cr_assert(!has(body, "warning"));
	cr_assert(strstr(str(body, "base_warning"), "7.0% of stacks in the "
	    "baseline window") != NULL, "%s", str(body, "base_warning"));
}
