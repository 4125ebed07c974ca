"""A parent that starts N worker processes running workload.work, the way a
pre-fork server or a job queue does.

  --workers N        (default 4)
  --start fork|spawn|subprocess   how workers are made (default fork)
  --seconds S        how long each worker works (default 6)
  --pidfile F        worker pids are written there, one a line, once all run
  --done F           workers (fork, spawn) stop early once F exists
Each worker prints its checksum; the parent exits 0 only if all exit 0.
"""
import argparse
import multiprocessing
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import workload  # noqa: E402


def worker(seconds, until=None):
    if until is None:
        chk, done = workload.work(0, 20, 70, seconds)
    else:
        chk = done = 0
        end = time.monotonic() + seconds
        while time.monotonic() < end and not os.path.exists(until):
            c, d = workload.work(0, 20, 70, 0.2)
            chk, done = chk + c, done + d
    print("worker %d checksum=%d rounds=%d" % (os.getpid(), chk, done),
          flush=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--start", default="fork",
                   choices=["fork", "spawn", "subprocess"])
    p.add_argument("--seconds", type=float, default=6.0)
    p.add_argument("--pidfile")
    p.add_argument("--done")
    a = p.parse_args()
    if a.start == "subprocess":
        procs = [subprocess.Popen([sys.executable, os.path.join(HERE, "workload.py"),
                                   "--seconds", str(a.seconds)])
                 for _ in range(a.workers)]
        pids = [pr.pid for pr in procs]
    else:
        ctx = multiprocessing.get_context(a.start)
        procs = [ctx.Process(target=worker, args=(a.seconds, a.done))
                 for _ in range(a.workers)]
        for pr in procs:
            pr.start()
        pids = [pr.pid for pr in procs]
    if a.pidfile:
        with open(a.pidfile + ".tmp", "w") as f:
            f.write("".join("%d\n" % x for x in pids))
        os.rename(a.pidfile + ".tmp", a.pidfile)
    bad = 0
    for pr in procs:
        if a.start == "subprocess":
            bad += pr.wait() != 0
        else:
            pr.join()
            bad += pr.exitcode != 0
    print("fleet done, %d of %d workers failed" % (bad, a.workers), flush=True)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
