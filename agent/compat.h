/*
 * compat.h -- the one place that knows CPython's private memory layouts.
 *
 * reader_direct.c reads thread states, frames and code objects by copying
 * bytes out of the interpreter without the GIL, so it needs the offsets of
 * the fields it follows.  compat_built holds them as the headers the agent
 * is compiled against say (offsetof() on the real structs; agent.mk builds
 * the agent once per interpreter, with -I<include>/internal).  compat.c
 * then fills `compat`, the layout in force, at import: on 3.13 and later
 * from the running interpreter's own _PyRuntime.debug_offsets, with the
 * headers as the cross-check, and checks the result against the importing
 * thread's own stack before the direct reader may use it.  Nothing outside
 * this file and compat.c may depend on PY_VERSION_HEX for a layout.
 *
 * Include this file first, before Python.h: the internal headers need
 * Py_BUILD_CORE, which must be seen by Python.h too.
 */
#ifndef COMPAT_H
#define COMPAT_H

#ifdef Py_PYTHON_H
#error "include compat.h before Python.h"
#endif

#include <patchlevel.h>	/* PY_VERSION_HEX */
#include <pyconfig.h>	/* build options; no Py_BUILD_CORE in it */

/*
 * Versions whose layouts are known here.  Elsewhere the direct reader is
 * built as a stub whose probe fails, and the agent uses the GIL reader.
 */
#ifdef Py_GIL_DISABLED
#error "profagent does not support free-threaded CPython (python3.Xt): build it for the GIL-enabled python3.X of the same release"
#endif
#if PY_VERSION_HEX >= 0x03090000 && PY_VERSION_HEX < 0x03100000 && \
    !defined(Py_TRACE_REFS)
#define COMPAT_SUPPORTED 1
#define Py_BUILD_CORE 1
#else
#define COMPAT_SUPPORTED 0
#endif

#include <Python.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#if COMPAT_SUPPORTED
#include <frameobject.h>

#include "internal/pycore_code.h"
#include "internal/pycore_interp.h"
#include "internal/pycore_pystate.h"
#include "internal/pycore_runtime.h"
#if PY_VERSION_HEX >= 0x030b0000
#include "internal/pycore_frame.h"
#endif
#if PY_VERSION_HEX >= 0x030e0000
#include "internal/pycore_interpframe_structs.h"
#include "internal/pycore_stackref.h"
#endif

/* How a frame says where it is. */
enum compat_instr {
	COMPAT_LASTI_BYTES,	/* 3.9: int f_lasti, bytes */
	COMPAT_LASTI_UNITS,	/* 3.10: int f_lasti, code units */
	COMPAT_PREV_INSTR,	/* 3.11, 3.12: pointer to the last unit run */
	COMPAT_INSTR_PTR,	/* 3.13: pointer to the current unit */
};

/* How a code object maps offsets to lines. */
enum compat_lines {
	COMPAT_LNOTAB,		/* 3.9: co_lnotab */
	COMPAT_LINETABLE,	/* 3.10: co_linetable, PEP 626 */
	COMPAT_LOCATIONS,	/* 3.11+: co_linetable, PEP 657 */
};

#define COMPAT_NONE	((size_t)-1)
/* Biggest code object and frame headers a layout may ask to copy. */
#define COMPAT_CODE_BYTES	512
#define COMPAT_FRAME_BYTES	512

/* Offsets of every field the direct reader follows. */
struct compat_layout {
	/* PyInterpreterState */
	size_t	interp_head;		/* first thread state */
	size_t	interp_gil;		/* 3.12+: struct _gil_runtime_state * */

	/* PyThreadState */
	size_t	ts_next;
	size_t	ts_interp;
	size_t	ts_thread_id;		/* pthread_t as unsigned long */
	size_t	ts_native_id;		/* kernel tid, or NONE (< 3.11) */
	size_t	ts_frame;		/* current frame, or NONE */
	size_t	ts_cframe;		/* 3.11/3.12: _PyCFrame *, or NONE */
	size_t	cframe_frame;		/* _PyCFrame.current_frame */
	size_t	ts_chunk;		/* datastack_chunk, or NONE */
	size_t	ts_top;			/* datastack_top */
	size_t	ts_limit;		/* datastack_limit */
	size_t	ts_read;		/* bytes to copy to see all of these */

	/* _PyStackChunk */
	size_t	chunk_data;

