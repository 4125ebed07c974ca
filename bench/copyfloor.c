/*
 * copyfloor.c -- the floor under the direct reader's copy: the wall time of
 * one process_vm_readv on the calling process's own pid, as the reader
 * makes it once a tick, with no walk around it.  Printed for 1 region and
 * for 7 regions on 7 pages (a one-thread capture's snapshot: interpreter
 * head, GIL, thread state, stack chunk, code headers), median of 5 runs of
 * 100,000 calls each.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define COPYFLOOR_CALLS		100000
#define COPYFLOOR_RUNS		5
#define COPYFLOOR_PAGE		4096
#define COPYFLOOR_REGIONS	7

/* The regions of a one-thread capture at depth 20 on 3.11, in bytes. */
static const size_t copyfloor_len[COPYFLOOR_REGIONS] = {
	8, 20, 320, 2856, 172, 8, 172
};

/* Reads CLOCK_MONOTONIC in ns. */
static uint64_t
copyfloor_ns(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec);
}

static int
copyfloor_cmp(const void *a, const void *b)
{
	double	x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Median ns a call, copying n regions each on its own page. */
static double
copyfloor_run(char *src, char *dst, int n)
{
	struct iovec	l[COPYFLOOR_REGIONS], r[COPYFLOOR_REGIONS];
	double		runs[COPYFLOOR_RUNS];
	size_t		off = 0;
	uint64_t	t0;
	pid_t		pid = getpid();
	int		i, k;

	for (i = 0; i < n; i++) {
		r[i].iov_base = src + (size_t)COPYFLOOR_PAGE * i + 64;
		r[i].iov_len = copyfloor_len[i];
		l[i].iov_base = dst + off;
		l[i].iov_len = copyfloor_len[i];
		off += copyfloor_len[i];
	}
	for (k = 0; k < COPYFLOOR_RUNS; k++) {
		t0 = copyfloor_ns();
		for (i = 0; i < COPYFLOOR_CALLS; i++)
			if (process_vm_readv(pid, l, n, r, n, 0) == -1) {
				perror("copyfloor: process_vm_readv");
				exit(1);
			}
		runs[k] = (double)(copyfloor_ns() - t0) / COPYFLOOR_CALLS;
	}
	qsort(runs, COPYFLOOR_RUNS, sizeof runs[0], copyfloor_cmp);
	return (runs[COPYFLOOR_RUNS / 2]);
}

int
main(void)
{
	static char	dst[COPYFLOOR_PAGE * COPYFLOOR_REGIONS];
	char		*src;

	if ((src = aligned_alloc(COPYFLOOR_PAGE, (size_t)COPYFLOOR_PAGE *
	    (COPYFLOOR_REGIONS + 1))) == NULL) {
		perror("copyfloor");
		return (1);
	}
	memset(src, 1, (size_t)COPYFLOOR_PAGE * (COPYFLOOR_REGIONS + 1));
	printf("process_vm_readv on our own pid, median of %d x %d calls:\n",
	    COPYFLOOR_RUNS, COPYFLOOR_CALLS);
	printf("  1 region:             %.2f us a call\n",
	    copyfloor_run(src, dst, 1) / 1000);
	printf("  %d regions, %d pages:   %.2f us a call\n", COPYFLOOR_REGIONS,
	    COPYFLOOR_REGIONS, copyfloor_run(src, dst, COPYFLOOR_REGIONS) / 1000);
	free(src);
	return (0);
}
