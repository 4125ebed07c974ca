"""record.py -- records an agent's byte stream to profd, for the
compatibility tests (see README.txt).

  record.py agent PYTHON AGENT_DIR OUT   a real agent, sampling a workload
  record.py fake OUT                     tests/e2e/fakeagent.py (its VERSION)

A Unix socket server stands in for profd: it answers the hello with
CONFIG profiling on (100 Hz, wall, default reader) and saves everything the
agent writes until the agent closes.
"""
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "e2e"))
import fakeagent  # noqa: E402

WORK = """
import time
def wire_leaf():
    s = 0
    for i in range(20000):
        s += i * i % 7
    return s
def wire_main():
    end = time.monotonic() + 2.5
    while time.monotonic() < end:
        wire_leaf()
wire_main()
"""


def serve(path, out, ready):
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    ready.set()
    c, _ = srv.accept()
    c.settimeout(30)
    try:
        c.sendall(fakeagent.frame([fakeagent.CONFIG, True, 100, 0, 0, 0]))
    except OSError:
        pass    # a fake agent may have written everything and gone
    data = b""
    while True:
        try:
            d = c.recv(65536)
        except socket.timeout:
            break
        if not d:
            break
        data += d
    c.close()
    srv.close()
    out.append(data)


def main():
    tmp = tempfile.mkdtemp(prefix="wire-")
    path = os.path.join(tmp, "agent.sock")
    got, ready = [], threading.Event()
    t = threading.Thread(target=serve, args=(path, got, ready))
    t.start()
    ready.wait()
    if sys.argv[1] == "agent":
        python, agent_dir, out = sys.argv[2:5]
        env = dict(os.environ, PROFD_RUNTIME_DIR=tmp,
                   PYTHONPATH=os.path.abspath(agent_dir))
        subprocess.run([python, "-m", "profagent", "run",
                        "--service", "wire", "--", python, "-c", WORK],
                       env=env, check=True, timeout=60)
    else:
        out = sys.argv[2]
        a = fakeagent.FakeAgent(tmp, pid=4242, service="wire-v1",
                                argv=("fake.py",))
        th = a.thread("MainThread")
        s = a.stack(["wire_main", "wire_leaf"])
        a.samples(s, th, 50)
        a.close()
    t.join()
    with open(out, "wb") as f:
        f.write(got[0])
    n, off = 0, 0
    while off < len(got[0]):
        off += 4 + struct.unpack(">I", got[0][off:off + 4])[0]
        n += 1
    print("%s: %d bytes, %d frames" % (out, len(got[0]), n))


if __name__ == "__main__":
    main()
