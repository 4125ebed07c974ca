/* test_server_agent.c -- agent connection decoding, fed frames directly. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "log.h"
#include "proto.h"
#include "query.h"
#include "registry.h"
#include "server-agent.h"
#include "server.h"
#include "stats.h"
#include "store.h"

#define NS	1000000000ull

static struct agent_conn	*conn;
static struct proto_sink	 in;
static uint64_t			 now;	/* batches' base time */

static void
setup(void)
{
	struct server_limits	lim;
	char			err[256];

	log_verbose = -1;
	server_limits_default(&lim);
	lim.max_ids = 8;
	cr_assert_eq(server_init(NULL, &lim, "/tmp/profd-test", err,
	    sizeof err), 0, "%s", err);
	now = server_now_ns();
	conn = server_agent_create(NULL);
	cr_assert_not_null(conn);
	proto_sink_init(&in, 1u << 24);
}

static void
teardown(void)
{
	proto_sink_free(&in);
	server_free();
}

TestSuite(server_agent, .init = setup, .fini = teardown);

/* Feeds everything in the input sink; returns server_agent_input's rc. */
static int
feed(void)
{
	size_t	used = 0;
	int	rc;

	rc = server_agent_input(conn, in.data, in.len, &used);
	proto_sink_consume(&in, used);
	return (rc);
}

static void
hello_at(uint32_t pid, uint64_t start_ns)
{
	struct proto_hello	h;
	const char		*argv[] = { "python3", "app.py" };

	memset(&h, 0, sizeof h);
	h.version = PROTO_VERSION;
	h.pid = pid;
	h.ppid = 1;
	h.start_ns = start_ns;
	h.host = "box";
	h.service = "web";
	h.python = "3.11.2";
	h.reader = "gil";
	cr_assert_eq(proto_send_hello(&in, &h, argv, 2), 0);
}

static void
hello(uint32_t pid)
{
	hello_at(pid, 42);
}

/* Defines strings 1-2, function 1, frame 1, stack 1 and thread 1. */
static void
definitions(void)
{
	uint32_t	frame = 1;

	proto_send_string(&in, 1, "work", 4);
	proto_send_string(&in, 2, "app.py", 6);
	proto_send_func(&in, 1, 1, 2, 10);
	proto_send_frame(&in, 1, 1, 12);
	proto_send_stack(&in, 1, 0, &frame, 1);
	proto_send_thread(&in, 1, 1234, 1);
}

static void
samples(uint32_t stack, uint32_t thread, uint32_t n)
{
	struct proto_sample	s[16];
	uint32_t		i;

	for (i = 0; i < n; i++) {
		s[i].stack = stack;
		s[i].thread = thread;
		s[i].dt_us = 10000;
		s[i].weight_us = 10000;
		s[i].flags = PROTO_SAMPLE_ONCPU;
	}
	cr_assert_eq(proto_send_samples(&in, now, s, n), 0);
}

/* A numbered batch (PROTO_BATCH) of n samples. */
static void
batch(uint64_t seq, uint32_t n)
{
	struct proto_sample	s[16];
	uint32_t		i;

	for (i = 0; i < n; i++)
		s[i] = (struct proto_sample){ 1, 1, 10000, 10000,
		    PROTO_SAMPLE_ONCPU };
	cr_assert_eq(proto_send_batch(&in, seq, now, s, n), 0);
}

/* Drains what the daemon sent the agent: the number of frames, and the
 * newest ACK's number (0: none). */
static uint32_t
sent_frames(uint64_t *ack)
{
	msgpack_unpacked	 up;
	struct proto_msg	 msg;
	const char		*payload, *err;
	size_t			 plen, flen, len = evbuffer_get_length(conn->out);
	char			*data = (char *)evbuffer_pullup(conn->out, -1);
	uint32_t		 n = 0;

	*ack = 0;
	msgpack_unpacked_init(&up);
	while (proto_frame_peek(data, len, PROTO_MAX_MSG, &payload, &plen,
	    &flen) == 1) {
		cr_assert_eq(proto_decode(payload, plen, &up, &msg, &err), 0);
		if (msg.type == PROTO_ACK)
			*ack = msg.ack.seq;
		data += flen;
		len -= flen;
		n++;
	}
	msgpack_unpacked_destroy(&up);
	evbuffer_drain(conn->out, evbuffer_get_length(conn->out));
	return (n);
}

