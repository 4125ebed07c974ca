"""Load and bad input: deadlines that a byte does not reset, idle
connections at the limits, many partial frames, a million definitions,
clients that never read, the fd limit, garbage.  In every case the daemon
keeps serving others, stays within its memory bound and counts the case.

All daemon-only (@once).  Figures are printed for the README ("Load and bad
input").
"""
import fcntl
import json
import os
import select
import signal
import socket
import struct
import termios
import threading
import time

from fakeagent import (FakeAgent, HELLO, SAMPLES, STRING, frame as msg_frame,
                       pack)
from harness import (TestFailure, check, closed_by_peer, connect, frame, once,
                     wait_until)

REQUEST = 300
MIB = 1 << 20


def status(ctx):
    return ctx.ctl_json("status")


def stat(ctx, name):
    return status(ctx)["daemon"][name]


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def nfds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def hello(pid=4242):
    return msg_frame([HELLO, {"version": 1, "pid": pid, "ppid": 1,
                              "host": "h", "service": "load",
                              "python": "3.x fake", "reader": "fake",
                              "start_ns": 1, "argv": ["load.py"]}])


def request(command, args=None):
    return msg_frame([REQUEST, command, args or {}])


def dribble_until_closed(s, data, gap=0.3, limit=30):
    """Sends data a byte at a time, gap s apart; seconds until closed."""
    t0 = time.monotonic()
    s.settimeout(gap)
    i = 0
    while time.monotonic() - t0 < limit:
        try:
            s.send(data[i % len(data):i % len(data) + 1])
            i += 1
            if not s.recv(65536):
                return time.monotonic() - t0
        except socket.timeout:
            continue
        except OSError:
            return time.monotonic() - t0
    return None


def serves(ctx, pid):
    """A new real-protocol agent attaches and its samples are stored."""
    a = FakeAgent(ctx.rt, pid=pid, service="ok%d" % pid)
    a.samples(a.stack(["main", "served"]), a.thread("MainThread"), 7)
    a.flush()
    def stored():
        r = ctx.ctl("show", "--pid", str(pid), "--format", "json", ok=False)
        return r.returncode == 0 and json.loads(r.stdout)["samples"] == 7

    wait_until(stored, 30, "pid %d's samples" % pid)
    a.close()


@once
def test_deadlines_are_absolute_not_idle(ctx):
    ctx.start_daemon("--hello-timeout", "2s", "--frame-timeout", "2s",
                     "--control-timeout", "3s")
    # A hello a byte at a time: each byte would reset an idle timeout.
    took = dribble_until_closed(connect(ctx.sock("agent.sock")), hello())
    check(took is not None and took < 12, "slow hello held %r s" % took)
    # After the hello, a frame begun must be whole in time.
    s = connect(ctx.sock("agent.sock"))
    s.sendall(hello(pid=4243))
    took = dribble_until_closed(s, struct.pack(">I", 1000) + b"\x93" * 999)
    check(took is not None and took < 12, "slow frame held %r s" % took)
    # A control request a byte at a time, and an idle control connection.
    took = dribble_until_closed(connect(ctx.sock("control.sock")),
                                request("status"))
    check(took is not None and took < 12, "slow request held %r s" % took)
    idle = connect(ctx.sock("control.sock"))
    check(closed_by_peer(idle, 15), "idle control connection kept")
    d = status(ctx)["daemon"]
    check(d["hello_timeouts"] >= 1 and d["frame_timeouts"] >= 2 and
          d["control_timeouts"] >= 1, "counters: %r" % d)
    serves(ctx, 5001)


