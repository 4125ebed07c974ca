/*
 * reader_gil.c -- reads stacks through CPython's public C API while
 * holding the GIL.  Slow to get in under CPU load (the sampler waits for the
 * GIL like any thread) but works on every interpreter.
 *
 * Code objects: every one seen is held by a strong reference, so its
 * address cannot be reused while the interner knows it, and what defines it
 * (qualname, file, first line) is copied at the first capture that sees it,
 * under the GIL, so code() never needs the GIL.  The held set is bounded:
 * near full it is released whole (under the GIL) and the serial numbers used
 * as fingerprints change, so the interner sees every address as new.
 * forget() does nothing: references are only dropped with the GIL held, by
 * the reader itself.
 *
 * GIL flag: the thread holding the GIL just before the sampler asks for it
 * is the one that was running Python; compat.h says where the GIL's
 * last_holder is.
 *
 * All state here belongs to the sampler thread.
 */

#define PY_SSIZE_T_CLEAN
#include "compat.h"	/* first: Python.h with the internal layouts */

#include <stdlib.h>
#include <string.h>

#include <sched.h>

#include "agent.h"

#define READER_GIL_MAX_CODES	(1u << 16)
/* Room for the new code objects of one tick (more: counted invalid). */
#define READER_GIL_HEADROOM	8192

struct reader_gil_code {
	uintptr_t	 addr;
	PyObject	*code;		/* strong reference */
	uint64_t	 serial;
	int32_t		 firstline;
	char		*qualname;
	char		*filename;
};

/* Sampler thread only. */
static struct reader_gil_code	*reader_gil_codes;	/* open addressing */
static uint32_t			 reader_gil_count;
static uint64_t			 reader_gil_serial;
static PyThreadState		*reader_gil_ts;		/* the sampler's */
static PyGILState_STATE		 reader_gil_gstate;

/* Hash of an address. */
static uint32_t
reader_gil_hash(uintptr_t a)
{
	uint64_t	h = (uint64_t)a;

	h ^= h >> 29;
	h *= 0xbf58476d1ce4e5b9ull;
	h ^= h >> 32;
	return ((uint32_t)h);
}

/* The entry for an address, or NULL. */
static struct reader_gil_code *
reader_gil_find(uintptr_t addr)
{
	struct reader_gil_code	*c;
	uint32_t		 i;

	if (reader_gil_codes == NULL)
		return (NULL);
	for (i = reader_gil_hash(addr);; i++) {
		c = &reader_gil_codes[i & (READER_GIL_MAX_CODES - 1)];
		if (c->addr == 0)
			return (NULL);
		if (c->addr == addr)
			return (c);
	}
}

/* Releases every held code object; GIL held. */
static void
reader_gil_release_all(void)
{
	struct reader_gil_code	*c;
	uint32_t		 i;

	if (reader_gil_codes == NULL)
		return;
	for (i = 0; i < READER_GIL_MAX_CODES; i++) {
		c = &reader_gil_codes[i];
		if (c->addr == 0)
			continue;
		Py_XDECREF(c->code);
		free(c->qualname);
		free(c->filename);
	}
	memset(reader_gil_codes, 0,
	    READER_GIL_MAX_CODES * sizeof *reader_gil_codes);
	reader_gil_count = 0;
}

/* Copies a str object to a new C string ("?" if it is not one). */
static char *
reader_gil_strdup(PyObject *o)
{
	const char	*s = NULL;
	Py_ssize_t	 n = 0;
	char		*p;

	if (o != NULL && PyUnicode_Check(o)) {
		s = PyUnicode_AsUTF8AndSize(o, &n);
		if (s == NULL)
			PyErr_Clear();
	}
	if (s == NULL) {
		s = "?";
		n = 1;
	}
	if (n >= READER_NAME_MAX)
		n = READER_NAME_MAX - 1;
	if ((p = malloc((size_t)n + 1)) == NULL)
		return (NULL);
	memcpy(p, s, (size_t)n);
	p[n] = '\0';
	return (p);
}

