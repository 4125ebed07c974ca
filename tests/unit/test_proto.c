/* test_proto.c -- round trips and malformed input for proto.c. */

#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include <string.h>

#include "proto.h"

static struct proto_sink	sink;
static msgpack_unpacked		up;

static void
setup(void)
{
	proto_sink_init(&sink, PROTO_MAX_REPLY);
	msgpack_unpacked_init(&up);
}

static void
teardown(void)
{
	proto_sink_free(&sink);
	msgpack_unpacked_destroy(&up);
}

TestSuite(proto, .init = setup, .fini = teardown);

/* Decodes the only frame in the sink. */
static int
decode_one(struct proto_msg *msg, const char **err)
{
	const char	*payload;
	size_t		 plen, flen;

	cr_assert_eq(proto_frame_peek(sink.data, sink.len, PROTO_MAX_MSG,
	    &payload, &plen, &flen), 1);
	cr_assert_eq(flen, sink.len);
	return (proto_decode(payload, plen, &up, msg, err));
}

Test(proto, round_trips_hello)
{
	struct proto_hello	 h = { 0 };
	struct proto_msg	 m;
	const char		*err, *argv[] = { "python3", "app.py" };

	h.pid = 4242;
	h.ppid = 1;
	h.start_ns = 123456789;
	h.host = "box";
	h.service = "web";
	h.python = "3.12.1";
	h.reader = "direct";
	cr_assert_eq(proto_send_hello(&sink, &h, argv, 2), 0);
	cr_assert_eq(decode_one(&m, &err), 0, "%s", err);
	cr_assert_eq(m.type, PROTO_HELLO);
	cr_assert_eq(m.hello.pid, 4242);
	/* Old daemons read "version"; new ones the range. */
	cr_assert_eq(m.hello.version, PROTO_VERSION_COMPAT);
	cr_assert_eq(m.hello.version_min, PROTO_VERSION_MIN);
	cr_assert_eq(m.hello.version_max, PROTO_VERSION);
	cr_assert_eq(m.hello.service_len, 3);
	cr_assert(memcmp(m.hello.service, "web", 3) == 0);
	cr_assert_eq(m.hello.argc, 2);
	cr_assert(memcmp(m.hello.argv[1].via.str.ptr, "app.py", 6) == 0);
}

Test(proto, round_trips_definitions)
{
	uint32_t		 frames[] = { 3, 2, 1 };
	struct proto_msg	 m;
	const char		*err;

	cr_assert_eq(proto_send_string(&sink, 7, "leaf_a", 6), 0);
	cr_assert_eq(decode_one(&m, &err), 0, "%s", err);
	cr_assert_eq(m.string.id, 7);
	cr_assert_eq(m.string.len, 6);
	sink.len = 0;

	cr_assert_eq(proto_send_func(&sink, 1, 2, 3, 40), 0);
	cr_assert_eq(decode_one(&m, &err), 0);
	cr_assert_eq(m.func.line, 40);
	sink.len = 0;

	cr_assert_eq(proto_send_stack(&sink, 9, 1, frames, 3), 0);
	cr_assert_eq(decode_one(&m, &err), 0);
	cr_assert_eq(m.stack.id, 9);
	cr_assert_eq(m.stack.truncated, 1);
	cr_assert_eq(m.stack.depth, 3);
	cr_assert_eq(m.stack.frames[2].via.u64, 1);
	sink.len = 0;

	cr_assert_eq(proto_send_thread(&sink, 1, 99999, 5), 0);
	cr_assert_eq(decode_one(&m, &err), 0);
	cr_assert_eq(m.thread.tid, 99999);
}

Test(proto, round_trips_samples)
{
	struct proto_sample	 in[3] = {
		{ 1, 1, 0, 1000, PROTO_SAMPLE_ONCPU },
		{ 2, 1, 1000, 1000, 0 },
		{ 1, 2, 0, 999, PROTO_SAMPLE_GIL },
	}, out;
	struct proto_msg	 m;
	const char		*err;

	cr_assert_eq(proto_send_samples(&sink, 1ull << 40, in, 3), 0);
	cr_assert_eq(decode_one(&m, &err), 0, "%s", err);
	cr_assert_eq(m.samples.count, 3);
	cr_assert_eq(m.samples.base_ns, 1ull << 40);
	proto_sample_get(&m, 2, &out);
	cr_assert_eq(out.stack, 1);
	cr_assert_eq(out.thread, 2);
	cr_assert_eq(out.weight_us, 999);
	cr_assert_eq(out.flags, PROTO_SAMPLE_GIL);
}

