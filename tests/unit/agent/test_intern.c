/*
 * test_intern.c -- agent/intern.c: interning stacks and threads read
 * through a table reader, and the definitions it writes per connection
 * epoch, decoded with the real proto decoder.
 */

#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "fixture.h"

static struct proto_sink	sink;

/* Fresh tables, reader and checker for each test. */
static void
setup(void)
{
	fx_reader_reset();
	fx_wire_reset(0);
	cr_assert_eq(intern_init(), 0);
	proto_sink_init(&sink, 64u << 20);
	fx_code_add(0x100, "main", "app.py", 1);
	fx_code_add(0x200, "work", "app.py", 20);
	fx_code_add(0x300, "Job.run", "job.py", 5);
	fx_code_add(0x400, "helper", "util.py", 40);
}

/* Frees what setup made. */
static void
teardown(void)
{
	intern_free();
	proto_sink_free(&sink);
}

TestSuite(intern, .init = setup, .fini = teardown);

/* Interns a stack given leaf first; asserts it worked. */
static uint32_t
stack_of(const uintptr_t *codes, const int32_t *locs, uint32_t depth)
{
	struct reader_thread	t;
	int			full = 0;
	uint32_t		idx;

	fx_thread(&t, 4242, codes, locs, depth);
	idx = intern_stack(&fx_reader, &t, &full);
	cr_assert_eq(full, 0, "a table reported full");
	return (idx);
}

/* Interns a thread by native id; asserts it worked. */
static uint32_t
thread_of(uint64_t tid)
{
	int		full = 0;
	uint32_t	idx;

	idx = intern_thread(tid, tid + 1000, &full);
	cr_assert_neq(idx, 0);
	cr_assert_eq(full, 0);
	return (idx);
}

/* Writes one sample (definitions first) in its own transaction; 0 or -1
 * when rolled back. */
static int
emit_to(struct proto_sink *to, uint32_t stack, uint32_t thread)
{
	struct intern_sample	s = { .stack = stack, .thread = thread,
				    .t_ns = 1, .weight_us = 100 };
	struct proto_sample	w;

	intern_txn_begin();
	if (intern_emit(to, &s, &w) != 0 ||
	    proto_send_samples(to, 1000, &w, 1) != 0) {
		intern_txn_abort();
		return (-1);
	}
	intern_txn_commit();
	return (0);
}

/* Writes one sample into the test sink. */
static void
emit(uint32_t stack, uint32_t thread)
{
	cr_assert_eq(emit_to(&sink, stack, thread), 0);
}

/* Decodes what the sink holds and asserts the protocol's id rules. */
static void
check_wire(void)
{
	size_t	used = fx_wire_feed(sink.data, sink.len);

	cr_assert_eq(used, sink.len, "a partial frame was written");
	proto_sink_consume(&sink, used);
	cr_assert_null(fx_wire.error, "wire: %s", fx_wire.error);
}

/* Function name of the last decoded sample's leaf frame. */
static const char *
last_leaf_name(void)
{
	struct proto_sample	*s = &fx_wire.samples[fx_wire.nsamples - 1];

	cr_assert(fx_wire.nsamples > 0 && fx_wire.nsamples <= FX_SAMPLES);

	return (fx_wire_frame_name(fx_wire.stacks[s->stack].frames[0]));
}

static const uintptr_t	 abc[] = { 0x300, 0x200, 0x100 };
static const uintptr_t	 ab[] = { 0x200, 0x100 };
static const uintptr_t	 dbc[] = { 0x400, 0x200, 0x100 };

Test(intern, same_stack_gets_same_id)
{
	uint32_t	a = stack_of(abc, NULL, 3);

	cr_assert_neq(a, 0);
	cr_assert_eq(stack_of(abc, NULL, 3), a);
	intern_tick();
	cr_assert_eq(stack_of(abc, NULL, 3), a);
	cr_assert_neq(stack_of(ab, NULL, 2), a);
	cr_assert_neq(stack_of(dbc, NULL, 3), a);
}

Test(intern, same_code_at_another_line_is_another_stack)
{
	int32_t		l1[] = { 7, 21, 2 }, l2[] = { 8, 21, 2 };
	uint32_t	a = stack_of(abc, l1, 3);

	cr_assert_neq(stack_of(abc, l2, 3), a);
	cr_assert_eq(stack_of(abc, l1, 3), a);
}

