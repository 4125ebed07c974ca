/*
 * compat.c -- the layout in force, and the check that it is right.
 *
 * compat_load runs once at import, holding the GIL.  It starts from the
 * layout of the headers the agent was built against (compat_built).  On
 * 3.13 and later the running interpreter publishes the offsets of its own
 * structs in _PyRuntime.debug_offsets (_Py_DebugOffsets: a cookie, the
 * version, each struct's size); those are validated and taken instead, so
 * a point release that moves a field is read right.  Fields the table does
 * not carry (the data stack's top and limit, a code object's first
 * traceable instruction) keep their distance from a neighbour the table
 * does carry.  Fields where the interpreter and the headers disagree are
 * counted and reported once.
 *
 * PROFAGENT_LAYOUT chooses: "headers" (the build's layout only),
 * "interpreter" (the table only: fields it does not carry go unused, at
 * some cost: no stack-chunk prefetch, no hiding of frames not yet
 * started), or unset (the table, with the headers for the rest).
 *
 * Whatever its source, the layout is then checked on the calling thread's
 * own stack: read through it with safe copies, the thread list, ids,
 * frames, code objects, instruction offsets, line tables and GIL must be
 * exactly what the public C API says.  A layout that fails is not used:
 * the direct reader stays off, the agent samples with the GIL reader, and
 * one line on stderr says why.  No stack is ever read through a layout
 * that failed, so a wrong layout costs speed, never a wrong stack or a
 * crash.
 */
#include "compat.h"	/* first: sets Py_BUILD_CORE for Python.h */

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "agent.h"

#define COMPAT_WALK_MAX		4096	/* frames, thread states checked */
#define COMPAT_STRUCT_MAX	((uint64_t)1 << 20)	/* sane struct size */

int			compat_source = COMPAT_SRC_NONE;
unsigned		compat_moved;
char			compat_why[160];
struct compat_asyncio	compat_asyncio;

#if COMPAT_SUPPORTED

struct compat_layout	compat;

/* Sets compat_why; returns -1. */
static int
compat_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int
compat_fail(const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	vsnprintf(compat_why, sizeof compat_why, fmt, ap);
	va_end(ap);
	return (-1);
}

/*
 * Copies n bytes at src, or fails: a wrong offset must give an error, not a
 * fault.  process_vm_readv on our own pid, else /proc/self/mem.
 */
static int
compat_copy(void *dst, uintptr_t src, size_t n)
{
	struct iovec	l = { dst, n }, r = { (void *)src, n };
	ssize_t		got;
	int		fd;

	if (src < 4096)
		return (-1);
	got = syscall(SYS_process_vm_readv, getpid(), &l, 1UL, &r, 1UL, 0UL);
	if (got == (ssize_t)n)
		return (0);
	if (got == -1 && errno != ENOSYS && errno != EPERM)
		return (-1);
	if ((fd = open("/proc/self/mem", O_RDONLY | O_CLOEXEC)) == -1)
		return (-1);
	got = pread(fd, dst, n, (off_t)src);
	close(fd);
	return (got == (ssize_t)n ? 0 : -1);
}

static int
compat_word(uintptr_t base, size_t off, uintptr_t *v)
{
	return (compat_copy(v, base + off, sizeof *v));
}

static int
compat_int(uintptr_t base, size_t off, int32_t *v)
{
	return (compat_copy(v, base + off, sizeof *v));
}

#if PY_VERSION_HEX >= 0x030d0000
/* Takes a field from the table when it fits its struct; else fails. */
#define COMPAT_TAKE(dst, off, width, size) do {				\
	if ((uint64_t)(off) > (uint64_t)(size) ||			\
	    (uint64_t)(width) > (uint64_t)(size) - (uint64_t)(off))	\
		return (compat_fail("debug offsets: %s (%llu) lies "	\
		    "outside its struct (%llu bytes)", #dst,		\
		    (unsigned long long)(off),				\
		    (unsigned long long)(size)));			\
	l->dst = (size_t)(off);						\
} while (0)