Test(proto, round_trips_numbered_batch_and_ack)
{
	struct proto_sample	 in[2] = {
		{ 1, 1, 0, 1000, PROTO_SAMPLE_ONCPU },
		{ 2, 1, 10, 1000, 0 },
	}, out;
	struct proto_msg	 m;
	const char		*err;

	cr_assert_eq(proto_send_batch(&sink, 0, 5, in, 2), -1);
	cr_assert_eq(proto_send_batch(&sink, 1ull << 40, 77, in, 2), 0);
	cr_assert_eq(decode_one(&m, &err), 0, "%s", err);
	cr_assert_eq(m.type, PROTO_BATCH);
	cr_assert_eq(m.samples.seq, 1ull << 40);
	cr_assert_eq(m.samples.base_ns, 77);
	cr_assert_eq(m.samples.count, 2);
	cr_assert_eq(m.samples.has_invalid, 0, "a version 4 batch says not");
	proto_sample_get(&m, 1, &out);
	cr_assert_eq(out.stack, 2);
	cr_assert_eq(out.dt_us, 10);
	sink.len = 0;

	cr_assert_eq(proto_send_samples(&sink, 5, in, 2), 0);
	cr_assert_eq(decode_one(&m, &err), 0, "%s", err);
	cr_assert_eq(m.type, PROTO_SAMPLES);
	cr_assert_eq(m.samples.seq, 0);
	sink.len = 0;

	cr_assert_eq(proto_send_ack(&sink, UINT64_MAX), 0);
	cr_assert_eq(decode_one(&m, &err), 0, "%s", err);
	cr_assert_eq(m.type, PROTO_ACK);
	cr_assert_eq(m.ack.seq, UINT64_MAX);
}

Test(proto, round_trips_a_batch_with_the_stacks_left_out)
{
	struct proto_sample	 in[1] = { { 1, 1, 0, 1000, 0 } };
	struct proto_msg	 m;
	const char		*err;

	cr_assert_eq(proto_send_batch_v5(&sink, 0, 5, in, 1, 3), -1);
	cr_assert_eq(proto_send_batch_v5(&sink, 9, 77, in, 1, 3), 0);
	cr_assert_eq(decode_one(&m, &err), 0, "%s", err);
	cr_assert_eq(m.type, PROTO_BATCH);
	cr_assert_eq(m.samples.seq, 9);
	cr_assert_eq(m.samples.count, 1);
	cr_assert_eq(m.samples.has_invalid, 1);
	cr_assert_eq(m.samples.invalid, 3);
	sink.len = 0;
	msgpack_unpacked_destroy(&up);
	msgpack_unpacked_init(&up);
	/* Only stacks left out: a batch without samples. */
	cr_assert_eq(proto_send_batch_v5(&sink, 10, 77, NULL, 0, UINT32_MAX),
	    0);
	cr_assert_eq(decode_one(&m, &err), 0, "%s", err);
	cr_assert_eq(m.samples.count, 0);
	cr_assert_eq(m.samples.invalid, UINT32_MAX);
}

Test(proto, round_trips_a_batch_with_its_mode)
{
	struct proto_sample	 in[1] = { { 1, 1, 0, 1000, 0 } };
	struct proto_msg	 m;
	const char		*err;

	cr_assert_eq(proto_send_batch_v6(&sink, 0, 5, in, 1, 0,
	    PROTO_MODE_CPU), -1);
	cr_assert_eq(proto_send_batch_v6(&sink, 9, 5, in, 1, 0,
	    PROTO_MODE_LAST + 1), -1);
	cr_assert_eq(proto_send_batch_v6(&sink, 9, 77, in, 1, 2,
	    PROTO_MODE_CPU), 0);
	cr_assert_eq(decode_one(&m, &err), 0, "%s", err);
	cr_assert_eq(m.type, PROTO_BATCH);
	cr_assert_eq(m.samples.seq, 9);
	cr_assert_eq(m.samples.count, 1);
	cr_assert_eq(m.samples.invalid, 2);
	cr_assert_eq(m.samples.has_mode, 1);
	cr_assert_eq(m.samples.mode, PROTO_MODE_CPU);
	sink.len = 0;
	msgpack_unpacked_destroy(&up);
	msgpack_unpacked_init(&up);
	/* A version 5 batch says no mode. */
	cr_assert_eq(proto_send_batch_v5(&sink, 10, 77, in, 1, 0), 0);
	cr_assert_eq(decode_one(&m, &err), 0, "%s", err);
	cr_assert_eq(m.samples.has_mode, 0);
}

