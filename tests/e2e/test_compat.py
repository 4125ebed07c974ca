"""Upgrades roll: agents and daemons of different releases talk.

Recorded byte streams of earlier agents (tests/data/wire) against today's
profd; today's agent against a fake daemon of a newer release (a CONFIG with
more fields, a message type it does not know) and against one that refuses
it (REJECT); profd given a hello it shares no version with.
"""
import os
import socket
import struct
import threading
import time

import fakeagent
from harness import (PROTO_VERSION, ROOT, WORKLOADS, check, connect, once,
                     wait_until)

WIRE = os.path.join(ROOT, "tests", "data", "wire")
REJECT = 202


def frames(data):
    """Splits a byte stream into payloads."""
    out, off = [], 0
    while off + 4 <= len(data):
        n = struct.unpack(">I", data[off:off + 4])[0]
        if off + 4 + n > len(data):
            break
        out.append(data[off + 4:off + 4 + n])
        off += 4 + n
    return out, data[off:]


def msg_type(payload):
    """The type of a payload [type, ...] (fixarray or array 16)."""
    i = 1 if payload[0] & 0xf0 == 0x90 else 3
    t = payload[i]
    if t < 0x80:
        return t
    if t == 0xcc:
        return payload[i + 1]
    if t == 0xcd:
        return struct.unpack(">H", payload[i + 1:i + 3])[0]
    return None


def nfields(payload):
    return payload[0] & 0x0f


def to_now(data):
    """Moves every SAMPLES base_ns (0xcf uint64) to the present."""
    out, shift = [], None
    for p in frames(data)[0]:
        if msg_type(p) == fakeagent.SAMPLES:
            check(p[2] == 0xcf, "SAMPLES base_ns is not a uint64")
            base = struct.unpack(">Q", p[3:11])[0]
            if shift is None:
                shift = time.time_ns() - 5 * 10**9 - base
            p = p[:3] + struct.pack(">Q", base + shift) + p[11:]
        out.append(struct.pack(">I", len(p)) + p)
    return b"".join(out)


def read_all(s, timeout=10):
    """Reads until the peer closes (or timeout): the bytes."""
    s.settimeout(timeout)
    data = b""
    try:
        while True:
            d = s.recv(65536)
            if not d:
                break
            data += d
    except (socket.timeout, ConnectionResetError):
        pass
    return data


@once
def test_recorded_streams_of_old_releases_are_accepted(ctx):
    ctx.start_daemon()
    for name, pid, service, version in (("agent-v2.bin", None, "wire", 2),
                                        ("fake-v1.bin", 4242, "wire-v1", 1)):
        with open(os.path.join(WIRE, name), "rb") as f:
            data = to_now(f.read())
        s = connect(ctx.sock("agent.sock"))
        s.sendall(data)

        def attached():
            st = ctx.ctl_json("status")
            return [a for a in st["agents"] if a["service"] == service]
        agent = wait_until(attached, 20, "the %s stream to attach" % name)[0]
        check(pid is None or agent["pid"] == pid, "pid %r" % agent)
        # A version 1 or 2 agent gets the CONFIG it knows: five fields.
        s.settimeout(10)
        got = b""
        while not frames(got)[0]:
            d = s.recv(4096)
            check(d, "profd closed the %s stream: %s" % (name, ctx.log_tail()))
            got += d
        cfg = frames(got)[0][0]
        check(msg_type(cfg) == fakeagent.CONFIG and nfields(cfg) == 6,
              "a version %d agent got %r" % (version, cfg))

        def shown():
            show = ctx.ctl_json("show", "--top", "0", "--pid", agent["pid"])
            fn = {f["function"] for f in show["functions"]}
            return show if show["samples"] > 0 and "wire_leaf" in fn else None
        show = wait_until(shown, 20, "samples of the %s stream" % name)
        s.close()
        if version == 1:
            check(show["samples"] == 50, "%d samples of 50" % show["samples"])
    st = ctx.ctl_json("status")
    check(st["daemon"]["bad_frames"] == 0, "bad frames: %r" % st["daemon"])
    with open(ctx.daemon_log) as f:
        log = f.read()
    check("protocol 2)" in log and "protocol 1)" in log,
          "attach lines do not name protocols 2 and 1:\n%s" % log[-2000:])


