/*
 * agent.h -- profagent's internal interfaces: the sampler thread, the
 * interner, the daemon connection and the state they share.
 *
 * Threads: Python threads call the module functions (module.c) holding the
 * GIL; the one sampler thread (sampler.c) does everything else.  Shared
 * state is either atomic (config, counters) or handed over at thread start
 * and join.
 */
#ifndef AGENT_H
#define AGENT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"
#include "reader.h"

/* Limits and settings, each with its default. */
/* A thread counts as on a CPU at a tick only if its CPU clock moved at
 * least this much since the previous tick (and at most 1/DIV of a period). */
#define AGENT_ONCPU_MIN_NS	50000
#define AGENT_ONCPU_MIN_DIV	8
/* A thread without the GIL counts only if its CPU clock moved at least a
 * DIV-th of the time since its previous tick (sampler.c). */
#define AGENT_ONCPU_GIL_DIV	4
/* A thread off a CPU at its previous tick, without the GIL then and now and
 * in the same frames, is taken as off without a read for this many ticks
 * in a row; the GIL holder on at its previous tick, in the same frames, as
 * on (sampler.c). */
#define AGENT_ONCPU_RECHECK	8
/* Reads of the stopped GIL holder's state the gil reader makes at most. */
#define READER_GIL_SETTLE	16
#define AGENT_MAX_THREADS	256		/* threads captured per tick */
#define AGENT_ALWAYS_THREADS	2		/* of those, main and GIL holder */
#define AGENT_BUFFER_DEFAULT	(4u << 20)	/* outgoing bytes buffered */
#define AGENT_BUFFER_MIN	(64u << 10)
#define AGENT_BUFFER_MAX	(256u << 20)
#define AGENT_BUFFER_ENV	"PROFAGENT_BUFFER_BYTES"
#define AGENT_FLUSH_NS		50000000ull	/* flush samples every 50 ms */
#define AGENT_FLUSH_SAMPLES	512		/* ... or at this many */
#define AGENT_PENDING_MAX	(AGENT_FLUSH_SAMPLES + AGENT_MAX_THREADS)
#define AGENT_STATS_NS		1000000000ull	/* PROTO_STATS period */
#define AGENT_IO_NS		5000000ull	/* socket I/O while sampling */
#define AGENT_WORK_EVERY	256		/* ticks per work_ns measure */
#define AGENT_IDLE_POLL_MS	100		/* poll while not profiling */
#define AGENT_ALONE_CHECK_NS	250000000ull	/* is the sampler alone? */
#define AGENT_BACKOFF_MIN_NS	100000000ull	/* reconnect backoff 100 ms */
#define AGENT_BACKOFF_MAX_NS	5000000000ull	/* ... doubling up to 5 s */
#define AGENT_REJECT_BACKOFF_NS	300000000000ull	/* after a REJECT: 5 min */
#define AGENT_EXIT_FLUSH_NS	100000000ull	/* last flush at exit */
#define AGENT_INBUF		4096		/* bytes of daemon input */
/* Batches kept until the daemon acknowledges them (PROTO_ACK): at most
 * this many, and as many samples as PROTOAGENT_BUFFER_BYTES holds of
 * struct intern_sample; a batch that does not fit is dropped. */
#define AGENT_KEEP_BATCHES	4096
#define AGENT_MAX_WEIGHT_US	1000000u	/* one sample weighs <= 1 s */
/* A tick late by k periods stands in for the k it missed, up to this many
 * ticks in all: its samples are repeated, their weight shared (sampler.c). */
#define AGENT_MAKEUP_MAX	4
#define AGENT_TIMER_SLACK_NS	1000		/* sampler's timer slack */
#define AGENT_RATE_WINDOW	8		/* achieved rate: 8 slots... */
#define AGENT_RATE_SLOT_NS	250000000ull	/* ... of 250 ms */
#define AGENT_NAME_SLOTS	4096		/* thread names remembered */
#define AGENT_NAME_MAX		128		/* bytes of a thread name */
#define AGENT_READER_ENV	"PROFAGENT_READER"
/* The CPU budget (budget.c): the process default, a percent of a core. */
#define AGENT_BUDGET_ENV	"PROFAGENT_MAX_OVERHEAD"
#define AGENT_BUDGET_WINDOW_NS	200000000ull	/* measured every 200 ms */
#define AGENT_BUDGET_FIRST_NS	20000000ull	/* ... the first in 20 ms */
#define AGENT_BUDGET_GAP_NS	2000000000ull	/* idle longer: new window */
#define AGENT_BUDGET_TARGET_PCT	80		/* aim at 80% of the budget */
#define AGENT_BUDGET_HIGH_PCT	90		/* slow down over 90% */
#define AGENT_BUDGET_LOW_PCT	70		/* speed up under 70% */
#define AGENT_BUDGET_RAISE_PCT	25		/* by at most 25% a window */
#define AGENT_BUDGET_RATE_MIN	1		/* Hz: never slower */

