/*
 * module.c -- the CPython module profagent._profagent: attach/detach, the
 * local configuration, stats, thread names, and the fork and exit hooks.
 *
 * Every function here runs in a Python thread holding the GIL, which also
 * protects the module_* globals.  Nothing here raises into the host except
 * for bad arguments; a missing daemon is normal (the sampler reconnects).
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"
#include "rundir.h"
#include "sampling.h"

/* Shared with the sampler; see agent.h for who writes what. */
struct agent_stats	agent_stats;
struct agent_config	agent_config = {
	.profiling = 0,
	.rate_hz = PROTO_RATE_DEFAULT,
	.mode = PROTO_MODE_WALL,
	.reader = PROTO_READER_DEFAULT,
	.reader_default = PROTO_READER_DIRECT,
};
struct agent_ident	agent_ident;
uint32_t		agent_reader_active = PROTO_READER_DEFAULT;
int			agent_connected;

/* Protected by the GIL. */
static int		module_attached;	/* attach() called, no detach */
static int		module_atexit_done;	/* atexit handler registered */
static int		module_initialised;	/* tables, buffer, hooks */
/* Set once at import; read anywhere. */
static int		module_debug;
static int		module_quiet;		/* PROFAGENT_QUIET=1 */
/* Sampler thread, or a fork child's one thread. */
static int		module_announced;

/* One line to stderr, only with PROFAGENT_DEBUG set. */
void
agent_log(const char *fmt, ...)
{
	char	buf[512];
	va_list	ap;
	int	n;

	if (!module_debug)
		return;
	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	fprintf(stderr, "profagent[%ld]: %s\n", (long)getpid(), buf);
}

/* One line to stderr, debug or not. */
void
agent_warn(const char *fmt, ...)
{
	char	buf[512];
	va_list	ap;
	int	n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	fprintf(stderr, "profagent[%ld]: %s\n", (long)getpid(), buf);
}

/*
 * Says once per process where the agent connects and whether a profd
 * answered its first try (err 0) or why not: one line on stderr, from the
 * first connection attempt itself, so no extra connection is made.  Not
 * again in a fork child, nor with PROFAGENT_QUIET=1.  Sampler thread.
 */
void
agent_announce(int err)
{
	if (module_announced || module_quiet)
		return;
	module_announced = 1;
	if (err == 0)
		agent_warn("profd socket %s: profd answers",
		    agent_ident.sock_path);
	else
		agent_warn("profd socket %s: no profd answers (%s); samples "
		    "are buffered and dropped until one does",
		    agent_ident.sock_path, strerror(err));
}

/* Frees the argv copy. */
static void
module_argv_free(void)
{
	uint32_t	i;

	for (i = 0; i < agent_ident.argc; i++)
		free(agent_ident.argv[i]);
	free(agent_ident.argv);
	agent_ident.argv = NULL;
	agent_ident.argc = 0;
}

/* Adds one argv entry, truncated to what the protocol takes. */
static int
module_argv_add(const char *s, size_t len)
{
	char	*p;

	if (agent_ident.argc >= PROTO_MAX_ARGV)
		return (0);
	if (len > PROTO_MAX_STRING - 1)
		len = PROTO_MAX_STRING - 1;
	if ((p = malloc(len + 1)) == NULL)
		return (-1);
	memcpy(p, s, len);
	p[len] = '\0';
	agent_ident.argv[agent_ident.argc++] = p;
	return (0);
}