Test(proto, rejects_a_batch_with_an_unknown_mode)
{
	/* [109, 1, 0, [], 0, 9] */
	static const unsigned char b[] = { 0x96, 0xcc, 109, 0x01, 0x00, 0x90,
	    0x00, 0x09 };
	msgpack_unpacked	 u;
	struct proto_msg	 m;
	const char		*err = NULL;

	msgpack_unpacked_init(&u);
	cr_assert_eq(proto_decode((const char *)b, sizeof b, &u, &m, &err),
	    -1);
	cr_assert_not_null(err);
	msgpack_unpacked_destroy(&u);
}

Test(proto, samples_cost_few_bytes_each)
{
	struct proto_sample	s[512];
	uint32_t		i;

	for (i = 0; i < 512; i++)
		s[i] = (struct proto_sample){ 1 + i % 50, 1, 1000, 1000, 1 };
	cr_assert_eq(proto_send_samples(&sink, 1ull << 60, s, 512), 0);
	cr_assert_leq(sink.len / 512, 12);
}

Test(proto, round_trips_stats_and_config)
{
	uint64_t		 v[64];
	uint64_t		 got;
	struct proto_msg	 m;
	const char		*err;
	size_t			 i;

	for (i = 0; i < proto_agent_stat_count; i++)
		v[i] = i * 10;
	cr_assert_eq(proto_send_stats(&sink, v), 0);
	cr_assert_eq(decode_one(&m, &err), 0, "%s", err);
	cr_assert_eq(proto_map_uint(m.stats.map, "samples", &got), 0);
	cr_assert_eq(got, 10);
	sink.len = 0;

	cr_assert_eq(proto_send_config(&sink, 1, 1000, PROTO_MODE_CPU,
	    PROTO_READER_DIRECT, 10), 0);
	cr_assert_eq(decode_one(&m, &err), 0);
	cr_assert_eq(m.config.profiling, 1);
	cr_assert_eq(m.config.rate_hz, 1000);
	cr_assert_eq(m.config.mode, PROTO_MODE_CPU);
	cr_assert_eq(m.config.jitter_pct, 10);
}

Test(proto, round_trips_resync_and_its_ack)
{
	struct proto_msg	 m;
	const char		*err;

	cr_assert_eq(proto_send_resync(&sink, 7), 0);
	cr_assert_eq(decode_one(&m, &err), 0, "%s", err);
	cr_assert_eq(m.type, PROTO_RESYNC);
	cr_assert_eq(m.resync.token, 7);
	sink.len = 0;

	cr_assert_eq(proto_send_resync_ack(&sink, UINT32_MAX), 0);
	cr_assert_eq(decode_one(&m, &err), 0, "%s", err);
	cr_assert_eq(m.type, PROTO_RESYNC_ACK);
	cr_assert_eq(m.resync.token, UINT32_MAX);
	sink.len = 0;

	cr_assert_eq(proto_send_resync_ack(&sink, 0), 0);
	cr_assert_eq(decode_one(&m, &err), 0, "%s", err);
	cr_assert_eq(m.resync.token, 0);
}

Test(proto, resync_ack_that_does_not_fit_leaves_nothing_behind)
{
	char			buf[8];
	struct proto_sink	fixed;

	proto_sink_init_fixed(&fixed, buf, sizeof buf);
	cr_assert_eq(proto_send_resync_ack(&fixed, 1), 0);	/* 7 bytes */
	cr_assert_eq(proto_send_resync_ack(&fixed, 2), -1);
	cr_assert_eq(fixed.len, 7);
}

Test(proto, accepts_hellos_from_the_oldest_version_on)
{
	/* [100, {"version": PROTO_VERSION_MIN, "pid": 5}] */
	static const unsigned char v1[] = { 0x92, 0x64, 0x82, 0xa7, 'v', 'e',
	    'r', 's', 'i', 'o', 'n', PROTO_VERSION_MIN, 0xa3, 'p', 'i', 'd',
	    0x05 };
	struct proto_msg	 m;
	const char		*err;

	cr_assert_geq(PROTO_VERSION, 2);
	cr_assert_eq(proto_decode((const char *)v1, sizeof v1, &up, &m, &err),
	    0, "%s", err);
	cr_assert_eq(m.hello.version, PROTO_VERSION_MIN);
	cr_assert_eq(m.hello.pid, 5);
}