/* Interner limits: past one, every table is cleared (see intern.c).
 * Overridable with -D for tests. */
#ifndef INTERN_MAX_STRINGS
#define INTERN_MAX_STRINGS	(1u << 17)
#endif
#ifndef INTERN_MAX_STRBYTES
#define INTERN_MAX_STRBYTES	(16u << 20)
#endif
#ifndef INTERN_MAX_FUNCS
#define INTERN_MAX_FUNCS	(1u << 16)
#endif
#ifndef INTERN_MAX_LOCS
#define INTERN_MAX_LOCS		(1u << 19)
#endif
#ifndef INTERN_MAX_FRAMES
#define INTERN_MAX_FRAMES	(1u << 18)
#endif
#ifndef INTERN_MAX_STACKS
#define INTERN_MAX_STACKS	(1u << 18)
#endif
#ifndef INTERN_MAX_STACKWORDS
#define INTERN_MAX_STACKWORDS	(4u << 20)	/* frame ids of all stacks */
#endif
#ifndef INTERN_MAX_THREADS
#define INTERN_MAX_THREADS	(1u << 16)
#endif
/* A connection is renewed before a batch could take any kind of wire id
 * past profd's default --max-ids (1M per kind per connection); one batch
 * defines at most AGENT_PENDING_MAX * PROTO_MAX_DEPTH ids of a kind. */
#ifndef INTERN_WIRE_ID_LIMIT
#define INTERN_WIRE_ID_LIMIT	((1u << 20) - (1u << 18))
#endif

/* Counters: written by the sampler only, read by anyone (relaxed). */
struct agent_stats {
#define AGENT_STAT_FIELD(name, desc) uint64_t name;
	PROTO_AGENT_STATS(AGENT_STAT_FIELD)
#undef AGENT_STAT_FIELD
};

#define AGENT_LOAD(x)		__atomic_load_n(&(x), __ATOMIC_RELAXED)
#define AGENT_STORE(x, v)	__atomic_store_n(&(x), (v), __ATOMIC_RELAXED)
#define AGENT_STAT_ADD(name, n)	AGENT_STORE(agent_stats.name,		\
				    AGENT_LOAD(agent_stats.name) + (n))

/* What the sampler is asked to do; atomics, set by module.c and conn.c. */
struct agent_config {
	int		profiling;
	uint32_t	rate_hz;
	uint32_t	mode;		/* enum proto_mode */
	uint32_t	reader;		/* enum proto_reader asked */
	uint32_t	reader_default;	/* what "default" means here */
	uint32_t	jitter_pct;	/* +- percent of a period */
	uint32_t	max_overhead_bp;	/* CPU budget; 0: none */
};

/* Who this process is, for the hello.  Set by module.c before the sampler
 * starts (and refreshed in a fork child before it restarts). */
struct agent_ident {
	char		 sock_path[108];
	char		 service[PROTO_MAX_STRING];
	char		 host[256];
	char		 python[32];
	uint64_t	 start_ns;
	char		**argv;
	uint32_t	 argc;
};

extern struct agent_stats	agent_stats;
extern struct agent_config	agent_config;
extern struct agent_ident	agent_ident;
/* Active reader's enum proto_reader, for stats(); atomic. */
extern uint32_t			agent_reader_active;
/* 1 while the sampler has a connection; atomic. */
extern int			agent_connected;

/* A descriptor the agent made, with its identity (ownfd.c). */
struct ownfd {
	int		fd;		/* -1: none */
	uint32_t	mode;		/* st_mode & S_IFMT */
	uint64_t	dev;
	uint64_t	ino;
	uint64_t	tag;		/* its file offset; 0: none (a socket,
					   a pipe: the inode is its own) */
};
#define OWNFD_NONE	{ -1, 0, 0, 0, 0 }

