/*
 * reader.h -- one interface for the ways the agent reads Python stacks.
 *
 * reader_gil.c reads through the public C API while holding the GIL;
 * reader_direct.c copies interpreter state without the GIL (safe copies,
 * validated pointers).  The sampler does not know which one runs.
 *
 * All calls are made from the sampler thread only.
 */
#ifndef READER_H
#define READER_H

#include <stddef.h>
#include <stdint.h>

#include "proto.h"

/* One frame as the reader saw it: a code object address and a location,
 * which is a line number (READER_LOC_LINE) or an instruction offset in
 * bytes from the start of the code (READER_LOC_OFFSET), per reader. */
struct reader_frame {
	uintptr_t	code;
	int32_t		loc;
};

struct reader_thread {
	uint64_t	 native_id;	/* kernel tid */
	uint64_t	 ident;		/* threading.get_ident() */
	uint32_t	 depth;		/* frames filled, leaf first */
	int		 truncated;	/* deeper than PROTO_MAX_DEPTH */
	int		 gil;		/* held the GIL, -1 unknown */
	int		 offcpu;	/* the reader knows it is not on a
					   CPU (see reader_gil.c) */
	struct reader_frame frames[PROTO_MAX_DEPTH];
	/* Set by a reader that summed the frames' shares as it read them
	 * (reader_frame_share): their sum, and the leaf's share. */
	int		 hashed;
	uint64_t	 share_sum;
	uint64_t	 share_leaf;
};

/* Slot of a key in a table of 2^bits slots: the top bits of its product
 * with 2^64 / the golden ratio (Fibonacci hashing), which spreads
 * addresses whose low bits are all alike. */
static inline size_t
reader_slot(uint64_t key, unsigned bits)
{
	return ((size_t)((key * UINT64_C(0x9e3779b97f4a7c15)) >> (64 - bits)));
}

/*
 * A frame's share of its capture's frames hash (see sampler.c): the frame
 * at depth i from the leaf, its code object, the reader's fingerprint of
 * it and its location.  The hash is the sum of the shares and a term for
 * depth and truncation, so a reader can sum the shares as it walks.
 */
static inline uint64_t
reader_frame_share(uint32_t i, uintptr_t code, uint64_t fp, int32_t loc)
{
	/* One-to-one in (i, loc) for a code object and its fingerprint, and
	 * mixed in every bit: a frame moved to another depth, or two frames
	 * swapped, must change the sum (a gil reader's fingerprint is a
	 * small serial number, not a random one). */
	uint64_t	h = (uint64_t)code ^ (fp * 0x9e3779b97f4a7c15ull);

	h += (((uint64_t)i << 32) | (uint32_t)loc) * 0xbf58476d1ce4e5b9ull;
	h ^= h >> 31;
	h *= 0xd6e8feb86659fd93ull;
	h ^= h >> 32;
	h *= 0x94d049bb133111ebull;
	return (h ^ (h >> 29));
}

#define READER_NAME_MAX	512
#define READER_HIDDEN_MAX	16	/* agent code objects never shown */

/* What the interner needs to define a function, copied out. */
struct reader_code {
	char		qualname[READER_NAME_MAX];
	char		filename[READER_NAME_MAX];
	int32_t		firstline;
	uint64_t	fingerprint;	/* changes if the address is reused */
};

enum reader_loc { READER_LOC_LINE, READER_LOC_OFFSET };

/*
 * Which threads a capture takes when the process has more than it has
 * room for (reader.c).  The main thread and the GIL holder always; of the
 * other N, a window of W = max - 2 that moves on by W every capture, so
 * the N - W left out (counted in skipped) move round the list: each thread
 * is taken in W of every N captures, none is left out twice in a row
 * while N < 2W.  Positions come from the previous capture's count, so
 * threads coming and going shift the window a little.
 */
struct reader_window {
	uint32_t	start;		/* position the window starts at */
	uint32_t	total;		/* others seen by the last capture */
	/* This capture (reader_window_begin resets them): */
	uint32_t	max;
	uint32_t	width;
	uint32_t	pos;		/* others seen so far */
	uint32_t	taken;		/* others taken */
	uint32_t	taken_all;	/* main and holder too: <= max */
	uint64_t	main_ident;	/* threading ident of the main thread */
	uint64_t	skipped;
};

struct reader {
	const char	*name;		/* "gil" or "direct" */
	enum proto_reader id;
	enum reader_loc	 loc;
	/* Returns 0 if this reader works on this interpreter, else -1. */
	int		(*probe)(void);
	/*
	 * Fills up to max threads (every Python thread of the interpreter but
	 * the sampler's own); returns how many, or -1.  *invalid is bumped for
	 * each thread whose stack was torn or unreadable and left out.
	 */
	int		(*capture)(struct reader_thread *, int max,
			    struct reader_window *, uint64_t *invalid);
	/* Copies out what defines code; 0 or -1 if unreadable. */
	int		(*code)(uintptr_t code, struct reader_code *);
	/* Fingerprint of code now, to detect a reused address; 0 on error. */
	uint64_t	(*fingerprint)(uintptr_t code);
	/* Maps loc to a line number (identity for READER_LOC_LINE). */
	int32_t		(*line)(uintptr_t code, int32_t loc);
	/* Interner lets go of a code object it held (gil reader: decref). */
	void		(*forget)(uintptr_t code);
};

/* reader.c: the thread window. */
void	reader_window_begin(struct reader_window *, int max,
	    uint64_t main_ident);
/* Whether the capture takes this thread (not the caller's own). */
int	reader_window_take(struct reader_window *, uint64_t ident,
	    int gil_holder);
void	reader_window_end(struct reader_window *);

/* reader.c: the agent's own code objects, left out of every stack. */
int	reader_hide(uintptr_t code);
int	reader_hidden(uintptr_t code);
uint32_t reader_hidden_generation(void);
/* Reads /proc/self/task/TID/FILE into buf; 0, or -1. */
int	reader_task_read(uint64_t tid, const char *file, char *buf,
	    size_t len);
/* What a thread does now, from /proc: one of these, or -1. */
#define READER_TASK_RUNNING	0
#define READER_TASK_CALL	1	/* in a system call but a futex */
#define READER_TASK_FUTEX	2	/* asleep on the futex at *addr */
int	reader_task_syscall(uint64_t tid, uintptr_t *addr);

extern const struct reader reader_gil;
extern const struct reader reader_direct;

#endif
