/* test_registry.c -- the registry of processes known to profd. */

#include <string.h>

#include <criterion/criterion.h>

#include "proto.h"
#include "registry.h"
#include "settings.h"

static struct registry *reg;

static void
setup(void)
{
	reg = registry_new(2);
	cr_assert_not_null(reg);
}

static void
teardown(void)
{
	registry_free(reg);
}

TestSuite(registry, .init = setup, .fini = teardown);

static struct proto_hello
hello(uint32_t pid, uint64_t start_ns)
{
	struct proto_hello	h;

	memset(&h, 0, sizeof h);
	h.version = PROTO_VERSION;
	h.pid = pid;
	h.start_ns = start_ns;
	h.service = "svc";
	h.service_len = 3;
	return (h);
}

Test(registry, keeps_gone_processes_up_to_the_limit)
{
	struct registry_proc	*p[4];
	struct proto_hello	 h;
	int			 i;

	for (i = 0; i < 4; i++) {
		h = hello(100 + i, 1);
		p[i] = registry_attach(reg, &h, NULL);
		cr_assert_not_null(p[i]);
		cr_assert_str_eq(p[i]->service, "svc");
	}
	for (i = 0; i < 4; i++)
		registry_detach(reg, p[i]);
	cr_assert_eq(reg->nprocs, 2);
	cr_assert_eq(reg->ngone, 2);
	cr_assert_eq(reg->forgotten, 2);
	/* Oldest dropped first. */
	cr_assert_null(registry_find(reg, 100));
	cr_assert_null(registry_find(reg, 101));
	cr_assert_not_null(registry_find(reg, 103));
}

Test(registry, never_drops_connected_processes)
{
	struct proto_hello	h;
	int			i;

	for (i = 0; i < 10; i++) {
		h = hello(100 + i, 1);
		cr_assert_not_null(registry_attach(reg, &h, NULL));
	}
	cr_assert_eq(reg->nprocs, 10);
	cr_assert_not_null(registry_find_connected(reg, 100));
}

Test(registry, reconnect_reuses_the_record)
{
	struct proto_hello	 h = hello(7, 555);
	struct registry_proc	*p, *q;

	p = registry_attach(reg, &h, NULL);
	p->samples = 12;
	registry_detach(reg, p);
	cr_assert_eq(p->connected, 0);
	q = registry_attach(reg, &h, NULL);
	cr_assert_eq(q, p);
	cr_assert_eq(q->connected, 1);
	cr_assert_eq(q->samples, 12);
	cr_assert_eq(reg->nprocs, 1);
	cr_assert_eq(reg->ngone, 0);
}

Test(registry, reused_pid_is_a_new_record)
{
	struct proto_hello	 h1 = hello(7, 555), h2 = hello(7, 556);
	struct registry_proc	*p, *q;

	p = registry_attach(reg, &h1, NULL);
	registry_detach(reg, p);
	q = registry_attach(reg, &h2, NULL);
	cr_assert_neq(q, p);
	cr_assert_eq(registry_find(reg, 7), q);
	cr_assert_eq(registry_find_connected(reg, 7), q);
}

Test(registry, bounds_the_argv_it_keeps)
{
	static char		 big[PROTO_MAX_STRING];
	msgpack_object		 argv[PROTO_MAX_ARGV];
	struct proto_hello	 h = hello(9, 1);
	struct registry_proc	*p;
	size_t			 total = 0;
	uint32_t		 i;

	memset(big, 'x', sizeof big);
	for (i = 0; i < PROTO_MAX_ARGV; i++) {
		argv[i].type = MSGPACK_OBJECT_STR;
		argv[i].via.str.ptr = big;
		argv[i].via.str.size = sizeof big;
	}
	h.argv = argv;
	h.argc = PROTO_MAX_ARGV;
	p = registry_attach(reg, &h, NULL);
	cr_assert_not_null(p);
	for (i = 0; i < p->argc; i++)
		total += strlen(p->argv[i]);
	cr_assert_leq(total, REGISTRY_MAX_ARGV_BYTES);
}

Test(registry, keeps_agent_counters_by_name)
{
	struct proto_hello	 h = hello(9, 1);
	struct registry_proc	*p = registry_attach(reg, &h, NULL);
	msgpack_object_kv	 kv[2];
	msgpack_object_map	 map = { 2, kv };

	kv[0].key.type = MSGPACK_OBJECT_STR;
	kv[0].key.via.str.ptr = "dropped";
	kv[0].key.via.str.size = 7;
	kv[0].val.type = MSGPACK_OBJECT_POSITIVE_INTEGER;
	kv[0].val.via.u64 = 33;
	kv[1].key.type = MSGPACK_OBJECT_STR;
	kv[1].key.via.str.ptr = "unknown_counter";
	kv[1].key.via.str.size = 15;
	kv[1].val.type = MSGPACK_OBJECT_POSITIVE_INTEGER;
	kv[1].val.via.u64 = 1;
	registry_set_stats(p, &map);
	cr_assert_eq(registry_stat(p, "dropped"), 33);
	cr_assert_eq(registry_stat(p, "ticks"), 0);
}

Test(registry, forgets_the_longest_departed_not_the_oldest_attached)
{
	struct registry_proc	*p[4];
	struct proto_hello	 h;
	int			 i;

	for (i = 0; i < 4; i++) {
		h = hello(100 + i, 1);
		p[i] = registry_attach(reg, &h, NULL);
	}
	/* They leave newest first: 103 left first, 100 just now. */
	for (i = 3; i >= 0; i--)
		registry_detach(reg, p[i]);
	cr_assert_eq(reg->ngone, 2);
	cr_assert_eq(reg->forgotten, 2);
	cr_assert_null(registry_find(reg, 103));
	cr_assert_null(registry_find(reg, 102));
	cr_assert_not_null(registry_find(reg, 101));
	cr_assert_not_null(registry_find(reg, 100),
	    "the most recently departed process was forgotten");
}

Test(registry, a_reconnect_leaves_the_departed_order)
{
	struct registry_proc	*a, *b, *c, *d;
	struct proto_hello	 h;

	h = hello(1, 11);
	a = registry_attach(reg, &h, NULL);
	h = hello(2, 22);
	b = registry_attach(reg, &h, NULL);
	h = hello(3, 33);
	c = registry_attach(reg, &h, NULL);
	registry_detach(reg, a);
	registry_detach(reg, b);
	h = hello(1, 11);
	cr_assert_eq(registry_attach(reg, &h, NULL), a);	/* back */
	cr_assert_eq(reg->ngone, 1);
	registry_detach(reg, c);
	h = hello(4, 44);
	d = registry_attach(reg, &h, NULL);
	registry_detach(reg, d);
	/* Gone in order b, c, d (a is connected): b goes. */
	cr_assert_eq(reg->ngone, 2);
	cr_assert_null(registry_find(reg, 2));
	cr_assert_not_null(registry_find(reg, 3));
	cr_assert_not_null(registry_find(reg, 4));
	cr_assert_not_null(registry_find_connected(reg, 1));
	registry_detach(reg, a);	/* a now the latest to leave: kept */
	cr_assert_null(registry_find(reg, 3));
	cr_assert_not_null(registry_find(reg, 1));
}