	/* Frame: PyFrameObject (< 3.11) or _PyInterpreterFrame. */
	int	frame_is_object;	/* has ob_type == &PyFrame_Type */
	size_t	frame_code;
	size_t	frame_previous;
	size_t	frame_instr;
	size_t	frame_owner;		/* or NONE */
	size_t	frame_read;
	uintptr_t frame_code_mask;	/* 3.14+: f_executable is a tagged
					   _PyStackRef; clears the tag bits */
	enum compat_instr instr;
	int	owner_generator;	/* FRAME_OWNED_BY_GENERATOR, or -1 */
	int	owner_shim;		/* 3.12+: owners from this value up are
					   the interpreter's own shim frames
					   (an entry frame ends every chain);
					   INT_MAX before */
	int	owner_max;		/* highest valid owner value */
	/* Before 3.12, whether a generator's frame at the bottom of a chain
	 * runs (resumed from C with no Python caller) or was copied
	 * suspended: 3.11 tells by the thread's C-level nesting (its current
	 * cframe's previous is its root cframe); 3.9/3.10 by the frame
	 * object (f_executing: not 0; f_state: FRAME_EXECUTING, 0). */
	size_t	cframe_previous;	/* 3.11: _PyCFrame.previous, or NONE */
	size_t	ts_root_cframe;		/* 3.11: PyThreadState.root_cframe */
	size_t	frame_is_entry;		/* 3.11: the first frame of a C-level
					   evaluation (is_entry), or NONE */
	size_t	frame_running;		/* 3.9/3.10, or NONE */
	int	running_nonzero;	/* 3.9: running when not 0 */

	/* PyCodeObject */
	size_t	code_name;		/* co_qualname (3.11+) or co_name */
	size_t	code_filename;
	size_t	code_firstlineno;
	size_t	code_lines;		/* bytes object of the line table */
	size_t	code_bytes;		/* 3.9/3.10: co_code bytes, or NONE */
	size_t	code_units;		/* 3.11+: ob_size in code units */
	size_t	code_adaptive;		/* 3.11+: start of the bytecode */
	size_t	code_firsttraceable;	/* 3.11+: int, or NONE */
	size_t	code_flags;		/* < 3.11: int co_flags, or NONE */
	size_t	code_read;
	enum compat_lines lines;

	/* PyBytesObject */
	size_t	bytes_size;
	size_t	bytes_data;

	/* struct _gil_runtime_state */
	size_t	gil_holder;
	size_t	gil_locked;
	size_t	gil_read;
	size_t	gil_cond;		/* a thread waits here to take it */
	size_t	gil_cond_end;
	size_t	gil_switch;		/* ... and here once it let it go */
	size_t	gil_switch_end;
};

/* Where the layout in force came from (compat.c). */
enum compat_source {
	COMPAT_SRC_NONE,	/* no usable layout: the direct reader is off */
	COMPAT_SRC_HEADERS,	/* the headers built against */
	COMPAT_SRC_RUNTIME,	/* the interpreter's _Py_DebugOffsets */
};

#define COMPAT_MAX2(a, b)	((a) > (b) ? (a) : (b))
#define COMPAT_MAX3(a, b, c)	COMPAT_MAX2(COMPAT_MAX2(a, b), c)
#define COMPAT_END(T, f)	(offsetof(T, f) + sizeof(((T *)0)->f))

#if PY_VERSION_HEX >= 0x030a0000
#define COMPAT_LINES_FIELD	co_linetable
#else
#define COMPAT_LINES_FIELD	co_lnotab
#endif

#if PY_VERSION_HEX >= 0x030b0000
#define COMPAT_TS_READ	COMPAT_MAX3(COMPAT_END(PyThreadState, next),	\
	COMPAT_MAX3(COMPAT_END(PyThreadState, interp),			\
	    COMPAT_END(PyThreadState, thread_id),			\
	    COMPAT_END(PyThreadState, native_thread_id)),		\
	COMPAT_END(PyThreadState, datastack_limit))
#else
#define COMPAT_TS_READ	COMPAT_MAX3(COMPAT_END(PyThreadState, next),	\
	COMPAT_END(PyThreadState, interp),				\
	COMPAT_MAX2(COMPAT_END(PyThreadState, thread_id),		\
	    COMPAT_END(PyThreadState, frame)))
#endif

