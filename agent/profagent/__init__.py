"""profagent: the in-process agent of profd.

    import profagent
    profagent.attach(service="web")     # connect to profd, sample when told

The native sampler thread (profagent._profagent) captures the stacks of every
Python thread and streams them to profd over its Unix socket.  It never
blocks, crashes or raises into the host: with no daemon it buffers within a
bound, counts what it drops and reconnects.

Environment:
  PROFAGENT_SERVICE       service name (default: the script's name)
  PROFD_RUNTIME_DIR       profd's runtime directory (agent.sock)
  PROFAGENT_READER        gil | direct (default: direct where it works)
  PROFAGENT_LAYOUT        headers | interpreter: where the direct reader takes
                          CPython's struct offsets from (default: the
                          interpreter's debug offsets on 3.13+, else headers)
  PROFAGENT_RATE          local default rate in Hz, until profd says otherwise
  PROFAGENT_BUFFER_BYTES  outgoing buffer bound (default 4 MiB)
  PROFAGENT_DEBUG         1: log connection events to stderr
  PROFAGENT_QUIET         1: no line on stderr naming the socket
"""

import os
import sys
import threading

import sysconfig as _sysconfig

if _sysconfig.get_config_var("Py_GIL_DISABLED"):
    raise ImportError(
        "profagent does not support free-threaded Python (%s, built with "
        "--disable-gil): run your program with the GIL-enabled python%d.%d "
        "of the same release, or without profagent"
        % (sys.executable, sys.version_info[0], sys.version_info[1]))

try:
    from . import _profagent
except ImportError as _e:
    raise ImportError("profagent has no native module for Python %d.%d in %s "
                      "(build it: make agent PYTHON=python%d.%d)"
                      % (sys.version_info[0], sys.version_info[1],
                         os.path.dirname(os.path.abspath(__file__)),
                         sys.version_info[0], sys.version_info[1])) from _e

__all__ = ["attach", "detach", "stats", "configure", "probe"]

_hooks_installed = False


def _hide(*funcs):
    """Keeps the agent's own frames out of every profile: the sampler skips
    frames running these functions' (or code objects') code.  For code
    that runs on the host's threads without the host calling it."""
    for f in funcs:
        try:
            _profagent._hide_code(getattr(f, "__code__", f))
        except Exception:
            pass


def _default_service():
    argv0 = sys.argv[0] if getattr(sys, "argv", None) else ""
    if argv0 in ("", "-c", "-m"):
        return "python"
    name = os.path.basename(argv0)
    if name.endswith(".py"):
        name = name[:-3]
    return name or "python"


def _name_thread(thread):
    try:
        native = getattr(thread, "native_id", None)
        if native is None:
            return
        _profagent._set_thread_name(native, thread.name, thread.ident or 0)
    except Exception:
        pass


def _name_current():
    try:
        _profagent._set_thread_name(threading.get_native_id(),
                                    threading.current_thread().name,
                                    threading.get_ident())
    except Exception:
        pass


def _thread_ending():
    """A thread started by threading ends.  If it is the process's first
    thread (a fork child made by a thread other than the main one), the
    process ends with it unless other threads run: stop the sampler now,
    with its last flush, rather than let it notice later."""
    try:
        if threading.get_native_id() != os.getpid():
            return
        me = threading.current_thread()
        if any(t is not me and t.is_alive() for t in threading.enumerate()):
            return
        _profagent._atexit()
    except Exception:
        pass


class _Token(object):
    """Keeps multiprocessing's after-fork registration alive."""


_mp_token = _Token()


def _mp_finalize(_token):
    """In a multiprocessing fork worker: its exit (os._exit after running
    multiprocessing's finalizers) skips atexit, so flush from a finalizer."""
    try:
        util = sys.modules["multiprocessing.util"]
        util.Finalize(None, _profagent._atexit, exitpriority=-1000)
    except Exception:
        pass


def _after_fork_child():
    _name_current()
    _profagent._after_fork_child()
    util = sys.modules.get("multiprocessing.util")
    if util is not None:
        # Runs after the worker clears its inherited finalizers.
        try:
            util.register_after_fork(_mp_token, _mp_finalize)
        except Exception:
            pass


def _install_hooks():
    """Names threads as they start; restarts the sampler in fork children."""
    global _hooks_installed
    if _hooks_installed:
        return
    _hooks_installed = True
    original = threading.Thread._bootstrap_inner

    def _bootstrap_inner(self):
        try:
            _profagent._set_thread_name(threading.get_native_id(),
                                        self.name, threading.get_ident())
        except Exception:
            pass
        try:
            return original(self)
        finally:
            _thread_ending()

    _hide(_bootstrap_inner)
    threading.Thread._bootstrap_inner = _bootstrap_inner
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_after_fork_child)


_hide(_name_current, _thread_ending, _mp_finalize, _after_fork_child)


def _configure_from_env():
    reader = os.environ.get("PROFAGENT_READER", "").strip().lower()
    if reader:
        try:
            _profagent.configure(default_reader=reader)
        except ValueError as e:
            print("profagent: ignoring PROFAGENT_READER: %s" % e,
                  file=sys.stderr)
    rate = os.environ.get("PROFAGENT_RATE", "").strip()
    if rate:
        try:
            _profagent.configure(rate=int(rate))
        except ValueError as e:
            print("profagent: ignoring PROFAGENT_RATE=%s: %s" % (rate, e),
                  file=sys.stderr)


def probe(path):
    """Whether a profd answers on the agent socket at path: (True, "") or
    (False, why).  Connects and hangs up at once: profd sees one more
    connection (agents_accepted) that ends before its hello, quietly."""
    import socket
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(1.0)
        s.connect(path)
        return True, ""
    except OSError as e:
        return False, e.strerror or str(e)
    finally:
        s.close()


_hide(probe)


def attach(service=None, runtime_dir=None):
    """Starts the agent (idempotent).  A missing daemon is not an error."""
    service = service or os.environ.get("PROFAGENT_SERVICE") or \
        _default_service()
    env_dir = os.environ.get("PROFD_RUNTIME_DIR")
    runtime_dir = runtime_dir or env_dir or None
    if runtime_dir:
        # Relative to the directory we start in, for good: the host may
        # chdir, and its children inherit the variable.
        runtime_dir = os.path.abspath(runtime_dir)
        if env_dir and not os.path.isabs(env_dir):
            os.environ["PROFD_RUNTIME_DIR"] = os.path.abspath(env_dir)
    _configure_from_env()
    _install_hooks()
    main = threading.main_thread()
    if main.native_id is not None:
        _profagent._set_thread_name(main.native_id, "MainThread",
                                    main.ident or 0)
    for t in threading.enumerate():
        if t is not main:
            _name_thread(t)
    _profagent.attach(runtime_dir, service)


def detach():
    """Stops the agent and closes the connection to profd."""
    _profagent.detach()


def stats():
    """The agent's counters and state, as a dict."""
    return _profagent.stats()


def configure(rate=None, mode=None, reader=None, profiling=None):
    """Local settings (tests, no daemon); profd's CONFIG overrides them."""
    _profagent.configure(rate=rate, mode=mode, reader=reader,
                         profiling=profiling)