uint64_t	agent_now_ns(void);		/* CLOCK_MONOTONIC */
/* One line to stderr when PROFAGENT_DEBUG is set; silent otherwise. */
void		agent_log(const char *, ...) __attribute__((format(printf, 1, 2)));
/* One line to stderr, always: for what the operator must know. */
void		agent_warn(const char *, ...) __attribute__((format(printf, 1, 2)));

/*
 * compat.c: finds the layout the direct reader reads the interpreter with
 * and checks it on the calling thread's own stack; call once at import,
 * holding the GIL.  0 when the direct reader may use it, else -1 with
 * compat_why saying why.  compat_source is an enum compat_source (compat.h).
 */
int		compat_load(void);
extern int	compat_source;
extern unsigned	compat_moved;	/* fields the interpreter places elsewhere
				   than the headers */
extern char	compat_why[160];

/* The _asyncio module's published offsets (3.14+), as its AsyncioDebug
 * section gives them; filled by compat_asyncio_load (GIL held, once
 * _asyncio is loaded: 0, or -1 with compat_asyncio.why set), then
 * read-only. */
struct compat_asyncio_offsets {
	struct {
		uint64_t size, name, awaited_by, is_task, awaited_by_is_set,
			 coro, node;
	} task;				/* TaskObj */
	struct {
		uint64_t size, tasks_head;
	} interp;			/* PyInterpreterState */
	struct {
		uint64_t size, running_loop, running_task, tasks_head;
	} thread;			/* _PyThreadStateImpl */
};
struct compat_asyncio {
	int				ok;
	struct compat_asyncio_offsets	off;
	char				why[160];	/* if not ok */
};
extern struct compat_asyncio	compat_asyncio;
int		compat_asyncio_load(void);
/* Once per process: the socket and whether a profd answered (err 0). */
void		agent_announce(int err);
uint64_t	agent_realtime_ns(void);	/* CLOCK_REALTIME */

/* ownfd.c: identity checks before a descriptor is used. */
/* Records fd as ours: 0, or -1 if it has no identity the host could not
 * reproduce (an eventfd, a timerfd: every one is the same inode). */
int	ownfd_set(struct ownfd *, int fd);
/* The number if still ours; else forgotten (not closed), counted, -1. */
int	ownfd_get(struct ownfd *);
/* Closes it if still ours; forgets it either way.  Async-signal-safe. */
void	ownfd_close(struct ownfd *);

/* sampler.c */
int	sampler_start(void);
/* Stops and joins the sampler; call without the GIL. */
void	sampler_stop(int last_flush);
int	sampler_running(void);
/* Wakes the sampler (config changed, stop asked). */
void	sampler_wake(void);
/* Drops the samples not yet committed as a batch, counted as discarded
 * (conn.c: CONFIG refused the settings they were taken on).  Sampler
 * thread only. */
void	sampler_discard(void);
/* Marks the process exiting: stop without touching Python. */
void	sampler_exit_flag(void);
/* Fork handlers (pthread_atfork). */
void	sampler_fork_prepare(void);
void	sampler_fork_parent(void);
void	sampler_fork_child(void);

/* budget.c: the CPU budget. */
/* The period to tick at for the asked one, now; sampler thread only. */
uint64_t budget_period(uint64_t asked_ns, uint64_t now);
/* The daemon's budget (PROTO_OVERHEAD_UNSET: the process default). */
void	budget_set(uint32_t bp);
/* Takes the process default from AGENT_BUDGET_ENV. */
void	budget_env(void);
void	budget_fork_child(void);

/* intern.c: the sampler's tables; sampler thread only. */
struct intern_sample {
	uint32_t	stack;		/* intern indices, not wire ids */
	uint32_t	thread;
	uint64_t	t_ns;		/* CLOCK_MONOTONIC */
	uint32_t	weight_us;
	uint32_t	flags;
};

/* Per-thread sampling state, kept with the thread's entry. */
struct intern_thread_state {
	uint64_t	last_ns;	/* time of its previous sample */
	uint64_t	last_cpu_ns;	/* its CPU time when last read */
	uint64_t	last_cpu_at;	/* ... at that time, 0 if never */
	uint64_t	charged_ns;	/* cpu mode: its CPU time up to which
					   samples weighed it, 0 if none */
	uint64_t	seen_gen;	/* profiling generation of last_ns */
	uint64_t	last_tick;	/* agent_stats.ticks then */
	uint64_t	frames_hash;	/* of its previous capture's frames */
	uint64_t	stack_hash;	/* of the frames of ... */
	uint64_t	stack_parent;	/* ... and of all but their leaf */
	uint32_t	stack;		/* its last sample's stack, 0 if none */
	uint32_t	stack_gen;	/* intern_generation() of stack */
	uint32_t	same_ticks;	/* ticks decided as the previous one
					   in a row, without a read */
	int		oncpu;		/* at its previous tick */
	int		gil;		/* reader_thread.gil then */
};