/* Decodes the first frame the daemon sent the agent. */
static void
sent_config(struct proto_msg *msg, msgpack_unpacked *up)
{
	const char	*payload, *err;
	size_t		 plen, flen, len = evbuffer_get_length(conn->out);
	char		*data = (char *)evbuffer_pullup(conn->out, -1);

	cr_assert_eq(proto_frame_peek(data, len, PROTO_MAX_MSG, &payload,
	    &plen, &flen), 1);
	cr_assert_eq(proto_decode(payload, plen, up, msg, &err), 0);
	cr_assert_eq(msg->type, PROTO_CONFIG);
}

Test(server_agent, accepts_a_well_formed_session)
{
	struct query		q;
	struct query_result	res;
	struct query_row	*rows;
	size_t			n;
	msgpack_unpacked	up;
	struct proto_msg	msg;

	hello(4242);
	definitions();
	samples(1, 1, 3);
	cr_assert_eq(feed(), 0, "error: %s", conn->error);
	cr_assert_eq(in.len, 0);
	cr_assert_not_null(conn->proc);
	cr_assert_eq(conn->proc->pid, 4242);
	cr_assert_str_eq(conn->proc->service, "web");
	cr_assert_eq(conn->proc->argc, 2);
	cr_assert_str_eq(conn->proc->argv[1], "app.py");
	cr_assert_eq(conn->proc->samples, 3);
	memset(&q, 0, sizeof q);
	q.mode = QUERY_MODE_ANY;
	cr_assert_eq(query_run(server_store, &q, &res), 0);
	cr_assert_eq(res.count, 3);
	cr_assert_eq(res.weight_us, 30000);
	cr_assert_eq(query_rows(server_store, &res, QUERY_BY_PROCESS, &rows,
	    &n), 0);
	cr_assert_eq(n, 1);
	cr_assert_eq(store_instance_get(server_store, rows[0].key)->pid, 4242);
	cr_assert_eq(rows[0].key, conn->instance);
	free(rows);
	cr_assert_eq(query_rows(server_store, &res, QUERY_BY_FUNCTION, &rows,
	    &n), 0);
	cr_assert_eq(n, 1);
	cr_assert_eq(rows[0].self, 3);
	free(rows);
	query_result_free(&res);

	msgpack_unpacked_init(&up);
	sent_config(&msg, &up);
	cr_assert_eq(msg.config.profiling, 0);
	cr_assert_eq(msg.config.rate_hz, PROTO_RATE_DEFAULT);
	msgpack_unpacked_destroy(&up);
}

Test(server_agent, joins_a_running_profile_on_hello)
{
	msgpack_unpacked	up;
	struct proto_msg	msg;

	server_profile.profiling = 1;
	server_profile.rate_hz = 250;
	server_profile.mode = PROTO_MODE_CPU;
	hello(7);
	cr_assert_eq(feed(), 0);
	msgpack_unpacked_init(&up);
	sent_config(&msg, &up);
	cr_assert_eq(msg.config.profiling, 1);
	cr_assert_eq(msg.config.rate_hz, 250);
	cr_assert_eq(msg.config.mode, PROTO_MODE_CPU);
	msgpack_unpacked_destroy(&up);
	cr_assert_eq(conn->proc->profiling, 1);
}

Test(server_agent, waits_for_the_rest_of_a_partial_frame)
{
	size_t	used = 99, full;

	hello(5);
	full = in.len;
	cr_assert_eq(server_agent_input(conn, in.data, full - 1, &used), 0);
	cr_assert_eq(used, 0);
	cr_assert_null(conn->proc);
	cr_assert_eq(server_agent_input(conn, in.data, full, &used), 0);
	cr_assert_eq(used, full);
	cr_assert_not_null(conn->proc);
}

Test(server_agent, rejects_message_before_hello)
{
	uint64_t before = daemon_stats.protocol_errors;

	proto_send_string(&in, 1, "x", 1);
	cr_assert_eq(feed(), -1);
	cr_assert(strstr(conn->error, "before hello") != NULL, "%s",
	    conn->error);
	cr_assert_eq(daemon_stats.protocol_errors, before + 1);
}

