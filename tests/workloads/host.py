"""host.py -- host applications that try to get hurt by the agent
(tests/e2e/test_host.py).  Run under `python -m profagent run`.

  integrity MODE DIR SECONDS   MODE closerange: os.closerange(3, 4096);
                               MODE agentfds: closes the agent's descriptors
                               by number (from /proc/self/fd).  Then opens
                               its own socketpair, pipe, log file and Unix
                               socket server/client and checks for SECONDS
                               that every byte through them is its own.
                               Waits for DIR/done, prints RESULT {json}.
  reuse DIR N                  os.closerange(3, 1024) once a round, then
                               opens its own eventfd, pipe, socketpair,
                               timerfd and /proc/self/mem on the freed
                               numbers (the agent's old ones), in a new
                               order each round, and signals or writes each
                               N times, leaving each signalled for a few
                               sampler ticks before taking it back.  Prints
                               ROUNDS-DONE, waits for DIR/done, prints
                               RESULT {json}.
  threads N SECONDS [DIR]      N threads, each in its own function, and the
                               main thread in main_thread_own_function, for
                               SECONDS or until DIR/done exists.
  work DIR SECONDS             CPU-bound work; prints RESULT {json} with the
                               work rate per second, RSS and the agent's
                               counters (if attached).
"""
import ctypes
import json
import os
import socket
import struct
import sys
import threading
import time

REC = 64


def agent():
    try:
        import profagent
        return profagent if profagent.stats()["attached"] else None
    except Exception:
        return None


def wait_sampling(pa, timeout=120):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        st = pa.stats()
        if st["profiling"] and st["connected"] and st["samples"] > 50:
            return st
        time.sleep(0.05)
    raise SystemExit("agent never started sampling: %r" % (pa.stats(),))


def sampler_cpu_ns():
    """CPU time of the agent's thread (named profagent), from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    for tid in os.listdir("/proc/self/task"):
        try:
            with open("/proc/self/task/%s/stat" % tid) as f:
                st = f.read()
        except OSError:
            continue
        comm = st[st.index("(") + 1:st.rindex(")")]
        if comm == "profagent":
            f = st[st.rindex(")") + 2:].split()
            return (int(f[11]) + int(f[12])) * 1000000000 // tick
    return None


def agent_fds():
    """Descriptors above 2 right now: before the app opens any, the agent's."""
    fds = []
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd <= 2:
            continue
        try:
            target = os.readlink("/proc/self/fd/%d" % fd)
        except OSError:
            continue        # the listing's own descriptor, gone
        fds.append((fd, target))
    return fds


def rec(i, kind):
    r = ("%010d %s " % (i, kind)).encode()
    return r + b"." * (REC - 1 - len(r)) + b"\n"


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        d = s.recv(n - len(buf))
        if not d:
            raise AssertionError("peer closed")
        buf += d
    return buf


def read_exact(fd, n):
    buf = b""
    while len(buf) < n:
        d = os.read(fd, n - len(buf))
        if not d:
            raise AssertionError("pipe closed")
        buf += d
    return buf