Test(proto, round_trips_request_and_reply)
{
	struct proto_msg	 m;
	const char		*err;
	uint64_t		 rate;
	size_t			 start;

	start = proto_begin_request(&sink, "start", 1);
	proto_pack_cstr(&sink.pk, "rate_hz");
	msgpack_pack_uint32(&sink.pk, 250);
	cr_assert_eq(proto_end(&sink, start), 0);
	cr_assert_eq(decode_one(&m, &err), 0);
	cr_assert_eq(m.request.command_len, 5);
	cr_assert_eq(proto_map_uint(m.request.args, "rate_hz", &rate), 0);
	cr_assert_eq(rate, 250);
	sink.len = 0;

	cr_assert_eq(proto_send_error(&sink, "no agent with pid %d", 7), 0);
	cr_assert_eq(decode_one(&m, &err), 0);
	cr_assert_eq(m.reply.ok, 0);
	cr_assert(memcmp(m.reply.body->via.str.ptr, "no agent with pid 7",
	    19) == 0);
}

Test(proto, fixed_sink_rolls_back_a_frame_that_does_not_fit)
{
	char			buf[64];
	struct proto_sink	fixed;
	char			big[100];

	memset(big, 'x', sizeof big);
	proto_sink_init_fixed(&fixed, buf, sizeof buf);
	cr_assert_eq(proto_send_string(&fixed, 1, "ok", 2), 0);
	cr_assert_eq(fixed.len, 4 + 6);
	cr_assert_eq(proto_send_string(&fixed, 2, big, sizeof big), -1);
	cr_assert_eq(fixed.len, 10, "a failed frame leaves nothing behind");
	cr_assert_eq(proto_send_string(&fixed, 2, "next", 4), 0);
	proto_sink_consume(&fixed, 10);
	cr_assert_eq(fixed.len, 4 + 8);
}

Test(proto, peek_waits_for_whole_frame_and_rejects_oversize)
{
	const char	*p;
	size_t		 pl, fl;
	char		 hdr[8] = { 0, 0, 0, 3, (char)0x91, 0x01 };
	char		 huge[4] = { 0x7f, 0, 0, 0 };
	char		 empty[4] = { 0, 0, 0, 0 };

	cr_assert_eq(proto_frame_peek(hdr, 2, PROTO_MAX_MSG, &p, &pl, &fl), 0);
	cr_assert_eq(proto_frame_peek(hdr, 6, PROTO_MAX_MSG, &p, &pl, &fl), 0);
	cr_assert_eq(proto_frame_peek(huge, 4, PROTO_MAX_MSG, &p, &pl, &fl),
	    -1);
	cr_assert_eq(proto_frame_peek(empty, 4, PROTO_MAX_MSG, &p, &pl, &fl),
	    -1);
}

Test(proto, names_parse_both_ways)
{
	cr_assert_eq(proto_mode_parse("cpu"), PROTO_MODE_CPU);
	cr_assert_eq(proto_mode_parse("bogus"), -1);
	cr_assert_str_eq(proto_reader_name(PROTO_READER_GIL), "gil");
	cr_assert_eq(proto_reader_parse("direct"), PROTO_READER_DIRECT);
	cr_assert_str_eq(proto_mode_name(99), "?");
}

/* Malformed payloads: every one must be rejected with a reason. */
struct bad_payload {
	const char	*what;
	unsigned char	 bytes[32];
	size_t		 len;
};

