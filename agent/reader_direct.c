/*
 * reader_direct.c -- reads Python stacks without the GIL.
 *
 * The sampler thread copies thread states, frames and code objects out of
 * the interpreter with a safe copy (process_vm_readv on our own pid, or a
 * pipe, or /proc/self/mem: whichever works and is cheapest, chosen once at
 * probe), so a pointer that went stale under us gives an error, never a
 * fault.  Every copied pointer is checked before it is followed; a stack
 * that does not hold together is dropped and counted invalid, and so is one
 * that does not reach the thread's entry frame (a torn walk that ended early
 * would otherwise pass for a whole stack).  Layouts come from compat.h
 * only: `compat`, checked at import (compat.c).
 *
 * Cost: a safe copy is a system call or two (about a microsecond), plus
 * the bytes (the pipe works in pages, process_vm_readv pins each page), so
 * a capture makes as few copies of as few bytes as it can.  Each capture
 * remembers which regions it had to copy (thread states, the used part of
 * each thread's stack chunk, frames living elsewhere) and the next capture
 * copies all of them again in a single vectored call before walking; only
 * what moved since costs an extra copy.  The headers of the code objects
 * on the stacks are part of that copy, so each capture checks them fresh,
 * and the interner's fingerprint() and line() calls for the capture cost
 * no copy.
 *
 * The pipe and /proc/self/mem are descriptors the host may close and
 * reuse: they are checked (ownfd.c) once before each capture's copies, as
 * a copy through a number no longer ours would write host memory into the
 * host's file or read the host's data.  process_vm_readv needs no
 * descriptor and no check, so a tick with it makes one call; the probe
 * picks it wherever it works.
 *
 * Every function here runs on the sampler thread, except direct_atfork_child
 * (the one thread of a new child).  Globals need no lock for that reason.
 */
#include "compat.h"	/* first: sets Py_BUILD_CORE for Python.h */

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"

#if COMPAT_SUPPORTED

/* Limits. */
#define DIRECT_SNAP_BYTES	(2048u * 1024)	/* bytes copied per capture */
#define DIRECT_SNAP_REGIONS	8192		/* regions copied per capture */
#define DIRECT_SNAP_SHIFT	15		/* region index slots: 2^this */
#define DIRECT_SNAP_HASH	(1 << DIRECT_SNAP_SHIFT)
#define DIRECT_SNAP_WIDE	64		/* regions looked into, per capture */
#define DIRECT_PLAN_IDLE	32		/* captures an unused code header
						   stays planned ... */
#define DIRECT_PLAN_IDLE_MAX	64		/* ... at most this many */
#define DIRECT_CHUNK_SLACK	256		/* read past a chunk's top */
#define DIRECT_CHUNK_MAX	(64u * 1024)	/* biggest chunk span copied */
#define DIRECT_BACK_MAX		1024		/* read below a missed frame */
#define DIRECT_WALK_MAX		(PROTO_MAX_DEPTH + 64)	/* frames kept */
#define DIRECT_CHAIN_MAX	65536	/* frames followed: past it, a cycle */
#define DIRECT_RETRIES		3	/* fresh walks of a thread torn under us */
#define DIRECT_RETRIES_CAPTURE	16	/* ... and of all threads, per capture */
#define DIRECT_ENDS_SHIFT	8	/* chain ends remembered: 2^this */
#define DIRECT_ENDS		(1 << DIRECT_ENDS_SHIFT)
#define DIRECT_REUSE_SHIFT	6	/* threads whose callers are kept: 2^this */
#define DIRECT_REUSE_SLOTS	(1 << DIRECT_REUSE_SHIFT)
#define DIRECT_REUSE_BYTES	(16u * 1024)	/* of callers' frames, each */
#define DIRECT_CHAIN_REGIONS	64	/* copies made to follow a chain past
					   the frames kept; then truncated */
#define DIRECT_OB_FLAGS_MAX	0x100	/* 3.14+: ob_flags seen as alive */
#define DIRECT_THREADS_MAX	4096		/* thread states followed */
#define DIRECT_CODE_SHIFT	12		/* checked code objects: 2^this */
#define DIRECT_CODE_CACHE	(1 << DIRECT_CODE_SHIFT)
#define DIRECT_LINE_SHIFT	8		/* line tables kept: 2^this */
#define DIRECT_LINE_CACHE	(1 << DIRECT_LINE_SHIFT)
#define DIRECT_LINES_MAX	(256u * 1024)	/* biggest line table read */
#define DIRECT_PIPE_SIZE	(256 * 1024)	/* pipe capacity asked for */
#define DIRECT_IOV_MAX		1024		/* iovecs per system call */
#define DIRECT_TID_SCAN		2048		/* struct pthread bytes searched */
#define DIRECT_ADDR_MIN		((uintptr_t)4096)
#define DIRECT_ADDR_MAX		((uintptr_t)1 << 48)
#define DIRECT_STR_HEAD		sizeof(PyCompactUnicodeObject)

/* Ways to copy memory safely, in order of preference when equally fast. */
enum direct_how { DIRECT_PVR, DIRECT_PIPE, DIRECT_MEM, DIRECT_NONE };
static const char *const direct_how_names[] = { "pvr", "pipe", "mem" };

/* The copy mechanism (sampler thread; reset in a forked child). */
static struct {
	int		how;
	pid_t		pid;
	struct ownfd	memfd;		/* /proc/self/mem (tagged: ownfd.c) */
	struct ownfd	pipe[2];	/* read end, write end */
	int		pipe_size;
	int		atfork;		/* handler registered */
	int		forked;		/* in a child: set up again */
	int		verified;	/* descriptors checked: a capture's */
} direct_io = { DIRECT_NONE, 0, OWNFD_NONE, { OWNFD_NONE, OWNFD_NONE }, 0, 0,
    0, 0 };

/* What the probe found (sampler thread). */
static struct {
	int		ready;
	uintptr_t	interp;
	uintptr_t	gil;		/* struct _gil_runtime_state, or 0 */
	uintptr_t	code_type;
	uintptr_t	frame_type;
	uintptr_t	str_type;
	long		tid_off;	/* tid in glibc's struct pthread, or -1 */
} direct = { 0, 0, 0, 0, 0, 0, -1 };

/* One region of interpreter memory copied into the snapshot. */
enum direct_kind {
	DK_HEAD, DK_GIL, DK_TSTATE, DK_TID,
	DK_CHUNK,	/* used part of a thread's stack chunk */
	DK_STRETCH,	/* memory below a frame missed in an older chunk */
	DK_CODE,	/* a code object's header */
	DK_OTHER,
};

struct direct_region {
	uintptr_t	addr;
	uint32_t	len;		/* 0 when the copy failed */
	uint32_t	off;		/* in direct_snap.buf */
	uint32_t	need;		/* DK_CHUNK: bytes the walk needed */
	uint8_t		kind;
	uint8_t		used;
	uint8_t		idle;		/* captures since one used it */
	uint8_t		done;		/* copy attempted */
};

/* This capture's copies, and the plan for the next (sampler thread). */
static struct {
	char			buf[DIRECT_SNAP_BYTES] __attribute__((aligned(64)));
	size_t			used;
	struct direct_region	r[DIRECT_SNAP_REGIONS];
	int			n;
	int			last;	/* last region hit */
	/* Regions by start address (stamped with the capture), and the few
	 * big ones (stack chunks) that lookups land inside. */
	struct { uintptr_t addr; uint32_t stamp; int idx; }
				hash[DIRECT_SNAP_HASH];
	int			wide[DIRECT_SNAP_WIDE];
	int			nwide;
	uint32_t		stamp;
	struct { uintptr_t addr; uint32_t len; uint8_t kind, idle; }
				plan[DIRECT_SNAP_REGIONS];
	int			nplan;
	int			nprefetched;	/* regions the plan gave */
	int			same;	/* the plan is the regions as they are */
	int			iov_ok;	/* leading regions whose iov is set */
	uint32_t		capture;	/* counter */
	uint32_t		hidden_gen;	/* at the capture's start */
	int			fresh;	/* lookups ignore regions below */
} direct_snap;

/*
 * A code object seen in a stack, as its header read during capture number
 * `checked` showed it.  Lets fingerprint() and line() answer for the
 * capture just made without copying again.
 */
struct direct_code {
	uintptr_t	addr;
	uint64_t	fingerprint;
	uint32_t	checked;
	int32_t		units;		/* bytecode size, code units; -1 n/a */
	int32_t		firsttraceable;
	int64_t		loc_max;	/* a frame's offset, bytes: at most */
	int64_t		loc_start;	/* ... and below it, not started */
	uint32_t	hidden_gen;	/* reader_hidden_generation() when
					 * `hidden` was looked up */
	uint8_t		ok;
	uint8_t		gen;		/* < 3.11: a generator's or coroutine's */
	uint8_t		hidden;
};
static struct direct_code direct_codes[DIRECT_CODE_CACHE];	/* sampler */

/* A copied line table, keyed by code address and fingerprint. */
struct direct_lines {
	uintptr_t	addr;
	uint64_t	fingerprint;
	int32_t		firstline;
	uint32_t	len;
	unsigned char	*table;
};
static struct direct_lines direct_lines[DIRECT_LINE_CACHE];	/* sampler */

/* A frame as walked, before its code object is checked. */
struct direct_raw {
	uintptr_t	addr;	/* the frame's own (< 3.11: an object) */
	uintptr_t	code;
	int64_t		loc;	/* bytes from the bytecode start */
	int		gen;	/* owned by a generator */
};

/*
 * 3.11+: one thread's callers as the last full walk found them: the bytes
 * of its stack chunk from the start up to the leaf's frame, and the frames
 * kept from them.  A capture whose leaf is the same frame, with the same
 * caller link, over the same bytes below it, walks only the leaf: the
 * walk of the callers is a function of those bytes, and whatever changes a
 * caller (a return into it, a frame object made for it, a write to its
 * locals) changes them.  Their code objects are alive, each frame holding
 * its own.  Only chains wholly in the chunk, callers below the leaf, are
 * kept, but for the shims that end them; the end was checked when the walk
 * was kept (direct_end_check).  Sampler thread.
 */
struct direct_reuse {
	uintptr_t	ts;		/* the thread state, 0 if empty */
	uintptr_t	leaf;		/* the leaf frame's address */
	uintptr_t	leaf_prev;	/* its caller link */
	uintptr_t	lo;		/* the start of the chunk's copy */
	uintptr_t	end, above;	/* where the chain ended */
	uint32_t	hidden_gen;	/* reader_hidden_generation() then */
	uint32_t	used;		/* the capture that last walked it */
	int		nraw;		/* frames followed past the leaf */
	uint32_t	depth;		/* of them, kept */
	uint64_t	sum;		/* their hash shares */
	struct reader_frame frames[PROTO_MAX_DEPTH - 1];
	char		bytes[DIRECT_REUSE_BYTES];	/* [lo, leaf) */
};

