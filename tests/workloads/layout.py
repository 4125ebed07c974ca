"""Workloads for tests/e2e/test_layout.py.  Run: layout.py CASE [--seconds S]

  parked     three threads, each parked in its own known chain of calls
             (a lock wait, a sleep, a select) at fixed lines, for S seconds:
             every sample of every thread shows one of three stacks
  genexpr    two threads that drive generator expressions and generators
             from C (sum, list) and from Python, hard: a generator's frame
             is linked under its caller only while it runs
  cgen       a _thread whose function is sum() over a CPU-bound generator:
             the generator's frame, resumed from C, is the thread's only
             Python frame (as a server iterating a response generator)
  swap       the main thread spins in swap_leaf, called 3 ms at a time
             from swap_a and 1 ms at a time from swap_b: two callers of
             one frame size, so the leaf's frame has the same address and
             caller link under both, and only the callers' bytes differ
"""
import _thread
import argparse
import select
import threading
import time


def parked_lock(lock):
    lock.acquire()


def parked_sleep(seconds):
    time.sleep(seconds)


def parked_select(seconds):
    select.select([], [], [], seconds)


def level3(kind, arg):
    if kind == "lock":
        parked_lock(arg)
    elif kind == "sleep":
        parked_sleep(arg)
    else:
        parked_select(arg)


def level2(kind, arg):
    level3(kind, arg)


def level1(kind, arg):
    level2(kind, arg)


def parked(seconds):
    lock = threading.Lock()
    lock.acquire()
    ts = [threading.Thread(target=level1, args=("lock", lock), daemon=True),
          threading.Thread(target=level1, args=("sleep", seconds + 5),
                           daemon=True),
          threading.Thread(target=level1, args=("select", seconds + 5),
                           daemon=True)]
    for t in ts:
        t.start()
    time.sleep(seconds)


def squares(n):
    for i in range(n):
        yield i * i


def consume():
    return sum(x for x in squares(200)) + len(list(x for x in range(200)))


def driver(end):
    while time.monotonic() < end:
        for _ in squares(50):
            pass
        consume()


def genexpr(seconds):
    end = time.monotonic() + seconds
    ts = [threading.Thread(target=driver, args=(end,)) for _ in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()


def burning(end):
    while time.monotonic() < end:
        x = 0
        for i in range(2000):
            x += i
        yield x


def cgen(seconds):
    # _thread calls sum() straight from C: no Python frame under the
    # generator (threading.Thread would put its run() there).
    _thread.start_new_thread(sum, (burning(time.monotonic() + seconds),))
    time.sleep(seconds + 0.3)


def swap_leaf(end):
    x = 0
    while time.monotonic() < end:
        x += 1
    return x


def swap_a(end):
    return swap_leaf(end)


def swap_b(end):
    return swap_leaf(end)


def swap(seconds):
    stop = time.monotonic() + seconds
    while time.monotonic() < stop:
        swap_a(time.monotonic() + 0.003)
        swap_b(time.monotonic() + 0.001)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("case", choices=("parked", "genexpr", "cgen", "swap"))
    p.add_argument("--seconds", type=float, default=3.0)
    a = p.parse_args()
    {"parked": parked, "genexpr": genexpr, "cgen": cgen,
     "swap": swap}[a.case](a.seconds)


if __name__ == "__main__":
    main()