static struct bad_payload bad_payloads[] = {
	{ "not msgpack", { 0xc1 }, 1 },
	{ "not an array", { 0x05 }, 1 },
	{ "empty array", { 0x90 }, 1 },
	{ "unknown type", { 0x91, 0xcd, 0x03, 0xe7 }, 4 },
	{ "type is a string", { 0x92, 0xa1, 'x', 0x01 }, 4 },
	{ "too few fields", { 0x92, 0x65, 0x01 }, 3 },
	{ "string id zero", { 0x93, 0x65, 0x00, 0xa1, 'x' }, 5 },
	{ "string id negative", { 0x93, 0x65, 0xff, 0xa1, 'x' }, 5 },
	{ "string id too large", { 0x93, 0x65, 0xce, 0x7f, 0, 0, 0, 0xa1,
	    'x' }, 9 },
	{ "string is an int", { 0x93, 0x65, 0x01, 0x02 }, 4 },
	{ "truncated string", { 0x93, 0x65, 0x01, 0xa5, 'x' }, 5 },
	{ "array bomb", { 0x93, 0x68, 0x01, 0xdd, 0xff, 0xff, 0xff, 0xff },
	    8 },
	{ "map bomb", { 0x92, 0x64, 0xdf, 0x7f, 0xff, 0xff, 0xff }, 7 },
	{ "samples not multiple of five", { 0x93, 0x6a, 0x00, 0x93, 1, 1, 1 },
	    7 },
	{ "sample with stack zero", { 0x93, 0x6a, 0x00, 0x95, 0, 1, 1, 1, 0 },
	    9 },
	{ "sample with unknown flag", { 0x93, 0x6a, 0x00, 0x95, 1, 1, 1, 1,
	    0x40 }, 9 },
	{ "stack frame id zero", { 0x94, 0x68, 0x01, 0xc2, 0x91, 0x00 }, 6 },
	{ "stack truncated not bool", { 0x94, 0x68, 0x01, 0x01, 0x90 }, 5 },
	{ "hello not a map", { 0x92, 0x64, 0x01 }, 3 },
	{ "hello without pid", { 0x92, 0x64, 0x81, 0xa7, 'v', 'e', 'r', 's',
	    'i', 'o', 'n', 0x01 }, 12 },
	{ "hello with version_min over version_max", { 0x92, 0x64, 0x83,
	    0xa7, 'v', 'e', 'r', 's', 'i', 'o', 'n', 0x02, 0xab, 'v', 'e',
	    'r', 's', 'i', 'o', 'n', '_', 'm', 'i', 'n', 0x03, 0xa3, 'p', 'i',
	    'd', 0x05 }, 30 },
	{ "hello with a string version", { 0x92, 0x64, 0x82, 0xa7, 'v', 'e',
	    'r', 's', 'i', 'o', 'n', 0xa1, '2', 0xa3, 'p', 'i', 'd', 0x05 },
	    18 },
	{ "reject without reason", { 0x93, 0xcc, 0xca, 0x01, 0x03 }, 5 },
	{ "reject reason an int", { 0x94, 0xcc, 0xca, 0x01, 0x03, 0x07 }, 6 },
	{ "config version a string", { 0x97, 0xcc, 0xc8, 0xc3, 0x01, 0x00,
	    0x00, 0x00, 0xa1, '3' }, 10 },
	{ "resync without token", { 0x91, 0xcc, 0xc9 }, 3 },
	{ "resync token negative", { 0x92, 0xcc, 0xc9, 0xff }, 4 },
	{ "resync token over 32 bits", { 0x92, 0xcc, 0xc9, 0xcf, 0, 0, 0, 1,
	    0, 0, 0, 0 }, 12 },
	{ "resync token a string", { 0x92, 0xcc, 0xc9, 0xa1, '1' }, 5 },
	{ "resync token a float", { 0x92, 0xcc, 0xc9, 0xca, 0x3f, 0x80, 0, 0 },
	    8 },
	{ "resync ack without token", { 0x91, 0x6c }, 2 },
	{ "resync ack token nil", { 0x92, 0x6c, 0xc0 }, 3 },
	{ "resync ack token negative", { 0x92, 0x6c, 0xd0, 0x80 }, 4 },
	{ "resync ack token truncated", { 0x92, 0x6c, 0xce, 0x00, 0x01 }, 5 },
	{ "batch numbered zero", { 0x94, 0x6d, 0x00, 0x00, 0x90 }, 5 },
	{ "batch without number", { 0x93, 0x6d, 0x00, 0x90 }, 4 },
	{ "batch number a string", { 0x94, 0x6d, 0xa1, '1', 0x00, 0x90 }, 6 },
	{ "batch with a short sample", { 0x94, 0x6d, 0x01, 0x00, 0x92, 0x01,
	    0x01 }, 7 },
	{ "batch with stacks left out a string", { 0x95, 0x6d, 0x01, 0x00,
	    0x90, 0xa1, '1' }, 7 },
	{ "batch with stacks left out negative", { 0x95, 0x6d, 0x01, 0x00,
	    0x90, 0xff }, 6 },
	{ "batch with stacks left out over 32 bits", { 0x95, 0x6d, 0x01, 0x00,
	    0x90, 0xcf, 0, 0, 0, 1, 0, 0, 0, 0 }, 14 },
	{ "ack without number", { 0x91, 0xcc, 0xcb }, 3 },
	{ "ack number negative", { 0x92, 0xcc, 0xcb, 0xff }, 4 },
	{ "config rate zero", { 0x96, 0xcc, 0xc8, 0xc3, 0x00, 0x00, 0x00,
	    0x00 }, 8 },
	{ "config rate too high", { 0x96, 0xcc, 0xc8, 0xc3, 0xcd, 0x4e, 0x21,
	    0x00, 0x00, 0x00 }, 10 },
	{ "config unknown mode", { 0x96, 0xcc, 0xc8, 0xc3, 0x01, 0x09, 0x00,
	    0x00 }, 8 },
	{ "config jitter too high", { 0x96, 0xcc, 0xc8, 0xc3, 0x01, 0x00, 0x00,
	    0x33 }, 8 },
	{ "config without jitter", { 0x95, 0xcc, 0xc8, 0xc3, 0x01, 0x00, 0x00 },
	    7 },
	{ "stats value negative", { 0x92, 0x6b, 0x81, 0xa1, 'x', 0xff }, 6 },
	{ "trailing bytes", { 0x93, 0x65, 0x01, 0xa1, 'x', 0x00 }, 6 },
	{ "deep nesting", { 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91,
	    0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91,
	    0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91,
	    0x91, 0x91 }, 32 },
	{ "reserved byte", { 0x92, 0x65, 0xc1 }, 3 },
};

