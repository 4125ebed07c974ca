"""python -m profagent: run a command with the agent in every Python process.

    python -m profagent run [--service NAME] [--runtime-dir DIR] -- CMD ARGS...
    python -m profagent status [--runtime-dir DIR]
"""

import argparse
import os
import sys

USAGE = """\
usage: python -m profagent run [--service NAME] [--runtime-dir DIR] -- CMD [ARGS...]
       python -m profagent status [--runtime-dir DIR]

run     runs CMD with profagent attached to it and to every Python process it
        starts (children, multiprocessing fork and spawn workers); exits with
        CMD's exit code.  Start sampling with `profctl start`.
status  prints the agent socket's path, whether a profd answers there, and
        (with the agent attached in this process) its state and counters;
        exits 0 if a profd answers, else 1.

Environment: PROFAGENT_SERVICE, PROFD_RUNTIME_DIR, PROFAGENT_READER (gil|direct),
PROFAGENT_RATE (Hz), PROFAGENT_BUFFER_BYTES, PROFAGENT_DEBUG=1,
PROFAGENT_QUIET=1 (no line on stderr naming the socket).
"""


def _run(argv):
    p = argparse.ArgumentParser(
        prog="python -m profagent run",
        description="Run CMD with profagent attached to every Python "
        "process it starts; exits with CMD's exit code.")
    p.add_argument("--service", help="service name reported to profd "
                   "(default: $PROFAGENT_SERVICE, else the script name)")
    p.add_argument("--runtime-dir", metavar="DIR",
                   help="profd's runtime directory (default: "
                   "$PROFD_RUNTIME_DIR, else profd's default)")
    p.add_argument("cmd", nargs=argparse.REMAINDER,
                   help="-- CMD [ARGS...]")
    args = p.parse_args(argv)
    cmd = args.cmd
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    if not cmd:
        p.error("no command given: python -m profagent run -- CMD [ARGS...]")

    pkg = os.path.dirname(os.path.abspath(__file__))
    top = os.path.dirname(pkg)
    boot = os.path.join(pkg, "_boot")
    env = os.environ
    path = [top, boot]
    if env.get("PYTHONPATH"):
        path += [x for x in env["PYTHONPATH"].split(os.pathsep)
                 if x not in (top, boot)]
    env["PYTHONPATH"] = os.pathsep.join(path)
    env["PROFAGENT_AUTO"] = "1"
    if args.service:
        env["PROFAGENT_SERVICE"] = args.service
    if args.runtime_dir:
        env["PROFD_RUNTIME_DIR"] = os.path.abspath(args.runtime_dir)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvp(cmd[0], cmd)
    except FileNotFoundError:
        print("profagent: %s: command not found" % cmd[0], file=sys.stderr)
        return 127
    except PermissionError:
        print("profagent: %s: permission denied" % cmd[0], file=sys.stderr)
        return 126
    except OSError as e:
        print("profagent: cannot run %s: %s" % (cmd[0], e), file=sys.stderr)
        return 126


def _status(argv):
    p = argparse.ArgumentParser(
        prog="python -m profagent status",
        description="Prints where the agent connects (the agent socket's "
        "absolute path), whether a profd answers there, and, if the agent "
        "is attached in this process, whether it is connected and its "
        "counters.  Exits 0 if a profd answers, else 1.")
    p.add_argument("--runtime-dir", metavar="DIR",
                   help="profd's runtime directory (default: "
                   "$PROFD_RUNTIME_DIR, else profd's default)")
    args = p.parse_args(argv)
    try:
        from . import _profagent
    except ImportError as e:
        print("profagent: not built for Python %d.%d: %s"
              % (sys.version_info[0], sys.version_info[1], e),
              file=sys.stderr)
        return 1
    from . import probe
    st = _profagent.stats()
    attached = st.get("attached") and not args.runtime_dir
    path = st["socket"] if attached else \
        _profagent.socket_path(args.runtime_dir)
    ok, why = probe(path)
    print("profagent for Python %s" % sys.version.split()[0])
    print("direct reader built in: %s"
          % ("yes" if _profagent.direct_available() else "no"))
    print("socket: %s" % path)
    print("profd: %s" % ("answers" if ok else "does not answer (%s)" % why))
    if not attached:
        print("agent: not attached in this process (pid %d)" % os.getpid())
        return 0 if ok else 1
    print("agent: attached, %s, profiling %s, reader %s, mode %s, rate %d Hz"
          % ("connected" if st["connected"] else "not connected",
             "on" if st["profiling"] else "off", st["reader"], st["mode"],
             st["rate"]))
    skip = ("attached", "connected", "profiling", "reader", "mode", "rate",
            "socket", "pid")
    for k in sorted(k for k in st if k not in skip):
        print("  %-16s %s" % (k, st[k]))
    return 0 if ok else 1


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        sys.stdout.write(USAGE)
        return 0 if argv else 2
    if argv[0] == "run":
        return _run(argv[1:])
    if argv[0] == "status":
        return _status(argv[1:])
    sys.stderr.write("profagent: unknown command '%s'\n%s" % (argv[0], USAGE))
    return 2


if __name__ == "__main__":
    # An agent already attached here (a run inside a run) must not show
    # this launcher, which lives only until it execs CMD.
    from . import _hide
    _hide(sys._getframe().f_code, main, _run)
    sys.exit(main())
