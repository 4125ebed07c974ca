"""Workload of bench/capture.py: threads that each descend to a Python stack
exactly DEPTH frames deep as samples show it (counting <module>, or
threading's own frames in a thread; not the agent's hidden frames) and
spin there in a CPU-bound loop, so every sample of every thread is the
same DEPTH-frame stack (tests/e2e/test_bench.py checks it).

  --threads N    N spinning threads (default 1: the main thread spins;
                 N > 1: N worker threads spin and the main thread waits)
  --depth D      Python frames in each spinning stack (default 20)
  --idle         the N > 1 workers wait on an event at DEPTH instead of
                 spinning (not used by the bench; for comparison)
  --seconds S    stop after S seconds (default 60)
Prints "ready" once every thread is at its depth, then "done" at the end.
"""
import argparse
import os
import sys
import threading
import time


def stack_depth():
    """Python frames of the caller's stack, less the agent's own (its
    thread start wrapper), which samples never show."""
    f, n = sys._getframe(1), 0
    while f is not None:
        if os.sep + "profagent" + os.sep not in f.f_code.co_filename:
            n += 1
        f = f.f_back
    return n


def spin(deadline, stop):
    # Only C calls in the loop (Event.is_set is Python, a 21st frame).
    s = 0
    while time.monotonic() < deadline:
        for i in range(2000):
            s += i * i % 7
    return s


def park(deadline, stop):
    stop.wait(max(0.0, deadline - time.monotonic()))
    return 0


def descend(depth, leaf, *args):
    # The leaf is called from the frame at depth - 1, so it is frame `depth`.
    if stack_depth() >= depth - 1:
        return leaf(*args)
    return descend(depth, leaf, *args)


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--depth", type=int, default=20)
    p.add_argument("--idle", action="store_true")
    p.add_argument("--seconds", type=float, default=60.0)
    a = p.parse_args(argv)
    deadline = time.monotonic() + a.seconds
    stop = threading.Event()
    if a.threads == 1:
        print("ready", flush=True)
        descend(a.depth, spin, deadline, stop)
    else:
        leaf = park if a.idle else spin
        ts = [threading.Thread(target=descend, name="spin-%d" % i,
                               args=(a.depth, leaf, deadline, stop), daemon=True)
              for i in range(a.threads)]
        for t in ts:
            t.start()
        print("ready", flush=True)
        for t in ts:
            t.join()
    print("done", flush=True)


if __name__ == "__main__":
    main()