ParameterizedTestParameters(proto, rejects_malformed_payload)
{
	return (cr_make_param_array(struct bad_payload, bad_payloads,
	    sizeof bad_payloads / sizeof bad_payloads[0]));
}

ParameterizedTest(struct bad_payload *bad, proto, rejects_malformed_payload)
{
	struct proto_msg	 m;
	const char		*err = NULL;

	cr_assert_eq(proto_decode((const char *)bad->bytes, bad->len, &up, &m,
	    &err), -1, "accepted: %s", bad->what);
	cr_assert_not_null(err, "no reason for: %s", bad->what);
}

Test(proto, decoder_survives_every_truncation)
{
	struct proto_hello	 h = { 0 };
	struct proto_msg	 m;
	const char		*err, *argv[] = { "a" };
	size_t			 n;

	h.pid = 1;
	h.host = h.service = h.python = h.reader = "x";
	proto_send_hello(&sink, &h, argv, 1);
	for (n = 0; n + PROTO_HEADER_SIZE < sink.len; n++) {
		msgpack_unpacked_destroy(&up);
		msgpack_unpacked_init(&up);
		cr_assert_eq(proto_decode(sink.data + PROTO_HEADER_SIZE, n,
		    &up, &m, &err), -1);
	}
}

Test(proto, hello_without_range_is_its_version)
{
	/* [100, {"version": 9, "pid": 5}]: decodes; negotiation says no. */
	static const unsigned char v9[] = { 0x92, 0x64, 0x82, 0xa7, 'v', 'e',
	    'r', 's', 'i', 'o', 'n', 0x09, 0xa3, 'p', 'i', 'd', 0x05 };
	struct proto_msg	 m;
	const char		*err;
	uint32_t		 v = 0;

	cr_assert_eq(proto_decode((const char *)v9, sizeof v9, &up, &m, &err),
	    0, "%s", err);
	cr_assert_eq(m.hello.version_min, 9);
	cr_assert_eq(m.hello.version_max, 9);
	cr_assert_eq(proto_negotiate(&m.hello, &v), -1);
}

struct nego_case {
	uint64_t	min, max;
	int		rc;
	uint32_t	version;
};

static struct nego_case nego_cases[] = {
	{ 1, 1, 0, 1 },			/* a version 1 agent */
	{ 2, 2, 0, 2 },			/* a version 2 agent */
	{ 1, 3, 0, 3 },			/* this release */
	{ 2, 9, 0, PROTO_VERSION },	/* a newer agent that still speaks 3 */
	{ 0, 1, 0, 1 },
	{ PROTO_VERSION + 1, 9, -1, 0 },	/* entirely newer */
	{ 0, 0, -1, 0 },			/* entirely older */
};

ParameterizedTestParameters(proto, negotiates_the_highest_common_version)
{
	return (cr_make_param_array(struct nego_case, nego_cases,
	    sizeof nego_cases / sizeof nego_cases[0]));
}