def integrity(mode, d, seconds):
    pa = agent()
    st0 = wait_sampling(pa)
    before = agent_fds()
    if mode == "closerange":
        os.closerange(3, 4096)
    else:
        for fd, _ in before:
            try:
                os.close(fd)
            except OSError:
                pass
    # The host's own descriptors, at once, on the numbers just freed.
    a, b = socket.socketpair()
    pr, pw = os.pipe()
    log = os.path.join(d, "app.log")
    lf = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(os.path.join(d, "app.sock"))
    srv.listen(1)
    cl = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    cl.connect(os.path.join(d, "app.sock"))
    sv, _ = srv.accept()
    for s in (a, b, cl, sv):
        s.settimeout(10)
    mine = [a.fileno(), b.fileno(), pr, pw, lf, srv.fileno(), cl.fileno(),
            sv.fileno()]
    ident = {fd: (os.fstat(fd).st_dev, os.fstat(fd).st_ino) for fd in mine}
    print("CLOSED %s before=%r mine=%r" % (mode, before, mine), flush=True)

    cpu0, t0 = sampler_cpu_ns(), time.monotonic()
    errors = []
    i = 0
    end = t0 + seconds
    try:
        while time.monotonic() < end:
            r = rec(i, "pair")
            a.sendall(r)
            got = recv_exact(b, REC)
            if got != r:
                errors.append("socketpair %d: %r" % (i, got))
            b.sendall(r)
            got = recv_exact(a, REC)
            if got != r:
                errors.append("socketpair back %d: %r" % (i, got))
            r = rec(i, "pipe")
            os.write(pw, r)
            got = read_exact(pr, REC)
            if got != r:
                errors.append("pipe %d: %r" % (i, got))
            os.write(lf, rec(i, "log"))
            r = rec(i, "unix")
            cl.sendall(r)
            got = recv_exact(sv, REC)
            if got != r:
                errors.append("unix %d: %r" % (i, got))
            sv.sendall(r)
            got = recv_exact(cl, REC)
            if got != r:
                errors.append("unix back %d: %r" % (i, got))
            if len(errors) > 5:
                break
            i += 1
            if i % 64 == 0:
                time.sleep(0.001)   # let the sampler run in between
    except Exception as e:
        errors.append("round %d: %s: %s" % (i, type(e).__name__, e))
    wall = time.monotonic() - t0
    cpu1 = sampler_cpu_ns()
    for fd in mine:
        try:
            st = os.fstat(fd)
            if (st.st_dev, st.st_ino) != ident[fd]:
                errors.append("fd %d changed under the app" % fd)
        except OSError as e:
            errors.append("fd %d closed under the app: %s" % (fd, e))
    os.close(lf)
    with open(log, "rb") as f:
        data = f.read()
    want = b"".join(rec(k, "log") for k in range(i))
    if data != want and data != want + rec(i, "log"):
        errors.append("log file has %d bytes, not exactly our %d records"
                      % (len(data), i))
    # Nothing left unread on our descriptors (no stray bytes came in).
    for s in (a, b, cl, sv):
        s.setblocking(False)
        try:
            extra = s.recv(4096)
            errors.append("stray bytes on a socket: %r" % extra[:64])
        except BlockingIOError:
            pass
    os.set_blocking(pr, False)
    try:
        extra = os.read(pr, 4096)
        errors.append("stray bytes in the pipe: %r" % extra[:64])
    except BlockingIOError:
        pass
    # Stay alive (and sampled) until the test has seen samples arrive.
    end = time.monotonic() + 120
    while time.monotonic() < end and not os.path.exists(os.path.join(d, "done")):
        time.sleep(0.05)
    st1 = pa.stats()
    print("RESULT " + json.dumps({
        "records": i, "errors": errors, "wall": wall,
        "sampler_cpu_ns": (cpu1 - cpu0) if cpu0 is not None and cpu1 is not None else None,
        "stats0": st0, "stats1": st1}), flush=True)


class Reused:
    """One kind of descriptor the host opens on a freed number: signal(i)
    leaves it readable, take(i) takes the signal back and says whether it
    was all there and only it."""

    def __init__(self, kind):
        self.kind = kind
        if kind == "eventfd":
            self.ends = [eventfd()]
        elif kind == "pipe":
            r, w = os.pipe()
            os.set_blocking(r, False)
            self.ends = [r, w]
        elif kind == "socket":
            a, b = socket.socketpair()
            b.setblocking(False)
            self.ends = [b.detach(), a.detach()]
        elif kind == "timerfd":
            self.ends = [timerfd()]
        elif kind == "procmem":
            # Seeked somewhere of its own: a check that seeks it shows.
            self.ends = [os.open("/proc/self/mem", os.O_RDONLY)]
            self.pos = id(self) & ~0xfff
            os.lseek(self.ends[0], self.pos, os.SEEK_SET)
        self.ident = [(os.fstat(fd).st_dev, os.fstat(fd).st_ino)
                      for fd in self.ends]

    def signal(self, i):
        if self.kind in ("eventfd",):
            os.write(self.ends[0], struct.pack("=Q", 1))
        elif self.kind in ("pipe", "socket"):
            os.write(self.ends[1], rec(i, self.kind))
        elif self.kind == "timerfd":
            timerfd_arm(self.ends[0], 200000)

    def take(self, i):
        try:
            if self.kind in ("eventfd", "timerfd"):
                return struct.unpack("=Q", os.read(self.ends[0], 8))[0] == 1
            if self.kind in ("pipe", "socket"):
                return os.read(self.ends[0], 4096) == rec(i, self.kind)
        except BlockingIOError:
            return False
        return True

    def intact(self):
        """What is wrong with it now: changed, moved, or stray input."""
        bad = []
        for fd, ident in zip(self.ends, self.ident):
            try:
                st = os.fstat(fd)
                if (st.st_dev, st.st_ino) != ident:
                    bad.append("%s fd %d changed" % (self.kind, fd))
            except OSError as e:
                bad.append("%s fd %d closed: %s" % (self.kind, fd, e))
        if bad:
            return bad
        if self.kind == "procmem" and \
                os.lseek(self.ends[0], 0, os.SEEK_CUR) != self.pos:
            bad.append("procmem fd %d moved" % self.ends[0])
        for fd in self.ends if self.kind in ("pipe", "socket") else ():
            os.set_blocking(fd, False)
            try:
                extra = os.read(fd, 4096)
                bad.append("stray bytes on %s fd %d: %r"
                           % (self.kind, fd, extra[:64]))
            except OSError:
                pass    # nothing to read, or a write end
        if self.kind in ("eventfd", "timerfd"):
            try:
                os.read(self.ends[0], 8)
                bad.append("%s fd %d signalled by someone else"
                           % (self.kind, self.ends[0]))
            except BlockingIOError:
                pass
        return bad