int	intern_init(void);
void	intern_free(void);
/* Clears every table (the reader forgets its code objects). */
void	intern_reset(const struct reader *);
/* Bumped by each intern_reset: older indices mean nothing. */
uint32_t intern_generation(void);
/* Starts a new tick (fingerprints are checked once per tick). */
void	intern_tick(void);
/* Interns a captured stack: its index, or 0 if unreadable (*full set when
 * a table is full). */
uint32_t intern_stack(const struct reader *, const struct reader_thread *,
	    int *full);
/* The same, when every frame but the leaf is that of stack `like`. */
uint32_t intern_stack_leaf(const struct reader *,
	    const struct reader_thread *, uint32_t like, int *full);
/* Interns a thread by native id (or ident when 0): its index, or 0. */
uint32_t intern_thread(uint64_t native_id, uint64_t ident, int *full);
struct intern_thread_state *intern_thread_state(uint32_t thread);
/* Starts a connection epoch: every entry must be defined again. */
void	intern_new_epoch(void);
/* 1 when wire ids got too big for this connection. */
int	intern_wire_exhausted(void);
/* Writes the definitions a sample needs and its wire ids; -1 if the sink
 * is full.  Inside a transaction. */
int	intern_emit(struct proto_sink *, const struct intern_sample *,
	    struct proto_sample *);
void	intern_txn_begin(void);
void	intern_txn_commit(void);
void	intern_txn_abort(void);
/* Thread names, set from Python (any thread, GIL held). */
void	intern_set_thread_name(uint64_t native_id, uint64_t ident,
	    const char *, size_t);
/* The native id recorded for a threading ident, or 0. */
uint64_t intern_native_of_ident(uint64_t ident);
void	intern_names_clear(void);
void	intern_fork_child(void);

/* conn.c: the daemon connection; sampler thread only (but conn_init). */
int	conn_init(size_t buffer_bytes);
void	conn_free(void);
/* The fd to poll for input, or -1. */
int	conn_fd(void);
/* Whether output is waiting to be sent. */
int	conn_want_write(void);
/* Connects when due, sends what the socket takes, reads CONFIG and RESYNC. */
void	conn_io(uint64_t now);
/* The last poll() saw the socket quiet: the next conn_io may do nothing. */
void	conn_poll_quiet(int quiet);
/* Keeps one batch until acknowledged and encodes it when the stream has
 * room: n samples (n may be 0), all taken in `mode`, and the stacks left
 * out as invalid since the previous batch; now (CLOCK_MONOTONIC) dates a
 * batch without samples.  -1 if it was dropped (no room to keep it). */
int	conn_commit(const struct intern_sample *, uint32_t n,
	    uint32_t invalid, uint32_t mode, uint64_t now);
/* The batches committed from now until the first CONFIG are taken on the
 * settings profd published (sampling.h): that CONFIG keeps them if it asks
 * for profiling in the same mode, else discards them.  Before the sampler
 * starts. */
void	conn_early(void);
/* Whether a CONFIG ever came (this process or its parent); atomic. */
int	conn_configured(void);
/* Connected, and kept batches wait for the CONFIG that names the version
 * (the exit flush waits for it a while). */
int	conn_want_config(void);
/* Counts as dropped every kept batch not wholly sent (exit, detach). */
void	conn_abandon(void);
/* Appends a PROTO_STATS frame if connected. */
void	conn_stats(void);
/* Closes the connection and starts a new epoch (kept batches are sent
 * again on the next connection). */
void	conn_drop(uint64_t now, const char *why);
/* Starts a new epoch with a fresh hello (after fork, after attach). */
void	conn_restart(void);
void	conn_fork_child(void);

/* reader_gil.c extras (not part of struct reader). */
/* Lets go of the sampler's thread state; at sampler exit, Python alive. */
void	reader_gil_thread_exit(void);
void	reader_gil_fork_child(void);

#endif