ParameterizedTest(struct nego_case *c, proto,
    negotiates_the_highest_common_version)
{
	struct proto_hello	h = { 0 };
	uint32_t		v = 0;

	h.version_min = c->min;
	h.version_max = c->max;
	cr_assert_eq(proto_negotiate(&h, &v), c->rc, "%llu..%llu",
	    (unsigned long long)c->min, (unsigned long long)c->max);
	if (c->rc == 0)
		cr_assert_eq(v, c->version);
}

Test(proto, ignores_unknown_hello_keys)
{
	/* [100, {"version": 2, "pid": 5, "zz": [1]}] */
	static const unsigned char h[] = { 0x92, 0x64, 0x83, 0xa7, 'v', 'e',
	    'r', 's', 'i', 'o', 'n', 0x02, 0xa3, 'p', 'i', 'd', 0x05, 0xa2,
	    'z', 'z', 0x91, 0x01 };
	struct proto_msg	 m;
	const char		*err;

	cr_assert_eq(proto_decode((const char *)h, sizeof h, &up, &m, &err),
	    0, "%s", err);
	cr_assert_eq(m.hello.pid, 5);
}

Test(proto, skips_trailing_fields_of_a_newer_version)
{
	/* [101, 1, "x", 7] and a CONFIG of a version to come: 8 fields,
	 * the budget (100) then one more. */
	static const unsigned char str[] = { 0x94, 0x65, 0x01, 0xa1, 'x',
	    0x07 };
	static const unsigned char cfg[] = { 0x99, 0xcc, 0xc8, 0xc3, 0x0a,
	    0x01, 0x00, 0x00, 0x04, 0x64, 0xa3, 'n', 'e', 'w' };
	struct proto_msg	 m;
	const char		*err;

	cr_assert_eq(proto_decode((const char *)str, sizeof str, &up, &m,
	    &err), 0, "%s", err);
	cr_assert_eq(m.string.id, 1);
	msgpack_unpacked_destroy(&up);
	msgpack_unpacked_init(&up);
	cr_assert_eq(proto_decode((const char *)cfg, sizeof cfg, &up, &m,
	    &err), 0, "%s", err);
	cr_assert_eq(m.type, PROTO_CONFIG);
	cr_assert_eq(m.config.rate_hz, 10);
	cr_assert_eq(m.config.mode, PROTO_MODE_CPU);
	cr_assert_eq(m.config.version, 4);
	cr_assert_eq(m.config.max_overhead_bp, 100);
}

Test(proto, round_trips_config_v3_and_old_config)
{
	struct proto_msg	 m;
	const char		*err;

	cr_assert_eq(proto_send_config_v3(&sink, 1, 250, PROTO_MODE_GIL,
	    PROTO_READER_GIL, 5, 3, PROTO_OVERHEAD_UNSET), 0);
	cr_assert_eq(decode_one(&m, &err), 0, "%s", err);
	cr_assert_eq(m.config.rate_hz, 250);
	cr_assert_eq(m.config.jitter_pct, 5);
	cr_assert_eq(m.config.version, 3);
	sink.len = 0;
	msgpack_unpacked_destroy(&up);
	msgpack_unpacked_init(&up);
	cr_assert_eq(proto_send_config(&sink, 1, 250, PROTO_MODE_GIL,
	    PROTO_READER_GIL, 5), 0);
	cr_assert_eq(decode_one(&m, &err), 0, "%s", err);
	cr_assert_eq(m.config.version, 0);
}

Test(proto, round_trips_config_budget_only_when_given)
{
	struct proto_msg	 m;
	const char		*err;

	cr_assert_eq(proto_send_config_v3(&sink, 1, 10000, PROTO_MODE_CPU,
	    PROTO_READER_GIL, 0, 4, 150), 0);
	cr_assert_eq(decode_one(&m, &err), 0, "%s", err);
	cr_assert_eq(m.config.version, 4);
	cr_assert_eq(m.config.max_overhead_bp, 150);
	sink.len = 0;
	msgpack_unpacked_destroy(&up);
	msgpack_unpacked_init(&up);
	cr_assert_eq(proto_send_config_v3(&sink, 1, 10000, PROTO_MODE_CPU,
	    PROTO_READER_GIL, 0, 4, PROTO_OVERHEAD_UNSET), 0);
	cr_assert_eq(decode_one(&m, &err), 0, "%s", err);
	cr_assert_eq(m.config.max_overhead_bp, PROTO_OVERHEAD_UNSET);
	sink.len = 0;
	msgpack_unpacked_destroy(&up);
	msgpack_unpacked_init(&up);
	/* An old daemon's CONFIG never carries one. */
	cr_assert_eq(proto_send_config(&sink, 1, 100, PROTO_MODE_CPU,
	    PROTO_READER_GIL, 0), 0);
	cr_assert_eq(decode_one(&m, &err), 0, "%s", err);
	cr_assert_eq(m.config.max_overhead_bp, PROTO_OVERHEAD_UNSET);
}