@once
def test_a_frame_waiting_on_a_stalled_profd_is_not_timed_out(ctx):
    # The frame deadline is the sender's delay: when profd stalls (here
    # stopped) with the rest of an agent's frame waiting in the socket,
    # more than one read takes (16 KiB), the deadline starts again instead
    # of closing the agent.
    d = ctx.start_daemon("--frame-timeout", "2s")
    a = FakeAgent(ctx.rt, service="stall")
    st, th = a.stack(["main", "stalled"]), a.thread("MainThread")
    a.samples(st, th, 5)
    a.flush()

    def stored(n):
        r = ctx.ctl("show", "--pid", str(a.pid), "--format", "json",
                    ok=False)
        return r.returncode == 0 and json.loads(r.stdout)["samples"] == n

    wait_until(lambda: stored(5), 30, "the first 5 samples")
    n = 8192                       # a batch at most
    big = msg_frame([SAMPLES, time.time_ns(), [st, th, 0, 10000, 1] * n])
    check(len(big) > 40000, "frame of %d bytes only" % len(big))
    a.sock.sendall(big[:1000])     # begun: its deadline runs once read

    def unread():
        return struct.unpack("i", fcntl.ioctl(a.sock, termios.TIOCOUTQ,
                                              b"\0" * 4))[0]

    wait_until(lambda: unread() == 0, 10, "profd reading the frame's start")
    time.sleep(0.2)
    os.kill(d.pid, signal.SIGSTOP)
    try:
        rest = threading.Thread(target=a.sock.sendall, args=(big[1000:],))
        rest.start()
        time.sleep(3.0)            # past the deadline, profd stopped
    finally:
        os.kill(d.pid, signal.SIGCONT)
    rest.join(30)
    check(not rest.is_alive(), "the rest of the frame was never read")
    wait_until(lambda: stored(5 + n), 30, "the big frame's samples")
    dm = status(ctx)["daemon"]
    check(dm["frame_timeouts"] == 0 and dm["frame_deadlines_waived"] >= 1,
          "counters: frame_timeouts %d, frame_deadlines_waived %d"
          % (dm["frame_timeouts"], dm["frame_deadlines_waived"]))
    a.close()


@once
def test_idle_connections_never_lock_out_agents_or_profctl(ctx):
    ctx.start_daemon("--max-agents", "16", "--max-controls", "4")
    quiet = [connect(ctx.sock("agent.sock")) for _ in range(16)]
    wait_until(lambda: status(ctx)["daemon"]["agents_accepted"] >= 16, 30,
               "16 quiet agent connections")
    serves(ctx, 5002)           # evicts the oldest that never said hello
    check(stat(ctx, "agents_evicted") >= 1, "nothing evicted")
    # Slow-loris on the control socket: profctl still gets in.
    loris = [connect(ctx.sock("control.sock")) for _ in range(4)]
    for s in loris:
        s.send(b"\x00")
    for _ in range(3):
        st = status(ctx)
    check(st["daemon"]["controls_evicted"] >= 1, "no control evicted: %r"
          % st["daemon"])
    for s in quiet + loris:
        s.close()


@once
def test_agents_connecting_in_a_loop_leak_nothing(ctx):
    ctx.start_daemon()
    pid = ctx.daemon.pid

    def settled():
        d = status(ctx)["daemon"]
        return d["agents_closed"] >= d["agents_accepted"]

    def churn(n):
        for i in range(n):
            a = FakeAgent(ctx.rt, pid=6000 + i % 8, start_ns=1 + i % 8)
            a.close()
            if i % 100 == 99:   # within the listen backlog
                wait_until(settled, 30, "every connection closed")
        wait_until(settled, 30, "every connection closed")

    def fewest_fds():
        """profctl's own connection (settled() asks status) may still be
        open in profd for a moment after the reply: the fewest seen in a
        second is the count at rest."""
        n, end = nfds(pid), time.monotonic() + 1
        while time.monotonic() < end:
            time.sleep(0.05)
            n = min(n, nfds(pid))
        return n

    churn(200)
    fds0, rss0 = fewest_fds(), rss_kb(pid)
    churn(1000)
    try:
        wait_until(lambda: nfds(pid) <= fds0, 10, "fds back to %d" % fds0)
    except TestFailure:
        pass
    fds1, rss1 = fewest_fds(), rss_kb(pid)
    print("  churn: fds %d -> %d, RSS %d -> %d kB over 1000 connections"
          % (fds0, fds1, rss0, rss1))
    check(fds1 <= fds0, "fds grew: %d -> %d" % (fds0, fds1))
    if not ctx.sanitize:
        check(rss1 - rss0 < 4096, "RSS grew %d kB" % (rss1 - rss0))
    check(stat(ctx, "conn_bytes") == 0, "bytes still charged")


