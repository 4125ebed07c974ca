/* test_sampling.c -- the sampling settings profd publishes for agents:
 * the text both ways, every malformed file refused, and the checks on the
 * file before it is read. */

#include <sys/stat.h>

#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proto.h"
#include "rundir.h"
#include "sampling.h"

static char	dir[64];
static char	path[128];
static char	err[512];

static void
setup(void)
{
	snprintf(dir, sizeof dir, "/tmp/test-sampling-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/%s", dir, RUNDIR_SAMPLING);
}

static void
teardown(void)
{
	char	cmd[128];

	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(sampling, .init = setup, .fini = teardown);

static const struct sampling	busy = {
	1, 1000, PROTO_MODE_CPU, PROTO_READER_GIL, 25, 150
};

#define GOOD	"profd-sampling 1\nprofiling on\nrate_hz 1000\nmode cpu\n" \
		"reader gil\njitter_pct 25\nmax_overhead_bp 150\n"

/* Writes text to the file as is, with a mode. */
static void
put(const char *text, size_t len, mode_t mode)
{
	int	fd;

	unlink(path);
	cr_assert_neq(fd = open(path, O_WRONLY | O_CREAT | O_EXCL, mode), -1);
	cr_assert_eq(write(fd, text, len), (ssize_t)len);
	cr_assert_eq(fchmod(fd, mode), 0);
	close(fd);
}

Test(sampling, formats_and_parses_both_ways)
{
	struct sampling	 s, off = { 0, 100, PROTO_MODE_WALL,
			    PROTO_READER_DEFAULT, 0, PROTO_OVERHEAD_UNSET };
	char		 buf[SAMPLING_MAX_BYTES];
	const char	*why;
	int		 n;

	n = sampling_format(&busy, buf, sizeof buf);
	cr_assert_eq(n, (int)strlen(GOOD));
	cr_assert_str_eq(buf, GOOD);
	cr_assert_eq(sampling_parse(buf, (size_t)n, &s, &why), 0, "%s", why);
	cr_assert_eq(memcmp(&s, &busy, sizeof s), 0);
	n = sampling_format(&off, buf, sizeof buf);
	cr_assert_not_null(strstr(buf, "profiling off\n"));
	cr_assert_not_null(strstr(buf, "max_overhead_bp none\n"));
	cr_assert_eq(sampling_parse(buf, (size_t)n, &s, &why), 0, "%s", why);
	cr_assert_eq(memcmp(&s, &off, sizeof s), 0);
	/* Out of range or too small a buffer: nothing written. */
	off.rate_hz = 0;
	cr_assert_eq(sampling_format(&off, buf, sizeof buf), -1);
	cr_assert_eq(sampling_format(&busy, buf, 20), -1);
}

Test(sampling, skips_lines_a_newer_profd_adds_after_the_known_ones)
{
	const char	 text[] = GOOD "future_key 7\nanother one-more\n";
	struct sampling	 s;
	const char	*why;

	cr_assert_eq(sampling_parse(text, sizeof text - 1, &s, &why), 0, "%s",
	    why);
	cr_assert_eq(s.rate_hz, 1000);
}

/* Inline arrays: each test runs in a process of its own. */
struct bad_file {
	char	what[48];
	char	text[SAMPLING_MAX_BYTES];
};

ParameterizedTestParameters(sampling, refuses_every_malformed_file)
{
	static struct bad_file bad[] = {
		{ "empty", "" },
		{ "another magic", "profd-sampler 1\n" },
		{ "another version", "profd-sampling 2\nprofiling on\n"
		    "rate_hz 1000\nmode cpu\nreader gil\njitter_pct 25\n"
		    "max_overhead_bp 150\n" },
		{ "lines missing", "profd-sampling 1\nprofiling on\n" },
		{ "no final newline", "profd-sampling 1\nprofiling on\n"
		    "rate_hz 1000\nmode cpu\nreader gil\njitter_pct 25\n"
		    "max_overhead_bp 150" },
		{ "out of order", "profd-sampling 1\nrate_hz 1000\n"
		    "profiling on\nmode cpu\nreader gil\njitter_pct 25\n"
		    "max_overhead_bp 150\n" },
		{ "profiling yes", "profd-sampling 1\nprofiling yes\n"
		    "rate_hz 1000\nmode cpu\nreader gil\njitter_pct 25\n"
		    "max_overhead_bp 150\n" },
		{ "rate 0", "profd-sampling 1\nprofiling on\nrate_hz 0\n"
		    "mode cpu\nreader gil\njitter_pct 25\nmax_overhead_bp 150\n" },
		{ "rate over the maximum", "profd-sampling 1\nprofiling on\n"
		    "rate_hz 10001\nmode cpu\nreader gil\njitter_pct 25\n"
		    "max_overhead_bp 150\n" },
		{ "rate of many digits", "profd-sampling 1\nprofiling on\n"
		    "rate_hz 4294968296\nmode cpu\nreader gil\njitter_pct 25\n"
		    "max_overhead_bp 150\n" },
		{ "rate with a sign", "profd-sampling 1\nprofiling on\n"
		    "rate_hz +100\nmode cpu\nreader gil\njitter_pct 25\n"
		    "max_overhead_bp 150\n" },
		{ "rate with a leading zero", "profd-sampling 1\nprofiling on\n"
		    "rate_hz 0100\nmode cpu\nreader gil\njitter_pct 25\n"
		    "max_overhead_bp 150\n" },
		{ "unknown mode", "profd-sampling 1\nprofiling on\nrate_hz 100\n"
		    "mode walls\nreader gil\njitter_pct 25\n"
		    "max_overhead_bp 150\n" },
		{ "unknown reader", "profd-sampling 1\nprofiling on\n"
		    "rate_hz 100\nmode cpu\nreader ptrace\njitter_pct 25\n"
		    "max_overhead_bp 150\n" },
		{ "jitter over 50", "profd-sampling 1\nprofiling on\n"
		    "rate_hz 100\nmode cpu\nreader gil\njitter_pct 51\n"
		    "max_overhead_bp 150\n" },
		{ "budget over 100%", "profd-sampling 1\nprofiling on\n"
		    "rate_hz 100\nmode cpu\nreader gil\njitter_pct 5\n"
		    "max_overhead_bp 10001\n" },
		{ "two spaces", "profd-sampling 1\nprofiling  on\nrate_hz 100\n"
		    "mode cpu\nreader gil\njitter_pct 5\nmax_overhead_bp 1\n" },
		{ "a tab", "profd-sampling 1\nprofiling\ton\nrate_hz 100\n"
		    "mode cpu\nreader gil\njitter_pct 5\nmax_overhead_bp 1\n" },
		{ "a carriage return", "profd-sampling 1\r\nprofiling on\n"
		    "rate_hz 100\nmode cpu\nreader gil\njitter_pct 5\n"
		    "max_overhead_bp 1\n" },
		{ "upper case", "profd-sampling 1\nprofiling ON\nrate_hz 100\n"
		    "mode cpu\nreader gil\njitter_pct 5\nmax_overhead_bp 1\n" },
		{ "a key alone", "profd-sampling 1\nprofiling\nrate_hz 100\n"
		    "mode cpu\nreader gil\njitter_pct 5\nmax_overhead_bp 1\n" },
		{ "a bad line after the known ones", GOOD "x=1\n" },
		{ "a line too long after the known ones", GOOD "key "
		    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
		    "xxxxxxxxxx\n" },
		{ "a NUL byte", "profd-sampling 1\nprofiling on\0\n" },
	};

	return (cr_make_param_array(struct bad_file, bad,
	    sizeof bad / sizeof bad[0]));
}

ParameterizedTest(struct bad_file *b, sampling, refuses_every_malformed_file)
{
	struct sampling	 s;
	const char	*why = NULL;
	size_t		 len = strlen(b->text);

	/* A NUL byte: the text goes on after it. */
	if (strcmp(b->what, "a NUL byte") == 0)
		len += 2;
	memset(&s, 0x5a, sizeof s);
	cr_assert_eq(sampling_parse(b->text, len, &s, &why), -1, "%s accepted",
	    b->what);
	cr_assert_not_null(why);
	cr_assert_eq(s.rate_hz, 0x5a5a5a5a, "%s: output written", b->what);
}

Test(sampling, refuses_a_file_over_its_size_limit)
{
	char		 buf[SAMPLING_MAX_BYTES + 64];
	struct sampling	 s;
	const char	*why;
	size_t		 n = strlen(GOOD);

	memcpy(buf, GOOD, n);
	while (n + 4 <= sizeof buf) {
		memcpy(buf + n, "k v\n", 4);
		n += 4;
	}
	cr_assert_eq(sampling_parse(buf, n, &s, &why), -1);
	put(buf, n, 0644);
	cr_assert_eq(sampling_read(dir, &s, err, sizeof err), -1);
	cr_assert_not_null(strstr(err, "bytes"), "%s", err);
}

Test(sampling, writes_atomically_and_reads_back)
{
	struct sampling	s;
	struct stat	sb;
	char		cmd[256];

	cr_assert_eq(sampling_write(dir, &busy, 0644, (gid_t)-1, err,
	    sizeof err), 0, "%s", err);
	cr_assert_eq(stat(path, &sb), 0);
	cr_assert_eq(sb.st_mode & 07777, 0644);
	cr_assert_eq(sampling_read(dir, &s, err, sizeof err), 0, "%s", err);
	cr_assert_eq(memcmp(&s, &busy, sizeof s), 0);
	/* Again: replaced, and no temporary file left behind. */
	s.profiling = 0;
	cr_assert_eq(sampling_write(dir, &s, 0600, (gid_t)-1, err,
	    sizeof err), 0, "%s", err);
	cr_assert_eq(sampling_read(dir, &s, err, sizeof err), 0, "%s", err);
	cr_assert_eq(s.profiling, 0);
	snprintf(cmd, sizeof cmd, "test $(ls -A %s | wc -l) = 1", dir);
	cr_assert_eq(system(cmd), 0, "a temporary file is left");
	/* A directory that is not there. */
	snprintf(cmd, sizeof cmd, "%s/missing", dir);
	cr_assert_eq(sampling_write(cmd, &busy, 0644, (gid_t)-1, err,
	    sizeof err), -1);
}

Test(sampling, no_file_is_enoent)
{
	struct sampling	s;

	cr_assert_eq(sampling_read(dir, &s, err, sizeof err), -1);
	cr_assert_eq(errno, ENOENT);
}

Test(sampling, refuses_a_link_a_fifo_a_directory_and_a_writable_file)
{
	struct sampling	s;
	char		target[160];

	/* A symbolic link, even to a good file. */
	snprintf(target, sizeof target, "%s/real", dir);
	cr_assert_eq(sampling_write(dir, &busy, 0644, (gid_t)-1, err,
	    sizeof err), 0);
	cr_assert_eq(rename(path, target), 0);
	cr_assert_eq(symlink(target, path), 0);
	cr_assert_eq(sampling_read(dir, &s, err, sizeof err), -1);
	cr_assert_not_null(strstr(err, "symbolic link"), "%s", err);
	unlink(path);
	/* A FIFO: refused at once, never waited on. */
	cr_assert_eq(mkfifo(path, 0644), 0);
	cr_assert_eq(sampling_read(dir, &s, err, sizeof err), -1);
	cr_assert_not_null(strstr(err, "not a regular file"), "%s", err);
	unlink(path);
	cr_assert_eq(mkdir(path, 0755), 0);
	cr_assert_eq(sampling_read(dir, &s, err, sizeof err), -1);
	rmdir(path);
	/* Writable by group or others: anyone could have written it. */
	put(GOOD, strlen(GOOD), 0664);
	cr_assert_eq(sampling_read(dir, &s, err, sizeof err), -1);
	cr_assert_not_null(strstr(err, "writable"), "%s", err);
	put(GOOD, strlen(GOOD), 0646);
	cr_assert_eq(sampling_read(dir, &s, err, sizeof err), -1);
	put(GOOD, strlen(GOOD), 0644);
	cr_assert_eq(sampling_read(dir, &s, err, sizeof err), 0, "%s", err);
}

Test(sampling, refuses_a_file_of_someone_else_than_root_or_the_dirs_owner)
{
	struct sampling	s;

	if (geteuid() != 0)
		cr_skip_test("needs root to give the file away");
	put(GOOD, strlen(GOOD), 0644);
	/* The directory is root's: a file of uid 4242 is not. */
	cr_assert_eq(chown(path, 4242, (gid_t)-1), 0);
	cr_assert_eq(sampling_read(dir, &s, err, sizeof err), -1);
	cr_assert_not_null(strstr(err, "uid 4242"), "%s", err);
	/* The directory's owner's file is. */
	cr_assert_eq(chown(dir, 4242, (gid_t)-1), 0);
	cr_assert_eq(sampling_read(dir, &s, err, sizeof err), 0, "%s", err);
}