Test(server_agent, rejects_second_hello)
{
	hello(5);
	hello(5);
	cr_assert_eq(feed(), -1);
	cr_assert(strstr(conn->error, "second hello") != NULL);
}

Test(server_agent, rejects_out_of_order_id)
{
	hello(5);
	proto_send_string(&in, 2, "x", 1);
	cr_assert_eq(feed(), -1);
	cr_assert(strstr(conn->error, "out of order") != NULL, "%s",
	    conn->error);
}

Test(server_agent, rejects_redefined_id)
{
	hello(5);
	proto_send_string(&in, 1, "x", 1);
	proto_send_string(&in, 1, "y", 1);
	cr_assert_eq(feed(), -1);
}

Test(server_agent, rejects_undefined_function_in_frame)
{
	hello(5);
	proto_send_frame(&in, 1, 3, 1);
	cr_assert_eq(feed(), -1);
	cr_assert(strstr(conn->error, "undefined function id 3") != NULL,
	    "%s", conn->error);
}

Test(server_agent, rejects_undefined_frame_in_stack)
{
	uint32_t	frames[] = { 1, 2 };

	hello(5);
	definitions();
	proto_send_stack(&in, 2, 0, frames, 2);
	cr_assert_eq(feed(), -1);
	cr_assert(strstr(conn->error, "undefined frame id 2") != NULL);
}

Test(server_agent, rejects_a_batch_with_an_undefined_stack_whole)
{
	struct proto_sample	s[2] = {
		{ 1, 1, 1, 1, 0 }, { 9, 1, 1, 1, 0 }
	};

	hello(5);
	definitions();
	proto_send_samples(&in, 1, s, 2);
	cr_assert_eq(feed(), -1);
	cr_assert(strstr(conn->error, "undefined stack id 9") != NULL);
	cr_assert_eq(conn->proc->samples, 0);
}

Test(server_agent, rejects_undefined_thread)
{
	hello(5);
	definitions();
	samples(1, 2, 1);
	cr_assert_eq(feed(), -1);
	cr_assert(strstr(conn->error, "undefined thread id 2") != NULL);
}

Test(server_agent, rejects_oversized_frame)
{
	const unsigned char	hdr[] = { 0x7f, 0xff, 0xff, 0xff };
	uint64_t		before = daemon_stats.bad_frames;
	size_t			used;

	cr_assert_eq(server_agent_input(conn, (const char *)hdr, 4, &used),
	    -1);
	cr_assert_eq(daemon_stats.bad_frames, before + 1);
}

Test(server_agent, rejects_undecodable_payload)
{
	const char	frame[] = { 0, 0, 0, 3, (char)0xc1, 0, 0 };
	uint64_t	before = daemon_stats.bad_frames;
	size_t		used;

	cr_assert_eq(server_agent_input(conn, frame, sizeof frame, &used),
	    -1);
	cr_assert_eq(daemon_stats.bad_frames, before + 1);
	cr_assert(strstr(conn->error, "bad frame") != NULL);
}

Test(server_agent, rejects_daemon_messages_from_an_agent)
{
	hello(5);
	proto_send_config(&in, 1, 100, 0, 0, 0);
	cr_assert_eq(feed(), -1);
	cr_assert(strstr(conn->error, "unexpected message") != NULL);
}

Test(server_agent, drops_samples_of_ids_past_max_ids)
{
	struct store_counts	c;
	char			name[16];
	uint32_t		i, frame = 1;

	/* max_ids is 8: strings 9 and 10 are counted but not stored. */
	hello(5);
	for (i = 1; i <= 10; i++) {
		snprintf(name, sizeof name, "s%u", i);
		proto_send_string(&in, i, name, strlen(name));
	}
	proto_send_func(&in, 1, 9, 10, 1);
	proto_send_frame(&in, 1, 1, 1);
	proto_send_stack(&in, 1, 0, &frame, 1);
	proto_send_thread(&in, 1, 1, 1);
	samples(1, 1, 4);
	cr_assert_eq(feed(), 0, "%s", conn->error);
	store_get_counts(server_store, &c);
	cr_assert_eq(c.samples_dropped, 4);
	cr_assert_eq(c.samples_stored, 0);
	cr_assert_gt(daemon_stats.ids_unmapped, 0);
	cr_assert_eq(conn->proc->samples, 4);
}

