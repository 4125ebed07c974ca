/*
 * seeds.c -- writes the fuzzers' seed corpus: valid agent streams and
 * single messages made with the real encoders, one file each, into DIR.
 */
#include <stdio.h>
#include <string.h>

#include "proto.h"

/* Writes a sink's bytes to DIR/name. */
static void
seeds_write(const char *dir, const char *name, const struct proto_sink *sk)
{
	char	 path[4096];
	FILE	*f;

	snprintf(path, sizeof path, "%s/%s", dir, name);
	if ((f = fopen(path, "wb")) == NULL) {
		perror(path);
		return;
	}
	fwrite(sk->data, 1, sk->len, f);
	fclose(f);
}

/* Writes a request with at most one argument: a string value, or for
 * "tree" true, for "diff" a map with a pid list, for "threads" a list of
 * globs. */
static void
seeds_request(const char *dir, struct proto_sink *sk, const char *name,
    const char *command, const char *key, const char *value)
{
	size_t	start;

	sk->len = 0;
	start = proto_begin_request(sk, command, key != NULL);
	if (key != NULL) {
		proto_pack_cstr(&sk->pk, key);
		if (strcmp(key, "tree") == 0)
			msgpack_pack_true(&sk->pk);
		else if (strcmp(key, "diff") == 0) {
			msgpack_pack_map(&sk->pk, 1);
			proto_pack_cstr(&sk->pk, "pids");
			msgpack_pack_array(&sk->pk, 1);
			msgpack_pack_uint32(&sk->pk, 4242);
		} else if (strcmp(key, "threads") == 0) {
			msgpack_pack_array(&sk->pk, 1);
			proto_pack_cstr(&sk->pk, "Main*");
		} else
			proto_pack_cstr(&sk->pk, value);
	}
	proto_end(sk, start);
	seeds_write(dir, name, sk);
}