/* Copies sys.argv (else /proc/self/cmdline) for the hello. */
static int
module_argv_capture(void)
{
	PyObject	*argv, *item;
	Py_ssize_t	 i, n, len;
	const char	*s;
	char		 buf[8192];
	ssize_t		 got;
	int		 fd;

	module_argv_free();
	if ((agent_ident.argv = calloc(PROTO_MAX_ARGV,
	    sizeof *agent_ident.argv)) == NULL)
		return (-1);
	argv = PySys_GetObject("argv");		/* borrowed */
	if (argv != NULL && PyList_Check(argv) && PyList_GET_SIZE(argv) > 0) {
		n = PyList_GET_SIZE(argv);
		for (i = 0; i < n; i++) {
			item = PyList_GET_ITEM(argv, i);
			s = NULL;
			if (PyUnicode_Check(item) &&
			    (s = PyUnicode_AsUTF8AndSize(item, &len)) == NULL)
				PyErr_Clear();
			if (s == NULL) {
				s = "?";
				len = 1;
			}
			if (module_argv_add(s, (size_t)len) != 0)
				return (-1);
		}
		return (0);
	}
	if ((fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC)) == -1)
		return (0);
	got = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (got <= 0)
		return (0);
	buf[got] = '\0';
	for (s = buf; s < buf + got; s += strlen(s) + 1) {
		if (module_argv_add(s, strlen(s)) != 0)
			return (-1);
	}
	return (0);
}

/* Size of the outgoing buffer: $PROFAGENT_BUFFER_BYTES or the default. */
static size_t
module_buffer_bytes(void)
{
	const char		*s = getenv(AGENT_BUFFER_ENV);
	char			*end;
	unsigned long long	 v;

	if (s == NULL || *s == '\0')
		return (AGENT_BUFFER_DEFAULT);
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < AGENT_BUFFER_MIN ||
	    v > AGENT_BUFFER_MAX) {
		agent_log("ignoring %s=%s (%u..%u)", AGENT_BUFFER_ENV, s,
		    AGENT_BUFFER_MIN, AGENT_BUFFER_MAX);
		return (AGENT_BUFFER_DEFAULT);
	}
	return ((size_t)v);
}

/* The interpreter's version, "3.12.1". */
static void
module_python_version(void)
{
	const char	*v = Py_GetVersion();
	size_t		 n = strcspn(v, " ");

	if (n >= sizeof agent_ident.python)
		n = sizeof agent_ident.python - 1;
	memcpy(agent_ident.python, v, n);
	agent_ident.python[n] = '\0';
}

/* Last resort at interpreter exit: only tell the sampler to stop. */
static void
module_atexit_last(void)
{
	sampler_exit_flag();
}

/* In a fork child (pthread_atfork): a fresh agent, not yet running. */
static void
module_fork_child(void)
{
	sampler_fork_child();
	budget_fork_child();
	agent_ident.start_ns = agent_realtime_ns();
	module_announced = 1;	/* the parent said it */
}

/* Registers the Python atexit handler once. */
static int
module_register_atexit(PyObject *self)
{
	PyObject	*atexit_mod, *fn, *r;

	if (module_atexit_done)
		return (0);
	if ((atexit_mod = PyImport_ImportModule("atexit")) == NULL)
		return (-1);
	fn = PyObject_GetAttrString(self, "_atexit");
	if (fn == NULL) {
		Py_DECREF(atexit_mod);
		return (-1);
	}
	r = PyObject_CallMethod(atexit_mod, "register", "O", fn);
	Py_DECREF(fn);
	Py_DECREF(atexit_mod);
	if (r == NULL)
		return (-1);
	Py_DECREF(r);
	module_atexit_done = 1;
	return (0);
}

/* socket_path(runtime_dir=None): the agent socket's absolute path. */
static PyObject *
module_socket_path(PyObject *self, PyObject *args, PyObject *kw)
{
	static char	*kwlist[] = { "runtime_dir", NULL };
	const char	*dir = NULL;
	char		 rundir[4096], path[108];

	if (!PyArg_ParseTupleAndKeywords(args, kw, "|z:socket_path", kwlist,
	    &dir))
		return (NULL);
	if (rundir_resolve_client(dir, RUNDIR_AGENT_SOCK, rundir,
	    sizeof rundir) != 0 ||
	    rundir_socket(rundir, RUNDIR_AGENT_SOCK, path, sizeof path) != 0) {
		PyErr_Format(PyExc_ValueError,
		    "profagent: runtime directory path too long: %s",
		    dir ? dir : "(default)");
		return (NULL);
	}
	return (PyUnicode_FromString(path));
}