Test(server_agent, keeps_the_agents_stats)
{
	uint64_t	values[REGISTRY_NSTATS];
	size_t		i;

	for (i = 0; i < REGISTRY_NSTATS; i++)
		values[i] = i + 100;
	hello(5);
	proto_send_stats(&in, values);
	cr_assert_eq(feed(), 0, "%s", conn->error);
	cr_assert_eq(registry_stat(conn->proc, "dropped"),
	    100 + 3);
	cr_assert_eq(store_instance_get(server_store, conn->instance)->dropped,
	    100 + 3);
}

Test(server_agent, marks_the_process_gone_on_free)
{
	struct registry_proc	*p;
	uint32_t		 instance;

	hello(5);
	cr_assert_eq(feed(), 0);
	p = conn->proc;
	instance = conn->instance;
	server_agent_free(conn);
	conn = NULL;
	cr_assert_eq(p->connected, 0);
	cr_assert_eq(registry_find(server_registry, 5), p);
	cr_assert_null(registry_find_connected(server_registry, 5));
	cr_assert_eq(store_instance_get(server_store, instance)->attached,
	    0);
	cr_assert_neq(store_instance_get(server_store, instance)->end_ns,
	    0);
}

Test(server_agent, survives_mutated_sessions)
{
	struct proto_sink	 good;
	struct agent_conn	*c;
	char			*buf;
	size_t			 used, i, k;
	unsigned int		 seed = 12345;

	hello(5);
	definitions();
	samples(1, 1, 4);
	good = in;
	buf = malloc(good.len);
	cr_assert_not_null(buf);
	for (i = 0; i < 3000; i++) {
		memcpy(buf, good.data, good.len);
		for (k = 0; k < 1 + i % 4; k++)
			buf[rand_r(&seed) % good.len] = (char)rand_r(&seed);
		c = server_agent_create(NULL);
		cr_assert_not_null(c);
		server_agent_input(c, buf, good.len - (i % 7), &used);
		cr_assert_leq(used, good.len);
		server_agent_free(c);
	}
	free(buf);
}

Test(server_agent, files_samples_by_thread_and_time)
{
	struct proto_sample		 s[3];
	const struct store_bucket	*b;
	const struct store_thread	*t;
	const struct store_instance	*inst;
	uint64_t			 base, width;
	uint32_t			 frame = 1;
	size_t				 i, seen = 0;

	/* A batch whose samples straddle a bucket boundary. */
	width = store_get_config(server_store)->tiers[0].width_ns;
	base = (now / width) * width - 1000;
	hello(5);
	proto_send_string(&in, 1, "work", 4);
	proto_send_string(&in, 2, "app.py", 6);
	proto_send_string(&in, 3, "worker", 6);
	proto_send_func(&in, 1, 1, 2, 10);
	proto_send_frame(&in, 1, 1, 12);
	proto_send_stack(&in, 1, 0, &frame, 1);
	proto_send_thread(&in, 1, 1234, 3);
	proto_send_thread(&in, 2, 1235, 1);
	memset(s, 0, sizeof s);
	s[0].stack = s[1].stack = s[2].stack = 1;
	s[0].thread = 1;
	s[1].thread = 1;
	s[2].thread = 2;
	s[0].dt_us = 0;
	s[1].dt_us = 1;		/* base + 1 us: the next bucket */
	s[2].dt_us = 5;
	s[0].weight_us = 1;
	s[1].weight_us = 2;
	s[2].weight_us = 4;
	cr_assert_eq(proto_send_samples(&in, base, s, 3), 0);
	cr_assert_eq(feed(), 0, "%s", conn->error);
	b = store_buckets(server_store);
	cr_assert_not_null(b);
	cr_assert_eq(b->start_ns, base - base % width);
	cr_assert_eq(b->samples, 1);
	cr_assert_not_null(b->next);
	cr_assert_eq(b->next->start_ns, b->start_ns + width);
	cr_assert_eq(b->next->samples, 2);
	for (b = store_buckets(server_store); b != NULL; b = b->next) {
		for (i = 0; i < b->cap; i++) {
			if (b->entries[i].count == 0)
				continue;
			t = store_thread_get(server_store,
			    b->entries[i].thread);
			cr_assert_not_null(t);
			cr_assert_eq(t->instance, conn->instance);
			if (t->tid == 1234) {
				cr_assert_str_eq(store_string_get(server_store,
				    t->name, NULL), "worker");
			} else {
				cr_assert_eq(t->tid, 1235);
				cr_assert_str_eq(store_string_get(server_store,
				    t->name, NULL), "work");
			}
			seen += b->entries[i].count;
		}
	}
	cr_assert_eq(seen, 3);
	inst = store_instance_get(server_store, conn->instance);
	cr_assert_eq(inst->samples, 3);
	cr_assert_eq(inst->last_ns, base + 6000);
}