static struct direct_reuse	direct_reuses[DIRECT_REUSE_SLOTS];

/*
 * 3.12+: where each thread's chain last ended, believed again without a
 * copy (sampler thread).  A hint: a slot holds one thread's, by its state.
 */
static struct direct_end {
	uintptr_t	ts;
	uintptr_t	end;
} direct_ends[DIRECT_ENDS];

/*
 * The slot of thread state ts: one of a pair, the one that holds ts, else
 * the one a capture walked least recently (the other thread of the pair
 * keeps its own while both are sampled).
 */
static struct direct_reuse *
direct_reuse_slot(uintptr_t ts)
{
	struct direct_reuse	*a, *b;
	size_t			 i;

	i = reader_slot(ts, DIRECT_REUSE_SHIFT);
	a = &direct_reuses[i];
	b = &direct_reuses[i ^ 1];
	if (a->ts == ts)
		return a;
	if (b->ts == ts)
		return b;
	return (int32_t)(a->used - b->used) <= 0 ? a : b;
}

/* What a walk of one chain found besides its frames. */
struct direct_chain {
	int		more;	/* stopped with frames left */
	int		running; /* < 3.12: the bottom frame runs */
	int		due;	/* first frame whose code is unchecked, or -1 */
	uintptr_t	end;	/* the last frame followed */
	uintptr_t	above;	/* the one whose link led to it, or 0 */
	uintptr_t	ts;	/* the thread's state */
	struct direct_reuse *reuse; /* its slot, or NULL */
	int		reused;	/* the callers came from it */
	int		keep;	/* the walk may be kept in it: */
	uintptr_t	leaf, leaf_prev, lo;
	const char	*lo_copy; /* [lo, leaf) in the snapshot */
};

static int	direct_copy(void *, uintptr_t, size_t);

/* Says whether p could point to an object of alignment a. */
static inline int
direct_ptr_ok(uintptr_t p, uintptr_t align)
{
	return p >= DIRECT_ADDR_MIN && p < DIRECT_ADDR_MAX &&
	    (p & (align - 1)) == 0;
}

/*
 * Says whether a copied object header looks alive: freed memory keeps its
 * old type pointer, but the allocator reuses the refcount word (a free-list
 * link or 0).  Immortal objects stay well below the limit.  From 3.14 the
 * count is the word's low 32 bits, and flags fill the top 16.
 */
static inline int
direct_alive(const void *obj)
{
#if PY_VERSION_HEX >= 0x030e0000
	uint64_t w;

	/* Count, overflow (0 but past 2^32 references) and flags: a free-list
	 * link or a mangled pointer fills the overflow and flag bits. */
	memcpy(&w, (const char *)obj + offsetof(PyObject, ob_refcnt),
	    sizeof w);
	return (uint32_t)w > 0 && ((w >> 32) & 0xffff) == 0 &&
	    (w >> 48) < DIRECT_OB_FLAGS_MAX;
#else
	Py_ssize_t refcnt;

	memcpy(&refcnt, (const char *)obj + offsetof(PyObject, ob_refcnt),
	    sizeof refcnt);
	return refcnt > 0 && refcnt < ((Py_ssize_t)1 << 40);
#endif
}

/* Reads a field of a copied struct. */
static inline uintptr_t
direct_word(const void *base, size_t off)
{
	uintptr_t v;

	memcpy(&v, (const char *)base + off, sizeof v);
	return v;
}

static inline int32_t
direct_int(const void *base, size_t off)
{
	int32_t v;

	memcpy(&v, (const char *)base + off, sizeof v);
	return v;
}

/*
 * The copies call the kernel directly: a library interposing on writev()
 * or pread() (a sanitizer, a tracer) would otherwise touch the very memory
 * the kernel is there to check for us.  AddressSanitizer intercepts the
 * libc wrappers, not syscall(): through them, copying a thread state freed
 * under us is a (false) use-after-free report.  No code here reads host
 * memory in user space: every read of it goes through direct_copy or
 * direct_readv, so no function needs no_sanitize("address").
 */
static inline ssize_t
direct_sys_writev(int fd, const struct iovec *v, int n)
{
	return syscall(SYS_writev, fd, v, n);
}

static inline ssize_t
direct_sys_read(int fd, void *dst, size_t n)
{
	return syscall(SYS_read, fd, dst, n);
}

static inline ssize_t
direct_sys_write(int fd, const void *src, size_t n)
{
	return syscall(SYS_write, fd, src, n);
}

static inline ssize_t
direct_sys_pread(int fd, void *dst, size_t n, off_t off)
{
	return syscall(SYS_pread64, fd, dst, n, off);
}

static inline ssize_t
direct_sys_pvr(pid_t pid, const struct iovec *l, unsigned long nl,
    const struct iovec *r, unsigned long nr)
{
	return syscall(SYS_process_vm_readv, pid, l, nl, r, nr, 0UL);
}

/* Kernel thread id of the caller, asked once per thread. */
static __thread pid_t direct_self_tid;

static pid_t
direct_gettid(void)
{
	if (direct_self_tid == 0)
		direct_self_tid = (pid_t)syscall(SYS_gettid);
	return direct_self_tid;
}

/* Forgets the parent's descriptors in a forked child: they copy the parent. */
static void
direct_atfork_child(void)
{
	int	i;

	direct_io.pid = getpid();
	ownfd_close(&direct_io.memfd);
	ownfd_close(&direct_io.pipe[0]);
	ownfd_close(&direct_io.pipe[1]);
	direct_io.forked = 1;
	direct_snap.nplan = 0;
	direct_snap.same = 0;
	direct_self_tid = 0;
	for (i = 0; i < DIRECT_REUSE_SLOTS; i++)
		direct_reuses[i].ts = 0;
	for (i = 0; i < DIRECT_ENDS; i++)
		direct_ends[i].ts = 0;
}

/* Opens /proc/self/mem, tagged as ours (ownfd.c: any other open of it is
 * the same inode); 0 or -1. */
