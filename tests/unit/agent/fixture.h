/*
 * fixture.h -- helpers of the agent unit suites: a table reader (a struct
 * reader whose stacks and code objects come from a table the test fills)
 * and a wire checker that decodes what the agent wrote with the real
 * proto decoder and checks the protocol's id rules.
 */
#ifndef FIXTURE_H
#define FIXTURE_H

#include <stddef.h>
#include <stdint.h>

#include "agent.h"

/* One code object of the table reader. */
struct fx_code {
	uintptr_t	 addr;
	char		 qualname[64];
	char		 filename[64];
	int32_t		 firstline;
	uint64_t	 fingerprint;	/* 0: fingerprint() fails */
	int		 unreadable;	/* code() fails */
};

#define FX_MAX_CODES	256
/* Addresses from here on are generated: "g<hex>" in "gen.py", line 1. */
#define FX_GEN_BASE	((uintptr_t)1 << 40)

/* How often the interner asked the reader. */
struct fx_calls {
	uint32_t	code;
	uint32_t	fingerprint;
	uint32_t	line;
	uint32_t	forget;
};

extern struct fx_calls	fx_calls;
/* Line-number reader; tests may switch .loc to READER_LOC_OFFSET, where a
 * location maps to firstline + offset / 2. */
extern struct reader	fx_reader;

/* Forgets every code object and call count; reader back to lines. */
void		 fx_reader_reset(void);
/* Adds (or replaces) a code object; returns it for tweaking. */
struct fx_code	*fx_code_add(uintptr_t, const char *qualname,
		    const char *filename, int32_t firstline);
struct fx_code	*fx_code_find(uintptr_t);
/* Fills a captured thread: codes/locs leaf first. */
void		 fx_thread(struct reader_thread *, uint64_t native_id,
		    const uintptr_t *codes, const int32_t *locs,
		    uint32_t depth);

/* What a decoded stream defined, by wire id (per connection, and afresh
 * after each RESYNC_ACK). */
#define FX_IDS		4096
#define FX_DEPTH	8		/* frames of a stack kept */
#define FX_SAMPLES	8192
#define FX_STR		80

struct fx_wire {
	int		 want_hello;	/* a connection starts with HELLO */
	const char	*error;		/* first rule broken, or NULL */
	char		 errbuf[256];
	uint32_t	 nmsgs;		/* messages on this connection */
	uint32_t	 nhellos;	/* over all connections */
	uint64_t	 hello_pid;
	uint32_t	 nstats;
	uint32_t	 nacks;		/* RESYNC_ACKs, over all connections */
	uint32_t	 ack_token;	/* the last one's */
	uint32_t	 samples_at_ack;	/* nsamples then */
	uint32_t	 nstrings, nfuncs, nframes, nstacks, nthreads;
	char		 strings[FX_IDS + 1][FX_STR];
	struct { uint32_t name, file, line; } funcs[FX_IDS + 1];
	struct { uint32_t func, line; } frames[FX_IDS + 1];
	struct {
		int	 truncated;
		uint32_t depth;
		uint32_t frames[FX_DEPTH];
	} stacks[FX_IDS + 1];
	struct { uint64_t tid; uint32_t name; } threads[FX_IDS + 1];
	uint32_t	 nsamples;	/* over all connections */
	uint32_t	 nbatches;	/* SAMPLES and BATCH messages */
	uint64_t	 ninvalid;	/* stacks left out, as BATCHes said */
	uint32_t	 modes[PROTO_MODE_LAST + 2];	/* BATCHes per mode
							   said; last: none */
	struct proto_sample samples[FX_SAMPLES];	/* the first ones */
};

extern struct fx_wire	fx_wire;

/* Starts checking a new stream (want_hello: it must open with HELLO). */
void		 fx_wire_reset(int want_hello);
/* Decodes every whole frame in buf; returns the bytes used.  Rule breaks
 * land in fx_wire.error. */
size_t		 fx_wire_feed(const char *, size_t);
/* Qualified name of a wire frame id's function ("" if unknown). */
const char	*fx_wire_frame_name(uint32_t frame);
/* Name of a wire thread id ("" if unknown). */
const char	*fx_wire_thread_name(uint32_t thread);

#endif