Test(server_agent, keeps_the_mode_of_its_samples)
{
	struct query		q;
	struct query_result	res;

	server_profile.mode = PROTO_MODE_CPU;
	hello(5);
	definitions();
	samples(1, 1, 2);
	cr_assert_eq(feed(), 0, "%s", conn->error);
	memset(&q, 0, sizeof q);
	q.mode = PROTO_MODE_CPU;
	cr_assert_eq(query_run(server_store, &q, &res), 0);
	cr_assert_eq(res.count, 2);
	query_result_free(&res);
	q.mode = PROTO_MODE_WALL;
	cr_assert_eq(query_run(server_store, &q, &res), 0);
	cr_assert_eq(res.count, 0);
	query_result_free(&res);
}

Test(server_agent, a_new_start_time_is_a_new_instance)
{
	struct agent_conn	*c2;
	uint32_t		 first;
	size_t			 used;

	hello_at(5, 1000);
	cr_assert_eq(feed(), 0);
	first = conn->instance;
	server_agent_free(conn);
	conn = server_agent_create(NULL);
	hello_at(5, 1000);
	cr_assert_eq(feed(), 0);
	cr_assert_eq(conn->instance, first, "a reconnect");
	c2 = server_agent_create(NULL);
	hello_at(5, 2000);
	cr_assert_eq(server_agent_input(c2, in.data, in.len, &used), 0);
	proto_sink_consume(&in, used);
	cr_assert_neq(c2->instance, first, "the pid was reused");
	cr_assert_eq(store_instance_get(server_store, c2->instance)->start_ns,
	    2000);
}

Test(server_agent, housekeeping_keeps_what_live_agents_use)
{
	struct store_counts	c;
	uint32_t		gstack, depth;
	uint64_t		sweeps;

	hello(5);
	definitions();
	cr_assert_eq(feed(), 0, "%s", conn->error);
	gstack = conn->ids[AGENT_STACK].map[0];
	cr_assert_neq(gstack, 0);
	store_get_counts(server_store, &c);
	sweeps = c.sweeps;
	server_housekeep(server_now_ns(), 1);
	store_get_counts(server_store, &c);
	cr_assert_eq(c.sweeps, sweeps + 1);
	cr_assert_not_null(store_stack_get(server_store, gstack, &depth));
	cr_assert_not_null(store_instance_get(server_store, conn->instance));
	/* Samples sent after a sweep still land. */
	samples(1, 1, 2);
	cr_assert_eq(feed(), 0, "%s", conn->error);
	store_get_counts(server_store, &c);
	cr_assert_eq(c.samples_stored, 2);
}

/* Defines strings first..last (ids = their numbers). */
static void
strings(uint32_t first, uint32_t last)
{
	char		s[32];
	uint32_t	i;

	for (i = first; i <= last; i++) {
		snprintf(s, sizeof s, "s%u", i);
		cr_assert_eq(proto_send_string(&in, i, s, strlen(s)), 0);
	}
}

Test(server_agent, id_tables_grow_lazily_and_are_charged)
{
	uint64_t	perr = daemon_stats.protocol_errors;

	server_limits.max_ids = 1u << 20;
	hello_at(4242, 1);
	cr_assert_eq(feed(), 0);
	cr_assert_lt(conn->charged, 1024, "%zu bytes up front", conn->charged);
	cr_assert_eq(server_conn_bytes, conn->charged);
	strings(1, 300);
	cr_assert_eq(feed(), 0);
	cr_assert_geq(conn->charged, 300 * sizeof(uint32_t));
	/* The next doubling would pass the connections' budget. */
	server_conn_budget = server_conn_bytes + 64;
	strings(301, 600);
	cr_assert_eq(feed(), -1);
	cr_assert(strstr(conn->error, "memory budget") != NULL, "%s",
	    conn->error);
	cr_assert_eq(daemon_stats.memory_closes, 1);
	cr_assert_eq(daemon_stats.protocol_errors, perr);
	server_agent_free(conn);
	cr_assert_eq(server_conn_bytes, 0);
	conn = server_agent_create(NULL);
}