Test(intern, truncated_stack_differs_from_the_whole_one)
{
	struct reader_thread	t;
	int			full = 0;
	uint32_t		whole = stack_of(abc, NULL, 3), cut;

	fx_thread(&t, 4242, abc, NULL, 3);
	t.truncated = 1;
	cut = intern_stack(&fx_reader, &t, &full);
	cr_assert_neq(cut, 0);
	cr_assert_neq(cut, whole);
	cr_assert_eq(intern_stack(&fx_reader, &t, &full), cut);

	emit(cut, thread_of(1));
	check_wire();
	cr_assert_eq(fx_wire.stacks[1].truncated, 1);
	cr_assert_eq(fx_wire.stacks[1].depth, 3);
}

Test(intern, empty_stack_is_not_interned)
{
	struct reader_thread	t;
	int			full = 0;

	fx_thread(&t, 4242, NULL, NULL, 0);
	cr_assert_eq(intern_stack(&fx_reader, &t, &full), 0);
	cr_assert_eq(full, 0);
}

Test(intern, unreadable_code_gives_no_stack_and_no_full)
{
	struct reader_thread	t;
	int			full = 0;
	const uintptr_t		bad[] = { 0x300, 0x999, 0x100 };

	fx_code_find(0x300)->unreadable = 1;
	fx_thread(&t, 4242, abc, NULL, 3);
	cr_assert_eq(intern_stack(&fx_reader, &t, &full), 0);
	cr_assert_eq(full, 0);
	fx_code_find(0x300)->unreadable = 0;

	/* An address the reader cannot fingerprint (freed, unknown). */
	fx_thread(&t, 4242, bad, NULL, 3);
	cr_assert_eq(intern_stack(&fx_reader, &t, &full), 0);
	cr_assert_eq(full, 0);
	/* The rest still works. */
	cr_assert_neq(stack_of(abc, NULL, 3), 0);
}

Test(intern, fingerprint_is_checked_once_per_tick)
{
	uint32_t	fp;

	stack_of(abc, NULL, 3);
	fp = fx_calls.fingerprint;
	cr_assert_eq(fx_calls.code, 3, "each code object read once");
	stack_of(abc, NULL, 3);
	stack_of(ab, NULL, 2);
	cr_assert_eq(fx_calls.fingerprint, fp, "rechecked within a tick");
	intern_tick();
	stack_of(abc, NULL, 3);
	stack_of(ab, NULL, 2);
	cr_assert_eq(fx_calls.fingerprint, fp + 3);
	cr_assert_eq(fx_calls.code, 3, "code read again, fingerprint same");
}

Test(intern, freed_code_address_with_new_fingerprint_is_redefined)
{
	struct fx_code	*c;
	uint32_t	 t = thread_of(1), before, after;

	before = stack_of(abc, NULL, 3);
	emit(before, t);
	check_wire();
	cr_assert_str_eq(last_leaf_name(), "Job.run");

	/* Job.run's code object is freed and its memory reused. */
	c = fx_code_add(0x300, "Other.reused", "other.py", 99);
	c->fingerprint = 0xbeef;
	/* Same tick: the address is trusted. */
	cr_assert_eq(stack_of(abc, NULL, 3), before);
	intern_tick();
	after = stack_of(abc, NULL, 3);
	cr_assert_neq(after, 0);
	cr_assert_neq(after, before);
	emit(after, t);
	check_wire();
	cr_assert_str_eq(last_leaf_name(), "Other.reused");
	cr_assert_eq(fx_wire.nfuncs, 4, "one new function, not redefined");
	cr_assert_str_eq(fx_wire.strings[fx_wire.funcs[4].file], "other.py");
	cr_assert_eq(fx_wire.funcs[4].line, 99);

	/* The old stack still names the old function. */
	emit(before, t);
	check_wire();
	cr_assert_str_eq(last_leaf_name(), "Job.run");
}

Test(intern, offset_locations_ask_the_reader_once_each)
{
	int32_t		offs[] = { 40, 6, 0 };
	uint32_t	s;

	fx_reader.loc = READER_LOC_OFFSET;
	s = stack_of(abc, offs, 3);
	cr_assert_eq(fx_calls.line, 3);
	intern_tick();
	cr_assert_eq(stack_of(abc, offs, 3), s);
	cr_assert_eq(fx_calls.line, 3, "line asked again for a known offset");

	emit(s, thread_of(1));
	check_wire();
	/* firstline + offset / 2, leaf first. */
	cr_assert_eq(fx_wire.frames[fx_wire.stacks[1].frames[0]].line, 5 + 20);
	cr_assert_eq(fx_wire.frames[fx_wire.stacks[1].frames[1]].line, 20 + 3);
	cr_assert_eq(fx_wire.frames[fx_wire.stacks[1].frames[2]].line, 1);
}