def libc():
    return ctypes.CDLL(None, use_errno=True)


def eventfd():
    if hasattr(os, "eventfd"):
        return os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
    fd = libc().eventfd(0, os.O_NONBLOCK | os.O_CLOEXEC)
    if fd < 0:
        raise OSError(ctypes.get_errno(), "eventfd")
    return fd


def timerfd():
    """A non-blocking CLOCK_MONOTONIC timerfd (os has it from 3.13 only)."""
    if hasattr(os, "timerfd_create"):
        return os.timerfd_create(time.CLOCK_MONOTONIC,
                                 flags=os.TFD_NONBLOCK | os.TFD_CLOEXEC)
    fd = libc().timerfd_create(time.CLOCK_MONOTONIC,
                               os.O_NONBLOCK | os.O_CLOEXEC)
    if fd < 0:
        raise OSError(ctypes.get_errno(), "timerfd_create")
    return fd


def timerfd_arm(fd, ns):
    """Arms fd to expire once, ns from now."""
    if hasattr(os, "timerfd_settime_ns"):
        os.timerfd_settime_ns(fd, initial=ns)
        return
    spec = (ctypes.c_long * 4)(0, 0, ns // 1000000000, ns % 1000000000)
    if libc().timerfd_settime(fd, 0, spec, None) != 0:
        raise OSError(ctypes.get_errno(), "timerfd_settime")


KINDS = ("eventfd", "pipe", "socket", "timerfd", "procmem")


def reuse(d, n):
    pa = agent()
    st0 = wait_sampling(pa)
    rounds = []
    mine = []
    for r in range(len(KINDS)):
        theirs = [fd for fd, _ in agent_fds()
                  if fd not in {e for k in mine for e in k.ends}]
        os.closerange(3, 1024)
        # A new descriptor takes the lowest free number: with the numbers
        # below each of the agent's old ones filled, the next kind in turn
        # (a different one first each round) gets it.
        order = KINDS[r:] + KINDS[:r]
        mine, fill = [], []
        for a in sorted(theirs):
            if any(a in k.ends for k in mine):
                continue
            fd = os.open(os.devnull, os.O_RDONLY)
            while fd < a:
                fill.append(fd)
                fd = os.open(os.devnull, os.O_RDONLY)
            os.close(fd)
            mine.append(Reused(order[len(mine) % len(order)]))
        while len(mine) < len(KINDS):
            mine.append(Reused(order[len(mine)]))
        for fd in fill:
            os.close(fd)
        got = {}
        for k in mine:
            for fd in k.ends:
                if fd in theirs:
                    got.setdefault(k.kind, []).append(fd)
        taken = {}
        t0 = time.monotonic()
        for i in range(n):
            for k in mine:
                k.signal(i)
            time.sleep(0.002)   # a sampler tick or so, signalled
            for k in mine:
                taken[k.kind] = taken.get(k.kind, 0) + k.take(i)
        errors = [e for k in mine for e in k.intact()]
        rounds.append({"agent_fds": theirs, "reused": got, "taken": taken,
                       "count": {x: sum(k.kind == x for k in mine)
                                 for x in KINDS},
                       "errors": errors, "seconds": time.monotonic() - t0})
        print("ROUND %d agent had %r, host got %r, took back %r%s"
              % (r, theirs, got, taken,
                 ", " + "; ".join(errors) if errors else ""), flush=True)
    # A fork child (the agent's fork handlers ran in it) still has them all.
    pid = os.fork()
    if pid == 0:
        os._exit(1 if any(k.intact() for k in mine) else 0)
    _, status = os.waitpid(pid, 0)
    st1 = pa.stats()
    print("ROUNDS-DONE", flush=True)
    # Stay alive (and sampled) until the test has seen samples arrive.
    end = time.monotonic() + 120
    while time.monotonic() < end and not os.path.exists(os.path.join(d, "done")):
        time.sleep(0.05)
    st2 = pa.stats()
    print("RESULT " + json.dumps({
        "n": n, "rounds": rounds, "child_ok": status == 0,
        "errors": [e for k in mine for e in k.intact()],
        "stats0": st0, "stats1": st1, "stats2": st2}), flush=True)


def threads(n, seconds, d=None):
    stop = threading.Event()
    ready = threading.Barrier(n + 1)
    ns = {"time": time, "ready": ready}
    ts = []
    for k in range(n):
        src = ("def thread_own_function_%d(stop):\n"
               "    ready.wait()\n"
               "    while not stop.is_set():\n"
               "        time.sleep(0.002)\n" % k)
        exec(src, ns)
        t = threading.Thread(target=ns["thread_own_function_%d" % k],
                             args=(stop,), name="own-%d" % k)
        t.start()
        ts.append(t)
    ready.wait()
    print("STARTED %d" % n, flush=True)
    main_thread_own_function(stop, seconds, d and os.path.join(d, "done"))
    for t in ts:
        t.join()


def main_thread_own_function(stop, seconds, done=None):
    end = time.monotonic() + seconds
    x = 0
    while time.monotonic() < end:
        x += 1
        if done and x % 100000 == 0 and os.path.exists(done):
            break
    stop.set()


def work_unit():
    s = 0
    for k in range(2000):
        s += k * k
    return s


def work(d, seconds):
    pa = agent()
    # The measured host and its baseline both run this loop on one CPU,
    # the same one (the agent's thread, started before, keeps its own):
    # they get equal shares of it, and whatever else takes that CPU, the
    # VM's neighbours included, slows both alike.
    os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})
    rates = []
    cpu = []        # this thread's CPU seconds, per slot
    other = []      # the other threads' (the agent's), per slot
    rss = []
    max_gap = 0.0
    t0 = last = time.monotonic()
    slot_end = t0 + 1.0
    c0, p0 = time.thread_time(), time.process_time()
    n = 0
    while True:
        work_unit()
        n += 1
        now = time.monotonic()
        max_gap = max(max_gap, now - last)
        last = now
        if now >= slot_end:
            rates.append(n)
            c1, p1 = time.thread_time(), time.process_time()
            cpu.append(c1 - c0)
            other.append((p1 - p0) - (c1 - c0))
            c0, p0 = c1, p1
            n = 0
            slot_end += 1.0
            with open("/proc/self/statm") as f:
                rss.append(int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE"))
            if now - t0 >= seconds:
                break
    print("RESULT " + json.dumps({
        "rates": rates, "cpu": cpu, "other": other, "rss": rss,
        "max_gap": max_gap,
        "stats": pa.stats() if pa else None}), flush=True)


if __name__ == "__main__":
    what = sys.argv[1]
    if what == "integrity":
        integrity(sys.argv[2], sys.argv[3], float(sys.argv[4]))
    elif what == "reuse":
        reuse(sys.argv[2], int(sys.argv[3]))
    elif what == "threads":
        threads(int(sys.argv[2]), float(sys.argv[3]),
                sys.argv[4] if len(sys.argv) > 4 else None)
    elif what == "work":
        work(sys.argv[2], float(sys.argv[3]))
    else:
        raise SystemExit("unknown case " + what)
