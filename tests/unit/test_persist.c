/* test_persist.c -- the store on disk: round trips, incremental flushes,
 * deletions, the memory cap and the retention on load, bad files. */

#include <sys/stat.h>
#include <sys/wait.h>

#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "persist.h"
#include "persist-codec.h"
#include "proto.h"
#include "query.h"
#include "store.h"

#define SEC	1000000000ull
#define NOW	(1700000000ull * SEC)

static char	 dir[64];
static char	 db[128];
static char	 errbuf[256];

static void	rewrite_raw(void);
static void	assert_file_holds(struct store *, uint64_t);

static void
setup(void)
{
	strcpy(dir, "/tmp/test-persist-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(db, sizeof db, "%s/%s", dir, PERSIST_FILE);
	log_verbose = -1;
}

static void
teardown(void)
{
	char	cmd[128];

	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(persist, .init = setup, .fini = teardown);

/* A store with the default configuration and a given cap. */
static struct store *
new_store(size_t max_bytes)
{
	struct store_config	cfg;
	struct store		*st;

	store_config_default(&cfg);
	if (max_bytes != 0)
		cfg.max_bytes = max_bytes;
	cr_assert_not_null(st = store_new(&cfg));
	store_tick(st, NOW);
	return (st);
}

/* An instance of a pid with an argv. */
static uint32_t
attach(struct store *st, uint32_t pid)
{
	const char			*argv[] = { "python3", "-m", "", "w" };
	struct store_instance_info	 info;

	memset(&info, 0, sizeof info);
	info.pid = pid;
	info.ppid = 1;
	info.start_ns = NOW - 3600 * SEC + pid;
	info.host = "host-a";
	info.host_len = 6;
	info.service = "svc";
	info.service_len = 3;
	info.python = "3.12.1";
	info.python_len = 6;
	info.reader = "ptrace";
	info.reader_len = 6;
	info.argv = argv;
	info.argc = 4;
	return (store_instance_attach(st, &info, NOW - 3000 * SEC));
}

/* Interns nstacks stacks of three frames; stack ids in out. */
static void
make_stacks(struct store *st, uint32_t nstacks, uint32_t *out)
{
	uint32_t	frames[3], i, j, name, file, func;
	char		buf[32];

	file = store_string(st, "app.py", 6);
	for (i = 0; i < nstacks; i++) {
		for (j = 0; j < 3; j++) {
			snprintf(buf, sizeof buf, "f%u_%u", i % 7, j);
			name = store_string(st, buf, strlen(buf));
			func = store_func(st, name, file, 10 * j + 1);
			frames[j] = store_frame(st, func, 100 + i);
			cr_assert_neq(frames[j], 0);
		}
		cr_assert_neq(out[i] = store_stack(st, frames, 3, i % 5 == 0),
		    0);
	}
}

/* Fills a store: 2 processes, 2 threads each, samples in 30 buckets of
 * the last 5 minutes, with what one process's batches said of their
 * stacks in each; the newest two stay open. */
static void
fill(struct store *st, uint32_t nstacks)
{
	uint32_t	stacks[512], threads[4], in, name, i, k;

	cr_assert(nstacks <= 512);
	make_stacks(st, nstacks, stacks);
	for (i = 0; i < 2; i++) {
		in = attach(st, 100 + i);
		cr_assert_neq(in, 0);
		for (k = 0; k < 2; k++) {
			name = store_string(st, k ? "worker" : "MainThread",
			    k ? 6 : 10);
			threads[i * 2 + k] = store_thread(st, in, 1000 + k,
			    name);
			cr_assert_neq(threads[i * 2 + k], 0);
		}
	}
	for (k = 0; k < 30; k++) {
		for (i = 0; i < nstacks; i++) {
			cr_assert_eq(store_add(st, NOW - (300 - k * 10) * SEC,
			    threads[(i + k) % 4], stacks[i], k & 1, 1 + i % 3,
			    100 * (i + 1)), 0);
		}
		cr_assert_eq(store_add_tally(st, NOW - (300 - k * 10) * SEC,
		    store_thread_get(st, threads[k % 4])->instance, 1 << 8,
		    nstacks, k % 3), 0);
	}
	store_tick(st, NOW);
}

/* Orders entries as the store does. */
static int
cmp_entry(const void *a, const void *b)
{
	const struct store_entry *x = a, *y = b;

	if (x->thread != y->thread)
		return (x->thread < y->thread ? -1 : 1);
	if (x->stack != y->stack)
		return (x->stack < y->stack ? -1 : 1);
	if (x->flags != y->flags)
		return (x->flags < y->flags ? -1 : 1);
	return (0);
}

/* The used entries of a bucket, sorted; their number. */
static size_t
used_entries(const struct store_bucket *b, struct store_entry **out)
{
	struct store_entry	*e;
	size_t			 i, n = 0;

	cr_assert_not_null(e = calloc(b->cap + 1, sizeof *e));
	for (i = 0; i < b->cap; i++) {
		if (b->entries[i].count != 0)
			e[n++] = b->entries[i];
	}
	qsort(e, n, sizeof *e, cmp_entry);
	*out = e;
	return (n);
}

/* Whether b has a bucket equal to a (same span, same entries). */
static int
has_bucket(const struct store *b, const struct store_bucket *x)
{
	const struct store_bucket	*y;
	struct store_entry		*ex, *ey;
	size_t				 nx, ny;
	int				 same;

	nx = used_entries(x, &ex);
	for (y = store_buckets(b); y != NULL; y = y->next) {
		if (y->start_ns != x->start_ns || y->width_ns != x->width_ns)
			continue;
		ny = used_entries(y, &ey);
		same = nx == ny && memcmp(ex, ey, nx * sizeof *ex) == 0 &&
		    x->samples == y->samples && x->ntallies == y->ntallies &&
		    (x->ntallies == 0 || memcmp(x->tallies, y->tallies,
		    x->ntallies * sizeof *x->tallies) == 0);
		free(ey);
		if (same) {
			free(ex);
			return (1);
		}
	}
	free(ex);
	return (0);
}

/* Compares every definition and every bucket of two stores. */
static void
assert_same(const struct store *a, const struct store *b)
{
	const struct store_instance	*ia, *ib;
	const struct store_thread	*ta, *tb;
	const struct store_bucket	*x;
	const uint32_t			*fa, *fb;
	const char			*sa, *sb;
	uint32_t			 id, la, lb, a1, a2, a3, b1, b2, b3, i;
	size_t				 na = 0, nb = 0;
	int				 k;

	for (k = 0; k < STORE_NKINDS; k++)
		cr_assert_eq(store_id_limit(a, k), store_id_limit(b, k),
		    "kind %d", k);
	for (id = 1; id < store_id_limit(a, STORE_STRING); id++) {
		sa = store_string_get(a, id, &la);
		sb = store_string_get(b, id, &lb);
		cr_assert_eq(sa == NULL, sb == NULL, "string %u", id);
		if (sa != NULL)
			cr_assert(la == lb && memcmp(sa, sb, la) == 0);
	}
	for (id = 1; id < store_id_limit(a, STORE_FUNC); id++) {
		cr_assert_eq(store_func_get(a, id, &a1, &a2, &a3),
		    store_func_get(b, id, &b1, &b2, &b3));
		cr_assert(a1 == b1 && a2 == b2 && a3 == b3);
	}
	for (id = 1; id < store_id_limit(a, STORE_FRAME); id++) {
		cr_assert_eq(store_frame_get(a, id, &a1, &a2),
		    store_frame_get(b, id, &b1, &b2));
		cr_assert(a1 == b1 && a2 == b2);
	}
	for (id = 1; id < store_id_limit(a, STORE_STACK); id++) {
		fa = store_stack_get(a, id, &la);
		fb = store_stack_get(b, id, &lb);
		cr_assert_eq(fa == NULL, fb == NULL);
		if (fa != NULL)
			cr_assert(la == lb && memcmp(fa, fb, la * 4) == 0);
	}
	for (id = 1; id < store_id_limit(a, STORE_INSTANCE); id++) {
		ia = store_instance_get(a, id);
		ib = store_instance_get(b, id);
		cr_assert_eq(ia == NULL, ib == NULL);
		if (ia == NULL)
			continue;
		cr_assert(ia->pid == ib->pid && ia->ppid == ib->ppid &&
		    ia->start_ns == ib->start_ns &&
		    ia->attach_ns == ib->attach_ns &&
		    ia->last_ns == ib->last_ns &&
		    ia->samples == ib->samples && ia->dropped == ib->dropped);
		cr_assert(ia->end_ns == ib->end_ns || (ia->end_ns == 0 &&
		    ib->end_ns == ia->last_ns));
		cr_assert_str_eq(ia->host, ib->host);
		cr_assert_str_eq(ia->service, ib->service);
		cr_assert_str_eq(ia->python, ib->python);
		cr_assert_str_eq(ia->reader, ib->reader);
		cr_assert_eq(ia->argc, ib->argc);
		for (i = 0; i < ia->argc; i++)
			cr_assert_str_eq(ia->argv[i], ib->argv[i]);
	}
	for (id = 1; id < store_id_limit(a, STORE_THREAD); id++) {
		ta = store_thread_get(a, id);
		tb = store_thread_get(b, id);
		cr_assert_eq(ta == NULL, tb == NULL);
		if (ta != NULL)
			cr_assert(ta->id == tb->id &&
			    ta->instance == tb->instance &&
			    ta->tid == tb->tid && ta->name == tb->name);
	}
	for (x = store_buckets(a); x != NULL; x = x->next) {
		cr_assert(has_bucket(b, x), "bucket %llu",
		    (unsigned long long)x->start_ns);
		na++;
	}
	for (x = store_buckets(b); x != NULL; x = x->next)
		nb++;
	cr_assert_eq(na, nb);
}

/* Opens dir into st; asserts it worked. */
static struct persist *
open_ok(struct store *st, uint64_t now)
{
	struct persist	*p;

	p = persist_open(dir, st, now, errbuf, sizeof errbuf);
	cr_assert_not_null(p, "%s", errbuf);
	return (p);
}

/* One integer from the file. */
static long long
query(const char *sql)
{
	sqlite3		*d;
	sqlite3_stmt	*s;
	long long	 v;

	cr_assert_eq(sqlite3_open(db, &d), SQLITE_OK);
	cr_assert_eq(sqlite3_prepare_v2(d, sql, -1, &s, NULL), SQLITE_OK,
	    "%s", sqlite3_errmsg(d));
	cr_assert_eq(sqlite3_step(s), SQLITE_ROW);
	v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	sqlite3_close(d);
	return (v);
}

/* Runs SQL on the file. */
static void
run_sql(const char *sql)
{
	sqlite3	*d;

	cr_assert_eq(sqlite3_open(db, &d), SQLITE_OK);
	cr_assert_eq(sqlite3_exec(d, sql, NULL, NULL, NULL), SQLITE_OK,
	    "%s", sqlite3_errmsg(d));
	sqlite3_close(d);
}

/* Writes a filled store to dir and returns it (still open). */
static struct store *
write_filled(uint32_t nstacks)
{
	struct store	*st = new_store(0);
	struct persist	*p = open_ok(st, NOW);

	fill(st, nstacks);
	cr_assert_eq(persist_flush(p), 0);
	persist_close(p);
	return (st);
}

/* How many files in dir start with a prefix. */
static int
count_files(const char *prefix)
{
	DIR		*d;
	struct dirent	*e;
	int		 n = 0;

	cr_assert_not_null(d = opendir(dir));
	while ((e = readdir(d)) != NULL) {
		if (strncmp(e->d_name, prefix, strlen(prefix)) == 0)
			n++;
	}
	closedir(d);
	return (n);
}

Test(persist, round_trip_keeps_every_definition_and_entry)
{
	struct store		*a = write_filled(40), *b = new_store(0);
	struct persist		*p = open_ok(b, NOW);
	struct persist_counts	 c;
	struct store_counts	 sc;
	const struct store_bucket *x;
	int			 open = 0;

	for (x = store_buckets(a); x != NULL; x = x->next)
		open += !x->sealed;
	cr_assert_gt(open, 0, "the fill leaves open buckets");
	store_get_counts(a, &sc);
	cr_assert_gt(sc.buckets, 20);
	assert_same(a, b);
	persist_get_counts(p, &c);
	cr_assert_eq(c.buckets_loaded, sc.buckets);
	cr_assert_eq(c.buckets_skipped, 0);
	cr_assert_gt(c.bytes, 0);
	persist_close(p);
	store_free(a);
	store_free(b);
}

Test(persist, flushes_only_what_changed)
{
	struct store		*st = new_store(0);
	struct persist		*p = open_ok(st, NOW);
	struct persist_counts	 c0, c1;
	uint32_t		 stack, thread;

	fill(st, 10);
	cr_assert_eq(persist_flush(p), 0);
	persist_get_counts(p, &c0);
	cr_assert_eq(persist_flush(p), 0);
	persist_get_counts(p, &c1);
	cr_assert_eq(c1.rows_written, c0.rows_written, "nothing changed");
	cr_assert_eq(c1.flushes, c0.flushes + 1);

	/* One sample: its bucket and its instance. */
	thread = 1;
	stack = 1;
	cr_assert_eq(store_add(st, NOW, thread, stack, 0, 1, 1), 0);
	cr_assert_eq(persist_flush(p), 0);
	persist_get_counts(p, &c0);
	cr_assert_eq(c0.rows_written, c1.rows_written + 2);

	/* One new string. */
	cr_assert_neq(store_string(st, "new", 3), 0);
	cr_assert_eq(persist_flush(p), 0);
	persist_get_counts(p, &c1);
	cr_assert_eq(c1.rows_written, c0.rows_written + 1);
	persist_close(p);
	store_free(st);
}

Test(persist, swept_definitions_and_dropped_buckets_leave_the_file)
{
	struct store	*st = new_store(0);
	struct persist	*p = open_ok(st, NOW);
	uint32_t	 lone;
	char		 sql[128];

	fill(st, 10);
	lone = store_string(st, "unused", 6);
	cr_assert_eq(persist_flush(p), 0);
	snprintf(sql, sizeof sql, "SELECT count(*) FROM strings WHERE id = %u",
	    lone);
	cr_assert_eq(query(sql), 1);
	cr_assert_gt(query("SELECT count(*) FROM buckets"), 20);

	store_sweep_begin(st);
	cr_assert_gt(store_sweep_end(st), 0);
	cr_assert_eq(persist_flush(p), 0);
	cr_assert_eq(query(sql), 0);
	cr_assert_gt(query("SELECT count(*) FROM stacks"), 0);

	cr_assert_eq(query("SELECT count(*) FROM tallies"), 30);
	store_reset(st);
	cr_assert_eq(persist_flush(p), 0);
	cr_assert_eq(query("SELECT count(*) FROM buckets"), 0);
	cr_assert_eq(query("SELECT count(*) FROM tallies"), 0,
	    "a dropped bucket's tallies go with it");
	persist_close(p);
	store_free(st);
}

Test(persist, rolled_up_buckets_replace_their_inputs)
{
	struct store		*st = new_store(0), *b;
	struct persist		*p = open_ok(st, NOW);
	struct store_counts	 c;

	fill(st, 10);
	cr_assert_eq(persist_flush(p), 0);
	/* Two hours on: the 10-s buckets roll up into minutes. */
	store_tick(st, NOW + 7200 * SEC);
	store_get_counts(st, &c);
	cr_assert_gt(c.rollups, 0);
	cr_assert_eq(persist_flush(p), 0);
	cr_assert_eq(query("SELECT count(*) FROM buckets"), (long long)
	    c.buckets);
	persist_close(p);
	b = new_store(0);
	persist_close(open_ok(b, NOW + 7200 * SEC));
	assert_same(st, b);
	store_free(st);
	store_free(b);
}

Test(persist, open_bucket_survives_kill_9)
{
	struct store		*b;
	struct persist		*p;
	struct store_counts	 c;
	pid_t			 pid;
	int			 status;

	if ((pid = fork()) == 0) {
		struct store	*st = new_store(0);

		p = open_ok(st, NOW);
		fill(st, 10);
		store_add(st, NOW, 1, 1, 0, 5, 5);
		persist_flush(p);
		kill(getpid(), SIGKILL);
	}
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFSIGNALED(status));
	b = new_store(0);
	p = open_ok(b, NOW);
	store_get_counts(b, &c);
	cr_assert_gt(c.buckets, 20);
	cr_assert_eq(store_buckets(b)->next != NULL, 1);
	/* The newest bucket (open when killed) is back, sealed. */
	cr_assert_eq(count_files(PERSIST_FILE ".bad"), 0);
	persist_close(p);
	store_free(b);
}

Test(persist, two_buckets_of_one_span_both_survive)
{
	struct store		*st = new_store(0), *b;
	struct persist		*p = open_ok(st, NOW);
	struct store_counts	 c;

	fill(st, 10);
	cr_assert_eq(persist_flush(p), 0);
	/* A late sample re-opens the span of a sealed bucket. */
	store_tick(st, NOW + 60 * SEC);
	cr_assert_eq(store_add(st, NOW - 100 * SEC, 1, 1, 0, 7, 7), 0);
	cr_assert_eq(persist_flush(p), 0);
	persist_close(p);
	store_get_counts(st, &c);
	b = new_store(0);
	p = open_ok(b, NOW + 60 * SEC);
	assert_same(st, b);
	persist_close(p);
	store_free(st);
	store_free(b);
}

Test(persist, memory_cap_loads_the_newest_buckets)
{
	struct store		*a = write_filled(200), *b;
	struct persist		*p;
	struct persist_counts	 c;
	struct store_counts	 sa, sb;
	long long		 oldest;

	store_free(a);
	b = new_store(0);
	persist_close(open_ok(b, NOW));
	store_get_counts(b, &sa);
	store_free(b);

	b = new_store(sa.def_bytes + (sa.bytes - sa.def_bytes) / 2);
	p = open_ok(b, NOW);
	persist_get_counts(p, &c);
	store_get_counts(b, &sb);
	cr_assert_gt(c.buckets_loaded, 0);
	cr_assert_gt(c.buckets_skipped, 0);
	cr_assert_eq(c.buckets_loaded + c.buckets_skipped, sa.buckets);
	cr_assert_eq(sb.buckets, c.buckets_loaded);
	oldest = query("SELECT min(start_ns) FROM buckets");
	cr_assert_gt(sb.oldest_ns, (uint64_t)oldest, "newest first");
	cr_assert_leq(sb.bytes, store_get_config(b)->max_bytes);
	persist_close(p);
	/* What did not fit stays on disk. */
	cr_assert_eq(query("SELECT count(*) FROM buckets"), (long long)
	    sa.buckets);
	store_free(b);
}

Test(persist, retention_drops_old_buckets_on_load)
{
	struct store		*a = write_filled(10), *b;
	struct persist		*p;
	struct persist_counts	 c;
	uint64_t		 later;

	store_free(a);
	/* Now is such that the oldest 15 of 30 buckets are too old. */
	later = NOW + store_get_config(b = new_store(0))->retention_ns -
	    150 * SEC;
	p = open_ok(b, later);
	persist_get_counts(p, &c);
	cr_assert_eq(c.buckets_loaded, 15);
	cr_assert_eq(c.buckets_skipped, 0);
	persist_close(p);
	cr_assert_eq(query("SELECT count(*) FROM buckets"), 15);
	store_free(b);
}

/* Opens a bad file: set aside with one log line, empty store. */
static void
assert_set_aside(void)
{
	struct store		*st = new_store(0);
	struct persist		*p;
	struct persist_counts	 c;
	char			 logf[128], line[1024];
	FILE			*f;
	int			 saved, lines = 0;

	snprintf(logf, sizeof logf, "%s/log", dir);
	fflush(stderr);
	saved = dup(2);
	cr_assert_geq(saved, 0);
	cr_assert_not_null(f = fopen(logf, "w+"));
	dup2(fileno(f), 2);
	p = persist_open(dir, st, NOW, errbuf, sizeof errbuf);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	cr_assert_not_null(p, "%s", errbuf);
	rewind(f);
	while (fgets(line, sizeof line, f) != NULL) {
		cr_assert_not_null(strstr(line, "moved aside"), "%s", line);
		lines++;
	}
	fclose(f);
	cr_assert_eq(lines, 1);
	cr_assert_eq(count_files(PERSIST_FILE ".bad-"), 1);
	persist_get_counts(p, &c);
	cr_assert_eq(c.set_aside, 1);
	cr_assert_eq(c.buckets_loaded, 0);
	cr_assert_null(store_buckets(st));
	cr_assert_eq(store_instance_get(st, 1), NULL);
	/* The fresh file works. */
	fill(st, 5);
	cr_assert_eq(persist_flush(p), 0);
	persist_close(p);
	cr_assert_gt(query("SELECT count(*) FROM buckets"), 0);
	store_free(st);
}

Test(persist, random_bytes_are_set_aside)
{
	char	buf[8192];
	FILE	*f;
	size_t	i;

	srand(7);
	for (i = 0; i < sizeof buf; i++)
		buf[i] = (char)rand();
	cr_assert_not_null(f = fopen(db, "w"));
	fwrite(buf, 1, sizeof buf, f);
	fclose(f);
	assert_set_aside();
}

Test(persist, truncated_file_is_set_aside)
{
	struct stat	sb;

	store_free(write_filled(200));
	run_sql("PRAGMA wal_checkpoint(TRUNCATE)");
	cr_assert_eq(stat(db, &sb), 0);
	cr_assert_gt(sb.st_size, 64 * 1024);
	cr_assert_eq(truncate(db, sb.st_size / 2), 0);
	assert_set_aside();
}

Test(persist, wrong_magic_is_set_aside)
{
	store_free(write_filled(5));
	run_sql("UPDATE meta SET magic = 'other'");
	assert_set_aside();
}

Test(persist, other_schema_version_is_set_aside)
{
	store_free(write_filled(5));
	run_sql("UPDATE meta SET version = 3");
	assert_set_aside();
}

Test(persist, a_file_of_schema_1_loads_and_is_raised_to_2_at_its_first_write)
{
	struct store	*a, *b;
	struct persist	*p;

	a = write_filled(40);
	rewrite_raw();
	run_sql("UPDATE meta SET version = 1");
	b = new_store(0);
	p = open_ok(b, NOW);
	assert_same(a, b);
	cr_assert_eq(query("SELECT version FROM meta"), 1);
	cr_assert_eq(persist_flush(p), 0);
	cr_assert_eq(query("SELECT version FROM meta"), PERSIST_SCHEMA);
	persist_close(p);
	store_free(a);
	store_free(b);
}

Test(persist, foreign_database_is_set_aside)
{
	run_sql("CREATE TABLE t(x); INSERT INTO t VALUES(1)");
	assert_set_aside();
}

Test(persist, trigger_in_file_is_set_aside)
{
	store_free(write_filled(5));
	run_sql("CREATE TRIGGER t AFTER INSERT ON strings BEGIN "
	    "DELETE FROM buckets; END");
	assert_set_aside();
}

Test(persist, dangling_reference_is_set_aside)
{
	store_free(write_filled(5));
	run_sql("INSERT INTO threads VALUES(999, 12345, 1, 1)");
	assert_set_aside();
}

Test(persist, bad_tallies_blob_is_set_aside)
{
	store_free(write_filled(5));
	run_sql("UPDATE tallies SET rows = x'0102030405'");
	assert_set_aside();
}

Test(persist, a_bucket_naming_an_unknown_instance_is_dropped_alone)
{
	struct store		*st;
	struct persist		*p;
	struct persist_counts	 c;
	long long		 n;

	store_free(write_filled(5));
	n = query("SELECT count(*) FROM buckets");
	/* One bucket's first tally's instance (its first 4 bytes, LE) made
	 * unknown: that bucket goes, not the file. */
	run_sql("UPDATE tallies SET rows = x'e7030000' || substr(rows, 5) "
	    "WHERE bucket = (SELECT min(bucket) FROM tallies)");
	st = new_store(0);
	p = open_ok(st, NOW);
	persist_get_counts(p, &c);
	cr_assert_eq(c.set_aside, 0);
	cr_assert_eq(c.buckets_dropped, 1);
	cr_assert_eq((long long)c.buckets_loaded, n - 1);
	persist_close(p);
	cr_assert_eq(count_files(PERSIST_FILE ".bad-"), 0);
	cr_assert_eq(query("SELECT count(*) FROM buckets"), n - 1);
	store_free(st);
}

/* Writes 30 buckets whose nstacks stacks each are theirs alone (frames
 * at lines no other bucket uses). */
static void
write_own_stacks(uint32_t nstacks)
{
	struct store	*st = new_store(0);
	struct persist	*p = open_ok(st, NOW);
	uint32_t	 in, th, file, func, frames[3], sk, k, i, j;

	cr_assert_neq(in = attach(st, 300), 0);
	cr_assert_neq(th = store_thread(st, in, 3000,
	    store_string(st, "MainThread", 10)), 0);
	file = store_string(st, "app.py", 6);
	func = store_func(st, store_string(st, "f", 1), file, 1);
	for (k = 0; k < 30; k++) {
		for (i = 0; i < nstacks; i++) {
			for (j = 0; j < 3; j++)
				cr_assert_neq(frames[j] = store_frame(st, func,
				    1000000 * k + 100 * i + j + 1), 0);
			cr_assert_neq(sk = store_stack(st, frames, 3, 0), 0);
			cr_assert_eq(store_add(st, NOW - (300 - k * 10) * SEC,
			    th, sk, 0, 1, 100), 0);
		}
	}
	store_tick(st, NOW);
	cr_assert_eq(persist_flush(p), 0);
	persist_close(p);
	store_free(st);
}

Test(persist, a_bucket_bigger_than_a_row_goes_in_slices_and_comes_back)
{
	struct store		*a, *b;
	struct persist		*p;
	struct persist_counts	 c;

	/* (4096 - 15) / 40 = 102 entries a row: each bucket of 200 is two
	 * slices. */
	setenv("PROFD_PERSIST_MAX_ROW", "4096", 1);
	a = write_filled(200);
	cr_assert_eq(query("SELECT count(*) FROM bucket_parts"),
	    query("SELECT count(*) FROM buckets WHERE n > 102"));
	cr_assert_gt(query("SELECT count(*) FROM bucket_parts"), 0);
	b = new_store(0);
	p = open_ok(b, NOW);
	persist_get_counts(p, &c);
	cr_assert_eq(c.buckets_dropped, 0);
	assert_same(a, b);
	persist_close(p);
	store_free(a);
	store_free(b);
	unsetenv("PROFD_PERSIST_MAX_ROW");
}

/*
 * Opens the file with room for the definitions and half the buckets, so
 * that the oldest stay on disk, sweeps, and checks that the sweep kept
 * every definition they name: the frames and stacks rows are all still
 * there, and a store with room loads every bucket back, none dropped.
 */
static void
assert_sweep_keeps_what_disk_names(void)
{
	struct store		*st;
	struct persist		*p;
	struct persist_counts	 c;
	struct store_counts	 sa;
	long long		 frames, stacks, buckets;

	frames = query("SELECT count(*) FROM frames");
	stacks = query("SELECT count(*) FROM stacks");
	buckets = query("SELECT count(*) FROM buckets");
	st = new_store(0);
	persist_close(open_ok(st, NOW));
	store_get_counts(st, &sa);
	store_free(st);
	st = new_store(sa.def_bytes + (sa.bytes - sa.def_bytes) / 2);
	p = open_ok(st, NOW);
	persist_get_counts(p, &c);
	cr_assert_gt(c.buckets_skipped, 0);
	cr_assert_eq(c.buckets_dropped, 0);
	store_sweep_begin(st);
	store_sweep_end(st);
	cr_assert_eq(persist_flush(p), 0);
	persist_close(p);
	store_free(st);
	cr_assert_eq(query("SELECT count(*) FROM frames"), frames,
	    "a sweep deleted frames a bucket on disk names");
	cr_assert_eq(query("SELECT count(*) FROM stacks"), stacks);
	st = new_store(0);
	p = open_ok(st, NOW);
	persist_get_counts(p, &c);
	cr_assert_eq(c.buckets_dropped, 0);
	cr_assert_eq(c.buckets_skipped, 0);
	cr_assert_eq((long long)c.buckets_loaded, buckets);
	cr_assert_eq(count_files(PERSIST_FILE ".bad-"), 0);
	persist_close(p);
	store_free(st);
}

Test(persist, a_big_bucket_left_on_disk_keeps_what_its_slices_name)
{
	/* 102 entries a row: each bucket of 300 own stacks is three slices. */
	setenv("PROFD_PERSIST_MAX_ROW", "4096", 1);
	write_own_stacks(300);
	cr_assert_gt(query("SELECT count(*) FROM bucket_parts"), 0);
	assert_sweep_keeps_what_disk_names();
	unsetenv("PROFD_PERSIST_MAX_ROW");
}

Test(persist, a_bucket_left_on_disk_keeps_what_it_names_through_a_sweep)
{
	write_own_stacks(40);
	assert_sweep_keeps_what_disk_names();
}

Test(persist, tallies_of_no_bucket_are_deleted_on_load)
{
	struct store	*st;

	store_free(write_filled(5));
	run_sql("INSERT INTO tallies SELECT 99999, rows FROM tallies LIMIT 1");
	st = new_store(0);
	persist_close(open_ok(st, NOW));
	cr_assert_eq(count_files(PERSIST_FILE ".bad-"), 0);
	cr_assert_eq(query("SELECT count(*) FROM tallies WHERE bucket = 99999"),
	    0);
	cr_assert_eq(query("SELECT count(*) FROM tallies"), 30);
	store_free(st);
}

Test(persist, bad_bucket_blob_is_set_aside)
{
	store_free(write_filled(5));
	run_sql("UPDATE buckets SET n = n + 1 WHERE id = 1");
	assert_set_aside();
}

Test(persist, unusable_dir_is_an_error)
{
	struct store	*st = new_store(0);
	char		 path[128];

	snprintf(path, sizeof path, "%s/missing", dir);
	cr_assert_null(persist_open(path, st, NOW, errbuf, sizeof errbuf));
	cr_assert_not_null(strstr(errbuf, "missing"));
	snprintf(path, sizeof path, "%s/file", dir);
	close(open(path, O_CREAT | O_WRONLY, 0644));
	cr_assert_null(persist_open(path, st, NOW, errbuf, sizeof errbuf));
	/* Not writable, even for root. */
	cr_assert_null(persist_open("/proc", st, NOW, errbuf, sizeof errbuf));
	if (geteuid() != 0) {
		snprintf(path, sizeof path, "%s/ro", dir);
		cr_assert_eq(mkdir(path, 0555), 0);
		cr_assert_null(persist_open(path, st, NOW, errbuf,
		    sizeof errbuf));
	}
	store_free(st);
}

Test(persist, batch_numbers_become_durable_with_the_flush_and_come_back)
{
	struct store	*a = new_store(0), *b = new_store(0);
	struct persist	*p = open_ok(a, NOW);
	uint32_t	 in = attach(a, 42);
	const struct store_instance *x;

	store_instance_set_seq(a, in, 17, 0);
	x = store_instance_get(a, in);
	cr_assert_eq(x->seq, 17);
	cr_assert_eq(x->seq_durable, 0, "durable before any flush");
	cr_assert_eq(persist_flush(p), 0);
	cr_assert_eq(x->seq_durable, 17);
	store_instance_set_seq(a, in, 18, 0);	/* lost with a kill -9 */
	cr_assert_eq(x->seq_durable, 17);
	persist_close(p);
	/* persist_close flushed 18; put the file back to 17, as a kill -9
	 * between flushes would leave it. */
	run_sql("UPDATE seqs SET seq = 17");
	p = open_ok(b, NOW);
	x = store_instance_get(b, in);
	cr_assert_not_null(x);
	cr_assert_eq(x->seq, 17);
	cr_assert_eq(x->seq_durable, 17);
	persist_close(p);
	store_free(a);
	store_free(b);
}

static struct persist_profile	collected[4];
static int			ncollected;

/* Collects what persist_profile_load finds. */
static void
collect(void *arg, const struct persist_profile *x)
{
	if (ncollected < 4)
		collected[ncollected++] = *x;
}

Test(persist, profiling_state_round_trips)
{
	struct store		*st = new_store(0);
	struct persist		*p = open_ok(st, NOW);
	struct persist_profile	 pf = { 0, 1, 250, PROTO_MODE_CPU,
				    PROTO_READER_GIL, 10, 150 };
	struct persist_profile	*got = collected;

	cr_assert_eq(persist_profile_put(p, &pf), 0);
	pf.pid = 1234;
	pf.rate_hz = 50;
	cr_assert_eq(persist_profile_put(p, &pf), 0);
	pf.pid = 99;
	cr_assert_eq(persist_profile_put(p, &pf), 0);
	cr_assert_eq(persist_profile_clear_pids(p), 0);
	pf.pid = 1234;
	pf.profiling = 0;
	pf.max_overhead_bp = 50;
	cr_assert_eq(persist_profile_put(p, &pf), 0);
	/* Given, then not: the pid's row has none. */
	pf.max_overhead_bp = PROTO_OVERHEAD_UNSET;
	cr_assert_eq(persist_profile_put(p, &pf), 0);
	run_sql("INSERT INTO profiles VALUES(7, 1, 0, 0, 0, 0)");  /* 0 Hz */
	persist_close(p);
	p = open_ok(st, NOW);
	cr_assert_eq(persist_profile_load(p, collect, NULL), 2);
	cr_assert_eq(ncollected, 2);
	cr_assert_eq(got[0].pid, 0);
	cr_assert_eq(got[0].profiling, 1);
	cr_assert_eq(got[0].rate_hz, 250);
	cr_assert_eq(got[0].mode, PROTO_MODE_CPU);
	cr_assert_eq(got[0].reader, PROTO_READER_GIL);
	cr_assert_eq(got[0].jitter_pct, 10);
	cr_assert_eq(got[0].max_overhead_bp, 150);
	cr_assert_eq(got[1].max_overhead_bp, PROTO_OVERHEAD_UNSET);
	cr_assert_eq(got[1].pid, 1234);
	cr_assert_eq(got[1].profiling, 0);
	cr_assert_eq(got[1].rate_hz, 50);
	persist_close(p);
	store_free(st);
}

Test(persist, file_without_the_newer_tables_gains_them)
{
	struct store		*st;
	struct persist		*p;
	struct persist_counts	 c;

	store_free(write_filled(5));
	run_sql("DROP TABLE seqs; DROP TABLE profiles; DROP TABLE overheads; "
	    "DROP TABLE tallies");
	st = new_store(0);
	p = open_ok(st, NOW);
	persist_get_counts(p, &c);
	cr_assert_eq(c.set_aside, 0);
	cr_assert_gt(c.buckets_loaded, 0);
	cr_assert_eq(count_files(PERSIST_FILE ".bad-"), 0);
	persist_close(p);
	cr_assert_eq(query("SELECT count(*) FROM profiles"), 0);
	cr_assert_eq(query("SELECT count(*) FROM overheads"), 0);
	cr_assert_eq(query("SELECT count(*) FROM tallies"), 0);
	store_free(st);
}

/* Checks, a few entries at a time, every row a load out of time left
 * unread; the number of steps it took. */
static int
check_all(struct persist *p)
{
	int	steps = 1;

	while (persist_check_step(p, 7) == 0) {
		steps++;
		cr_assert_lt(steps, 1000000, "the checks never end");
	}
	return (steps);
}

/* Opens dir into a new store with no time to load: every row is left
 * unread, to check. */
static struct persist *
open_late(struct store **st)
{
	struct persist	*p;

	setenv("PROFD_PERSIST_LOAD_MS", "0", 1);
	*st = new_store(0);
	p = open_ok(*st, NOW);
	unsetenv("PROFD_PERSIST_LOAD_MS");
	return (p);
}

Test(persist, a_load_out_of_time_serves_at_once_and_checks_the_rest)
{
	const struct store_bucket	*x;
	struct store			*a, *b;
	struct persist			*p;
	struct persist_counts		 c;
	uint64_t			 samples = 0;
	long long			 rows;

	a = write_filled(20);
	for (x = store_buckets(a); x != NULL; x = x->next)
		samples += x->samples;
	rows = query("SELECT count(*) FROM buckets");
	p = open_late(&b);
	persist_get_counts(p, &c);
	cr_assert_eq(c.buckets_loaded, 0);
	cr_assert_eq((long long)c.cold_buckets, rows);
	cr_assert_eq(c.cold_unchecked, c.cold_buckets);
	cr_assert_eq(c.cold_samples, 0, "counted before their check");
	cr_assert_gt(check_all(p), 30, "checked in more than one step");
	persist_get_counts(p, &c);
	cr_assert_eq(c.cold_unchecked, 0);
	cr_assert_eq(c.buckets_dropped, 0);
	cr_assert_eq((long long)c.cold_buckets, rows);
	cr_assert_eq(c.cold_samples, samples);
	/* Pinned: a sweep frees nothing they name. */
	store_sweep_begin(b);
	store_sweep_end(b);
	cr_assert_eq(persist_flush(p), 0);
	persist_close(p);
	store_free(b);
	/* With time, the same file loads whole, as it was written. */
	b = new_store(0);
	p = open_ok(b, NOW);
	assert_same(a, b);
	persist_close(p);
	store_free(a);
	store_free(b);
}

Test(persist, an_id_a_row_left_unread_names_is_not_given_again)
{
	struct store		*st;
	struct persist		*p;
	struct persist_counts	 c;
	uint32_t		 func, frame, sk;
	long long		 gone, rows;

	store_free(write_filled(20));
	/* A stack row missing (an older profd's sweep): every bucket names
	 * that stack, so every bucket goes, each alone, at its check. */
	gone = query("SELECT min(id) + 2 FROM stacks");
	run_sql("DELETE FROM stacks WHERE id = (SELECT min(id) + 2 FROM "
	    "stacks)");
	rows = query("SELECT count(*) FROM buckets");
	p = open_late(&st);
	/* Before the checks, a new stack does not take the missing id the
	 * rows on disk still name. */
	func = store_func(st, store_string(st, "new", 3),
	    store_string(st, "new.py", 6), 1);
	cr_assert_neq(frame = store_frame(st, func, 7), 0);
	cr_assert_neq(sk = store_stack(st, &frame, 1, 0), 0);
	cr_assert_neq((long long)sk, gone);
	check_all(p);
	persist_get_counts(p, &c);
	cr_assert_eq((long long)c.buckets_dropped, rows);
	cr_assert_eq(c.cold_buckets, 0);
	cr_assert_eq(c.set_aside, 0);
	cr_assert_eq(persist_flush(p), 0);
	persist_close(p);
	cr_assert_eq(query("SELECT count(*) FROM buckets"), 0);
	cr_assert_eq(count_files(PERSIST_FILE ".bad-"), 0);
	store_free(st);
}

Test(persist, a_damaged_row_left_unread_is_dropped_alone_at_its_check)
{
	struct store		*st;
	struct persist		*p;
	struct persist_counts	 c;
	long long		 rows;

	store_free(write_filled(20));
	rows = query("SELECT count(*) FROM buckets");
	/* One bucket's entries out of order; another's tally names a
	 * process the file lacks. */
	run_sql("UPDATE buckets SET entries = CAST(substr(entries, 33) || "
	    "substr(entries, 1, 32) AS BLOB) WHERE id = (SELECT min(id) FROM "
	    "buckets)");
	run_sql("UPDATE tallies SET rows = CAST(x'e7030000' || substr(rows, 5) "
	    "AS BLOB) WHERE bucket = (SELECT max(bucket) FROM tallies)");
	p = open_late(&st);
	persist_get_counts(p, &c);
	cr_assert_eq(c.buckets_dropped, 0);
	check_all(p);
	persist_get_counts(p, &c);
	cr_assert_eq(c.buckets_dropped, 2);
	cr_assert_eq((long long)c.cold_buckets, rows - 2);
	cr_assert_eq(persist_flush(p), 0);
	persist_close(p);
	cr_assert_eq(query("SELECT count(*) FROM buckets"), rows - 2);
	cr_assert_eq(count_files(PERSIST_FILE ".bad-"), 0);
	store_free(st);
}

Test(persist, a_row_left_unread_naming_an_id_past_the_file_is_never_read_as_a_new_one)
{
	const struct query_cold	*src;
	struct query_cold_row	*rows;
	struct store_entry	 e[64];
	struct store		*st;
	struct persist		*p;
	struct persist_counts	 c;
	uint32_t		 func, frame, sk;
	size_t			 n, i, k;
	long long		 gone, total;

	store_free(write_filled(20));
	/* The highest stack id missing: a new stack takes it. */
	gone = query("SELECT max(id) FROM stacks");
	run_sql("DELETE FROM stacks WHERE id = (SELECT max(id) FROM stacks)");
	total = query("SELECT count(*) FROM buckets");
	p = open_late(&st);
	func = store_func(st, store_string(st, "new", 3),
	    store_string(st, "new.py", 6), 1);
	cr_assert_neq(frame = store_frame(st, func, 7), 0);
	cr_assert_eq((long long)(sk = store_stack(st, &frame, 1, 0)), gone);
	/* Read as a query does before the checks: no entry counts under it. */
	cr_assert_not_null(src = persist_cold_source(p));
	cr_assert_eq(src->list(src->arg, 0, UINT64_MAX, &rows, &n), 0);
	cr_assert_eq((long long)n, total);
	for (i = 0; i < n; i++) {
		cr_assert(rows[i].n <= 64);
		cr_assert_eq(src->read(src->arg, &rows[i], 0, e, rows[i].n), 0);
		for (k = 0; k < rows[i].n; k++)
			cr_assert(e[k].stack != sk || e[k].count == 0,
			    "an unchecked row read under a new stack's id");
	}
	free(rows);
	check_all(p);
	persist_get_counts(p, &c);
	cr_assert_eq((long long)c.buckets_dropped, total);
	persist_close(p);
	store_free(st);
}

/* Flushes until the whole-file check of a big file lets it: what the
 * first flush after it returned. */
static int
flush_after_check(struct persist *p)
{
	int	r, i;

	for (i = 0; (r = persist_flush(p)) == 1; i++) {
		cr_assert_lt(i, 20000, "the file's check never ends");
		usleep(1000);
	}
	return (r);
}

Test(persist, a_big_file_is_checked_whole_on_a_thread_before_any_write)
{
	struct store	*a, *b;
	struct persist	*p;

	a = write_filled(200);
	/* Every file counts as big. */
	setenv("PROFD_PERSIST_SYNC_CHECK_MAX", "0", 1);
	b = new_store(0);
	p = open_ok(b, NOW);
	unsetenv("PROFD_PERSIST_SYNC_CHECK_MAX");
	assert_same(a, b);
	cr_assert_eq(flush_after_check(p), 0);
	persist_close(p);
	cr_assert_eq(count_files(PERSIST_FILE ".damaged"), 0);
	store_free(a);
	store_free(b);
}

Test(persist, a_big_file_found_damaged_is_written_no_more_and_set_aside_next)
{
	struct store	*st;
	struct persist	*p;
	unsigned char	 b[4];
	long long	 page, trunk;
	int		 fd;

	store_free(write_filled(512));
	/* Free pages (the rows of half the buckets), then a freelist trunk
	 * page that claims more leaves than a page holds: only a check of
	 * the whole file reads it. */
	run_sql("DELETE FROM buckets WHERE id % 2 = 0; "
	    "PRAGMA wal_checkpoint(TRUNCATE)");
	page = query("PRAGMA page_size");
	cr_assert_gt(query("PRAGMA freelist_count"), 0);
	cr_assert_geq(fd = open(db, O_RDWR), 0);
	cr_assert_eq(pread(fd, b, 4, 32), 4);
	trunk = (long long)b[0] << 24 | b[1] << 16 | b[2] << 8 | b[3];
	cr_assert_gt(trunk, 0);
	b[0] = 0x7f;
	b[1] = b[2] = b[3] = 0xff;
	cr_assert_eq(pwrite(fd, b, 4, (trunk - 1) * page + 4), 4);
	close(fd);
	setenv("PROFD_PERSIST_SYNC_CHECK_MAX", "0", 1);
	st = new_store(0);
	p = open_ok(st, NOW);
	unsetenv("PROFD_PERSIST_SYNC_CHECK_MAX");
	cr_assert_eq(count_files(PERSIST_FILE ".bad-"), 0, "served first");
	cr_assert_eq(flush_after_check(p), -1);
	cr_assert_eq(persist_flush(p), -1, "a damaged file is written");
	persist_close(p);
	store_free(st);
	cr_assert_eq(count_files(PERSIST_FILE ".damaged"), 1);
	/* The next start checks it whole at once, and sets it aside. */
	st = new_store(0);
	p = open_ok(st, NOW);
	cr_assert_eq(count_files(PERSIST_FILE ".bad-"), 1);
	cr_assert_eq(count_files(PERSIST_FILE ".damaged"), 0);
	cr_assert_eq(persist_flush(p), 0);
	persist_close(p);
	store_free(st);
}

Test(persist, a_big_file_is_not_written_before_its_check_passes)
{
	struct store		*b;
	struct persist		*p;
	struct persist_profile	 pf = { 0, 1, 250, PROTO_MODE_CPU,
				    PROTO_READER_GIL, 10, 150 };
	struct persist_counts	 c;
	uint64_t		 later;

	store_free(write_filled(10));
	/* The oldest 15 of 30 buckets past the retention; the file big. */
	later = NOW + store_get_config(b = new_store(0))->retention_ns -
	    150 * SEC;
	setenv("PROFD_PERSIST_SYNC_CHECK_MAX", "0", 1);
	p = open_ok(b, later);
	unsetenv("PROFD_PERSIST_SYNC_CHECK_MAX");
	persist_get_counts(p, &c);
	cr_assert_eq(c.buckets_loaded, 15, "past the retention, loaded");
	cr_assert_eq(persist_profile_put(p, &pf), 0);
	pf.pid = 77;
	cr_assert_eq(persist_profile_put(p, &pf), 0);
	cr_assert_eq(persist_profile_clear_pids(p), 0);
	/* Nothing written yet: the old rows and no saved state. */
	cr_assert_eq(query("SELECT count(*) FROM buckets"), 30);
	cr_assert_eq(query("SELECT count(*) FROM profiles"), 0);
	cr_assert_eq(flush_after_check(p), 0);
	cr_assert_eq(query("SELECT count(*) FROM buckets"), 15);
	cr_assert_eq(query("SELECT count(*) FROM profiles"), 1);
	cr_assert_eq(query("SELECT rate_hz FROM profiles WHERE pid = 0"), 250);
	persist_close(p);
	store_free(b);
}

Test(persist, a_row_a_query_listed_is_not_read_once_expired)
{
	const struct query_cold	*src;
	struct query_cold_row	*rows;
	struct store_entry	 e[64];
	struct store_tally	*t;
	struct store		*st;
	struct persist		*p;
	struct persist_counts	 c;
	size_t			 n, nt;

	store_free(write_filled(20));
	p = open_late(&st);
	check_all(p);
	cr_assert_not_null(src = persist_cold_source(p));
	cr_assert_eq(src->list(src->arg, 0, UINT64_MAX, &rows, &n), 0);
	cr_assert_gt(n, 0);
	cr_assert(rows[0].n <= 64);
	cr_assert_eq(src->read(src->arg, &rows[0], 0, e, rows[0].n), 0);
	/* Past the retention: unpinned at once, deleted at the next flush.
	 * Its ids may go to new definitions meanwhile, so a query that
	 * listed it before gets an error, not those entries. */
	persist_expire(p, UINT64_MAX / 2, 0);
	cr_assert_neq(src->read(src->arg, &rows[0], 0, e, rows[0].n), 0);
	cr_assert_neq(src->tallies(src->arg, &rows[0], &t, &nt), 0);
	cr_assert_eq(persist_flush(p), 0);
	cr_assert_neq(src->read(src->arg, &rows[0], 0, e, rows[0].n), 0);
	cr_assert_neq(src->tallies(src->arg, &rows[0], &t, &nt), 0);
	persist_get_counts(p, &c);
	cr_assert_eq(c.cold_unreadable, 0, "gone, not damaged");
	free(rows);
	persist_close(p);
	store_free(st);
}

/* Rewrites every bucket row and slice as an older profd wrote them: raw
 * struct store_entry images. */
static void
rewrite_raw(void)
{
	const char	*tables[] = { "buckets", "bucket_parts" };
	sqlite3		*d;
	sqlite3_stmt	*s, *u;
	struct store_entry *e;
	uint64_t	 n;
	char		 sql[128];
	int		 i, compact, rows = 0;

	cr_assert_eq(sqlite3_open(db, &d), SQLITE_OK);
	for (i = 0; i < 2; i++) {
		snprintf(sql, sizeof sql, "SELECT id, entries FROM %s",
		    tables[i]);
		cr_assert_eq(sqlite3_prepare_v2(d, sql, -1, &s, NULL),
		    SQLITE_OK);
		snprintf(sql, sizeof sql, "UPDATE %s SET entries = ?2 WHERE "
		    "id = ?1", tables[i]);
		cr_assert_eq(sqlite3_prepare_v2(d, sql, -1, &u, NULL),
		    SQLITE_OK);
		while (sqlite3_step(s) == SQLITE_ROW) {
			cr_assert_eq(persist_codec_count(sqlite3_column_blob(s,
			    1), (size_t)sqlite3_column_bytes(s, 1), &n,
			    &compact), 0);
			if (n == 0)
				continue;
			cr_assert(compact);
			cr_assert_not_null(e = calloc(n, sizeof *e));
			cr_assert_eq(persist_codec_decode(sqlite3_column_blob(s,
			    1), (size_t)sqlite3_column_bytes(s, 1), e, n), 0);
			sqlite3_bind_int64(u, 1, sqlite3_column_int64(s, 0));
			sqlite3_bind_blob(u, 2, e, (int)(n * sizeof *e),
			    SQLITE_TRANSIENT);
			cr_assert_eq(sqlite3_step(u), SQLITE_DONE);
			sqlite3_reset(u);
			free(e);
			rows++;
		}
		sqlite3_finalize(s);
		sqlite3_finalize(u);
	}
	cr_assert_gt(rows, 0);
	sqlite3_close(d);
}

Test(persist, rows_an_older_profd_wrote_as_raw_images_load_and_read_as_before)
{
	struct store		*a, *b;
	struct persist		*p;
	struct persist_counts	 c;

	/* Slices too: (4096 - 15) / 40 = 102 entries a row. */
	setenv("PROFD_PERSIST_MAX_ROW", "4096", 1);
	a = write_filled(200);
	unsetenv("PROFD_PERSIST_MAX_ROW");
	cr_assert_gt(query("SELECT count(*) FROM bucket_parts"), 0);
	rewrite_raw();
	cr_assert_eq(query("SELECT count(*) FROM buckets WHERE n * 32 != "
	    "length(entries)"), query("SELECT count(*) FROM bucket_parts"));
	/* Loaded whole. */
	assert_file_holds(a, NOW);
	/* Left unread, then read on disk a slice at a time. */
	p = open_late(&b);
	check_all(p);
	persist_get_counts(p, &c);
	cr_assert_eq(c.cold_unchecked, 0);
	cr_assert_eq(c.buckets_dropped, 0);
	persist_close(p);
	store_free(b);
	assert_file_holds(a, NOW);
	store_free(a);
}

Test(persist, bucket_rows_are_compact)
{
	store_free(write_filled(512));
	/* fill(): 512 entries a bucket, 1-3 samples each. */
	cr_assert_lt(query("SELECT sum(length(entries)) FROM buckets"),
	    query("SELECT sum(n) FROM buckets") * 8,
	    "%lld bytes for %lld entries",
	    query("SELECT sum(length(entries)) FROM buckets"),
	    query("SELECT sum(n) FROM buckets"));
}

/* Opens dir with no time to load, and checks what is left: every bucket
 * stays on disk, pinned. */
static struct persist *
open_all_on_disk(struct store **st)
{
	struct store_counts	sa;
	struct persist		*p;

	p = open_late(st);
	check_all(p);
	store_get_counts(*st, &sa);
	cr_assert_eq(sa.buckets, 0, "%zu buckets loaded", sa.buckets);
	return (p);
}

/* Rolls up what is due on disk at now; how many merges it took. */
static int
rollup_all(struct persist *p, uint64_t now)
{
	int	n, all = 0;

	while ((n = persist_rollup(p, now, 1000)) > 0)
		all += n;
	return (all);
}

/* Opens dir with every bucket on disk, rolls up what is due at now (some
 * must be), sweeps and closes. */
static void
rollup_on_disk(uint64_t now)
{
	struct store	*b;
	struct persist	*p;

	p = open_all_on_disk(&b);
	cr_assert_gt(rollup_all(p, now), 0);
	store_sweep_begin(b);
	store_sweep_end(b);
	cr_assert_eq(persist_flush(p), 0);
	persist_close(p);
	store_free(b);
}

/* Asserts that dir holds what store a, rolled up in memory at now, holds,
 * every bucket read back. */
static void
assert_file_holds(struct store *a, uint64_t now)
{
	struct store		*c;
	struct persist		*p;
	struct persist_counts	 pc;

	store_tick(a, now);
	c = new_store(0);
	p = open_ok(c, NOW);
	persist_get_counts(p, &pc);
	cr_assert_eq(pc.buckets_dropped, 0);
	assert_same(a, c);
	persist_close(p);
	store_free(c);
}

Test(persist, buckets_on_disk_roll_up_as_those_in_memory_do)
{
	struct store		*a, *b;
	struct persist		*p;
	struct persist_counts	 pc, pc2;
	long long		 rows;

	/* 30 buckets of 10 s over 5 minutes, 40 stacks each. */
	a = write_filled(40);
	rows = query("SELECT count(*) FROM buckets");
	p = open_all_on_disk(&b);
	persist_get_counts(p, &pc);
	cr_assert_eq((long long)pc.cold_buckets, rows);
	/* Nothing is due within the hour. */
	cr_assert_eq(rollup_all(p, NOW + 60 * SEC), 0);
	/* Two hours on: minutes, as a store in memory rolls them up. */
	cr_assert_gt(rollup_all(p, NOW + 7200 * SEC), 0);
	persist_get_counts(p, &pc2);
	cr_assert_lt(pc2.cold_buckets, pc.cold_buckets);
	cr_assert_eq(pc2.cold_samples, pc.cold_samples);
	cr_assert_gt(pc2.disk_rollups, 0);
	cr_assert_eq(pc2.disk_rollup_failures, 0);
	/* What the rows name stays pinned through a sweep. */
	store_sweep_begin(b);
	store_sweep_end(b);
	cr_assert_eq(persist_flush(p), 0);
	persist_close(p);
	store_free(b);
	cr_assert_eq(query("SELECT count(*) FROM buckets"),
	    (long long)pc2.cold_buckets);
	cr_assert_eq(query("SELECT count(*) FROM buckets WHERE width_ns != "
	    "60000000000"), 0);
	assert_file_holds(a, NOW + 7200 * SEC);
	/* Two days on: hours. */
	rollup_on_disk(NOW + 2 * 86400 * SEC);
	cr_assert_eq(query("SELECT count(*) FROM buckets WHERE width_ns != "
	    "3600000000000"), 0);
	assert_file_holds(a, NOW + 2 * 86400 * SEC);
	store_free(a);
}

Test(persist, a_roll_up_on_disk_waits_for_a_show_reading)
{
	struct store	*b;
	struct persist	*p;

	store_free(write_filled(10));
	p = open_all_on_disk(&b);
	store_readers(b, 1);
	cr_assert_eq(rollup_all(p, NOW + 7200 * SEC), 0);
	store_readers(b, -1);
	cr_assert_gt(rollup_all(p, NOW + 7200 * SEC), 0);
	persist_close(p);
	store_free(b);
}

Test(persist, raw_rows_of_a_schema_1_file_roll_up_once_a_flush_raised_it)
{
	struct store	*a, *b;
	struct persist	*p;

	a = write_filled(40);
	rewrite_raw();
	run_sql("UPDATE meta SET version = 1");
	p = open_all_on_disk(&b);
	/* A merged row is compact: not in a file an older profd reads. */
	cr_assert_eq(rollup_all(p, NOW + 7200 * SEC), 0);
	cr_assert_eq(persist_flush(p), 0);
	cr_assert_eq(query("SELECT version FROM meta"), PERSIST_SCHEMA);
	cr_assert_gt(rollup_all(p, NOW + 7200 * SEC), 0);
	persist_close(p);
	store_free(b);
	assert_file_holds(a, NOW + 7200 * SEC);
	store_free(a);
}

Test(persist, buckets_in_slices_roll_up_on_disk_a_slice_at_a_time)
{
	struct store	*a;

	/* 102 entries a slice: each bucket of 200 is two, a minute more. */
	setenv("PROFD_PERSIST_MAX_ROW", "4096", 1);
	a = write_filled(200);
	rollup_on_disk(NOW + 7200 * SEC);
	cr_assert_gt(query("SELECT count(*) FROM bucket_parts"),
	    query("SELECT count(*) FROM buckets"));
	assert_file_holds(a, NOW + 7200 * SEC);
	store_free(a);
	unsetenv("PROFD_PERSIST_MAX_ROW");
}

Test(persist, a_roll_up_whose_write_fails_undoes_its_pins_and_is_tried_again)
{
	struct store		*a, *b;
	struct persist		*p;
	struct persist_counts	 pc;

	/* 102 entries a slice: a merged minute is written in many. */
	setenv("PROFD_PERSIST_MAX_ROW", "4096", 1);
	a = write_filled(200);
	p = open_all_on_disk(&b);
	/* Every slice past a row's first fails to be written. */
	run_sql("CREATE TRIGGER no_parts BEFORE INSERT ON bucket_parts BEGIN "
	    "SELECT RAISE(ABORT, 'full'); END");
	cr_assert_eq(rollup_all(p, NOW + 7200 * SEC), 0);
	persist_get_counts(p, &pc);
	cr_assert_eq(pc.disk_rollups, 0);
	cr_assert_eq(pc.disk_rollup_failures, 1);
	run_sql("DROP TRIGGER no_parts");
	/* Nothing changed: a sweep frees nothing the rows name. */
	store_sweep_begin(b);
	store_sweep_end(b);
	cr_assert_eq(persist_flush(p), 0);
	persist_close(p);
	store_free(b);
	rollup_on_disk(NOW + 7200 * SEC);
	assert_file_holds(a, NOW + 7200 * SEC);
	store_free(a);
	unsetenv("PROFD_PERSIST_MAX_ROW");
}
