"""harness.py -- what every end-to-end test uses: a private profd in a temp
dir, profctl, and real Python processes with the real agent.

Tests are functions named test_* in tests/e2e/test_*.py taking a Ctx.
Functions marked @once run once per suite run (daemon/ctl only); the rest run
for every interpreter.
"""
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.path.join(ROOT, "bin")
WORKLOADS = os.path.join(ROOT, "tests", "workloads")


def _proto_version():
    """PROTO_VERSION, as proto/proto.h says: the newest version spoken."""
    with open(os.path.join(ROOT, "proto", "proto.h")) as f:
        for line in f:
            if line.startswith("#define PROTO_VERSION "):
                return int(line.split()[2])
    raise RuntimeError("no PROTO_VERSION in proto/proto.h")


PROTO_VERSION = _proto_version()


class TestFailure(Exception):
    pass


def once(fn):
    fn.once = True
    return fn


def check(cond, msg):
    if not cond:
        raise TestFailure(msg)


def wait_until(pred, timeout, what, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step)
    raise TestFailure("timed out after %.0fs waiting for %s" % (timeout, what))


class Ctx:
    """One test's world: a runtime dir, its daemon, the interpreter."""

    def __init__(self, python, agent_dir, sanitize=False):
        self.python = python
        self.agent_dir = agent_dir
        self.sanitize = sanitize
        self.tmp = tempfile.mkdtemp(prefix="profd-e2e-")
        self.rt = os.path.join(self.tmp, "rt")
        self.procs = []
        self.daemon = None
        self.daemon_log = os.path.join(self.tmp, "profd.log")

    # -- daemon -----------------------------------------------------------
    def start_daemon(self, *extra, wrap=None):
        cmd = [os.path.join(BIN, "profd"), "-r", self.rt] + list(extra)
        if wrap:
            cmd = wrap + cmd
        log = open(self.daemon_log, "ab")
        self.daemon = subprocess.Popen(cmd, stdout=log, stderr=log,
                                       env=self.daemon_env())
        self.procs.append(self.daemon)
        def answers():
            if self.daemon.poll() is not None:
                return True
            try:
                connect(self.sock("control.sock"), timeout=1).close()
                return True
            except OSError:
                return False
        wait_until(answers, 10, "profd to start")
        check(self.daemon.poll() is None,
              "profd exited at start-up: %s" % self.log_tail())
        return self.daemon

    def daemon_env(self):
        env = dict(os.environ)
        env.pop("PROFD_RUNTIME_DIR", None)
        env.setdefault("ASAN_OPTIONS", "abort_on_error=1")
        return env

    def stop_daemon(self, sig=signal.SIGTERM, timeout=10):
        d = self.daemon
        if d is None or d.poll() is not None:
            return d.returncode if d else None
        d.send_signal(sig)
        try:
            return d.wait(timeout)
        except subprocess.TimeoutExpired:
            d.kill()
            raise TestFailure("profd did not exit within %ds of signal %d"
                              % (timeout, sig))

    def sock(self, name):
        return os.path.join(self.rt, name)

    def log_tail(self, n=20):
        try:
            with open(self.daemon_log, "rb") as f:
                return "\n".join(f.read().decode(errors="replace")
                                 .splitlines()[-n:])
        except OSError:
            return ""

    # -- profctl ----------------------------------------------------------
    def ctl(self, *args, ok=True, timeout=30):
        cmd = [os.path.join(BIN, "profctl"), "-r", self.rt] + [str(a) for a in args]
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=timeout, universal_newlines=True)
        if ok and r.returncode != 0:
            raise TestFailure("%s exited %d: %s" % (" ".join(cmd[2:]),
                              r.returncode, r.stderr.strip()))
        return r

    def ctl_json(self, *args):
        r = self.ctl(*(list(args) + ["--format", "json"]))
        try:
            return json.loads(r.stdout)
        except ValueError as e:
            raise TestFailure("profctl %s printed bad JSON (%s): %r"
                              % (args[0], e, r.stdout[:300]))

    def wait_departed(self, pid, timeout=60):
        """Waits until profd has seen pid's agent go: one stream, read in
        order, so everything that agent sent is stored by then."""
        def gone():
            a = [x for x in self.ctl_json("status")["agents"]
                 if x["pid"] == pid]
            return a and not any(x["connected"] for x in a)
        wait_until(gone, timeout, "profd to see the agent of pid %d go" % pid)

    # -- agents -----------------------------------------------------------
    def agent_env(self, **extra):
        env = dict(os.environ)
        pp = [self.agent_dir]
        if env.get("PYTHONPATH"):
            pp.append(env["PYTHONPATH"])
        env["PYTHONPATH"] = os.pathsep.join(pp)
        env["PROFD_RUNTIME_DIR"] = self.rt
        env["PYTHONUNBUFFERED"] = "1"
        if self.sanitize:
            libs = []
            for lib in ("libasan.so", "libubsan.so"):
                p = subprocess.run(["gcc", "-print-file-name=" + lib],
                                   stdout=subprocess.PIPE,
                                   universal_newlines=True).stdout.strip()
                libs.append(p)
            env["LD_PRELOAD"] = " ".join(libs)
            env["ASAN_OPTIONS"] = "detect_leaks=0:abort_on_error=1"
        env.update({k: str(v) for k, v in extra.items()})
        return env

    def spawn(self, args, env=None, **kw):
        """Starts a process (list of args); output goes to a log file.
        The process and its children write in append mode, and the test
        reads through a descriptor of its own: a shared file offset moved
        by a read would make a write land over earlier lines."""
        path = os.path.join(self.tmp, "proc-%d.log" % len(self.procs))
        with open(path, "a") as out:
            p = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT,
                                 env=env if env is not None
                                 else self.agent_env(),
                                 universal_newlines=True, **kw)
        p.logpath = path
        self.procs.append(p)
        return p

    def run_agent(self, pyargs, service=None, env=None, **kw):
        """python -m profagent run -- python ARGS, started in the background."""
        args = [self.python, "-m", "profagent", "run"]
        if service:
            args += ["--service", service]
        args += ["--", self.python] + list(pyargs)
        return self.spawn(args, env=env, **kw)

    @staticmethod
    def output(p):
        with open(p.logpath, errors="replace") as f:
            return f.read()

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    pass
        shutil.rmtree(self.tmp, ignore_errors=True)


# -- raw protocol, for the bad-input tests -----------------------------------
def frame(payload):
    return struct.pack(">I", len(payload)) + payload


def connect(path, timeout=5):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(path)
    return s


def closed_by_peer(s, timeout=5):
    """True when the peer closes the connection within timeout."""
    s.settimeout(timeout)
    try:
        while True:
            d = s.recv(65536)
            if not d:
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False