/*
 * Takes the settings profd last published in its runtime directory
 * (sampling.h), unless this process has had a CONFIG: the sampler then
 * samples from its first tick, and the first CONFIG decides what becomes
 * of those samples (conn.c).  No file, or one that fails a check (said
 * with PROFAGENT_DEBUG): the local settings stay until the CONFIG.
 */
static void
module_published(const char *rundir)
{
	struct sampling	s;
	char		err[4096 + 128];

	if (conn_configured())
		return;
	if (sampling_read(rundir, &s, err, sizeof err) != 0) {
		if (errno != ENOENT)
			agent_log("ignoring profd's published settings: %s",
			    err);
		return;
	}
	AGENT_STORE(agent_config.rate_hz, s.rate_hz);
	AGENT_STORE(agent_config.mode, s.mode);
	AGENT_STORE(agent_config.reader, s.reader);
	AGENT_STORE(agent_config.jitter_pct, s.jitter_pct);
	budget_set(s.max_overhead_bp);
	if (s.profiling)
		conn_early();
	AGENT_STORE(agent_config.profiling, s.profiling);
	agent_log("profd's published settings: profiling %s, %u Hz, mode %s",
	    s.profiling ? "on" : "off", s.rate_hz, proto_mode_name(s.mode));
}

/* attach(runtime_dir=None, service=None): starts sampling support. */
static PyObject *
module_attach(PyObject *self, PyObject *args, PyObject *kw)
{
	static char	*kwlist[] = { "runtime_dir", "service", NULL };
	const char	*dir = NULL, *service = NULL;
	char		 rundir[4096], err[512];
	int		 rc;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "|zz:attach", kwlist,
	    &dir, &service))
		return (NULL);
	if (module_attached && sampler_running())
		Py_RETURN_NONE;
	if (rundir_resolve_client(dir, RUNDIR_AGENT_SOCK, rundir,
	    sizeof rundir) != 0 ||
	    rundir_socket(rundir, RUNDIR_AGENT_SOCK, agent_ident.sock_path,
	    sizeof agent_ident.sock_path) != 0) {
		PyErr_Format(PyExc_ValueError,
		    "profagent: runtime directory path too long: %s",
		    dir ? dir : rundir);
		return (NULL);
	}
	/* A directory others can write to may hold anyone's socket: stacks
	 * and argv would go to whoever put it there.  Never attach there. */
	if (rundir_check(rundir, 0, err, sizeof err) != 0 && errno == EPERM) {
		fprintf(stderr, "profagent[%ld]: not attaching: %s\n",
		    (long)getpid(), err);
		Py_RETURN_NONE;
	}
	if (service == NULL || *service == '\0')
		service = "python";
	snprintf(agent_ident.service, sizeof agent_ident.service, "%s",
	    service);
	if (gethostname(agent_ident.host, sizeof agent_ident.host) != 0)
		snprintf(agent_ident.host, sizeof agent_ident.host, "?");
	agent_ident.host[sizeof agent_ident.host - 1] = '\0';
	module_python_version();
	if (agent_ident.start_ns == 0)
		agent_ident.start_ns = agent_realtime_ns();
	if (module_argv_capture() != 0)
		return (PyErr_NoMemory());

	if (!module_initialised) {
		if (intern_init() != 0 || conn_init(module_buffer_bytes()) != 0)
			return (PyErr_NoMemory());
		budget_env();
		(void)Py_AtExit(module_atexit_last);
		module_initialised = 1;
	}
	module_published(rundir);
	if (module_register_atexit(self) != 0)
		return (NULL);
	/* The sampler starts with a fresh hello (service, argv, reader). */
	if ((rc = sampler_start()) != 0)
		return (PyErr_SetFromErrno(PyExc_OSError));
	module_attached = 1;
	agent_log("attached: %s, service %s", agent_ident.sock_path,
	    agent_ident.service);
	Py_RETURN_NONE;
}