@once
def test_incompatible_hello_gets_reject_and_one_log_line(ctx):
    ctx.start_daemon()
    for pid, hello in ((7001, {"version": 9, "version_min": 9,
                               "version_max": 12}),
                       (7002, {"version": 0})):
        hello.update({"pid": pid, "service": "odd"})
        s = connect(ctx.sock("agent.sock"))
        s.sendall(fakeagent.frame([fakeagent.HELLO, hello]))
        got = frames(read_all(s))[0]
        s.close()
        check(len(got) == 1 and msg_type(got[0]) == REJECT,
              "hello %r got %r, not one REJECT" % (hello, got))
        # [202, 1, PROTO_VERSION, reason]
        check(got[0][3] == 1 and got[0][4] == PROTO_VERSION,
              "REJECT range %r, want 1..%d" % (got[0][:4], PROTO_VERSION))
        check(b"profd speaks 1 to %d" % PROTO_VERSION in got[0],
              "reason: %r" % got[0])

    def logged():
        with open(ctx.daemon_log) as f:
            return [l for l in f if "rejected" in l]
    lines = wait_until(lambda: len(logged()) >= 2 and logged(), 10,
                       "two log lines")
    check(len(lines) == 2, "log lines: %r" % lines)
    check("agent pid 7001: protocol versions 9 to 12; profd speaks 1 to %d"
          % PROTO_VERSION in lines[0], "log line: %r" % lines[0])
    st = ctx.ctl_json("status")
    check(st["daemon"]["agents_incompatible"] == 2,
          "agents_incompatible %r" % st["daemon"]["agents_incompatible"])
    check(st["daemon"]["bad_frames"] == 0, "counted as bad frames")
    check(not any(a["pid"] in (7001, 7002) for a in st["agents"]),
          "a rejected agent is in status")


@once
def test_profd_skips_optional_messages_of_a_newer_agent(ctx):
    ctx.start_daemon()
    a = fakeagent.FakeAgent(ctx.rt, pid=7100, service="newer",
                            versions=(2, PROTO_VERSION + 1))
    th = a.thread("MainThread")
    st = a.stack(["wire_main", "wire_leaf"])
    a.send([160, {"future": 1}])            # optional: skipped
    a.send([fakeagent.STRING, a._id("str"), "x", "extra field"])  # skipped
    a.samples(st, th, 20)
    a.flush()
    cfg = frames(a.sock.recv(4096))[0][0]
    check(msg_type(cfg) == fakeagent.CONFIG and nfields(cfg) == 7 and
          cfg[-1] == PROTO_VERSION,
          "a version %d agent got CONFIG %r" % (PROTO_VERSION + 1, cfg))
    wait_until(lambda: ctx.ctl_json("show", "--pid", 7100)["samples"] == 20,
               20, "20 samples of the newer agent")
    d = ctx.ctl_json("status")["daemon"]
    check(d["messages_skipped"] == 1 and d["bad_frames"] == 0,
          "skipped %d, bad %d" % (d["messages_skipped"], d["bad_frames"]))
    a.send([120, 1])                        # unknown, not optional: an error
    a.flush()
    check(frames(read_all(a.sock))[0] == [], "more after a bad type")
    wait_until(lambda: ctx.ctl_json("status")["daemon"]["bad_frames"] == 1,
               10, "the unknown required type to count as a bad frame")
    a.close()


class FakeDaemon:
    """A listening agent.sock that runs `serve(conn)` per connection."""

    def __init__(self, ctx, serve):
        os.makedirs(ctx.rt, exist_ok=True)
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(ctx.sock("agent.sock"))
        self.srv.listen(8)
        self.srv.settimeout(0.2)
        self.accepts = 0
        self.stop = False
        self.serve = serve
        self.threads = []
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self):
        while not self.stop:
            try:
                c, _ = self.srv.accept()
            except socket.timeout:
                continue
            self.accepts += 1
            t = threading.Thread(target=self.serve, args=(c,), daemon=True)
            t.start()
            self.threads.append(t)

    def close(self):
        self.stop = True
        self.thread.join(5)
        self.srv.close()


def read_hello(c):
    buf = b""
    while True:
        got, rest = frames(buf)
        if got:
            return got[0], rest
        d = c.recv(65536)
        if not d:
            return None, b""
        buf += d