/* Decodes the first frame the daemon sent the agent, whatever its type. */
static void
sent_first(struct proto_msg *msg, msgpack_unpacked *up)
{
	const char	*payload, *err;
	size_t		 plen, flen, len = evbuffer_get_length(conn->out);
	char		*data = (char *)evbuffer_pullup(conn->out, -1);

	cr_assert_eq(proto_frame_peek(data, len, PROTO_MAX_MSG, &payload,
	    &plen, &flen), 1);
	cr_assert_eq(proto_decode(payload, plen, up, msg, &err), 0, "%s", err);
}

Test(server_agent, tells_a_version_3_agent_the_version_in_use)
{
	msgpack_unpacked	up;
	struct proto_msg	msg;

	hello(7);
	cr_assert_eq(feed(), 0);
	cr_assert_eq(conn->version, PROTO_VERSION);
	cr_assert_eq(conn->proc->version, PROTO_VERSION);
	msgpack_unpacked_init(&up);
	sent_config(&msg, &up);
	cr_assert_eq(msg.config.version, PROTO_VERSION);
	msgpack_unpacked_destroy(&up);
}

Test(server_agent, sends_a_version_2_agent_the_config_it_knows)
{
	msgpack_unpacked	up;
	struct proto_msg	msg;
	size_t			start;

	/* [100, {"version": 2, "pid": 9}] */
	start = proto_begin(&in, PROTO_HELLO, 1);
	msgpack_pack_map(&in.pk, 2);
	proto_pack_cstr(&in.pk, "version");
	msgpack_pack_uint32(&in.pk, 2);
	proto_pack_cstr(&in.pk, "pid");
	msgpack_pack_uint32(&in.pk, 9);
	cr_assert_eq(proto_end(&in, start), 0);
	cr_assert_eq(feed(), 0);
	cr_assert_eq(conn->version, 2);
	msgpack_unpacked_init(&up);
	sent_config(&msg, &up);
	cr_assert_eq(up.data.via.array.size, 6, "a v2 agent got %u fields",
	    up.data.via.array.size - 1);
	cr_assert_eq(msg.config.version, 0);
	msgpack_unpacked_destroy(&up);
}

Test(server_agent, rejects_a_hello_with_no_common_version)
{
	msgpack_unpacked	up;
	struct proto_msg	msg;
	size_t			start;
	uint64_t		before = daemon_stats.agents_incompatible;
	uint64_t		bad = daemon_stats.bad_frames;

	/* [100, {"version": 9, "version_min": 9, "pid": 9}], then more. */
	start = proto_begin(&in, PROTO_HELLO, 1);
	msgpack_pack_map(&in.pk, 3);
	proto_pack_cstr(&in.pk, "version");
	msgpack_pack_uint32(&in.pk, 9);
	proto_pack_cstr(&in.pk, "version_min");
	msgpack_pack_uint32(&in.pk, 9);
	proto_pack_cstr(&in.pk, "pid");
	msgpack_pack_uint32(&in.pk, 9);
	cr_assert_eq(proto_end(&in, start), 0);
	proto_send_string(&in, 1, "x", 1);
	cr_assert_eq(feed(), 0);
	cr_assert(conn->closing && conn->rejected);
	cr_assert_null(conn->proc);
	cr_assert_gt(in.len, 0, "read past the rejected hello");
	cr_assert_eq(daemon_stats.agents_incompatible, before + 1);
	cr_assert_eq(daemon_stats.bad_frames, bad);
	msgpack_unpacked_init(&up);
	sent_first(&msg, &up);
	cr_assert_eq(msg.type, PROTO_REJECT);
	cr_assert_eq(msg.reject.min, PROTO_VERSION_MIN);
	cr_assert_eq(msg.reject.max, PROTO_VERSION);
	msgpack_unpacked_destroy(&up);
}