/* A field the table lacks, at its built distance from one it has. */
#define COMPAT_NEAR(dst, anchor) do {					\
	l->dst = pure ? COMPAT_NONE : l->anchor +			\
	    (compat_built.dst - compat_built.anchor);			\
} while (0)

/*
 * Fills l from the interpreter's _Py_DebugOffsets; pure leaves the fields
 * it does not carry unused.  0 or -1.
 */
static int
compat_from_runtime(struct compat_layout *l, int pure)
{
	const _Py_DebugOffsets	*d = &_PyRuntime.debug_offsets;
	uint64_t		 ts, fr, co, in, by;
	size_t			 gil;

	if (memcmp(d->cookie, _Py_Debug_Cookie, sizeof d->cookie) != 0)
		return (compat_fail("no debug offsets cookie in _PyRuntime"));
	if ((d->version >> 16) != ((uint64_t)PY_VERSION_HEX >> 16))
		return (compat_fail("debug offsets of Python %d.%d, agent "
		    "built for %d.%d", (int)(d->version >> 24),
		    (int)(d->version >> 16) & 0xff, PY_MAJOR_VERSION,
		    PY_MINOR_VERSION));
	if (d->free_threaded)
		return (compat_fail("free-threaded interpreter"));
	ts = d->thread_state.size;
	fr = d->interpreter_frame.size;
	co = d->code_object.size;
	in = d->interpreter_state.size;
	by = d->bytes_object.size;
	if (ts < 8 || fr < 8 || co < sizeof(PyObject) || in < 8 || by < 8 ||
	    ts > COMPAT_STRUCT_MAX || fr > COMPAT_STRUCT_MAX ||
	    co > COMPAT_STRUCT_MAX || in > COMPAT_STRUCT_MAX ||
	    by > COMPAT_STRUCT_MAX)
		return (compat_fail("debug offsets: a struct size is 0 or "
		    "too big"));

	*l = compat_built;
	COMPAT_TAKE(interp_head, d->interpreter_state.threads_head, 8, in);
	COMPAT_TAKE(interp_gil, d->interpreter_state.ceval_gil, 8, in);

	COMPAT_TAKE(ts_next, d->thread_state.next, 8, ts);
	COMPAT_TAKE(ts_interp, d->thread_state.interp, 8, ts);
	COMPAT_TAKE(ts_thread_id, d->thread_state.thread_id, 8, ts);
	COMPAT_TAKE(ts_native_id, d->thread_state.native_thread_id, 8, ts);
	COMPAT_TAKE(ts_frame, d->thread_state.current_frame, 8, ts);
	COMPAT_TAKE(ts_chunk, d->thread_state.datastack_chunk, 8, ts);
	COMPAT_NEAR(ts_top, ts_chunk);
	COMPAT_NEAR(ts_limit, ts_chunk);
	if (!pure && (l->ts_top > ts - 8 || l->ts_limit > ts - 8))
		return (compat_fail("debug offsets: the data stack's top "
		    "would lie outside the thread state"));
	l->ts_read = COMPAT_MAX3(COMPAT_MAX3(l->ts_next, l->ts_interp,
	    l->ts_thread_id), COMPAT_MAX3(l->ts_native_id, l->ts_frame,
	    l->ts_chunk), pure ? 0 : COMPAT_MAX2(l->ts_top, l->ts_limit)) + 8;

	COMPAT_TAKE(frame_previous, d->interpreter_frame.previous, 8, fr);
	COMPAT_TAKE(frame_code, d->interpreter_frame.executable, 8, fr);
	COMPAT_TAKE(frame_instr, d->interpreter_frame.instr_ptr, 8, fr);
	COMPAT_TAKE(frame_owner, d->interpreter_frame.owner, 1, fr);
	l->frame_read = COMPAT_MAX3(l->frame_previous + 8,
	    l->frame_code + 8, COMPAT_MAX2(l->frame_instr + 8,
	    l->frame_owner + 1));

	COMPAT_TAKE(code_filename, d->code_object.filename, 8, co);
	COMPAT_TAKE(code_name, d->code_object.qualname, 8, co);
	COMPAT_TAKE(code_lines, d->code_object.linetable, 8, co);
	COMPAT_TAKE(code_firstlineno, d->code_object.firstlineno, 4, co);
	COMPAT_TAKE(code_adaptive, d->code_object.co_code_adaptive, 1, co);
	COMPAT_TAKE(code_units, d->bytes_object.ob_size, 8, by);
	if (!pure && l->code_adaptive < compat_built.code_adaptive -
	    compat_built.code_firsttraceable)
		return (compat_fail("debug offsets: the bytecode would start "
		    "before the first traceable instruction"));
	COMPAT_NEAR(code_firsttraceable, code_adaptive);
	if (!pure && l->code_firsttraceable + 4 > l->code_adaptive)
		return (compat_fail("debug offsets: the first traceable "
		    "instruction would lie past the bytecode"));
	l->code_read = COMPAT_MAX3(l->code_filename + 8, l->code_name + 8,
	    COMPAT_MAX3(l->code_lines + 8, l->code_firstlineno + 4,
	    COMPAT_MAX2(l->code_units + 8,
	    pure ? 0 : l->code_firsttraceable + 4)));

	COMPAT_TAKE(bytes_size, d->bytes_object.ob_size, 8, by);
	COMPAT_TAKE(bytes_data, d->bytes_object.ob_sval, 1, by);

	/* The GIL's fields, relative to the struct ceval.gil points to. */
	gil = (size_t)d->interpreter_state.gil_runtime_state;
	if (d->interpreter_state.gil_runtime_state_locked < gil ||
	    d->interpreter_state.gil_runtime_state_holder < gil)
		return (compat_fail("debug offsets: GIL fields outside the "
		    "GIL's state"));
	l->gil_locked = (size_t)d->interpreter_state.gil_runtime_state_locked
	    - gil;
	l->gil_holder = (size_t)d->interpreter_state.gil_runtime_state_holder
	    - gil;
	if (l->gil_locked > 4096 || l->gil_holder > 4096)
		return (compat_fail("debug offsets: GIL fields too far in"));
	l->gil_read = COMPAT_MAX2(l->gil_locked + 4, l->gil_holder + 8);
	if (l->frame_read > COMPAT_FRAME_BYTES ||
	    l->code_read > COMPAT_CODE_BYTES ||
	    l->code_read < sizeof(PyObject))
		return (compat_fail("debug offsets: a frame or code header "
		    "bigger than %d bytes", COMPAT_CODE_BYTES));
	return (0);
}
#undef COMPAT_TAKE
#undef COMPAT_NEAR