@once
def test_partial_frames_stay_within_the_memory_budget(ctx):
    ctx.start_daemon("--max-memory", "64M", "--frame-timeout", "5s")
    rss0 = rss_kb(ctx.daemon.pid)
    socks = []
    body = b"\x00" * (MIB - 1)
    for i in range(100):        # 100 x (1 MiB - 1 byte), hello first
        s = connect(ctx.sock("agent.sock"))
        try:
            s.sendall(hello(pid=7000 + i) + struct.pack(">I", MIB) + body)
        except OSError:
            pass                # closed over the budget
        socks.append(s)
    wait_until(lambda: stat(ctx, "memory_closes") > 0, 30, "a memory close")
    peak = rss_kb(ctx.daemon.pid)
    serves(ctx, 5003)
    wait_until(lambda: stat(ctx, "conn_bytes") < MIB, 30,
               "the partial frames to time out")
    d = status(ctx)["daemon"]
    print("  100 x 1 MiB partial frames at --max-memory 64M: RSS %d -> %d kB, "
          "%d closed over budget, %d timed out"
          % (rss0, peak, d["memory_closes"], d["frame_timeouts"]))
    if not ctx.sanitize:
        check(peak < (64 + 32) * 1024, "RSS %d kB" % peak)
    for s in socks:
        s.close()


@once
def test_a_million_definitions_stay_within_the_bound(ctx):
    # (No resync: a v1 agent pinning that many unused ids would be closed
    # by a sweep, which a slow sanitized run may reach mid-flood.)
    ctx.start_daemon("--max-memory", "32M", "--resync-ids", str(1 << 24))
    s = connect(ctx.sock("agent.sock"), timeout=60)
    s.sendall(hello(pid=7777))
    n, chunk = 1000000, []
    for i in range(1, n + 1):
        chunk.append(msg_frame([STRING, i, "definition-%07d-%s" % (i, "x" * 24)]))
        if len(chunk) == 20000:
            s.sendall(b"".join(chunk))
            chunk = []
    s.sendall(b"".join(chunk))
    wait_until(lambda: stat(ctx, "messages_received") >= n + 1, 120,
               "a million definitions")
    d = status(ctx)["daemon"]
    rss = rss_kb(ctx.daemon.pid)
    print("  1,000,000 definitions at --max-memory 32M: RSS %d kB, store %d B, "
          "connections %d B, %d refused" % (rss, d["store_bytes"],
                                            d["conn_bytes"], d["store_refused"]))
    if not ctx.sanitize:
        check(rss < (32 + 24) * 1024, "RSS %d kB" % rss)
    s.close()
    serves(ctx, 5004)


@once
def test_clients_that_never_read_hold_bounded_memory(ctx):
    # Unread replies time out after 10 s: long enough for the first ones
    # to be still unread when the later ones are built, even under ASan.
    ctx.start_daemon("--max-memory", "64M", "--control-timeout", "10s")
    a = FakeAgent(ctx.rt, pid=8008, service="big")
    th = a.thread("MainThread")
    for j in range(30000):
        a.samples(a.stack(["main", "handler_%05d_%s" % (j, "y" * 60)]), th, 1)
    a.flush()
    wait_until(lambda: stat(ctx, "samples_stored") >= 30000, 60, "the samples")
    one = len(ctx.ctl("show", "--format", "folded", "--top", "0").stdout)
    rss0 = rss_kb(ctx.daemon.pid)
    hogs = []
    for _ in range(20):
        s = connect(ctx.sock("control.sock"))
        s.sendall(request("show", {"format": "folded"}))
        hogs.append(s)
    # Each of the 20 has its reply (the show or a refusal) on its socket.
    wait_until(lambda: len(select.select(hogs, [], [], 0)[0]) == len(hogs),
               120, "a reply to each of the 20 shows")
    rss1 = rss_kb(ctx.daemon.pid)
    d = status(ctx)["daemon"]
    # Refused built (replies_refused) or not built for lack of room (a
    # request error that says so).
    refused = d["replies_refused"] + d["request_errors"]
    print("  20 clients not reading a %d kB show at --max-memory 64M: RSS %d -> "
          "%d kB, %d replies refused" % (one >> 10, rss0, rss1, refused))
    check(refused > 0, "no reply refused: %r" % d)
    # Small replies still go while the big ones wait.
    check(ctx.ctl_json("ps") is not None, "ps refused")
    if not ctx.sanitize:
        # Unread replies are capped at 25% of --max-memory (16M); on top,
        # the one being built (encoded bytes, then the frame).
        check(rss1 - rss0 < 16 * 1024 + 6 * (one >> 10),
              "RSS grew %d kB" % (rss1 - rss0))
    wait_until(lambda: stat(ctx, "reply_timeouts") >= 1, 60,
               "unread replies to time out")
    for s in hogs:
        s.close()
    ctx.ctl("status")