int
main(int argc, char **argv)
{
	struct proto_sink	 sk;
	struct proto_hello	 h;
	struct proto_sample	 s[3] = {
		{ 1, 1, 0, 1000, PROTO_SAMPLE_ONCPU },
		{ 2, 1, 1000, 1000, 0 },
		{ 1, 1, 1000, 1000, PROTO_SAMPLE_GIL },
	};
	const char		*av[] = { "python3", "app.py" };
	uint32_t		 f1[] = { 2, 1 }, f2[] = { 1 };
	uint64_t		 stats[64] = { 0 };
	size_t			 start;

	if (argc != 2) {
		fprintf(stderr, "usage: seeds DIR\n");
		return (2);
	}
	memset(&h, 0, sizeof h);
	h.version = PROTO_VERSION;
	h.pid = 4242;
	h.ppid = 1;
	h.host = "host";
	h.service = "svc";
	h.python = "3.12.1";
	h.reader = "direct";

	proto_sink_init(&sk, 1u << 20);
	proto_send_hello(&sk, &h, av, 2);
	proto_send_string(&sk, 1, "main", 4);
	proto_send_string(&sk, 2, "app.py", 6);
	proto_send_string(&sk, 3, "leaf", 4);
	proto_send_string(&sk, 4, "MainThread", 10);
	proto_send_func(&sk, 1, 1, 2, 1);
	proto_send_func(&sk, 2, 3, 2, 10);
	proto_send_frame(&sk, 1, 1, 5);
	proto_send_frame(&sk, 2, 2, 11);
	proto_send_stack(&sk, 1, 0, f1, 2);
	proto_send_stack(&sk, 2, 1, f2, 1);
	proto_send_thread(&sk, 1, 4242, 4);
	proto_send_samples(&sk, 1ull << 60, s, 3);
	proto_send_stats(&sk, stats);
	seeds_write(argv[1], "session", &sk);

	/* The same session, renumbered from 1 after a resync. */
	proto_send_resync_ack(&sk, 1);
	proto_send_string(&sk, 1, "leaf", 4);
	proto_send_string(&sk, 2, "app.py", 6);
	proto_send_string(&sk, 3, "MainThread", 10);
	proto_send_func(&sk, 1, 1, 2, 10);
	proto_send_frame(&sk, 1, 1, 11);
	proto_send_stack(&sk, 1, 1, f2, 1);
	proto_send_thread(&sk, 1, 4242, 3);
	s[1].stack = 1;
	proto_send_samples(&sk, 1ull << 60, s, 3);
	seeds_write(argv[1], "session-resync", &sk);

	/* Numbered batches (v4), one of them again. */
	proto_send_batch(&sk, 1, 1ull << 60, s, 3);
	proto_send_batch(&sk, 2, 1ull << 60, s, 2);
	proto_send_batch(&sk, 1, 1ull << 60, s, 3);
	seeds_write(argv[1], "session-batches", &sk);

	/* Version 5 batches: stacks left out, one batch of nothing else. */
	proto_send_batch_v5(&sk, 3, 1ull << 60, s, 3, 2);
	proto_send_batch_v5(&sk, 4, 1ull << 60, s, 0, 7);
	seeds_write(argv[1], "session-batches-v5", &sk);

	sk.len = 0;
	proto_send_ack(&sk, 12345);
	seeds_write(argv[1], "ack", &sk);

	sk.len = 0;
	proto_send_config(&sk, 1, 1000, PROTO_MODE_CPU, PROTO_READER_DIRECT, 10);
	seeds_write(argv[1], "config", &sk);

	sk.len = 0;
	proto_send_config_v3(&sk, 1, 1000, PROTO_MODE_CPU, PROTO_READER_DIRECT,
	    10, PROTO_VERSION, PROTO_OVERHEAD_UNSET);
	seeds_write(argv[1], "config-v3", &sk);

	sk.len = 0;
	proto_send_config_v3(&sk, 1, 10000, PROTO_MODE_CPU, PROTO_READER_DIRECT,
	    10, PROTO_VERSION, 100);
	seeds_write(argv[1], "config-budget", &sk);

	sk.len = 0;
	proto_send_reject(&sk, PROTO_VERSION_MIN, PROTO_VERSION,
	    "protocol versions 9 to 12");
	seeds_write(argv[1], "reject", &sk);

	sk.len = 0;
	proto_send_resync(&sk, 1);
	seeds_write(argv[1], "resync", &sk);

	sk.len = 0;
	start = proto_begin_request(&sk, "show", 1);
	proto_pack_cstr(&sk.pk, "top");
	msgpack_pack_uint32(&sk.pk, 5);
	proto_end(&sk, start);
	seeds_write(argv[1], "request", &sk);

	/* Control requests, for fuzz-control: each command and view. */
	seeds_request(argv[1], &sk, "req-status", "status", NULL, NULL);
	seeds_request(argv[1], &sk, "req-ps", "ps", NULL, NULL);
	seeds_request(argv[1], &sk, "req-reset", "reset", NULL, NULL);
	seeds_request(argv[1], &sk, "req-start", "start", "mode", "cpu");
	seeds_request(argv[1], &sk, "req-stop", "stop", NULL, NULL);
	seeds_request(argv[1], &sk, "req-show-line", "show", "by", "line");
	seeds_request(argv[1], &sk, "req-show-thread", "show", "threads",
	    NULL);
	seeds_request(argv[1], &sk, "req-show-folded", "show", "format",
	    "folded");
	seeds_request(argv[1], &sk, "req-show-pprof", "show", "format",
	    "pprof");
	seeds_request(argv[1], &sk, "req-show-speedscope", "show", "format",
	    "speedscope");
	seeds_request(argv[1], &sk, "req-show-svg", "show", "format", "svg");
	seeds_request(argv[1], &sk, "req-show-tree", "show", "tree", NULL);
	seeds_request(argv[1], &sk, "req-show-diff", "show", "diff", NULL);

	sk.len = 0;
	proto_send_error(&sk, "no agent with pid %d attached", 7);
	seeds_write(argv[1], "reply", &sk);
	proto_sink_free(&sk);
	return (0);
}