/* How many fields the interpreter places elsewhere than the headers. */
static unsigned
compat_diff(const struct compat_layout *l, char *names, size_t len)
{
	static const struct { const char *name; size_t off; } f[] = {
#define F(x)	{ #x, offsetof(struct compat_layout, x) }
		F(interp_head), F(interp_gil), F(ts_next), F(ts_interp),
		F(ts_thread_id), F(ts_native_id), F(ts_frame), F(ts_chunk),
		F(ts_top), F(ts_limit), F(frame_code), F(frame_previous),
		F(frame_instr), F(frame_owner), F(code_name),
		F(code_filename), F(code_firstlineno), F(code_lines),
		F(code_units), F(code_adaptive), F(code_firsttraceable),
		F(bytes_size), F(bytes_data), F(gil_holder), F(gil_locked),
#undef F
	};
	unsigned	 n = 0;
	size_t		 i, a, b, used = 0;

	names[0] = '\0';
	for (i = 0; i < sizeof f / sizeof f[0]; i++) {
		memcpy(&a, (const char *)l + f[i].off, sizeof a);
		memcpy(&b, (const char *)&compat_built + f[i].off, sizeof b);
		if (a == b || a == COMPAT_NONE)
			continue;
		n++;
		if (used + strlen(f[i].name) + 2 < len)
			used += (size_t)snprintf(names + used, len - used,
			    "%s%s", used ? " " : "", f[i].name);
	}
	return (n);
}
#endif /* 3.13+ */