static const struct compat_layout compat_built = {
#if PY_VERSION_HEX >= 0x030b0000
	.interp_head = offsetof(PyInterpreterState, threads.head),
#else
	.interp_head = offsetof(PyInterpreterState, tstate_head),
#endif
#if PY_VERSION_HEX >= 0x030c0000
	.interp_gil = offsetof(PyInterpreterState, ceval.gil),
#else
	.interp_gil = COMPAT_NONE,
#endif

	.ts_next = offsetof(PyThreadState, next),
	.ts_interp = offsetof(PyThreadState, interp),
	.ts_thread_id = offsetof(PyThreadState, thread_id),
#if PY_VERSION_HEX >= 0x030b0000
	.ts_native_id = offsetof(PyThreadState, native_thread_id),
	.ts_chunk = offsetof(PyThreadState, datastack_chunk),
	.ts_top = offsetof(PyThreadState, datastack_top),
	.ts_limit = offsetof(PyThreadState, datastack_limit),
	.chunk_data = offsetof(_PyStackChunk, data),
#else
	.ts_native_id = COMPAT_NONE,
	.ts_chunk = COMPAT_NONE,
	.ts_top = COMPAT_NONE,
	.ts_limit = COMPAT_NONE,
	.chunk_data = 0,
#endif
#if PY_VERSION_HEX >= 0x030d0000
	.ts_frame = offsetof(PyThreadState, current_frame),
	.ts_cframe = COMPAT_NONE,
	.cframe_frame = 0,
#elif PY_VERSION_HEX >= 0x030b0000
	.ts_frame = COMPAT_NONE,
	.ts_cframe = offsetof(PyThreadState, cframe),
	.cframe_frame = offsetof(_PyCFrame, current_frame),
#else
	.ts_frame = offsetof(PyThreadState, frame),
	.ts_cframe = COMPAT_NONE,
	.cframe_frame = 0,
#endif
	.ts_read = COMPAT_TS_READ,

#if PY_VERSION_HEX >= 0x030b0000
	.frame_is_object = 0,
	.frame_running = COMPAT_NONE,
#if PY_VERSION_HEX < 0x030c0000
	.cframe_previous = offsetof(_PyCFrame, previous),
	.ts_root_cframe = offsetof(PyThreadState, root_cframe),
	.frame_is_entry = offsetof(_PyInterpreterFrame, is_entry),
#else
	.cframe_previous = COMPAT_NONE,
	.frame_is_entry = COMPAT_NONE,
#endif
#if PY_VERSION_HEX >= 0x030e0000
	.frame_code_mask = ~(uintptr_t)Py_TAG_BITS,
#else
	.frame_code_mask = ~(uintptr_t)0,
#endif
#if PY_VERSION_HEX >= 0x030d0000
	.frame_code = offsetof(_PyInterpreterFrame, f_executable),
	.frame_instr = offsetof(_PyInterpreterFrame, instr_ptr),
	.instr = COMPAT_INSTR_PTR,
#else
	.frame_code = offsetof(_PyInterpreterFrame, f_code),
	.frame_instr = offsetof(_PyInterpreterFrame, prev_instr),
	.instr = COMPAT_PREV_INSTR,
#endif
	.frame_previous = offsetof(_PyInterpreterFrame, previous),
	.frame_owner = offsetof(_PyInterpreterFrame, owner),
	.frame_read = COMPAT_END(_PyInterpreterFrame, owner),
	.owner_generator = FRAME_OWNED_BY_GENERATOR,
#if PY_VERSION_HEX >= 0x030f0000
	.owner_shim = FRAME_OWNED_BY_INTERPRETER,
	.owner_max = FRAME_OWNED_BY_INTERPRETER,
#elif PY_VERSION_HEX >= 0x030e0000
	.owner_shim = FRAME_OWNED_BY_INTERPRETER,
	.owner_max = FRAME_OWNED_BY_CSTACK,
#elif PY_VERSION_HEX >= 0x030c0000
	.owner_shim = FRAME_OWNED_BY_CSTACK,
	.owner_max = FRAME_OWNED_BY_CSTACK,
#else
	.owner_shim = INT_MAX,
	.owner_max = FRAME_OWNED_BY_FRAME_OBJECT,
#endif
#else
	.frame_is_object = 1,
	.frame_code_mask = ~(uintptr_t)0,
	.frame_code = offsetof(PyFrameObject, f_code),
	.frame_previous = offsetof(PyFrameObject, f_back),
	.frame_instr = offsetof(PyFrameObject, f_lasti),
	.frame_owner = COMPAT_NONE,
	.cframe_previous = COMPAT_NONE,
	.frame_is_entry = COMPAT_NONE,
#if PY_VERSION_HEX >= 0x030a0000
	.frame_running = offsetof(PyFrameObject, f_state),
	.frame_read = COMPAT_MAX2(COMPAT_END(PyFrameObject, f_lasti),
	    COMPAT_END(PyFrameObject, f_state)),
#else
	.frame_running = offsetof(PyFrameObject, f_executing),
	.running_nonzero = 1,
	.frame_read = COMPAT_MAX2(COMPAT_END(PyFrameObject, f_lasti),
	    COMPAT_END(PyFrameObject, f_executing)),
#endif
#if PY_VERSION_HEX >= 0x030a0000
	.instr = COMPAT_LASTI_UNITS,
#else
	.instr = COMPAT_LASTI_BYTES,
#endif
	.owner_generator = -1,
	.owner_shim = INT_MAX,
	.owner_max = 0,
#endif

#if PY_VERSION_HEX >= 0x030b0000
	.code_name = offsetof(PyCodeObject, co_qualname),
	.code_lines = offsetof(PyCodeObject, co_linetable),
	.code_bytes = COMPAT_NONE,
	.code_units = offsetof(PyVarObject, ob_size),
	.code_adaptive = offsetof(PyCodeObject, co_code_adaptive),
	.code_firsttraceable = offsetof(PyCodeObject, _co_firsttraceable),
	.code_flags = COMPAT_NONE,
	.code_read = COMPAT_MAX3(COMPAT_END(PyCodeObject, co_qualname),
	    COMPAT_END(PyCodeObject, co_filename),
	    COMPAT_MAX3(COMPAT_END(PyCodeObject, co_linetable),
		COMPAT_END(PyCodeObject, co_firstlineno),
		COMPAT_END(PyCodeObject, _co_firsttraceable))),
	.lines = COMPAT_LOCATIONS,
#else
	.code_name = offsetof(PyCodeObject, co_name),
	.code_lines = offsetof(PyCodeObject, COMPAT_LINES_FIELD),
#if PY_VERSION_HEX >= 0x030a0000
	.lines = COMPAT_LINETABLE,
#else
	.lines = COMPAT_LNOTAB,
#endif
	.code_bytes = offsetof(PyCodeObject, co_code),
	.code_units = COMPAT_NONE,
	.code_adaptive = COMPAT_NONE,
	.code_firsttraceable = COMPAT_NONE,
	.code_flags = offsetof(PyCodeObject, co_flags),
	.code_read = COMPAT_MAX3(COMPAT_END(PyCodeObject, co_name),
	    COMPAT_MAX2(COMPAT_END(PyCodeObject, co_filename),
		COMPAT_END(PyCodeObject, co_flags)),
	    COMPAT_MAX3(COMPAT_END(PyCodeObject, co_code),
		COMPAT_END(PyCodeObject, co_firstlineno),
		COMPAT_END(PyCodeObject, COMPAT_LINES_FIELD))),
#endif
	.code_filename = offsetof(PyCodeObject, co_filename),
	.code_firstlineno = offsetof(PyCodeObject, co_firstlineno),

	.bytes_size = offsetof(PyVarObject, ob_size),
	.bytes_data = offsetof(PyBytesObject, ob_sval),

	.gil_holder = offsetof(struct _gil_runtime_state, last_holder),
	.gil_locked = offsetof(struct _gil_runtime_state, locked),
	.gil_read = COMPAT_MAX2(
	    COMPAT_END(struct _gil_runtime_state, last_holder),
	    COMPAT_END(struct _gil_runtime_state, locked)),
	.gil_cond = offsetof(struct _gil_runtime_state, cond),
	.gil_cond_end = COMPAT_END(struct _gil_runtime_state, cond),
	.gil_switch = offsetof(struct _gil_runtime_state, switch_cond),
	.gil_switch_end = COMPAT_END(struct _gil_runtime_state, switch_cond),
};

/* Address of the GIL when it is one per runtime (< 3.12), else 0. */
static inline uintptr_t
compat_gil_static(void)
{
#if PY_VERSION_HEX < 0x030c0000
	return (uintptr_t)&_PyRuntime.ceval.gil;
#else
	return 0;
#endif
}

/* pthread_t of the main thread, as CPython recorded it. */
static inline unsigned long
compat_main_thread(void)
{
	return _PyRuntime.main_thread;
}

/* compat.c: the layout in force, filled by compat_load (at import, with
 * the GIL) and read-only afterwards. */
extern struct compat_layout	compat;

#endif /* COMPAT_SUPPORTED */

#endif
