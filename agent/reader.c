/*
 * reader.c -- what both readers share: the agent's own code objects, whose
 * frames never show in a captured stack (the wrapper profagent puts around
 * every thread's run, its sitecustomize, its fork and exit hooks).
 *
 * The table is append-only: Python threads add to it holding the GIL (so
 * one writer at a time), the sampler reads it without the GIL.  A slot is
 * written before the count that covers it is published (release/acquire),
 * and module.c keeps a reference to each code object, so an address never
 * goes stale or gets reused while it is in the table.  A 256-bit filter
 * of the addresses answers most lookups (every frame of every capture)
 * without the scan; its bits are set before the slot is published.
 */

#include <sys/syscall.h>

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#include "reader.h"

static uintptr_t	reader_hidden_codes[READER_HIDDEN_MAX];
static uint32_t		reader_hidden_count;
static uint64_t		reader_hidden_filter[4];

/* The filter bit of an address: 8 bits of a multiplicative hash. */
static inline unsigned
reader_hidden_bit(uintptr_t code)
{
	return ((unsigned)reader_slot(code, 8));
}

/* Hides a code object's frames: 1 if added, 0 if already hidden, -1 if
 * the table is full. */
int
reader_hide(uintptr_t code)
{
	uint32_t	n, i;

	n = __atomic_load_n(&reader_hidden_count, __ATOMIC_ACQUIRE);
	for (i = 0; i < n; i++) {
		if (reader_hidden_codes[i] == code)
			return (0);
	}
	if (n == READER_HIDDEN_MAX)
		return (-1);
	i = reader_hidden_bit(code);
	__atomic_fetch_or(&reader_hidden_filter[i >> 6], 1ull << (i & 63),
	    __ATOMIC_RELAXED);
	__atomic_store_n(&reader_hidden_codes[n], code, __ATOMIC_RELAXED);
	__atomic_store_n(&reader_hidden_count, n + 1, __ATOMIC_RELEASE);
	return (1);
}

/* Whether frames of this code object are left out of stacks. */
int
reader_hidden(uintptr_t code)
{
	uint32_t	n, i;

	n = __atomic_load_n(&reader_hidden_count, __ATOMIC_ACQUIRE);
	i = reader_hidden_bit(code);
	if (!(__atomic_load_n(&reader_hidden_filter[i >> 6], __ATOMIC_RELAXED) &
	    (1ull << (i & 63))))
		return (0);
	for (i = 0; i < n; i++) {
		if (__atomic_load_n(&reader_hidden_codes[i],
		    __ATOMIC_RELAXED) == code)
			return (1);
	}
	return (0);
}

/* Changes whenever a code object is hidden (readers cache the answers of
 * reader_hidden under it). */
uint32_t
reader_hidden_generation(void)
{
	return (__atomic_load_n(&reader_hidden_count, __ATOMIC_ACQUIRE));
}

/* Starts a capture of at most max threads. */
void
reader_window_begin(struct reader_window *w, int max, uint64_t main_ident)
{
	w->max = max > 0 ? (uint32_t)max : 0;
	w->width = max > 2 ? (uint32_t)max - 2 : 0;
	w->pos = 0;
	w->taken = 0;
	w->taken_all = 0;
	w->main_ident = main_ident;
	w->skipped = 0;
	if (w->total <= w->width || w->start >= w->total)
		w->start = 0;
}

/*
 * Whether the capture takes this thread; counts the ones it leaves out.
 * The reader visits every thread (so that all are counted) and never fills
 * more than max: main and holder have their two places kept.
 */
int
reader_window_take(struct reader_window *w, uint64_t ident, int gil_holder)
{
	uint32_t	pos, total;

	if (w->taken_all >= w->max) {
		w->skipped++;
		return (0);
	}
	if ((ident != 0 && ident == w->main_ident) || gil_holder == 1) {
		w->taken_all++;
		return (1);
	}
	pos = w->pos++;
	total = w->total > w->pos ? w->total : w->pos;
	if (w->taken < w->width &&
	    (pos + total - w->start) % total < w->width) {
		w->taken++;
		w->taken_all++;
		return (1);
	}
	w->skipped++;
	return (0);
}

/* Ends a capture: the next one's window starts past this one's. */
void
reader_window_end(struct reader_window *w)
{
	w->total = w->pos;
	if (w->total > w->width && w->total > 0)
		w->start = (w->start + w->width) % w->total;
	else
		w->start = 0;
}

/*
 * Reads /proc/self/task/TID/FILE into buf (NUL-terminated); 0, or -1.
 * pread, not read: should the host close and reuse the descriptor between
 * the calls, a pread on its socket or pipe fails instead of eating bytes.
 */
int
reader_task_read(uint64_t tid, const char *file, char *buf, size_t len)
{
	char	path[64];
	ssize_t	n;
	int	fd;

	if (tid == 0 || tid > INT32_MAX || len < 2)
		return (-1);
	snprintf(path, sizeof path, "/proc/self/task/%llu/%s",
	    (unsigned long long)tid, file);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return (-1);
	n = pread(fd, buf, len - 1, 0);
	close(fd);
	if (n <= 0)
		return (-1);
	buf[n] = '\0';
	return (0);
}

/*
 * What a thread is doing, from its syscall file: READER_TASK_FUTEX (asleep
 * on the futex at *addr), READER_TASK_CALL (in another system call),
 * READER_TASK_RUNNING, or -1 if unreadable.
 */
int
reader_task_syscall(uint64_t tid, uintptr_t *addr)
{
	char			buf[256];
	unsigned long long	nr, a;
	int			k;

	if (reader_task_read(tid, "syscall", buf, sizeof buf) != 0)
		return (-1);
	if ((k = sscanf(buf, "%llu %llx", &nr, &a)) != 2)
		return (buf[0] == 'r' ? READER_TASK_RUNNING : READER_TASK_CALL);
	if (nr != SYS_futex)
		return (READER_TASK_CALL);
	*addr = (uintptr_t)a;
	return (READER_TASK_FUTEX);
}