Test(server_agent, skips_an_optional_message_of_a_newer_agent)
{
	size_t		start;
	uint64_t	before = daemon_stats.messages_skipped;

	hello(5);
	start = proto_begin(&in, (enum proto_type)PROTO_OPTIONAL_MIN, 1);
	msgpack_pack_uint32(&in.pk, 1);
	cr_assert_eq(proto_end(&in, start), 0);
	definitions();
	cr_assert_eq(feed(), 0, "%s", conn->error);
	cr_assert_eq(daemon_stats.messages_skipped, before + 1);
	start = proto_begin(&in, (enum proto_type)(PROTO_OPTIONAL_MIN - 1), 1);
	msgpack_pack_uint32(&in.pk, 1);
	cr_assert_eq(proto_end(&in, start), 0);
	cr_assert_eq(feed(), -1);
}

Test(server_agent, skips_numbered_batches_it_already_has_after_a_reconnect)
{
	const struct store_instance	*in_;
	uint64_t			 ack;

	hello(77);
	definitions();
	batch(1, 3);
	batch(2, 4);
	cr_assert_eq(feed(), 0, "%s", conn->error);
	cr_assert_eq(sent_frames(&ack), 1, "CONFIG, no ACK per batch");
	/* Memory only: what is stored is acknowledged at the next tick. */
	server_housekeep(server_now_ns(), 0);
	cr_assert_eq(sent_frames(&ack), 1);
	cr_assert_eq(ack, 2);
	server_housekeep(server_now_ns(), 0);
	cr_assert_eq(sent_frames(&ack), 0, "the same ACK twice");
	server_agent_free(conn);

	/* The same process again, sending what it kept (1 and 2 were not
	 * acknowledged in time, say) and a new batch. */
	conn = server_agent_create(NULL);
	hello(77);
	cr_assert_eq(feed(), 0);
	cr_assert_eq(sent_frames(&ack), 2, "CONFIG and an ACK on hello");
	cr_assert_eq(ack, 2);
	definitions();
	batch(1, 3);
	batch(2, 4);
	batch(3, 5);
	cr_assert_eq(feed(), 0, "%s", conn->error);
	in_ = store_instance_get(server_store, conn->instance);
	cr_assert_eq(in_->samples, 3 + 4 + 5);
	cr_assert_eq(in_->seq, 3);
	cr_assert_eq(daemon_stats.samples_duplicate, 3 + 4);
	server_housekeep(server_now_ns(), 0);
	cr_assert_eq(sent_frames(&ack), 1);
	cr_assert_eq(ack, 3);
}

Test(server_agent, never_acks_an_older_agent_nor_takes_its_batches)
{
	uint64_t	ack;
	size_t		start;

	/* [100, {"version": 2, "pid": 78}] */
	start = proto_begin(&in, PROTO_HELLO, 1);
	msgpack_pack_map(&in.pk, 2);
	proto_pack_cstr(&in.pk, "version");
	msgpack_pack_uint32(&in.pk, 2);
	proto_pack_cstr(&in.pk, "pid");
	msgpack_pack_uint32(&in.pk, 78);
	cr_assert_eq(proto_end(&in, start), 0);
	definitions();
	samples(1, 1, 4);
	cr_assert_eq(feed(), 0, "%s", conn->error);
	server_housekeep(server_now_ns(), 0);
	cr_assert_eq(sent_frames(&ack), 1, "only its CONFIG");
	cr_assert_eq(ack, 0);
	batch(1, 2);
	cr_assert_eq(feed(), -1);
	cr_assert(strstr(conn->error, "version 2") != NULL, "%s", conn->error);
}

/* A version 5 batch of n samples, and invalid stacks left out. */
static void
batch_v5(uint64_t seq, uint32_t n, uint32_t invalid)
{
	struct proto_sample	s[16];
	uint32_t		i;

	for (i = 0; i < n; i++)
		s[i] = (struct proto_sample){ 1, 1, 10000, 10000,
		    PROTO_SAMPLE_ONCPU };
	cr_assert_eq(proto_send_batch_v5(&in, seq, now, s, n, invalid), 0);
}