@once
def test_fd_limit_pauses_accepting_and_recovers(ctx):
    ctx.start_daemon(wrap=["prlimit", "--nofile=48:48"])
    socks = []
    for _ in range(80):         # the backlog takes what accept cannot
        try:
            socks.append(connect(ctx.sock("agent.sock"), timeout=2))
        except OSError:
            break
    wait_until(lambda: "pausing" in open(ctx.daemon_log).read(), 30,
               "accept to pause")
    for s in socks:
        s.close()
    serves(ctx, 5005)
    check(stat(ctx, "accept_pauses") >= 1, "no pause counted")


@once
def test_garbage_is_closed_and_counted(ctx):
    ctx.start_daemon()
    sent = 0
    chunk = os.urandom(MIB)
    bad0 = stat(ctx, "bad_frames")
    conns = 0
    while sent < 100 * MIB:
        name = "agent.sock" if conns % 2 == 0 else "control.sock"
        s = connect(ctx.sock(name))
        conns += 1
        # Valid lengths, so the payload is decoded; then the rest.
        g = struct.pack(">I", 1000) + chunk[:1000] + chunk
        try:
            s.sendall(g)
        except OSError:
            pass
        sent += len(g)
        check(closed_by_peer(s, 15), "garbage connection %d kept" % conns)
        s.close()
    d = status(ctx)["daemon"]
    print("  100 MB of garbage on %d connections: %d bad frames"
          % (conns, d["bad_frames"] - bad0))
    check(d["bad_frames"] - bad0 >= conns // 2, "bad frames: %r" % d)
    serves(ctx, 5006)


@once
def test_thirty_clients_looping_shows_hold_up_neither_housekeeping_nor_agents(ctx):
    """Thirty profctl clients loop svg and pprof shows over a store of
    300,000 entries while an agent sends samples: housekeeping (sweeps
    every second here) keeps running, the agent's samples are stored as
    they come, status answers, and profd stays within --max-memory."""
    import subprocess
    import threading
    from fakeagent import SAMPLES
    from harness import BIN
    ctx.start_daemon("--max-memory", "64M", "--bucket", "1s",
                     "--sweep-interval", "1s")
    a = FakeAgent(ctx.rt, pid=4400, service="past")
    threads = [a.thread("worker-%d" % i) for i in range(25)]
    stacks = [a.stack(["main", "shared", "s%d" % i]) for i in range(40)]
    now = time.time_ns()
    for k in range(300):
        own = a.stack(["main", "own", "g%d" % k])
        flat = [own, threads[0], 0, 10000, 1]
        for st in stacks:
            for th in threads:
                flat += [st, th, 0, 10000, 1]
        a.send([SAMPLES, now - (700 - k * 2) * 1000000000, flat])
        a.flush()
    a.close()
    wait_until(lambda: stat(ctx, "samples_stored") == 300 * 1001, 60,
               "the past samples")

    stop = threading.Event()
    errors = []
    done = [0]

    def client(i):
        out = os.path.join(ctx.tmp, "out-%d" % i)
        while not stop.is_set():
            fmt = ("svg", "pprof")[i % 2]
            r = subprocess.run([os.path.join(BIN, "profctl"), "-r", ctx.rt,
                                "show", "--format", fmt, "-o", out],
                               stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE,
                               universal_newlines=True, timeout=120)
            if r.returncode != 0:
                errors.append(r.stderr.strip()[:200])
            done[0] += 1

    live = FakeAgent(ctx.rt, pid=4401, service="live")
    lth = live.thread("MainThread")
    lst = live.stack(["main", "live"])
    workers = [threading.Thread(target=client, args=(i,), daemon=True)
               for i in range(30)]
    for w in workers:
        w.start()
    t0 = time.monotonic()
    sweeps0 = stat(ctx, "sweeps")
    sent, worst_lag, peak_rss = 0, 0.0, 0
    base = stat(ctx, "samples_stored")
    while time.monotonic() - t0 < 12:
        live.samples(lst, lth, 10)
        live.flush()
        sent += 10
        t_sent = time.monotonic()
        # The agent is read and stored while the shows run.
        wait_until(lambda: stat(ctx, "samples_stored") >= base + sent, 10,
                   "the live agent's samples stored")
        worst_lag = max(worst_lag, time.monotonic() - t_sent)
        peak_rss = max(peak_rss, rss_kb(ctx.daemon.pid))
        time.sleep(0.2)
    sweeps = stat(ctx, "sweeps") - sweeps0
    d = status(ctx)["daemon"]
    stop.set()
    for w in workers:
        w.join(120)
    live.close()
    print("  %d shows in 12 s, %d errors; %d sweeps; live samples stored "
          "within %.2f s (worst); peak RSS %d KiB; waited %d, timed out %d"
          % (done[0], len(errors), sweeps, worst_lag, peak_rss,
             d["queries_waited"], d["queries_timed_out"]))
    check(not errors, "shows failed: %r" % errors[:3])
    check(done[0] >= 30, "only %d shows answered" % done[0])
    check(sweeps >= 6, "%d sweeps in 12 s at --sweep-interval 1s" % sweeps)
    # Unread for 10 s and more before shows took turns; each figure here
    # includes spawning a profctl status beside thirty looping clients on
    # 2 CPUs (0.1-2.1 s seen).
    check(worst_lag < 5.0, "the live agent waited %.2f s" % worst_lag)
    if not ctx.sanitize:        # ASan's shadow and quarantine are not ours
        check(peak_rss < 64 * 1024, "RSS %d KiB over --max-memory 64M"
              % peak_rss)


@once
def test_a_show_reading_holds_up_neither_retention_nor_sweeps(ctx):
    """Housekeeping does not wait for a show: while a slow show reads four
    buckets (PROFD_TEST_SHOW_STEP: 2 entries every 20 ms, about 20 s), all
    four pass the retention and go, sweeps run each second, and the show
    still answers with every sample of its window under the right names:
    it holds each bucket until it has read it, and a sweep keeps what it
    has summed so far."""
    import subprocess
    from harness import BIN
    old = ctx.daemon_env
    ctx.daemon_env = lambda: dict(old(), PROFD_TEST_SHOW_STEP="2:20")
    try:
        ctx.start_daemon("--bucket", "1s", "--retention", "60s",
                         "--sweep-interval", "1s", "--query-timeout", "120s")
    finally:
        ctx.daemon_env = old
    a = FakeAgent(ctx.rt, pid=4600, service="old")
    threads = [a.thread("worker-%d" % i) for i in range(20)]
    now = time.time_ns()
    want = {}
    for b in range(4):
        # Ages 50, 49, 48, 47 s: they pass the 60 s retention 10-13 s
        # from now, while the show reads them.
        flat = []
        for k in range(25):
            name = "b%d_s%02d" % (b, k)
            st = a.stack(["main", "bucket_%d" % b, name])
            want["main;bucket_%d;%s" % (b, name)] = 20
            for th in threads:
                flat += [st, th, 0, 10000, 1]
        a.send([SAMPLES, now - (50 - b) * 1000000000, flat])
    a.flush()
    a.close()
    wait_until(lambda: stat(ctx, "samples_stored") == 2000, 30,
               "2000 samples")
    # A sweep follows the tick that seals them (past their 10 s grace):
    # the show reads sealed buckets in steps, open ones at once.
    sweeps0 = stat(ctx, "sweeps")
    wait_until(lambda: stat(ctx, "sweeps") > sweeps0, 10, "a tick")
    sweeps0 = stat(ctx, "sweeps")
    out = os.path.join(ctx.tmp, "slow.folded")
    p = subprocess.Popen([os.path.join(BIN, "profctl"), "-r", ctx.rt, "show",
                          "--format", "folded", "-o", out],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         universal_newlines=True)
    expired_during, retired_seen, sweeps_during = 0, 0, 0
    while p.poll() is None:
        d = status(ctx)["daemon"]
        if p.poll() is not None:
            break
        expired_during = d["expired_samples"]
        retired_seen = max(retired_seen, d["store_retired_buckets"])
        sweeps_during = d["sweeps"] - sweeps0
        time.sleep(0.2)
    err = p.stderr.read()
    check(p.returncode == 0, "show failed: %s" % err.strip())
    got = {}
    for line in open(out):
        stack, n = line.rsplit(" ", 1)
        # Frames are "name (file:line)": the names are what is checked.
        stack = ";".join(f.split(" (")[0] for f in stack.split(";"))
        got[stack] = got.get(stack, 0) + int(n)
    d = status(ctx)["daemon"]
    print("  while the show read: %d of 2000 samples expired, %d sweeps, "
          "up to %d buckets kept for it; it answered %d stacks, %d samples"
          % (expired_during, sweeps_during, retired_seen, len(got),
             sum(got.values())))
    check(expired_during == 2000, "only %d samples expired while the show "
          "read" % expired_during)
    check(sweeps_during >= 5, "%d sweeps while the show read" % sweeps_during)
    check(retired_seen >= 1, "no bucket was kept for the show")
    check(got == want, "the show's answer differs: %d stacks, missing %r, "
          "extra %r" % (len(got), sorted(set(want) - set(got))[:3],
                        sorted(set(got) - set(want))[:3]))
    check(d["store_retired_buckets"] == 0 and d["store_retired_bytes"] == 0,
          "buckets kept after the show: %r" % d)
    wait_until(lambda: stat(ctx, "store_stacks") < 100, 10,
               "the stacks of the gone buckets to be swept after the show")


@once
def test_a_long_encoding_holds_up_neither_agents_status_nor_housekeeping(ctx):
    """A show's stack format is encoded beside the event loop: while one
    takes 6 s (PROFD_TEST_ENCODE_DELAY_MS), status and a table show answer,
    an agent's samples are stored and sweeps run; the show then answers
    with its SVG.  A second stack show waits for the encoding out and then
    answers, though the client of that one left meanwhile; profd stops
    cleanly with an encoding still out."""
    import subprocess
    from harness import BIN
    old = ctx.daemon_env
    ctx.daemon_env = lambda: dict(old(), PROFD_TEST_ENCODE_DELAY_MS="6000")
    try:
        ctx.start_daemon("--sweep-interval", "1s")
    finally:
        ctx.daemon_env = old
    a = FakeAgent(ctx.rt, pid=4500, service="enc")
    th, st = a.thread("MainThread"), a.stack(["main", "work"])
    a.samples(st, th, 50)
    a.flush()
    wait_until(lambda: stat(ctx, "samples_stored") == 50, 30, "50 samples")
    svg = os.path.join(ctx.tmp, "enc.svg")

    def show():
        return subprocess.Popen([os.path.join(BIN, "profctl"), "-r", ctx.rt,
                                 "show", "--format", "svg", "-o", svg],
                                stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE,
                                universal_newlines=True)

    p = show()
    wait_until(lambda: stat(ctx, "shows_encoded_aside") == 1, 10,
               "the encoding to be handed over")
    t0 = time.monotonic()
    sweeps0 = stat(ctx, "sweeps")
    a.samples(st, th, 25)
    a.flush()
    wait_until(lambda: stat(ctx, "samples_stored") == 75, 10,
               "the agent's samples stored during the encoding")
    stored_after = time.monotonic() - t0
    check(p.poll() is None, "the show answered before the agent's "
          "samples were stored")
    wait_until(lambda: stat(ctx, "sweeps") >= sweeps0 + 2, 10,
               "two sweeps during the encoding")
    t_rows = time.monotonic()
    rows = ctx.ctl("show", "--top", "5").stdout
    t_rows = time.monotonic() - t_rows
    check("work" in rows, "table show: %r" % rows)
    check(p.poll() is None, "the show answered before two sweeps ran and "
          "a table show answered")
    out, err = p.communicate(timeout=30)
    took = time.monotonic() - t0
    print("  samples stored %.2f s into a 6 s encoding, a table show "
          "answered in %.2f s; the show answered after %.2f s"
          % (stored_after, t_rows, took))
    check(t_rows < 3.0, "the table show took %.2f s" % t_rows)
    check(p.returncode == 0, "show failed: %s" % err.strip())
    check(stored_after < 2.0, "the agent waited %.2f s" % stored_after)
    with open(svg) as f:
        body = f.read()
    check("<svg" in body and "work" in body, "not the profile's SVG")

    # A client gone before its encoding came back, and a second stack
    # show that waits for that encoding, then has its own.
    p = show()
    wait_until(lambda: stat(ctx, "shows_encoded_aside") == 2, 10,
               "the second encoding")
    folded = subprocess.Popen([os.path.join(BIN, "profctl"), "-r", ctx.rt,
                               "show", "--format", "folded"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True)
    p.kill()
    p.wait()
    out, err = folded.communicate(timeout=60)
    check(folded.returncode == 0, "the waiting show failed: %s" % err)
    check(out.rstrip().endswith(" 75") and "work" in out,
          "folded after: %r" % out)
    check(stat(ctx, "shows_encoded_aside") == 3,
          "the waiting show was not encoded aside")

    # Stopping with an encoding out.
    p = show()
    wait_until(lambda: stat(ctx, "shows_encoded_aside") == 4, 10,
               "the fourth encoding")
    t1 = time.monotonic()
    rc = ctx.stop_daemon(timeout=30)
    p.communicate(timeout=30)
    a.close()
    check(rc == 0, "profd exited %r with an encoding out: %s"
          % (rc, ctx.log_tail()))
    print("  stopped in %.2f s with an encoding out"
          % (time.monotonic() - t1))