@once
def test_agent_keeps_sampling_past_newer_config_and_unknown_types(ctx):
    seen = {"samples": 0, "hello": None}

    def serve(c):
        c.settimeout(30)
        hello, buf = read_hello(c)
        seen["hello"] = hello
        # A newer daemon: a message type this agent does not know, and a
        # CONFIG with, after the budget (0: none), two fields it does not
        # know either.
        c.sendall(fakeagent.frame([250, 1, "future"]) +
                  fakeagent.frame([fakeagent.CONFIG, True, 100, 0, 0, 0, 4,
                                   0, "more", 7]) +
                  fakeagent.frame([251, {"x": [1, 2]}]))
        while True:
            try:
                d = c.recv(65536)
            except (socket.timeout, OSError):
                return
            if not d:
                return
            buf += d
            got, buf = frames(buf)
            # SAMPLES, or BATCH (109) at version 4.
            seen["samples"] += sum(1 for p in got
                                   if msg_type(p) in (fakeagent.SAMPLES,
                                                      109))

    fake = FakeDaemon(ctx, serve)
    try:
        p = ctx.run_agent([os.path.join(WORKLOADS, "workload.py"),
                           "--seconds", "60"], env=ctx.agent_env(
                               PROFAGENT_DEBUG="1"))
        wait_until(lambda: seen["samples"] >= 10, 30,
                   "10 sample batches from the agent")
        check(b"version_max" in seen["hello"], "hello has no version range")
        check(fake.accepts == 1, "%d connections, want 1: %s"
              % (fake.accepts, ctx.output(p)[-1500:]))
        out = ctx.output(p)
        check("ignoring message 250" in out and "ignoring message 251" in out,
              "unknown types not skipped:\n%s" % out[-1500:])
        check("protocol version 4 in use" in out, "CONFIG version not read")
        p.kill()
    finally:
        fake.close()


@once
def test_agent_given_reject_says_so_once_and_stays_away(ctx):
    def serve(c):
        c.settimeout(30)
        hello, _ = read_hello(c)
        if hello is not None:
            c.sendall(fakeagent.frame([REJECT, PROTO_VERSION + 1,
                                           PROTO_VERSION + 3, "too old"]))
        c.close()

    fake = FakeDaemon(ctx, serve)
    try:
        p = ctx.run_agent([os.path.join(WORKLOADS, "workload.py"),
                           "--seconds", "60"])
        wait_until(lambda: fake.accepts >= 1, 30, "the agent to connect")
        # A reconnect loop (100 ms doubling to 5 s) would connect ~6 times.
        time.sleep(10)
        check(fake.accepts == 1, "%d connections in 10 s after a REJECT"
              % fake.accepts)
        check(p.poll() is None, "the process died: %s" % ctx.output(p))
        out = ctx.output(p)
        lines = [l for l in out.splitlines() if "refused this agent" in l]
        check(len(lines) == 1, "want one line, got:\n%s" % out[-1500:])
        check("refused this agent: too old (profd speaks protocol versions "
              "%d to %d, this agent 1 to %d); next try in 300 s"
              % (PROTO_VERSION + 1, PROTO_VERSION + 3, PROTO_VERSION)
              in lines[0], "line: %r" % lines[0])
        p.kill()
    finally:
        fake.close()


@once
def test_agent_talks_to_a_version_2_daemon(ctx):
    """The previous release's profd: a 5-field CONFIG, no ACK.  Today's
    agent sends SAMPLES (not BATCH) and lets each batch go once written."""
    seen = {"samples": 0, "batches": 0}

    def serve(c):
        c.settimeout(30)
        hello, buf = read_hello(c)
        c.sendall(fakeagent.frame([fakeagent.CONFIG, True, 200, 0, 0, 0]))
        while True:
            try:
                d = c.recv(65536)
            except (socket.timeout, OSError):
                return
            if not d:
                return
            buf += d
            got, buf = frames(buf)
            for p in got:
                seen["samples"] += msg_type(p) == fakeagent.SAMPLES
                seen["batches"] += msg_type(p) == 109

    fake = FakeDaemon(ctx, serve)
    try:
        p = ctx.run_agent([os.path.join(WORKLOADS, "workload.py"),
                           "--seconds", "60"], env=ctx.agent_env(
                               PROFAGENT_DEBUG="1"))
        wait_until(lambda: seen["samples"] >= 40, 30,
                   "40 SAMPLES messages from the agent")
        check(seen["batches"] == 0, "BATCH sent to a version 2 daemon")
        check(fake.accepts == 1, "%d connections" % fake.accepts)
        check("protocol version 2 in use" in ctx.output(p),
              "version 2 not noted")
        p.kill()
    finally:
        fake.close()