/* The frame the thread state says is current; 0 or -1. */
static int
compat_current_frame(uintptr_t ts, uintptr_t *frame)
{
	uintptr_t	cframe;

	if (compat.ts_frame != COMPAT_NONE)
		return (compat_word(ts, compat.ts_frame, frame));
	if (compat_word(ts, compat.ts_cframe, &cframe) == -1 || cframe == 0)
		return (-1);
	return (compat_word(cframe, compat.cframe_frame, frame));
}

/* The attribute `name` of o is the object at addr; 0 or -1. */
static int
compat_same_attr(PyObject *o, const char *name, uintptr_t addr)
{
	PyObject	*v = PyObject_GetAttrString(o, name);
	int		 same;

	if (v == NULL) {
		PyErr_Clear();
		return (-1);
	}
	same = (uintptr_t)v == addr;
	Py_DECREF(v);
	return (same ? 0 : -1);
}

/* The integer attribute `name` of o; LONG_MIN if none. */
static long
compat_long_attr(PyObject *o, const char *name)
{
	PyObject	*v = PyObject_GetAttrString(o, name);
	long		 n = LONG_MIN;

	if (v != NULL) {
		if (PyLong_Check(v))
			n = PyLong_AsLong(v);
		else if (PyBytes_Check(v))
			n = (long)PyBytes_Size(v);
		Py_DECREF(v);
	}
	PyErr_Clear();
	return (n);
}

/*
 * Checks one frame read through the layout against the public API's view
 * of it (pf); 0 or -1.
 */
static int
compat_check_frame(const char *f, uintptr_t code, PyFrameObject *pf,
    int depth)
{
	PyCodeObject	*pc = PyFrame_GetCode(pf);
	uintptr_t	 name, file, lines, size, instr;
	int32_t		 first;
	int		 rc = -1;

	if ((uintptr_t)pc != code) {
		compat_fail("frame %d: code object %#lx, the API says %p",
		    depth, (unsigned long)code, (void *)pc);
		goto out;
	}
	if (compat_word(code, compat.code_name, &name) == -1 ||
	    compat_same_attr((PyObject *)pc, PY_VERSION_HEX >= 0x030b0000 ?
	    "co_qualname" : "co_name", name) == -1 ||
	    compat_word(code, compat.code_filename, &file) == -1 ||
	    compat_same_attr((PyObject *)pc, "co_filename", file) == -1 ||
	    compat_int(code, compat.code_firstlineno, &first) == -1 ||
	    first != compat_long_attr((PyObject *)pc, "co_firstlineno")) {
		compat_fail("frame %d: code object's name, file or first "
		    "line", depth);
		goto out;
	}
	if (compat_word(code, compat.code_lines, &lines) == -1 ||
	    compat_same_attr((PyObject *)pc, PY_VERSION_HEX >= 0x030a0000 ?
	    "co_linetable" : "co_lnotab", lines) == -1 ||
	    compat_word(lines, compat.bytes_size, &size) == -1 ||
	    (long)size != compat_long_attr((PyObject *)pc,
	    PY_VERSION_HEX >= 0x030a0000 ? "co_linetable" : "co_lnotab")) {
		compat_fail("frame %d: line table", depth);
		goto out;
	}
#if PY_VERSION_HEX >= 0x030b0000
	{
		uintptr_t	units;

		if (compat_word(code, compat.code_units, &units) == -1 ||
		    (long)units * 2 != compat_long_attr((PyObject *)pc,
		    "co_code")) {
			compat_fail("frame %d: bytecode size", depth);
			goto out;
		}
		memcpy(&instr, f + compat.frame_instr, sizeof instr);
		if ((intptr_t)(instr - (code + compat.code_adaptive)) !=
		    (intptr_t)PyFrame_GetLasti(pf)) {
			compat_fail("frame %d: instruction offset %ld, the "
			    "API says %d", depth, (long)(instr - (code +
			    compat.code_adaptive)), PyFrame_GetLasti(pf));
			goto out;
		}
	}
#else
	(void)instr;
	(void)f;
#endif
	rc = 0;
out:
	Py_DECREF(pc);
	return (rc);
}