/* Stops the sampler (GIL released while joining) and hangs up. */
static void
module_stop(int last_flush)
{
	if (!sampler_running())
		return;
	Py_BEGIN_ALLOW_THREADS
	sampler_stop(last_flush);
	Py_END_ALLOW_THREADS
	conn_drop(agent_now_ns(), "detached");
}

/* detach(): stops sampling and closes the connection. */
static PyObject *
module_detach(PyObject *self, PyObject *unused)
{
	module_stop(1);
	module_attached = 0;
	Py_RETURN_NONE;
}

/* _atexit(): interpreter exit; a last bounded flush, then stop. */
static PyObject *
module_atexit(PyObject *self, PyObject *unused)
{
	module_stop(1);
	Py_RETURN_NONE;
}

/* _after_fork_child(): restarts the sampler in a fork child. */
static PyObject *
module_after_fork_child(PyObject *self, PyObject *unused)
{
	int	rc;

	if (!module_attached || sampler_running())
		Py_RETURN_NONE;
	(void)module_argv_capture();
	if ((rc = sampler_start()) != 0)
		agent_log("cannot restart the sampler after fork: %s",
		    strerror(errno));
	Py_RETURN_NONE;
}

/* _set_thread_name(native_id, name, ident=0). */
static PyObject *
module_set_thread_name(PyObject *self, PyObject *args)
{
	unsigned long long	 native_id, ident = 0;
	const char		*name;
	Py_ssize_t		 len;

	if (!PyArg_ParseTuple(args, "Ks#|K:_set_thread_name", &native_id,
	    &name, &len, &ident))
		return (NULL);
	intern_set_thread_name(native_id, ident, name, (size_t)len);
	Py_RETURN_NONE;
}

/* _hide_code(code): keeps frames of an agent function out of every stack;
 * False when the table is full.  The reference taken is never given back:
 * the address must stay that code object's for good. */
static PyObject *
module_hide_code(PyObject *self, PyObject *code)
{
	int	rc;

	if (!PyCode_Check(code)) {
		PyErr_SetString(PyExc_TypeError, "_hide_code: not a code object");
		return (NULL);
	}
	if ((rc = reader_hide((uintptr_t)code)) < 0)
		Py_RETURN_FALSE;
	if (rc > 0)
		Py_INCREF(code);
	Py_RETURN_TRUE;
}

/* Parses a reader name ("default", "gil", "direct"). */
static int
module_parse_reader(const char *s, uint32_t *out)
{
	int	r;

	if ((r = proto_reader_parse(s)) < 0) {
		PyErr_Format(PyExc_ValueError,
		    "profagent: unknown reader '%s' (default, gil, direct)", s);
		return (-1);
	}
	*out = (uint32_t)r;
	return (0);
}

/* configure(rate=, mode=, reader=, profiling=, default_reader=): local
 * settings, until the daemon says otherwise. */
