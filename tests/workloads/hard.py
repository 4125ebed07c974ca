"""Hard cases for the sampler, one per sub-command; each exits 0 when the
host itself behaved.  Run: hard.py CASE [--seconds S] [--done FILE]

  recursion     recurse 2000 deep and spin there (stack over the depth cap)
  churn         start and end threads as fast as possible; prints
                "churning" once started (ends early once --done FILE exists)
  many          120 threads at once, all running Python (ends early once
                --done FILE exists)
  forkstorm     fork 40 children in quick succession (prints kid=PID for
                each); each works, then exits (with --done FILE: once FILE
                exists, at most --seconds later)
  forkthread    os.fork() from a non-main thread; the child works 1.5 s
  exit          threads still running while the interpreter exits
  async         generators, coroutines and asyncio tasks doing the work
  codereuse     100 freshly compiled functions, each run then freed;
                prints TOOK {json}: each one's wall time, s
"""
import argparse
import asyncio
import gc
import json
import os
import sys
import threading
import time


def spin(seconds):
    end = time.perf_counter() + seconds
    x = 0
    while time.perf_counter() < end:
        x += 1
    return x


def deep(n, seconds):
    if n == 0:
        return spin(seconds)
    return deep(n - 1, seconds)


def case_recursion(a):
    sys.setrecursionlimit(10000)
    deep(2000, a.seconds)


def churn_body():
    sum(range(100))


def case_churn(a):
    end = time.monotonic() + a.seconds
    n = 0
    print("churning", flush=True)
    while time.monotonic() < end and not (a.done and os.path.exists(a.done)):
        ts = [threading.Thread(target=churn_body) for _ in range(8)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        n += len(ts)
    print("threads=%d" % n)


def many_body(stop, go=None):
    if go is not None:
        go.wait()
    while not stop.is_set():
        spin(0.001)
        time.sleep(0.001)


def case_many(a):
    stop, go = threading.Event(), threading.Event()
    ts = [threading.Thread(target=many_body, args=(stop, go), name="many-%d" % i)
          for i in range(120)]
    # All start before any spins: a start waits for the GIL behind every
    # spinning thread, so starting them busy takes seconds.
    for t in ts:
        t.start()
    go.set()
    print("threads=%d" % threading.active_count(), flush=True)
    end = time.monotonic() + a.seconds
    while time.monotonic() < end and not (a.done and os.path.exists(a.done)):
        time.sleep(0.05)
    stop.set()
    for t in ts:
        t.join()


def case_forkstorm(a):
    kids = []
    for _ in range(40):
        pid = os.fork()
        if pid == 0:
            spin(0.3)
            end = time.monotonic() + a.seconds
            while a.done and not os.path.exists(a.done) and \
                    time.monotonic() < end:
                time.sleep(0.01)
            os._exit(0)
        kids.append(pid)
        print("kid=%d" % pid, flush=True)
        time.sleep(0.01)
    bad = 0
    for pid in kids:
        _, st = os.waitpid(pid, 0)
        bad += st != 0
    print("children=%d bad=%d" % (len(kids), bad))
    sys.exit(1 if bad else 0)


def case_forkthread(a):
    res = {}

    def forker():
        pid = os.fork()
        if pid == 0:
            spin(1.5)
            os._exit(0)
        res["pid"] = pid
    t = threading.Thread(target=forker)
    t.start()
    t.join()
    print("child=%d" % res["pid"], flush=True)
    _, st = os.waitpid(res["pid"], 0)
    sys.exit(1 if st else 0)


def case_exit(a):
    for i in range(4):
        threading.Thread(target=spin, args=(60,), daemon=True).start()
    spin(a.seconds)
    # exits with daemon threads still running Python code


def gen_leaf(n):
    for i in range(n):
        spin(0.0002)
        yield i


async def coro_leaf(seconds):
    spin(seconds)
    await asyncio.sleep(0)


async def outer_coro(seconds, rounds):
    for _ in range(rounds):
        await coro_leaf(seconds)
        await asyncio.sleep(0)


async def async_main(seconds):
    rounds = int(seconds / 0.01 / 2)
    await asyncio.gather(*(outer_coro(0.005, rounds) for _ in range(4)))


def case_async(a):
    for _ in gen_leaf(int(a.seconds / 2 / 0.0002)):
        pass
    asyncio.run(async_main(a.seconds))


def case_codereuse(a):
    per = a.seconds / 100
    took = {}
    for i in range(100):
        src = ("def fn_%d(spin, s):\n    return spin(s)\n" % i)
        ns = {}
        exec(compile(src, "dyn_%d.py" % i, "exec"), ns)
        t0 = time.perf_counter()
        ns["fn_%d" % i](spin, per)
        took["fn_%d" % i] = time.perf_counter() - t0
        del ns
        gc.collect()
    # Each function's wall time: a host starved of CPU on a loaded machine
    # stays in one longer than asked.
    print("TOOK " + json.dumps(took), flush=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("case")
    p.add_argument("--seconds", type=float, default=2.0)
    p.add_argument("--done")
    a = p.parse_args()
    globals()["case_" + a.case](a)


if __name__ == "__main__":
    main()