/* Holds a code object and copies what defines it; GIL held. */
static int
reader_gil_hold(PyCodeObject *code)
{
	struct reader_gil_code	*c;
	uintptr_t		 addr = (uintptr_t)code;
	uint32_t		 i;

	if (reader_gil_find(addr) != NULL)
		return (0);
	if (reader_gil_codes == NULL) {
		reader_gil_codes = calloc(READER_GIL_MAX_CODES,
		    sizeof *reader_gil_codes);
		if (reader_gil_codes == NULL)
			return (-1);
	}
	if (reader_gil_count + 1 >= READER_GIL_MAX_CODES / 4 * 3)
		return (-1);
	for (i = reader_gil_hash(addr);; i++) {
		c = &reader_gil_codes[i & (READER_GIL_MAX_CODES - 1)];
		if (c->addr == 0)
			break;
	}
#if PY_VERSION_HEX >= 0x030B0000
	c->qualname = reader_gil_strdup(code->co_qualname);
#else
	c->qualname = reader_gil_strdup(code->co_name);
#endif
	c->filename = reader_gil_strdup(code->co_filename);
	if (c->qualname == NULL || c->filename == NULL) {
		free(c->qualname);
		free(c->filename);
		c->qualname = c->filename = NULL;
		return (-1);
	}
	Py_INCREF(code);
	c->code = (PyObject *)code;
	c->addr = addr;
	c->firstline = code->co_firstlineno;
	c->serial = ++reader_gil_serial;
	reader_gil_count++;
	return (0);
}

/* Works everywhere. */
static int
reader_gil_probe(void)
{
	return (0);
}

/* Whether taking the GIL now could end this thread (interpreter gone). */
static int
reader_gil_finalizing(void)
{
	if (!Py_IsInitialized())
		return (1);
#if PY_VERSION_HEX >= 0x030D0000
	return (Py_IsFinalizing());
#else
	return (_Py_IsFinalizing());
#endif
}

/* The GIL's state, or 0. */
static uintptr_t
reader_gil_addr(void)
{
	uintptr_t	 gil = compat_gil_static();
	PyInterpreterState *interp;

	if (gil == 0 && compat.interp_gil != COMPAT_NONE &&
	    (interp = PyInterpreterState_Main()) != NULL)
		gil = __atomic_load_n((uintptr_t *)((char *)interp +
		    compat.interp_gil), __ATOMIC_RELAXED);
	return (gil);
}

/* The thread state holding the GIL now, 0 if none, 1 if unknown.  A racy
 * read of memory that lives as long as the interpreter: only a hint. */
static uintptr_t
reader_gil_holder(void)
{
	uintptr_t	 gil = reader_gil_addr();

	if (gil == 0)
		return (1);
	if (!__atomic_load_n((int *)(gil + compat.gil_locked),
	    __ATOMIC_RELAXED))
		return (0);
	return (__atomic_load_n((uintptr_t *)(gil + compat.gil_holder),
	    __ATOMIC_RELAXED));
}

/* Reads one thread's frames but the agent's own, leaf first; -1 if a code
 * could not be held. */
static int
reader_gil_walk(PyThreadState *t, struct reader_thread *rt)
{
	PyFrameObject	*f, *back;
	PyCodeObject	*code;
	int		 bad = 0;

	rt->depth = 0;
	rt->hashed = 0;
	rt->truncated = 0;
	f = PyThreadState_GetFrame(t);
	while (f != NULL) {
		if (rt->depth == PROTO_MAX_DEPTH) {
			rt->truncated = 1;
			Py_DECREF(f);
			break;
		}
		code = PyFrame_GetCode(f);
		if (!reader_hidden((uintptr_t)code)) {
			if (reader_gil_hold(code) != 0)
				bad = 1;
			rt->frames[rt->depth].code = (uintptr_t)code;
			rt->frames[rt->depth].loc = PyFrame_GetLineNumber(f);
			rt->depth++;
		}
		Py_DECREF(code);
		back = PyFrame_GetBack(f);
		Py_DECREF(f);
		f = back;
	}
	return (bad ? -1 : 0);
}

/*
 * The thread that held the GIL when the tick asked for it either was
 * stopped running Python (at an eval-breaker check; it now waits on the
 * GIL's condition to take it back) or let the GIL go to sleep or block
 * meanwhile.  Both first wait on the GIL's switch condition until this
 * capture takes the GIL, so the answer waits for the thread to move on:
 * a few reads of its /proc syscall file, READER_GIL_SETTLE at most; if it
 * does not move, it counts as running, the likelier case.  Called holding
 * the GIL.
 */
static void
reader_gil_settle(struct reader_thread *rt)
{
	uintptr_t	gil = reader_gil_addr(), a = 0;
	int		i, k;

	if (gil == 0)
		return;
	for (i = 0; i < READER_GIL_SETTLE; i++) {
		k = reader_task_syscall(rt->native_id, &a);
		if (k == -1)
			return;
		if (k == READER_TASK_FUTEX && a >= gil + compat.gil_cond &&
		    a < gil + compat.gil_cond_end)
			return;			/* stopped running Python */
		if (k == READER_TASK_CALL || (k == READER_TASK_FUTEX &&
		    !(a >= gil + compat.gil_switch &&
		    a < gil + compat.gil_switch_end))) {
			rt->gil = 0;		/* asleep or blocked */
			rt->offcpu = 1;
			return;
		}
		sched_yield();
	}
}