static PyObject *
module_configure(PyObject *self, PyObject *args, PyObject *kw)
{
	static char	*kwlist[] = { "rate", "mode", "reader", "profiling",
			    "default_reader", NULL };
	PyObject	*rate_o = Py_None, *prof_o = Py_None;
	const char	*mode_s = NULL, *reader_s = NULL, *def_s = NULL;
	unsigned long	 rate = 0;
	uint32_t	 reader = 0, def = 0;
	int		 mode = -1, prof = -1;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "|OzzOz:configure", kwlist,
	    &rate_o, &mode_s, &reader_s, &prof_o, &def_s))
		return (NULL);
	if (rate_o != Py_None) {
		rate = PyLong_AsUnsignedLong(rate_o);
		if (PyErr_Occurred() || rate < PROTO_RATE_MIN ||
		    rate > PROTO_RATE_MAX) {
			PyErr_Clear();
			PyErr_Format(PyExc_ValueError,
			    "profagent: rate must be %u..%u Hz",
			    PROTO_RATE_MIN, PROTO_RATE_MAX);
			return (NULL);
		}
	}
	if (mode_s != NULL && (mode = proto_mode_parse(mode_s)) < 0) {
		PyErr_Format(PyExc_ValueError,
		    "profagent: unknown mode '%s' (wall, cpu, gil)", mode_s);
		return (NULL);
	}
	if (reader_s != NULL && module_parse_reader(reader_s, &reader) != 0)
		return (NULL);
	if (def_s != NULL && module_parse_reader(def_s, &def) != 0)
		return (NULL);
	if (prof_o != Py_None && (prof = PyObject_IsTrue(prof_o)) < 0)
		return (NULL);

	if (rate_o != Py_None)
		AGENT_STORE(agent_config.rate_hz, (uint32_t)rate);
	if (mode >= 0)
		AGENT_STORE(agent_config.mode, (uint32_t)mode);
	if (reader_s != NULL)
		AGENT_STORE(agent_config.reader, reader);
	if (def_s != NULL)
		AGENT_STORE(agent_config.reader_default,
		    def == PROTO_READER_DEFAULT ? PROTO_READER_DIRECT : def);
	if (prof >= 0)
		AGENT_STORE(agent_config.profiling, prof);
	sampler_wake();
	Py_RETURN_NONE;
}

/* Sets d[key] = v, stealing v; -1 on error. */
static int
module_dict_set(PyObject *d, const char *key, PyObject *v)
{
	int	rc;

	if (v == NULL)
		return (-1);
	rc = PyDict_SetItemString(d, key, v);
	Py_DECREF(v);
	return (rc);
}

/* stats(): counters and state as a dict. */
static PyObject *
module_stats(PyObject *self, PyObject *unused)
{
	PyObject	*d;
	const char	*s;

	if ((d = PyDict_New()) == NULL)
		return (NULL);
#define MODULE_STAT(name, desc)						\
	if (module_dict_set(d, #name, PyLong_FromUnsignedLongLong(	\
	    AGENT_LOAD(agent_stats.name))) != 0)			\
		goto fail;
	PROTO_AGENT_STATS(MODULE_STAT)
#undef MODULE_STAT
	if (module_dict_set(d, "attached",
	    PyBool_FromLong(module_attached && sampler_running())) != 0 ||
	    module_dict_set(d, "connected",
	    PyBool_FromLong(AGENT_LOAD(agent_connected))) != 0 ||
	    module_dict_set(d, "profiling",
	    PyBool_FromLong(AGENT_LOAD(agent_config.profiling))) != 0 ||
	    module_dict_set(d, "rate", PyLong_FromUnsignedLong(
	    AGENT_LOAD(agent_config.rate_hz))) != 0)
		goto fail;
	s = proto_mode_name(AGENT_LOAD(agent_config.mode));
	if (module_dict_set(d, "mode", PyUnicode_FromString(s ? s : "?")) != 0)
		goto fail;
	s = proto_reader_name(AGENT_LOAD(agent_reader_active));
	if (module_dict_set(d, "reader",
	    PyUnicode_FromString(s ? s : "?")) != 0)
		goto fail;
	if (module_dict_set(d, "layout_why",
	    PyUnicode_FromString(compat_why)) != 0 ||
	    module_dict_set(d, "socket",
	    PyUnicode_FromString(agent_ident.sock_path)) != 0 ||
	    module_dict_set(d, "pid", PyLong_FromLong((long)getpid())) != 0)
		goto fail;
	return (d);
fail:
	Py_DECREF(d);
	return (NULL);
}

/*
 * _asyncio_layout(): the _asyncio module's published offsets (3.14+) as a
 * dict, loading them if need be; raises RuntimeError saying why not.
 */