Test(intern, definitions_come_before_use_and_ids_are_dense)
{
	uint32_t	t1 = thread_of(1), t2 = thread_of(2);
	int32_t		l_abc[] = { 10, 11, 12 }, l_ab[] = { 11, 12 };
	uint32_t	s1 = stack_of(abc, l_abc, 3), s2 = stack_of(dbc, l_abc, 3);
	uint32_t	s3 = stack_of(ab, l_ab, 2);

	emit(s2, t2);
	emit(s1, t1);
	emit(s3, t2);
	emit(s1, t2);
	check_wire();
	cr_assert_eq(fx_wire.nsamples, 4);
	cr_assert_eq(fx_wire.nstacks, 3);
	cr_assert_eq(fx_wire.nthreads, 2);
	cr_assert_eq(fx_wire.nfuncs, 4);
	/* Frames shared by stacks are defined once. */
	cr_assert_eq(fx_wire.nframes, 4);
	/* main, app.py, helper, work, util.py, Job.run, job.py, 2 threads */
	cr_assert_eq(fx_wire.nstrings, 9);
	cr_assert_str_eq(fx_wire_thread_name(fx_wire.samples[0].thread),
	    "Thread-2");
	cr_assert_eq(fx_wire.threads[fx_wire.samples[0].thread].tid, 2);
	cr_assert_eq(fx_wire.samples[0].weight_us, 100);
}

Test(intern, new_epoch_resends_definitions)
{
	uint32_t	t = thread_of(1), s = stack_of(abc, NULL, 3);
	uint32_t	n;

	emit(s, t);
	check_wire();
	n = fx_wire.nmsgs;
	emit(s, t);
	check_wire();
	cr_assert_eq(fx_wire.nmsgs, n + 1, "known definitions sent again");

	intern_new_epoch();
	fx_wire_reset(0);
	emit(s, t);
	check_wire();
	cr_assert_eq(fx_wire.nmsgs, n, "a new epoch must define all again");
	cr_assert_eq(fx_wire.nstacks, 1);
	cr_assert_eq(fx_wire.nthreads, 1);
	cr_assert_str_eq(last_leaf_name(), "Job.run");
}

Test(intern, rolled_back_batch_takes_its_ids_back)
{
	char			 tiny[48];
	struct proto_sink	 small;
	uint32_t		 t = thread_of(1), s = stack_of(abc, NULL, 3);

	proto_sink_init_fixed(&small, tiny, sizeof tiny);
	cr_assert_eq(emit_to(&small, s, t), -1);
	/* Nothing the failed batch defined counts as sent. */
	emit(s, t);
	check_wire();
	cr_assert_eq(fx_wire.nstacks, 1);
	cr_assert_eq(fx_wire.nfuncs, 3);
	cr_assert_eq(fx_wire.nsamples, 1);
}

Test(intern, reset_keeps_wire_ids_counting_on_the_connection)
{
	uint32_t	t = thread_of(1), s = stack_of(abc, NULL, 3);

	emit(s, t);
	check_wire();
	intern_reset(&fx_reader);
	t = thread_of(1);
	s = stack_of(dbc, NULL, 3);
	emit(s, t);
	/* Same connection: the checker sees ids go on, never reused. */
	check_wire();
	cr_assert_eq(fx_wire.nstacks, 2);
	cr_assert_eq(fx_wire.nthreads, 2);
	cr_assert_str_eq(last_leaf_name(), "helper");
}

Test(intern, reset_lets_the_reader_forget_every_code_object)
{
	stack_of(abc, NULL, 3);
	stack_of(dbc, NULL, 3);
	intern_reset(&fx_reader);
	cr_assert_eq(fx_calls.forget, 4);
	intern_reset(&fx_reader);
	cr_assert_eq(fx_calls.forget, 4, "forgotten twice");
}

/* Interns INTERN_MAX_FUNCS distinct functions, 256 per stack. */
static void
fill_funcs(void)
{
	struct reader_thread	t;
	uintptr_t		codes[PROTO_MAX_DEPTH];
	uint32_t		i, j, n = 0;
	int			full = 0;

	for (i = 0; n < INTERN_MAX_FUNCS; i++) {
		for (j = 0; j < PROTO_MAX_DEPTH; j++)
			codes[j] = FX_GEN_BASE + n++;
		fx_thread(&t, 1, codes, NULL, PROTO_MAX_DEPTH);
		cr_assert_neq(intern_stack(&fx_reader, &t, &full), 0,
		    "stack %u", i);
		cr_assert_eq(full, 0);
	}
}