/* Captures every other Python thread under the GIL. */
static int
reader_gil_capture(struct reader_thread *out, int max,
    struct reader_window *w, uint64_t *invalid)
{
	PyInterpreterState	*interp;
	PyThreadState		*t;
	struct reader_thread	*rt;
	uintptr_t		 holder;
	int			 n = 0;

	if (reader_gil_finalizing())
		return (-1);
	holder = reader_gil_holder();
	if (reader_gil_ts == NULL) {
		/* No thread state left (a fork child whose one thread ended):
		 * making one now would reuse the interpreter's first one. */
		interp = PyInterpreterState_Main();
		if (interp == NULL ||
		    PyInterpreterState_ThreadHead(interp) == NULL)
			return (0);
		reader_gil_gstate = PyGILState_Ensure();
		reader_gil_ts = PyThreadState_Get();
	} else
		PyEval_RestoreThread(reader_gil_ts);

	if (reader_gil_count > READER_GIL_MAX_CODES / 4 * 3 -
	    READER_GIL_HEADROOM)
		reader_gil_release_all();
	interp = PyThreadState_GetInterpreter(reader_gil_ts);
	reader_window_begin(w, max, compat_main_thread());
	for (t = PyInterpreterState_ThreadHead(interp); t != NULL;
	    t = PyThreadState_Next(t)) {
		if (t == reader_gil_ts)
			continue;
		if (!reader_window_take(w, t->thread_id,
		    holder != 1 && holder == (uintptr_t)t))
			continue;
		rt = &out[n];
		if (reader_gil_walk(t, rt) != 0) {
			(*invalid)++;
			continue;
		}
		if (rt->depth == 0)
			continue;
		rt->ident = t->thread_id;
#if PY_VERSION_HEX >= 0x030B0000
		rt->native_id = t->native_thread_id;
#else
		rt->native_id = intern_native_of_ident(t->thread_id);
#endif
		rt->gil = holder == 1 ? -1 : holder == (uintptr_t)t;
		rt->offcpu = 0;
		if (rt->gil == 1)
			reader_gil_settle(rt);
		n++;
	}
	reader_window_end(w);
	PyErr_Clear();
	PyEval_SaveThread();
	return (n);
}

/* Copies out what defines a held code object. */
static int
reader_gil_code(uintptr_t addr, struct reader_code *rc)
{
	struct reader_gil_code	*c;

	if ((c = reader_gil_find(addr)) == NULL)
		return (-1);
	snprintf(rc->qualname, sizeof rc->qualname, "%s", c->qualname);
	snprintf(rc->filename, sizeof rc->filename, "%s", c->filename);
	rc->firstline = c->firstline;
	rc->fingerprint = c->serial;
	return (0);
}

/* The serial number under which the address is held, or 0. */
static uint64_t
reader_gil_fingerprint(uintptr_t addr)
{
	struct reader_gil_code	*c;

	if ((c = reader_gil_find(addr)) == NULL)
		return (0);
	return (c->serial);
}

/* Locations are line numbers already. */
static int32_t
reader_gil_line(uintptr_t code, int32_t loc)
{
	return (loc);
}

/* References are dropped by the reader itself, under the GIL. */
static void
reader_gil_forget(uintptr_t code)
{
}

/* At sampler exit, Python alive: drop every reference and the sampler's
 * thread state. */
void
reader_gil_thread_exit(void)
{
	if (reader_gil_ts == NULL) {
		if (reader_gil_count == 0 || reader_gil_finalizing())
			return;
		reader_gil_gstate = PyGILState_Ensure();
		reader_gil_release_all();
		PyGILState_Release(reader_gil_gstate);
		return;
	}
	PyEval_RestoreThread(reader_gil_ts);
	reader_gil_release_all();
	reader_gil_ts = NULL;
	PyGILState_Release(reader_gil_gstate);
}

/* In a fork child: the sampler's thread state died with the thread. */
void
reader_gil_fork_child(void)
{
	reader_gil_ts = NULL;
}

const struct reader reader_gil = {
	.name = "gil",
	.id = PROTO_READER_GIL,
	.loc = READER_LOC_LINE,
	.probe = reader_gil_probe,
	.capture = reader_gil_capture,
	.code = reader_gil_code,
	.fingerprint = reader_gil_fingerprint,
	.line = reader_gil_line,
	.forget = reader_gil_forget,
};