/*
 * Reads the calling thread's state and stack through `compat` and compares
 * every field with the public API; 0, or -1 with compat_why set.
 */
static int
compat_selfcheck(void)
{
	PyThreadState	*ts = PyThreadState_Get();
	PyFrameObject	*pf, *back;
	uintptr_t	 t = (uintptr_t)ts, p, frame, code, prev, gil;
	uintptr_t	 chunk, top, limit, leaf;
	char		 f[COMPAT_FRAME_BYTES];
	int32_t		 locked, first = 0;
	int		 i, owner, shim = 0, depth = 0, rc = -1;

	(void)first;

	if (compat.frame_read > sizeof f)
		return (compat_fail("frame header bigger than %zu bytes",
		    sizeof f));
	/* The thread list holds us; our ids and interpreter. */
	if (compat_word((uintptr_t)PyThreadState_GetInterpreter(ts),
	    compat.interp_head, &p) == -1)
		return (compat_fail("interpreter's thread list unreadable"));
	for (i = 0; p != 0 && p != t && i < COMPAT_WALK_MAX; i++)
		if (compat_word(p, compat.ts_next, &p) == -1)
			return (compat_fail("thread list torn"));
	if (p != t)
		return (compat_fail("this thread is not in the thread list"));
	if (compat_word(t, compat.ts_interp, &p) == -1 ||
	    p != (uintptr_t)PyThreadState_GetInterpreter(ts))
		return (compat_fail("thread state's interpreter"));
	if (compat_word(t, compat.ts_thread_id, &p) == -1 ||
	    p != (uintptr_t)PyThread_get_thread_ident())
		return (compat_fail("thread state's thread id"));
	if (compat.ts_native_id != COMPAT_NONE &&
	    (compat_word(t, compat.ts_native_id, &p) == -1 ||
	    p != (uintptr_t)PyThread_get_thread_native_id()))
		return (compat_fail("thread state's native thread id"));

	/* We hold the GIL: it says locked, by us. */
	gil = compat_gil_static();
	if (compat.interp_gil != COMPAT_NONE &&
	    compat_word((uintptr_t)PyThreadState_GetInterpreter(ts),
	    compat.interp_gil, &gil) == -1)
		return (compat_fail("interpreter's GIL pointer"));
	if (gil == 0 || compat_int(gil, compat.gil_locked, &locked) == -1 ||
	    locked != 1 || compat_word(gil, compat.gil_holder, &p) == -1 ||
	    p != t)
		return (compat_fail("GIL state: not locked by this thread"));

	/* The frames, leaf first, as the API sees them. */
	if (compat_current_frame(t, &frame) == -1)
		return (compat_fail("thread state's current frame"));
	leaf = frame;
	pf = PyThreadState_GetFrame(ts);
	for (i = 0; frame != 0 && i < COMPAT_WALK_MAX; i++) {
		if (compat_copy(f, frame, compat.frame_read) == -1) {
			compat_fail("frame %d unreadable", depth);
			goto out;
		}
		memcpy(&code, f + compat.frame_code, sizeof code);
		code &= compat.frame_code_mask;
		memcpy(&prev, f + compat.frame_previous, sizeof prev);
		owner = 0;
		if (compat.frame_owner != COMPAT_NONE) {
			owner = *(const signed char *)(f + compat.frame_owner);
			if (owner < 0 || owner > compat.owner_max) {
				compat_fail("frame %d: owner %d", depth, owner);
				goto out;
			}
		}
		frame = prev;
		shim = owner >= compat.owner_shim;
		if (shim)
			continue;
#if PY_VERSION_HEX >= 0x030b0000
		/* Not started yet: the API skips it too. */
		if (owner != compat.owner_generator &&
		    compat.code_firsttraceable != COMPAT_NONE) {
			uintptr_t instr;

			memcpy(&instr, f + compat.frame_instr, sizeof instr);
			if (compat_int(code, compat.code_firsttraceable,
			    &first) == -1) {
				compat_fail("frame %d: code unreadable", depth);
				goto out;
			}
			if ((intptr_t)(instr - (code + compat.code_adaptive)) <
			    (intptr_t)first * 2)
				continue;
		}
#endif
		if (pf == NULL) {
			compat_fail("more frames than the API sees (%d)",
			    depth);
			goto out;
		}
		if (compat_check_frame(f, code, pf, depth) == -1)
			goto out;
		back = PyFrame_GetBack(pf);
		Py_DECREF(pf);
		pf = back;
		depth++;
	}
	if (pf != NULL) {
		compat_fail("fewer frames than the API sees (%d)", depth);
		goto out;
	}
	if (depth == 0) {
		compat_fail("no Python frame on the importing thread");
		goto out;
	}
	if (compat.owner_shim != INT_MAX && !shim) {
		compat_fail("the frame chain does not end at an entry frame");
		goto out;
	}
	/* The leaf lives in the used part of the data stack. */
	if (compat.ts_chunk != COMPAT_NONE && compat.ts_top != COMPAT_NONE) {
		if (compat_word(t, compat.ts_chunk, &chunk) == -1 ||
		    compat_word(t, compat.ts_top, &top) == -1 ||
		    compat_word(t, compat.ts_limit, &limit) == -1 ||
		    !(chunk < leaf && leaf < top && top <= limit &&
		    limit - chunk <= ((uintptr_t)1 << 30))) {
			compat_fail("data stack chunk, top and limit");
			goto out;
		}
	}
	rc = 0;
out:
	Py_XDECREF(pf);
	return (rc);
}