Test(intern, full_table_reports_full)
{
	struct reader_thread	t;
	uintptr_t		one = FX_GEN_BASE + INTERN_MAX_FUNCS;
	int			full = 0;

	fill_funcs();
	fx_thread(&t, 1, &one, NULL, 1);
	cr_assert_eq(intern_stack(&fx_reader, &t, &full), 0);
	cr_assert_eq(full, 1);
	/* What is known still interns. */
	full = 0;
	one = FX_GEN_BASE;
	fx_thread(&t, 1, &one, NULL, 1);
	cr_assert_neq(intern_stack(&fx_reader, &t, &full), 0);
	cr_assert_eq(full, 0);
}

Test(intern, full_tables_work_again_after_reset)
{
	uint32_t	t, s;

	fill_funcs();
	intern_reset(&fx_reader);
	cr_assert_eq(fx_calls.forget, INTERN_MAX_FUNCS);
	t = thread_of(1);
	s = stack_of(abc, NULL, 3);
	emit(s, t);
	check_wire();
	cr_assert_str_eq(last_leaf_name(), "Job.run");
}

Test(intern, thread_is_named_by_python_or_by_tid)
{
	uint64_t	me = (uint64_t)getpid();
	uint32_t	a, b, m;

	intern_set_thread_name(7, 107, "worker-7", 8);
	a = thread_of(7);
	b = thread_of(8);
	m = thread_of(me);
	emit(stack_of(abc, NULL, 3), a);
	emit(stack_of(abc, NULL, 3), b);
	emit(stack_of(abc, NULL, 3), m);
	check_wire();
	cr_assert_str_eq(fx_wire_thread_name(fx_wire.samples[0].thread),
	    "worker-7");
	cr_assert_str_eq(fx_wire_thread_name(fx_wire.samples[1].thread),
	    "Thread-8");
	cr_assert_str_eq(fx_wire_thread_name(fx_wire.samples[2].thread),
	    "MainThread");
	cr_assert_eq(intern_native_of_ident(107), 7);
	cr_assert_eq(intern_native_of_ident(108), 0);
}

Test(intern, renamed_thread_gets_a_new_entry_and_keeps_its_state)
{
	uint32_t	a, b;

	intern_set_thread_name(7, 107, "before", 6);
	a = thread_of(7);
	cr_assert_eq(thread_of(7), a);
	intern_thread_state(a)->last_ns = 12345;
	emit(stack_of(abc, NULL, 3), a);

	intern_set_thread_name(7, 107, "after", 5);
	b = thread_of(7);
	cr_assert_neq(b, a);
	cr_assert_eq(intern_thread_state(b)->last_ns, 12345);
	cr_assert_eq(thread_of(7), b);
	emit(stack_of(abc, NULL, 3), b);
	check_wire();
	cr_assert_eq(fx_wire.nthreads, 2);
	cr_assert_str_eq(fx_wire_thread_name(fx_wire.samples[1].thread),
	    "after");
	cr_assert_eq(fx_wire.threads[2].tid, 7);
}

Test(intern, thread_without_native_id_is_keyed_by_ident)
{
	int		full = 0;
	uint32_t	a, b;

	a = intern_thread(0, 55, &full);
	b = intern_thread(55, 0, &full);
	cr_assert_neq(a, 0);
	cr_assert_neq(b, 0);
	cr_assert_neq(a, b, "ident 55 and tid 55 are different threads");
	cr_assert_eq(intern_thread(0, 55, &full), a);
}

Test(intern, names_clear_forgets_thread_names)
{
	intern_set_thread_name(7, 107, "worker-7", 8);
	intern_names_clear();
	cr_assert_eq(intern_native_of_ident(107), 0);
	emit(stack_of(abc, NULL, 3), thread_of(7));
	check_wire();
	cr_assert_str_eq(fx_wire_thread_name(1), "Thread-7");
}

Test(intern, wire_ids_run_out_before_the_protocol_limit)
{
	struct reader_thread	t;
	uintptr_t		codes[PROTO_MAX_DEPTH];
	int32_t			locs[PROTO_MAX_DEPTH];
	uint32_t		i, j, line = 1, th, s;
	int			full = 0;

	/* Frames of one function at distinct lines: 256 new frame ids per
	 * stack; tables are reset when full, wire ids go on. */
	for (j = 0; j < PROTO_MAX_DEPTH; j++)
		codes[j] = 0x100;
	for (i = 0; !intern_wire_exhausted(); i++) {
		cr_assert_lt(i, 2 * INTERN_WIRE_ID_LIMIT / PROTO_MAX_DEPTH);
		for (j = 0; j < PROTO_MAX_DEPTH; j++)
			locs[j] = (int32_t)line++;
		fx_thread(&t, 1, codes, locs, PROTO_MAX_DEPTH);
		full = 0;
		if ((s = intern_stack(&fx_reader, &t, &full)) == 0) {
			cr_assert_eq(full, 1);
			intern_reset(&fx_reader);
			s = intern_stack(&fx_reader, &t, &full);
			cr_assert_neq(s, 0);
		}
		th = intern_thread(1, 0, &full);
		cr_assert_neq(th, 0);
		emit(s, th);
		sink.len = 0;
	}
	cr_assert_geq((uint64_t)line - 1, INTERN_WIRE_ID_LIMIT);
	cr_assert_lt(INTERN_WIRE_ID_LIMIT, PROTO_MAX_ID);
	intern_new_epoch();
	cr_assert_eq(intern_wire_exhausted(), 0);
}