static int
direct_mem_open(void)
{
	int	fd;

	if ((fd = open("/proc/self/mem", O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	if (ownfd_set(&direct_io.memfd, fd) == -1) {
		close(fd);
		return -1;
	}
	return 0;
}

/* Opens the pipe used to copy memory; 0 or -1. */
static int
direct_pipe_open(void)
{
	int	p[2], size;

	if (pipe2(p, O_NONBLOCK | O_CLOEXEC) == -1)
		return -1;
	fcntl(p[1], F_SETPIPE_SZ, DIRECT_PIPE_SIZE);
	size = fcntl(p[1], F_GETPIPE_SZ);
	if (size < 4096 || ownfd_set(&direct_io.pipe[0], p[0]) == -1 ||
	    ownfd_set(&direct_io.pipe[1], p[1]) == -1) {
		close(p[0]);
		close(p[1]);
		direct_io.pipe[0].fd = direct_io.pipe[1].fd = -1;
		return -1;
	}
	direct_io.pipe_size = size;
	return 0;
}

/* Closes what is still ours of the pipe, forgets the rest. */
static void
direct_pipe_close(void)
{
	ownfd_close(&direct_io.pipe[0]);
	ownfd_close(&direct_io.pipe[1]);
}

/*
 * Checks both ends of the pipe are still ours (ownfd.c).  The host may
 * close descriptors it does not own (daemonizing code does) and reuse the
 * numbers; writing memory into, or reading from, a foreign descriptor must
 * never happen, so an end that changed is forgotten (not closed: the
 * number is someone else's now), what is left of ours is closed, and a new
 * pipe opened.  A read end closed in between shows as EPIPE on write
 * (SIGPIPE is blocked on this thread, see direct_probe).
 */
static int
direct_pipe_check(void)
{
	if (ownfd_get(&direct_io.pipe[1]) != -1 &&
	    ownfd_get(&direct_io.pipe[0]) != -1)
		return 0;
	direct_pipe_close();
	return direct_pipe_open();
}

/*
 * Checks the descriptors of the copy method in use before a burst of
 * copies, and makes new ones for those the host took (see
 * direct_pipe_check).  Through /proc/self/mem a number that is no longer
 * ours would be read from: never harmless, the host's file may be anything.
 * process_vm_readv has none.  0, or -1 when there is nothing to copy with.
 */
static int
direct_io_verify(void)
{
	switch (direct_io.how) {
	case DIRECT_PIPE:
		return direct_pipe_check();
	case DIRECT_MEM:
		if (ownfd_get(&direct_io.memfd) != -1)
			return 0;
		return direct_mem_open();
	}
	return 0;
}

/*
 * Blocks SIGPIPE on the calling thread, once: a write to our pipe after
 * someone closed its read end must fail with EPIPE, not kill the host
 * (which may not ignore SIGPIPE).  Blocked, a thread-directed SIGPIPE stays
 * pending on this thread and is never delivered.
 */
static void
direct_sigpipe_block(void)
{
	static __thread int	done;
	sigset_t		set;

	if (done)
		return;
	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	done = 1;
}

/*
 * Gives up a pipe whose read end someone closed (EPIPE): the write end is
 * still ours to close; the read end's number may be someone else's now.
 */
static void
direct_pipe_lost(void)
{
	direct_pipe_close();
}

/* Empties the pipe after a failed copy left bytes in it. */
static void
direct_pipe_drain(void)
{
	char	junk[4096];

	if (direct_io.pipe[0].fd == -1)
		return;
	while (direct_sys_read(direct_io.pipe[0].fd, junk, sizeof junk) > 0)
		;
}

/* Reads exactly n bytes the pipe holds; 0 or -1. */
static int
direct_pipe_take(char *dst, size_t n)
{
	ssize_t	r;

	while (n > 0) {
		r = direct_sys_read(direct_io.pipe[0].fd, dst, n);
		if (r <= 0) {
			if (r == -1 && errno == EINTR)
				continue;
			return -1;
		}
		dst += r;
		n -= (size_t)r;
	}
	return 0;
}

/* Copies one region through the pipe; 0 or -1. */
static int
direct_pipe_one(char *dst, uintptr_t src, size_t n)
{
	ssize_t	w;
	size_t	part;

	while (n > 0) {
		part = n < (size_t)direct_io.pipe_size ?
		    n : (size_t)direct_io.pipe_size;
		if (direct_io.pipe[1].fd == -1)
			return -1;
		w = direct_sys_write(direct_io.pipe[1].fd, (const void *)src,
		    part);
		if (w != (ssize_t)part) {
			if (w == -1 && errno == EPIPE)
				direct_pipe_lost();
			direct_pipe_drain();
			return -1;
		}
		if (direct_pipe_take(dst, part) == -1) {
			direct_pipe_drain();
			return -1;
		}
		dst += part;
		src += part;
		n -= part;
	}
	return 0;
}

/*
 * Copies n regions back to back into dst; ok[i] says which arrived.  Returns
 * how many did.  A region that crosses into unmapped memory fails whole.
 */
static int
direct_readv(char *dst, const struct iovec *src, int n, uint8_t *ok)
{
	struct iovec	 local;
	size_t		 total, got;
	ssize_t		 r;
	int		 i, j, m, good = 0;

	memset(ok, 0, (size_t)n);
	switch (direct_io.how) {
	case DIRECT_PVR:
		for (i = 0; i < n; ) {
			m = n - i < DIRECT_IOV_MAX ? n - i : DIRECT_IOV_MAX;
			for (total = 0, j = i; j < i + m; j++)
				total += src[j].iov_len;
			local.iov_base = dst;
			local.iov_len = total;
			r = direct_sys_pvr(direct_io.pid, &local, 1, src + i,
			    (unsigned long)m);
			if (r == -1 && errno != EFAULT)
				return good;
			got = r > 0 ? (size_t)r : 0;
			/* Regions fully copied, then skip the one that failed. */
			for (j = i; j < i + m && got >= src[j].iov_len; j++) {
				got -= src[j].iov_len;
				dst += src[j].iov_len;
				ok[j] = 1;
				good++;
			}
			if (j < i + m) {
				dst += src[j].iov_len;
				j++;
			}
			i = j;
		}
		return good;
	case DIRECT_PIPE:
		direct_sigpipe_block();
		if (!direct_io.verified && direct_io_verify() == -1)
			return 0;
		for (i = 0; i < n; ) {
			/* As many regions as the pipe holds in one writev. */
			for (total = 0, j = i; j < n && j - i < DIRECT_IOV_MAX &&
			    total + src[j].iov_len <= (size_t)direct_io.pipe_size;
			    j++)
				total += src[j].iov_len;
			if (j == i) {	/* one region bigger than the pipe */
				ok[i] = direct_pipe_one(dst, (uintptr_t)
				    src[i].iov_base, src[i].iov_len) == 0;
				good += ok[i];
				dst += src[i].iov_len;
				i++;
				continue;
			}
			r = direct_sys_writev(direct_io.pipe[1].fd, src + i,
			    j - i);
			if (r == (ssize_t)total &&
			    direct_pipe_take(dst, total) == 0) {
				for (; i < j; i++) {
					ok[i] = 1;
					good++;
					dst += src[i].iov_len;
				}
				continue;
			}
			/* Something faulted: retry one by one to find it. */
			if (r == -1 && errno == EPIPE)
				direct_pipe_lost();
			direct_pipe_drain();
			if (direct_pipe_check() == -1)
				return good;
			for (; i < j; i++) {
				ok[i] = direct_pipe_one(dst, (uintptr_t)
				    src[i].iov_base, src[i].iov_len) == 0;
				good += ok[i];
				dst += src[i].iov_len;
			}
		}
		return good;
	case DIRECT_MEM:
		if (!direct_io.verified && direct_io_verify() == -1)
			return 0;
		for (i = 0; i < n; i++) {
			r = direct_sys_pread(direct_io.memfd.fd, dst,
			    src[i].iov_len, (off_t)(uintptr_t)src[i].iov_base);
			ok[i] = r == (ssize_t)src[i].iov_len;
			good += ok[i];
			dst += src[i].iov_len;
		}
		return good;
	}
	return 0;
}

/* Copies n bytes at src into dst; 0, or -1 if any of it is unreadable. */
static int
direct_copy(void *dst, uintptr_t src, size_t n)
{
	struct iovec	v;
	uint8_t		ok;

	if (n == 0)
		return 0;
	if (!direct_ptr_ok(src, 1) || src + n > DIRECT_ADDR_MAX)
		return -1;
	v.iov_base = (void *)src;
	v.iov_len = n;
	return direct_readv(dst, &v, 1, &ok) == 1 ? 0 : -1;
}

/* Says whether a copy mechanism works: copies a known buffer. */
static int
direct_try(int how)
{
	static const char probe[64] = "profagent direct reader probe";
	char	got[sizeof probe];

	direct_io.how = how;
	memset(got, 0, sizeof got);
	if (direct_copy(got, (uintptr_t)probe, sizeof probe) == -1 ||
	    memcmp(got, probe, sizeof probe) != 0)
		return -1;
	/* Unmapped memory must fail, not fault. */
	if (direct_copy(got, DIRECT_ADDR_MIN, 8) == 0)
		return -1;
	return 0;
}

/*
 * CPU time of 16 ticks' copying with the current mechanism, best of 8
 * rounds (a preempted round says nothing).  A tick does what a capture
 * does: the check of the method's descriptors (direct_io_verify), then one
 * copy of regions like a capture's, each on a page of its own (the used
 * part of a stack chunk, a thread state, code object headers, the
 * interpreter's and the GIL's words).  INT64_MAX if the method fails.
 */
static int64_t
direct_time(void)
{
	static const uint16_t len[] = { 2880, 320, 172, 172, 172, 172, 24, 8,
	    8 };
#define DIRECT_TIME_REGIONS	(int)(sizeof len / sizeof len[0])
	static char	area[DIRECT_TIME_REGIONS][4096];
	struct iovec	v[DIRECT_TIME_REGIONS];
	uint8_t		ok[DIRECT_TIME_REGIONS];
	struct timespec	a, b;
	int64_t		t, best = INT64_MAX;
	int		i, round, good;

	for (i = 0; i < DIRECT_TIME_REGIONS; i++) {
		memset(area[i], i + 1, sizeof area[i]);
		v[i].iov_base = area[i] + 64;
		v[i].iov_len = len[i];
	}
	for (round = 0; round < 8; round++) {
		clock_gettime(CLOCK_THREAD_CPUTIME_ID, &a);
		for (i = 0; i < 16; i++) {
			if (direct_io_verify() == -1)
				return INT64_MAX;
			direct_io.verified = 1;
			good = direct_readv(direct_snap.buf, v,
			    DIRECT_TIME_REGIONS, ok);
			direct_io.verified = 0;
			if (good != DIRECT_TIME_REGIONS)
				return INT64_MAX;
		}
		clock_gettime(CLOCK_THREAD_CPUTIME_ID, &b);
		t = (b.tv_sec - a.tv_sec) * 1000000000LL +
		    (b.tv_nsec - a.tv_nsec);
		if (t < best)
			best = t;
	}
	return best;
#undef DIRECT_TIME_REGIONS
}

/*
 * Picks the copy mechanism: PROFAGENT_DIRECT_COPY=pvr|pipe|mem forces one;
 * otherwise the one whose tick costs least, checks included.  That is
 * process_vm_readv wherever it works: one call a tick and no descriptor to
 * check, against the pipe's writev and read after an fstat of each end,
 * and /proc/self/mem's pread per region after an fstat and an lseek.  The
 * others are for where it is refused (a seccomp filter).  0 or -1 (none
 * works).
 */
static int
direct_io_setup(void)
{
	const char	*force = getenv("PROFAGENT_DIRECT_COPY");
	int64_t		 cost, best_cost = INT64_MAX;
	int		 how, best = DIRECT_NONE;

	direct_io.pid = getpid();
	if (direct_io.memfd.fd == -1)
		direct_mem_open();
	if (direct_io.pipe[1].fd == -1)
		direct_pipe_open();
	for (how = DIRECT_PVR; how < DIRECT_NONE; how++) {
		if (force != NULL && strcmp(force, direct_how_names[how]) != 0)
			continue;
		if (how == DIRECT_MEM && direct_io.memfd.fd == -1)
			continue;
		if (how == DIRECT_PIPE && direct_io.pipe[1].fd == -1)
			continue;
		if (direct_try(how) == -1)
			continue;
		if ((cost = direct_time()) == INT64_MAX)
			continue;
		agent_log("copy by %s: %lld ns for 16 ticks",
		    direct_how_names[how], (long long)cost);
		if (cost < best_cost) {
			best_cost = cost;
			best = how;
		}
	}
	direct_io.how = best;
	if (best != DIRECT_MEM)
		ownfd_close(&direct_io.memfd);
	if (best != DIRECT_PIPE)
		direct_pipe_close();
	return best == DIRECT_NONE ? -1 : 0;
}

/*
 * Finds where glibc keeps the kernel tid in its struct pthread (pthread_t
 * is its address), for interpreters whose thread states lack
 * native_thread_id.  The offset must give our own tid and the main thread's
 * (its tid is the pid).  -1 when not found.  Our own struct pthread is
 * copied too, not read in place: the scan may run past its end.
 */
static long
direct_tid_offset(void)
{
	static char	 self[DIRECT_TID_SCAN];
	unsigned long	 main_thread = compat_main_thread();
	pid_t		 tid = direct_gettid(), v;
	long		 off;

	if (tid == getpid() || main_thread == 0 ||
	    direct_copy(self, (uintptr_t)pthread_self(), sizeof self) == -1)
		return -1;
	for (off = 0; off < DIRECT_TID_SCAN; off += sizeof(pid_t)) {
		memcpy(&v, self + off, sizeof v);
		if (v != tid)
			continue;
		if (direct_copy(&v, main_thread + (uintptr_t)off, sizeof v) == 0 &&
		    v == getpid())
			return off;
	}
	return -1;
}

/* Probes: finds the interpreter and a way to copy its memory; 0 or -1. */
static int
direct_probe(void)
{
	uintptr_t	head;

	if (compat_source == COMPAT_SRC_NONE)
		return -1;
	direct_sigpipe_block();
	if (!direct_io.atfork) {
		if (pthread_atfork(NULL, NULL, direct_atfork_child) != 0)
			return -1;
		direct_io.atfork = 1;
	}
	if (direct_io_setup() == -1)
		return -1;

	direct.interp = (uintptr_t)PyInterpreterState_Main();
	direct.code_type = (uintptr_t)&PyCode_Type;
	direct.frame_type = (uintptr_t)&PyFrame_Type;
	direct.str_type = (uintptr_t)&PyUnicode_Type;
	if (!direct_ptr_ok(direct.interp, sizeof(void *)) ||
	    direct_copy(&head, direct.interp + compat.interp_head,
	    sizeof head) == -1)
		return -1;
	direct.gil = compat_gil_static();
	if (compat.interp_gil != COMPAT_NONE &&
	    direct_copy(&direct.gil, direct.interp + compat.interp_gil,
	    sizeof direct.gil) == -1)
		direct.gil = 0;
	if (direct.gil != 0 && !direct_ptr_ok(direct.gil, sizeof(void *)))
		direct.gil = 0;
	direct.tid_off = compat.ts_native_id == COMPAT_NONE ?
	    direct_tid_offset() : -1;
	direct_snap.nplan = 0;
	direct_snap.same = 0;
	direct.ready = 1;
	return 0;
}

/* Starts an empty snapshot. */
static void
direct_snap_reset(void)
{
	direct_snap.used = 0;
	direct_snap.n = 0;
	direct_snap.last = 0;
	direct_snap.nwide = 0;
	direct_snap.iov_ok = 0;
	direct_snap.stamp++;
}

/* Hash slot for a region starting at addr. */
static inline unsigned
direct_snap_slot(uintptr_t addr)
{
	return (unsigned)reader_slot(addr, DIRECT_SNAP_SHIFT);
}

/* Adds a region to copy later; its index, or -1 when the snapshot is full. */
static int
direct_snap_add(uintptr_t addr, size_t len, int kind)
{
	struct direct_region	*r;
	size_t			 off = direct_snap.used;
	unsigned		 h, probe;

	if (direct_snap.n == DIRECT_SNAP_REGIONS || len == 0 ||
	    len > DIRECT_SNAP_BYTES - off || !direct_ptr_ok(addr, 1) ||
	    addr + len > DIRECT_ADDR_MAX)
		return -1;
	r = &direct_snap.r[direct_snap.n];
	r->addr = addr;
	r->len = (uint32_t)len;
	r->off = (uint32_t)off;
	r->kind = (uint8_t)kind;
	r->used = 0;
	r->done = 0;
	r->need = 0;
	r->idle = 0;
	direct_snap.used = off + len;
	/* Index it: by start address, and as wide if lookups land inside. */
	h = direct_snap_slot(addr);
	for (probe = 0; probe < 8; probe++, h = (h + 1) & (DIRECT_SNAP_HASH - 1))
		if (direct_snap.hash[h].stamp != direct_snap.stamp)
			break;
	if (probe < 8) {
		direct_snap.hash[h].addr = addr;
		direct_snap.hash[h].stamp = direct_snap.stamp;
		direct_snap.hash[h].idx = direct_snap.n;
	}
	if ((probe == 8 || kind == DK_CHUNK || kind == DK_STRETCH) &&
	    direct_snap.nwide < DIRECT_SNAP_WIDE)
		direct_snap.wide[direct_snap.nwide++] = direct_snap.n;
	return direct_snap.n++;
}

/* Copies the regions [from, n) not yet copied, in one vectored call. */
static void
direct_snap_fetch(int from)
{
	static struct iovec	v[DIRECT_SNAP_REGIONS];	/* by region */
	static uint8_t		ok[DIRECT_SNAP_REGIONS];
	struct direct_region	*r;
	int			 i, n = direct_snap.n - from;

	if (n <= 0)
		return;
	/* Regions are added back to back, as direct_readv writes them. */
	for (i = from > direct_snap.iov_ok ? from : direct_snap.iov_ok;
	    i < direct_snap.n; i++) {
		r = &direct_snap.r[i];
		v[i].iov_base = (void *)r->addr;
		/* The length asked, from the offsets: a failed copy's len is
		 * 0, and the regions after it must land where they were put. */
		v[i].iov_len = (i + 1 < direct_snap.n ?
		    direct_snap.r[i + 1].off : direct_snap.used) - r->off;
	}
	if (from <= direct_snap.iov_ok)
		direct_snap.iov_ok = direct_snap.n;
	direct_readv(direct_snap.buf + direct_snap.r[from].off, v + from, n,
	    ok + from);
	for (i = from; i < direct_snap.n; i++) {
		r = &direct_snap.r[i];
		r->done = 1;
		if (!ok[i])
			r->len = 0;
	}
}

/* Says whether region i holds [addr, addr+len); marks it used. */
static inline const char *
direct_snap_in(int i, uintptr_t addr, size_t len)
{
	struct direct_region	*r = &direct_snap.r[i];

	if (i < direct_snap.fresh || i >= direct_snap.n || !r->done ||
	    addr < r->addr ||
	    addr + len < addr || addr + len > r->addr + r->len)
		return NULL;
	r->used = 1;
	direct_snap.last = i;
	return direct_snap.buf + r->off + (addr - r->addr);
}

/*
 * Finds a copy of [addr, addr+len) in the snapshot, or NULL: in the region
 * last hit or the next (walks go in order), in a region starting there, or
 * in a wide one.  A region that would hold it but is neither is missed,
 * which costs a copy, never a wrong answer.
 */
static const char *
direct_snap_find(uintptr_t addr, size_t len)
{
	const char	*p;
	unsigned	 h, probe;
	int		 i;

	if ((p = direct_snap_in(direct_snap.last, addr, len)) != NULL ||
	    (p = direct_snap_in(direct_snap.last + 1, addr, len)) != NULL)
		return p;
	h = direct_snap_slot(addr);
	for (probe = 0; probe < 8; probe++, h = (h + 1) & (DIRECT_SNAP_HASH - 1)) {
		if (direct_snap.hash[h].stamp != direct_snap.stamp)
			break;
		if (direct_snap.hash[h].addr == addr &&
		    (p = direct_snap_in(direct_snap.hash[h].idx, addr, len)) !=
		    NULL)
			return p;
	}
	for (i = direct_snap.nwide - 1; i >= 0; i--)
		if ((p = direct_snap_in(direct_snap.wide[i], addr, len)) != NULL)
			return p;
	return NULL;
}

/*
 * Returns a copy of [addr, addr+len): from the snapshot, else copies the
 * region [addr-back, addr+len+ahead) (or just [addr, addr+len) if that
 * fails) into it now.  NULL when unreadable.
 */
static const char *
direct_snap_get(uintptr_t addr, size_t len, size_t back, size_t ahead,
    int kind)
{
	const char	*p;
	int		 i;

	if (!direct_ptr_ok(addr, 1))
		return NULL;
	if ((p = direct_snap_find(addr, len)) != NULL)
		return p;
	if (back > 0 || ahead > 0) {
		if ((i = direct_snap_add(addr - back, back + len + ahead,
		    back > 0 ? DK_STRETCH : kind)) != -1) {
			direct_snap_fetch(i);
			if ((p = direct_snap_in(i, addr, len)) != NULL)
				return p;
		}
	}
	if ((i = direct_snap_add(addr, len, kind)) == -1)
		return NULL;
	direct_snap_fetch(i);
	return direct_snap_in(i, addr, len);
}

/*
 * Keeps the regions this capture used, to copy them first next time, and
 * the code headers used in the last DIRECT_PLAN_IDLE captures: a thread
 * whose leaf goes back and forth between functions would otherwise cost a
 * second copy, of the header it left the capture before, at every change.
 */
static void
direct_snap_plan(void)
{
	struct direct_region	*r;
	int			 i, idle = 0;

	/* Nothing added, nothing idle, no chunk to shrink: the next capture
	 * copies the same regions into the same places. */
	direct_snap.same = direct_snap.n == direct_snap.nprefetched;
	for (i = 0; i < direct_snap.n && direct_snap.same; i++) {
		r = &direct_snap.r[i];
		if (r->len == 0 || !r->used || (r->kind == DK_CHUNK &&
		    r->need + DIRECT_CHUNK_SLACK < r->len))
			direct_snap.same = 0;
	}
	if (direct_snap.same)
		return;
	direct_snap.nplan = 0;
	for (i = 0; i < direct_snap.n; i++) {
		r = &direct_snap.r[i];
		if (r->len == 0)
			continue;
		if (!r->used && (r->kind != DK_CODE ||
		    r->idle + 1 >= DIRECT_PLAN_IDLE ||
		    idle == DIRECT_PLAN_IDLE_MAX))
			continue;
		direct_snap.plan[direct_snap.nplan].addr = r->addr;
		direct_snap.plan[direct_snap.nplan].len = r->len;
		/* A chunk's copy shrinks back slowly after a deep stack. */
		if (r->kind == DK_CHUNK && r->need + DIRECT_CHUNK_SLACK < r->len)
			direct_snap.plan[direct_snap.nplan].len = r->len -
			    (r->len - r->need - DIRECT_CHUNK_SLACK + 7) / 8;
		direct_snap.plan[direct_snap.nplan].kind = r->kind;
		direct_snap.plan[direct_snap.nplan].idle = r->used ? 0 :
		    r->idle + 1;
		if (!r->used)
			idle++;
		direct_snap.nplan++;
	}
}

/* Copies what the last capture planned, in one call. */
static void
direct_snap_prefetch(void)
{
	struct direct_region	*r;
	int			 i, k;

	if (direct_snap.same) {
		/* The regions, their index and their iovs stay. */
		direct_snap.same = 0;
		direct_snap.last = 0;
		for (i = 0; i < direct_snap.n; i++) {
			r = &direct_snap.r[i];
			r->used = 0;
			r->done = 0;
			r->need = 0;
			r->idle = 0;
		}
	} else {
		direct_snap_reset();
		for (i = 0; i < direct_snap.nplan; i++)
			if ((k = direct_snap_add(direct_snap.plan[i].addr,
			    direct_snap.plan[i].len,
			    direct_snap.plan[i].kind)) != -1)
				direct_snap.r[k].idle =
				    direct_snap.plan[i].idle;
	}
	direct_snap.nprefetched = direct_snap.n;
	direct_snap_fetch(0);
}

/* Slot of a code object in the checked-code cache. */
static struct direct_code *
direct_code_slot(uintptr_t code)
{
	return &direct_codes[reader_slot(code, DIRECT_CODE_SHIFT)];
}

/* Fingerprint of a copied code object header. */
static uint64_t
direct_code_hash(const char *c)
{
	uint64_t	h = 0xcbf29ce484222325ULL;
	uint64_t	f[4];
	int		i;

	f[0] = (uint64_t)(uint32_t)direct_int(c, compat.code_firstlineno);
	f[1] = direct_word(c, compat.code_name);
	f[2] = direct_word(c, compat.code_filename);
	f[3] = compat.code_units != COMPAT_NONE ?
	    direct_word(c, compat.code_units) :
	    direct_word(c, compat.code_bytes);
	for (i = 0; i < 4; i++) {
		h ^= f[i];
		h *= 0x100000001b3ULL;
		h ^= h >> 29;
	}
	return h | 1;
}

/* Says whether a copied header is a code object; fills the cache entry. */
static int
direct_code_fill(struct direct_code *e, uintptr_t code, const char *c)
{
	uint64_t	fp = direct_code_hash(c);

	/* The same code object as when it was last looked up: whether it is
	 * hidden is known. */
	if (e->addr != code || e->fingerprint != fp)
		e->hidden_gen = UINT32_MAX;
	e->addr = code;
	e->checked = direct_snap.capture;
	e->ok = 0;
	e->units = -1;
	e->firsttraceable = 0;
	e->gen = 0;
	e->fingerprint = fp;
	if (direct_word(c, offsetof(PyObject, ob_type)) != direct.code_type ||
	    !direct_alive(c))
		return -1;
	if (compat.code_units != COMPAT_NONE) {
		intptr_t units = (intptr_t)direct_word(c, compat.code_units);

		if (units <= 0 || units > INT32_MAX / 2)
			return -1;
		e->units = (int32_t)units;
		/*
		 * One past the end is valid: a shim code object whose frame
		 * must never show sets it there (3.13's _Py_InitCleanup, the
		 * frame under an __init__ called by a specialized CALL, has 3
		 * units and firsttraceable 4); direct_keep then hides the
		 * frame, as CPython's own frame walk does.
		 */
		if (compat.code_firsttraceable != COMPAT_NONE)
			e->firsttraceable = direct_int(c,
			    compat.code_firsttraceable);
		if (e->firsttraceable < 0 || e->firsttraceable > e->units + 1)
			return -1;
	}
	if (compat.code_flags != COMPAT_NONE)
		e->gen = (direct_int(c, compat.code_flags) & (CO_GENERATOR |
		    CO_COROUTINE | CO_ASYNC_GENERATOR |
		    CO_ITERABLE_COROUTINE)) != 0;
	if (e->hidden_gen != direct_snap.hidden_gen) {
		e->hidden = reader_hidden(code) != 0;
		e->hidden_gen = direct_snap.hidden_gen;
	}
	/* 3.11+: prev_instr may sit one unit before the code. */
	e->loc_max = e->units >= 0 ? (int64_t)e->units * 2 : INT32_MAX;
	e->loc_start = e->units >= 0 ? (int64_t)e->firsttraceable * 2 : -2;
	e->ok = 1;
	return 0;
}

/*
 * The checked-code entry of a code object, as this capture checked it: from
 * the cache, else from its header in the snapshot (checked now, so its
 * other frames find it done).  NULL when it is not a code object, or when
 * its header is not copied yet (*due set).
 */
static inline const struct direct_code *
direct_code_get(uintptr_t code, int *due)
{
	struct direct_code	*e = direct_code_slot(code);
	const char		*c;

	if (__builtin_expect(e->addr == code &&
	    e->checked == direct_snap.capture, 1))
		return e->ok ? e : NULL;
	if ((c = direct_snap_find(code, compat.code_read)) == NULL) {
		*due = 1;
		return NULL;
	}
	return direct_code_fill(e, code, c) == 0 ? e : NULL;
}

/* The frames a walk kept so far, and the sum of their hash shares. */
struct direct_kept {
	uint32_t	depth;
	int		truncated;
	uint64_t	sum;
	uint64_t	leaf;		/* the leaf's share */
};

/*
 * Adds a frame at loc of a code object checked (e) to frames[k->depth],
 * unless CPython's own frame walk would hide it (not started yet; a
 * generator's frame always is) or it is the agent's own; keeps the
 * innermost PROTO_MAX_DEPTH.  0, or -1 if loc is out of the code.  On
 * 3.11 and 3.12, where a frame is pushed with its last instruction before
 * its first, a frame not started yet with a callee (`above`: not the leaf)
 * is a torn read, -1: a frame starts before it calls, and the frame read
 * there is one pushed since in the place of the caller the walk came from
 * (a call that returned, and another of the same size made), whose
 * callers a hidden frame would leave one short.  From 3.13 a frame is
 * pushed at its first instruction, so one pushed since reads as started
 * (the stack is one stale leaf under a fresh caller, not a caller short),
 * and a forked child's stack holds one that reads as not started under a
 * callee (why is not known yet): such a frame stays hidden.
 */
static inline int
direct_keep(struct reader_frame *frames, struct direct_kept *k,
    uintptr_t code, int64_t loc, int gen, const struct direct_code *e,
    int above)
{
	uint64_t	share;
	int32_t		at;

	if (loc < -2 || loc > e->loc_max)
		return -1;
	if (loc < e->loc_start && !gen && above &&
	    compat.instr == COMPAT_PREV_INSTR)
		return -1;
	if ((loc < e->loc_start && !gen) || e->hidden)
		return 0;
	if (k->depth == PROTO_MAX_DEPTH) {
		k->truncated = 1;
		return 0;
	}
	at = (int32_t)(loc < 0 ? -1 : loc);
	share = reader_frame_share(k->depth, code, e->fingerprint, at);
	if (k->depth == 0)
		k->leaf = share;
	k->sum += share;
	frames[k->depth].code = code;
	frames[k->depth].loc = at;
	k->depth++;
	return 0;
}

/* Puts what a walk kept into t. */
static inline void
direct_kept_put(struct reader_thread *t, const struct direct_kept *k)
{
	t->depth = k->depth;
	t->truncated = k->truncated;
	t->hashed = 1;
	t->share_sum = k->sum;
	t->share_leaf = k->leaf;
}

/*
 * Checks the frames [from, n) of a walked stack, whose code headers were
 * not all in the snapshot: copies the missing ones in one call, then keeps
 * the frames in order.  0, or -1 if a code object is unreadable or not one.
 */
static int
direct_codes_due(struct reader_thread *t, struct direct_raw *raw, int from,
    int n)
{
	static uintptr_t	 due[DIRECT_WALK_MAX];
	const struct direct_code *e;
	struct direct_kept	 kept = { t->depth, t->truncated, t->share_sum,
				     t->share_leaf };
	int			 i, k, missing, ndue = 0, first = direct_snap.n;

	for (i = from; i < n; i++) {
		missing = 0;
		if (direct_code_get(raw[i].code, &missing) != NULL)
			continue;
		if (!missing)
			return -1;
		for (k = 0; k < ndue && due[k] != raw[i].code; k++)
			;
		if (k < ndue)
			continue;
		if (direct_snap_add(raw[i].code, compat.code_read, DK_CODE) ==
		    -1)
			return -1;
		due[ndue++] = raw[i].code;
	}
	direct_snap_fetch(first);
	/* Direct-mapped: a slot may have gone to another code of this stack;
	 * refilling it from the copy is cheap. */
	for (i = from; i < n; i++)
		if ((e = direct_code_get(raw[i].code, &missing)) == NULL ||
		    direct_keep(t->frames, &kept, raw[i].code, raw[i].loc,
		    raw[i].gen, e, i > 0) == -1)
			return -1;
	direct_kept_put(t, &kept);
	return 0;
}

/* The frames the copy last hit holds whole: [lo, lo + span) (sampler). */
struct direct_span {
	uintptr_t	 lo;
	uintptr_t	 span;
	const char	*base;
};

/* Sets s to the region last hit, if it holds a whole frame. */
static inline void
direct_span_last(struct direct_span *s)
{
	const struct direct_region *r = &direct_snap.r[direct_snap.last];

	s->lo = 0;
	s->span = 0;
	s->base = NULL;
	if (direct_snap.last < direct_snap.n &&
	    direct_snap.last >= direct_snap.fresh && r->done &&
	    r->len >= compat.frame_read) {
		s->lo = r->addr;
		s->span = r->len - compat.frame_read + 1;
		s->base = direct_snap.buf + r->off;
	}
}

/*
 * Takes the callers from a thread's slot when the leaf at leaf, linked to
 * prev, sits over the same bytes as then: 0, else -1.  The chunk's copy
 * must hold them.
 */
static int
direct_reuse_take(struct direct_reuse *r, const struct direct_span *chunk,
    uintptr_t leaf, uintptr_t prev, struct reader_thread *t,
    struct direct_kept *k, struct direct_chain *c)
{
	if (r->leaf != leaf || r->leaf_prev != prev ||
	    r->hidden_gen != direct_snap.hidden_gen || r->lo != chunk->lo ||
	    leaf - chunk->lo >= chunk->span ||
	    memcmp(chunk->base, r->bytes, leaf - r->lo) != 0)
		return -1;
	memcpy(&t->frames[1], r->frames, r->depth * sizeof r->frames[0]);
	k->depth += r->depth;
	k->sum += r->sum;
	c->reused = 1;
	r->used = direct_snap.capture;
	c->end = r->end;
	c->above = r->above;
	c->running = 0;
	return 0;
}

/* Keeps a whole walk of thread ts in its slot, if the walk said it may. */
static void
direct_reuse_keep(uintptr_t ts, const struct direct_chain *c,
    const struct reader_thread *t, int n)
{
	struct direct_reuse *r = c->reuse;

	if (r == NULL || c->reused || !c->keep || t->depth < 2 ||
	    t->truncated || !t->hashed)
		return;
	r->ts = ts;
	r->leaf = c->leaf;
	r->leaf_prev = c->leaf_prev;
	r->lo = c->lo;
	r->end = c->end;
	r->above = c->above;
	r->hidden_gen = direct_snap.hidden_gen;
	r->used = direct_snap.capture;
	r->nraw = n - 1;
	r->depth = t->depth - 1;
	r->sum = t->share_sum - t->share_leaf;
	memcpy(r->frames, &t->frames[1], r->depth * sizeof r->frames[0]);
	memcpy(r->bytes, c->lo_copy, c->leaf - c->lo);
}

/*
 * Walks one thread's frame chain from frame, leaf first, in one pass: each
 * frame into raw[], its code object checked and the frame kept in t as it
 * goes.  A frame whose code header is not in the snapshot stops the
 * checks: c->due gets its index (else -1), and direct_codes_due does the
 * rest after the walk.  Returns the count, or -1 if the chain is torn;
 * c->more is set when the walk stopped with frames left.  When the thread's
 * slot (c->reuse) holds a walk under the same leaf frame, over the same
 * bytes, its callers are taken from there (c->reused; raw[] then holds the
 * leaf only); a whole walk that may be kept there sets c->keep.  On 3.12+ every
 * chain ends at an entry frame (a shim the interpreter pushes where C calls
 * into Python): a chain that ends elsewhere was cut short under us, most
 * often at a generator's frame copied just after it was suspended (its
 * `previous` cleared).
 */
static int
direct_walk(uintptr_t frame, struct direct_raw *raw, struct reader_thread *t,
    struct direct_chain *c)
{
	/* The layout and state in locals: stores to raw[] and t could alias
	 * them. */
	const size_t	 o_code = compat.frame_code;
	const size_t	 o_prev = compat.frame_previous;
	const size_t	 o_owner = compat.frame_owner;
	const size_t	 o_instr = compat.frame_instr;
	const size_t	 o_running = compat.frame_running;
	const uintptr_t	 mask = compat.frame_code_mask;
	const uintptr_t	 adaptive = compat.code_adaptive;
	const int	 instr_ptr = compat.instr == COMPAT_PREV_INSTR ||
			     compat.instr == COMPAT_INSTR_PTR;
	const int	 instr_units = compat.instr == COMPAT_LASTI_UNITS;
	const int	 owner_max = compat.owner_max;
	const int	 owner_shim = compat.owner_shim;
	const int	 owner_gen = compat.owner_generator;
	const int	 is_object = compat.frame_is_object;
	struct direct_span span;
	const struct direct_code *e;
	const char	*f;
	uintptr_t	 code, here = 0, above = 0;
	size_t		 back;
	int64_t		 loc;
	struct direct_kept kept = { 0, 0, 0, 0 };
	int		 n = 0, owner, steps, missed = 0, nregions, shim = 0;
	int		 gen = 0, mark = 0, missing = 0, more = 0, running = 0;
	int		 due = -1, rc = -1, left = -1, leaf_kept = 0, tail = 0;
	int		 below = 1;
	signed char	 state;
	struct direct_span chunk;
	uintptr_t	 leaf_link = 0;

	/* Past the frames kept, the chain is still followed to its end: a
	 * torn chain can loop, and must not pass for a deep stack. */
	direct_span_last(&span);
	chunk = span;
	for (steps = 0; frame != 0; steps++) {
		if (steps == DIRECT_CHAIN_MAX)
			goto out;
		if (n == DIRECT_WALK_MAX && !more) {
			more = 1;
			mark = direct_snap.n;
		}
		/* Past the frames kept, a deep stack's end is not worth
		 * filling the snapshot for: it stays truncated, unchecked. */
		if (more && direct_snap.n - mark > DIRECT_CHAIN_REGIONS) {
			rc = n;
			goto out;
		}
		if ((frame & (sizeof(void *) - 1)) != 0)
			goto out;
		/* Most frames lie in the chunk the previous one was in. */
		if (frame - span.lo < span.span) {
			f = span.base + (frame - span.lo);
			missed = 0;
		} else {
			if (left < 0)
				left = steps;
			/*
			 * Past the copied chunk, a lone miss is usually a shim
			 * frame on the C stack or a generator's frame: copy
			 * just it.  A second miss in a row means an older
			 * chunk, whose frames sit just below: copy a stretch.
			 */
			if (!direct_ptr_ok(frame, sizeof(void *)))
				goto out;
			back = 0;
			if (missed && !is_object) {
				back = frame & 4095;
				if (back > DIRECT_BACK_MAX)
					back = DIRECT_BACK_MAX;
			}
			nregions = direct_snap.n;
			f = direct_snap_get(frame, compat.frame_read, back, 0,
			    DK_OTHER);
			if (f == NULL)
				goto out;
			missed = direct_snap.n != nregions;
			direct_span_last(&span);
		}
		code = direct_word(f, o_code) & mask;
		owner = 0;
		if (o_owner != COMPAT_NONE) {
			owner = *(const signed char *)(f + o_owner);
			if (owner < 0 || owner > owner_max)
				goto out;
		}
		if (is_object && direct_word(f, offsetof(PyObject, ob_type)) !=
		    direct.frame_type)
			goto out;
		above = here;
		here = frame;
		/* The callers in the chunk lie below the leaf, as pushed. */
		if (n > 0 && left < 0 && here + compat.frame_read > raw[0].addr)
			below = 0;
		frame = direct_word(f, o_prev);
		shim = owner >= owner_shim;
		if (shim) {
			tail++;
			continue;	/* the interpreter's own shim frame */
		}
		tail = 0;
		if (!direct_ptr_ok(code, sizeof(void *)))
			goto out;
		gen = owner == owner_gen;
		if (o_running != COMPAT_NONE) {
			state = *(const signed char *)(f + o_running);
			running = compat.running_nonzero ? state != 0 :
			    state == 0;
		}
		if (more)
			continue;
		if (instr_ptr)
			loc = (int64_t)(direct_word(f, o_instr) -
			    (code + adaptive));
		else
			loc = (int64_t)direct_int(f, o_instr) *
			    (instr_units ? 2 : 1);
		raw[n].addr = here;
		raw[n].code = code;
		raw[n].gen = gen;
		raw[n].loc = loc;
		if (due == -1) {
			if ((e = direct_code_get(code, &missing)) != NULL) {
				if (direct_keep(t->frames, &kept, code, loc,
				    gen, e, n > 0) == -1)
					goto out;
			} else if (missing) {
				due = n;
			} else {
				goto out;
			}
		}
		if (n++ == 0) {
			leaf_kept = kept.depth == 1;
			leaf_link = frame;
			if (leaf_kept && due == -1 && left < 0 &&
			    c->reuse != NULL && c->reuse->ts == c->ts &&
			    direct_reuse_take(c->reuse,
			    &chunk, here, frame, t, &kept, c) == 0) {
				rc = n + c->reuse->nraw;
				goto out;
			}
		}
	}
	if (owner_shim != INT_MAX)
		rc = shim ? n : -1;
	else {
		rc = n;
		/* 3.11: a generator's frame at the bottom: the caller checks
		 * it. */
		if (gen)
			running = -1;
	}
	/* Keepable: the leaf kept, every code checked, every frame inside
	 * the chunk but the shims that end the chain (an entry frame, 3.15's
	 * base frame). */
	if (rc > 1 && c->reuse != NULL && leaf_kept && due == -1 && !more &&
	    !kept.truncated && below && (left < 0 || left >= steps - tail) &&
	    chunk.span != 0 && raw[0].addr > chunk.lo &&
	    raw[0].addr - chunk.lo < chunk.span &&
	    raw[0].addr - chunk.lo <= DIRECT_REUSE_BYTES) {
		c->keep = 1;
		c->leaf = raw[0].addr;
		c->leaf_prev = leaf_link;
		c->lo = chunk.lo;
		c->lo_copy = chunk.base;
	}
out:
	if (!c->reused) {
		c->end = here;
		c->above = above;
		c->running = running;
	}
	direct_kept_put(t, &kept);
	c->more = more;
	c->due = due;
	return rc;
}

/*
 * Copies a chain's bottom frame again, fresh, DIRECT_BOTTOM_COPIES times:
 * 0 if every copy still has no caller, runs, and has the same code object,
 * else -1.  One copy can be torn the same way as the walk's (a generator
 * resumed between the read of its caller link and that of its state);
 * each more copy makes that as unlikely again.
 */
#define DIRECT_BOTTOM_COPIES	3
static int
direct_bottom_again(const struct direct_raw *r)
{
	const char	*f;
	int		 fresh = direct_snap.fresh, running, i;
	signed char	 state;

	if (compat.frame_running == COMPAT_NONE)
		return 0;
	for (i = 0; i < DIRECT_BOTTOM_COPIES; i++) {
		direct_snap.fresh = direct_snap.n;
		f = direct_snap_get(r->addr, compat.frame_read, 0, 0,
		    DK_OTHER);
		direct_snap.fresh = fresh;
		if (f == NULL || direct_word(f, compat.frame_previous) != 0 ||
		    (direct_word(f, compat.frame_code) &
		    compat.frame_code_mask) != r->code)
			return -1;
		state = *(const signed char *)(f + compat.frame_running);
		running = compat.running_nonzero ? state != 0 : state == 0;
		if (!running)
			return -1;
	}
	return 0;
}

/*
 * 3.11+: checks where a whole chain ended: 0 if believed, else -1.  From
 * 3.12 an entry frame with no caller ends every chain; in 3.11 a frame
 * with no caller that is the first of its C-level evaluation (is_entry).
 * But a frame's link, copied just before the C call under it returned,
 * leads into C stack that has since been reused, where stale bytes can
 * look like such an end; and a frame address read a moment after the
 * chunk was copied can lead to bytes the thread has since overwritten (in
 * 3.11, a generator's first frame, pushed to be copied into the generator
 * and popped, has no caller): the stack would pass for whole with its
 * root frames lost.  An end where the thread's chain ended last time is
 * believed; another is copied again, fresh, with the frame that led to
 * it, DIRECT_END_COPIES times, and believed (and remembered) only if every
 * copy still says the same.
 */
#define DIRECT_END_COPIES	2
static int
direct_end_check(uintptr_t ts, const struct direct_chain *c)
{
	struct direct_end *d;
	const char	*f;
	int		 fresh = direct_snap.fresh, i, k, owner, rc = -1;

	d = &direct_ends[reader_slot(ts, DIRECT_ENDS_SHIFT)];
	if (d->ts == ts && d->end == c->end)
		return 0;
	for (i = 0; i < DIRECT_END_COPIES; i++) {
		/* Both in one copy: the frame that led here, then the end. */
		direct_snap.fresh = direct_snap.n;
		if ((c->above != 0 && direct_snap_add(c->above,
		    compat.frame_read, DK_OTHER) == -1) ||
		    (k = direct_snap_add(c->end, compat.frame_read,
		    DK_OTHER)) == -1)
			goto out;
		direct_snap_fetch(direct_snap.fresh);
		if (c->above != 0 && ((f = direct_snap_in(k - 1, c->above,
		    compat.frame_read)) == NULL ||
		    direct_word(f, compat.frame_previous) != c->end))
			goto out;
		if ((f = direct_snap_in(k, c->end, compat.frame_read)) ==
		    NULL || direct_word(f, compat.frame_previous) != 0)
			goto out;
		owner = *(const signed char *)(f + compat.frame_owner);
		if (compat.owner_shim != INT_MAX ? owner < compat.owner_shim ||
		    owner > compat.owner_max : owner < 0 ||
		    owner > compat.owner_max || (compat.frame_is_entry !=
		    COMPAT_NONE && *(const unsigned char *)(f +
		    compat.frame_is_entry) == 0))
			goto out;
	}
	d->ts = ts;
	d->end = c->end;
	rc = 0;
out:
	direct_snap.fresh = fresh;
	return rc;
}

/*
 * 3.11: checks a chain that ends at a generator's frame resumed from C
 * (the thread state's cframe one deep, its previous the root; the walk
 * read these): 0 if believed, else -1.  Those words lie on the thread's C
 * stack, copied a moment apart from the thread state: a thread that
 * returned meanwhile leaves stale bytes there, and a generator frame
 * suspended since has no caller either, so a cut stack could pass for
 * whole.  A chain that ended at this frame last time is believed; another
 * is copied again, fresh, DIRECT_END_COPIES times (the thread state's
 * cframe, that cframe's frame and previous, the bottom frame's caller
 * link), and believed (and remembered) only if every copy says the same.
 */
static int
direct_gen_end_check(uintptr_t ts, uintptr_t cframe, uintptr_t top,
    uintptr_t end)
{
	struct direct_end *d;
	const char	*f;
	size_t		 span;
	int		 fresh = direct_snap.fresh, i, k, rc = -1;

	d = &direct_ends[reader_slot(ts, DIRECT_ENDS_SHIFT)];
	if (d->ts == ts && d->end == end)
		return 0;
	span = (compat.cframe_frame > compat.cframe_previous ?
	    compat.cframe_frame : compat.cframe_previous) + sizeof(uintptr_t);
	for (i = 0; i < DIRECT_END_COPIES; i++) {
		direct_snap.fresh = direct_snap.n;
		if ((k = direct_snap_add(ts + compat.ts_cframe,
		    sizeof(uintptr_t), DK_OTHER)) == -1 ||
		    direct_snap_add(cframe, span, DK_OTHER) == -1 ||
		    direct_snap_add(end, compat.frame_read, DK_OTHER) == -1)
			goto out;
		direct_snap_fetch(direct_snap.fresh);
		if ((f = direct_snap_in(k, ts + compat.ts_cframe,
		    sizeof(uintptr_t))) == NULL || direct_word(f, 0) != cframe)
			goto out;
		if ((f = direct_snap_in(k + 1, cframe, span)) == NULL ||
		    direct_word(f, compat.cframe_frame) != top ||
		    direct_word(f, compat.cframe_previous) !=
		    ts + compat.ts_root_cframe)
			goto out;
		if ((f = direct_snap_in(k + 2, end, compat.frame_read)) ==
		    NULL || direct_word(f, compat.frame_previous) != 0)
			goto out;
	}
	d->ts = ts;
	d->end = end;
	rc = 0;
out:
	direct_snap.fresh = fresh;
	return rc;
}

/*
 * Completes a walked chain into the thread's frames: the checks the walk
 * left (its frames from due on, when due is not -1), and where a whole
 * chain ended (3.12+) or its bottom frame (3.9/3.10, frame objects).  0,
 * or -1 if torn.
 */
static int
direct_finish(uintptr_t ts, struct reader_thread *t, struct direct_raw *raw,
    int n, const struct direct_chain *c)
{
	const struct direct_code *e;
	int			 missing = 0, more = c->more;

	if (c->due >= 0 && direct_codes_due(t, raw, c->due, n) == -1)
		return -1;
	if (more)
		t->truncated = 1;
	else if ((compat.owner_shim != INT_MAX ||
	    compat.frame_is_entry != COMPAT_NONE) &&
	    direct_end_check(ts, c) != 0)
		return -1;
	/* 3.9/3.10: no entry frame marks the bottom, but a generator's frame
	 * there that does not run means the walk lost the frames under it;
	 * one that runs was resumed from C, or copied torn (its caller link
	 * read before it resumed, its state after): a fresh copy agrees. */
	if (!more && n > 0 && compat.frame_is_object &&
	    ((e = direct_code_get(raw[n - 1].code, &missing)) == NULL ||
	    (e->gen && (!c->running ||
	    direct_bottom_again(&raw[n - 1]) != 0))))
		return -1;
	return 0;
}

/*
 * Walks the frames of the thread whose copied state is s into raw[]: the
 * count, 0 when it has no Python frame, -1 when torn.
 */
static int
direct_thread_walk(uintptr_t ts, const char *s, struct direct_raw *raw,
    struct reader_thread *t, struct direct_chain *c)
{
	const char	*p;
	uintptr_t	 frame = 0, chunk, top, limit, cframe = 0;
	size_t		 span, ahead;
	int		 n;

	c->keep = 0;
	c->reused = 0;
	c->leaf = c->leaf_prev = c->lo = 0;
	c->lo_copy = NULL;
	if (compat.ts_frame != COMPAT_NONE) {
		frame = direct_word(s, compat.ts_frame);
	} else {
		cframe = direct_word(s, compat.ts_cframe);
		if (cframe == 0)
			return 0;
		if (!direct_ptr_ok(cframe, sizeof(void *)) ||
		    (p = direct_snap_get(cframe + compat.cframe_frame,
		    sizeof(uintptr_t), 0, 0, DK_OTHER)) == NULL)
			return -1;
		frame = direct_word(p, 0);
	}
	if (frame == 0)
		return 0;

	/* Copy the used part of the stack chunk at once: most frames live
	 * there. */
	if (compat.ts_chunk != COMPAT_NONE && compat.ts_top != COMPAT_NONE) {
		chunk = direct_word(s, compat.ts_chunk);
		top = direct_word(s, compat.ts_top);
		limit = direct_word(s, compat.ts_limit);
		if (chunk != 0 && top > chunk && limit >= top &&
		    (span = top - chunk) <= DIRECT_CHUNK_MAX &&
		    direct_ptr_ok(chunk, sizeof(void *))) {
			ahead = limit - top < DIRECT_CHUNK_SLACK ?
			    limit - top : DIRECT_CHUNK_SLACK;
			if (direct_snap_get(chunk, span, 0, ahead,
			    DK_CHUNK) != NULL) {
				struct direct_region *r =
				    &direct_snap.r[direct_snap.last];

				if (r->need < span + (chunk - r->addr))
					r->need = (uint32_t)(span +
					    (chunk - r->addr));
			}
		}
	}
	c->ts = ts;
	c->reuse = NULL;
	if (!compat.frame_is_object && compat.ts_chunk != COMPAT_NONE)
		c->reuse = direct_reuse_slot(ts);
	n = direct_walk(frame, raw, t, c);
	/*
	 * 3.11: a generator's frame ends the chain.  Whole only if it was
	 * resumed from C with no Python caller (a server iterating a response
	 * at the bottom of its thread): the thread's C-level evaluation is
	 * then one deep, its cframe's previous the thread state's root.
	 * Copied just after it yielded, it is the tail of a torn walk.
	 */
	if (n > 0 && c->running == -1) {
		c->running = 0;
		if (compat.cframe_previous == COMPAT_NONE || cframe == 0 ||
		    (p = direct_snap_get(cframe + compat.cframe_previous,
		    sizeof(uintptr_t), 0, 0, DK_OTHER)) == NULL ||
		    direct_word(p, 0) != ts + compat.ts_root_cframe ||
		    direct_gen_end_check(ts, cframe, frame, c->end) != 0)
			return -1;
	}
	return n;
}

/* Fresh walks made in this capture (sampler thread). */
static int	direct_retries;

/*
 * Captures one thread state: its ids, GIL, frames.  Returns 1 when t is
 * filled, 0 when the thread is skipped (ours, or no Python frames), -1 when
 * torn.  *next gets the next thread state.
 */
static int
direct_thread(uintptr_t ts, struct reader_thread *t, uintptr_t *next,
    pid_t self_tid, unsigned long self_id, uintptr_t holder,
    struct reader_window *w)
{
	static struct direct_raw raw[DIRECT_WALK_MAX];
	const char	*s, *p;
	struct direct_chain c;
	int		 n, attempt;

	if (!direct_ptr_ok(ts, sizeof(void *)))
		return -1;
	if ((s = direct_snap_get(ts, compat.ts_read, 0, 0, DK_TSTATE)) == NULL)
		return -1;
	*next = direct_word(s, compat.ts_next);
	if (direct_word(s, compat.ts_interp) != direct.interp)
		return -1;
	t->ident = direct_word(s, compat.ts_thread_id);
	t->native_id = 0;
	if (compat.ts_native_id != COMPAT_NONE)
		t->native_id = direct_word(s, compat.ts_native_id);
	if (t->ident == self_id ||
	    (t->native_id != 0 && t->native_id == (uint64_t)self_tid))
		return 0;
	if (compat.ts_native_id == COMPAT_NONE && direct.tid_off >= 0 &&
	    (p = direct_snap_get(t->ident + (uintptr_t)direct.tid_off,
	    sizeof(pid_t), 0, 0, DK_TID)) != NULL) {
		pid_t tid;

		memcpy(&tid, p, sizeof tid);
		t->native_id = tid > 0 ? (uint64_t)tid : 0;
	}
	t->gil = holder == 1 ? -1 : holder == ts;
	t->offcpu = 0;
	if (!reader_window_take(w, t->ident, t->gil))
		return 0;

	/*
	 * A walk torn by the thread running on under us (most often: its
	 * current frame a generator's, copied just after it was suspended) is
	 * tried again from fresh copies of the thread state and frames.
	 */
	for (attempt = 0;; attempt++) {
		n = direct_thread_walk(ts, s, raw, t, &c);
		if (n == 0) {
			direct_snap.fresh = 0;
			return 0;
		}
		if (n > 0 && direct_finish(ts, t, raw, n, &c) == 0) {
			direct_reuse_keep(ts, &c, t, n);
			break;
		}
		/* Again from fresh copies, while this capture's retries last;
		 * the thread state must still be this thread's. */
		if (attempt == DIRECT_RETRIES ||
		    direct_retries >= DIRECT_RETRIES_CAPTURE) {
			direct_snap.fresh = 0;
			return -1;
		}
		direct_retries++;
		direct_snap.fresh = direct_snap.n;
		if ((s = direct_snap_get(ts, compat.ts_read, 0, 0,
		    DK_TSTATE)) == NULL ||
		    direct_word(s, compat.ts_interp) != direct.interp ||
		    direct_word(s, compat.ts_thread_id) != t->ident) {
			direct_snap.fresh = 0;
			return -1;
		}
	}
	direct_snap.fresh = 0;
	return t->depth > 0 ? 1 : 0;
}

/* Where direct_capture_all reads a thread it will not take, when out is
 * full (sampler thread). */
static struct reader_thread	direct_scratch;

/* Captures every Python thread but ours (see direct_capture). */
static int
direct_capture_all(struct reader_thread *out, int max,
    struct reader_window *w, uint64_t *invalid)
{
	const char	*p;
	uintptr_t	 ts, next, holder = 1;	/* 1: unknown */
	pid_t		 self_tid = direct_gettid();
	unsigned long	 self_id = (unsigned long)pthread_self();
	int		 n = 0, steps, r;

	if (!direct.ready || direct_io.how == DIRECT_NONE)
		return -1;
	/* Forked: the child's descriptors were dropped, set up again. */
	if (direct_io.forked) {
		direct_io.forked = 0;
		if (direct_io_setup() == -1) {
			direct_io.how = DIRECT_NONE;
			return -1;
		}
	}
	direct_snap.capture++;
	direct_snap.hidden_gen = reader_hidden_generation();
	direct_retries = 0;
	direct_snap_prefetch();

	if ((p = direct_snap_get(direct.interp + compat.interp_head,
	    sizeof(uintptr_t), 0, 0, DK_HEAD)) == NULL)
		return -1;
	ts = direct_word(p, 0);
	if (direct.gil != 0 && (p = direct_snap_get(direct.gil,
	    compat.gil_read, 0, 0, DK_GIL)) != NULL) {
		int locked = direct_int(p, compat.gil_locked);

		holder = locked ? direct_word(p, compat.gil_holder) : 0;
		if (holder == 1)
			holder = 0;
	}
	reader_window_begin(w, max, compat_main_thread());
	for (steps = 0; ts != 0 && steps < DIRECT_THREADS_MAX; steps++) {
		/* Past max (all later threads skipped), only the thread's ids
		 * are read, into a scratch entry. */
		r = direct_thread(ts, n < max ? &out[n] : &direct_scratch, &next,
		    self_tid, self_id, holder, w);
		if (r == -1) {
			(*invalid)++;
			/* A torn thread state may still give its successor. */
			if ((p = direct_snap_find(ts, compat.ts_read)) == NULL ||
			    direct_word(p, compat.ts_interp) != direct.interp)
				break;
			next = direct_word(p, compat.ts_next);
		}
		if (r == 1)
			n++;
		if (next != 0 && !direct_ptr_ok(next, sizeof(void *))) {
			(*invalid)++;
			break;
		}
		ts = next;
	}
	reader_window_end(w);
	direct_snap_plan();
	return n;
}

/* Captures every Python thread but ours. */
static int
direct_capture(struct reader_thread *out, int max, struct reader_window *w,
    uint64_t *invalid)
{
	int	n;

	if (!direct.ready || direct_io.how == DIRECT_NONE)
		return -1;
	/*
	 * The pipe or /proc/self/mem is checked once per capture, not before
	 * each call: the host may close and reuse the number on another thread
	 * at any time, so a check only narrows the window, from one capture (a
	 * few microseconds) to one call.  Nor less often: the capture writes
	 * host memory into the pipe, and reads from both.
	 */
	if (!direct_io.forked) {
		if (direct_io_verify() == -1)
			return -1;
		direct_io.verified = 1;
	}
	n = direct_capture_all(out, max, w, invalid);
	direct_io.verified = 0;
	return n;
}

/* Reads a str object into out as UTF-8, truncated; 0 or -1. */
static int
direct_str(uintptr_t addr, char *out, size_t cap)
{
	union {
		PyCompactUnicodeObject	u;
		char			b[DIRECT_STR_HEAD];
	} h;
	static unsigned char	 data[(READER_NAME_MAX) * 4];
	const PyASCIIObject	*a = &h.u._base;
	size_t			 len, i, o = 0, head;
	unsigned		 kind;
	uint32_t		 c;

	if (cap == 0 || !direct_ptr_ok(addr, sizeof(void *)) ||
	    direct_copy(&h, addr, sizeof(PyASCIIObject)) == -1)
		return -1;
	if ((uintptr_t)a->ob_base.ob_type != direct.str_type ||
	    !direct_alive(a) || !a->state.compact || a->length < 0)
		return -1;
	kind = a->state.kind;
	if (kind != 1 && kind != 2 && kind != 4)
		return -1;
	head = a->state.ascii ? sizeof(PyASCIIObject) :
	    sizeof(PyCompactUnicodeObject);
	len = (size_t)a->length;
	if (len > cap - 1)
		len = cap - 1;
	if (len > 0 && direct_copy(data, addr + head, len * kind) == -1)
		return -1;
	for (i = 0; i < len; i++) {
		if (kind == 1)
			c = data[i];
		else if (kind == 2)
			c = ((const uint16_t *)data)[i];
		else
			c = ((const uint32_t *)data)[i];
		if (c >= 0xd800 && c < 0xe000)
			c = '?';
		if (c < 0x80) {
			if (o + 1 >= cap)
				break;
			out[o++] = (char)c;
		} else if (c < 0x800) {
			if (o + 2 >= cap)
				break;
			out[o++] = (char)(0xc0 | (c >> 6));
			out[o++] = (char)(0x80 | (c & 0x3f));
		} else if (c < 0x10000) {
			if (o + 3 >= cap)
				break;
			out[o++] = (char)(0xe0 | (c >> 12));
			out[o++] = (char)(0x80 | ((c >> 6) & 0x3f));
			out[o++] = (char)(0x80 | (c & 0x3f));
		} else if (c < 0x110000) {
			if (o + 4 >= cap)
				break;
			out[o++] = (char)(0xf0 | (c >> 18));
			out[o++] = (char)(0x80 | ((c >> 12) & 0x3f));
			out[o++] = (char)(0x80 | ((c >> 6) & 0x3f));
			out[o++] = (char)(0x80 | (c & 0x3f));
		} else {
			return -1;
		}
	}
	out[o] = '\0';
	return 0;
}

/* Copies a code object's header and checks its type; 0 or -1. */
static int
direct_code_head(uintptr_t code, char *c)
{
	if (!direct_ptr_ok(code, sizeof(void *)) ||
	    direct_copy(c, code, compat.code_read) == -1)
		return -1;
	if (direct_word(c, offsetof(PyObject, ob_type)) != direct.code_type ||
	    !direct_alive(c))
		return -1;
	return 0;
}

/* Copies out the name, file and first line of a code object. */
static int
direct_code(uintptr_t code, struct reader_code *rc)
{
	char	c[COMPAT_CODE_BYTES];

	if (compat.code_read > sizeof c || direct_code_head(code, c) == -1)
		return -1;
	if (direct_str(direct_word(c, compat.code_name), rc->qualname,
	    sizeof rc->qualname) == -1 ||
	    direct_str(direct_word(c, compat.code_filename), rc->filename,
	    sizeof rc->filename) == -1)
		return -1;
	rc->firstline = direct_int(c, compat.code_firstlineno);
	rc->fingerprint = direct_code_hash(c);
	/* Freed and reused while we read its strings? */
	if (direct_code_head(code, c) == -1 ||
	    direct_code_hash(c) != rc->fingerprint)
		return -1;
	return 0;
}

/* The cache entry of code if the last capture checked it, else NULL. */
static const struct direct_code *
direct_code_fresh(uintptr_t code)
{
	const struct direct_code *e = direct_code_slot(code);

	if (e->addr == code && e->ok && e->checked == direct_snap.capture &&
	    direct_snap.capture != 0)
		return e;
	return NULL;
}

/* Fingerprint of a code object now; 0 if it is not one.  "Now" is the
 * last capture for code on its stacks. */
static uint64_t
direct_fingerprint(uintptr_t code)
{
	const struct direct_code *e;
	char	c[COMPAT_CODE_BYTES];

	if ((e = direct_code_fresh(code)) != NULL)
		return e->fingerprint;

	if (compat.code_read > sizeof c || direct_code_head(code, c) == -1)
		return 0;
	return direct_code_hash(c);
}

/* Reads a signed/unsigned varint of the 3.11+ location table. */
static unsigned
direct_varint(const unsigned char *t, uint32_t len, uint32_t *i)
{
	unsigned	v = 0, shift = 0, b;

	do {
		if (*i >= len || shift > 28)
			return 0;
		b = t[(*i)++];
		v |= (b & 63) << shift;
		shift += 6;
	} while (b & 64);
	return v;
}

/*
 * Line of the byte offset addr in a line table: the same walk as CPython's
 * PyCode_Addr2Line for each format.  -1 when the offset has no line.
 */
static int32_t
direct_addr2line(const struct direct_lines *l, int32_t addr)
{
	const unsigned char	*t = l->table;
	uint32_t		 i = 0, len = l->len;
	int32_t			 line = l->firstline, start, end = 0, at;
	unsigned		 code, v;

	if (addr < 0)
		return l->firstline;
	switch (compat.lines) {
	case COMPAT_LNOTAB:
		for (i = 0; i + 1 < len; i += 2) {
			end += t[i];
			if (end > addr)
				break;
			line += (signed char)t[i + 1];
		}
		return line;
	case COMPAT_LINETABLE:
		for (i = 0; i + 1 < len; i += 2) {
			start = end;
			end += t[i];
			if ((signed char)t[i + 1] != -128)
				line += (signed char)t[i + 1];
			at = (signed char)t[i + 1] == -128 ? -1 : line;
			if (start <= addr && addr < end)
				return at;
		}
		return -1;
	case COMPAT_LOCATIONS:
		while (i < len) {
			if (!(t[i] & 0x80))
				return -1;	/* not at an entry start */
			code = (t[i] >> 3) & 15;
			start = end;
			end += ((t[i] & 7) + 1) * 2;
			i++;
			at = line;
			if (code == 15) {	/* no location */
				at = -1;
			} else if (code == 13 || code == 14) {
				v = direct_varint(t, len, &i);
				line += (v & 1) ? -(int32_t)(v >> 1) :
				    (int32_t)(v >> 1);
				at = line;
			} else if (code >= 10) {
				line += (int32_t)code - 10;
				at = line;
			}
			/* Skip to the next entry. */
			while (i < len && !(t[i] & 0x80))
				i++;
			if (start <= addr && addr < end)
				return at;
		}
		return -1;
	}
	return -1;
}

/* Line of an offset in code, from its (cached) line table. */
static int32_t
direct_line(uintptr_t code, int32_t loc)
{
	char			 c[512];
	const struct direct_code *e;
	struct direct_lines	*l;
	uint64_t		 fp;
	uintptr_t		 tab;
	char			 bh[64];
	intptr_t		 size;

	l = &direct_lines[reader_slot(code, DIRECT_LINE_SHIFT)];
	if ((e = direct_code_fresh(code)) != NULL && l->table != NULL &&
	    l->addr == code && l->fingerprint == e->fingerprint)
		return direct_addr2line(l, loc);
	if (compat.code_read > sizeof c || direct_code_head(code, c) == -1)
		return -1;
	fp = direct_code_hash(c);
	if (l->table == NULL || l->addr != code || l->fingerprint != fp) {
		free(l->table);
		memset(l, 0, sizeof *l);
		tab = direct_word(c, compat.code_lines);
		if (compat.bytes_data > sizeof bh ||
		    !direct_ptr_ok(tab, sizeof(void *)) ||
		    direct_copy(bh, tab, compat.bytes_data) == -1 ||
		    direct_word(bh, offsetof(PyObject, ob_type)) !=
		    (uintptr_t)&PyBytes_Type || !direct_alive(bh))
			return direct_int(c, compat.code_firstlineno);
		size = (intptr_t)direct_word(bh, compat.bytes_size);
		if (size < 0 || size > (intptr_t)DIRECT_LINES_MAX)
			return direct_int(c, compat.code_firstlineno);
		if ((l->table = malloc((size_t)size + 1)) == NULL)
			return direct_int(c, compat.code_firstlineno);
		if (direct_copy(l->table, tab + compat.bytes_data,
		    (size_t)size) == -1) {
			free(l->table);
			l->table = NULL;
			return direct_int(c, compat.code_firstlineno);
		}
		l->addr = code;
		l->fingerprint = fp;
		l->len = (uint32_t)size;
		l->firstline = direct_int(c, compat.code_firstlineno);
	}
	return direct_addr2line(l, loc);
}

/* Drops what is cached about a code object the interner let go. */
static void
direct_forget(uintptr_t code)
{
	struct direct_lines	*l;
	struct direct_code	*e = direct_code_slot(code);

	if (e->addr == code)
		memset(e, 0, sizeof *e);
	l = &direct_lines[reader_slot(code, DIRECT_LINE_SHIFT)];
	if (l->addr == code) {
		free(l->table);
		memset(l, 0, sizeof *l);
	}
}

#else /* !COMPAT_SUPPORTED */

/* An interpreter whose layouts compat.h does not know: never usable. */
static int
direct_probe(void)
{
	return -1;
}

static int
direct_capture(struct reader_thread *out, int max, struct reader_window *w,
    uint64_t *invalid)
{
	return -1;
}

static int
direct_code(uintptr_t code, struct reader_code *rc)
{
	return -1;
}

static uint64_t
direct_fingerprint(uintptr_t code)
{
	return 0;
}

static int32_t
direct_line(uintptr_t code, int32_t loc)
{
	return -1;
}

static void
direct_forget(uintptr_t code)
{
}

#endif /* COMPAT_SUPPORTED */

const struct reader reader_direct = {
	.name = "direct",
	.id = PROTO_READER_DIRECT,
	.loc = READER_LOC_OFFSET,
	.probe = direct_probe,
	.capture = direct_capture,
	.code = direct_code,
	.fingerprint = direct_fingerprint,
	.line = direct_line,
	.forget = direct_forget,
};