int
compat_load(void)
{
	const char	*want = getenv("PROFAGENT_LAYOUT");
	char		 names[128];

	compat = compat_built;
	compat_source = COMPAT_SRC_HEADERS;
	compat_moved = 0;
	compat_why[0] = '\0';
	if (want != NULL && *want == '\0')
		want = NULL;
	if (want != NULL && strcmp(want, "headers") != 0 &&
	    strcmp(want, "interpreter") != 0) {
		agent_warn("PROFAGENT_LAYOUT=%s: not one of headers, "
		    "interpreter; using the default", want);
		want = NULL;
	}
#if PY_VERSION_HEX >= 0x030d0000
	if (want == NULL || strcmp(want, "interpreter") == 0) {
		struct compat_layout l;

		if (compat_from_runtime(&l, want != NULL) == -1) {
			compat_source = COMPAT_SRC_NONE;
			agent_warn("direct reader off: %s; sampling with the "
			    "GIL reader", compat_why);
			return (-1);
		}
		compat = l;
		compat_source = COMPAT_SRC_RUNTIME;
		if ((compat_moved = compat_diff(&l, names, sizeof names)) > 0)
			agent_warn("this Python places %u fields elsewhere "
			    "than the headers the agent was built with (%s): "
			    "reading them where it says", compat_moved, names);
	}
#else
	if (want != NULL && strcmp(want, "interpreter") == 0)
		agent_log("PROFAGENT_LAYOUT=interpreter: Python %d.%d "
		    "publishes no debug offsets; using the headers",
		    PY_MAJOR_VERSION, PY_MINOR_VERSION);
	(void)names;
#endif
	if (compat_selfcheck() == -1) {
		/* The GIL reader reads the GIL's fields: never through a
		 * layout that failed. */
		compat = compat_built;
		compat_source = COMPAT_SRC_NONE;
		agent_warn("direct reader off: the %s layout fails its check "
		    "(%s); sampling with the GIL reader",
		    PY_VERSION_HEX >= 0x030d0000 && want == NULL ?
		    "interpreter's" : want != NULL ? want : "headers'",
		    compat_why);
		return (-1);
	}
	return (0);
}

/*
 * The asyncio task layout (3.14+).  The _asyncio extension publishes the
 * offsets of its TaskObj fields and of the thread and interpreter state's
 * task lists in a section of its own image named AsyncioDebug
 * (_Py_AsyncioModuleDebugOffsets: no cookie, every struct with its size),
 * not as a symbol: its address is the section's, found in the loaded
 * file's section headers, plus the image's load base.  Loaded on demand,
 * holding the GIL, once _asyncio is imported; read-only afterwards.
 */