static PyObject *
module_asyncio_layout(PyObject *self, PyObject *unused)
{
	const struct compat_asyncio_offsets *o = &compat_asyncio.off;

	if (compat_asyncio_load() == -1) {
		PyErr_SetString(PyExc_RuntimeError, compat_asyncio.why);
		return (NULL);
	}
	return (Py_BuildValue("{s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,"
	    "s:K,s:K}",
	    "task_size", o->task.size, "task_name", o->task.name,
	    "task_awaited_by", o->task.awaited_by,
	    "task_is_task", o->task.is_task,
	    "task_awaited_by_is_set", o->task.awaited_by_is_set,
	    "task_coro", o->task.coro, "task_node", o->task.node,
	    "interp_size", o->interp.size,
	    "interp_tasks_head", o->interp.tasks_head,
	    "thread_size", o->thread.size,
	    "thread_running_loop", o->thread.running_loop,
	    "thread_running_task", o->thread.running_task,
	    "thread_tasks_head", o->thread.tasks_head));
}

/* direct_available(): whether reader_direct is linked in. */
static PyObject *
module_direct_available(PyObject *self, PyObject *unused)
{
	extern const struct reader reader_direct __attribute__((weak));

	return (PyBool_FromLong(&reader_direct != NULL));
}

static PyMethodDef module_methods[] = {
	{ "attach", (PyCFunction)(void (*)(void))module_attach,
	  METH_VARARGS | METH_KEYWORDS,
	  "attach(runtime_dir=None, service=None): start the agent." },
	{ "detach", module_detach, METH_NOARGS,
	  "detach(): stop the agent and close the connection." },
	{ "stats", module_stats, METH_NOARGS,
	  "stats(): the agent's counters and state." },
	{ "configure", (PyCFunction)(void (*)(void))module_configure,
	  METH_VARARGS | METH_KEYWORDS,
	  "configure(rate=, mode=, reader=, profiling=, default_reader=)." },
	{ "socket_path", (PyCFunction)(void (*)(void))module_socket_path,
	  METH_VARARGS | METH_KEYWORDS,
	  "socket_path(runtime_dir=None): where the agent connects." },
	{ "direct_available", module_direct_available, METH_NOARGS,
	  "direct_available(): whether the direct reader is built in." },
	{ "_asyncio_layout", module_asyncio_layout, METH_NOARGS,
	  "_asyncio_layout(): _asyncio's published offsets (3.14+)." },
	{ "_set_thread_name", module_set_thread_name, METH_VARARGS,
	  "_set_thread_name(native_id, name, ident=0)." },
	{ "_hide_code", module_hide_code, METH_O,
	  "_hide_code(code): leave frames of this code out of stacks." },
	{ "_after_fork_child", module_after_fork_child, METH_NOARGS,
	  "_after_fork_child(): restart in a fork child." },
	{ "_atexit", module_atexit, METH_NOARGS,
	  "_atexit(): stop at interpreter exit." },
	{ NULL, NULL, 0, NULL },
};

static struct PyModuleDef module_def = {
	PyModuleDef_HEAD_INIT,
	.m_name = "profagent._profagent",
	.m_doc = "profagent's native sampler.",
	.m_size = -1,
	.m_methods = module_methods,
};

/* Module init: fork handlers once per process. */
PyMODINIT_FUNC
PyInit__profagent(void)
{
	static int	 forks_hooked;
	const char	*dbg = getenv("PROFAGENT_DEBUG");

	module_debug = dbg != NULL && *dbg != '\0' && strcmp(dbg, "0") != 0;
	dbg = getenv("PROFAGENT_QUIET");
	module_quiet = dbg != NULL && strcmp(dbg, "1") == 0;
	if (!forks_hooked) {
		if (pthread_atfork(sampler_fork_prepare, sampler_fork_parent,
		    module_fork_child) != 0) {
			PyErr_SetString(PyExc_OSError,
			    "profagent: pthread_atfork failed");
			return (NULL);
		}
		forks_hooked = 1;
		/* Once per process, holding the GIL, before any sampling. */
		compat_load();
		AGENT_STORE(agent_stats.layout, (uint64_t)compat_source);
		AGENT_STORE(agent_stats.layout_moved, (uint64_t)compat_moved);
	}
	return (PyModule_Create(&module_def));
}
