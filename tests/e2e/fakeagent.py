"""fakeagent.py -- speaks the agent protocol from a test, for what a real
agent cannot be made to do on demand: a chosen pid and start time (pid
reuse), samples at chosen times (buckets, roll-up, retention), floods of
definitions (memory cap, reclaiming).  Only a tiny msgpack encoder: the
wire format is proto/proto.h's.
"""
import os
import socket
import struct
import time

HELLO, STRING, FUNC, FRAME, STACK, THREAD, SAMPLES, STATS = range(100, 108)
BATCH = 109
CONFIG = 200
REJECT = 202
VERSION = 1             # a hello without a range: version 1 exactly


def pack(o):
    if o is True:
        return b"\xc3"
    if o is False:
        return b"\xc2"
    if isinstance(o, int):
        if o < 0:
            raise ValueError("negative")
        if o < 128:
            return bytes([o])
        if o < 1 << 8:
            return b"\xcc" + struct.pack(">B", o)
        if o < 1 << 16:
            return b"\xcd" + struct.pack(">H", o)
        if o < 1 << 32:
            return b"\xce" + struct.pack(">I", o)
        return b"\xcf" + struct.pack(">Q", o)
    if isinstance(o, str):
        o = o.encode()
    if isinstance(o, bytes):
        n = len(o)
        if n < 32:
            return bytes([0xa0 | n]) + o
        if n < 1 << 8:
            return b"\xd9" + struct.pack(">B", n) + o
        if n < 1 << 16:
            return b"\xda" + struct.pack(">H", n) + o
        return b"\xdb" + struct.pack(">I", n) + o
    if isinstance(o, (list, tuple)):
        n = len(o)
        h = bytes([0x90 | n]) if n < 16 else (
            b"\xdc" + struct.pack(">H", n) if n < 1 << 16 else
            b"\xdd" + struct.pack(">I", n))
        return h + b"".join(pack(x) for x in o)
    if isinstance(o, dict):
        n = len(o)
        h = bytes([0x80 | n]) if n < 16 else b"\xde" + struct.pack(">H", n)
        return h + b"".join(pack(k) + pack(v) for k, v in o.items())
    raise TypeError(type(o))


def frame(msg):
    p = pack(msg)
    return struct.pack(">I", len(p)) + p


class FakeAgent:
    """One connection: define things, send samples at chosen times."""

    def __init__(self, rundir, pid=None, ppid=1, start_ns=None,
                 service="fake", host="testhost", argv=("fake.py",),
                 versions=None, sock=None):
        """versions: (min, max) sends a version 3 hello with that range;
        sock: a socket already connected to rundir's agent.sock."""
        if sock is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(10)
            sock.connect(os.path.join(rundir, "agent.sock"))
        self.sock = sock
        self.pid = pid or os.getpid()
        self.ids = {k: 0 for k in ("str", "func", "frame", "stack", "thread")}
        self.strings = {}
        self.out = []
        hello = {"version": VERSION, "pid": self.pid, "ppid": ppid,
                 "host": host, "service": service,
                 "python": "3.x fake", "reader": "fake",
                 "start_ns": start_ns or time.time_ns(), "argv": list(argv)}
        if versions:
            hello.update(version=2, version_min=versions[0],
                         version_max=versions[1])
        self.send([HELLO, hello])

    def send(self, msg):
        self.out.append(frame(msg))
        if len(self.out) > 256:
            self.flush()

    def flush(self):
        if self.out:
            self.sock.sendall(b"".join(self.out))
            self.out = []

    def _id(self, kind):
        self.ids[kind] += 1
        return self.ids[kind]

    def string(self, s):
        if s not in self.strings:
            i = self._id("str")
            self.send([STRING, i, s])
            self.strings[s] = i
        return self.strings[s]

    def stack(self, names, file="fake.py"):
        """names: root first.  Returns the stack id."""
        frames = []
        for n in names:
            f = self._id("func")
            self.send([FUNC, f, self.string(n), self.string(file), 1])
            fr = self._id("frame")
            self.send([FRAME, fr, f, 10])
            frames.append(fr)
        s = self._id("stack")
        self.send([STACK, s, False, list(reversed(frames))])
        return s

    def thread(self, name, tid=None):
        t = self._id("thread")
        self.send([THREAD, t, tid or (self.pid * 100 + t), self.string(name)])
        return t

    def samples(self, stack, thread, n, t_ns=None, weight_us=10000,
                flags=1):
        """n samples of one stack at time t_ns (default now)."""
        base = t_ns or time.time_ns()
        while n > 0:
            k = min(n, 8192)
            flat = []
            for _ in range(k):
                flat += [stack, thread, 0, weight_us, flags]
            self.send([SAMPLES, base, flat])
            n -= k

    def batch(self, seq, stack, thread, n, invalid=None, t_ns=None,
              weight_us=10000, flags=1):
        """One numbered batch (version 4) of n samples of one stack at
        t_ns; with invalid, the version 5 count of stacks left out."""
        flat = []
        for _ in range(n):
            flat += [stack, thread, 0, weight_us, flags]
        msg = [BATCH, seq, t_ns or time.time_ns(), flat]
        if invalid is not None:
            msg.append(invalid)
        self.send(msg)

    def close(self):
        self.flush()
        self.sock.close()