#if PY_VERSION_HEX >= 0x030e0000
#include <elf.h>
#include <link.h>

#define COMPAT_ASYNCIO_SECTION	".AsyncioDebug"

/* Where the section may be: the _asyncio extension, or the interpreter
 * itself when it was built in (libpython, or the executable). */
#define COMPAT_IMAGES	4
struct compat_images {
	int		n;
	uintptr_t	base[COMPAT_IMAGES];
	uintptr_t	lo[COMPAT_IMAGES], hi[COMPAT_IMAGES];	/* loaded */
	char		path[COMPAT_IMAGES][512];
};

/* dl_iterate_phdr callback: notes the images that may hold the section,
 * _asyncio first. */
static int
compat_find_images(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct compat_images	*im = arg;
	const char		*name = info->dlpi_name, *base;
	int			 i, at;

	(void)size;
	if (im->n == COMPAT_IMAGES)
		return (1);
	if (name == NULL || name[0] == '\0')
		name = "/proc/self/exe";	/* the executable */
	base = strrchr(name, '/');
	base = base != NULL ? base + 1 : name;
	if (strncmp(base, "_asyncio.", 9) == 0)
		at = 0;
	else if (strncmp(base, "libpython", 9) == 0 ||
	    strcmp(name, "/proc/self/exe") == 0)
		at = im->n;
	else
		return (0);
	for (i = im->n; i > at; i--) {
		im->base[i] = im->base[i - 1];
		im->lo[i] = im->lo[i - 1];
		im->hi[i] = im->hi[i - 1];
		memcpy(im->path[i], im->path[i - 1], sizeof im->path[i]);
	}
	snprintf(im->path[at], sizeof im->path[at], "%s", name);
	im->base[at] = (uintptr_t)info->dlpi_addr;
	/* What the image maps: the section must lie there, or the file on
	 * disk is not the one loaded. */
	im->lo[at] = UINTPTR_MAX;
	im->hi[at] = 0;
	for (i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];

		if (ph->p_type != PT_LOAD)
			continue;
		if (info->dlpi_addr + ph->p_vaddr < im->lo[at])
			im->lo[at] = info->dlpi_addr + ph->p_vaddr;
		if (info->dlpi_addr + ph->p_vaddr + ph->p_memsz > im->hi[at])
			im->hi[at] = info->dlpi_addr + ph->p_vaddr +
			    ph->p_memsz;
	}
	im->n++;
	return (0);
}

/* The AsyncioDebug section's address in the image at base; 0 if none. */
static uintptr_t
compat_section(const char *path, uintptr_t base)
{
	Elf64_Ehdr	 eh;
	Elf64_Shdr	*sh = NULL;
	char		*names = NULL;
	uintptr_t	 addr = 0;
	size_t		 i;
	int		 fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return (0);
	if (pread(fd, &eh, sizeof eh, 0) != (ssize_t)sizeof eh ||
	    memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 ||
	    eh.e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh.e_shentsize != sizeof(Elf64_Shdr) || eh.e_shnum == 0 ||
	    eh.e_shnum > 4096 || eh.e_shstrndx >= eh.e_shnum)
		goto out;
	if ((sh = calloc(eh.e_shnum, sizeof *sh)) == NULL ||
	    pread(fd, sh, eh.e_shnum * sizeof *sh, (off_t)eh.e_shoff) !=
	    (ssize_t)(eh.e_shnum * sizeof *sh))
		goto out;
	if (sh[eh.e_shstrndx].sh_size == 0 ||
	    sh[eh.e_shstrndx].sh_size > (1u << 20) ||
	    (names = calloc(1, sh[eh.e_shstrndx].sh_size + 1)) == NULL ||
	    pread(fd, names, sh[eh.e_shstrndx].sh_size,
	    (off_t)sh[eh.e_shstrndx].sh_offset) !=
	    (ssize_t)sh[eh.e_shstrndx].sh_size)
		goto out;
	for (i = 0; i < eh.e_shnum; i++) {
		if (sh[i].sh_name >= sh[eh.e_shstrndx].sh_size ||
		    strcmp(names + sh[i].sh_name, COMPAT_ASYNCIO_SECTION) != 0)
			continue;
		if (sh[i].sh_size >= sizeof(struct compat_asyncio_offsets) &&
		    sh[i].sh_addr != 0)
			addr = base + (uintptr_t)sh[i].sh_addr;
		break;
	}
out:
	free(names);
	free(sh);
	close(fd);
	return (addr);
}

