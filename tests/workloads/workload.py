"""Reference workload: leaf_a and leaf_b run the same loop body, so the true
split of CPU time between them is the split of iterations, 70/30 by default.
Each leaf is reached through DEPTH nested calls.

  --rounds N     rounds of work (default 3000); --seconds S: work for S s
  --threads N    the same work in N threads (GIL contention)
  --idle         one more thread that only sleeps (wall vs cpu mode)
  --split A      percent of iterations in leaf_a (default 70)
Prints: elapsed=<seconds> cpu=<main thread CPU seconds> checksum=<n> rounds=<n>
"""
import argparse
import threading
import time

UNIT = 10000


def leaf_a(n):
    s = 0
    for i in range(n):
        s += i * i % 7
    return s


def leaf_b(n):
    s = 0
    for i in range(n):
        s += i * i % 7
    return s


def descend(depth, fn, n):
    if depth == 0:
        return fn(n)
    return descend(depth - 1, fn, n)


def work(rounds, depth, split=70, seconds=0.0):
    na = UNIT * split // 100
    nb = UNIT - na
    total = 0
    done = 0
    deadline = time.monotonic() + seconds if seconds else None
    while (done < rounds) if deadline is None else (time.monotonic() < deadline):
        total += descend(depth, leaf_a, na)
        total += descend(depth, leaf_b, nb)
        done += 1
    return total, done


def sleeper(stop):
    while not stop.is_set():
        time.sleep(0.05)


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=3000)
    p.add_argument("--seconds", type=float, default=0.0)
    p.add_argument("--depth", type=int, default=20)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--split", type=int, default=70)
    p.add_argument("--idle", action="store_true")
    a = p.parse_args(argv)
    stop = threading.Event()
    if a.idle:
        threading.Thread(target=sleeper, args=(stop,), daemon=True,
                         name="idle").start()
    t0 = time.perf_counter()
    c0 = time.thread_time()
    if a.threads == 1:
        chk, done = work(a.rounds, a.depth, a.split, a.seconds)
    else:
        res = []
        ts = [threading.Thread(
            target=lambda: res.append(work(a.rounds // a.threads, a.depth,
                                           a.split, a.seconds)),
            name="worker-%d" % i) for i in range(a.threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        chk = sum(r[0] for r in res)
        done = sum(r[1] for r in res)
    dt = time.perf_counter() - t0
    cpu = time.thread_time() - c0
    stop.set()
    print("elapsed=%.4f cpu=%.4f checksum=%d rounds=%d" % (dt, cpu, chk, done),
          flush=True)


if __name__ == "__main__":
    main()