/* The sampler's fast path: a stack whose frames but the leaf are those of
 * another interns like the whole stack would, and falls back to it when
 * the other's shape differs. */
Test(intern, leaf_only_interning_matches_the_whole_stack)
{
	struct reader_thread	t;
	int			full = 0;
	int32_t			l1[] = { 7, 21, 2 }, l2[] = { 8, 21, 2 };
	uint32_t		a = stack_of(abc, l1, 3), b, whole;

	/* a is the newest stack; only the leaf's code is asked about. */
	fx_thread(&t, 4242, abc, l2, 3);
	intern_tick();
	fx_calls.fingerprint = 0;
	b = intern_stack_leaf(&fx_reader, &t, a, &full);
	cr_assert_eq(full, 0);
	cr_assert_neq(b, 0);
	cr_assert_neq(b, a);
	cr_assert_eq(fx_calls.fingerprint, 1);
	whole = stack_of(abc, l2, 3);
	cr_assert_eq(b, whole);
	/* Another depth, truncation or no stack at all: the whole path. */
	fx_thread(&t, 4242, ab, NULL, 2);
	cr_assert_eq(intern_stack_leaf(&fx_reader, &t, a, &full),
	    stack_of(ab, NULL, 2));
	fx_thread(&t, 4242, abc, l1, 3);
	t.truncated = 1;
	b = intern_stack_leaf(&fx_reader, &t, a, &full);
	cr_assert_neq(b, a);
	cr_assert_eq(intern_stack(&fx_reader, &t, &full), b);
	fx_thread(&t, 4242, abc, l1, 3);
	cr_assert_eq(intern_stack_leaf(&fx_reader, &t, 0, &full), a);
	cr_assert_eq(intern_stack_leaf(&fx_reader, &t, 99999, &full), a);
}

/* The leaf path remembers which stack a leaf made under given callers.  A
 * reset renumbers every stack and frame: the same pair of numbers may then
 * name a stack of other callers, and the answer must be the stack the
 * frames make, not the one remembered. */
Test(intern, leaf_only_interning_is_right_after_a_reset_reuses_the_ids)
{
	struct reader_thread	t;
	int			full = 0;
	int32_t			l1[] = { 7, 21, 2 }, l2[] = { 8, 21, 2 };
	int32_t			l3[] = { 9, 21, 2 };
	uintptr_t		other[] = { 0x400, 0x300, 0x100 };
	uint32_t		a, b, c, got;

	/* Stack 1 = frames 1 2 3; the leaf (0x300, 8) is frame 4: stack 2
	 * = 4 2 3, remembered as "frame 4 under stack 1's callers". */
	a = stack_of(abc, l1, 3);
	fx_thread(&t, 4242, abc, l2, 3);
	intern_tick();
	b = intern_stack_leaf(&fx_reader, &t, a, &full);
	cr_assert_eq(b, stack_of(abc, l2, 3));
	intern_tick();
	cr_assert_eq(intern_stack_leaf(&fx_reader, &t, a, &full), b);

	/* After a reset: stack 1 = (0x400,7) (0x300,21) (0x100,2) = frames
	 * 1 2 3; stack 2 = (0x400,9) (0x200,21) (0x100,2) = frames 4 5 3.
	 * Frame 4 under stack 1's callers is now a third stack, 4 2 3. */
	intern_reset(&fx_reader);
	cr_assert_eq(stack_of(other, l1, 3), a);
	cr_assert_eq(stack_of(dbc, l3, 3), b);
	fx_thread(&t, 4242, other, l3, 3);
	intern_tick();
	got = intern_stack_leaf(&fx_reader, &t, a, &full);
	c = intern_stack(&fx_reader, &t, &full);
	cr_assert_eq(full, 0);
	cr_assert_neq(c, b);
	cr_assert_eq(got, c);
}