static int
compat_asyncio_find(void)
{
	struct compat_images		 im;
	struct compat_asyncio_offsets	 o;
	uintptr_t			 addr = 0;
	int				 i;

	if (compat_asyncio.ok)
		return (0);
	memset(&im, 0, sizeof im);
	dl_iterate_phdr(compat_find_images, &im);
	for (i = 0; i < im.n && addr == 0; i++) {
		addr = compat_section(im.path[i], im.base[i]);
		if (addr != 0 && (addr < im.lo[i] ||
		    addr + sizeof o > im.hi[i]))
			return (compat_fail("%s: the %s section lies outside "
			    "the loaded image (changed on disk?)", im.path[i],
			    COMPAT_ASYNCIO_SECTION));
	}
	if (addr == 0)
		return (compat_fail("no %s section in _asyncio or the "
		    "interpreter (import asyncio first)",
		    COMPAT_ASYNCIO_SECTION));
	if (compat_copy(&o, addr, sizeof o) == -1)
		return (compat_fail("%s section unreadable",
		    COMPAT_ASYNCIO_SECTION));
	/* Every offset inside its struct, every struct of a sane size. */
	if (o.task.size == 0 || o.task.size > COMPAT_STRUCT_MAX ||
	    o.task.name + 8 > o.task.size ||
	    o.task.awaited_by + 8 > o.task.size ||
	    o.task.is_task + 1 > o.task.size ||
	    o.task.awaited_by_is_set + 1 > o.task.size ||
	    o.task.coro + 8 > o.task.size || o.task.node + 16 > o.task.size ||
	    o.interp.size == 0 || o.interp.size > COMPAT_STRUCT_MAX ||
	    o.interp.tasks_head + 16 > o.interp.size ||
	    o.thread.size == 0 || o.thread.size > COMPAT_STRUCT_MAX ||
	    o.thread.running_loop + 8 > o.thread.size ||
	    o.thread.running_task + 8 > o.thread.size ||
	    o.thread.tasks_head + 16 > o.thread.size)
		return (compat_fail("%s: an offset lies outside its struct",
		    COMPAT_ASYNCIO_SECTION));
	compat_asyncio.off = o;
	compat_asyncio.ok = 1;
	return (0);
}

#else /* < 3.14 */

static int
compat_asyncio_find(void)
{
	return (compat_fail("Python %d.%d publishes no asyncio offsets "
	    "(3.14+)", PY_MAJOR_VERSION, PY_MINOR_VERSION));
}

#endif

/* Loads the asyncio offsets; its own reason in compat_asyncio.why, so that
 * compat_why keeps saying why the direct reader is off, if it is. */
int
compat_asyncio_load(void)
{
	char	keep[sizeof compat_why];
	int	rc;

	memcpy(keep, compat_why, sizeof keep);
	if ((rc = compat_asyncio_find()) == -1)
		memcpy(compat_asyncio.why, compat_why,
		    sizeof compat_asyncio.why);
	memcpy(compat_why, keep, sizeof compat_why);
	return (rc);
}

#else /* !COMPAT_SUPPORTED */

int
compat_load(void)
{
	snprintf(compat_why, sizeof compat_why, "no known layout for "
	    "Python %d.%d", PY_MAJOR_VERSION, PY_MINOR_VERSION);
	return (-1);
}

int
compat_asyncio_load(void)
{
	snprintf(compat_asyncio.why, sizeof compat_asyncio.why,
	    "no known layout for Python %d.%d", PY_MAJOR_VERSION,
	    PY_MINOR_VERSION);
	return (-1);
}

#endif /* COMPAT_SUPPORTED */