/* What the store's buckets say of the stacks of every agent. */
static void
tallied(uint64_t *reported, uint64_t *invalid)
{
	struct query		q;
	struct query_result	res;

	memset(&q, 0, sizeof q);
	q.mode = QUERY_MODE_ANY;
	cr_assert_eq(query_run(server_store, &q, &res), 0);
	*reported = res.reported;
	*invalid = res.invalid;
	query_result_free(&res);
}

Test(server_agent, tallies_the_stacks_a_version_5_batch_left_out)
{
	uint64_t	reported, invalid;

	hello(80);
	definitions();
	batch_v5(1, 3, 2);
	batch_v5(2, 0, 5);
	cr_assert_eq(feed(), 0, "%s", conn->error);
	cr_assert_geq(conn->version, PROTO_VERSION_INVALID);
	tallied(&reported, &invalid);
	cr_assert_eq(reported, 3);
	cr_assert_eq(invalid, 7);
	/* A batch sent again (after a reconnect) is not counted twice. */
	batch_v5(1, 3, 2);
	cr_assert_eq(feed(), 0, "%s", conn->error);
	tallied(&reported, &invalid);
	cr_assert_eq(reported, 3);
	cr_assert_eq(invalid, 7);
}

/* The samples the store has in one mode. */
static uint64_t
samples_in(int mode)
{
	struct query		q;
	struct query_result	res;
	uint64_t		n;

	memset(&q, 0, sizeof q);
	q.mode = mode;
	cr_assert_eq(query_run(server_store, &q, &res), 0);
	n = res.count;
	query_result_free(&res);
	return (n);
}

Test(server_agent, files_a_version_6_batch_under_the_mode_it_was_taken_in)
{
	struct proto_sample	s = { 1, 1, 10000, 10000, PROTO_SAMPLE_ONCPU };

	hello(82);
	definitions();
	cr_assert_eq(feed(), 0, "%s", conn->error);
	cr_assert_eq(conn->version, PROTO_VERSION_MODE);
	/* The connection's setting is wall; the batches say otherwise. */
	cr_assert_eq(conn->proc->mode, PROTO_MODE_WALL);
	cr_assert_eq(proto_send_batch_v6(&in, 1, now, &s, 1, 0,
	    PROTO_MODE_CPU), 0);
	cr_assert_eq(proto_send_batch_v6(&in, 2, now, &s, 1, 0,
	    PROTO_MODE_CPU), 0);
	cr_assert_eq(proto_send_batch_v6(&in, 3, now, &s, 1, 0,
	    PROTO_MODE_GIL), 0);
	/* Without the field: the connection's setting. */
	batch_v5(4, 1, 0);
	cr_assert_eq(feed(), 0, "%s", conn->error);
	cr_assert_eq(samples_in(PROTO_MODE_CPU), 2);
	cr_assert_eq(samples_in(PROTO_MODE_GIL), 1);
	cr_assert_eq(samples_in(PROTO_MODE_WALL), 1);
}

Test(server_agent, takes_no_count_of_stacks_left_out_below_version_5)
{
	uint64_t	reported, invalid;
	size_t		start;

	/* [100, {"version": 2, "version_min": 1, "version_max": 4, "pid":
	 * 81}]: a version 4 agent that sends the count all the same. */
	start = proto_begin(&in, PROTO_HELLO, 1);
	msgpack_pack_map(&in.pk, 4);
	proto_pack_cstr(&in.pk, "version");
	msgpack_pack_uint32(&in.pk, 2);
	proto_pack_cstr(&in.pk, "version_min");
	msgpack_pack_uint32(&in.pk, 1);
	proto_pack_cstr(&in.pk, "version_max");
	msgpack_pack_uint32(&in.pk, 4);
	proto_pack_cstr(&in.pk, "pid");
	msgpack_pack_uint32(&in.pk, 81);
	cr_assert_eq(proto_end(&in, start), 0);
	definitions();
	batch_v5(1, 3, 2);
	cr_assert_eq(feed(), 0, "%s", conn->error);
	cr_assert_eq(conn->version, 4);
	tallied(&reported, &invalid);
	cr_assert_eq(store_instance_get(server_store, conn->instance)->samples,
	    3);
	cr_assert_eq(reported + invalid, 0, "unknown, not 0 of 3");
}