Test(proto, rejects_config_budget_over_100_percent)
{
	struct proto_msg	 m;
	const char		*err;

	cr_assert_eq(proto_send_config_v3(&sink, 1, 100, PROTO_MODE_CPU,
	    PROTO_READER_GIL, 0, 4, PROTO_OVERHEAD_MAX + 1), 0);
	cr_assert_eq(decode_one(&m, &err), -1);
}

Test(proto, parses_overhead_percent)
{
	uint32_t	bp;

	cr_assert_eq(proto_overhead_parse("1", &bp), 0);
	cr_assert_eq(bp, 100);
	cr_assert_eq(proto_overhead_parse("0.5", &bp), 0);
	cr_assert_eq(bp, 50);
	cr_assert_eq(proto_overhead_parse("12.25", &bp), 0);
	cr_assert_eq(bp, 1225);
	cr_assert_eq(proto_overhead_parse("0", &bp), 0);
	cr_assert_eq(bp, 0);
	cr_assert_eq(proto_overhead_parse("100", &bp), 0);
	cr_assert_eq(bp, 10000);
	cr_assert_eq(proto_overhead_parse("100.01", &bp), -1);
	cr_assert_eq(proto_overhead_parse("0.125", &bp), -1);
	cr_assert_eq(proto_overhead_parse("1.", &bp), -1);
	cr_assert_eq(proto_overhead_parse(".5", &bp), -1);
	cr_assert_eq(proto_overhead_parse("-1", &bp), -1);
	cr_assert_eq(proto_overhead_parse("1%", &bp), -1);
	cr_assert_eq(proto_overhead_parse("", &bp), -1);
	cr_assert_eq(proto_overhead_parse("99999999999", &bp), -1);
}

Test(proto, round_trips_reject)
{
	struct proto_msg	 m;
	const char		*err;

	cr_assert_eq(proto_send_reject(&sink, PROTO_VERSION_MIN, PROTO_VERSION,
	    "too new"), 0);
	cr_assert_eq(decode_one(&m, &err), 0, "%s", err);
	cr_assert_eq(m.type, PROTO_REJECT);
	cr_assert_eq(m.reject.min, PROTO_VERSION_MIN);
	cr_assert_eq(m.reject.max, PROTO_VERSION);
	cr_assert_eq(m.reject.reason_len, 7);
	cr_assert(memcmp(m.reject.reason, "too new", 7) == 0);
}

/* Decodes a frame [type, 1] and asks whether its receiver may skip it. */
static int
skippable(uint32_t type, int to_agent)
{
	struct proto_msg	 m;
	const char		*err;
	size_t			 start;
	uint64_t		 t = 0;
	int			 rc;

	sink.len = 0;
	msgpack_unpacked_destroy(&up);
	msgpack_unpacked_init(&up);
	start = proto_begin(&sink, (enum proto_type)type, 1);
	msgpack_pack_uint32(&sink.pk, 1);
	cr_assert_eq(proto_end(&sink, start), 0);
	cr_assert_eq(decode_one(&m, &err), -1);
	rc = proto_skippable(&up, to_agent, &t);
	if (rc)
		cr_assert_eq(t, type);
	return (rc);
}

Test(proto, skips_only_unknown_optional_types)
{
	cr_assert(skippable(PROTO_OPTIONAL_MIN, 0));
	cr_assert(skippable(PROTO_OPTIONAL_MAX, 0));
	cr_assert_not(skippable(PROTO_OPTIONAL_MIN - 1, 0));
	cr_assert_not(skippable(PROTO_OPTIONAL_MAX + 1, 0));
	cr_assert(skippable(250, 1));		/* any unknown 200s */
	cr_assert_not(skippable(120, 1));
	/* Known types with bad fields are errors, not skipped. */
	cr_assert_not(skippable(PROTO_CONFIG, 1));
	cr_assert_not(skippable(PROTO_SAMPLES, 0));
}
